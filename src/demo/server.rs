//! The fake HRIS: Personio's API v1 and Merge's unified HRIS API on one loopback port, serving
//! a [`Dataset`] the way each vendor documents it (see `providers/personio.yaml` and
//! `providers/merge.yaml` for the quirks, and ../shared/provider-specs for the sources).
//!
//! | path | what |
//! |---|---|
//! | `POST /personio/v1/auth` | JSON or form body `client_id` + `client_secret`; `{success, data: {token, expires_in, scope}}`; wrong ones: 401 `{success: false, error: {code, message}}` |
//! | `GET /personio/v1/company/employees` | `Authorization: Bearer <token>`; `limit` (default 50, capped at 100 like the live API), `offset` in records; `{success, metadata: {total_elements, current_page, total_pages}, offset, limit, data}`. Every response (errors included) carries the next token in its `authorization` header, and each token works once: the old single-use behaviour, the strictest the engine must follow |
//! | `GET /merge/api/hris/v1/employees` | `Authorization: Bearer <API key>` and `X-Account-Token`; `page_size` (default and maximum 100), `cursor` (opaque base64, from `next`), `expand` (comma-separated; fields not listed come back as UUIDs), `modified_after` / `modified_before` (RFC 3339, against `modified_at`), `employment_status`; `{next, previous, results}` |
//!
//! Anything else is a 404 in the vendor's error shape.
//!
//! The server keeps each record as its JSON text ([`CompactDataset`]), about a tenth of the
//! memory of `serde_json::Value`s, and a page is those texts joined, read from an `Arc`
//! snapshot: it costs time proportional to its own size whatever the listing's, so 100,000
//! records serve as fast per page as 100. (Merge records are re-serialized only when the
//! request leaves out an `expand` that the stored record has expanded.)

use std::collections::{HashSet, VecDeque};
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

use super::data::{Dataset, MergeMeta, Sink, build};
use super::wire;

/// The demo Personio credential's client id (not secret in Personio either).
pub const PERSONIO_CLIENT_ID: &str = "papi-demo-3f9c1a2e-client";
/// The demo Personio credential's client secret.
pub const PERSONIO_CLIENT_SECRET: &str = "papi-demo-secret-7Q2vK9xR4mT8wL1z";
/// The demo Merge API key.
pub const MERGE_API_KEY: &str = "merge-demo-key-Jd83kQp2ZxV7rN5s";
/// The demo Merge linked account's account token.
pub const MERGE_ACCOUNT_TOKEN: &str = "merge-demo-account-Hc4tY8wE1uB6mA3q";

/// Where the fake Personio lives under the server's address (its `base_url` path).
pub const PERSONIO_PATH: &str = "/personio/v1";
/// Where the fake Merge lives under the server's address (its `base_url` path).
pub const MERGE_PATH: &str = "/merge/api/hris/v1";

/// Personio's `limit` when the request has none, and its cap (live API since 2025-01-31).
const PERSONIO_DEFAULT_LIMIT: usize = 50;
const PERSONIO_MAX_LIMIT: usize = 100;
/// Merge's page size when the request has none, and its maximum.
const MERGE_MAX_PAGE: usize = 100;
/// Fields of Merge's Employee that `expand` turns from UUIDs into objects
/// (`x-merge-expands` in the spec).
const MERGE_EXPANDABLE: &[&str] = &[
    "company",
    "employments",
    "groups",
    "home_location",
    "manager",
    "pay_group",
    "team",
    "work_location",
];
/// Unused tokens kept before the oldest are forgotten (a client that logs in many times).
const MAX_LIVE_TOKENS: usize = 4096;

/// Personio's base URL for a fake at `addr`.
pub fn personio_base_url(addr: SocketAddr) -> String {
    format!("http://{addr}{PERSONIO_PATH}")
}

/// Merge's base URL for a fake at `addr`.
pub fn merge_base_url(addr: SocketAddr) -> String {
    format!("http://{addr}{MERGE_PATH}")
}

/// A dataset as the fake keeps it: every record as its JSON text (about a tenth of the memory
/// of a [`Dataset`]: 100,000 Personio records take some 340 MB instead of 4 GB). For the
/// benchmarks; tests use [`Dataset`] and convert.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompactDataset {
    personio: Vec<Box<str>>,
    merge: Vec<MergeRow>,
}

/// One Merge record, with what the filters and `expand` need read out once.
#[derive(Debug, Clone, PartialEq)]
struct MergeRow {
    json: Box<str>,
    modified_at: Option<jiff::Timestamp>,
    status: Option<Box<str>>,
    /// Bit `i` is set when `MERGE_EXPANDABLE[i]` holds an object (or a list with one).
    expanded: u8,
}

impl MergeRow {
    fn new(record: &Value) -> MergeRow {
        let mut expanded = 0u8;
        for (i, f) in MERGE_EXPANDABLE.iter().enumerate() {
            if record.get(*f).is_some_and(holds_object) {
                expanded |= 1 << i;
            }
        }
        MergeRow {
            json: record.to_string().into_boxed_str(),
            modified_at: record
                .get("modified_at")
                .and_then(Value::as_str)
                .and_then(timestamp),
            status: record
                .get("employment_status")
                .and_then(Value::as_str)
                .map(Into::into),
            expanded,
        }
    }
}

impl CompactDataset {
    /// The company of [`Dataset::generate`] (same arguments, same records), built without
    /// ever holding all its records as `serde_json::Value`s.
    pub fn generate(seed: u64, people: usize, today: jiff::civil::Date) -> CompactDataset {
        struct Text(CompactDataset, Vec<u8>);
        impl Text {
            fn text(&mut self, record: &impl serde::Serialize) -> Box<str> {
                self.1.clear();
                serde_json::to_writer(&mut self.1, record).expect("demo records serialize");
                String::from_utf8_lossy(&self.1).into()
            }
        }
        impl Sink for Text {
            fn personio(&mut self, record: &wire::Employee<'_>) {
                let t = self.text(record);
                self.0.personio.push(t);
            }
            fn merge(&mut self, record: &wire::MergeEmployee<'_>, meta: MergeMeta) {
                let json = self.text(record);
                let mut expanded = 0u8;
                for (i, f) in MERGE_EXPANDABLE.iter().enumerate() {
                    if meta.expanded.contains(f) {
                        expanded |= 1 << i;
                    }
                }
                self.0.merge.push(MergeRow {
                    json,
                    modified_at: meta.modified_at,
                    status: Some(meta.status.into()),
                    expanded,
                });
            }
        }
        let mut out = Text(CompactDataset::default(), Vec::with_capacity(8192));
        out.0.personio.reserve(people);
        out.0.merge.reserve(people / 5 + 1);
        build(seed, people, today, &mut out);
        out.0
    }

    /// The records as `serde_json::Value`s.
    pub fn to_dataset(&self) -> Dataset {
        let parse = |t: &str| serde_json::from_str(t).expect("stored records are valid JSON");
        Dataset {
            personio: self.personio.iter().map(|t| parse(t)).collect(),
            merge: self.merge.iter().map(|r| parse(&r.json)).collect(),
        }
    }

    /// Personio records.
    pub fn personio_len(&self) -> usize {
        self.personio.len()
    }

    /// Merge records.
    pub fn merge_len(&self) -> usize {
        self.merge.len()
    }
}

impl From<&Dataset> for CompactDataset {
    fn from(d: &Dataset) -> CompactDataset {
        CompactDataset {
            personio: d
                .personio
                .iter()
                .map(|r| r.to_string().into_boxed_str())
                .collect(),
            merge: d.merge.iter().map(MergeRow::new).collect(),
        }
    }
}

impl From<Dataset> for CompactDataset {
    fn from(d: Dataset) -> CompactDataset {
        CompactDataset::from(&d)
    }
}

/// A running fake HRIS. Dropping it stops the server.
pub struct FakeHris {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runner: Runner,
}

impl std::fmt::Debug for FakeHris {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHris")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

enum Runner {
    Task(tokio::task::JoinHandle<()>),
    Thread(Option<tokio::sync::oneshot::Sender<()>>),
}

impl Drop for FakeHris {
    fn drop(&mut self) {
        match &mut self.runner {
            Runner::Task(t) => t.abort(),
            Runner::Thread(stop) => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
            }
        }
    }
}

struct Shared {
    data: RwLock<Arc<CompactDataset>>,
    fail_personio: Mutex<Option<(usize, u16)>>,
    requests: AtomicU64,
    tokens: Mutex<Tokens>,
}

/// Personio tokens that may still be used once, oldest first.
#[derive(Default)]
struct Tokens {
    live: HashSet<String>,
    order: VecDeque<String>,
}

impl Tokens {
    fn issue(&mut self) -> String {
        let token = format!("papi-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        self.live.insert(token.clone());
        self.order.push_back(token.clone());
        while self.order.len() > MAX_LIVE_TOKENS {
            if let Some(old) = self.order.pop_front() {
                self.live.remove(&old);
            }
        }
        token
    }

    /// Uses a token up; false when it was not live.
    fn redeem(&mut self, token: &str) -> bool {
        // `order` keeps the stale entry; it only bounds memory and is trimmed in `issue`.
        self.live.remove(token)
    }
}

impl FakeHris {
    /// Binds 127.0.0.1:0 and serves on the current tokio runtime (`tokio::spawn`); returns
    /// once listening.
    pub async fn start(data: Dataset) -> io::Result<FakeHris> {
        FakeHris::start_compact(CompactDataset::from(data)).await
    }

    /// [`FakeHris::start`] with a [`CompactDataset`] (large benchmarks).
    pub async fn start_compact(data: CompactDataset) -> io::Result<FakeHris> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Shared::new(data);
        let app = router(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeHris {
            addr,
            shared,
            runner: Runner::Task(task),
        })
    }

    /// Like [`FakeHris::start`], but serves from a thread of its own with its own runtime,
    /// for callers that are not inside a tokio runtime (or block theirs, like a CLI command
    /// that runs a sync with `block_on`). Returns once listening.
    pub fn start_in_thread(data: impl Into<CompactDataset>) -> io::Result<FakeHris> {
        let data = data.into();
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Shared::new(data);
        let app = router(shared.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("roster-demo-hris".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let serve = std::future::IntoFuture::into_future(axum::serve(listener, app));
                    tokio::select! {
                        _ = serve => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(FakeHris {
            addr,
            shared,
            runner: Runner::Thread(Some(stop)),
        })
    }

    /// The address it listens on (127.0.0.1 and a free port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The fake Personio's base URL, e.g. `http://127.0.0.1:40123/personio/v1`.
    pub fn personio_base_url(&self) -> String {
        personio_base_url(self.addr)
    }

    /// The fake Merge's base URL, e.g. `http://127.0.0.1:40123/merge/api/hris/v1`.
    pub fn merge_base_url(&self) -> String {
        merge_base_url(self.addr)
    }

    /// Replaces the data served from now on (tests: a person changes, people disappear, an
    /// empty listing).
    pub fn set_data(&self, data: impl Into<CompactDataset>) {
        *self.shared.data.write().expect("dataset lock") = Arc::new(data.into());
    }

    /// Changes the data in place (through a [`Dataset`] copy: time and memory in proportion
    /// to the whole dataset, fine for tests). Requests already being answered keep the data
    /// they started with.
    pub fn update(&self, f: impl FnOnce(&mut Dataset)) {
        let mut guard = self.shared.data.write().expect("dataset lock");
        let mut data = guard.to_dataset();
        f(&mut data);
        *guard = Arc::new(CompactDataset::from(&data));
    }

    /// A copy of the data served now.
    pub fn data(&self) -> Dataset {
        self.shared.snapshot().to_dataset()
    }

    /// Makes page `N` (1-based: the request with `offset = (N-1) * limit`) of the Personio
    /// employees listing fail with `status` in every listing from now on, retries included,
    /// so the whole fetch fails (to test that a failed fetch applies nothing). The body is
    /// Personio's error JSON; 429 and 503 carry `Retry-After: 0`, so the engine's retries
    /// do not slow a test down (a 500 is retried with the spec's exponential backoff,
    /// several seconds in all). `None` clears it.
    pub fn fail_personio_page(&self, page: Option<(usize, u16)>) {
        *self.shared.fail_personio.lock().expect("failure lock") = page;
    }

    /// Requests served so far (every path, failures included).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }
}

impl Shared {
    fn new(data: CompactDataset) -> Arc<Shared> {
        Arc::new(Shared {
            data: RwLock::new(Arc::new(data)),
            fail_personio: Mutex::new(None),
            requests: AtomicU64::new(0),
            tokens: Mutex::new(Tokens::default()),
        })
    }

    fn snapshot(&self) -> Arc<CompactDataset> {
        self.data.read().expect("dataset lock").clone()
    }
}

type St = State<Arc<Shared>>;

fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route(&format!("{PERSONIO_PATH}/auth"), post(personio_auth))
        .route(
            &format!("{PERSONIO_PATH}/company/employees"),
            get(personio_employees),
        )
        .route(&format!("{MERGE_PATH}/employees"), get(merge_employees))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            count_requests,
        ))
        .with_state(shared)
}

async fn count_requests(State(shared): St, req: Request, next: Next) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    next.run(req).await
}

/// A JSON response.
fn respond(status: u16, headers: &[(&str, String)], body: Vec<u8>) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(name, value);
        }
    }
    resp
}

fn json_response(status: u16, headers: &[(&str, String)], body: &Value) -> Response {
    respond(status, headers, body.to_string().into_bytes())
}

/// Personio's error body (`ErrorResponse` in the spec).
fn personio_error(status: u16, message: &str) -> Value {
    json!({"success": false, "error": {"code": status, "message": message}})
}

async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with(PERSONIO_PATH) {
        json_response(
            404,
            &[],
            &personio_error(404, "The requested resource was not found"),
        )
    } else {
        json_response(404, &[], &json!({"detail": "Not found."}))
    }
}

fn query(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn param<'q>(q: &'q [(String, String)], name: &str) -> Option<&'q str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn personio_auth(State(shared): St, headers: HeaderMap, body: Bytes) -> Response {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let (id, secret) = if form {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        (
            param(&pairs, "client_id").map(str::to_string),
            param(&pairs, "client_secret").map(str::to_string),
        )
    } else {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        (field("client_id"), field("client_secret"))
    };
    match (id.as_deref(), secret.as_deref()) {
        (Some(PERSONIO_CLIENT_ID), Some(PERSONIO_CLIENT_SECRET)) => {
            let token = shared.tokens.lock().expect("token lock").issue();
            json_response(
                200,
                &[],
                &json!({
                    "success": true,
                    "data": {"token": token, "expires_in": 86400, "scope": "employees:read"}
                }),
            )
        }
        (None, _) | (_, None) => json_response(
            401,
            &[],
            &personio_error(401, "The client_id and client_secret are required"),
        ),
        _ => json_response(
            401,
            &[],
            &personio_error(401, "Wrong credentials: unknown client_id or client_secret"),
        ),
    }
}

async fn personio_employees(State(shared): St, headers: HeaderMap, uri: Uri) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .and_then(|v| {
            v.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("bearer "))
                .map(|_| v[7..].trim())
        });
    let Some(token) = bearer.filter(|t| !t.is_empty()) else {
        return json_response(
            401,
            &[],
            &personio_error(401, "Authorization is not provided"),
        );
    };
    let next_token = {
        let mut tokens = shared.tokens.lock().expect("token lock");
        if !tokens.redeem(token) {
            return json_response(
                401,
                &[],
                &personio_error(401, "The token is invalid, expired or was already used"),
            );
        }
        tokens.issue()
    };
    // Every answer to an authenticated request carries the token for the next one.
    let mut extra = vec![("authorization", format!("Bearer {next_token}"))];

    let q = query(&uri);
    let number = |name: &str, default: usize| -> Result<usize, String> {
        match param(&q, name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .map_err(|_| format!("The {name} must be a non-negative integer")),
        }
    };
    let (limit, offset) = match (number("limit", PERSONIO_DEFAULT_LIMIT), number("offset", 0)) {
        (Ok(0), _) => {
            return json_response(
                400,
                &extra,
                &personio_error(400, "The limit must be at least 1"),
            );
        }
        (Ok(l), Ok(o)) => (l.min(PERSONIO_MAX_LIMIT), o),
        (Err(e), _) | (_, Err(e)) => {
            return json_response(400, &extra, &personio_error(400, &e));
        }
    };
    if let Some((page, status)) = *shared.fail_personio.lock().expect("failure lock")
        && offset / limit + 1 == page
    {
        if matches!(status, 429 | 503) {
            extra.push(("retry-after", "0".into()));
        }
        let message = match status {
            429 => "Too many requests",
            500..=599 => "Internal server error",
            _ => "Request failed",
        };
        return json_response(status, &extra, &personio_error(status, message));
    }
    let data = shared.snapshot();
    let all = &data.personio;
    let start = offset.min(all.len());
    let end = offset.saturating_add(limit).min(all.len());
    let records = &all[start..end];
    let mut body = String::with_capacity(records.iter().map(|r| r.len() + 1).sum::<usize>() + 200);
    let _ = write!(
        body,
        r#"{{"success":true,"metadata":{{"total_elements":{},"current_page":{},"total_pages":{}}},"offset":{offset},"limit":{limit},"data":["#,
        all.len(),
        offset / limit,
        all.len().div_ceil(limit),
    );
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(r);
    }
    body.push_str("]}");
    respond(200, &extra, body.into_bytes())
}

/// Merge's (Django REST framework's) error body.
fn merge_error(status: u16, detail: &str) -> Response {
    json_response(status, &[], &json!({"detail": detail}))
}

fn encode_cursor(position: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("p={position}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cursor.trim())
        .ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix("p=")?
        .parse()
        .ok()
}

/// A timestamp parameter: RFC 3339, or a date (midnight UTC).
fn timestamp(v: &str) -> Option<jiff::Timestamp> {
    let v = v.trim();
    v.parse::<jiff::Timestamp>().ok().or_else(|| {
        v.parse::<jiff::civil::Date>()
            .ok()
            .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map(|z| z.timestamp())
    })
}

async fn merge_employees(State(shared): St, headers: HeaderMap, uri: Uri) -> Response {
    let header_text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    match header_text("authorization") {
        None | Some("") => {
            return merge_error(401, "Authentication credentials were not provided.");
        }
        Some(v) if v.strip_prefix("Bearer ").map(str::trim) == Some(MERGE_API_KEY) => {}
        Some(_) => return merge_error(401, "Invalid token."),
    }
    match header_text("x-account-token") {
        None | Some("") => return merge_error(401, "Missing X-Account-Token header."),
        Some(MERGE_ACCOUNT_TOKEN) => {}
        Some(_) => return merge_error(401, "Invalid X-Account-Token."),
    }

    let q = query(&uri);
    let page_size = match param(&q, "page_size").map(|v| v.trim().parse::<usize>()) {
        None => MERGE_MAX_PAGE,
        Some(Ok(n)) if n >= 1 => n.min(MERGE_MAX_PAGE),
        Some(_) => {
            return json_response(
                400,
                &[],
                &json!({"page_size": ["A valid integer of at least 1 is required."]}),
            );
        }
    };
    let start = match param(&q, "cursor") {
        None | Some("") => 0,
        Some(c) => match decode_cursor(c) {
            Some(p) => p,
            None => return merge_error(404, "Invalid cursor"),
        },
    };
    let expand: HashSet<&str> = q
        .iter()
        .filter(|(k, _)| k == "expand")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .collect();
    // Bits of the expandable fields the request leaves as UUIDs.
    let mut bare = 0u8;
    for (i, f) in MERGE_EXPANDABLE.iter().enumerate() {
        if !expand.contains(f) {
            bare |= 1 << i;
        }
    }
    let mut bounds = [None, None];
    for (i, name) in ["modified_after", "modified_before"]
        .into_iter()
        .enumerate()
    {
        if let Some(v) = param(&q, name) {
            match timestamp(v) {
                Some(t) => bounds[i] = Some(t),
                None => {
                    return json_response(400, &[], &json!({name: ["Enter a valid date/time."]}));
                }
            }
        }
    }
    let status = param(&q, "employment_status").map(str::trim);
    if let Some(s) = status
        && !matches!(s, "ACTIVE" | "PENDING" | "INACTIVE")
    {
        return json_response(
            400,
            &[],
            &json!({"employment_status": [format!("Select a valid choice. {s} is not one of the available choices.")]}),
        );
    }
    let [after, before] = bounds;
    let filtered = after.is_some() || before.is_some() || status.is_some();
    let matches = |r: &MergeRow| -> bool {
        if !filtered {
            return true;
        }
        if let Some(s) = status
            && r.status.as_deref() != Some(s)
        {
            return false;
        }
        if after.is_none() && before.is_none() {
            return true;
        }
        let Some(m) = r.modified_at else {
            return false;
        };
        after.is_none_or(|a| m > a) && before.is_none_or(|b| m < b)
    };

    let data = shared.snapshot();
    let all = &data.merge;
    // The cursor is a position in the unfiltered listing, so a filtered read still scans
    // each record once over all its pages.
    let mut results = String::new();
    let mut taken = 0;
    let mut pos = start.min(all.len());
    while pos < all.len() && taken < page_size {
        let row = &all[pos];
        if matches(row) {
            if taken > 0 {
                results.push(',');
            }
            if row.expanded & bare == 0 {
                results.push_str(&row.json);
            } else {
                let mut record: Value =
                    serde_json::from_str(&row.json).expect("stored records are valid JSON");
                collapse(&mut record, &expand);
                results.push_str(&record.to_string());
            }
            taken += 1;
        }
        pos += 1;
    }
    while pos < all.len() && !matches(&all[pos]) {
        pos += 1;
    }
    let cursor = |c: Option<usize>| {
        c.map_or_else(
            || "null".to_string(),
            |p| format!("\"{}\"", encode_cursor(p)),
        )
    };
    let body = format!(
        r#"{{"next":{},"previous":{},"results":[{results}]}}"#,
        cursor((pos < all.len()).then_some(pos)),
        cursor((start > 0).then(|| start.saturating_sub(page_size))),
    );
    respond(200, &[], body.into_bytes())
}

fn holds_object(v: &Value) -> bool {
    match v {
        Value::Object(_) => true,
        Value::Array(items) => items.iter().any(Value::is_object),
        _ => false,
    }
}

/// Turns every expandable field that `expand` does not name back into its UUID (or list of
/// UUIDs), as Merge returns it without `expand`.
fn collapse(out: &mut Value, expand: &HashSet<&str>) {
    let todo: Vec<&str> = MERGE_EXPANDABLE
        .iter()
        .copied()
        .filter(|f| !expand.contains(f) && out.get(*f).is_some_and(holds_object))
        .collect();
    for f in todo {
        let id = |v: &Value| v.get("id").cloned().unwrap_or(Value::Null);
        out[f] = match &out[f] {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| if i.is_object() { id(i) } else { i.clone() })
                    .collect(),
            ),
            other => id(other),
        };
    }
}
