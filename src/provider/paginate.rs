//! Pagination as a pure state machine: which request comes next, when the listing is over,
//! and whether it is complete.
//!
//! The HTTP engine sends the first request with [`Pager::first_query`], hands each page's
//! body, record count and `Link` header to [`Pager::advance`], follows the [`Next`] it gets
//! back, and calls [`Pager::finish`] at the end: a listing whose API reported more records
//! than arrived is an error, so nothing is applied from a truncated fetch.
//!
//! Guards: the same cursor or next URL twice is an error (an API bug would loop forever), and
//! so is reading more than `max_pages` pages.
//!
//! Not here: HTTP, retries, record selection (the engine counts the records it selected).

use std::collections::HashSet;

use serde_json::Value;

use crate::config::provider::{Pagination, Stop, Stream};
use crate::config::value::JsonPath;

/// Default for a stream's `max_pages`.
pub const DEFAULT_MAX_PAGES: u32 = 10_000;

/// What the engine sees of one page.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    /// The parsed body.
    pub body: &'a Value,
    /// How many records the stream's selector found on it.
    pub records: usize,
    /// The `Link` response header, if any (several headers joined with `, `).
    pub link: Option<&'a str>,
}

/// What to request after a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The stream's request again, with these paging parameters set (in the query or the
    /// body, as the pagination's `in` says; see [`body_fields`]).
    Params(Vec<(String, String)>),
    /// This URL, absolute or relative to the base URL, as the API gave it.
    Url(String),
    /// The listing is over.
    Done,
}

/// Why paging failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// The API sent a cursor or next link it had already sent.
    #[error(
        "page {page} repeats the {what} of an earlier page (`{value}`); paging would never end"
    )]
    Repeated {
        /// 1-based page number.
        page: u32,
        /// "cursor" or "next link".
        what: &'static str,
        /// The repeated value (a cursor or URL, never a credential).
        value: String,
    },
    /// More pages than `max_pages`.
    #[error("read {max} pages without reaching the end of the listing")]
    TooManyPages {
        /// The limit.
        max: u32,
    },
    /// Fewer records than the API reported.
    #[error("incomplete listing: the API reported {reported} records but {delivered} arrived")]
    Incomplete {
        /// The API's total.
        reported: u64,
        /// What arrived.
        delivered: u64,
    },
    /// The reported total is not a whole number.
    #[error("the total at `{path}` is {found}, not a whole number")]
    BadTotal {
        /// The JSONPath.
        path: String,
        /// What was there.
        found: String,
    },
}

/// The totals of a finished listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Pages read.
    pub pages: u32,
    /// Records delivered.
    pub records: u64,
    /// The API's own total, if it reports one.
    pub reported: Option<u64>,
}

/// Paging state for one fetch of one stream.
#[derive(Debug)]
pub struct Pager<'s> {
    kind: &'s Pagination,
    total: Option<&'s JsonPath>,
    has_more: Option<&'s JsonPath>,
    max_pages: u32,
    pages: u32,
    records: u64,
    /// Offset (in records) or page number of the next request.
    position: u64,
    reported: Option<u64>,
    seen: HashSet<String>,
}

impl<'s> Pager<'s> {
    /// A pager for `stream`.
    pub fn new(stream: &'s Stream) -> Pager<'s> {
        let position = match &stream.pagination {
            Pagination::Page { first_page, .. } => u64::from(*first_page),
            _ => 0,
        };
        Pager {
            kind: &stream.pagination,
            total: stream.total.as_ref(),
            has_more: stream.has_more.as_ref(),
            max_pages: stream.max_pages.unwrap_or(DEFAULT_MAX_PAGES),
            pages: 0,
            records: 0,
            position,
            reported: None,
            seen: HashSet::new(),
        }
    }

    /// Paging parameters for the first request.
    pub fn first_query(&self) -> Vec<(String, String)> {
        match self.kind {
            Pagination::Offset {
                offset_param,
                limit_param,
                page_size,
                ..
            } => vec![
                (offset_param.clone(), "0".into()),
                (limit_param.clone(), page_size.to_string()),
            ],
            Pagination::Page {
                page_param,
                size_param,
                page_size,
                first_page,
                ..
            } => with_size(
                vec![(page_param.clone(), first_page.to_string())],
                size_param,
                Some(*page_size),
            ),
            Pagination::Cursor {
                size_param,
                page_size,
                ..
            } => with_size(Vec::new(), size_param, *page_size),
            Pagination::None | Pagination::NextUrl { .. } | Pagination::LinkHeader => Vec::new(),
        }
    }

    /// The total the API reported on the last page that carried one.
    pub fn reported(&self) -> Option<u64> {
        self.reported
    }

    /// Takes in one page and says what to request next.
    pub fn advance(&mut self, page: Page<'_>) -> Result<Next, PageError> {
        self.pages += 1;
        self.records += page.records as u64;
        if let Some(path) = self.total
            && let Some(v) = path.first(page.body)
            && !v.is_null()
        {
            let total = v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| PageError::BadTotal {
                    path: path.as_str().to_string(),
                    found: v.to_string(),
                })?;
            self.reported = Some(total);
        }
        let next = self.next(page)?;
        if next != Next::Done && self.pages >= self.max_pages {
            return Err(PageError::TooManyPages {
                max: self.max_pages,
            });
        }
        Ok(next)
    }

    fn next(&mut self, page: Page<'_>) -> Result<Next, PageError> {
        if let Some(path) = self.has_more
            && path
                .first(page.body)
                .is_some_and(|v| v == &Value::Bool(false))
        {
            return Ok(Next::Done);
        }
        match self.kind {
            Pagination::None => Ok(Next::Done),
            Pagination::Offset {
                offset_param,
                limit_param,
                page_size,
                stop,
                ..
            } => {
                if self.counted_out(page, *page_size, *stop) {
                    return Ok(Next::Done);
                }
                // Advance by what arrived: an API that caps the page size below ours still
                // gets every record, and the reported total tells us when to stop.
                self.position += page.records as u64;
                Ok(Next::Params(vec![
                    (offset_param.clone(), self.position.to_string()),
                    (limit_param.clone(), page_size.to_string()),
                ]))
            }
            Pagination::Page {
                page_param,
                size_param,
                page_size,
                stop,
                ..
            } => {
                if self.counted_out(page, *page_size, *stop) {
                    return Ok(Next::Done);
                }
                self.position += 1;
                Ok(Next::Params(with_size(
                    vec![(page_param.clone(), self.position.to_string())],
                    size_param,
                    Some(*page_size),
                )))
            }
            Pagination::Cursor {
                cursor,
                param,
                size_param,
                page_size,
                ..
            } => match text_at(cursor, page.body) {
                None => Ok(Next::Done),
                Some(c) => {
                    self.remember(&c, "cursor")?;
                    Ok(Next::Params(with_size(
                        vec![(param.clone(), c)],
                        size_param,
                        *page_size,
                    )))
                }
            },
            Pagination::NextUrl { next } => match text_at(next, page.body) {
                None => Ok(Next::Done),
                Some(url) => {
                    self.remember(&url, "next link")?;
                    Ok(Next::Url(url))
                }
            },
            Pagination::LinkHeader => match page.link.and_then(next_link) {
                None => Ok(Next::Done),
                Some(url) => {
                    self.remember(&url, "next link")?;
                    Ok(Next::Url(url))
                }
            },
        }
    }

    /// Offset and page paging end on an empty page, at the reported total, or (without a
    /// total) on a short page unless the spec says only an empty page ends the listing.
    fn counted_out(&self, page: Page<'_>, page_size: u32, stop: Stop) -> bool {
        if page.records == 0 {
            return true;
        }
        match (self.reported, stop) {
            (Some(total), _) => self.records >= total,
            (None, Stop::ShortPage) => page.records < page_size as usize,
            (None, Stop::EmptyPage) => false,
        }
    }

    fn remember(&mut self, value: &str, what: &'static str) -> Result<(), PageError> {
        if self.seen.insert(value.to_string()) {
            Ok(())
        } else {
            Err(PageError::Repeated {
                page: self.pages,
                what,
                value: value.to_string(),
            })
        }
    }

    /// The paging parameters `ahead` pages after the next request (the one [`Pager::advance`]
    /// just asked for), if every page up to it arrives full. Only offset and page paging can
    /// tell, once the API reported a total beyond that page and no `has_more` can end the
    /// listing sooner, and never past `max_pages`. The fetch requests that page while the
    /// ones before it are read: a guess, used only if `advance` then asks for exactly these
    /// parameters.
    pub fn speculate(&self, ahead: u64) -> Option<Vec<(String, String)>> {
        let total = self.reported?;
        if self.has_more.is_some() || u64::from(self.pages) + 1 + ahead >= u64::from(self.max_pages)
        {
            return None;
        }
        match self.kind {
            Pagination::Offset {
                offset_param,
                limit_param,
                page_size,
                ..
            } => {
                let at = self.position + ahead * u64::from(*page_size);
                (at < total).then(|| {
                    vec![
                        (offset_param.clone(), at.to_string()),
                        (limit_param.clone(), page_size.to_string()),
                    ]
                })
            }
            Pagination::Page {
                page_param,
                size_param,
                page_size,
                ..
            } => {
                let before = self.records + ahead * u64::from(*page_size);
                (before < total).then(|| {
                    with_size(
                        vec![(page_param.clone(), (self.position + ahead).to_string())],
                        size_param,
                        Some(*page_size),
                    )
                })
            }
            _ => None,
        }
    }

    /// Ends the listing: fails when the API reported more records than arrived.
    pub fn finish(&self) -> Result<Summary, PageError> {
        if let Some(reported) = self.reported
            && self.records < reported
        {
            return Err(PageError::Incomplete {
                reported,
                delivered: self.records,
            });
        }
        Ok(Summary {
            pages: self.pages,
            records: self.records,
            reported: self.reported,
        })
    }
}

/// Paging parameters as body fields: page numbers, offsets and sizes as JSON numbers, a
/// cursor as a string (as the API sent it).
pub fn body_fields(kind: &Pagination, params: &[(String, String)]) -> Vec<(String, Value)> {
    let cursor_param = match kind {
        Pagination::Cursor { param, .. } => Some(param.as_str()),
        _ => None,
    };
    params
        .iter()
        .map(|(name, value)| {
            let v = match value.parse::<u64>() {
                Ok(n) if cursor_param != Some(name.as_str()) => Value::from(n),
                _ => Value::String(value.clone()),
            };
            (name.clone(), v)
        })
        .collect()
}

fn with_size(
    mut q: Vec<(String, String)>,
    size_param: &Option<String>,
    size: Option<u32>,
) -> Vec<(String, String)> {
    if let (Some(p), Some(n)) = (size_param, size) {
        q.push((p.clone(), n.to_string()));
    }
    q
}

/// A non-empty string (or number) at `path`; `None` for missing, null or "".
fn text_at(path: &JsonPath, body: &Value) -> Option<String> {
    match path.first(body)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `rel="next"` target of a `Link` header (RFC 8288): `<https://...>; rel="next"`.
pub fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after.find('>')?;
        let target = &after[..close];
        let params_end = after[close..].find('<').map_or(after.len(), |i| close + i);
        let params = &after[close + 1..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            })
        });
        if is_next {
            return Some(target.to_string());
        }
        rest = &after[params_end..];
    }
    None
}

/// Where a stream's records' list is, when its pages can be read with the list unparsed (see
/// [`super::page::parse_page`]): the selector is a plain `$.a.b[*]`, and every other path paging reads from
/// the body is a plain `$.x.y` outside the list (not a cursor taken from the last record).
pub fn raw_list(stream: &Stream) -> Option<Vec<String>> {
    let list = stream.records.plain_list()?;
    let cursor = match &stream.pagination {
        Pagination::Cursor { cursor, .. } => Some(cursor),
        Pagination::NextUrl { next } => Some(next),
        _ => None,
    };
    for path in [stream.total.as_ref(), stream.has_more.as_ref(), cursor]
        .into_iter()
        .flatten()
    {
        if path.plain_member()?.starts_with(&list) {
            return None;
        }
    }
    Some(list.into_iter().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stream(yaml: &str) -> Stream {
        serde_yaml::with::singleton_map_recursive::deserialize(serde_yaml::Deserializer::from_str(
            yaml,
        ))
        .unwrap()
    }

    /// Feeds pages (body, record count, link) and returns every `Next` and the outcome.
    fn run(
        s: &Stream,
        pages: &[(Value, usize, Option<&str>)],
    ) -> (Vec<Next>, Result<Summary, PageError>) {
        let mut pager = Pager::new(s);
        let mut out = Vec::new();
        for (body, n, link) in pages {
            match pager.advance(Page {
                body,
                records: *n,
                link: *link,
            }) {
                Ok(next) => out.push(next),
                Err(e) => return (out, Err(e)),
            }
        }
        let end = pager.finish();
        (out, end)
    }

    fn q(pairs: &[(&str, &str)]) -> Next {
        Next::Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn offset_counts_records_and_stops_at_the_reported_total() {
        let s = stream(
            "request: {path: /e}\nrecords: $.data[*]\ntotal: $.meta.total\npagination: {kind: offset, page_size: 2}\n",
        );
        assert_eq!(
            Pager::new(&s).first_query(),
            [("offset".into(), "0".into()), ("limit".into(), "2".into())]
        );
        let body = json!({"meta": {"total": 5}});
        let (nexts, end) = run(
            &s,
            &[
                (body.clone(), 2, None),
                (body.clone(), 2, None),
                (body, 1, None),
            ],
        );
        assert_eq!(
            nexts,
            [
                q(&[("offset", "2"), ("limit", "2")]),
                q(&[("offset", "4"), ("limit", "2")]),
                Next::Done
            ]
        );
        assert_eq!(
            end,
            Ok(Summary {
                pages: 3,
                records: 5,
                reported: Some(5)
            })
        );
    }

    #[test]
    fn offset_without_total_stops_on_a_short_or_empty_page() {
        let s = stream(
            "request: {path: /e}\nrecords: $[*]\npagination: {kind: offset, page_size: 100, offset_param: skip, limit_param: take}\n",
        );
        let (nexts, _) = run(&s, &[(json!([]), 100, None), (json!([]), 40, None)]);
        assert_eq!(nexts, [q(&[("skip", "100"), ("take", "100")]), Next::Done]);
        let (nexts, _) = run(&s, &[(json!([]), 100, None), (json!([]), 0, None)]);
        assert_eq!(nexts[1], Next::Done);
    }

    #[test]
    fn a_truncated_listing_fails_naming_both_numbers() {
        let s = stream(
            "request: {path: /e}\nrecords: $.data[*]\ntotal: $.total\npagination: {kind: offset, page_size: 50}\n",
        );
        let (_, end) = run(
            &s,
            &[
                (json!({"total": 500}), 50, None),
                (json!({"total": 500}), 0, None),
            ],
        );
        let e = end.unwrap_err();
        assert_eq!(
            e,
            PageError::Incomplete {
                reported: 500,
                delivered: 50
            }
        );
        assert_eq!(
            e.to_string(),
            "incomplete listing: the API reported 500 records but 50 arrived"
        );
    }

    #[test]
    fn pages_count_from_zero_or_one() {
        for first in [0, 1] {
            let s = stream(&format!(
                "request: {{path: /e}}\nrecords: $[*]\npagination: {{kind: page, page_size: 2, first_page: {first}, size_param: per_page}}\n"
            ));
            assert_eq!(
                Pager::new(&s).first_query()[0],
                ("page".into(), first.to_string())
            );
            let (nexts, _) = run(&s, &[(json!([]), 2, None), (json!([]), 1, None)]);
            assert_eq!(
                nexts,
                [
                    q(&[("page", &(first + 1).to_string()), ("per_page", "2")]),
                    Next::Done
                ]
            );
        }
    }

    #[test]
    fn cursor_from_the_body_until_it_is_missing_and_never_twice() {
        let s = stream(
            "request: {path: /e}\nrecords: $.results[*]\npagination: {kind: cursor, cursor: $.next, param: cursor, size_param: page_size, page_size: 100}\n",
        );
        let (nexts, end) = run(
            &s,
            &[
                (json!({"next": "c2"}), 100, None),
                (json!({"next": null}), 3, None),
            ],
        );
        assert_eq!(
            nexts,
            [q(&[("cursor", "c2"), ("page_size", "100")]), Next::Done]
        );
        assert!(end.is_ok());
        let (_, end) = run(
            &s,
            &[
                (json!({"next": "c2"}), 100, None),
                (json!({"next": "c2"}), 100, None),
            ],
        );
        assert_eq!(
            end.unwrap_err().to_string(),
            "page 2 repeats the cursor of an earlier page (`c2`); paging would never end"
        );
    }

    #[test]
    fn next_url_and_has_more() {
        let s = stream(
            "request: {path: /e}\nrecords: $.data[*]\nhas_more: $.has_more\npagination: {kind: next_url, next: $.links.next}\n",
        );
        let (nexts, _) = run(
            &s,
            &[
                (
                    json!({"links": {"next": "/e?page=2"}, "has_more": true}),
                    10,
                    None,
                ),
                (
                    json!({"links": {"next": "/e?page=3"}, "has_more": false}),
                    10,
                    None,
                ),
            ],
        );
        assert_eq!(nexts, [Next::Url("/e?page=2".into()), Next::Done]);
    }

    #[test]
    fn link_header_rel_next() {
        let s = stream("request: {path: /e}\nrecords: $[*]\npagination: {kind: link_header}\n");
        let link = r#"<https://api.example.com/e?page=1>; rel="first", <https://api.example.com/e?page=2>; rel="next""#;
        let (nexts, _) = run(&s, &[(json!([]), 30, Some(link)), (json!([]), 30, None)]);
        assert_eq!(
            nexts,
            [
                Next::Url("https://api.example.com/e?page=2".into()),
                Next::Done
            ]
        );
        assert_eq!(next_link(r#"<a>; rel="prev next""#), Some("a".into()));
        assert_eq!(next_link(r#"<a>; rel=prev"#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn max_pages_guards_against_endless_paging() {
        let s = stream(
            "request: {path: /e}\nrecords: $[*]\nmax_pages: 3\npagination: {kind: page, page_size: 1}\n",
        );
        let pages = vec![(json!([]), 1, None); 5];
        let (nexts, end) = run(&s, &pages);
        assert_eq!(nexts.len(), 2);
        assert_eq!(end.unwrap_err(), PageError::TooManyPages { max: 3 });
    }

    #[test]
    fn empty_page_stop_reads_past_short_pages_until_an_empty_one() {
        // An API that caps the page size below ours (Deel: `limit` up to 200 but
        // `items_per_page` at most 99) sends short pages before the end.
        let s = stream(
            "request: {path: /e}\nrecords: $.data[*]\npagination: {kind: offset, page_size: 100, stop: empty_page}\n",
        );
        let (nexts, end) = run(
            &s,
            &[
                (json!({}), 99, None),
                (json!({}), 99, None),
                (json!({}), 0, None),
            ],
        );
        assert_eq!(
            nexts,
            [
                q(&[("offset", "99"), ("limit", "100")]),
                q(&[("offset", "198"), ("limit", "100")]),
                Next::Done
            ]
        );
        assert_eq!(end.unwrap().records, 198);
        // A reported total still ends the listing without the extra request.
        let s = stream(
            "request: {path: /e}\nrecords: $[*]\ntotal: $.n\npagination: {kind: page, page_size: 10, stop: empty_page}\n",
        );
        let (nexts, _) = run(
            &s,
            &[(json!({"n": 13}), 10, None), (json!({"n": 13}), 3, None)],
        );
        assert_eq!(nexts[1], Next::Done);
    }

    #[test]
    fn body_fields_are_numbers_except_a_cursor() {
        let s = stream(
            "request: {path: /e, method: POST}\nrecords: $[*]\npagination: {kind: page, in: body, page_param: page, size_param: pageSize, page_size: 500}\n",
        );
        let first = Pager::new(&s).first_query();
        assert_eq!(
            body_fields(&s.pagination, &first),
            [
                ("page".to_string(), json!(1)),
                ("pageSize".to_string(), json!(500))
            ]
        );
        let s = stream(
            "request: {path: /e, method: POST}\nrecords: $[*]\npagination: {kind: cursor, in: body, cursor: $.next, param: /paging/after, size_param: /paging/limit, page_size: 50}\n",
        );
        let (nexts, _) = run(&s, &[(json!({"next": 1234}), 50, None)]);
        let Next::Params(p) = &nexts[0] else {
            panic!("{nexts:?}")
        };
        assert_eq!(
            body_fields(&s.pagination, p),
            [
                ("/paging/after".to_string(), json!("1234")),
                ("/paging/limit".to_string(), json!(50))
            ]
        );
    }

    #[test]
    fn no_paging_is_one_request() {
        let s = stream("request: {path: /e}\nrecords: $[*]\n");
        assert!(Pager::new(&s).first_query().is_empty());
        let (nexts, end) = run(&s, &[(json!([1, 2]), 2, None)]);
        assert_eq!(nexts, [Next::Done]);
        assert_eq!(end.unwrap().records, 2);
    }

    #[test]
    fn a_total_that_is_not_a_number_is_an_error() {
        let s = stream("request: {path: /e}\nrecords: $[*]\ntotal: $.total\n");
        let (_, end) = run(&s, &[(json!({"total": "many"}), 2, None)]);
        assert!(matches!(end, Err(PageError::BadTotal { .. })));
        let (_, end) = run(&s, &[(json!({"total": "2"}), 2, None)]);
        assert_eq!(end.unwrap().reported, Some(2));
    }

    #[test]
    fn records_are_left_unparsed_only_where_paging_reads_nothing_inside_their_list() {
        let cases = [
            (
                "records: $.data[*]\ntotal: $.meta.total",
                Some(vec!["data"]),
            ),
            (
                "records: $.a.list[*]\nhas_more: $.a.more",
                Some(vec!["a", "list"]),
            ),
            ("records: $[*]", Some(vec![])),
            (
                "records: $[*]\npagination: {kind: link_header}",
                Some(vec![]),
            ),
            // A cursor outside the list, and one inside it.
            (
                "records: $.results[*]\npagination: {kind: cursor, cursor: $.next, param: c}",
                Some(vec!["results"]),
            ),
            (
                "records: $.page.items[*]\npagination: {kind: next_url, next: $.page.items.next}",
                None,
            ),
            ("records: $.data[*]\ntotal: $.data", None),
            // Not a plain path: could reach anywhere.
            ("records: $.data[*]\ntotal: $..total", None),
            ("records: $[*]\nhas_more: $.more", None),
            // Not a plain list selector.
            ("records: $.data[?@.active == true]", None),
            ("records: $.data[0]", None),
            ("records: $.data", None),
        ];
        for (yaml, want) in cases {
            let s = stream(&format!("request: {{path: /e}}\n{yaml}\n"));
            let want: Option<Vec<String>> =
                want.map(|w| w.into_iter().map(str::to_string).collect());
            assert_eq!(raw_list(&s), want, "{yaml}");
        }
    }
}
