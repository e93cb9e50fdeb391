//! The HTTP engine for one source: sends a stream's requests page by page, authenticates,
//! retries, selects records and hands each one on as its page arrives (one page in memory at
//! a time), then checks the listing is complete.
//!
//! Every error names the source, the request (method and path, secrets masked), the status
//! and what to do next. Nothing here knows about mappings, people or DuckDB.
//!
//! Supported so far: auth `none`, `api_key`, `headers`, `bearer`, `basic`, `token_exchange`
//! (with a Bearer-prefixed token and token rotation by response header) and
//! `oauth2_client_credentials`; every pagination kind; retries and `Retry-After`; one
//! re-authentication on 401, tokens renewed before they expire, `oauth2_refresh_token` with
//! the rotated refresh token persisted before use; joins, lookups and per-record sub-requests
//! with a concurrency cap; the declared rate limit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::Value;

pub use super::error::{Cut, FetchError, FetchErrorKind};
use super::page::{RawPage, parse_page};
use super::paginate::{Next, Page, PageError, Pager, Summary, body_fields};
use super::rate::Limiter;
use super::request::{Context, Plan, PlannedBody, Redactor, RenderError};
use super::retry::{Decision, Failure, Policy};
use super::tokens::TokenStore;
use crate::config::provider::{
    Auth, ClientAuth, Method, ParamsIn, ProviderSpec, Stream, SubRequest,
};
use crate::config::value::JsonPath;

/// One source's HTTP client.
pub struct SourceClient {
    source: String,
    spec: ProviderSpec,
    ctx: Context,
    redactor: Mutex<Redactor>,
    http: reqwest::Client,
    policy: Policy,
    /// The declared rate limit, shared by every request of this source.
    limiter: Option<Limiter>,
    /// The current token for token-based auth; the async lock makes concurrent requests wait
    /// for one login instead of each logging in.
    token: tokio::sync::Mutex<Option<Token>>,
    /// Where a rotated OAuth refresh token is persisted (`oauth2_refresh_token` only).
    tokens: Option<TokenStore>,
}

impl std::fmt::Debug for SourceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceClient")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// What a fetch reports to its caller as it goes.
pub trait Observer {
    /// A response arrived (or a request failed without one: status 0).
    fn request(&mut self, _described: &str, _status: u16) {}
    /// A record was selected. Return false to stop early (a test read with `--limit`).
    fn record(&mut self, record: Value) -> bool;
    /// The API reported how many records the listing holds (on its first page): a hint to
    /// size what the observer keeps per record, never a promise (completeness is checked at
    /// the end).
    fn expect(&mut self, _records: u64) {}
    /// The source's data has a problem the fetch worked around by a documented rule (see
    /// [`SourceProblem`]); the caller records it as a data problem. Reported once per
    /// (stream, key) per fetch.
    fn problem(&mut self, _problem: SourceProblem) {}
    /// True when the observer takes every record (it never stops early by choice), so its
    /// work on one page may overlap the next page's request and parse: a sync's staging runs
    /// while the next page arrives, and where the pages can be predicted
    /// ([`super::paginate::Pager::speculate`]) the page after it is already requested. Then
    /// requests are reported after the records of the page before, and a stop mid-page
    /// leaves a page or two read in vain.
    fn overlaps(&self) -> bool {
        false
    }
    /// True when the observer takes a page's records as the API sent them
    /// ([`Observer::raw_page`]) where the records sit in one list at a plain path
    /// (`$.data[*]`): a sync hashes their bytes and parses only the records it has not
    /// stored. Elsewhere (other paths, joins, sub-requests) it still gets [`Observer::record`].
    fn takes_raw(&self) -> bool {
        false
    }
    /// A page's records, unparsed (only to an observer that [`Observer::takes_raw`]). Return
    /// false to stop. By default each is parsed and handed to [`Observer::record`], and one
    /// too deep to parse (over 128 levels) is skipped: an observer that must account for
    /// every record (the sync's) overrides this.
    fn raw_page(&mut self, page: RawPage) -> bool {
        for raw in page.records() {
            let Ok(record) = serde_json::from_slice(raw) else {
                continue;
            };
            if !self.record(record) {
                return false;
            }
        }
        true
    }
}

/// One page's records: parsed, or left as the API sent them (see [`Observer::takes_raw`]).
enum Records {
    Parsed(Vec<Value>),
    Raw(RawPage),
}

impl Records {
    fn is_empty(&self) -> bool {
        match self {
            Records::Parsed(r) => r.is_empty(),
            Records::Raw(r) => r.is_empty(),
        }
    }
}

/// Hands `records` to `obs` in order, yielding now and then so that a request running beside
/// it makes progress. False when `obs` asked to stop.
async fn hand_on(records: &mut Records, obs: &mut dyn Observer, delivered: &mut u64) -> bool {
    let records = match std::mem::replace(records, Records::Parsed(Vec::new())) {
        Records::Parsed(r) => r,
        Records::Raw(page) => {
            let n = page.len() as u64;
            if !obs.raw_page(page) {
                return false;
            }
            *delivered += n;
            return true;
        }
    };
    for (i, r) in records.into_iter().enumerate() {
        if !obs.record(r) {
            return false;
        }
        *delivered += 1;
        if i % 16 == 15 {
            tokio::task::yield_now().await;
        }
    }
    true
}

/// A problem in the source's data that the fetch resolved by a rule rather than failing on.
/// Its fields are Roster's words and the source's identifiers, never a person's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceProblem {
    /// What kind: `duplicate_join_key` (several records of a related stream share the key a
    /// join or lookup matches on; the first in listing order is attached, the others ignored).
    pub kind: &'static str,
    /// The stream whose data has the problem (the related stream of a join or lookup).
    pub stream: String,
    /// The key concerned, as text.
    pub key: String,
    /// Roster's sentence about it, e.g. "3 records of stream `personal` share key 42; the
    /// first in listing order was joined".
    pub detail: String,
}

impl SourceClient {
    /// A client for `source` reading `spec`, with its credentials and settings in `ctx`.
    /// `config_dir` resolves a relative `tls.ca_file`.
    pub fn new(
        source: &str,
        spec: &ProviderSpec,
        ctx: Context,
        config_dir: &Path,
    ) -> Result<SourceClient, FetchError> {
        let err = |kind| FetchError {
            source_name: source.to_string(),
            request: None,
            stream: None,
            page: None,
            sub_request: None,
            kind: Box::new(kind),
            help: None,
        };
        let t = &spec.timeouts;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(
                t.connect
                    .as_ref()
                    .map_or(Duration::from_secs(10), |d| d.get()),
            )
            .read_timeout(t.read.as_ref().map_or(Duration::from_secs(60), |d| d.get()));
        if let Some(tls) = &spec.tls {
            let path = config_dir.join(&tls.ca_file);
            let pem = std::fs::read(&path).map_err(|e| {
                err(FetchErrorKind::Setup(format!(
                    "cannot read CA file {}: {e}",
                    path.display()
                )))
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                err(FetchErrorKind::Setup(format!(
                    "CA file {} is not PEM: {e}",
                    path.display()
                )))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build().map_err(|e| {
            err(FetchErrorKind::Setup(format!(
                "cannot set up the HTTP client: {e}"
            )))
        })?;
        Ok(SourceClient {
            source: source.to_string(),
            redactor: Mutex::new(ctx.redactor()),
            ctx,
            spec: spec.clone(),
            http,
            policy: Policy::from(&spec.retry),
            limiter: Limiter::new(spec.rate_limit.as_ref()),
            token: tokio::sync::Mutex::new(None),
            tokens: None,
        })
    }

    /// Persists rotated OAuth refresh tokens in `store` (required for `oauth2_refresh_token`).
    pub fn with_token_store(mut self, store: TokenStore) -> SourceClient {
        self.tokens = Some(store);
        self
    }

    /// The source's redactor (with tokens learned so far).
    pub fn redactor(&self) -> Redactor {
        self.redactor.lock().expect("redactor lock").clone()
    }

    fn error(&self, request: Option<String>, kind: FetchErrorKind) -> FetchError {
        let help = self.help_for(&kind);
        FetchError {
            source_name: self.source.clone(),
            request,
            stream: None,
            page: None,
            sub_request: None,
            kind: Box::new(kind),
            help,
        }
    }

    fn credential_names(&self) -> String {
        let names: Vec<String> = self
            .spec
            .credentials
            .keys()
            .map(|k| format!("`{k}`"))
            .collect();
        names.join(", ")
    }

    /// Where each credential comes from (its declared description), shown when the HRIS
    /// rejects them.
    fn credential_help(&self) -> String {
        let each: Vec<String> = self
            .spec
            .credentials
            .iter()
            .filter_map(|(k, d)| {
                let d = d
                    .description
                    .as_deref()?
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                Some(format!("`{k}`: {}", d.trim_end_matches('.')))
            })
            .collect();
        if each.is_empty() {
            String::new()
        } else {
            format!(" ({})", each.join("; "))
        }
    }

    fn help_for(&self, kind: &FetchErrorKind) -> Option<String> {
        let creds = self.credential_names();
        let hris = self.spec.title.as_deref().unwrap_or("the HRIS");
        Some(match kind {
            // OAuth's invalid_grant (400) and invalid_client (401): the two need different fixes.
            FetchErrorKind::Login { status: 401 | 400, .. }
                if matches!(self.spec.auth, Auth::Oauth2RefreshToken { .. }) =>
            {
                format!(
                    "invalid credentials: {hris} rejected the OAuth client or the refresh token of source `{}` ({creds}). A wrong client id or secret: fix them and update the secrets this source references. A refresh token that expired or was revoked (the app was disconnected, or unused for too long): have an admin approve the app again and update the secret of the refresh token with the new initial token; Roster then stops using the rotated token it saved",
                    self.source
                )
            }
            FetchErrorKind::Status { status: 401, .. } | FetchErrorKind::Login { status: 401 | 400, .. } => format!(
                "invalid credentials: {hris} rejected {creds} of source `{}`; they were revoked, regenerated or mistyped. Create new ones in {hris}'s admin and update the secrets this source references{}",
                self.source,
                self.credential_help()
            ),
            FetchErrorKind::Status { status: 403, .. } | FetchErrorKind::Login { status: 403, .. } => {
                "the credentials work but lack a scope or attribute permission for this endpoint; grant read access to it in the HRIS admin (some HRIS need a new credential for a wider scope)".into()
            }
            FetchErrorKind::Status { status: 404, .. } => {
                "check `base_url`, the stream's `path` and the source's settings (such as the subdomain)".into()
            }
            FetchErrorKind::Status { status: 429, .. } => {
                "still rate limited after every retry; sync less often or set `rate_limit` in the provider spec".into()
            }
            FetchErrorKind::FetchTimeout { .. } => {
                "nothing was applied; raise `timeouts.fetch` in the provider spec if the HRIS is just slow".into()
            }
            FetchErrorKind::Status { status: 500..=599, .. } | FetchErrorKind::Timeout { .. } => {
                "the HRIS is failing or slow; nothing was applied, and the next sync tries again".into()
            }
            FetchErrorKind::Connect {
                host,
                not_tls: true,
                ..
            } => format!(
                "`{host}` answered the TLS handshake in plain HTTP: `base_url` says https:// but that port serves http://; use `http://` in `base_url` or the port that serves HTTPS"
            ),
            FetchErrorKind::Connect { host, tls: true, .. } => format!(
                "`{host}` presented a certificate this machine does not trust; for a private CA set `tls.ca_file` in the provider spec, otherwise check the host name and the HRIS's certificate"
            ),
            FetchErrorKind::Connect { host, .. } => format!(
                "check that `{host}` is the right host, that DNS resolves it and this machine may reach it; for a private CA set `tls.ca_file` in the provider spec"
            ),
            FetchErrorKind::Truncated { cut: Cut::Empty, .. } => {
                "the HRIS answered with an empty body on every attempt; nothing was applied, and the next sync tries again".into()
            }
            FetchErrorKind::Truncated { .. } => {
                "the HRIS, or a proxy or load balancer in between, closed the response early on every attempt; nothing was applied, and the next sync tries again. If it keeps happening, look for a response size or time limit on the way".into()
            }
            FetchErrorKind::SchemaDrift { .. } => {
                "the API's response shape may have changed; compare a raw page (`roster fetch --show-requests`) with the stream's `records` selector".into()
            }
            FetchErrorKind::Paging { error: PageError::Incomplete { .. }, .. } => {
                "the API delivered fewer records than it reported, so nothing is applied; this is usually transient".into()
            }
            FetchErrorKind::NoToken(_) => "check the auth `token` JSONPath against the login response".into(),
            _ => return None,
        })
    }

    /// Reads every page of `stream_name`, handing records to `obs` as each page arrives.
    pub async fn fetch_stream(
        &self,
        stream_name: &str,
        obs: &mut dyn Observer,
    ) -> Result<Summary, FetchError> {
        self.fetch_stream_since(stream_name, &[], obs).await
    }

    /// [`SourceClient::fetch_stream`] with `since` (an incremental read's cursor parameter)
    /// added to every request of the stream itself; the streams it joins are read whole.
    pub async fn fetch_stream_since(
        &self,
        stream_name: &str,
        since: &[(String, String)],
        obs: &mut dyn Observer,
    ) -> Result<Summary, FetchError> {
        let limit = self
            .spec
            .timeouts
            .fetch
            .as_ref()
            .map_or(Duration::from_secs(30 * 60), |d| d.get());
        match tokio::time::timeout(limit, self.fetch_joined(stream_name, since, obs)).await {
            Ok(result) => result,
            Err(_) => Err(self.error(
                None,
                FetchErrorKind::FetchTimeout {
                    stream: stream_name.to_string(),
                    limit: match limit.as_secs() {
                        0 => format!("{}ms", limit.as_millis()),
                        s if s % 60 == 0 => format!("{}m", s / 60),
                        s => format!("{s}s"),
                    },
                },
            )),
        }
    }

    async fn fetch_joined(
        &self,
        stream_name: &str,
        since: &[(String, String)],
        obs: &mut dyn Observer,
    ) -> Result<Summary, FetchError> {
        let Some(stream) = self.spec.streams.get(stream_name) else {
            return self.fetch_pages(stream_name, &[], false, since, obs).await; // reports the unknown stream
        };
        if stream.join.is_empty() && stream.lookups.is_empty() && stream.subrequests.is_empty() {
            return self.fetch_pages(stream_name, &[], false, since, obs).await;
        }
        // Joins and lookups work alike: read the related stream once, index it by its key
        // (its `id` unless the spec names another path), then attach the matching related
        // record to each main record under `into`. Related streams are read whole (they are
        // departments, offices, or per-person sections like Kenjo's personals), before the
        // main stream, and without joins of their own. When several related records share a
        // key, the first in listing order is attached and the others are ignored: that is
        // the one rule that gives the same answer on every run of an unchanged listing. It is
        // never silent: each shared key is reported once as a `duplicate_join_key` problem
        // (an HRIS that returned every person's section under one key would otherwise give
        // everyone the same personal data without a word).
        let mut links = Vec::new();
        let mut reported: HashSet<(String, String)> = HashSet::new();
        let joins = stream
            .join
            .iter()
            .map(|j| (&j.stream, &j.on, j.key.as_ref(), &j.into, "joined"));
        let lookups = stream.lookups.iter().map(|l| {
            (
                &l.stream,
                &l.key,
                l.matches.as_ref(),
                &l.into,
                "used for the lookup",
            )
        });
        for (target, local_path, key_path, into, verb) in joins.chain(lookups) {
            let related = &self.spec.streams[target];
            let key_path = key_path
                .or(related.id.as_ref())
                .expect("validate requires an id or an explicit key for joined streams")
                .clone();
            let mut index = Index {
                key: key_path,
                records: HashMap::new(),
                shared: IndexMap::new(),
                outer: &mut *obs,
            };
            self.fetch_pages(target.as_str(), &[], false, &[], &mut index)
                .await?;
            let Index {
                records, shared, ..
            } = index;
            for (key, count) in shared {
                if reported.insert((target.to_string(), key.clone())) {
                    obs.problem(SourceProblem {
                        kind: "duplicate_join_key",
                        stream: target.to_string(),
                        detail: format!(
                            "{count} records of stream `{target}` share key `{key}`; the first in listing order was {verb}"
                        ),
                        key,
                    });
                }
            }
            links.push(Link {
                local: local_path.clone(),
                into: into.clone(),
                records,
            });
        }
        self.fetch_pages(stream_name, &links, true, since, obs)
            .await
    }

    /// Reads every page of one stream. With `enrich`, each page's records get the `links`
    /// (joins, then lookups) and the stream's sub-requests before they are handed on.
    async fn fetch_pages(
        &self,
        stream_name: &str,
        links: &[Link],
        enrich: bool,
        since: &[(String, String)],
        obs: &mut dyn Observer,
    ) -> Result<Summary, FetchError> {
        let mut page_no = 0u32;
        self.read_pages(stream_name, links, enrich, since, obs, &mut page_no)
            .await
            .map_err(|e| e.at(stream_name, page_no))
    }

    /// [`SourceClient::fetch_pages`], counting pages in `page_no` so an error can say where
    /// it happened.
    async fn read_pages(
        &self,
        stream_name: &str,
        links: &[Link],
        enrich: bool,
        since: &[(String, String)],
        obs: &mut dyn Observer,
        page_no: &mut u32,
    ) -> Result<Summary, FetchError> {
        let Some((stream_key, stream)) = self.spec.streams.get_key_value(stream_name) else {
            let names: Vec<&str> = self.spec.streams.keys().map(|k| k.as_str()).collect();
            return Err(self.error(
                None,
                FetchErrorKind::Unsupported(format!(
                    "no stream `{stream_name}` (streams: {})",
                    names.join(", ")
                )),
            ));
        };
        let stream_key = stream_key.as_str().to_string();
        let mut pager = Pager::new(stream);
        let mut query = pager.first_query();
        let mut next_url: Option<String> = None;
        let mut delivered = 0u64;
        let overlaps = obs.overlaps();
        // Its pages are parsed on threads of the listing's own, ended with it.
        let parser = overlaps.then(Parser::start).flatten();
        // The records of the page before, handed on while this page is requested and parsed
        // (when the observer overlaps).
        let mut ready = Records::Parsed(Vec::new());
        // Where the records' list is, for an observer that takes them unparsed.
        let raw_at = (obs.takes_raw() && !enrich)
            .then(|| super::paginate::raw_list(stream))
            .flatten();
        let raw_at = raw_at.as_deref();
        // The requests in flight, in listing order: the next page's, and (an overlapping
        // listing whose pages can be predicted, see `Pager::speculate`) the one after it, so
        // the parsing thread has the next page as soon as it is done with one. A guess that
        // `advance` does not confirm is waited for and dropped, and guessing stops (see
        // `finish_in_flight`). Not when each answer hands on the token for the next request
        // (`rotate_header`): those requests must go one after the other.
        let mut guessing = overlaps && parser.is_some() && !enrich && !self.rotates_token();
        let mut window: futures::stream::FuturesOrdered<InFlight<'_>> = Default::default();
        // The paging parameters of the requests in `window`, in the same order.
        let mut queued: std::collections::VecDeque<Vec<(String, String)>> = Default::default();
        // Builds page `page`'s request from paging parameters or a next-page URL.
        let plan_for =
            |params: &[(String, String)], url: Option<&str>| -> Result<Plan, FetchError> {
                // An incremental cursor goes in the query of every page; a next-page URL from the
                // server carries it already.
                let since: &[(String, String)] = if url.is_some() { &[] } else { since };
                let mut plan = match stream.pagination.params_in() {
                    ParamsIn::Query => {
                        let params: Vec<(String, String)> =
                            params.iter().chain(since).cloned().collect();
                        Plan::build(&self.spec, &stream.request, &self.ctx, &params)
                    }
                    ParamsIn::Body => Plan::build(&self.spec, &stream.request, &self.ctx, since)
                        .and_then(|mut p| {
                            p.set_body_fields(&body_fields(&stream.pagination, params))
                                .map(|()| p)
                        }),
                }
                .map_err(|e| self.error(None, e.into()))?;
                if let Some(u) = url {
                    plan.url = plan
                        .url
                        .join(u)
                        .map_err(|_| self.error(None, RenderError::BadUrl(u.to_string()).into()))?;
                }
                Ok(plan)
            };
        let parser = parser.as_ref();
        let request = |plan: Plan, page: u32| -> InFlight<'_> {
            Box::pin(async move {
                let mut reports = Reports(Vec::new());
                let sent = self.send(plan, page, &mut reports, parser, raw_at).await;
                (sent, reports)
            })
        };
        loop {
            *page_no += 1;
            let page_no = *page_no;
            let guess = if guessing { pager.speculate(1) } else { None };
            let (sent, go_on) = if window.is_empty() && ready.is_empty() && guess.is_none() {
                // Nothing to overlap with (a first page, or an observer that takes records as
                // they come): the request's reports reach the observer as they happen, retries
                // included (`roster fetch --show-requests`).
                let plan = plan_for(&query, next_url.as_deref())?;
                (self.send(plan, page_no, obs, parser, raw_at).await, true)
            } else {
                if window.is_empty() {
                    let plan = plan_for(&query, next_url.as_deref())?;
                    window.push_back(request(plan, page_no));
                    queued.push_back(query.clone());
                }
                // The page after this one, guessed while this one is read.
                if let Some(params) = guess.filter(|_| window.len() < 2) {
                    let plan = plan_for(&params, None)?;
                    window.push_back(request(plan, page_no + 1));
                    queued.push_back(params);
                }
                let (item, go_on) = {
                    use futures::StreamExt as _;
                    tokio::join!(window.next(), hand_on(&mut ready, obs, &mut delivered))
                };
                let Some((sent, held)) = item else {
                    unreachable!("a request was queued above");
                };
                queued.pop_front();
                // Its request reports are passed on after the page before's records.
                held.pass_on(obs);
                (sent, go_on)
            };
            if !go_on {
                return Ok(Summary {
                    pages: page_no,
                    records: delivered,
                    reported: None,
                });
            }
            let (described, headers, (body, raw)) = match sent {
                Ok(page) => page,
                Err(e) => {
                    finish_in_flight(&mut window, obs).await;
                    return Err(e);
                }
            };
            let count = match &raw {
                Some(raw) => raw.len(),
                None => stream.records.select(&body).len(),
            };
            if count == 0 && page_no == 1 && has_content(&body) {
                return Err(self.error(
                    Some(described),
                    FetchErrorKind::SchemaDrift {
                        page: page_no,
                        selector: stream.records.as_str().to_string(),
                    },
                ));
            }
            // Paging reads the body (totals, cursors), so it decides first; then the records
            // are moved out of the body rather than copied.
            let link = headers.get("link").and_then(|v| v.to_str().ok());
            let next = match pager.advance(Page {
                body: &body,
                records: count,
                link,
            }) {
                Ok(next) => next,
                Err(e) => {
                    finish_in_flight(&mut window, obs).await;
                    return Err(self.paging_error(&stream_key, e));
                }
            };
            if page_no == 1
                && let Some(total) = pager.reported()
            {
                obs.expect(total);
            }
            let mut records = match raw {
                Some(raw) => Records::Raw(raw),
                None => {
                    let mut body = body;
                    Records::Parsed(stream.records.take_all(&mut body))
                }
            };
            if let (true, Records::Parsed(records)) = (enrich, &mut records) {
                for r in records.iter_mut() {
                    attach_links(links, r);
                }
                self.run_subrequests(stream, records, obs).await?;
            }
            if overlaps {
                ready = records;
            } else if !hand_on(&mut records, obs, &mut delivered).await {
                // A test read that asked for fewer records: no completeness check.
                return Ok(Summary {
                    pages: page_no,
                    records: delivered,
                    reported: None,
                });
            }
            match next {
                Next::Done => break,
                Next::Params(q) => {
                    query = q;
                    next_url = None;
                }
                Next::Url(u) => next_url = Some(u),
            }
            // A request in flight is the next page only if it asked for exactly this.
            let guessed = next_url.is_none() && queued.front() == Some(&query);
            if !window.is_empty() && !guessed {
                finish_in_flight(&mut window, obs).await;
                queued.clear();
                guessing = false;
            }
        }
        finish_in_flight(&mut window, obs).await;
        if !hand_on(&mut ready, obs, &mut delivered).await {
            return Ok(Summary {
                pages: *page_no,
                records: delivered,
                reported: None,
            });
        }
        pager
            .finish()
            .map_err(|e| self.paging_error(&stream_key, e))
    }

    /// Runs each sub-request once per record of a page, at most `concurrency` at a time, and
    /// stores the selected records (a list) under `into`. An `optional` sub-request that fails
    /// leaves `null`; any other failure fails the fetch.
    async fn run_subrequests(
        &self,
        stream: &Stream,
        records: &mut [Value],
        obs: &mut dyn Observer,
    ) -> Result<(), FetchError> {
        use futures::StreamExt as _;
        for sub in &stream.subrequests {
            let results: Vec<_> =
                futures::stream::iter(records.iter().map(|r| self.subrequest(sub, r)))
                    .buffered(sub.concurrency.max(1) as usize)
                    .collect()
                    .await;
            for (record, result) in records.iter_mut().zip(results) {
                let value = match result {
                    Ok((list, reports)) => {
                        reports.pass_on(obs);
                        list
                    }
                    Err(_) if sub.optional => Value::Null,
                    Err(e) => return Err(e.in_sub_request(&sub.into)),
                };
                if let Some(obj) = record.as_object_mut() {
                    obj.insert(sub.into.clone(), value);
                }
            }
        }
        Ok(())
    }

    /// One sub-request for one record; returns the selected records and the request reports.
    async fn subrequest(
        &self,
        sub: &SubRequest,
        record: &Value,
    ) -> Result<(Value, Reports), FetchError> {
        let vars: BTreeMap<String, String> = sub
            .vars
            .iter()
            .map(|(k, p)| {
                (
                    k.clone(),
                    p.first(record).and_then(key_text).unwrap_or_default(),
                )
            })
            .collect();
        let ctx = self.ctx.with_vars(&vars);
        let plan = Plan::build(&self.spec, &sub.request, &ctx, &[])
            .map_err(|e| self.error(None, e.into()))?;
        let mut reports = Reports(Vec::new());
        let (_, _, (body, _)) = self.send(plan, 1, &mut reports, None, None).await?;
        let list = Value::Array(sub.records.select(&body).into_iter().cloned().collect());
        Ok((list, reports))
    }

    fn paging_error(&self, stream: &str, mut error: PageError) -> FetchError {
        // A repeated next link is the server's text and may carry a token in its query.
        if let PageError::Repeated { value, .. } = &mut error {
            let masked = self.redactor().redact(value);
            *value = if masked.chars().count() > EXCERPT_CHARS {
                masked.chars().take(EXCERPT_CHARS).chain(['…']).collect()
            } else {
                masked
            };
        }
        self.error(
            None,
            FetchErrorKind::Paging {
                stream: stream.to_string(),
                error,
            },
        )
    }

    /// Counts a response for `/metrics` (a no-op unless the daemon installed a recorder).
    fn count(&self, status: u16) {
        metrics::counter!(
            "roster_provider_requests_total",
            "source" => self.source.clone(),
            "status" => status.to_string()
        )
        .increment(1);
    }

    /// Sends one request with auth, retries and one re-login on 401, and parses its JSON body
    /// (`page` names it in errors), leaving the list at `raw_at` unparsed (see
    /// [`parse_page`]). A response that ends early (cut mid-transfer, JSON that stops in the
    /// middle, an empty body) is retried like a reset connection, with the same attempts and
    /// backoff: one glitch must not fail a sync.
    async fn send(
        &self,
        plan: Plan,
        page: u32,
        obs: &mut dyn Observer,
        parser: Option<&Parser>,
        raw_at: Option<&[String]>,
    ) -> Result<(String, reqwest::header::HeaderMap, Parsed), FetchError> {
        let mut relogged = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let authed = self.authorize(plan.clone(), obs).await?;
            let described = authed.describe(&self.redactor());
            let host = authed.url.host_str().unwrap_or_default().to_string();
            self.pace().await;
            let resp = match self.request(&authed).send().await {
                Ok(resp) => resp,
                Err(e) => {
                    obs.request(&described, 0);
                    let (failure, kind) = if e.is_timeout() {
                        (Failure::Timeout, FetchErrorKind::Timeout { host })
                    } else {
                        (Failure::Connection, self.connect_error(host, e))
                    };
                    // A port that speaks plain HTTP answers every attempt alike.
                    if matches!(kind, FetchErrorKind::Connect { not_tls: true, .. }) {
                        return Err(self.error(Some(described), kind));
                    }
                    self.retry_or_fail(attempt, failure, described, kind)
                        .await?;
                    continue;
                }
            };
            let status = resp.status().as_u16();
            obs.request(&described, status);
            self.count(status);
            self.note_rotated_token(resp.headers()).await;
            if status == 401 && self.token_based() && !relogged {
                relogged = true;
                attempt -= 1;
                *self.token.lock().await = None;
                continue;
            }
            if !resp.status().is_success() {
                let headers = resp.headers().clone();
                let lookup = move |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let decision = self.policy.decide(
                    attempt,
                    Failure::Status(status, &lookup),
                    jiff::Timestamp::now(),
                );
                match decision {
                    Decision::RetryAfter(d) => tokio::time::sleep(d).await,
                    Decision::GiveUp => {
                        let detail = self.excerpt_of(resp).await;
                        return Err(
                            self.error(Some(described), FetchErrorKind::Status { status, detail })
                        );
                    }
                }
                continue;
            }
            let headers = resp.headers().clone();
            let expected = resp.content_length();
            let (failure, kind) = match read_body(resp, usize::MAX).await {
                Ok(bytes) => match parse(parser, bytes, page, raw_at).await {
                    Ok(body) => return Ok((described, headers, body)),
                    Err(kind @ FetchErrorKind::Truncated { .. }) => (Failure::Connection, kind),
                    Err(kind) => return Err(self.error(Some(described), kind)),
                },
                Err(cut) if cut.timeout => (Failure::Timeout, FetchErrorKind::Timeout { host }),
                Err(cut) => (
                    Failure::Connection,
                    FetchErrorKind::Truncated {
                        page,
                        received: cut.received,
                        expected,
                        cut: Cut::MidTransfer,
                    },
                ),
            };
            self.retry_or_fail(attempt, failure, described, kind)
                .await?;
        }
    }

    /// After a failed attempt: waits as the retry policy says, or fails with `kind`.
    async fn retry_or_fail(
        &self,
        attempt: u32,
        failure: Failure<'_>,
        described: String,
        kind: FetchErrorKind,
    ) -> Result<(), FetchError> {
        match self.policy.decide(attempt, failure, jiff::Timestamp::now()) {
            Decision::RetryAfter(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Decision::GiveUp => Err(self.error(Some(described), kind)),
        }
    }

    /// A request that got no response: DNS, TCP or TLS. The URL is left out of the reason
    /// (the request description names it, secrets masked).
    fn connect_error(&self, host: String, e: reqwest::Error) -> FetchErrorKind {
        let reason = self.redactor().redact(&error_chain(&e.without_url()));
        // reqwest does not type TLS failures; rustls's messages name the certificate or TLS.
        let lower = reason.to_ascii_lowercase();
        // rustls reads an HTTP answer to its ClientHello as a record of an unknown type.
        let not_tls = [
            "invalidcontenttype",
            "corrupt message",
            "wrong version number",
        ]
        .iter()
        .any(|w| lower.contains(w));
        let tls = not_tls
            || ["certificate", "tls", "handshake"]
                .iter()
                .any(|w| lower.contains(w));
        FetchErrorKind::Connect {
            host,
            reason,
            tls,
            not_tls,
        }
    }

    fn request(&self, plan: &Plan) -> reqwest::RequestBuilder {
        let method = match plan.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
        };
        let mut rb = self.http.request(method, plan.url.clone());
        for (k, v) in &plan.headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        // reqwest appends headers: a Content-Type from the spec plus ours would go out twice,
        // which a server reads as `application/json, application/json` (BambooHR then parses
        // the body as XML). The spec's own Content-Type wins.
        let typed = plan
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        let (content_type, body) = match &plan.body {
            Some(PlannedBody::Json(v)) => ("application/json", v.to_string()),
            Some(PlannedBody::Form(f)) => (
                "application/x-www-form-urlencoded",
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(f)
                    .finish(),
            ),
            None => return rb,
        };
        if !typed {
            rb = rb.header("content-type", content_type);
        }
        rb.body(body)
    }

    /// Waits for the rate limiter, if the provider declares a rate.
    async fn pace(&self) {
        if let Some(l) = &self.limiter {
            l.acquire().await;
        }
    }

    /// True when each answer hands on the token for the next request (`rotate_header`).
    fn rotates_token(&self) -> bool {
        matches!(
            &self.spec.auth,
            Auth::TokenExchange {
                rotate_header: Some(_),
                ..
            }
        )
    }

    fn token_based(&self) -> bool {
        matches!(
            self.spec.auth,
            Auth::TokenExchange { .. }
                | Auth::Oauth2ClientCredentials { .. }
                | Auth::Oauth2RefreshToken { .. }
        )
    }

    /// Adds the token header for token-based auth, logging in first when there is no token.
    async fn authorize(&self, plan: Plan, obs: &mut dyn Observer) -> Result<Plan, FetchError> {
        let (header, prefix) = match &self.spec.auth {
            Auth::TokenExchange { header, prefix, .. } => (header.as_str(), prefix.as_str()),
            Auth::Oauth2ClientCredentials { .. } => ("Authorization", "Bearer "),
            Auth::Oauth2RefreshToken { .. } => ("Authorization", "Bearer "),
            _ => return Ok(plan),
        };
        let mut token = self.token.lock().await;
        // Renew a little early, so a token does not expire between here and the server.
        let stale = token.as_ref().is_none_or(|t| {
            t.expires_at
                .is_some_and(|at| at <= tokio::time::Instant::now() + Duration::from_secs(30))
        });
        if stale {
            let (value, lifetime) = self.login(obs).await?;
            self.redactor
                .lock()
                .expect("redactor lock")
                .add_rotating(&value);
            *token = Some(Token {
                value,
                expires_at: lifetime.map(|l| tokio::time::Instant::now() + l),
            });
        }
        let value = token.as_ref().map(|t| t.value.as_str()).unwrap_or_default();
        Ok(plan.with_token(header, prefix, value))
    }

    async fn note_rotated_token(&self, headers: &reqwest::header::HeaderMap) {
        if let Auth::TokenExchange {
            rotate_header: Some(name),
            prefix,
            ..
        } = &self.spec.auth
            && let Some(v) = headers.get(name.as_str()).and_then(|v| v.to_str().ok())
        {
            // Keep the bare token; the prefix is added (once) when it is sent.
            let bare = strip_prefix_ci(v.trim(), prefix).to_string();
            if !bare.is_empty() {
                self.redactor
                    .lock()
                    .expect("redactor lock")
                    .add_rotating(&bare);
                let mut token = self.token.lock().await;
                match token.as_mut() {
                    Some(t) => t.value = bare,
                    None => {
                        *token = Some(Token {
                            value: bare,
                            expires_at: None,
                        })
                    }
                }
            }
        }
    }

    /// Gets a token: the login request, or the OAuth token endpoint. Returns the bare token
    /// and its lifetime when known. For `oauth2_refresh_token`, a rotated refresh token is
    /// persisted before the access token is returned.
    async fn login(
        &self,
        obs: &mut dyn Observer,
    ) -> Result<(String, Option<Duration>), FetchError> {
        let render = |t: &crate::config::value::Template| {
            self.ctx
                .render(t)
                .map(|r| r.0)
                .map_err(|e| self.error(None, e.into()))
        };
        // The refresh token sent, and the credential its rotations started from.
        let mut refresh_in_use: Option<(String, String)> = None;
        let (plan, token_path) = match &self.spec.auth {
            Auth::TokenExchange { request, token, .. } => (
                Plan::build_unauthenticated(&self.spec, request, &self.ctx)
                    .map_err(|e| self.error(None, e.into()))?,
                token.as_str().to_string(),
            ),
            Auth::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
                client_auth,
            } => {
                let grant = vec![("grant_type".to_string(), "client_credentials".to_string())];
                let plan = self.oauth_plan(
                    &render(token_url.template())?,
                    grant,
                    scopes,
                    *client_auth,
                    &render(client_id)?,
                    &render(client_secret)?,
                )?;
                (plan, "$.access_token".to_string())
            }
            Auth::Oauth2RefreshToken {
                token_url,
                client_id,
                client_secret,
                refresh_token,
                scopes,
                client_auth,
            } => {
                let store = self.tokens.as_ref().ok_or_else(|| {
                    self.error(
                        None,
                        FetchErrorKind::Unsupported(
                            "auth kind `oauth2_refresh_token` needs a state directory to keep the rotated refresh token".into(),
                        ),
                    )
                })?;
                // A token persisted by an earlier run wins: the one in the credentials was
                // invalidated when the provider rotated it. Unless the credential changed
                // since (a new approval): then the saved token is stale.
                let initial = render(refresh_token)?;
                let current = match store.load(&initial) {
                    Ok(Some(t)) => t.expose().to_string(),
                    Ok(None) => initial.clone(),
                    Err(e) => {
                        return Err(self.error(
                            None,
                            FetchErrorKind::Setup(format!(
                                "cannot read the saved refresh token {}: {e}",
                                store.path().display()
                            )),
                        ));
                    }
                };
                self.redactor
                    .lock()
                    .expect("redactor lock")
                    .add_rotating(&current);
                let grant = vec![
                    ("grant_type".to_string(), "refresh_token".to_string()),
                    ("refresh_token".to_string(), current.clone()),
                ];
                refresh_in_use = Some((current, initial));
                let plan = self.oauth_plan(
                    &render(token_url.template())?,
                    grant,
                    scopes,
                    *client_auth,
                    &render(client_id)?,
                    &render(client_secret)?,
                )?;
                (plan, "$.access_token".to_string())
            }
            _ => unreachable!("login is only called for token-based auth"),
        };
        let described = plan.describe(&self.redactor());
        self.pace().await;
        let resp = self.request(&plan).send().await.map_err(|e| {
            let host = plan.url.host_str().unwrap_or_default().to_string();
            let kind = if e.is_timeout() {
                FetchErrorKind::Timeout { host }
            } else {
                self.connect_error(host, e)
            };
            self.error(Some(described.clone()), kind)
        })?;
        let status = resp.status().as_u16();
        obs.request(&described, status);
        self.count(status);
        if !resp.status().is_success() {
            let detail = self.excerpt_of(resp).await;
            return Err(self.error(Some(described), FetchErrorKind::Login { status, detail }));
        }
        let expected = resp.content_length();
        let body = match read_body(resp, usize::MAX).await {
            Ok(bytes) => parse_json(bytes, 0, None).map(|(body, _)| body),
            Err(cut) => Err(FetchErrorKind::Truncated {
                page: 0,
                received: cut.received,
                expected,
                cut: Cut::MidTransfer,
            }),
        }
        .map_err(|kind| self.error(Some(described.clone()), kind))?;
        let path = JsonPath::parse(&token_path).expect("validated JSONPath");
        let token = match path.first(&body) {
            Some(Value::String(t)) if !t.is_empty() => t,
            _ => return Err(self.error(Some(described), FetchErrorKind::NoToken(token_path))),
        };
        if let (Some((current, initial)), Some(store)) = (&refresh_in_use, &self.tokens)
            && let Some(Value::String(rotated)) = body.get("refresh_token")
            && !rotated.is_empty()
            && rotated != current
        {
            self.redactor
                .lock()
                .expect("redactor lock")
                .add_rotating(rotated);
            // Saved before the access token is used: the old refresh token is already dead.
            store.save(rotated, initial).map_err(|e| {
                self.error(
                    Some(described.clone()),
                    FetchErrorKind::Setup(format!(
                        "cannot save the rotated refresh token to {}: {e}; the new access token is not used, so the next run can still refresh",
                        store.path().display()
                    )),
                )
            })?;
        }
        let (prefix, lifetime) = match &self.spec.auth {
            Auth::TokenExchange {
                prefix,
                expires_in,
                ttl,
                ..
            } => (
                prefix.as_str(),
                expires_in
                    .as_ref()
                    .and_then(|p| p.first(&body))
                    .and_then(seconds)
                    .or_else(|| ttl.as_ref().map(|t| t.get())),
            ),
            _ => ("Bearer ", body.get("expires_in").and_then(seconds)),
        };
        Ok((strip_prefix_ci(token, prefix).to_string(), lifetime))
    }

    /// A request to an OAuth token endpoint with the client's credentials in the body or as
    /// basic auth.
    fn oauth_plan(
        &self,
        url: &str,
        mut form: Vec<(String, String)>,
        scopes: &[String],
        client_auth: ClientAuth,
        id: &str,
        secret: &str,
    ) -> Result<Plan, FetchError> {
        if !scopes.is_empty() {
            form.push(("scope".into(), scopes.join(" ")));
        }
        if client_auth == ClientAuth::Body {
            form.push(("client_id".into(), id.to_string()));
            form.push(("client_secret".into(), secret.to_string()));
        }
        let mut plan = Plan::post_form(url, form).map_err(|e| self.error(None, e.into()))?;
        if client_auth == ClientAuth::Basic {
            plan.set_basic(id, secret);
        }
        Ok(plan)
    }

    /// At most [`EXCERPT_CHARS`] characters of an error response's body, secrets masked, with
    /// a leading `: ` (nothing for an empty body). For logs and the terminal only.
    async fn excerpt_of(&self, resp: reqwest::Response) -> String {
        // A body that breaks off still has a readable start; what arrived is enough.
        let bytes = match read_body(resp, ERROR_BODY_LIMIT).await {
            Ok(b) => b,
            Err(cut) => cut.bytes,
        };
        self.excerpt(&String::from_utf8_lossy(&bytes))
    }

    /// [`SourceClient::excerpt_of`] for text at hand. The whole text is masked before it is
    /// cut, so a secret that straddles the cut cannot leave its first half behind.
    fn excerpt(&self, text: &str) -> String {
        let t = self.redactor().redact(text.trim());
        if t.is_empty() {
            return String::new();
        }
        let cut: String = t.chars().take(EXCERPT_CHARS).collect();
        let more = if cut.len() < t.len() { "…" } else { "" };
        format!(": {cut}{more}")
    }
}

/// The longest excerpt of an error body shown in a log line.
const EXCERPT_CHARS: usize = 200;

/// How much of an error response's body is read for its excerpt: enough for any error
/// message, and a proxy's multi-megabyte HTML page is not held in memory for 200 characters.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// A body that stopped arriving before its end.
struct BodyCut {
    /// What arrived.
    bytes: Vec<u8>,
    /// How many bytes that is.
    received: u64,
    /// A read timeout stopped it (the server went quiet), not the connection closing.
    timeout: bool,
}

/// Reads a body, at most `limit` bytes of it. Chunk by chunk, so a body cut mid-transfer
/// still says how much arrived.
async fn read_body(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyCut> {
    // Capacity from Content-Length, capped: a server's number is not a reason to allocate.
    let hint = resp.content_length().unwrap_or(0).min(16 << 20) as usize;
    let mut bytes = Vec::with_capacity(hint.min(limit));
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - bytes.len();
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if bytes.len() >= limit {
                    return Ok(bytes);
                }
            }
            Ok(None) => return Ok(bytes),
            Err(e) => {
                return Err(BodyCut {
                    received: bytes.len() as u64,
                    bytes,
                    timeout: e.is_timeout(),
                });
            }
        }
    }
}

/// A body to parse, its page number, and where the result goes.
type ParseJob = (
    Vec<u8>,
    u32,
    Option<Vec<String>>,
    tokio::sync::oneshot::Sender<Result<Parsed, FetchErrorKind>>,
);

/// A page's body, and its records unparsed when they were asked for so (see [`parse_page`]).
type Parsed = (Value, Option<RawPage>);

/// The thread that parses an overlapping listing's pages (see [`Observer::overlaps`]), so the
/// thread that fetches can go on staging the records of the page before. One thread per
/// listing, ended with it: the records it parses are freed on the mapping thread, and the
/// allocator gives such memory back only when the thread that allocated it runs again or
/// ends. Tokio's pooled blocking threads, idle after the listing, kept about 10 MB through a
/// sync's merge.
struct Parser {
    jobs: Option<std::sync::mpsc::Sender<ParseJob>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

/// Threads that parse a listing's pages: with two requests in flight (see `read_pages`), two
/// bodies can be parsed at once.
const PARSE_THREADS: usize = 2;

impl Parser {
    /// None when no thread can be started (pages are then parsed where they arrive).
    fn start() -> Option<Parser> {
        let (jobs, rx) = std::sync::mpsc::channel::<ParseJob>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        let mut workers = Vec::new();
        for _ in 0..PARSE_THREADS {
            let rx = rx.clone();
            let worker = std::thread::Builder::new()
                .name("roster-parse".into())
                .spawn(move || {
                    loop {
                        // One job at a time; the lock is released while it is parsed.
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((bytes, page, raw_at, reply)) = job else {
                            return;
                        };
                        let _ = reply.send(parse_json(bytes, page, raw_at.as_deref()));
                    }
                });
            match worker {
                Ok(w) => workers.push(w),
                Err(_) if !workers.is_empty() => break,
                Err(_) => return None,
            }
        }
        Some(Parser {
            jobs: Some(jobs),
            workers,
        })
    }
}

impl Drop for Parser {
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// [`parse_json`] on the listing's parser thread when there is one and the body is large.
async fn parse(
    parser: Option<&Parser>,
    bytes: Vec<u8>,
    page: u32,
    raw_at: Option<&[String]>,
) -> Result<Parsed, FetchErrorKind> {
    let Some(jobs) = parser.and_then(|p| p.jobs.as_ref()) else {
        return parse_json(bytes, page, raw_at);
    };
    if bytes.len() < 16 * 1024 {
        return parse_json(bytes, page, raw_at);
    }
    let (reply, result) = tokio::sync::oneshot::channel();
    match jobs.send((bytes, page, raw_at.map(<[String]>::to_vec), reply)) {
        Ok(()) => result.await.unwrap_or_else(|_| {
            Err(FetchErrorKind::Json {
                page,
                reason: "the JSON parser thread stopped".into(),
            })
        }),
        Err(std::sync::mpsc::SendError((bytes, page, _, _))) => parse_json(bytes, page, raw_at),
    }
}

/// A success response's body as JSON, with the list at `raw_at` left unparsed (see
/// [`parse_page`]). A body that is empty, or whose JSON stops in the middle, is
/// [`FetchErrorKind::Truncated`] (retried); other bad JSON is [`FetchErrorKind::Json`].
fn parse_json(
    bytes: Vec<u8>,
    page: u32,
    raw_at: Option<&[String]>,
) -> Result<Parsed, FetchErrorKind> {
    let received = bytes.len() as u64;
    let truncated = |cut| FetchErrorKind::Truncated {
        page,
        received,
        expected: None,
        cut,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(truncated(Cut::Empty));
    }
    let parsed = match raw_at {
        Some(list) => parse_page(bytes, list),
        None => serde_json::from_slice(&bytes).map(|body| (body, None)),
    };
    parsed.map_err(|e| {
        if e.is_eof() {
            truncated(Cut::IncompleteJson)
        } else {
            FetchErrorKind::Json {
                page,
                reason: e.to_string(),
            }
        }
    })
}

/// A token and when it stops working, if known.
#[derive(Debug)]
struct Token {
    value: String,
    expires_at: Option<tokio::time::Instant>,
}

/// A lifetime in seconds (a number, or a string of digits).
fn seconds(v: &Value) -> Option<Duration> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .map(Duration::from_secs)
}

/// Collects a related stream's records by key, passing request reports on.
struct Index<'o> {
    key: JsonPath,
    /// The first record of each key, in listing order.
    records: HashMap<String, Value>,
    /// How many records share each key that more than one has, in the order the second
    /// such record arrived (a stable order for the problems reported).
    shared: IndexMap<String, u32>,
    outer: &'o mut dyn Observer,
}

impl Observer for Index<'_> {
    fn request(&mut self, described: &str, status: u16) {
        self.outer.request(described, status);
    }

    fn record(&mut self, record: Value) -> bool {
        if let Some(k) = self.key.first(&record).and_then(key_text) {
            match self.records.entry(k) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(record);
                }
                std::collections::hash_map::Entry::Occupied(first) => {
                    *self.shared.entry(first.key().clone()).or_insert(1) += 1;
                }
            }
        }
        true
    }

    fn problem(&mut self, problem: SourceProblem) {
        self.outer.problem(problem);
    }
}

/// One join or lookup, ready to apply.
struct Link {
    local: JsonPath,
    into: String,
    records: HashMap<String, Value>,
}

/// Attaches to `record` the related record of each link whose key matches.
fn attach_links(links: &[Link], record: &mut Value) {
    for link in links {
        let related = link
            .local
            .first(record)
            .and_then(key_text)
            .and_then(|k| link.records.get(&k))
            .cloned();
        if let (Some(related), Some(obj)) = (related, record.as_object_mut()) {
            obj.insert(link.into.clone(), related);
        }
    }
}

/// Waits for the requests in flight that turned out not to be needed (a wrong guess, or the
/// listing failed), and drops their pages. They are not cancelled: one may be logging in, and
/// a refresh token the server rotated but whose answer was never read would be lost.
async fn finish_in_flight(
    window: &mut futures::stream::FuturesOrdered<InFlight<'_>>,
    obs: &mut dyn Observer,
) {
    use futures::StreamExt as _;
    while let Some((_, reports)) = window.next().await {
        reports.pass_on(obs);
    }
}

/// One page's request in flight: the response (described, headers, parsed body) and the
/// request reports it made.
type InFlight<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = (
                    Result<(String, reqwest::header::HeaderMap, Parsed), FetchError>,
                    Reports,
                ),
            > + 'a,
    >,
>;

/// Collects the request reports of a request made beside other work (a sub-request, the next
/// page of an overlapping listing), to pass on in order afterwards.
struct Reports(Vec<(String, u16)>);

impl Reports {
    fn pass_on(self, obs: &mut dyn Observer) {
        for (described, status) in self.0 {
            obs.request(&described, status);
        }
    }
}

impl Observer for Reports {
    fn request(&mut self, described: &str, status: u16) {
        self.0.push((described.to_string(), status));
    }

    fn record(&mut self, _record: Value) -> bool {
        true
    }
}

/// A key as text: `"42"` and `42` match each other; anything else is no key.
fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn strip_prefix_ci<'a>(token: &'a str, prefix: &str) -> &'a str {
    let p = prefix.trim_end();
    if !p.is_empty() && token.len() > p.len() && token[..p.len()].eq_ignore_ascii_case(p) {
        token[p.len()..].trim_start()
    } else {
        token
    }
}

/// True for a body with something in it other than empty lists (an empty page is not drift).
fn has_content(v: &Value) -> bool {
    match v {
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => {
            !o.is_empty()
                && !o
                    .values()
                    .any(|v| matches!(v, Value::Array(a) if a.is_empty()))
        }
        _ => false,
    }
}

/// An error and its causes, joined: "error sending request: dns error: failed to lookup".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}
