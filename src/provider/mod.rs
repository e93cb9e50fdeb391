//! The HTTP extraction engine: reads records from any JSON API a provider spec describes.
//! It knows nothing of DuckDB, mappings or people.
//!
//! - [`fetch`]: the HTTP client for one source: auth (static kinds, token exchange, both OAuth
//!   grants), retries, one re-login on 401, paging, record selection, errors a
//!   person can act on, joins, lookups and per-record sub-requests.
//! - [`paginate`]: which request comes next, when a listing ends, whether it is complete.
//! - [`rate`]: the provider's declared rate limit, shared by all requests of a source.
//! - [`request`]: a spec's request made concrete (templates, URL, static auth, token
//!   prefix) and the value-based [`request::Redactor`] that keeps secrets out of output.
//! - [`retry`]: whether and how long to wait after a failed attempt.
//! - [`tokens`]: rotated OAuth refresh tokens, persisted atomically per source.

pub mod fetch;
pub mod paginate;
pub mod rate;
pub mod request;
pub mod retry;
pub mod tokens;
