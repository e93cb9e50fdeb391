//! `roster schema <deployment|provider|mapping>`: prints the JSON Schema (draft-07) that
//! editors use through `# yaml-language-server: $schema=...` and that `validate` enforces.

use std::io::Write as _;

use crate::config::schema::{FileKind, to_pretty};

/// Arguments of `roster schema`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which file kind.
    #[arg(value_enum)]
    pub kind: FileKind,
}

/// Prints the schema.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    std::io::stdout()
        .lock()
        .write_all(to_pretty(args.kind).as_bytes())?;
    Ok(0)
}
