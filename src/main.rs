//! The `roster` binary: parse the command line, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser as _;
use roster::cli::{Cli, Command};
use roster::logging::{self, LogFormat};

/// mimalloc: a sync allocates and frees millions of small values (parsed records, mapped
/// fields, merged states); glibc's malloc spent about a sixth of a 100k first sync's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some((format, filter)) = default_log(&cli) {
        logging::init(format, filter);
    }
    match roster::cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        // `roster plan | head`: the reader left; that is not an error worth a message.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The logging a command gets before it runs, or `None` when the command sets up its own.
///
/// One-shot commands log warnings and errors on stderr (`RUST_LOG=roster=debug` for more), as
/// text on a terminal and journald lines under systemd; `roster run` logs at info in its
/// `--log-format`. The match is exhaustive on purpose: a new command must decide.
fn default_log(cli: &Cli) -> Option<(LogFormat, &'static str)> {
    match cli.command {
        Command::Validate(_)
        | Command::Schema(_)
        | Command::Fetch(_)
        | Command::Sync(_)
        | Command::Plan(_)
        | Command::Query(_)
        | Command::OrgChart(_)
        | Command::Explain(_)
        | Command::Events(_)
        | Command::Test(_) => Some((LogFormat::Auto, "warn")),
        // `demo --run` ends in the daemon, whose reloads are the point of watching it.
        Command::Demo(ref args) => Some((LogFormat::Auto, if args.run { "info" } else { "warn" })),
        // The daemon logs its life (syncs, reloads, deliveries) at info, in the asked format.
        Command::Run(ref args) => Some((args.log_format, "info")),
    }
}
