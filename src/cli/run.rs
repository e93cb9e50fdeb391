//! `roster run`: the daemon (see `daemon`). Exit codes: 0 after a clean stop (SIGTERM), 78
//! invalid config at start, 1 anything else that stops it from starting (another instance
//! holds the state database, the admin port is taken).

use super::{ConfigArg, EX_CONFIG};
use crate::daemon::{self, StartError};

/// Arguments of `roster run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the config is.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Log format on stderr: `auto` (journald's when run by systemd, else text), `text`,
    /// `journal` or `json` (one object per line).
    #[arg(long, value_enum, default_value = "auto")]
    pub log_format: crate::logging::LogFormat,
    /// On SIGTERM, how long a sync in flight may run on before it is abandoned (nothing of it
    /// is applied). Keep it below systemd's `TimeoutStopSec`.
    #[arg(long, default_value = "20s", value_parser = super::duration_arg)]
    pub stop_grace: std::time::Duration,
    /// Start over on purpose when the state database is missing although a published
    /// directory or saved tokens show there was one: the first sync of each source is a
    /// baseline that sends no person events, and history starts again. Only for the start
    /// it is given to; do not leave it in the unit.
    #[arg(long)]
    pub rebaseline: bool,
}

/// Runs the daemon until SIGTERM.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    match daemon::run(&args.config.config, args.stop_grace, args.rebaseline) {
        Ok(code) => Ok(code),
        Err(StartError::Config) => {
            eprintln!("error: {}", StartError::Config);
            Ok(EX_CONFIG)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(1)
        }
    }
}
