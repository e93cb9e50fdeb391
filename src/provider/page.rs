//! A page whose records are left as the API sent them.
//!
//! A sync compares each record with what it stored by a hash of its bytes: an unchanged
//! record (nearly all of them on a re-sync) is never parsed into a `serde_json::Value`, let
//! alone mapped. Building those trees was most of a re-sync's CPU. So when the records sit
//! in one list at a plain path (`$.data[*]`, `$[*]`), the page is parsed into a `Value`
//! everywhere but that list, whose items are only located ([`parse_page`]); paging reads its
//! totals and cursors from that `Value` as from any other page.

use std::ops::Range;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// The records of one page, unparsed: the body's bytes and where each record is in them.
#[derive(Debug, Default)]
pub struct RawPage {
    bytes: Vec<u8>,
    spans: Vec<Range<usize>>,
}

impl RawPage {
    /// How many records the page has.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True for a page without records.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Each record's JSON text, as the API sent it, in listing order. Each is one valid JSON
    /// value (checked as the page was read) in UTF-8.
    pub fn records(&self) -> impl Iterator<Item = &[u8]> {
        self.spans.iter().map(|s| &self.bytes[s.clone()])
    }
}

/// Parses `bytes` into a `Value`, except the list at `list` (member names from the root, as
/// [`crate::config::value::JsonPath::plain_list`] gives them): there the `Value` has an empty
/// list, and the [`RawPage`] has the items. No `RawPage` when the page has no list there (the
/// `Value` then is the whole page, for the record selector to read as usual).
pub fn parse_page(bytes: Vec<u8>, list: &[String]) -> serde_json::Result<(Value, Option<RawPage>)> {
    let mut spans = None;
    let body = {
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let body = At {
            path: list,
            spans: &mut spans,
            base: bytes.as_ptr() as usize,
        }
        .deserialize(&mut de)?;
        de.end()?;
        body
    };
    Ok((body, spans.map(|spans| RawPage { bytes, spans })))
}

/// The `Visitor` methods that build JSON scalars as `serde_json::Value` does, for visitors
/// that build a `Value` their own way above them: [`At`] here, the mapping's `Needs`
/// (`mapping/parse.rs`).
macro_rules! value_scalars {
    () => {
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_bool<E>(self, v: bool) -> Result<serde_json::Value, E> {
            Ok(serde_json::Value::Bool(v))
        }

        fn visit_i64<E>(self, v: i64) -> Result<serde_json::Value, E> {
            Ok(serde_json::Value::from(v))
        }

        fn visit_u64<E>(self, v: u64) -> Result<serde_json::Value, E> {
            Ok(serde_json::Value::from(v))
        }

        fn visit_f64<E>(self, v: f64) -> Result<serde_json::Value, E> {
            Ok(serde_json::Value::from(v))
        }

        fn visit_str<E>(self, v: &str) -> Result<serde_json::Value, E> {
            Ok(serde_json::Value::String(v.to_string()))
        }

        fn visit_string<E>(self, v: String) -> Result<serde_json::Value, E> {
            Ok(serde_json::Value::String(v))
        }

        fn visit_unit<E>(self) -> Result<serde_json::Value, E> {
            Ok(serde_json::Value::Null)
        }
    };
}
pub(crate) use value_scalars;

/// The seed (and visitor) for one value of the page, `path` being what remains of the way to
/// the records' list: builds the value as `Value` would, but at the end of the path keeps the
/// spans of a list's items instead.
struct At<'p, 'o> {
    path: &'p [String],
    spans: &'o mut Option<Vec<Range<usize>>>,
    base: usize,
}

impl<'de> DeserializeSeed<'de> for At<'_, '_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for At<'_, '_> {
    type Value = Value;

    value_scalars!();

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if !self.path.is_empty() {
            let mut items = Vec::new();
            while let Some(v) = seq.next_element::<Value>()? {
                items.push(v);
            }
            return Ok(Value::Array(items));
        }
        let mut spans = Vec::new();
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            let start = raw.get().as_ptr() as usize - self.base;
            spans.push(start..start + raw.get().len());
        }
        *self.spans = Some(spans);
        Ok(Value::Array(Vec::new()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let At { path, spans, base } = self;
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = match path.split_first() {
                Some((first, rest)) if *first == key => {
                    // A repeated member: the last one counts, as in a `Value`.
                    if rest.is_empty() {
                        *spans = None;
                    }
                    map.next_value_seed(At {
                        path: rest,
                        spans: &mut *spans,
                        base,
                    })?
                }
                _ => map.next_value::<Value>()?,
            };
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, list: &[&str]) -> (Value, Option<Vec<String>>) {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        let (body, raw) = parse_page(text.as_bytes().to_vec(), &list).unwrap();
        let raw = raw.map(|r| {
            r.records()
                .map(|b| String::from_utf8(b.to_vec()).unwrap())
                .collect()
        });
        (body, raw)
    }

    #[test]
    fn the_records_list_is_located_and_the_rest_parsed() {
        let (body, raw) = parse(
            r#"{"data": [{"id": 1, "name": "Ada"} , {"id":2}], "meta": {"total": 2, "next": null}}"#,
            &["data"],
        );
        assert_eq!(
            raw.unwrap(),
            vec![r#"{"id": 1, "name": "Ada"}"#, r#"{"id":2}"#]
        );
        assert_eq!(
            body,
            serde_json::json!({"data": [], "meta": {"total": 2, "next": null}})
        );
    }

    #[test]
    fn a_top_level_list_and_a_nested_one() {
        let (body, raw) = parse(r#"[1, "two", {"three": [3]}]"#, &[]);
        assert_eq!(raw.unwrap(), vec!["1", r#""two""#, r#"{"three": [3]}"#]);
        assert_eq!(body, serde_json::json!([]));
        let (body, raw) = parse(
            r#"{"a": {"b": [{"x": 1}], "c": [5]}, "b": [9]}"#,
            &["a", "b"],
        );
        assert_eq!(raw.unwrap(), vec![r#"{"x": 1}"#]);
        assert_eq!(
            body,
            serde_json::json!({"a": {"b": [], "c": [5]}, "b": [9]})
        );
    }

    #[test]
    fn no_list_at_the_path_leaves_the_whole_page_to_the_selector() {
        for text in [
            r#"{"data": {"a": {"id": 1}}}"#,
            r#"{"data": null}"#,
            r#"{"other": [1]}"#,
            // The last of a repeated member counts, as in a `Value`.
            r#"{"data": [1], "data": {"a": 1}}"#,
        ] {
            let (body, raw) = parse(text, &["data"]);
            assert_eq!(raw, None, "{text}");
            assert_eq!(body, serde_json::from_str::<Value>(text).unwrap(), "{text}");
        }
        let (_, raw) = parse(r#"{"data": {"a": 1}, "data": [2]}"#, &["data"]);
        assert_eq!(raw.unwrap(), vec!["2"]);
    }

    #[test]
    fn bad_json_fails_as_it_would_for_a_value() {
        for text in [
            r#"{"data": [{"id": 1}, {"id": "#,
            r#"{"data": [{"id": 1}]"#,
            r#"{"data": [1]} trailing"#,
            r#"{"data": [01]}"#,
        ] {
            let ours = parse_page(text.as_bytes().to_vec(), &["data".to_string()]).unwrap_err();
            let theirs = serde_json::from_str::<Value>(text).unwrap_err();
            assert_eq!(ours.is_eof(), theirs.is_eof(), "{text}");
        }
    }
}
