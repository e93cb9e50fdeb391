//! `roster fetch <source>`: a test read. Loads the config through the one pipeline, resolves
//! the source's secrets, reads one stream and prints its raw records as JSON lines on stdout;
//! with `--show-requests`, each request and its status go to stderr, secrets masked.
//! Nothing is written anywhere.

use std::io::Write as _;

use super::ConfigArg;
use crate::provider::fetch::Observer;

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
    let cfg = match super::load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
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
    let stream = args
        .stream
        .clone()
        .unwrap_or_else(|| cfg.mappings[&plan.mapping].spec.stream.as_str().to_string());
    // The same client as a sync's: secrets resolved, rotated OAuth refresh tokens kept.
    let client = match crate::sync::source_client(&cfg, plan) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(super::sync::exit_code(&e));
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
