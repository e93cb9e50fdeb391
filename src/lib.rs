//! Roster: a declarative HRIS to DuckDB people-directory sync daemon.
//!
//! Teams describe their HR systems in YAML (provider specs, field mappings and one deployment
//! file); Roster syncs them into a DuckDB directory people query with SQL, and sends lifecycle
//! events to webhooks. See `ARCHITECTURE.md` for the map of the code and its invariants.
//!
//! Modules, in dependency order (each depends only on those above it):
//!
//! - [`config`]: the one config pipeline (read, parse, check, decode, compile), JSON Schema,
//!   secrets. Used by every command.
//! - [`provider`]: the HTTP extraction engine (knows nothing of DuckDB or people).
//! - [`mapping`]: one provider record to a canonical person (pure).
//! - [`org_chart`]: the reporting tree drawn as SVG, DOT, Mermaid or HTML (pure).
//! - [`store`]: the state database and the published directory (the only SQL).
//! - [`sync`]: fetch, map, stage, merge, diff, hold or apply, publish.
//! - [`offline`]: `plan --offline`: the stored raw records mapped again with a proposed config,
//!   applied to a temporary copy of the directory.
//! - [`demo`]: a fake HRIS on loopback with synthetic people, for `roster demo`.
//! - [`cli`]: one file per subcommand.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod events;
pub mod identity;
pub mod lifecycle;
pub mod logging;
pub mod mapping;
pub mod offline;
pub mod org_chart;
pub mod provider;
pub mod store;
pub mod sync;
pub mod webhook;
