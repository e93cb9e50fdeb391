//! `roster fetch <source>`: a test read. Loads the config through the one pipeline, resolves
//! the source's secrets, reads one stream and prints its raw records as JSON lines on stdout;
//! with `--show-requests`, each request and its status go to stderr, secrets masked.
//! Nothing is written anywhere.

use std::collections::BTreeMap;
use std::io::Write as _;

use super::{ConfigArg, EX_CONFIG};
use crate::config::secret::{CredentialValue, ProcessEnv, Secret};
use crate::config::{self, LoadOptions};
use crate::provider::fetch::{Observer, SourceClient};
use crate::provider::request::Context;
use crate::provider::tokens::TokenStore;

/// Exit code when the HRIS could not be read (sysexits `EX_UNAVAILABLE`).
pub const EX_UNAVAILABLE: u8 = 69;
/// Exit code for a wrong argument (sysexits `EX_USAGE`).
pub const EX_USAGE: u8 = 64;

/// Arguments of `roster fetch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the config is.
    #[command(flatten)]
    pub config: ConfigArg,
    /// The source to read, as named in roster.yaml.
    pub source: String,
    /// The stream to read (default: the one the source's mapping reads).
    #[arg(long)]
    pub stream: Option<String>,
    /// Stop after this many records.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print each request and its status on stderr (secrets masked).
    #[arg(long)]
    pub show_requests: bool,
}

struct Print<W: std::io::Write> {
    out: W,
    show_requests: bool,
    limit: Option<usize>,
    count: usize,
    failed: Option<std::io::Error>,
}

impl<W: std::io::Write> Observer for Print<W> {
    fn request(&mut self, described: &str, status: u16) {
        if self.show_requests {
            let status = if status == 0 {
                "no response".to_string()
            } else {
                status.to_string()
            };
            eprintln!("-> {described} {status}");
        }
    }

    fn record(&mut self, record: serde_json::Value) -> bool {
        if self.limit.is_some_and(|l| self.count >= l) {
            return false;
        }
        if let Err(e) = writeln!(self.out, "{record}") {
            // stdout closed (e.g. `| head`): stop reading.
            self.failed = Some(e);
            return false;
        }
        self.count += 1;
        true
    }
}

/// Runs the test read.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let cfg = match config::load(&args.config.config, &LoadOptions::default()) {
        Ok(c) => c,
        Err(d) => {
            eprint!("{}", d.render());
            eprintln!("the config is not valid; run `roster validate` for details");
            return Ok(EX_CONFIG);
        }
    };
    let Some(plan) = cfg.sources.iter().find(|s| s.name == args.source) else {
        let names: Vec<&str> = cfg.sources.iter().map(|s| s.name.as_str()).collect();
        eprintln!(
            "error: no source `{}`; the sources are: {}",
            args.source,
            names.join(", ")
        );
        return Ok(EX_USAGE);
    };
    let spec = &cfg.providers[&plan.provider].spec;
    let source = &cfg.deployment.spec.sources[&plan.name];
    let env = ProcessEnv {
        config_dir: cfg.dir.clone(),
    };
    let mut creds = BTreeMap::new();
    for (name, value) in &source.credentials {
        let secret = match value {
            CredentialValue::Literal(v) => Secret::new(v.clone()),
            CredentialValue::Secret(r) => match r.resolve(&env) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!(
                        "error: source `{}`: credential `{name}`: cannot read secret: {e} (help: {})",
                        plan.name,
                        e.help()
                    );
                    return Ok(EX_CONFIG);
                }
            },
        };
        creds.insert(name.clone(), secret);
    }
    let ctx = Context::new(spec, &creds, &source.settings);
    let stream = args
        .stream
        .clone()
        .unwrap_or_else(|| cfg.mappings[&plan.mapping].spec.stream.as_str().to_string());
    let client = match SourceClient::new(&plan.name, spec, ctx, &cfg.dir) {
        // A test read may rotate an OAuth refresh token; it must be kept like a sync's.
        Ok(c) => c.with_token_store(TokenStore::new(&cfg.state_dir(), &plan.name)),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EX_UNAVAILABLE);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut printer = Print {
        out: std::io::BufWriter::new(std::io::stdout().lock()),
        show_requests: args.show_requests,
        limit: args.limit,
        count: 0,
        failed: None,
    };
    let result = rt.block_on(client.fetch_stream(&stream, &mut printer));
    printer.out.flush().ok();
    match result {
        Ok(summary) => {
            let total = summary
                .reported
                .map(|t| format!(" (the API reports {t})"))
                .unwrap_or_default();
            eprintln!(
                "fetched {} record{} from stream `{stream}` of source `{}` in {} page{}{total}",
                printer.count,
                if printer.count == 1 { "" } else { "s" },
                plan.name,
                summary.pages,
                if summary.pages == 1 { "" } else { "s" },
            );
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(EX_UNAVAILABLE)
        }
    }
}
