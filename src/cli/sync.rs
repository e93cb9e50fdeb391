//! `roster sync` and `roster plan`: the same pipeline; `plan` rolls back and shows what would
//! change, like a terraform plan.
//!
//! Exit codes: 0 applied (or nothing to do), 69 an HRIS could not be read (nothing applied for
//! it), 75 a run was held by the safety thresholds, 78 invalid config or unreadable secret,
//! 1 anything else (the store, a coverage failure).
//!
//! Beside a running daemon (which holds the state database), `sync --now` and `plan` go
//! through its admin endpoint ([`AdminClient`]): the daemon runs them on its sync thread and
//! answers with what this process would have printed.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

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
    /// print the result (with `--allow-removals`: apply a held run). Without a daemon this
    /// says so; plain `roster sync` syncs in this process instead (when no daemon holds the
    /// state database).
    #[arg(long)]
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
    /// Read each source's whole listing, also where its stream reads incrementally
    /// (`incremental:`): a reconciliation now instead of at `full_every`. Only a full read
    /// removes people who left.
    #[arg(long)]
    pub full: bool,
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
    /// Print the plan as JSON (the same as `--format json`).
    #[arg(long)]
    pub json: bool,
    /// Output format: `text`, or `json` (one document per source; offline, a summary last).
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Plan without the HRIS: map the raw records the directory stores again with this
    /// config (`--config`, e.g. a pull request's), merge, and compare with the directory.
    /// No network, no credentials. Exit codes: 0 no changes, 2 changes, 75 would be held,
    /// 78 invalid config.
    #[arg(long, conflicts_with = "forget")]
    pub offline: bool,
    /// With `--offline`: the directory (or state database) to plan against, or a folder
    /// holding one (default: the config's published directory). It is copied; the original
    /// is never written.
    #[arg(long, value_name = "STATE_OR_DIRECTORY", requires = "offline")]
    pub against: Option<PathBuf>,
    /// Plan a full read of sources that read incrementally (`incremental:`): what the next
    /// reconciliation would change, removals included. Without it a plan reads as the next
    /// sync would, which may be a partial listing that removes nobody.
    #[arg(long, conflicts_with = "offline")]
    pub full: bool,
    /// Plan forgetting a source that is no longer in roster.yaml (see `roster sync
    /// --forget-source`) instead of syncing.
    #[arg(
        long = "forget-source",
        value_name = "NAME",
        conflicts_with = "sources"
    )]
    pub forget: Vec<String>,
}

/// Output formats of `roster plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PlanFormat {
    /// Terraform-like text.
    #[default]
    Text,
    /// JSON.
    Json,
}

/// The sources named (all enabled ones when none is), or the message for an unknown name.
pub(crate) fn pick<'c>(cfg: &'c Config, names: &[String]) -> Result<Vec<&'c SourcePlan>, String> {
    if names.is_empty() {
        return Ok(cfg.sources.iter().filter(|s| s.enabled).collect());
    }
    let mut out = Vec::new();
    for n in names {
        match cfg.sources.iter().find(|s| &s.name == n) {
            Some(s) => out.push(s),
            None => {
                let all: Vec<&str> = cfg.sources.iter().map(|s| s.name.as_str()).collect();
                return Err(format!(
                    "error: no source `{n}`; the sources are: {}",
                    all.join(", ")
                ));
            }
        }
    }
    Ok(out)
}

/// What `sync --now` prints for a held run: the reason (whose help names the local command)
/// and the command that applies it beside the daemon.
fn held_through_daemon(source: &str, reason: &str) -> String {
    format!(
        "{source}: HELD: {reason}\n{source}: the daemon holds the state database: after checking `roster plan --source {source}`, apply it through the daemon with `roster sync --now --allow-removals --source {source}`"
    )
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

pub(crate) fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One line describing a finished run.
pub fn summary(r: &Report) -> String {
    let run = &r.run;
    let a = &r.applied;
    let secs = run.duration_ms as f64 / 1000.0;
    let read = match (run.listing.as_deref(), &run.since) {
        (Some("incremental"), Some(since)) => format!(" changed since {since} (incremental read)"),
        _ => String::new(),
    };
    let mut s = format!(
        "{}: {}{read} in {} ({secs:.1} s): {} kept, {} excluded, {} failed to map",
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
        return rt.block_on(sync_now(
            &args.config,
            &args.sources,
            args.allow_removals,
            args.full,
        ));
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
        Err(e) => {
            eprintln!("{e}");
            return Ok(EX_USAGE);
        }
    };
    let opts = Options {
        allow_removals: args.allow_removals,
        rebaseline: args.rebaseline,
        full: args.full,
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
    eprint!("{}", orphan_warnings(cfg, store));
}

/// One `warning:` line per source the directory holds records of but the config no longer
/// names.
fn orphan_warnings(cfg: &Config, store: &crate::store::Store) -> String {
    sync::orphan_sources(cfg, store)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, records)| format!("warning: {}\n", sync::orphan_warning(&name, records)))
        .collect()
}

/// Where one running daemon may answer, and the token to present there.
#[derive(Debug, Clone)]
struct Candidate {
    addr: String,
    /// Where the address came from, for the message when nothing answers.
    origin: String,
    token_file: PathBuf,
}

/// A client of the running daemon's admin endpoint. It finds the daemon by the address file
/// the daemon writes at start (`<state_dir>/admin.addr`) and by `admin.listen`, and presents
/// the token from `<state_dir>/admin.token`. The config on disk may be invalid while the
/// daemon runs the last good one: then the state directory and `admin.listen` are read from
/// `roster.yaml` as far as it can be read, and the default state directory is tried too.
#[derive(Debug)]
pub(crate) struct AdminClient {
    candidates: Vec<Candidate>,
    /// Address files looked for and not found (for the message when nothing answers).
    missing: Vec<PathBuf>,
    http: reqwest::Client,
}

/// Why the daemon could not be asked.
#[derive(Debug)]
pub(crate) enum AskError {
    /// Nothing answers at any address tried; the text names each one and where it came from.
    NoDaemon(String),
    /// A daemon answered, but not with an answer (refused token, unreadable body, ...).
    Failed(String),
}

impl AdminClient {
    /// The candidates for `arg`'s config (warns on stderr when the config is not valid).
    pub(crate) fn new(arg: &ConfigArg) -> AdminClient {
        let mut found: Vec<(String, String, PathBuf)> = Vec::new();
        let state_dirs: Vec<PathBuf>;
        match crate::config::load(&arg.config, &crate::config::LoadOptions::default()) {
            Ok(cfg) => {
                state_dirs = vec![cfg.state_dir()];
                found.push((
                    cfg.deployment.spec.admin.address(),
                    "admin.listen in roster.yaml".into(),
                    cfg.state_dir(),
                ));
            }
            Err(_) => {
                eprintln!(
                    "warning: the config on disk is not valid (`roster validate` shows why); a running daemon keeps its last good config"
                );
                let (dir, file) = if arg.config.is_file() {
                    let dir = arg
                        .config
                        .parent()
                        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
                    (dir, arg.config.clone())
                } else {
                    (
                        arg.config.clone(),
                        arg.config.join(crate::config::DEPLOYMENT_FILE),
                    )
                };
                let text = std::fs::read_to_string(&file).unwrap_or_default();
                let (state_dir, listen) = loose_keys(&text);
                // As the config resolves it: relative to the config directory, else the
                // default (systemd's STATE_DIRECTORY or /var/lib/roster).
                let mut dirs: Vec<PathBuf> = state_dir.map(|d| dir.join(d)).into_iter().collect();
                dirs.push(crate::config::default_state_dir());
                dirs.dedup();
                let origin = if listen.is_some() {
                    "admin.listen in roster.yaml".to_string()
                } else {
                    "the default admin address".to_string()
                };
                found.push((
                    listen.unwrap_or_else(|| crate::daemon::DEFAULT_ADMIN.to_string()),
                    origin,
                    dirs[0].clone(),
                ));
                state_dirs = dirs;
            }
        }
        // The address files first: they say where a daemon actually listens.
        let mut candidates = Vec::new();
        let mut missing = Vec::new();
        for dir in &state_dirs {
            let file = dir.join(crate::daemon::ADDR_FILE);
            match std::fs::read_to_string(&file) {
                Ok(addr) if !addr.trim().is_empty() => candidates.push(Candidate {
                    addr: addr.trim().to_string(),
                    origin: format!("from {}", file.display()),
                    token_file: dir.join(crate::daemon::TOKEN_FILE),
                }),
                _ => missing.push(file),
            }
        }
        for (addr, origin, dir) in found {
            candidates.push(Candidate {
                addr,
                origin,
                token_file: dir.join(crate::daemon::TOKEN_FILE),
            });
        }
        let mut seen = std::collections::HashSet::new();
        candidates.retain(|c| seen.insert(c.addr.clone()));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap_or_default();
        AdminClient {
            candidates,
            missing,
            http,
        }
    }

    /// POSTs to `path_and_query` (with a JSON body when given) at the first candidate that
    /// answers. Returns the address that answered, the status and the body.
    pub(crate) async fn post(
        &self,
        path_and_query: &str,
        json: Option<&serde_json::Value>,
    ) -> Result<(String, reqwest::StatusCode, bytes::Bytes), AskError> {
        let mut tried = Vec::new();
        for c in &self.candidates {
            let token = std::fs::read_to_string(&c.token_file);
            let mut req = self.http.post(format!("http://{}{path_and_query}", c.addr));
            if let Ok(t) = &token {
                req = req.bearer_auth(t.trim());
            }
            if let Some(j) = json {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(j.to_string());
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if e.is_connect() => {
                    tried.push(format!(
                        "{} ({}: {})",
                        c.addr,
                        c.origin,
                        crate::provider::fetch::error_chain(&e)
                    ));
                    continue;
                }
                Err(e) => {
                    return Err(AskError::Failed(format!(
                        "asking the daemon on {}: {}",
                        c.addr,
                        crate::provider::fetch::error_chain(&e)
                    )));
                }
            };
            let status = resp.status();
            let body = resp.bytes().await.unwrap_or_default();
            if status == reqwest::StatusCode::UNAUTHORIZED {
                let why = match token {
                    Err(e) => format!(
                        "this process cannot read the admin token {}: {e} (help: run it as roster's user or a member of its group, e.g. `sudo -u roster roster ...`)",
                        c.token_file.display()
                    ),
                    Ok(_) => format!(
                        "the daemon on {} refused the admin token in {} (help: the token is written anew at each start; is this the state directory of the daemon listening there?)",
                        c.addr,
                        c.token_file.display()
                    ),
                };
                return Err(AskError::Failed(why));
            }
            return Ok((c.addr.clone(), status, body));
        }
        let mut text = format!("no roster daemon answers on {}", tried.join(", nor on "));
        if !self.missing.is_empty() {
            let files: Vec<String> = self
                .missing
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            text.push_str(&format!(
                "; no address file at {} (a running daemon writes it at start)",
                files.join(" or ")
            ));
        }
        Err(AskError::NoDaemon(text))
    }
}

/// `store.state_dir` and `admin.listen` from a `roster.yaml` that does not load: through the
/// YAML parser when the file is YAML at all, else line by line (a syntax error elsewhere must
/// not hide where the daemon is).
fn loose_keys(text: &str) -> (Option<String>, Option<String>) {
    if let Ok(v) = serde_yaml::from_str::<serde_yaml::Value>(text) {
        let get = |a: &str, b: &str| v[a][b].as_str().map(str::to_string);
        return (get("store", "state_dir"), get("admin", "listen"));
    }
    let scan = |key: &str| {
        text.lines().find_map(|line| {
            let value = line.trim_start().strip_prefix(key)?.strip_prefix(':')?;
            let value = value.split(" #").next()?.trim().trim_matches(['"', '\'']);
            (!value.is_empty()).then(|| value.to_string())
        })
    };
    (scan("state_dir"), scan("listen"))
}

/// `roster sync --now`: asks the daemon over its admin endpoint.
async fn sync_now(
    config: &ConfigArg,
    sources: &[String],
    allow_removals: bool,
    full: bool,
) -> anyhow::Result<u8> {
    let admin = AdminClient::new(config);
    let mut code = 0u8;
    // Without --source, the daemon syncs every enabled source of the config it runs.
    let wanted: Vec<Option<&str>> = if sources.is_empty() {
        vec![None]
    } else {
        sources.iter().map(|s| Some(s.as_str())).collect()
    };
    for source in wanted {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(s) = source {
            query.append_pair("source", s);
        }
        if allow_removals {
            query.append_pair("allow_removals", "true");
        }
        if full {
            query.append_pair("full", "true");
        }
        let query = query.finish();
        let path = if query.is_empty() {
            "/sync".to_string()
        } else {
            format!("/sync?{query}")
        };
        let (listen, status, body) = match admin.post(&path, None).await {
            Ok(answer) => answer,
            Err(AskError::NoDaemon(tried)) => {
                eprintln!(
                    "error: {tried} (help: start it, e.g. `systemctl start roster`, or sync in this process with `roster sync` without --now)"
                );
                return Ok(EX_UNAVAILABLE);
            }
            Err(AskError::Failed(e)) => {
                eprintln!("error: {e}");
                return Ok(EX_UNAVAILABLE);
            }
        };
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
                    let reason = r.held.as_deref().unwrap_or("the safety thresholds held it");
                    println!("{}", held_through_daemon(&r.source, reason));
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
                let e = located(e, store.state_path());
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

/// What to plan: the parts of `roster plan`'s arguments the daemon needs when it plans.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PlanRequest {
    /// Plan only these sources (all enabled ones when empty).
    pub sources: Vec<String>,
    /// Plan forgetting these sources instead.
    pub forget: Vec<String>,
    /// One JSON document per source instead of text.
    pub json: bool,
    /// Plan a full read where a source reads incrementally (what a reconciliation would do).
    pub full: bool,
}

/// A plan as `roster plan` prints it: the same text whether this process or the daemon made
/// it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PlanOutput {
    /// What goes to stdout.
    pub stdout: String,
    /// Errors and warnings, for stderr.
    pub stderr: String,
    /// The exit code.
    pub code: u8,
}

/// Runs `roster plan`: here, or through the daemon when it holds the state database.
pub fn plan(args: &PlanArgs) -> anyhow::Result<u8> {
    let cfg = match load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let json = args.json || args.format == PlanFormat::Json;
    if args.offline {
        let output = super::plan_offline::run(&cfg, args, json);
        eprint!("{}", output.stderr);
        let mut out = std::io::stdout().lock();
        out.write_all(output.stdout.as_bytes())?;
        out.flush()?;
        return Ok(output.code);
    }
    let request = PlanRequest {
        sources: args.sources.clone(),
        forget: args.forget.clone(),
        json,
        full: args.full,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let output = rt.block_on(async {
        match sync::open_store(&cfg) {
            Ok(mut store) => plan_into(&cfg, &mut store, &request, true).await,
            Err(locked @ crate::store::StoreError::Locked { .. }) => {
                plan_through_daemon(&args.config, &request, &locked).await
            }
            Err(e) => PlanOutput {
                stderr: format!("error: {e}\n"),
                code: 1,
                ..PlanOutput::default()
            },
        }
    });
    eprint!("{}", output.stderr);
    let mut out = std::io::stdout().lock();
    out.write_all(output.stdout.as_bytes())?;
    out.flush()?;
    Ok(output.code)
}

/// `roster plan` beside the daemon, which holds the state database: it plans on its sync
/// thread. `locked` is the lock error, shown when no daemon answers (then another process
/// holds the file).
async fn plan_through_daemon(
    config: &ConfigArg,
    request: &PlanRequest,
    locked: &crate::store::StoreError,
) -> PlanOutput {
    let failed = |stderr: String| PlanOutput {
        stderr,
        code: 1,
        ..PlanOutput::default()
    };
    let body = serde_json::to_value(request).unwrap_or_default();
    let (listen, status, body) = match AdminClient::new(config).post("/plan", Some(&body)).await {
        Ok(answer) => answer,
        Err(AskError::NoDaemon(tried)) => {
            return failed(format!(
                "error: {locked}\nerror: and {tried}, so nothing can plan now (help: wait for the process holding the state database to finish, then run `roster plan` again)\n"
            ));
        }
        Err(AskError::Failed(e)) => return failed(format!("error: {e}\n")),
    };
    match serde_json::from_slice::<PlanOutput>(&body) {
        Ok(mut output) => {
            output.stderr.insert_str(
                0,
                &format!(
                    "note: the roster daemon on {listen} holds the state database; it made this plan with the config it runs\n"
                ),
            );
            output
        }
        Err(e) => failed(format!(
            "error: the daemon on {listen} answered {status} with an unreadable body: {e}\n"
        )),
    }
}

/// Plans `request` against an open store (dry runs, rolled back) and renders it as `roster
/// plan` prints it. `progress`: a spinner on stderr when it is a terminal (not in the daemon).
pub async fn plan_into(
    cfg: &Config,
    store: &mut crate::store::Store,
    request: &PlanRequest,
    progress: bool,
) -> PlanOutput {
    let mut output = PlanOutput::default();
    let plans = match pick(cfg, &request.sources) {
        Ok(p) if request.forget.is_empty() => p,
        Ok(_) => Vec::new(),
        Err(e) => {
            output.stderr = format!("{e}\n");
            output.code = EX_USAGE;
            return output;
        }
    };
    let opts = Options {
        dry_run: true,
        want_changes: true,
        full: request.full,
        ..Options::default()
    };
    let mut code = 0u8;
    let mut reports = Vec::new();
    for plan in plans {
        let result = if progress {
            let mut bar = Bar::new(&plan.name);
            let r = sync::sync_source(cfg, store, plan, &opts, &mut bar).await;
            bar.done();
            r
        } else {
            sync::sync_source(cfg, store, plan, &opts, &mut sync::NoProgress).await
        };
        reports.push(
            result
                .map_err(|e| located(e, store.state_path()))
                .inspect_err(|e| code = code.max(exit_code(e)))
                .map_err(|e| e.to_string()),
        );
    }
    for name in &request.forget {
        let result = sync::forget_source(cfg, store, name, &opts);
        if let Err(e) = &result {
            code = code.max(forget_exit_code(e));
        }
        reports.push(result.map_err(|e| e.to_string()));
    }
    let mut err = String::new();
    if request.forget.is_empty() {
        err = orphan_warnings(cfg, store);
    }
    let mut out = Vec::new();
    for result in reports {
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                err.push_str(&format!("error: {e}\n"));
                continue;
            }
        };
        // Writing into memory cannot fail.
        let _ = if request.json {
            write_json_plan(&mut out, &r)
        } else {
            write_plan(&mut out, &r)
        };
        if r.applied.held.is_some() {
            code = code.max(EX_HELD);
        }
    }
    output.stdout = String::from_utf8_lossy(&out).into_owned();
    output.stderr = err;
    output.code = code;
    output
}

/// The same error, with a store error classified against the state database (a damaged
/// block or a full disk found deep inside a query says so, and what to do).
pub(crate) fn located(e: SyncError, state_path: &Path) -> SyncError {
    match e {
        SyncError::Store(e) => SyncError::Store(e.locate(state_path)),
        other => other,
    }
}

pub(crate) fn write_json_plan(out: &mut impl std::io::Write, r: &Report) -> std::io::Result<()> {
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
    serde_json::to_writer(&mut *out, &doc)?;
    writeln!(out)
}

fn show(v: &Option<String>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => "(empty)".into(),
    }
}

pub(crate) fn write_plan(out: &mut impl std::io::Write, r: &Report) -> std::io::Result<()> {
    let a = &r.applied;
    if r.run.pages == 0 {
        // `plan --offline`: the stored records, mapped again; nothing was requested.
        writeln!(
            out,
            "source {}: {} mapped again",
            r.source,
            plural(r.run.records, "stored record", "stored records")
        )?;
    } else {
        writeln!(
            out,
            "source {}: {} in {}",
            r.source,
            plural(r.run.records, "record", "records"),
            plural(r.run.pages, "request", "requests")
        )?;
    }
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

#[cfg(test)]
mod tests {
    use super::loose_keys;

    #[test]
    fn where_the_daemon_is_is_read_from_a_roster_yaml_that_does_not_load() {
        let check = |text: &str, state: Option<&str>, listen: Option<&str>| {
            let (s, l) = loose_keys(text);
            assert_eq!((s.as_deref(), l.as_deref()), (state, listen), "{text}");
        };
        // Valid YAML, invalid config: through the parser.
        check(
            "time_zone: Mars\nstore: {state_dir: /srv/state}\nadmin:\n  listen: 127.0.0.1:9999\n",
            Some("/srv/state"),
            Some("127.0.0.1:9999"),
        );
        // Not YAML at all (an unclosed bracket): line by line, quotes and comments dropped.
        check(
            "sources: [hr\nstore:\n  state_dir: \"state\"  # beside the config\nadmin:\n  listen: '127.0.0.1:9999'\n",
            Some("state"),
            Some("127.0.0.1:9999"),
        );
        check("sources: [hr\n", None, None);
        check("", None, None);
    }
}
