//! Integration tests, compiled into one binary. Each module covers one capability; tests run
//! the library pipeline or the real `roster` binary against files in temp dirs.

mod catalog;
mod cli;
mod daemon;
mod demo;
mod events;
mod explain;
mod fetch;
mod hostile;
mod incremental;
mod mapping;
mod org_chart;
mod plan_offline;
mod ports;
mod provider_bamboohr;
mod provider_common;
mod provider_deel;
mod provider_hibob;
mod provider_justworks;
mod provider_kenjo;
mod provider_merge;
mod provider_personio;
mod provider_rippling;
mod redaction;
mod schema;
mod soak;
mod sync;
mod upcoming;
mod validate;
mod webhook_canary;
mod webhook_ssrf;

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Loads a config the way every command does.
pub fn load(path: &Path) -> Result<roster::config::Config, roster::config::diag::Diagnostics> {
    roster::config::load(path, &roster::config::LoadOptions::default())
}
