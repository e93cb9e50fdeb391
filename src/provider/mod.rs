//! The HTTP extraction engine: reads records from any JSON API a provider spec describes.
//! It knows nothing of DuckDB, mappings or people.
//!
//! - [`fetch`]: the HTTP client for one source: auth (static kinds, token exchange, both OAuth
//!   grants), retries, one re-login on 401, paging, record selection, errors a
//!   person can act on, joins, lookups and per-record sub-requests.
//! - [`error`]: [`error::FetchError`], with a log face (a redacted excerpt of the response)
//!   and a public one (a stable code and Roster's own sentence) for what leaves the process.
//! - [`paginate`]: which request comes next, when a listing ends, whether it is complete.
//! - [`rate`]: the provider's declared rate limit, shared by all requests of a source.
//! - [`redact`]: the value-based [`redact::Redactor`] that keeps secrets out of output, in
//!   any form a server may echo them (JSON and URL escapes, base64, hex).
//! - [`request`]: a spec's request made concrete (templates, URL, static auth, token
//!   prefix), every secret value in it known to the redactor.
//! - [`retry`]: whether and how long to wait after a failed attempt.
//! - [`tokens`]: rotated OAuth refresh tokens, persisted atomically per source.

pub mod error;
pub mod fetch;
pub mod page;
pub mod paginate;
pub mod rate;
pub mod redact;
pub mod request;
pub mod retry;
pub mod tokens;
