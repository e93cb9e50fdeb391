//! `roster test`: runs the fixtures declared in mapping files (`tests:`), the built-in
//! catalog's and the config directory's own (a local file overrides the built-in mapping of
//! the same name). One line per fixture, a diff per failing field, a summary; exit 0 when all
//! pass, 1 otherwise. Reads no secrets and makes no requests.

use super::ConfigArg;
use super::fetch::EX_USAGE;
use crate::config::Origin;
use crate::mapping::{Mapper, fixture};

/// Arguments of `roster test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the config is.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Run only this mapping's fixtures.
    #[arg(long, value_name = "NAME")]
    pub mapping: Option<String>,
}

/// Runs the fixtures.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let cfg = match super::load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if let Some(name) = &args.mapping
        && !cfg.mappings.contains_key(name)
    {
        let names: Vec<&str> = cfg.mappings.keys().map(String::as_str).collect();
        eprintln!(
            "error: no mapping `{name}`; the mappings are: {}",
            names.join(", ")
        );
        return Ok(EX_USAGE);
    }
    let (mut total, mut failed) = (0usize, 0usize);
    for (name, loaded) in &cfg.mappings {
        if args.mapping.as_ref().is_some_and(|m| m != name) {
            continue;
        }
        let spec = &loaded.spec;
        if spec.tests.is_empty() {
            if args.mapping.is_some() {
                println!("mapping `{name}` declares no fixtures (`tests:`)");
            }
            continue;
        }
        let label = match &loaded.origin {
            Origin::Builtin => name.clone(),
            Origin::File(_) => format!("{name} (local)"),
        };
        let mapper = Mapper::from_spec(spec);
        for t in &spec.tests {
            total += 1;
            let outcome = fixture::check(&mapper, t);
            if outcome.passed() {
                println!("ok   {label}: {}", t.name);
            } else {
                failed += 1;
                println!("FAIL {label}: {}", t.name);
            }
            for line in &outcome.failures {
                println!("  {line}");
            }
            for line in &outcome.notes {
                println!("  note: {line}");
            }
        }
    }
    let plural = if total == 1 { "" } else { "s" };
    println!("{total} fixture{plural}, {failed} failed");
    Ok(u8::from(failed > 0))
}
