//! `roster schema <deployment|provider|mapping|events>`: prints the JSON Schema (draft-07)
//! that editors use through `# yaml-language-server: $schema=...` and that `validate`
//! enforces; `events` is the schema of the webhook payloads, for receivers.

use std::io::Write as _;

use crate::config::schema::{FileKind, to_pretty};

/// Arguments of `roster schema`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which schema.
    #[arg(value_enum)]
    pub kind: SchemaKind,
}

/// The schemas `roster schema` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaKind {
    /// `roster.yaml`.
    Deployment,
    /// `providers/*.yaml`.
    Provider,
    /// `mappings/*.yaml`.
    Mapping,
    /// The body of every webhook Roster sends.
    Events,
}

/// The webhook payload schema, pretty-printed.
pub fn events_schema() -> String {
    let v = crate::config::schema::generate::<crate::events::Envelope>(
        "Roster webhook payload (Standard Webhooks body)",
    );
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

/// Prints the schema.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let text = match args.kind {
        SchemaKind::Deployment => to_pretty(FileKind::Deployment),
        SchemaKind::Provider => to_pretty(FileKind::Provider),
        SchemaKind::Mapping => to_pretty(FileKind::Mapping),
        SchemaKind::Events => events_schema(),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(0)
}
