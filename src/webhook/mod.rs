//! Delivery of the outbox to webhook endpoints, following Standard Webhooks.
//!
//! Every endpoint has its own worker with its own connection to the outbox, so a slow or dead
//! receiver never delays the others. A worker takes the deliveries that are due, sends them
//! (a few at a time), and records each outcome: delivered (2xx only), retried on the
//! endpoint's schedule with jitter (`Retry-After` honoured), dead-lettered when the schedule
//! is exhausted, or the endpoint disabled by a `410 Gone`. Delivery is at least once: a
//! process killed between sending and recording sends again, with the same `webhook-id`.

pub mod attempt;
pub mod sign;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use jiff::Timestamp;

use crate::config::Config;
use crate::config::secret::ProcessEnv;
use crate::events::{MAX_BODY_BYTES, Rendering, render_capped};
use crate::store::events::{AttemptRecord, Due, Outbox};
use crate::store::{Store, StoreError};

use attempt::{Delivery, Outcome};

/// Deliveries taken from the outbox at a time, per endpoint (measured: 256 left most of
/// a 100k drain in the `due` query; see benches/deliver.rs).
pub const BATCH: usize = 512;
/// Requests in flight per endpoint: at most this many divided by the receiver's response
/// time per second (16 at 20 ms: 800/s).
pub const CONCURRENCY: usize = 16;
/// Default time allowed for a receiver to answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One configured endpoint, ready to send.
pub struct Endpoint {
    /// The endpoint's name in `roster.yaml`.
    pub name: String,
    url: url::Url,
    secrets: Vec<sign::Secret>,
    schedule: Vec<Duration>,
    allow_private_network: bool,
    rendering: Rendering,
    client: reqwest::Client,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// Why an endpoint cannot send. Never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// A signing secret could not be read.
    #[error("webhook `{endpoint}`: cannot read its {what}: {reason} (help: {help})")]
    Secret {
        /// The endpoint.
        endpoint: String,
        /// `secret` or `rotating_secrets[1]`.
        what: String,
        /// Why.
        reason: String,
        /// What to do.
        help: String,
    },
    /// The HTTP client could not be built.
    #[error("webhook `{endpoint}`: {reason}")]
    Client {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The outbox could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The configured endpoints; those whose secrets cannot be read are returned as errors, so
/// the others still deliver.
pub fn endpoints(cfg: &Config) -> Vec<Result<Endpoint, DeliverError>> {
    let env = ProcessEnv {
        config_dir: cfg.dir.clone(),
    };
    let user_agent = concat!("roster/", env!("CARGO_PKG_VERSION"));
    cfg.deployment
        .spec
        .webhooks
        .iter()
        .map(|(name, w)| {
            let mut secrets = Vec::new();
            let refs = std::iter::once(("secret".to_string(), &w.secret)).chain(
                w.rotating_secrets
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (format!("rotating_secrets[{i}]"), r)),
            );
            for (what, r) in refs {
                let value = r.resolve(&env).map_err(|e| DeliverError::Secret {
                    endpoint: name.clone(),
                    what: what.clone(),
                    reason: e.to_string(),
                    help: e.help(),
                })?;
                let secret =
                    sign::Secret::parse(value.expose()).map_err(|e| DeliverError::Secret {
                        endpoint: name.clone(),
                        what: what.clone(),
                        reason: e.to_string(),
                        help: "use the `whsec_...` secret the receiver was given".into(),
                    })?;
                secrets.push(secret);
            }
            let timeout = w.timeout.as_ref().map_or(DEFAULT_TIMEOUT, |t| t.get());
            let client =
                attempt::client(timeout, w.allow_private_network, user_agent).map_err(|e| {
                    DeliverError::Client {
                        endpoint: name.clone(),
                        reason: e.to_string(),
                    }
                })?;
            Ok(Endpoint {
                name: name.clone(),
                url: w.url.url().clone(),
                secrets,
                schedule: w.retry_schedule.as_ref().map_or_else(
                    || attempt::DEFAULT_SCHEDULE.to_vec(),
                    |s| s.iter().map(|d| d.get()).collect(),
                ),
                allow_private_network: w.allow_private_network,
                rendering: Rendering {
                    payload: w.payload,
                    birth_date: w.birth_date,
                },
                client,
            })
        })
        .collect()
}

/// How long a delivery run goes on.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Send what is due now, once; retries scheduled later stay in the outbox.
    Due,
    /// Keep going, waiting for scheduled retries, until nothing is pending or the deadline.
    Drain {
        /// When to stop waiting.
        deadline: std::time::Instant,
    },
    /// The daemon: deliver until `stop` turns true, sleeping until the next retry is due or
    /// `wake` is notified (new events were written). A disabled endpoint is checked again
    /// every minute (`roster events retry` re-enables it from another process).
    Forever {
        /// Turns true on shutdown or when the endpoint's config changed.
        stop: tokio::sync::watch::Receiver<bool>,
        /// Notified after a sync or a trigger evaluation wrote events.
        wake: Arc<tokio::sync::Notify>,
    },
}

/// The longest a daemon worker sleeps without looking at the outbox.
const IDLE_CHECK: Duration = Duration::from_secs(60);

/// What a delivery run did for one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The endpoint.
    pub endpoint: String,
    /// Deliveries that succeeded.
    pub delivered: u64,
    /// Attempts that failed and were scheduled again.
    pub retried: u64,
    /// Deliveries dead-lettered (schedule exhausted, or refused).
    pub dead: u64,
    /// Set when the endpoint is disabled (a `410 Gone`).
    pub disabled: Option<String>,
    /// The last failure, for the summary.
    pub last_error: Option<String>,
}

/// Starts one worker per endpoint on the current tokio runtime; `Delivering::wait` collects
/// their reports. The workers own their outbox connections, so the store may be dropped.
pub fn start(
    store: &Store,
    endpoints: Vec<Endpoint>,
    mode: Mode,
) -> Result<Delivering, DeliverError> {
    start_from(&store.outbox()?, endpoints, mode)
}

/// `start`, with each worker's connection cloned from `outbox` (the daemon, whose store
/// lives on the sync thread).
pub fn start_from(
    outbox: &Outbox,
    endpoints: Vec<Endpoint>,
    mode: Mode,
) -> Result<Delivering, DeliverError> {
    // Best effort: a failure here must not stop delivery (the next start tries again).
    if let Err(e) = outbox.forget_receiver_answers() {
        tracing::warn!(
            "could not remove receivers' answers quoted by an older version from `deliveries.last_error`: {e}"
        );
    }
    let mut tasks = Vec::new();
    for ep in endpoints {
        let outbox = outbox.try_clone()?;
        let name = ep.name.clone();
        tasks.push((
            name,
            tokio::spawn(worker(outbox, Arc::new(ep), mode.clone())),
        ));
    }
    Ok(Delivering { tasks })
}

/// Delivery workers at work.
#[derive(Debug)]
pub struct Delivering {
    tasks: Vec<(
        String,
        tokio::task::JoinHandle<Result<Report, DeliverError>>,
    )>,
}

impl Delivering {
    /// Waits for every worker; one report per endpoint, in config order.
    pub async fn wait(self) -> Result<Vec<Report>, DeliverError> {
        let mut reports = Vec::new();
        for (endpoint, t) in self.tasks {
            match t.await {
                Ok(r) => reports.push(r?),
                Err(e) => {
                    return Err(DeliverError::Client {
                        endpoint,
                        reason: format!("delivery worker stopped: {e}"),
                    });
                }
            }
        }
        Ok(reports)
    }
}

/// The outbox's time format (UTC, microseconds).
pub fn db_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

fn parse_db_time(s: &str) -> Option<Timestamp> {
    let dt: jiff::civil::DateTime = s.trim().replacen(' ', "T", 1).parse().ok()?;
    dt.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// Sleeps up to `wait`; false when the daemon asked the worker to stop.
async fn idle(mode: &mut Mode, wait: Duration) -> bool {
    let Mode::Forever { stop, wake } = mode else {
        return true;
    };
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = wake.notified() => true,
        r = stop.changed() => r.is_ok() && !*stop.borrow(),
    }
}

async fn worker(outbox: Outbox, ep: Arc<Endpoint>, mut mode: Mode) -> Result<Report, DeliverError> {
    let mut report = Report {
        endpoint: ep.name.clone(),
        ..Report::default()
    };
    loop {
        if let Mode::Forever { stop, .. } = &mode {
            if *stop.borrow() {
                break;
            }
        }
        if let Some(reason) = outbox.disabled(&ep.name)? {
            report.disabled = Some(reason);
            if matches!(mode, Mode::Forever { .. }) && idle(&mut mode, IDLE_CHECK).await {
                continue;
            }
            break;
        }
        report.disabled = None;
        let now = Timestamp::now();
        let due = outbox.due(&ep.name, &db_time(now), BATCH)?;
        if due.is_empty() {
            if matches!(mode, Mode::Forever { .. }) {
                let next = outbox
                    .next_due(&ep.name)?
                    .as_deref()
                    .and_then(parse_db_time);
                let wait = next.map_or(IDLE_CHECK, |t| {
                    Duration::try_from(t.duration_since(Timestamp::now()))
                        .unwrap_or_default()
                        .min(IDLE_CHECK)
                        + Duration::from_millis(5)
                });
                if idle(&mut mode, wait).await {
                    continue;
                }
                break;
            }
            let Mode::Drain { deadline } = mode else {
                break;
            };
            let Some(next) = outbox
                .next_due(&ep.name)?
                .as_deref()
                .and_then(parse_db_time)
            else {
                break;
            };
            let wait = next
                .duration_since(Timestamp::now())
                .max(jiff::SignedDuration::ZERO);
            let wait = Duration::try_from(wait).unwrap_or_default();
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(wait.min(left) + Duration::from_millis(5)).await;
            continue;
        }
        // The batch is sent (CONCURRENCY at a time), then its outcomes are recorded in one
        // transaction. Recording in smaller chunks as they complete was measured slower: the
        // blocking update stalls the stream's in-flight requests, and each update scans the
        // deliveries table. A crash re-sends at most one batch (with its `webhook-id`s).
        let ep2 = ep.clone();
        let send_all = futures::stream::iter(due)
            .map(|d| {
                let ep = ep2.clone();
                async move {
                    let outcome = send(&ep, &d).await;
                    (d, outcome, Timestamp::now())
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<(Due, Outcome, Timestamp)>>();
        // The daemon's stop (shutdown, or the endpoint's config changed) does not wait for a
        // batch to a dead receiver: the batch is dropped, its deliveries stay pending (those
        // already answered are sent again later, with the same `webhook-id`).
        let results = match &mode {
            Mode::Forever { stop, .. } => {
                let mut stop = stop.clone();
                tokio::select! {
                    r = send_all => r,
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            _ => send_all.await,
        };
        let mut gone = None;
        let records: Vec<AttemptRecord> = results
            .into_iter()
            .map(|(d, outcome, at)| record(&ep, &d, outcome, at, &mut report, &mut gone))
            .collect();
        outbox.record(&ep.name, &records)?;
        if let Some(reason) = gone {
            tracing::warn!(endpoint = ep.name.as_str(), "{reason}");
            outbox.disable(&ep.name, &reason)?;
            report.disabled = Some(reason);
            if !matches!(mode, Mode::Forever { .. }) {
                break;
            }
        }
    }
    Ok(report)
}

async fn send(ep: &Endpoint, d: &Due) -> Outcome {
    let data: serde_json::Value = serde_json::from_str(&d.data).unwrap_or_default();
    let rendered = render_capped(
        &d.event_id,
        &d.kind,
        &d.created_at,
        &data,
        ep.rendering,
        MAX_BODY_BYTES,
    );
    if let Some(full) = rendered.truncated_from {
        // Sizes and ids only: the values that made it big are personal data.
        tracing::warn!(
            endpoint = ep.name.as_str(),
            event = d.event_id.as_str(),
            "the event's body would be {full} bytes, over the {} byte cap: sent with its \
             identifiers only and `\"truncated\": true` (help: the receiver can read the \
             person from the directory; look for an oversized value in the HRIS)",
            MAX_BODY_BYTES
        );
    }
    let body = rendered.body;
    let timestamp = Timestamp::now().as_second();
    let signature = sign::signature_header(&ep.secrets, &d.event_id, timestamp, &body);
    attempt::attempt(
        &ep.client,
        ep.allow_private_network,
        &Delivery {
            url: &ep.url,
            msg_id: &d.event_id,
            timestamp,
            signature: &signature,
            body: &body,
        },
    )
    .await
}

fn record(
    ep: &Endpoint,
    d: &Due,
    outcome: Outcome,
    at: Timestamp,
    report: &mut Report,
    gone: &mut Option<String>,
) -> AttemptRecord {
    let outcome_label = match &outcome {
        Outcome::Delivered { .. } => "delivered",
        Outcome::Retry { .. } => "failed",
        Outcome::Gone { .. } => "gone",
        Outcome::Refused { .. } => "refused",
    };
    metrics::counter!(
        "roster_webhook_attempts_total",
        "endpoint" => ep.name.clone(),
        "outcome" => outcome_label
    )
    .increment(1);
    let mut r = AttemptRecord {
        event_id: d.event_id.clone(),
        state: "pending",
        at: db_time(at),
        next_attempt_at: None,
        status: None,
        error: None,
    };
    match outcome {
        Outcome::Delivered { status } => {
            r.state = "delivered";
            r.status = Some(status);
            report.delivered += 1;
        }
        Outcome::Retry {
            status,
            retry_after,
            error,
        } => {
            r.status = status;
            let attempts_made = d.attempts as usize + 1;
            match attempt::next_delay(&ep.schedule, attempts_made, retry_after, fastrand::f64()) {
                Some(delay) => {
                    let next = at
                        .checked_add(jiff::SignedDuration::try_from(delay).unwrap_or_default())
                        .unwrap_or(at);
                    r.next_attempt_at = Some(db_time(next));
                    report.retried += 1;
                }
                None => {
                    r.state = "dead";
                    report.dead += 1;
                    tracing::warn!(
                        endpoint = ep.name.as_str(),
                        event = d.event_id.as_str(),
                        "delivery dead-lettered after {attempts_made} attempts: {error} (help: fix the receiver, then `roster events retry --endpoint {}`)",
                        ep.name
                    );
                }
            }
            report.last_error = Some(error.clone());
            r.error = Some(error);
        }
        Outcome::Gone { status } => {
            r.status = Some(status);
            r.next_attempt_at = Some(db_time(at));
            let reason = format!(
                "the receiver answered {status} Gone: endpoint disabled, its events are kept (help: fix or remove the endpoint, then `roster events retry --endpoint {}`)",
                ep.name
            );
            r.error = Some(reason.clone());
            *gone = Some(reason);
        }
        Outcome::Refused { error } => {
            r.state = "dead";
            report.dead += 1;
            report.last_error = Some(error.clone());
            r.error = Some(error);
        }
    }
    r
}
