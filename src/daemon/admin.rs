//! The admin endpoint (loopback by default): health, readiness, Prometheus metrics, status,
//! and sync now.
//!
//! | path | answer |
//! |---|---|
//! | `GET /healthz` | `200 ok` while the process serves requests |
//! | `GET /readyz` | `200 ready` once the config is loaded, the store open and workers started; `503` and the reason before, while stopping, while the store is unusable (damaged, disk full, I/O errors) and while the state database is gone |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /status` | JSON: readiness, config version and reload state, each source's schedule, next run, last run; webhook queues |
//! | `POST /sync?source=NAME[&allow_removals=true][&full=true]` | runs a sync of NAME now (queued behind one in flight) and answers with its result; without `source`, every enabled source in order; `allow_removals` applies a held run; `full` reads the whole listing of a source that reads incrementally |
//! | `POST /plan` | `roster plan` while the daemon holds the state database: the body is a `PlanRequest`, the answer what the plan prints and its exit code |
//! | `POST /events/replay?id=ID[&endpoint=E]` | `roster events replay` while the daemon holds the outbox |
//! | `POST /events/retry[?endpoint=E]` | `roster events retry` while the daemon holds the outbox |
//!
//! Every POST needs `Authorization: Bearer <token>`, the token the daemon writes to
//! `<state_dir>/admin.token` (mode 0640) at each start: a local user who can read the state
//! directory may sync, plan (which shows personal data) and replay; anyone else who can reach
//! the port cannot. The GETs carry no personal data and stay open for probes and scrapers.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};

use super::{RunResult, Shared};

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The daemon's shared state.
    pub shared: Arc<Shared>,
    /// Renders the metrics.
    pub metrics: PrometheusHandle,
    /// What POST requests must present.
    pub token: Arc<Token>,
}

/// The admin token: 32 random bytes from the OS, as 64 hex digits. New at every start.
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// A fresh token.
    pub fn generate() -> Result<Token, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Token(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// Writes it to `path` (mode 0640, for the service's group).
    pub fn write(&self, path: &std::path::Path) -> Result<(), super::StartError> {
        super::write_file(path, &format!("{}\n", self.0))
    }

    /// `header` is `Bearer <this token>`. Compared in constant time, so the answer's timing
    /// does not tell how much of a guess was right.
    fn admits(&self, header: Option<&str>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        let (a, b) = (given.trim().as_bytes(), self.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// The answer to a POST without the right token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Refused {
    /// Why, and what to do.
    pub error: String,
}

async fn authorized(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if s.token.admits(header) {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
        Json(Refused {
            error: format!(
                "this request needs `Authorization: Bearer <token>` with the token in {} (help: the roster CLI reads it itself when run by a user who may read that file, e.g. roster's user or group)",
                s.shared
                    .state_file
                    .as_ref()
                    .and_then(|f| f.path.parent())
                    .map_or_else(|| super::TOKEN_FILE.to_string(), |d| d.join(super::TOKEN_FILE).display().to_string())
            ),
        }),
    )
        .into_response()
}

/// Installs the global metrics recorder (once per process) and returns its handle. The
/// `metrics` macros used across the crate (provider requests, syncs, deliveries, reloads)
/// record into it; elsewhere (CLI commands) they are no-ops.
pub fn install_metrics() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                ])
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The routes.
pub fn router(state: AdminState) -> axum::Router {
    let change = axum::Router::new()
        .route("/sync", post(sync_now))
        .route("/plan", post(plan))
        .route("/events/replay", post(replay))
        .route("/events/retry", post(retry))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorized,
        ));
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/status", get(status))
        .merge(change)
        .with_state(state)
}

async fn readyz(State(s): State<AdminState>) -> Response {
    match s.shared.unready() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn metrics_text(State(s): State<AdminState>) -> Response {
    // Gauges read from the outbox at scrape time.
    let counts = {
        let outbox = s.shared.outbox.lock().unwrap_or_else(|e| e.into_inner());
        (outbox.people_counts(), outbox.counts())
    };
    if let Ok((people, active)) = counts.0 {
        metrics::gauge!("roster_people").set(people as f64);
        metrics::gauge!("roster_people_active").set(active as f64);
    }
    if let Ok(endpoints) = counts.1 {
        for (ep, c) in endpoints {
            metrics::gauge!("roster_events_pending", "endpoint" => ep.clone())
                .set(c.pending as f64);
            metrics::gauge!("roster_events_delivered", "endpoint" => ep.clone())
                .set(c.delivered as f64);
            metrics::gauge!("roster_events_failed", "endpoint" => ep.clone()).set(c.dead as f64);
            metrics::gauge!("roster_webhook_endpoint_disabled", "endpoint" => ep)
                .set(if c.disabled.is_some() { 1.0 } else { 0.0 });
        }
    }
    for (name, st) in s.shared.sources().iter() {
        metrics::gauge!("roster_sync_running", "source" => name.clone()).set(if st.running {
            1.0
        } else {
            0.0
        });
    }
    let up = jiff::Timestamp::now().duration_since(s.shared.started);
    metrics::gauge!("roster_uptime_seconds").set(up.as_secs_f64());
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

#[derive(Serialize)]
struct StatusBody {
    ready: bool,
    /// Why not, when not ready.
    not_ready: Option<String>,
    config_dir: String,
    reload: super::ReloadStatus,
    sources: std::collections::BTreeMap<String, super::SourceStatus>,
    webhooks: Vec<WebhookStatus>,
}

#[derive(Serialize)]
struct WebhookStatus {
    endpoint: String,
    #[serde(flatten)]
    counts: crate::store::events::EndpointCounts,
}

async fn status(State(s): State<AdminState>) -> Json<StatusBody> {
    let webhooks = s
        .shared
        .outbox
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .counts()
        .unwrap_or_default()
        .into_iter()
        .map(|(endpoint, counts)| WebhookStatus { endpoint, counts })
        .collect();
    let not_ready = s.shared.unready();
    Json(StatusBody {
        ready: not_ready.is_none(),
        not_ready,
        config_dir: s.shared.config().dir.display().to_string(),
        reload: s.shared.reload_status().clone(),
        sources: s.shared.sources().clone(),
        webhooks,
    })
}

#[derive(Deserialize)]
struct SyncQuery {
    source: Option<String>,
    #[serde(default)]
    allow_removals: bool,
    #[serde(default)]
    full: bool,
}

/// The answer of `POST /sync`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SyncAnswer {
    /// One result per source synced.
    pub results: Vec<RunResult>,
    /// Set when nothing could be run (unknown source, shutting down).
    pub error: Option<String>,
}

async fn sync_now(State(s): State<AdminState>, Query(q): Query<SyncQuery>) -> Response {
    let cfg = s.shared.config();
    let names: Vec<String> = match &q.source {
        Some(n) => {
            if !cfg.sources.iter().any(|p| &p.name == n && p.enabled) {
                let all: Vec<&str> = cfg
                    .sources
                    .iter()
                    .filter(|p| p.enabled)
                    .map(|p| p.name.as_str())
                    .collect();
                return (
                    StatusCode::NOT_FOUND,
                    Json(SyncAnswer {
                        results: Vec::new(),
                        error: Some(format!(
                            "no enabled source `{n}`; the sources are: {}",
                            all.join(", ")
                        )),
                    }),
                )
                    .into_response();
            }
            vec![n.clone()]
        }
        None => cfg
            .sources
            .iter()
            .filter(|p| p.enabled)
            .map(|p| p.name.clone())
            .collect(),
    };
    let mut waiting = Vec::new();
    for n in &names {
        let flags = super::SyncFlags {
            allow_removals: q.allow_removals,
            full: q.full,
        };
        match s.shared.request_sync(n, flags) {
            Some(rx) => waiting.push(rx),
            None => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(SyncAnswer {
                        results: Vec::new(),
                        error: Some("roster is shutting down".into()),
                    }),
                )
                    .into_response();
            }
        }
    }
    let mut results = Vec::new();
    for rx in waiting {
        if let Ok(r) = rx.await {
            results.push(r);
        }
    }
    Json(SyncAnswer {
        results,
        error: None,
    })
    .into_response()
}

async fn plan(
    State(s): State<AdminState>,
    Json(request): Json<crate::cli::sync::PlanRequest>,
) -> Response {
    let unavailable = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(crate::cli::sync::PlanOutput {
                stdout: String::new(),
                stderr: "error: roster is shutting down\n".into(),
                code: 1,
            }),
        )
            .into_response()
    };
    let Some(rx) = s.shared.request_plan(request) else {
        return unavailable();
    };
    match rx.await {
        Ok(output) => Json(output).into_response(),
        Err(_) => unavailable(),
    }
}

#[derive(Deserialize)]
struct ReplayQuery {
    id: String,
    endpoint: Option<String>,
}

#[derive(Deserialize)]
struct RetryQuery {
    endpoint: Option<String>,
}

/// The answer of the `/events/*` endpoints.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueuedAnswer {
    /// Deliveries queued.
    pub queued: u64,
    /// What went wrong.
    pub error: Option<String>,
}

fn queued(r: Result<u64, crate::store::StoreError>, wake: &tokio::sync::Notify) -> Response {
    match r {
        Ok(n) => {
            wake.notify_waiters();
            Json(QueuedAnswer {
                queued: n,
                error: None,
            })
            .into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(QueuedAnswer {
                queued: 0,
                error: Some(e.to_string()),
            }),
        )
            .into_response(),
    }
}

/// Refuses a change to the outbox while the state database is gone (it would go into a file
/// nobody will read, or a fresh WAL beside none).
fn refuse_if_lost(s: &AdminState) -> Option<Response> {
    let why = s.shared.check_state_file()?;
    Some(
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(QueuedAnswer {
                queued: 0,
                error: Some(why),
            }),
        )
            .into_response(),
    )
}

async fn replay(State(s): State<AdminState>, Query(q): Query<ReplayQuery>) -> Response {
    if let Some(refused) = refuse_if_lost(&s) {
        return refused;
    }
    let r = s
        .shared
        .outbox
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .replay(&q.id, q.endpoint.as_deref());
    queued(r, &s.shared.deliver_wake)
}

async fn retry(State(s): State<AdminState>, Query(q): Query<RetryQuery>) -> Response {
    if let Some(refused) = refuse_if_lost(&s) {
        return refused;
    }
    let r = s
        .shared
        .outbox
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retry(q.endpoint.as_deref());
    queued(r, &s.shared.deliver_wake)
}

#[cfg(test)]
mod tests {
    use super::Token;

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        let token = Token::generate().unwrap();
        let other = Token::generate().unwrap();
        assert_eq!(token.0.len(), 64);
        assert_ne!(token.0, other.0, "random per start");
        assert!(token.admits(Some(&format!("Bearer {}", token.0))));
        for refused in [
            None,
            Some(String::new()),
            Some(token.0.clone()),
            Some(format!("Basic {}", token.0)),
            Some(format!("Bearer {}", other.0)),
            Some(format!("Bearer {}", &token.0[..63])),
            Some(format!("Bearer {}0", token.0)),
        ] {
            assert!(!token.admits(refused.as_deref()), "{refused:?}");
        }
        assert_eq!(format!("{token:?}"), "Token(***)");
    }
}
