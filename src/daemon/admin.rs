//! The admin endpoint (loopback by default): health, readiness, Prometheus metrics, status,
//! and sync now.
//!
//! | path | answer |
//! |---|---|
//! | `GET /healthz` | `200 ok` while the process serves requests |
//! | `GET /readyz` | `200 ready` once the config is loaded, the store open and workers started; `503` before and while stopping |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /status` | JSON: config version and reload state, each source's schedule, next run, last run; webhook queues |
//! | `POST /sync?source=NAME` | runs a sync of NAME now (queued behind one in flight) and answers with its result; without `source`, every enabled source in order |
//! | `POST /events/replay?id=ID[&endpoint=E]` | `roster events replay` while the daemon holds the outbox |
//! | `POST /events/retry[?endpoint=E]` | `roster events retry` while the daemon holds the outbox |

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
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
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/status", get(status))
        .route("/sync", post(sync_now))
        .route("/events/replay", post(replay))
        .route("/events/retry", post(retry))
        .with_state(state)
}

async fn readyz(State(s): State<AdminState>) -> Response {
    if s.shared.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
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
    Json(StatusBody {
        ready: s.shared.ready.load(Ordering::SeqCst),
        config_dir: s.shared.config().dir.display().to_string(),
        reload: s.shared.reload_status().clone(),
        sources: s.shared.sources().clone(),
        webhooks,
    })
}

#[derive(Deserialize)]
struct SyncQuery {
    source: Option<String>,
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
        match s.shared.request_sync(n) {
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

async fn replay(State(s): State<AdminState>, Query(q): Query<ReplayQuery>) -> Response {
    let r = s
        .shared
        .outbox
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .replay(&q.id, q.endpoint.as_deref());
    queued(r, &s.shared.deliver_wake)
}

async fn retry(State(s): State<AdminState>, Query(q): Query<RetryQuery>) -> Response {
    let r = s
        .shared
        .outbox
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retry(q.endpoint.as_deref());
    queued(r, &s.shared.deliver_wake)
}
