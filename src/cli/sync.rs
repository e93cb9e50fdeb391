//! `roster sync` and `roster plan`: the same pipeline; `plan` rolls back and shows what would
//! change, like a terraform plan.
//!
//! Exit codes: 0 applied (or nothing to do), 69 an HRIS could not be read (nothing applied for
//! it), 75 a run was held by the safety thresholds, 78 invalid config or unreadable secret,
//! 1 anything else (the store, a coverage failure).

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::fetch::{EX_UNAVAILABLE, EX_USAGE};
use super::{ConfigArg, EX_CONFIG, load_config, open_store};
use crate::config::Config;
use crate::config::compile::SourcePlan;
use crate::store::sync::{Change, PersonChange};
use crate::sync::{self, Options, Progress, Report, SyncError};

/// Exit code for a held run (sysexits `EX_TEMPFAIL`: an operator must look, then retry).
pub const EX_HELD: u8 = 75;

/// Arguments of `roster sync`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the config is.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Sync only this source (repeatable). Default: every enabled source, in file order.
    #[arg(long = "source", short = 's')]
    pub sources: Vec<String>,
    /// Apply a run even if it removes more people than the safety thresholds allow, or lists
    /// nobody. Use after checking `roster plan`.
    #[arg(long)]
    pub allow_removals: bool,
    /// Ask the running daemon (`roster run`, through its admin endpoint) to sync now, and
    /// print the result. Without a daemon this says so; plain `roster sync` syncs in this
    /// process instead (when no daemon holds the state database).
    #[arg(long, conflicts_with = "allow_removals")]
    pub now: bool,
    /// Forget a source that is no longer in roster.yaml: its records go, the people only it
    /// listed leave (terminated), the others are merged again without it. Check first with
    /// `roster plan --forget-source NAME`.
    #[arg(long = "forget-source", value_name = "NAME", conflicts_with_all = ["now", "sources"])]
    pub forget: Vec<String>,
    /// Start over on purpose when the state database is missing although a published
    /// directory or saved tokens show there was one (restored nothing from a backup): the
    /// first sync is a baseline that sends no person events, and history starts again.
    #[arg(long, conflicts_with = "now")]
    pub rebaseline: bool,
}

/// Arguments of `roster plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Where the config is.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Plan only this source (repeatable).
    #[arg(long = "source", short = 's')]
    pub sources: Vec<String>,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Plan forgetting a source that is no longer in roster.yaml (see `roster sync
    /// --forget-source`) instead of syncing.
    #[arg(
        long = "forget-source",
        value_name = "NAME",
        conflicts_with = "sources"
    )]
    pub forget: Vec<String>,
}

fn pick<'c>(cfg: &'c Config, names: &[String]) -> Result<Vec<&'c SourcePlan>, u8> {
    if names.is_empty() {
        return Ok(cfg.sources.iter().filter(|s| s.enabled).collect());
    }
    let mut out = Vec::new();
    for n in names {
        match cfg.sources.iter().find(|s| &s.name == n) {
            Some(s) => out.push(s),
            None => {
                let all: Vec<&str> = cfg.sources.iter().map(|s| s.name.as_str()).collect();
                eprintln!(
                    "error: no source `{n}`; the sources are: {}",
                    all.join(", ")
                );
                return Err(EX_USAGE);
            }
        }
    }
    Ok(out)
}

/// The exit code for a sync error.
pub(crate) fn exit_code(e: &SyncError) -> u8 {
    match e {
        SyncError::Fetch(_) | SyncError::Repeated { .. } => EX_UNAVAILABLE,
        SyncError::Secret { .. } => EX_CONFIG,
        _ => 1,
    }
}

/// Progress on a terminal: a spinner with pages, records and rate; otherwise nothing until
/// the summary line.
struct Bar {
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
}

impl Bar {
    fn new(source: &str) -> Bar {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {prefix}: {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            b.set_prefix(source.to_string());
            b.set_message("connecting");
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Bar {
            bar,
            started: Instant::now(),
        }
    }

    fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn page(&mut self, _source: &str, pages: u64, records: u64) {
        if let Some(b) = &self.bar {
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            b.set_message(format!(
                "{pages} requests, {records} records, {:.0} records/s",
                records as f64 / secs
            ));
        }
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One line describing a finished run.
pub fn summary(r: &Report) -> String {
    let run = &r.run;
    let a = &r.applied;
    let secs = run.duration_ms as f64 / 1000.0;
    let mut s = format!(
        "{}: {} in {} ({secs:.1} s): {} kept, {} excluded, {} failed to map",
        r.source,
        plural(run.records, "record", "records"),
        plural(run.pages, "request", "requests"),
        run.kept,
        run.excluded,
        run.failed,
    );
    if r.relisted > 0 {
        s.push_str(&format!(
            "; {} missing from the listing but found by a second listing (kept: the HRIS changed while it was paged)",
            plural(r.relisted, "record", "records")
        ));
    }
    if r.duplicates > 0 {
        s.push_str(&format!(
            "; {} repeated a record key (first occurrence used, see data_problems)",
            plural(r.duplicates, "record", "records")
        ));
    }
    if a.unchanged {
        s.push_str("; no changes");
    } else {
        s.push_str(&format!(
            "; people: {} created, {} updated, {} terminated",
            a.created,
            a.updated + a.reactivated,
            a.terminated
        ));
        if a.problems > 0 {
            s.push_str(&format!(
                "; {} (see the data_problems table)",
                plural(a.problems, "data problem", "data problems")
            ));
        }
    }
    s
}

/// Runs `roster sync`.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if args.now {
        return rt.block_on(sync_now(&args.config, &args.sources));
    }
    let cfg = match load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if !args.forget.is_empty() {
        return forget(&cfg, &args.forget);
    }
    let plans = match pick(&cfg, &args.sources) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let opts = Options {
        allow_removals: args.allow_removals,
        rebaseline: args.rebaseline,
        ..Options::default()
    };
    rt.block_on(sync_all(&cfg, &plans, &opts))
}

/// `roster sync --forget-source`: forgets each source, then publishes.
fn forget(cfg: &Config, names: &[String]) -> anyhow::Result<u8> {
    let mut store = match open_store(cfg) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let mut code = 0u8;
    for name in names {
        match sync::forget_source(cfg, &mut store, name, &Options::default()) {
            Ok(r) => {
                let a = &r.applied;
                println!(
                    "{name}: forgotten; people: {} updated, {} terminated{}",
                    a.updated + a.reactivated,
                    a.terminated,
                    if r.published {
                        format!(
                            "; directory published: {}",
                            store.directory_path().display()
                        )
                    } else {
                        String::new()
                    }
                );
            }
            Err(e) => {
                eprintln!("error: {e}");
                code = code.max(forget_exit_code(&e));
            }
        }
    }
    Ok(code)
}

/// The exit code for a source that cannot be forgotten: 64 for a wrong name, 1 for the store.
fn forget_exit_code(e: &sync::ForgetError) -> u8 {
    match e {
        sync::ForgetError::Store(_) => 1,
        _ => EX_USAGE,
    }
}

/// Warns (on stderr) about sources the directory holds records of but the config no longer
/// names.
fn warn_orphans(cfg: &Config, store: &crate::store::Store) {
    if let Ok(orphans) = sync::orphan_sources(cfg, store) {
        for (name, records) in orphans {
            eprintln!("warning: {}", sync::orphan_warning(&name, records));
        }
    }
}

/// The daemon's admin address from the config. The config on disk may be invalid while the
/// daemon runs the last good one: then `admin.listen` is read from `roster.yaml` alone.
pub(crate) fn admin_address(arg: &ConfigArg) -> String {
    match crate::config::load(&arg.config, &crate::config::LoadOptions::default()) {
        Ok(cfg) => cfg.deployment.spec.admin.address(),
        Err(_) => {
            eprintln!(
                "warning: the config on disk is not valid (`roster validate` shows why); a running daemon keeps its last good config"
            );
            let path = if arg.config.is_dir() {
                arg.config.join(crate::config::DEPLOYMENT_FILE)
            } else {
                arg.config.clone()
            };
            std::fs::read_to_string(path)
                .ok()
                .and_then(|t| serde_yaml::from_str::<serde_yaml::Value>(&t).ok())
                .and_then(|v| v["admin"]["listen"].as_str().map(str::to_string))
                .unwrap_or_else(|| crate::daemon::DEFAULT_ADMIN.to_string())
        }
    }
}

/// `roster sync --now`: asks the daemon over its admin endpoint.
async fn sync_now(config: &ConfigArg, sources: &[String]) -> anyhow::Result<u8> {
    let listen = admin_address(config);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()?;
    let mut code = 0u8;
    // Without --source, the daemon syncs every enabled source of the config it runs.
    let wanted: Vec<Option<&str>> = if sources.is_empty() {
        vec![None]
    } else {
        sources.iter().map(|s| Some(s.as_str())).collect()
    };
    for source in wanted {
        let url = match source {
            Some(s) => format!("http://{listen}/sync?source={s}"),
            None => format!("http://{listen}/sync"),
        };
        let resp = match client.post(&url).send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                eprintln!(
                    "error: no roster daemon answers on {listen} (admin.listen): {} (help: start it, e.g. `systemctl start roster`, or sync in this process with `roster sync` without --now)",
                    crate::provider::fetch::error_chain(&e)
                );
                return Ok(EX_UNAVAILABLE);
            }
            Err(e) => {
                eprintln!("error: asking the daemon on {listen}: {e}");
                return Ok(EX_UNAVAILABLE);
            }
        };
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        let answer: crate::daemon::admin::SyncAnswer = match serde_json::from_slice(&body) {
            Ok(a) => a,
            Err(e) => {
                eprintln!(
                    "error: the daemon on {listen} answered {status} with an unreadable body: {e}"
                );
                return Ok(1);
            }
        };
        if let Some(e) = answer.error {
            eprintln!("error: {e}");
            code = code.max(if status == reqwest::StatusCode::NOT_FOUND {
                EX_USAGE
            } else {
                1
            });
        }
        for r in answer.results {
            match r.outcome.as_str() {
                "failed" | "abandoned" => {
                    eprintln!("error: {}", r.message);
                    code = code.max(EX_UNAVAILABLE);
                }
                "held" => {
                    println!("{}", r.message);
                    code = code.max(EX_HELD);
                }
                _ => println!("{}", r.message),
            }
        }
    }
    Ok(code)
}

/// Syncs the given sources in order and prints a summary per source. Returns the exit code.
pub async fn sync_all(cfg: &Config, plans: &[&SourcePlan], opts: &Options) -> anyhow::Result<u8> {
    let mut store = match super::open_store_with(cfg, opts.rebaseline) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let mut code = 0u8;
    let mut published = false;
    for plan in plans {
        let mut bar = Bar::new(&plan.name);
        let result = sync::sync_source(cfg, &mut store, plan, opts, &mut bar).await;
        bar.done();
        match result {
            Ok(r) => {
                println!("{}", summary(&r));
                for c in &r.coverage {
                    println!("{}: warning: {c}", r.source);
                }
                if let Some(reason) = &r.applied.held {
                    println!("{}: HELD: {reason}", r.source);
                    code = code.max(EX_HELD);
                }
                published |= r.published;
            }
            Err(e) => {
                eprintln!("error: {e}");
                code = code.max(exit_code(&e));
            }
        }
    }
    // A run that failed still leaves a directory as fresh as the state.
    match store.publish_if_stale() {
        Ok(p) => published |= p,
        Err(e) => {
            eprintln!("error: {e}");
            code = code.max(1);
        }
    }
    let dir = store.directory_path().display().to_string();
    if published {
        println!("directory published: {dir}");
    } else if store.directory_path().exists() {
        println!("directory up to date: {dir}");
    }
    warn_orphans(cfg, &store);
    let events = super::events::evaluate_and_deliver(cfg, &store, crate::webhook::Mode::Due).await;
    std::io::stdout().flush().ok();
    Ok(code.max(events))
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    source: &'a str,
    records: u64,
    held: Option<&'a str>,
    created: u64,
    updated: u64,
    terminated: u64,
    reactivated: u64,
    people: Vec<JsonPerson<'a>>,
    data_problems: &'a [crate::store::sync::Problem],
    coverage: &'a [String],
    events: Vec<JsonEvent<'a>>,
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    work_email: Option<&'a str>,
    endpoints: &'a [String],
}

#[derive(Serialize)]
struct JsonPerson<'a> {
    work_email: &'a str,
    change: PersonChange,
    fields: &'a [Change],
}

/// Runs `roster plan`.
pub fn plan(args: &PlanArgs) -> anyhow::Result<u8> {
    let cfg = match load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let plans = match pick(&cfg, &args.sources) {
        Ok(p) if args.forget.is_empty() => p,
        Ok(_) => Vec::new(),
        Err(code) => return Ok(code),
    };
    let opts = Options {
        dry_run: true,
        want_changes: true,
        ..Options::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut store = match open_store(&cfg) {
            Ok(s) => s,
            Err(code) => return Ok(code),
        };
        let mut code = 0u8;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let mut reports = Vec::new();
        for plan in plans {
            let mut bar = Bar::new(&plan.name);
            let result = sync::sync_source(&cfg, &mut store, plan, &opts, &mut bar).await;
            bar.done();
            reports.push(
                result
                    .inspect_err(|e| code = code.max(exit_code(e)))
                    .map_err(|e| e.to_string()),
            );
        }
        for name in &args.forget {
            let result = sync::forget_source(&cfg, &mut store, name, &opts);
            if let Err(e) = &result {
                code = code.max(forget_exit_code(e));
            }
            reports.push(result.map_err(|e| e.to_string()));
        }
        if args.forget.is_empty() {
            warn_orphans(&cfg, &store);
        }
        for result in reports {
            let r = match result {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    continue;
                }
            };
            if args.json {
                let a = &r.applied;
                let doc = JsonPlan {
                    source: &r.source,
                    records: r.run.records,
                    held: a.held.as_deref(),
                    created: a.created,
                    updated: a.updated,
                    terminated: a.terminated,
                    reactivated: a.reactivated,
                    people: a
                        .people
                        .iter()
                        .map(|(e, k, f)| JsonPerson {
                            work_email: e,
                            change: *k,
                            fields: f,
                        })
                        .collect(),
                    data_problems: &a.problem_list,
                    coverage: &r.coverage,
                    events: a
                        .events
                        .iter()
                        .map(|(e, endpoints)| JsonEvent {
                            id: &e.id,
                            kind: &e.kind,
                            work_email: e.work_email.as_deref(),
                            endpoints,
                        })
                        .collect(),
                };
                serde_json::to_writer(&mut out, &doc)?;
                writeln!(out)?;
            } else {
                write_plan(&mut out, &r)?;
            }
            if r.applied.held.is_some() {
                code = code.max(EX_HELD);
            }
        }
        out.flush()?;
        Ok(code)
    })
}

fn show(v: &Option<String>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => "(empty)".into(),
    }
}

fn write_plan(out: &mut impl std::io::Write, r: &Report) -> std::io::Result<()> {
    let a = &r.applied;
    writeln!(
        out,
        "source {}: {} in {}",
        r.source,
        plural(r.run.records, "record", "records"),
        plural(r.run.pages, "request", "requests")
    )?;
    for (email, kind, fields) in &a.people {
        let (mark, label) = match kind {
            PersonChange::Created => ("+", "create"),
            PersonChange::Updated => ("~", "update"),
            PersonChange::Terminated => ("-", "terminate"),
            PersonChange::Reactivated => ("+", "reactivate"),
        };
        writeln!(out, "  {mark} {email} ({label})")?;
        for f in fields {
            if *kind == PersonChange::Created {
                if let Some(v) = &f.new {
                    writeln!(out, "      {}: {v:?}", f.field)?;
                }
            } else {
                writeln!(
                    out,
                    "      {}: {} -> {} ({})",
                    f.field,
                    show(&f.old),
                    show(&f.new),
                    f.source
                )?;
            }
        }
    }
    for p in &a.problem_list {
        writeln!(
            out,
            "  ! {}: {}{}",
            p.kind,
            p.work_email
                .as_deref()
                .or(p.record_key.as_deref())
                .map(|w| format!("{w}: "))
                .unwrap_or_default(),
            p.detail
        )?;
    }
    for c in &r.coverage {
        writeln!(out, "  warning: {c}")?;
    }
    for (ev, endpoints) in &a.events {
        writeln!(
            out,
            "  > {} {} -> {}",
            ev.kind,
            ev.work_email.as_deref().unwrap_or(""),
            endpoints.join(", ")
        )?;
    }
    if let Some(reason) = &a.held {
        writeln!(out, "  HELD: {reason}")?;
    }
    writeln!(
        out,
        "Plan for {}: {} to create, {} to update, {} to terminate, {} to reactivate; {}.",
        r.source,
        a.created,
        a.updated,
        a.terminated,
        a.reactivated,
        plural(a.problems, "data problem", "data problems")
    )
}
