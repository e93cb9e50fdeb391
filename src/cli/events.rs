//! `roster events`: the outbox from the command line: list, show, replay, retry, deliver.
//!
//! `deliver` evaluates the date triggers and sends what is due (the daemon does both
//! continuously; `roster sync` does them once after syncing).

use std::io::Write as _;
use std::time::Duration;

use super::{ConfigArg, load_config};
use crate::config::Config;
use crate::events::{Rendering, render};
use crate::store::Store;
use crate::store::events::ListFilter;
use crate::webhook::{self, Mode};

/// Arguments of `roster events`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the config is.
    #[command(flatten)]
    pub config: ConfigArg,
    /// What to do.
    #[command(subcommand)]
    pub command: EventsCommand,
}

/// `roster events` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// List events, newest first, with their deliveries.
    List {
        /// Only events with a delivery in this state: pending, delivered, dead.
        #[arg(long)]
        state: Option<String>,
        /// Only events for this endpoint.
        #[arg(long)]
        endpoint: Option<String>,
        /// Only these types (`person.*`, `lifecycle.birthday`).
        #[arg(long = "type")]
        kind: Option<String>,
        /// Only events about this person (work email).
        #[arg(long)]
        person: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one event: its deliveries, and the body an endpoint receives.
    Show {
        /// The event id (`msg_...`), as in `webhook-id`.
        id: String,
        /// Show the body as this endpoint receives it (default: the first endpoint).
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Send an event again, with the same `webhook-id`, to every endpoint that had it or one.
    Replay {
        /// The event id.
        id: String,
        /// Only to this endpoint.
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Retry dead-lettered deliveries (and re-enable endpoints disabled by a 410).
    Retry {
        /// Only this endpoint.
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// The lifecycle events the date triggers will fire in the next days: when (company time
    /// zone), for whom, to which endpoints. Reads the published directory; writes nothing.
    Upcoming(super::upcoming::UpcomingArgs),
    /// Evaluate date triggers and deliver what is due now.
    Deliver {
        /// Keep delivering, waiting for scheduled retries, up to this long (e.g. `10m`).
        #[arg(long, value_parser = super::duration_arg)]
        wait: Option<Duration>,
    },
}

/// Runs `roster events`.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let cfg = match load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let store = match crate::sync::open_store(&cfg) {
        Ok(s) => s,
        // The daemon holds the state database: read the published copy, ask the daemon to
        // change anything.
        Err(crate::store::StoreError::Locked { .. }) => return beside_daemon(args, &cfg),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    let outbox = store.outbox()?;
    let mut out = std::io::stdout().lock();
    match &args.command {
        EventsCommand::List { .. } | EventsCommand::Show { .. } => {
            drop(out);
            show_or_list(args, &cfg, &outbox)
        }
        // Reads the published directory (opening the store above brought it up to date).
        EventsCommand::Upcoming(a) => {
            drop(out);
            super::upcoming::run(&cfg, a)
        }
        EventsCommand::Replay { id, endpoint } => {
            let n = outbox.replay(id, endpoint.as_deref())?;
            if n == 0 {
                eprintln!(
                    "error: event `{id}` has no delivery{} (help: `roster events show {id}`)",
                    endpoint
                        .as_deref()
                        .map(|e| format!(" to `{e}`"))
                        .unwrap_or_default()
                );
                return Ok(1);
            }
            writeln!(
                out,
                "{n} delivery(ies) of {id} queued with the same webhook-id; sending now"
            )?;
            drop(out);
            deliver_now(&cfg, &store, Mode::Due)
        }
        EventsCommand::Retry { endpoint } => {
            let n = outbox.retry(endpoint.as_deref())?;
            writeln!(
                out,
                "{n} dead-lettered delivery(ies) queued again; sending now"
            )?;
            drop(out);
            deliver_now(&cfg, &store, Mode::Due)
        }
        EventsCommand::Deliver { wait } => {
            drop(out);
            let mode = match wait {
                Some(w) => Mode::Drain {
                    deadline: std::time::Instant::now() + *w,
                },
                None => Mode::Due,
            };
            deliver_now(&cfg, &store, mode)
        }
    }
}

/// `roster events list` and `show`, on the live outbox or a published copy.
fn show_or_list(
    args: &Args,
    cfg: &Config,
    outbox: &crate::store::events::Outbox,
) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    match &args.command {
        EventsCommand::List {
            state,
            endpoint,
            kind,
            person,
            limit,
            json,
        } => {
            let rows = outbox.list(&ListFilter {
                state: state.clone(),
                endpoint: endpoint.clone(),
                kind: kind.clone(),
                work_email: person.clone(),
                limit: *limit,
            })?;
            for e in &rows {
                if *json {
                    serde_json::to_writer(&mut out, e)?;
                    writeln!(out)?;
                    continue;
                }
                let deliveries: Vec<String> = e
                    .deliveries
                    .iter()
                    .map(|d| format!("{}={}({})", d.endpoint, d.state, d.attempts))
                    .collect();
                writeln!(
                    out,
                    "{}  {}  {:<26} {:<32} {}{}",
                    e.created_at,
                    e.id,
                    e.kind,
                    e.work_email.as_deref().unwrap_or("-"),
                    deliveries.join(" "),
                    if e.late { "  (late)" } else { "" }
                )?;
            }
            if !*json {
                for (ep, c) in outbox.counts()? {
                    writeln!(
                        out,
                        "endpoint {ep}: {} pending, {} delivered, {} dead{}",
                        c.pending,
                        c.delivered,
                        c.dead,
                        c.disabled
                            .map(|r| format!("; DISABLED: {r}"))
                            .unwrap_or_default()
                    )?;
                }
            }
            Ok(0)
        }
        EventsCommand::Show { id, endpoint } => {
            let Some(e) = outbox.show(id)? else {
                eprintln!(
                    "error: no event `{id}` (help: `roster events list` shows the ids; they are the `webhook-id` header receivers got)"
                );
                return Ok(1);
            };
            let ep = endpoint
                .clone()
                .or_else(|| e.deliveries.first().map(|d| d.endpoint.clone()));
            writeln!(
                out,
                "{} {} at {}{}",
                e.id,
                e.kind,
                e.created_at,
                if e.late { " (late)" } else { "" }
            )?;
            for d in &e.deliveries {
                writeln!(
                    out,
                    "  {}: {} after {} attempt(s){}{}{}",
                    d.endpoint,
                    d.state,
                    d.attempts,
                    d.last_status
                        .map(|s| format!(", last status {s}"))
                        .unwrap_or_default(),
                    d.last_error
                        .as_deref()
                        .map(|s| format!(", last error: {s}"))
                        .unwrap_or_default(),
                    d.next_attempt_at
                        .as_deref()
                        .filter(|_| d.state == "pending")
                        .map(|s| format!(", next attempt {s}"))
                        .unwrap_or_default(),
                )?;
            }
            if let (Some(ep), Some(data)) = (ep, &e.data) {
                let rendering = rendering(cfg, &ep);
                let body = render(&e.id, &e.kind, &e.created_at, data, rendering);
                let pretty: serde_json::Value = serde_json::from_slice(&body)?;
                writeln!(out, "body sent to {ep}:")?;
                serde_json::to_writer_pretty(&mut out, &pretty)?;
                writeln!(out)?;
            }
            Ok(0)
        }
        _ => Ok(0),
    }
}

/// `roster events` while the daemon runs.
fn beside_daemon(args: &Args, cfg: &Config) -> anyhow::Result<u8> {
    match &args.command {
        EventsCommand::List { .. } | EventsCommand::Show { .. } => {
            let path = crate::sync::directory_path(cfg);
            eprintln!(
                "note: the daemon holds the state database; showing the outbox as of the last published directory ({})",
                path.display()
            );
            let outbox = match crate::store::events::Outbox::published(&path) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(1);
                }
            };
            show_or_list(args, cfg, &outbox)
        }
        EventsCommand::Upcoming(a) => super::upcoming::run(cfg, a),
        EventsCommand::Deliver { .. } => {
            println!("the daemon delivers continuously; nothing to do here");
            Ok(0)
        }
        EventsCommand::Replay { id, endpoint } => {
            let mut path = format!("/events/replay?id={id}");
            if let Some(e) = endpoint {
                path.push_str(&format!("&endpoint={e}"));
            }
            ask_daemon(&args.config, &path)
        }
        EventsCommand::Retry { endpoint } => {
            let path = match endpoint {
                Some(e) => format!("/events/retry?endpoint={e}"),
                None => "/events/retry".to_string(),
            };
            ask_daemon(&args.config, &path)
        }
    }
}

fn ask_daemon(config: &super::ConfigArg, path: &str) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let admin = super::sync::AdminClient::new(config);
        let (listen, _, body) = match admin.post(path, None).await {
            Ok(answer) => answer,
            Err(super::sync::AskError::NoDaemon(tried)) => {
                eprintln!(
                    "error: the state database is held by another process, and {tried} (help: stop the other process, or start the daemon)"
                );
                return Ok(super::fetch::EX_UNAVAILABLE);
            }
            Err(super::sync::AskError::Failed(e)) => {
                eprintln!("error: {e}");
                return Ok(super::fetch::EX_UNAVAILABLE);
            }
        };
        match serde_json::from_slice::<crate::daemon::admin::QueuedAnswer>(&body) {
            Ok(a) if a.error.is_none() => {
                println!(
                    "{} delivery(ies) queued by the daemon (same webhook-id); it sends them now",
                    a.queued
                );
                Ok(if a.queued == 0 { 1 } else { 0 })
            }
            Ok(a) => {
                eprintln!("error: {}", a.error.unwrap_or_default());
                Ok(1)
            }
            Err(e) => {
                eprintln!("error: the daemon on {listen} answered with an unreadable body: {e}");
                Ok(1)
            }
        }
    })
}

fn rendering(cfg: &Config, endpoint: &str) -> Rendering {
    cfg.deployment
        .spec
        .webhooks
        .get(endpoint)
        .map(|w| Rendering {
            payload: w.payload,
            birth_date: w.birth_date,
        })
        .unwrap_or(Rendering {
            payload: crate::config::deployment::PayloadKind::Full,
            birth_date: crate::config::deployment::BirthDateDisclosure::MonthDay,
        })
}

fn deliver_now(cfg: &Config, store: &Store, mode: Mode) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    Ok(rt.block_on(evaluate_and_deliver(cfg, store, mode)))
}

/// Evaluates the date triggers and delivers, printing one line per trigger that fired and
/// per endpoint. Returns 0, or 1 when something could not be done (it is printed).
pub async fn evaluate_and_deliver(cfg: &Config, store: &Store, mode: Mode) -> u8 {
    let mut code = 0;
    match crate::lifecycle::evaluate(cfg, store, jiff::Timestamp::now()) {
        Ok(reports) => {
            for r in reports.iter().filter(|r| r.fired > 0 || r.skipped > 0) {
                println!(
                    "trigger {}: {} event(s){}{}",
                    r.trigger,
                    r.fired,
                    if r.late > 0 {
                        format!(", {} late", r.late)
                    } else {
                        String::new()
                    },
                    if r.skipped > 0 {
                        format!(", {} older than events.catch_up_window skipped", r.skipped)
                    } else {
                        String::new()
                    }
                );
            }
        }
        Err(e) => {
            eprintln!("error: date triggers: {e}");
            code = 1;
        }
    }
    let mut ready = Vec::new();
    for ep in webhook::endpoints(cfg) {
        match ep {
            Ok(ep) => ready.push(ep),
            Err(e) => {
                eprintln!("error: {e}");
                code = 1;
            }
        }
    }
    if ready.is_empty() {
        return code;
    }
    let delivering = match webhook::start(store, ready, mode) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    match delivering.wait().await {
        Ok(reports) => {
            for r in reports {
                if r.delivered + r.retried + r.dead == 0 && r.disabled.is_none() {
                    continue;
                }
                let mut line = format!(
                    "webhook {}: {} delivered, {} to retry, {} dead-lettered",
                    r.endpoint, r.delivered, r.retried, r.dead
                );
                if let Some(e) = &r.last_error {
                    line.push_str(&format!("; last error: {e}"));
                }
                if let Some(d) = &r.disabled {
                    line.push_str(&format!("; DISABLED: {d}"));
                }
                println!("{line}");
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            code = 1;
        }
    }
    code
}
