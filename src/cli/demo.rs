//! `roster demo`: starts the built-in fake HRIS on loopback (a Personio-shaped and a
//! Merge-shaped source) and a webhook receiver, writes a config directory for them, loads
//! that config through the one pipeline, syncs both sources into a real DuckDB directory (the
//! baseline), changes a few people in the fake HRIS, syncs again, and prints the signed
//! events the receiver got, the summary and some queries to try.

use std::path::PathBuf;

use super::sync::sync_all;
use crate::demo::receiver::Receiver;
use crate::demo::{
    Dataset, FakeHris, WEBHOOK_SECRET, a_day_later, write_config, write_webhook_config,
};
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
    /// Then keep going: run the daemon (`roster run`) against the fake HRIS, with the
    /// receiver printing events as they arrive, until Ctrl-C. Edit the config meanwhile to
    /// watch it reload.
    #[arg(long)]
    pub run: bool,
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
        std::fs::create_dir_all(&args.dir)?;
        let log = args.dir.join("webhooks.jsonl");
        let _ = std::fs::remove_file(&log);
        let receiver = Receiver::start(WEBHOOK_SECRET, Some(log.clone())).await?;
        write_config(&config_dir, fake.addr())?;
        write_webhook_config(&config_dir, receiver.addr())?;
        println!(
            "fake HRIS listening on http://{} (Personio-shaped and Merge-shaped APIs)",
            fake.addr()
        );
        println!(
            "webhook receiver listening on http://{}{}",
            receiver.addr(),
            crate::demo::receiver::PATH
        );
        println!("config written to {}", config_dir.display());
        let cfg = match super::load_config(&super::ConfigArg {
            config: config_dir.clone(),
        }) {
            Ok(c) => c,
            Err(code) => return Ok(code),
        };
        let plans: Vec<_> = cfg.sources.iter().filter(|s| s.enabled).collect();
        println!();
        println!("First sync (a baseline: no person events for people already there):");
        let mut code = sync_all(&cfg, &plans, &Options::default()).await?;
        receiver.take();

        println!();
        println!("A day later, in the HRIS:");
        let mut changes = Vec::new();
        fake.update(|d| changes = a_day_later(d, today));
        for c in &changes {
            println!("  {c}");
        }
        println!();
        println!("Second sync:");
        code = code.max(sync_all(&cfg, &plans, &Options::default()).await?);
        let got = receiver.take();
        let verified = got.iter().filter(|r| r.verified).count();
        println!();
        println!(
            "The webhook receiver got {} events, {verified} with a valid Standard Webhooks signature (each delivery is in {}):",
            got.len(),
            log.display()
        );
        for r in &got {
            println!("  {}", crate::demo::receiver::describe(&r.body));
        }
        let dir = crate::sync::directory_path(&cfg);
        let chart = args.dir.join(ORG_CHART);
        match super::org_chart::render(&dir, &Default::default(), super::org_chart::Format::Svg)
            .map_err(|e| e.to_string())
            .and_then(|(svg, n)| {
                std::fs::write(&chart, svg)
                    .map(|()| n)
                    .map_err(|e| format!("cannot write {}: {e}", chart.display()))
            }) {
            Ok(n) => {
                println!();
                println!("The org chart of {n} people: {}", chart.display());
            }
            Err(e) => {
                eprintln!("error: the org chart: {e}");
                code = code.max(1);
            }
        }
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
        println!("  # the event outbox, and one event as the receiver got it:");
        println!("  roster events list -c {c}");
        println!("  roster events show -c {c} <id>");
        println!("  # what the date triggers will fire in the next two weeks, and the org chart:");
        println!("  roster events upcoming -c {c}");
        println!("  roster org-chart -c {c} --format html -o org-chart.html");
        if !args.run {
            println!("  # the whole loop: the daemon against the fake HRIS, until Ctrl-C");
            println!("  roster demo --run");
            return Ok(code);
        }
        println!();
        println!(
            "Running the daemon (roster run) against the fake HRIS; events print as they arrive. Ctrl-C stops it."
        );
        println!("  # its status, metrics, and a sync now:");
        println!(
            "  curl -s http://{}/status; curl -s http://{}/metrics",
            crate::daemon::DEFAULT_ADMIN,
            crate::daemon::DEFAULT_ADMIN
        );
        println!("  roster sync --now -c {c}");
        println!(
            "  # edit {c}/roster.yaml (e.g. `every: 4h` -> `every: 2m` under personio) and watch the log reload it;"
        );
        println!("  # break it (e.g. `every: soon`) and see the error, with the last good config still running.");
        receiver.print_as_they_arrive();
        let code = match crate::daemon::serve(&config_dir, std::time::Duration::from_secs(5), false).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        };
        Ok(code)
    })
}

/// The org chart the demo draws, in its directory.
pub const ORG_CHART: &str = "org-chart.svg";

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
