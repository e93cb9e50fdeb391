//! The provider spec (`providers/*.yaml`): how to talk to one HRIS API, with no Rust code per
//! provider. Base URL, auth, streams (request, pagination, record selection), joins, lookups,
//! per-record sub-requests, rate limits, retries and timeouts.
//!
//! Templates in requests use `{credentials.NAME}` and `{settings.NAME}`, which must be declared
//! here under `credentials:` and `settings:`; sub-requests also use `{var.NAME}` from their
//! `vars:`. A credential is secret unless declared `secret: false`; the HTTP engine redacts
//! every value that comes from a secret credential, in headers and query parameters alike.
//!
//! These are the types as written; `config::compile` checks references between them.

use std::path::PathBuf;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::value::{Duration, JsonPath, Name, Template, UrlTemplate};

/// A provider spec: everything needed to read people from one HRIS API.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Display name, e.g. `Personio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What this spec reads, and anything an operator should know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Link to the vendor's API documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs_url: Option<String>,
    /// Base URL of the API; request paths are relative to it. May use `{settings.NAME}`.
    pub base_url: UrlTemplate,
    /// Credentials a source must supply, by name (e.g. `client_id`, `client_secret`).
    #[serde(default)]
    pub credentials: IndexMap<String, CredentialDecl>,
    /// Non-secret settings a source may or must supply, by name (e.g. a company subdomain).
    #[serde(default)]
    pub settings: IndexMap<String, SettingDecl>,
    /// How requests are authenticated.
    pub auth: Auth,
    /// Headers sent with every request (templates allowed).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, Template>,
    /// Declared rate limit, shared by all streams of one source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Retry policy for 429, 5xx, connection resets and timeouts.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// TLS settings. Certificate verification is always on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// The API's streams by name. A mapping reads one of them; the others feed joins, lookups and sub-requests.
    pub streams: IndexMap<Name, Stream>,
    /// How the HRIS signs the change notifications it can post to Roster (`inbound.listen` in roster.yaml): a notification triggers a sync of the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<Inbound>,
}

/// How an HRIS signs the notifications it posts: a MAC of the raw body (and, for some, a
/// timestamp header after it) with the secret the HRIS shows when the webhook is created, in a
/// header; or the secret itself in a header (`algorithm: token`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inbound {
    /// The header with the signature, e.g. `X-Merge-Webhook-Signature`.
    pub header: String,
    /// `hmac_sha256` (default), `hmac_sha512`, or `token` (the header carries the secret).
    #[serde(default)]
    pub algorithm: SignatureAlgorithm,
    /// How the MAC is written: `hex` (default), `base64` or `base64url` (padded or not).
    #[serde(default)]
    pub encoding: SignatureEncoding,
    /// Text before the signature in the header, e.g. `sha256=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// A header with the time the notification was sent (Unix seconds or RFC 3339), signed after the body; a notification more than 5 minutes old or ahead is refused (a replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// Bodies of the connection test the HRIS posts when a webhook is created, which it may not sign (HiBob's `Ping test`): answered `200` without a signature, and trigger nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ping: Vec<String>,
}

/// The MAC of an inbound notification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureAlgorithm {
    /// HMAC-SHA256.
    #[default]
    HmacSha256,
    /// HMAC-SHA512.
    HmacSha512,
    /// No MAC: the header holds the shared secret itself (compared in constant time).
    Token,
}

/// How a MAC is written in its header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    /// Lowercase or uppercase hex.
    #[default]
    Hex,
    /// Standard base64.
    Base64,
    /// URL-safe base64.
    Base64url,
}

/// A credential the provider needs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialDecl {
    /// What it is and where to find it in the HRIS admin; shown when it is missing or rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the value is secret (default true). A secret credential must be given as `{env: ...}`, `{file: ...}` or `{credential: ...}`, never as a literal.
    #[serde(default = "yes")]
    pub secret: bool,
    /// Whether a source must supply it (default true).
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// A non-secret setting.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingDecl {
    /// What it is, e.g. "Your BambooHR subdomain, as in https://SUBDOMAIN.bamboohr.com".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Value used when the source does not set it. A setting without a default is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// Authentication, chosen by `kind`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// No authentication.
    None,
    /// An API key sent in a header or a query parameter.
    ApiKey {
        /// Where the key goes: `header` or `query`.
        #[serde(rename = "in")]
        location: KeyLocation,
        /// Header or query parameter name, e.g. `X-API-Key` or `api_key`.
        name: String,
        /// The value, e.g. `{credentials.api_key}`.
        value: Template,
    },
    /// Static headers, e.g. `Authorization: Bearer {credentials.api_key}` plus `X-Account-Token: {credentials.account_token}`.
    Headers {
        /// Header names and values.
        headers: IndexMap<String, Template>,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token, e.g. `{credentials.api_token}`.
        token: Template,
    },
    /// HTTP basic authentication.
    Basic {
        /// User name, e.g. `{credentials.api_key}`.
        username: Template,
        /// Password (empty when omitted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<Template>,
    },
    /// Log in with a request, then send the token it returns ("login then use token").
    TokenExchange {
        /// The login request (path relative to `base_url`, or an absolute URL).
        request: Box<Request>,
        /// JSONPath to the token in the login response.
        token: JsonPath,
        /// JSONPath to the token lifetime in seconds, if the response has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_in: Option<JsonPath>,
        /// Lifetime assumed when the response does not say (default 1h).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl: Option<Duration>,
        /// Header the token is sent in (default `Authorization`).
        #[serde(default = "authorization")]
        header: String,
        /// Prefix before the token (default `Bearer `); not added again when the token already starts with it.
        #[serde(default = "bearer_prefix")]
        prefix: String,
        /// Response header carrying a fresh token on every response (Personio rotates its token this way); the latest one is used for the next request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rotate_header: Option<String>,
    },
    /// OAuth 2.0 client credentials grant.
    Oauth2ClientCredentials {
        /// Token endpoint URL.
        token_url: UrlTemplate,
        /// Client id, e.g. `{credentials.client_id}`.
        client_id: Template,
        /// Client secret, e.g. `{credentials.client_secret}`.
        client_secret: Template,
        /// Scopes to request.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        scopes: Vec<String>,
        /// How the client authenticates to the token endpoint: `body` (default) or `basic`.
        #[serde(default)]
        client_auth: ClientAuth,
    },
    /// OAuth 2.0 refresh token grant. When the provider rotates the refresh token, the new one is stored (atomically, before use) in Roster's state and used from then on.
    Oauth2RefreshToken {
        /// Token endpoint URL.
        token_url: UrlTemplate,
        /// Client id.
        client_id: Template,
        /// Client secret.
        client_secret: Template,
        /// The initial refresh token, e.g. `{credentials.refresh_token}`.
        refresh_token: Template,
        /// Scopes to request.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        scopes: Vec<String>,
        /// How the client authenticates to the token endpoint: `body` (default) or `basic`.
        #[serde(default)]
        client_auth: ClientAuth,
    },
}

fn authorization() -> String {
    "Authorization".into()
}

fn bearer_prefix() -> String {
    "Bearer ".into()
}

/// Where an API key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyLocation {
    /// A request header.
    Header,
    /// A query parameter (redacted in every log line and error).
    Query,
}

/// How an OAuth client sends its secret.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body.
    #[default]
    Body,
    /// HTTP basic authentication with the client id and secret.
    Basic,
}

/// A query parameter's value: one template, or a list of them (the parameter repeated).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum QueryValue {
    /// One value, e.g. `all` or `'{settings.status}'`.
    One(Template),
    /// The parameter once per item, in order, e.g. `[hired, active]`.
    Many(Vec<Template>),
}

impl QueryValue {
    /// The templates, in order (one for a single value).
    pub fn templates(&self) -> &[Template] {
        match self {
            QueryValue::One(t) => std::slice::from_ref(t),
            QueryValue::Many(ts) => ts,
        }
    }
}

/// An HTTP request.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// HTTP method (default `GET`).
    #[serde(default)]
    pub method: Method,
    /// Path relative to `base_url` (e.g. `/company/employees`), or an absolute URL.
    pub path: Template,
    /// Query parameters (templates allowed). A list sends the parameter once per item, in
    /// order: `hiring_statuses: [hired, active]` is `hiring_statuses=hired&hiring_statuses=active`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, QueryValue>,
    /// Extra headers (templates allowed).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, Template>,
    /// Request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
}

/// HTTP methods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET.
    #[default]
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
}

/// A request body: JSON or a form. String values may contain templates.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Body {
    /// A JSON body; every string in it is a template.
    Json(serde_json::Value),
    /// An `application/x-www-form-urlencoded` body.
    Form(IndexMap<String, Template>),
}

/// A stream: one listing endpoint, read page by page.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stream {
    /// What the stream holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The request for the first page.
    pub request: Request,
    /// How to get the next page (default: no paging).
    #[serde(default)]
    pub pagination: Pagination,
    /// JSONPath selecting the records in a page, e.g. `$.data[*]`.
    pub records: JsonPath,
    /// JSONPath to a record's id within the stream, e.g. `$.id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<JsonPath>,
    /// JSONPath to the total number of records the API reports. When present, a fetch that delivers fewer records fails (completeness check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<JsonPath>,
    /// JSONPath to a boolean that is false on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_more: Option<JsonPath>,
    /// Most pages one fetch may read before it fails (a guard against endless paging; default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pages: Option<u32>,
    /// Other streams whose records are merged into each record by key (e.g. Kenjo's accounts, personals and works on `_id`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub join: Vec<Join>,
    /// Id to name lookups from other streams (departments, offices, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lookups: Vec<Lookup>,
    /// Requests made once per record (e.g. the employments of each person), with a concurrency cap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subrequests: Vec<SubRequest>,
    /// Incremental reads: only records changed since the last successful sync, with a periodic full read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<Incremental>,
}

/// Pagination, chosen by `kind`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// One request returns everything.
    #[default]
    None,
    /// Offset counted in records: `offset=0,100,200...` with `limit=100`. Stops on a short or empty page (see `stop`), or at the reported total.
    Offset {
        /// Parameter for the offset (default `offset`).
        #[serde(default = "offset_param")]
        offset_param: String,
        /// Parameter for the page size (default `limit`).
        #[serde(default = "limit_param")]
        limit_param: String,
        /// Records per page.
        page_size: u32,
        /// Where the parameters go: `query` (default) or `body`.
        #[serde(rename = "in", default, skip_serializing_if = "ParamsIn::is_query")]
        params_in: ParamsIn,
        /// Which page is the last without a reported total: `short_page` (default) or `empty_page`.
        #[serde(default, skip_serializing_if = "Stop::is_short_page")]
        stop: Stop,
    },
    /// Page numbers: `page=1,2,3...`. Stops on a short or empty page (see `stop`), or at the reported total.
    Page {
        /// Parameter for the page number (default `page`).
        #[serde(default = "page_param")]
        page_param: String,
        /// Parameter for the page size, if the API takes one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size_param: Option<String>,
        /// Records per page.
        page_size: u32,
        /// Number of the first page: 0 or 1 (default 1).
        #[serde(default = "one")]
        first_page: u32,
        /// Where the parameters go: `query` (default) or `body`.
        #[serde(rename = "in", default, skip_serializing_if = "ParamsIn::is_query")]
        params_in: ParamsIn,
        /// Which page is the last without a reported total: `short_page` (default) or `empty_page`.
        #[serde(default, skip_serializing_if = "Stop::is_short_page")]
        stop: Stop,
    },
    /// A cursor from the response body, sent back as a parameter. Stops when the cursor is missing or null.
    Cursor {
        /// JSONPath to the next cursor in the response body, e.g. `$.next`.
        cursor: JsonPath,
        /// Parameter that carries the cursor, e.g. `cursor`.
        param: String,
        /// Parameter for the page size, if the API takes one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size_param: Option<String>,
        /// Records per page, when `size_param` is set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page_size: Option<u32>,
        /// Where the parameters go: `query` (default) or `body`.
        #[serde(rename = "in", default, skip_serializing_if = "ParamsIn::is_query")]
        params_in: ParamsIn,
    },
    /// The URL of the next page from the response body (absolute, or relative to the base URL). Stops when it is missing or null.
    NextUrl {
        /// JSONPath to the next page's URL, e.g. `$.links.next`.
        next: JsonPath,
    },
    /// The `Link: <...>; rel="next"` response header (RFC 8288). Stops when there is none.
    LinkHeader,
}

/// Where paging parameters go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamsIn {
    /// Query parameters, e.g. `?page=2&page_size=100`.
    #[default]
    Query,
    /// Fields of the request's JSON body (POST, PUT or PATCH), for APIs that page through the body (BambooHR's datasets: `{"fields": [...], "page": 2, "pageSize": 500}`). Each parameter name is a top-level field such as `page`, or a JSON Pointer such as `/paging/page` for a nested one; missing objects on the way are created. Page numbers, offsets and sizes are sent as JSON numbers, a cursor as a string.
    Body,
}

impl ParamsIn {
    fn is_query(&self) -> bool {
        *self == ParamsIn::Query
    }
}

/// Which page ends an offset or page listing when the API reports no total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// A page with fewer records than `page_size` (or none) is the last.
    #[default]
    ShortPage,
    /// Only an empty page is the last: for APIs that may return fewer records than asked before the end (a server-side cap below `page_size`). Costs one more request per listing.
    EmptyPage,
}

impl Stop {
    fn is_short_page(&self) -> bool {
        *self == Stop::ShortPage
    }
}

impl Pagination {
    /// Where this pagination's parameters go (`query` for kinds without parameters).
    pub fn params_in(&self) -> ParamsIn {
        match self {
            Pagination::Offset { params_in, .. }
            | Pagination::Page { params_in, .. }
            | Pagination::Cursor { params_in, .. } => *params_in,
            Pagination::None | Pagination::NextUrl { .. } | Pagination::LinkHeader => {
                ParamsIn::Query
            }
        }
    }
}

/// The path to a body field named by a paging parameter: a plain name is one top-level field,
/// a JSON Pointer (RFC 6901, `/paging/page`, with `~1` for `/` and `~0` for `~`) a nested one.
/// Err says what is wrong with the name.
pub fn body_field_path(name: &str) -> Result<Vec<String>, String> {
    let Some(pointer) = name.strip_prefix('/') else {
        return if name.is_empty() {
            Err("the parameter name is empty".into())
        } else {
            Ok(vec![name.to_string()])
        };
    };
    pointer
        .split('/')
        .map(|seg| {
            if seg.is_empty() {
                return Err(format!("`{name}` has an empty segment"));
            }
            let mut out = String::new();
            let mut chars = seg.chars();
            while let Some(c) = chars.next() {
                match c {
                    '~' => match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => {
                            return Err(format!(
                                "`{name}` has a `~` that is not `~0` or `~1` (JSON Pointer escapes for `~` and `/`)"
                            ));
                        }
                    },
                    c => out.push(c),
                }
            }
            Ok(out)
        })
        .collect()
}

/// "a string", "an array", ... for messages about a JSON value.
pub fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn offset_param() -> String {
    "offset".into()
}
fn limit_param() -> String {
    "limit".into()
}
fn page_param() -> String {
    "page".into()
}
fn one() -> u32 {
    1
}

/// Merges another stream's records into each record.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Join {
    /// The other stream.
    pub stream: Name,
    /// JSONPath to the key in this stream's record.
    pub on: JsonPath,
    /// JSONPath to the key in the other stream's records (default: its `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<JsonPath>,
    /// Field name the joined record is stored under, e.g. `personal` (read it as `$.personal.birthdate`).
    pub into: String,
}

/// Looks up a related record (such as a department) by id.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// The stream holding the related records.
    pub stream: Name,
    /// JSONPath to the id in this stream's record, e.g. `$.work.departmentId`.
    pub key: JsonPath,
    /// JSONPath to the id in the related records (default: the stream's `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<JsonPath>,
    /// Field name the related record is stored under, e.g. `department` (read it as `$.department.name`).
    pub into: String,
}

/// A request made once per record.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubRequest {
    /// Field name the result is stored under, e.g. `employments`.
    pub into: String,
    /// Values taken from the record for the request templates, as `{var.NAME}`.
    #[serde(default)]
    pub vars: IndexMap<String, JsonPath>,
    /// The request, e.g. path `/employees/{var.id}/employments`.
    pub request: Request,
    /// JSONPath selecting the result records (a list is stored).
    pub records: JsonPath,
    /// Most requests in flight at once for this sub-request (default 4).
    #[serde(default = "four")]
    pub concurrency: u32,
    /// When true, a failed sub-request leaves the field empty instead of failing the fetch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

fn four() -> u32 {
    4
}

/// Incremental reads: a listing of only the records changed since a cursor, with a periodic
/// full listing that reconciles what a partial one cannot see (removals, missed changes).
///
/// The cursor is the start of the source's last committed run minus `lookback`, sent in UTC
/// with an explicit zone. A partial listing updates and creates people but never removes one;
/// only a full listing can. The first run, a run after the mapping changed, a run `full_every`
/// after the last full one and `roster sync --full` read the whole listing.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// Query parameter carrying the cursor, e.g. `modified_after`.
    pub param: String,
    /// How often a full read reconciles deletions and missed changes (default 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_every: Option<Duration>,
    /// How far before the last run's start the cursor goes, against clock skew between the
    /// HRIS and this host and against changes the HRIS commits late (default 10m; at least 1d
    /// with `format: date`). Records re-read in the overlap are recognised as unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookback: Option<Duration>,
    /// How the cursor is written (default `rfc3339`).
    #[serde(default, skip_serializing_if = "CursorFormat::is_default")]
    pub format: CursorFormat,
}

/// How an incremental cursor is written in the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CursorFormat {
    /// RFC 3339 in UTC, e.g. `2026-12-03T09:15:00Z`.
    #[default]
    Rfc3339,
    /// A calendar date in UTC, e.g. `2026-12-03`, for APIs that take no time.
    Date,
    /// Seconds since the Unix epoch, e.g. `1796289300`.
    Unix,
}

impl CursorFormat {
    fn is_default(&self) -> bool {
        *self == CursorFormat::Rfc3339
    }
}

impl Incremental {
    /// The default `full_every`.
    pub const FULL_EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
    /// The default `lookback`.
    pub const LOOKBACK: std::time::Duration = std::time::Duration::from_secs(10 * 60);

    /// `full_every`, or its default.
    pub fn full_every(&self) -> std::time::Duration {
        self.full_every
            .as_ref()
            .map_or(Self::FULL_EVERY, |d| d.get())
    }

    /// `lookback`, or its default (a day for `format: date`).
    pub fn lookback(&self) -> std::time::Duration {
        match (&self.lookback, self.format) {
            (Some(d), _) => d.get(),
            (None, CursorFormat::Date) => std::time::Duration::from_secs(24 * 3600),
            (None, _) => Self::LOOKBACK,
        }
    }

    /// The cursor for a listing of the records changed since `last_start` (the start of the
    /// source's last committed run), `lookback` earlier, written in `format`.
    pub fn cursor(&self, last_start: jiff::Timestamp) -> String {
        let lookback =
            jiff::SignedDuration::try_from(self.lookback()).unwrap_or(jiff::SignedDuration::MAX);
        let at = last_start
            .checked_sub(lookback)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .max(jiff::Timestamp::UNIX_EPOCH);
        match self.format {
            CursorFormat::Rfc3339 => at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            CursorFormat::Date => at.strftime("%Y-%m-%d").to_string(),
            CursorFormat::Unix => at.as_second().to_string(),
        }
    }
}

/// A rate limit.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per minute allowed by the provider.
    pub requests_per_minute: u32,
    /// Requests that may go at once before the rate applies (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// Retry policy.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Most attempts per request, the first included (default 5).
    #[serde(default = "five")]
    pub max_attempts: u32,
    /// First backoff, doubled each attempt, with jitter (default 1s).
    #[serde(default = "one_second")]
    pub initial_backoff: Duration,
    /// Longest backoff and longest `Retry-After` honoured (default 60s).
    #[serde(default = "one_minute")]
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: five(),
            initial_backoff: one_second(),
            max_backoff: one_minute(),
        }
    }
}

fn five() -> u32 {
    5
}
fn one_second() -> Duration {
    Duration::parse("1s").expect("valid")
}
fn one_minute() -> Duration {
    Duration::parse("60s").expect("valid")
}

/// Timeouts.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Connecting, TLS included (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<Duration>,
    /// Waiting for a response or the next bytes of one (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Duration>,
    /// A whole fetch of all streams (default 30m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch: Option<Duration>,
}

/// TLS settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Extra CA certificate (PEM) to trust, for an HRIS behind a private CA. Relative to the config directory.
    pub ca_file: PathBuf,
}
