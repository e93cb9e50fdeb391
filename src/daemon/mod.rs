//! `roster run`: the daemon.
//!
//! - **Syncs** run one at a time on a dedicated thread that owns the store (a DuckDB
//!   connection is not shared across threads), so two syncs of a source never overlap. The
//!   scheduler queues each enabled source when its plan (`every` with jitter, or `cron` in
//!   the company time zone) says so; `POST /sync` on the admin endpoint (`roster sync --now`)
//!   queues one and waits for its result.
//! - **Date triggers** are evaluated every minute on the same thread, and after every sync.
//! - **Webhooks**: one delivery worker per endpoint, each with its own connection, woken
//!   after every sync or evaluation that wrote events.
//! - **Reload**: a debounced watch of the config directory and SIGHUP go through one path
//!   (`Daemon::reload`): load and validate the whole config; if valid, swap it in (a sync in
//!   flight finishes on the config it started with), reschedule, restart the delivery
//!   workers (re-reading webhook secrets); if invalid, log every located error and keep the last
//!   good config.
//! - **Admin HTTP** on loopback: `/healthz`, `/readyz`, `/metrics`, `/status`, `POST /sync`,
//!   `POST /plan`. POSTs need the token the daemon writes to `<state_dir>/admin.token` at
//!   start; the address it listens on goes to `<state_dir>/admin.addr` (removed at a clean
//!   stop), so the CLI finds it even when `roster.yaml` cannot be read.
//! - **Readiness follows the store**: `/readyz` turns 503 (and the systemd STATUS says why)
//!   while the last job failed because the store is unusable (a damaged file, a full disk, an
//!   I/O error), until a job succeeds again; and while the state database is gone or replaced
//!   under the running daemon (checked every few seconds and before each job), when jobs and
//!   deliveries are refused rather than writing into a file nobody will see again.
//! - **systemd**: READY after start, RELOADING/READY around reloads, STATUS lines, watchdog
//!   pings, STOPPING on SIGTERM. Shutdown stops scheduling, lets a sync in flight finish for
//!   a grace period (then abandons it before anything is applied), stops the workers after
//!   their current batch is recorded, and exits 0.

pub mod admin;
pub mod inbound;
pub mod notify;
pub mod schedule;
pub mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::{Notify, oneshot, watch as tokio_watch};

use crate::config::{Config, LoadOptions};
use crate::sync::{NoProgress, Options};

/// Debounce of the config directory watch.
pub const RELOAD_DEBOUNCE: Duration = Duration::from_millis(300);
/// How often date triggers are evaluated.
pub const TRIGGER_INTERVAL: Duration = Duration::from_secs(60);
/// How often the daemon checks that its state database is still the file it opened.
pub const STATE_CHECK_INTERVAL: Duration = Duration::from_secs(3);
/// The admin token's file name in the state directory (read by the CLI).
pub const TOKEN_FILE: &str = "admin.token";
/// The file in the state directory holding the address the admin endpoint listens on.
pub const ADDR_FILE: &str = "admin.addr";
pub use crate::config::deployment::DEFAULT_ADMIN;

/// The outcome of one sync, as `/status` and `roster sync --now` show it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RunResult {
    /// The source.
    pub source: String,
    /// `applied`, `unchanged`, `held`, `failed`, or `abandoned` (shutdown).
    pub outcome: String,
    /// The summary line `roster sync` prints, or the error.
    pub message: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// How long it took.
    pub duration_ms: u64,
    /// Why the run was held (outcome `held`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

impl RunResult {
    fn refused(source: String, message: String) -> RunResult {
        RunResult {
            source,
            outcome: "failed".into(),
            message,
            started_at: Timestamp::now().to_string(),
            duration_ms: 0,
            held: None,
        }
    }
}

/// What `/status` shows about a source.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStatus {
    /// The plan, e.g. `every 4h (jitter 10m)`.
    pub schedule: String,
    /// When the next scheduled sync starts (RFC 3339).
    pub next: Option<String>,
    /// A sync of it is running now.
    pub running: bool,
    /// It is queued (scheduled or asked for).
    pub queued: bool,
    /// The last run.
    pub last: Option<RunResult>,
    #[serde(skip)]
    last_start: Option<Timestamp>,
    #[serde(skip)]
    random: f64,
}

/// What `/status` shows about reloads.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadStatus {
    /// The config fingerprint running now.
    pub config_version: String,
    /// The git commit of the config directory, when it is a checkout.
    pub config_commit: Option<String>,
    /// The last reload was applied (or found nothing to change).
    pub last_successful: bool,
    /// When the running config was loaded (RFC 3339).
    pub loaded_at: String,
    /// The last rejected reload's errors (located).
    pub last_error: Option<String>,
    /// Reloads attempted.
    pub reloads: u64,
}

/// Why the daemon runs but is not ready; both None when it is.
#[derive(Debug, Default, Clone, PartialEq)]
struct Health {
    /// The state database is gone or replaced (until the original is back).
    files: Option<String>,
    /// The last job failed because the store is unusable (until a job succeeds).
    store: Option<String>,
}

/// The state database as it was opened: a path that names another file (or none) later
/// means the daemon's writes go nowhere anyone will read.
#[derive(Debug, Clone)]
struct StateFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl StateFile {
    fn of(path: &Path) -> std::io::Result<StateFile> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(path)?;
        Ok(StateFile {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// None while the path still names the opened file; else what happened and what to do.
    fn lost(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt as _;
        let path = self.path.display();
        let what = match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == (self.dev, self.ino) => return None,
            Ok(_) => {
                format!("the state database {path} was replaced by another file while roster ran")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                format!("the state database {path} was deleted while roster ran")
            }
            Err(e) => format!("the state database {path} cannot be checked ({e})"),
        };
        Some(format!(
            "{what}; roster stopped writing (syncs, plans, date triggers and webhook deliveries are refused) and recreates nothing (help: put the original file back at {path} and restart roster, e.g. `systemctl restart roster`; or, to start over from the HR systems, stop roster, move what is left of it aside and run `roster sync --rebaseline`, then start roster again)"
        ))
    }
}

/// State shared by the scheduler, the admin endpoint and reloads.
pub struct Shared {
    config: RwLock<Arc<Config>>,
    sources: Mutex<BTreeMap<String, SourceStatus>>,
    reload: Mutex<ReloadStatus>,
    /// Startup finished and no shutdown began.
    ready: std::sync::atomic::AtomicBool,
    health: Mutex<Health>,
    state_file: Option<StateFile>,
    schedule_changed: Notify,
    deliver_wake: Arc<Notify>,
    jobs: std::sync::mpsc::Sender<Job>,
    started: Timestamp,
    stopping: std::sync::atomic::AtomicBool,
    /// A connection for the admin endpoint and for cloning delivery workers' connections.
    outbox: Mutex<crate::store::events::Outbox>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    /// The config running now.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, SourceStatus>> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reload_status(&self) -> std::sync::MutexGuard<'_, ReloadStatus> {
        self.reload.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why the daemon is not ready (`/readyz` answers 503 with it), or None when it is.
    pub fn unready(&self) -> Option<String> {
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return Some("roster is stopping".into());
        }
        if !self.ready.load(std::sync::atomic::Ordering::SeqCst) {
            return Some("roster is starting".into());
        }
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health.files.clone().or_else(|| health.store.clone())
    }

    /// Changes the health; a change is logged and sent to systemd as the STATUS line.
    fn set_health(&self, change: impl FnOnce(&mut Health)) {
        let (before, after) = {
            let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
            let before = health.clone();
            change(&mut health);
            (before, health.clone())
        };
        if before == after {
            return;
        }
        match after.files.as_ref().or(after.store.as_ref()) {
            Some(reason) => tracing::error!("not ready: {reason}"),
            None => tracing::info!("ready again: the store works"),
        }
        let _ = notify::status(&status_line(self));
    }

    /// Checks that the state database is still the file opened at start; records and
    /// returns why not.
    fn check_state_file(&self) -> Option<String> {
        let lost = self.state_file.as_ref().and_then(StateFile::lost);
        self.set_health(|h| h.files = lost.clone());
        lost
    }

    /// Records the outcome of a job on the store: an error that makes the store unusable
    /// makes the daemon unready; a job that worked makes it ready again.
    fn store_outcome(&self, error: Option<&crate::store::StoreError>) {
        match error {
            None => self.set_health(|h| h.store = None),
            // DuckDB refuses everything after a fatal error; the first error says why.
            Some(crate::store::StoreError::Invalidated { .. })
                if self
                    .health
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .store
                    .is_some() => {}
            Some(e) if e.is_unusable() => self.set_health(|h| h.store = Some(e.to_string())),
            Some(_) => {}
        }
    }

    /// Queues a sync of `source` (see [`SyncFlags`]); the receiver gets its result. None when
    /// the source is unknown or disabled, or the sync thread is gone.
    pub fn request_sync(
        &self,
        source: &str,
        flags: SyncFlags,
    ) -> Option<oneshot::Receiver<RunResult>> {
        let cfg = self.config();
        cfg.sources.iter().find(|s| s.name == source && s.enabled)?;
        let (tx, rx) = oneshot::channel();
        self.sources().entry(source.to_string()).or_default().queued = true;
        self.jobs
            .send(Job::Sync {
                source: source.to_string(),
                config: cfg,
                flags,
                reply: Some(tx),
            })
            .ok()?;
        Some(rx)
    }

    /// Queues a plan (a dry-run sync on the sync thread, which holds the store); the
    /// receiver gets what `roster plan` prints. None when the sync thread is gone.
    pub fn request_plan(
        &self,
        request: crate::cli::sync::PlanRequest,
    ) -> Option<oneshot::Receiver<crate::cli::sync::PlanOutput>> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Plan {
                config: self.config(),
                request,
                reply: tx,
            })
            .ok()?;
        Some(rx)
    }
}

/// What a requested sync may do beyond a scheduled one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncFlags {
    /// Apply the run even past the safety thresholds (a held run).
    pub allow_removals: bool,
    /// Read the whole listing even where the source reads incrementally.
    pub full: bool,
}

enum Job {
    Sync {
        source: String,
        config: Arc<Config>,
        flags: SyncFlags,
        reply: Option<oneshot::Sender<RunResult>>,
    },
    Evaluate {
        config: Arc<Config>,
    },
    Plan {
        config: Arc<Config>,
        request: crate::cli::sync::PlanRequest,
        reply: oneshot::Sender<crate::cli::sync::PlanOutput>,
    },
    Stop,
}

/// Why the daemon could not start. Printed, then the process exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config is invalid (the diagnostics were printed).
    #[error("the config is not valid; fix the errors above (`roster validate`)")]
    Config,
    /// The state database could not be opened (e.g. another instance holds it).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The admin address could not be bound.
    #[error(
        "cannot listen on {addr} for the admin endpoint: {reason} (help: another roster or program uses it; set `admin.listen` in roster.yaml)"
    )]
    Admin {
        /// The address.
        addr: String,
        /// The OS error.
        reason: String,
    },
    /// The config directory cannot be watched.
    #[error(transparent)]
    Watch(#[from] watch::WatchError),
    /// Anything else (runtime, signals).
    #[error("{0}")]
    Other(String),
}

/// Runs the daemon until SIGTERM or SIGINT. Returns the process exit code.
pub fn run(config_dir: &Path, stop_grace: Duration, rebaseline: bool) -> Result<u8, StartError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| StartError::Other(e.to_string()))?;
    rt.block_on(serve(config_dir, stop_grace, rebaseline))
}

fn load(dir: &Path) -> Result<Config, crate::config::diag::Diagnostics> {
    crate::config::load(dir, &LoadOptions::default())
}

/// The daemon on the current tokio runtime (`run` builds one; `roster demo --run` uses its
/// own, where the fake HRIS and the receiver also live).
/// `rebaseline`: create a missing state database even where an old one left traces
/// (`roster run --rebaseline`).
pub async fn serve(
    config_dir: &Path,
    stop_grace: Duration,
    rebaseline: bool,
) -> Result<u8, StartError> {
    let metrics = admin::install_metrics();
    let cfg = match load(config_dir) {
        Ok(c) => c,
        Err(d) => {
            eprint!("{}", d.render());
            return Err(StartError::Config);
        }
    };
    let cfg = Arc::new(cfg);
    // Open the state database here: a second instance stops now, with the PID of the first.
    let store = crate::sync::open_store_with(&cfg, rebaseline)?;
    // Opening checks the header only: read every block now, so a damaged file shows as
    // unready at start, not at the next scheduled sync hours later. The daemon still starts
    // (it answers /readyz with the reason); each job tries the store again.
    let damaged = store.verify().err();
    let last_runs = match store.outbox().and_then(|o| o.last_runs()) {
        Ok(runs) => runs,
        // Without them each source syncs once now, as after a first start.
        Err(e) if damaged.is_some() => {
            tracing::warn!(
                "the last runs cannot be read: {}",
                e.locate(store.state_path())
            );
            Default::default()
        }
        Err(e) => return Err(e.into()),
    };
    let admin_outbox = store.outbox()?;
    let state_file = StateFile::of(store.state_path())
        .inspect_err(|e| tracing::warn!(error = %e, "cannot identify the state database; its deletion will go unnoticed"))
        .ok();
    let state_dir = store
        .state_path()
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let (jobs_tx, jobs_rx) = std::sync::mpsc::channel::<Job>();
    let deliver_wake = Arc::new(Notify::new());
    let shared = Arc::new(Shared {
        config: RwLock::new(cfg.clone()),
        sources: Mutex::new(BTreeMap::new()),
        reload: Mutex::new(ReloadStatus {
            config_version: crate::sync::config_version(&cfg),
            config_commit: crate::sync::config_commit(&cfg.dir),
            last_successful: true,
            loaded_at: Timestamp::now().to_string(),
            last_error: None,
            reloads: 0,
        }),
        ready: std::sync::atomic::AtomicBool::new(false),
        health: Mutex::new(Health::default()),
        state_file,
        schedule_changed: Notify::new(),
        deliver_wake: deliver_wake.clone(),
        jobs: jobs_tx.clone(),
        started: Timestamp::now(),
        stopping: std::sync::atomic::AtomicBool::new(false),
        outbox: Mutex::new(admin_outbox),
    });
    if let Some(e) = &damaged {
        tracing::error!("the state database cannot be read: {e}");
        shared.store_outcome(Some(e));
    }
    {
        let mut sources = shared.sources();
        for (name, started) in last_runs {
            sources.entry(name).or_default().last_start = started.parse().ok();
        }
    }
    metrics::gauge!("roster_config_last_reload_successful").set(1.0);

    // Admin HTTP first: a taken port is a start error, before anything runs.
    let listen = cfg.deployment.spec.admin.address();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| StartError::Admin {
            addr: listen.clone(),
            reason: e.to_string(),
        })?;
    let addr_file = state_dir.join(ADDR_FILE);
    let token = admin::Token::generate()
        .map_err(|e| StartError::Other(format!("cannot make the admin token: {e}")))?;
    let bound = listener
        .local_addr()
        .map_or_else(|_| listen.clone(), |a| a.to_string());
    // Written before anything can ask: the CLI reads both.
    token.write(&state_dir.join(TOKEN_FILE))?;
    write_file(&addr_file, &format!("{bound}\n"))?;
    let (stop_tx, stop_rx) = tokio_watch::channel(false);
    let admin_state = admin::AdminState {
        shared: shared.clone(),
        metrics,
        token: Arc::new(token),
    };
    let mut admin_stop = stop_rx.clone();
    let admin_task = tokio::spawn(async move {
        let app = admin::router(admin_state);
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = admin_stop.wait_for(|s| *s).await;
            })
            .await;
    });

    // The inbound endpoint (HRIS notifications), on its own listener, when configured.
    let inbound_task = match &cfg.deployment.spec.inbound.listen {
        None => None,
        Some(listen) => {
            let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
                StartError::Other(format!(
                    "cannot listen on {listen} for the inbound endpoint: {e} (help: another program uses it; change `inbound.listen` in roster.yaml)"
                ))
            })?;
            tracing::info!(inbound = %listen, "accepting HRIS notifications at POST /inbound/SOURCE");
            let app = inbound::router(inbound::InboundState::new(shared.clone()));
            let mut stop = stop_rx.clone();
            Some(tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
            }))
        }
    };

    // The sync thread owns the store.
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sync_thread = {
        let shared = shared.clone();
        let cancel = cancel.clone();
        std::thread::Builder::new()
            .name("roster-sync".into())
            .spawn(move || sync_thread(store, jobs_rx, shared, cancel))
            .map_err(|e| StartError::Other(e.to_string()))?
    };

    // Delivery workers.
    let mut delivery = Delivery::start(&shared, &cfg);

    // Config watch and SIGHUP → reload requests.
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel::<()>(4);
    let mut watch = Some(start_watch(&cfg, reload_tx.clone())?);
    let mut sighup = signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut sigterm = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = signal(tokio::signal::unix::SignalKind::interrupt())?;

    let scheduler = tokio::spawn(scheduler(shared.clone(), stop_rx.clone()));
    let evaluator = tokio::spawn(evaluator(shared.clone(), stop_rx.clone()));

    shared
        .ready
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = notify::ready();
    let _ = notify::status(&status_line(&shared));
    tracing::info!(
        config = %cfg.dir.display(),
        admin = %listen,
        sources = cfg.sources.len(),
        webhooks = cfg.deployment.spec.webhooks.len(),
        "roster is running"
    );

    // The watchdog is pinged from this loop, so a stuck loop stops the pings and systemd
    // restarts the service.
    let watchdog_every = notify::watchdog_interval();
    let mut watchdog = tokio::time::interval(watchdog_every.unwrap_or(Duration::from_secs(3600)));
    let mut state_check = tokio::time::interval(STATE_CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = watchdog.tick() => {
                if watchdog_every.is_some() {
                    let _ = notify::watchdog();
                }
            }
            _ = state_check.tick() => {
                // Delivery workers record outcomes in the state database too: with the file
                // gone they would write a fresh WAL beside it, which a restored file would
                // then replay. They stop until the file is back.
                let lost = shared.check_state_file().is_some();
                if lost && delivery.running.is_some() {
                    delivery.pause().await;
                } else if !lost && delivery.paused {
                    delivery.restart(&shared, &shared.config()).await;
                }
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                reload(&shared, &mut delivery, &mut watch, &reload_tx).await;
            }
            Some(()) = reload_rx.recv() => {
                tracing::info!("the config directory changed: reloading");
                reload(&shared, &mut delivery, &mut watch, &reload_tx).await;
            }
        }
    }

    // Shutdown: no new syncs; a sync in flight gets `stop_grace`, then is abandoned before
    // anything is applied; delivery workers record their batch and stop.
    tracing::info!("stopping: no new syncs; waiting for a sync in flight");
    let _ = notify::stopping();
    shared
        .ready
        .store(false, std::sync::atomic::Ordering::SeqCst);
    shared
        .stopping
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = stop_tx.send(true);
    drop(watch);
    let _ = shared.jobs.send(Job::Stop);
    let _ = scheduler.await;
    let _ = evaluator.await;
    let _ = tokio::task::spawn_blocking({
        let cancel = cancel.clone();
        move || {
            let deadline = std::time::Instant::now() + stop_grace;
            while !sync_thread.is_finished() {
                if std::time::Instant::now() > deadline {
                    cancel.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = sync_thread.join();
        }
    })
    .await;
    delivery.stop().await;
    let _ = admin_task.await;
    if let Some(task) = inbound_task {
        let _ = task.await;
    }
    // Nothing listens there any more: `roster sync --now` says so instead of trying it.
    std::fs::remove_file(&addr_file).ok();
    tracing::info!("stopped");
    Ok(0)
}

fn signal(
    kind: tokio::signal::unix::SignalKind,
) -> Result<tokio::signal::unix::Signal, StartError> {
    tokio::signal::unix::signal(kind).map_err(|e| StartError::Other(e.to_string()))
}

fn status_line(shared: &Shared) -> String {
    let cfg = shared.config();
    let unready = shared.unready();
    let r = shared.reload_status();
    format!(
        "{} sources, {} webhooks; config {}{}{}",
        cfg.sources.iter().filter(|s| s.enabled).count(),
        cfg.deployment.spec.webhooks.len(),
        &r.config_version.chars().take(12).collect::<String>(),
        if r.last_successful {
            ""
        } else {
            "; last reload REJECTED"
        },
        unready
            .map(|u| format!("; NOT READY: {u}"))
            .unwrap_or_default()
    )
}

/// Writes `text` to `path` (mode 0640: the service's group may read it, e.g. an operator's
/// `roster sync --now`) through a temporary file and a rename, so a reader never sees half.
fn write_file(path: &Path, text: &str) -> Result<(), StartError> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let io = |e: std::io::Error| StartError::Other(format!("cannot write {}: {e}", path.display()));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::remove_file(&tmp).ok();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    // Set after creation: the umask only ever removes bits.
    f.set_permissions(std::fs::Permissions::from_mode(0o640))
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)
}

fn start_watch(
    cfg: &Config,
    tx: tokio::sync::mpsc::Sender<()>,
) -> Result<watch::ConfigWatch, StartError> {
    // The state directory (and a published directory elsewhere) change with every sync.
    let mut ignore: Vec<PathBuf> = vec![cfg.state_dir()];
    let published = crate::sync::directory_path(cfg);
    match published.parent() {
        Some(parent) if parent != cfg.dir && !parent.as_os_str().is_empty() => {
            ignore.push(parent.to_path_buf());
        }
        _ => ignore.push(published),
    }
    Ok(watch::ConfigWatch::start(
        &cfg.dir,
        ignore,
        RELOAD_DEBOUNCE,
        tx,
    )?)
}

/// The one reload path (file watch and SIGHUP).
async fn reload(
    shared: &Arc<Shared>,
    delivery: &mut Delivery,
    watch: &mut Option<watch::ConfigWatch>,
    reload_tx: &tokio::sync::mpsc::Sender<()>,
) {
    let _ = notify::reloading();
    let old = shared.config();
    match load(&old.dir) {
        Err(d) => {
            let located = d.render();
            for line in located.lines().filter(|l| !l.trim().is_empty()) {
                tracing::error!("{line}");
            }
            tracing::error!(
                "the new config is not valid; the last good config keeps running (fix the errors above; `roster validate` shows them too)"
            );
            {
                let mut status = shared.reload_status();
                status.reloads += 1;
                status.last_successful = false;
                status.last_error = Some(located);
            }
            metrics::counter!("roster_config_reloads_total", "outcome" => "rejected").increment(1);
            metrics::gauge!("roster_config_last_reload_successful").set(0.0);
        }
        Ok(new) => {
            let version = crate::sync::config_version(&new);
            let unchanged = {
                let mut status = shared.reload_status();
                status.reloads += 1;
                status.last_successful = true;
                status.last_error = None;
                version == status.config_version
            };
            metrics::gauge!("roster_config_last_reload_successful").set(1.0);
            if unchanged {
                tracing::info!("the config is unchanged");
                metrics::counter!("roster_config_reloads_total", "outcome" => "unchanged")
                    .increment(1);
                // Secrets live outside the config: a reload re-reads the webhooks' (the
                // sources' are read at every sync).
                delivery.restart(shared, &old).await;
            } else {
                let new = Arc::new(new);
                let webhooks_changed = old.deployment.spec.webhooks != new.deployment.spec.webhooks
                    || old.dir != new.dir;
                let changed: Vec<String> = new
                    .sources
                    .iter()
                    .filter(|s| {
                        source_fingerprint(&old, &s.name) != source_fingerprint(&new, &s.name)
                    })
                    .map(|s| s.name.clone())
                    .collect();
                *shared.config.write().unwrap_or_else(|e| e.into_inner()) = new.clone();
                {
                    let mut status = shared.reload_status();
                    status.config_version = version.clone();
                    status.config_commit = crate::sync::config_commit(&new.dir);
                    status.loaded_at = Timestamp::now().to_string();
                }
                // Restarted either way: a changed endpoint, or one whose secret file changed.
                delivery.restart(shared, &new).await;
                if new.state_dir() != old.state_dir() {
                    tracing::warn!(
                        "store.state_dir changed: it takes effect at the next restart (the open state database stays in use)"
                    );
                }
                if new.dir != old.dir {
                    if let Ok(w) = start_watch(&new, reload_tx.clone()) {
                        *watch = Some(w);
                    }
                }
                shared.schedule_changed.notify_one();
                tracing::info!(
                    version = %version.chars().take(12).collect::<String>(),
                    changed_sources = ?changed,
                    webhooks_changed,
                    "reloaded the config"
                );
                metrics::counter!("roster_config_reloads_total", "outcome" => "applied")
                    .increment(1);
            }
        }
    }
    let _ = notify::ready();
    let _ = notify::status(&status_line(shared));
}

/// What a source's sync depends on in the config: its block, provider spec and mapping.
fn source_fingerprint(cfg: &Config, name: &str) -> Option<String> {
    let plan = cfg.sources.iter().find(|s| s.name == name)?;
    let source = cfg.deployment.spec.sources.get(name)?;
    let provider = cfg.providers.get(&plan.provider).map(|p| &p.spec);
    let mapping = cfg.mappings.get(&plan.mapping).map(|m| &m.spec);
    serde_json::to_string(&(source, provider, mapping)).ok()
}

/// The delivery workers of the running config.
struct Delivery {
    stop: tokio_watch::Sender<bool>,
    running: Option<crate::webhook::Delivering>,
    /// Stopped because the state database is gone; started again when it is back.
    paused: bool,
}

impl Delivery {
    fn start(shared: &Arc<Shared>, cfg: &Config) -> Delivery {
        let (stop, stop_rx) = tokio_watch::channel(false);
        let mut ready = Vec::new();
        for ep in crate::webhook::endpoints(cfg) {
            match ep {
                Ok(ep) => ready.push(ep),
                Err(e) => tracing::error!("{e}; its events wait in the outbox"),
            }
        }
        let running = if ready.is_empty() {
            None
        } else {
            let mode = crate::webhook::Mode::Forever {
                stop: stop_rx,
                wake: shared.deliver_wake.clone(),
            };
            let outbox = shared.outbox.lock().unwrap_or_else(|e| e.into_inner());
            match crate::webhook::start_from(&outbox, ready, mode) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::error!("cannot start webhook delivery: {e}");
                    None
                }
            }
        };
        Delivery {
            stop,
            running,
            paused: false,
        }
    }

    /// Stops the running workers (a batch in flight is dropped, its deliveries stay
    /// pending), waits for them, and starts the workers of `cfg`: never two workers for one
    /// endpoint.
    async fn restart(&mut self, shared: &Arc<Shared>, cfg: &Config) {
        self.pause().await;
        if shared.check_state_file().is_none() {
            *self = Delivery::start(shared, cfg);
        }
    }

    /// Stops the running workers until the next [`Delivery::restart`].
    async fn pause(&mut self) {
        let _ = self.stop.send(true);
        if let Some(old) = self.running.take() {
            let _ = old.wait().await;
        }
        self.paused = true;
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(d) = self.running.take() {
            let _ = d.wait().await;
        }
    }
}

async fn scheduler(shared: Arc<Shared>, mut stop: tokio_watch::Receiver<bool>) {
    loop {
        let cfg = shared.config();
        let tz = cfg.deployment.spec.time_zone.time_zone();
        let now = Timestamp::now();
        let mut earliest: Option<Timestamp> = None;
        let mut due: Vec<String> = Vec::new();
        {
            let mut sources = shared.sources();
            sources.retain(|name, _| cfg.sources.iter().any(|s| &s.name == name));
            for plan in cfg.sources.iter().filter(|s| s.enabled) {
                let schedule = &cfg.deployment.spec.sources[&plan.name].schedule;
                let p = schedule::Plan::new(schedule, &tz);
                let st = sources.entry(plan.name.clone()).or_default();
                if st.random == 0.0 {
                    st.random = fastrand::f64().max(f64::MIN_POSITIVE);
                }
                st.schedule = p.describe();
                let next = p.next(st.last_start, now, st.random);
                st.next = Some(next.to_string());
                if st.running || st.queued {
                    continue;
                }
                if next <= now {
                    st.queued = true;
                    due.push(plan.name.clone());
                } else {
                    earliest = Some(earliest.map_or(next, |e: Timestamp| e.min(next)));
                }
            }
        }
        for source in due {
            let _ = shared.jobs.send(Job::Sync {
                source,
                config: cfg.clone(),
                flags: SyncFlags::default(),
                reply: None,
            });
        }
        let wait = earliest
            .map(|t| Duration::try_from(t.duration_since(Timestamp::now())).unwrap_or_default())
            .unwrap_or(Duration::from_secs(60))
            .min(Duration::from_secs(60));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.schedule_changed.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn evaluator(shared: Arc<Shared>, mut stop: tokio_watch::Receiver<bool>) {
    loop {
        let _ = shared.jobs.send(Job::Evaluate {
            config: shared.config(),
        });
        tokio::select! {
            _ = tokio::time::sleep(TRIGGER_INTERVAL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

fn sync_thread(
    mut store: crate::store::Store,
    jobs: std::sync::mpsc::Receiver<Job>,
    shared: Arc<Shared>,
    cancel: Arc<std::sync::atomic::AtomicBool>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the sync thread's runtime: {e}");
            return;
        }
    };
    // Sources no longer configured whose records remain: warned about once per process.
    let mut warned = std::collections::HashSet::new();
    while let Ok(job) = jobs.recv() {
        let stopping = shared.stopping.load(std::sync::atomic::Ordering::SeqCst);
        // Checked before every job, not only every few seconds: nothing is written into a
        // state database that is no longer where anyone will look.
        let refused = if stopping {
            None
        } else {
            shared.check_state_file()
        };
        match job {
            Job::Stop => break,
            Job::Evaluate { .. } if stopping || refused.is_some() => {}
            Job::Evaluate { config } => evaluate(&config, &store, &shared),
            Job::Sync { source, reply, .. } if stopping => {
                shared.sources().entry(source.clone()).or_default().queued = false;
                if let Some(reply) = reply {
                    let mut r =
                        RunResult::refused(source, "roster is shutting down; not started".into());
                    r.outcome = "abandoned".into();
                    let _ = reply.send(r);
                }
            }
            Job::Sync { source, reply, .. } if refused.is_some() => {
                shared.sources().entry(source.clone()).or_default().queued = false;
                let message = refused.unwrap_or_default();
                tracing::error!(source, "sync refused: {message}");
                if let Some(reply) = reply {
                    let _ = reply.send(RunResult::refused(source, message));
                }
            }
            Job::Plan { reply, .. } if stopping || refused.is_some() => {
                let why = refused.unwrap_or_else(|| "roster is shutting down".into());
                let _ = reply.send(crate::cli::sync::PlanOutput {
                    stdout: String::new(),
                    stderr: format!("error: {why}\n"),
                    code: 1,
                });
            }
            Job::Plan {
                config,
                request,
                reply,
            } => {
                configure(&config, &mut store);
                let output = rt.block_on(crate::cli::sync::plan_into(
                    &config, &mut store, &request, false,
                ));
                let _ = reply.send(output);
            }
            Job::Sync {
                source,
                config,
                flags,
                reply,
            } => {
                configure(&config, &mut store);
                let opts = Options {
                    allow_removals: flags.allow_removals,
                    full: flags.full,
                    ..Options::default()
                };
                let result = rt.block_on(sync_one(
                    &config, &mut store, &source, &opts, &shared, &cancel,
                ));
                warn_orphans(&config, &store, &mut warned);
                evaluate(&config, &store, &shared);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
        }
    }
}

/// The events of a sync or plan go to the endpoints of the config it runs on, with its
/// memory limit.
fn configure(config: &Config, store: &mut crate::store::Store) {
    if let Err(e) = crate::sync::configure_store(config, store) {
        tracing::warn!(error = %e, "the store settings of this config were not applied");
    }
}

/// Logs, once per source and process, that the directory holds records of a source the
/// config no longer names (see `sync::orphan_sources`).
fn warn_orphans(
    cfg: &Config,
    store: &crate::store::Store,
    warned: &mut std::collections::HashSet<String>,
) {
    match crate::sync::orphan_sources(cfg, store) {
        Ok(orphans) => {
            for (name, records) in orphans {
                if warned.insert(name.clone()) {
                    tracing::warn!(source = %name, "{}", crate::sync::orphan_warning(&name, records));
                }
            }
        }
        Err(e) => tracing::error!("cannot list the sources of the directory: {e}"),
    }
}

fn evaluate(cfg: &Config, store: &crate::store::Store, shared: &Shared) {
    if cfg.deployment.spec.triggers.is_empty() {
        return;
    }
    match crate::lifecycle::evaluate(cfg, store, Timestamp::now())
        .map_err(|e| e.locate(store.state_path()))
    {
        Ok(reports) => {
            shared.store_outcome(None);
            let fired: u64 = reports.iter().map(|r| r.fired).sum();
            if fired > 0 {
                for r in reports.iter().filter(|r| r.fired > 0) {
                    tracing::info!(trigger = %r.trigger, fired = r.fired, late = r.late, "date trigger fired");
                }
                shared.deliver_wake.notify_waiters();
            }
        }
        Err(e) => {
            tracing::error!("date triggers: {e}");
            shared.store_outcome(Some(&e));
        }
    }
}

async fn sync_one(
    cfg: &Config,
    store: &mut crate::store::Store,
    source: &str,
    opts: &Options,
    shared: &Shared,
    cancel: &std::sync::atomic::AtomicBool,
) -> RunResult {
    let started = Timestamp::now();
    let Some(plan) = cfg.sources.iter().find(|s| s.name == source) else {
        // Removed by a reload after it was queued.
        if let Some(st) = shared.sources().get_mut(source) {
            st.queued = false;
        }
        return RunResult::refused(
            source.into(),
            format!("no source `{source}` in the running config"),
        );
    };
    {
        let mut sources = shared.sources();
        let st = sources.entry(source.to_string()).or_default();
        st.running = true;
        st.queued = false;
        st.last_start = Some(started);
    }
    shared.schedule_changed.notify_one();
    let clock = std::time::Instant::now();
    let mut progress = NoProgress;
    let state_path = store.state_path().to_path_buf();
    let sync = crate::sync::sync_source(cfg, store, plan, opts, &mut progress);
    let watch_cancel = async {
        loop {
            if cancel.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (outcome, message, held) = tokio::select! {
        r = sync => match r {
            Ok(report) => {
                metrics::gauge!("roster_sync_records", "source" => source.to_string())
                    .set(report.run.records as f64);
                shared.store_outcome(None);
                (report.run.outcome.clone(), crate::cli::sync::summary(&report), report.applied.held.clone())
            }
            Err(e) => {
                // A damaged block or a full disk surfaces deep inside a query: say which.
                let e = crate::cli::sync::located(e, &state_path);
                if let crate::sync::SyncError::Store(e) = &e {
                    shared.store_outcome(Some(e));
                }
                ("failed".to_string(), e.to_string(), None)
            }
        },
        _ = watch_cancel => {
            let _ = store.discard_staging();
            ("abandoned".to_string(), "abandoned at shutdown before anything was applied".to_string(), None)
        }
    };
    let duration = clock.elapsed();
    metrics::counter!("roster_sync_runs_total", "source" => source.to_string(), "outcome" => outcome.clone()).increment(1);
    metrics::histogram!("roster_sync_duration_seconds", "source" => source.to_string(), "outcome" => outcome.clone()).record(duration.as_secs_f64());
    match outcome.as_str() {
        "failed" => tracing::error!(source, "sync failed: {message}"),
        "held" => tracing::warn!(
            source,
            "sync held: {message}: {}",
            held.as_deref().unwrap_or("no reason given")
        ),
        _ => tracing::info!(source, "{message}"),
    }
    let result = RunResult {
        source: source.to_string(),
        outcome,
        message,
        started_at: started.to_string(),
        duration_ms: duration.as_millis() as u64,
        held,
    };
    {
        let mut sources = shared.sources();
        let st = sources.entry(source.to_string()).or_default();
        st.running = false;
        st.last = Some(result.clone());
    }
    shared.deliver_wake.notify_waiters();
    shared.schedule_changed.notify_one();
    result
}
