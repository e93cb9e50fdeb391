//! `roster validate`: loads the config through the same pipeline as `sync` and `run`, prints
//! every problem as `file:line:col: error: key.path: message (help: ...)`, sorted, and exits 78
//! when the config is invalid. Meant for CI before a merge and for `ExecStartPre=`.

use std::io::Write as _;

use serde::Serialize;

use super::{ConfigArg, EX_CONFIG};
use crate::config::diag::{Diagnostic, Severity};
use crate::config::{self, Config, LoadOptions, Origin};

/// Arguments of `roster validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the config is.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Also read every secret reference of enabled sources and webhooks (on the target host).
    #[arg(long)]
    pub check_secrets: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per problem, then a summary.
    Text,
    /// A JSON document with every problem (for bots commenting on pull requests).
    Json,
}

#[derive(Serialize)]
struct JsonReport {
    valid: bool,
    errors: usize,
    diagnostics: Vec<JsonDiagnostic>,
}

#[derive(Serialize)]
struct JsonDiagnostic {
    file: String,
    line: u32,
    column: u32,
    severity: &'static str,
    key_path: String,
    message: String,
    help: Option<String>,
}

impl From<&Diagnostic> for JsonDiagnostic {
    fn from(d: &Diagnostic) -> Self {
        JsonDiagnostic {
            file: d.file.to_string(),
            line: d.span.line,
            column: d.span.col,
            severity: match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            key_path: d.path.to_string(),
            message: d.message.clone(),
            help: d.help.clone(),
        }
    }
}

/// Validates and reports.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let opts = LoadOptions {
        check_secrets: args.check_secrets,
    };
    let result = config::load(&args.config.config, &opts);
    let (diags, code) = match &result {
        Ok(cfg) => (cfg.warnings.clone(), 0),
        Err(d) => (d.clone(), EX_CONFIG),
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let sorted = diags.sorted();
            let report = JsonReport {
                valid: code == 0,
                errors: diags.error_count(),
                diagnostics: sorted.iter().map(JsonDiagnostic::from).collect(),
            };
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        Format::Text => {
            out.write_all(diags.render().as_bytes())?;
            match &result {
                Ok(cfg) => writeln!(out, "{}", summary(cfg))?,
                Err(d) => {
                    let n = d.error_count();
                    writeln!(
                        out,
                        "{n} error{} in {}; the config is not valid",
                        if n == 1 { "" } else { "s" },
                        args.config.config.display()
                    )?;
                }
            }
        }
    }
    Ok(code)
}

/// One line saying what the config holds.
pub fn summary(cfg: &Config) -> String {
    let d = &cfg.deployment.spec;
    let sources: Vec<String> = cfg
        .sources
        .iter()
        .map(|s| {
            if s.enabled {
                s.name.clone()
            } else {
                format!("{} (disabled)", s.name)
            }
        })
        .collect();
    let local = |origins: &mut dyn Iterator<Item = &Origin>| {
        origins.filter(|o| matches!(o, Origin::File(_))).count()
    };
    format!(
        "ok: {} source{} ({}), {} webhook{}, {} trigger{}; {} providers ({} local), {} mappings ({} local); time zone {}",
        sources.len(),
        plural(sources.len()),
        sources.join(", "),
        d.webhooks.len(),
        plural(d.webhooks.len()),
        d.triggers.len(),
        plural(d.triggers.len()),
        cfg.providers.len(),
        local(&mut cfg.providers.values().map(|p| &p.origin)),
        cfg.mappings.len(),
        local(&mut cfg.mappings.values().map(|m| &m.origin)),
        d.time_zone,
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
