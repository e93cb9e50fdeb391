//! The HTTP extraction engine: reads records from any JSON API a provider spec describes.
//! It knows nothing of DuckDB, mappings or people.
//!
//! So far this holds the engine's pure decision makers, tested on their own; the HTTP client,
//! auth flows, rate limiting, joins, lookups and sub-requests that drive them are next
//! (issue 3).
//!
//! - [`paginate`]: which request comes next, when a listing ends, whether it is complete.
//! - [`request`]: a spec's request made concrete (templates, URL, static auth, token
//!   prefix) and the value-based [`request::Redactor`] that keeps secrets out of output.
//! - [`retry`]: whether and how long to wait after a failed attempt.

pub mod paginate;
pub mod request;
pub mod retry;
