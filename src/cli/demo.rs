//! `roster demo`: starts the built-in fake HRIS on loopback (a Personio-shaped and a
//! Merge-shaped source), writes a config directory for it, loads that config through the one
//! pipeline, syncs both sources into a real DuckDB directory, and prints the summary and some
//! queries to try.

use std::path::PathBuf;

use super::sync::sync_all;
use crate::demo::{Dataset, FakeHris, write_config};
use crate::sync::Options;

/// Arguments of `roster demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the demo's config, state and directory go.
    #[arg(long, default_value = "roster-demo")]
    pub dir: PathBuf,
    /// How many people the fake Personio lists.
    #[arg(long, default_value_t = 250)]
    pub people: usize,
    /// Seed of the synthetic company.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Runs the demo.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let tz = jiff::tz::TimeZone::get("Europe/Berlin")?;
        let today = jiff::Timestamp::now().to_zoned(tz).date();
        let fake = FakeHris::start(Dataset::generate(args.seed, args.people, today)).await?;
        let config_dir = args.dir.join("config");
        write_config(&config_dir, fake.addr())?;
        println!(
            "fake HRIS listening on http://{} (Personio-shaped and Merge-shaped APIs)",
            fake.addr()
        );
        println!("config written to {}", config_dir.display());
        let cfg = match super::load_config(&super::ConfigArg {
            config: config_dir.clone(),
        }) {
            Ok(c) => c,
            Err(code) => return Ok(code),
        };
        let plans: Vec<_> = cfg.sources.iter().filter(|s| s.enabled).collect();
        let code = sync_all(&cfg, &plans, &Options::default()).await?;
        let dir = crate::sync::directory_path(&cfg);
        let c = config_dir.display();
        println!();
        println!("Try:");
        for (what, sql) in EXAMPLES {
            println!("  # {what}");
            println!("  roster query -c {c} \"{sql}\"");
        }
        println!("  # or with the DuckDB CLI, any time (also while a sync runs):");
        println!(
            "  duckdb -readonly {} \"from active_people limit 5\"",
            dir.display()
        );
        println!("  # see what a sync would change, without writing:");
        println!("  roster plan -c {c}");
        Ok(code)
    })
}

/// Example queries the demo prints (also in the README).
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "who is in the directory, by department",
        "select department, count(*) as people from active_people group by all order by 2 desc",
    ),
    (
        "who reports to whom (the management chain, with depth)",
        "select repeat('  ', depth) || display_name as person, manager_email from org_chart order by chain limit 15",
    ),
    (
        "who starts in the next 30 days",
        "select date, display_name, worker_type, department from upcoming_dates where kind = 'start_date' and date <= today() + 30",
    ),
    (
        "data problems the HRIS should fix",
        "select kind, source, coalesce(work_email, record_key) as who, detail from data_problems order by kind",
    ),
    (
        "which source set each field (precedence)",
        "select work_email, job_title, provenance['job_title'] as job_title_from, sources from people where len(sources) > 1 limit 5",
    ),
];
