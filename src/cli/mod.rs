//! The command line: argument types and dispatch. One file per subcommand.
//!
//! Exit codes follow sysexits where one fits: 0 success, 2 usage (clap), 64 (`EX_USAGE`) an
//! unknown source, 69 (`EX_UNAVAILABLE`) the HRIS could not be read, 78 (`EX_CONFIG`) invalid
//! configuration or an unreadable secret, 1 anything else.

pub mod demo;
pub mod events;
pub mod explain;
pub mod fetch;
pub mod org_chart;
pub mod plan_offline;
pub mod query;
pub mod run;
pub mod schema;
pub mod sync;
pub mod test;
pub mod upcoming;
pub mod validate;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// Exit code for an invalid configuration (sysexits `EX_CONFIG`).
pub const EX_CONFIG: u8 = 78;

/// Roster keeps a people directory in sync with HR systems, declaratively.
#[derive(Debug, Parser)]
#[command(name = "roster", version, about, long_about = None)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the config directory: syntax, types, references, JSONPath, schedules, secrets' shape.
    Validate(validate::Args),
    /// Print the JSON Schema (draft-07) of a config file kind, for editors and CI.
    Schema(schema::Args),
    /// Test-read one source: print its raw records as JSON lines (nothing is written).
    Fetch(fetch::Args),
    /// Sync sources into the directory: fetch, map, merge, diff, apply in one transaction, publish.
    Sync(sync::Args),
    /// Run the daemon: scheduled syncs, date triggers, webhook delivery, hot reload, admin HTTP.
    Run(run::Args),
    /// Show what a sync would change (people created, updated, terminated; data problems), without writing.
    Plan(sync::PlanArgs),
    /// Run SQL against the published directory (read-only).
    Query(query::Args),
    /// Explain one person: which source, record and mapping set each field, who lost under
    /// precedence, filtered records, the manager, history and events.
    Explain(explain::Args),
    /// Draw the org chart of the published directory (SVG, DOT, Mermaid or HTML).
    OrgChart(org_chart::Args),
    /// Run the whole pipeline against a built-in fake HRIS on loopback, into ./roster-demo.
    Demo(demo::Args),
    /// The event outbox: list, show, replay, retry; deliver what is due.
    Events(events::Args),
    /// Run the mapping fixtures declared in mapping files (`tests:`): provider records and the people they must map to.
    Test(test::Args),
}

/// The `--config` argument shared by commands that read the config.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// Config directory holding roster.yaml (or the deployment file itself).
    #[arg(
        long,
        short = 'c',
        env = "ROSTER_CONFIG",
        default_value = "/etc/roster",
        global = true
    )]
    pub config: PathBuf,
}

/// A duration argument (`20s`, `10m`), parsed as the config parses durations.
pub(crate) fn duration_arg(s: &str) -> Result<std::time::Duration, String> {
    crate::config::value::Duration::parse(s)
        .map(|d| d.get())
        .map_err(|e| e.to_string())
}

/// Loads the config through the one pipeline, or prints why not.
pub(crate) fn load_config(arg: &ConfigArg) -> Result<Config, u8> {
    match crate::config::load(&arg.config, &crate::config::LoadOptions::default()) {
        Ok(c) => Ok(c),
        Err(d) => {
            eprint!("{}", d.render());
            eprintln!("the config is not valid; run `roster validate` for details");
            Err(EX_CONFIG)
        }
    }
}

/// The published directory a read-only command looks at: `--directory`, else the config's
/// (when the config does not load, its errors are printed and the exit code returned).
pub(crate) fn directory_arg(
    config: &ConfigArg,
    directory: Option<&std::path::Path>,
) -> Result<PathBuf, u8> {
    match directory {
        Some(p) => Ok(p.to_path_buf()),
        None => load_config(config).map(|cfg| crate::sync::directory_path(&cfg)),
    }
}

/// Opens the config's state database, or prints why not and returns exit code 1.
pub(crate) fn open_store(cfg: &Config) -> Result<crate::store::Store, u8> {
    open_store_with(cfg, false)
}

/// [`open_store`], starting over on purpose with `rebaseline` (`--rebaseline`).
pub(crate) fn open_store_with(cfg: &Config, rebaseline: bool) -> Result<crate::store::Store, u8> {
    crate::sync::open_store_with(cfg, rebaseline).map_err(|e| {
        eprintln!("error: {e}");
        1
    })
}

/// Runs the command and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Schema(args) => schema::run(&args),
        Command::Fetch(args) => fetch::run(&args),
        Command::Sync(args) => sync::run(&args),
        Command::Plan(args) => sync::plan(&args),
        Command::Query(args) => query::run(&args),
        Command::OrgChart(args) => org_chart::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Events(args) => events::run(&args),
        Command::Run(args) => run::run(&args),
    }
}
