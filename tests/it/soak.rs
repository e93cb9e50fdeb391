//! The kill -9 soak (issue 14): the real `roster run` is killed with SIGKILL at random moments
//! over many runs while a fake HRIS changes between syncs and a webhook receiver fails 20% of
//! deliveries; a checker then proves the promises of ARCHITECTURE.md's invariants end to end:
//!
//! - lost = none: every change a committed sync observed has its `person.*` event in the
//!   outbox, and every outbox event reached the receiver (2xx, signature valid);
//! - unexpected = none: no event for something that did not happen (no `person.terminated`
//!   for anyone still employed, no `person.reactivated`: this HRIS never rehires);
//! - duplicates only with the same `webhook-id`: an occurrence (type, person, changed values)
//!   has one event id; redeliveries of an id carry the same bytes;
//! - the published directory (`directory.duckdb`, read-only) equals the HRIS at the end, and
//!   one found behind the state between two runs (a kill between commit and publish) has
//!   caught up once the restarted daemon is ready.
//!
//! Figures only, never failures: where the kills landed (from each run's log), temp copies of
//! the directory left in the state dir.
//! Ignored by default (minutes of wall time): `bench/soak.sh`, or
//! `cargo test --test it soak -- --ignored --nocapture`. `ROSTER_SOAK_RUNS` (default 50),
//! `ROSTER_SOAK_SEED` (printed at start: replays the same HRIS changes, kill delays and
//! receiver failures; only where a kill lands in the daemon's work varies),
//! `ROSTER_SOAK_MAX_KILL_MS` (kill delay after spawn, uniform in 0..=this; default 10000),
//! `ROSTER_SOAK_PEOPLE` (initial head count, default 150), `ROSTER_SOAK_KEEP` (keep the config,
//! state and logs after a success too; they are always kept after a failure).
//!
//! How the checker knows what each committed sync saw: the HRIS changes only between
//! listings (a change waits while a listing is in flight), and records the time span and the
//! data version of every listing it serves. A committed run (`sync_runs`, outcome `applied`
//! or `unchanged`) is matched to the one complete listing inside its `started_at` ..
//! `finished_at`; the expected events of an applied run are the difference between its
//! listing's data and that of the previous applied run. HRIS values never repeat (titles and
//! departments carry a generation number, nobody gets a manager they had before, nobody is
//! rehired), so an occurrence key names one real change.
//!
//! Not here: HRIS changes during paging (issue 14, defect 1, has its own test) and the
//! product's fixes; this file only observes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use roster::webhook::sign;

use crate::events::SECRET;

/// People 1..=MANAGERS are the managers: they never leave or move, so a report's manager
/// always resolves and no event arises that the HRIS did not cause.
const MANAGERS: u32 = 5;
const PAGE_SIZE: usize = 20;
const HR_TOKEN: &str = "soak-hr-token";
/// The fields whose changes key a `person.updated` occurrence.
const TRACKED: [&str; 3] = ["job_title", "department", "manager_email"];
/// A listing with no request for this long was abandoned (its daemon was killed).
const ABANDONED_US: i64 = 1_500_000;

// ---------------------------------------------------------------------------------------------
// Settings

struct Settings {
    runs: usize,
    seed: u64,
    max_kill_ms: u64,
    people: u32,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid number")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        let fresh = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Settings {
            runs: env_or("ROSTER_SOAK_RUNS", 50),
            seed: env_or("ROSTER_SOAK_SEED", fresh % 1_000_000_007),
            max_kill_ms: env_or("ROSTER_SOAK_MAX_KILL_MS", 10000),
            people: env_or("ROSTER_SOAK_PEOPLE", 150).max(MANAGERS + 2),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The fake HRIS: offset paging with a reported total, changing between listings.

#[derive(Debug, Clone, PartialEq)]
struct Person {
    id: u32,
    first: String,
    last: String,
    title: String,
    dept: String,
    manager: Option<u32>,
    /// False: left, still listed with status `inactive` and an end date.
    active: bool,
    start: String,
}

impl Person {
    fn email(&self) -> String {
        email_of(self.id)
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id.to_string(), "email": self.email(), "first": self.first,
            "last": self.last, "title": self.title, "dept": self.dept,
            "manager": self.manager.map(|m| m.to_string()),
            "status": if self.active { "active" } else { "inactive" },
            "start": self.start, "end": if self.active { None } else { Some("2024-12-31") },
        })
    }
}

fn email_of(id: u32) -> String {
    format!("p{id}@corp.example")
}

/// One listing served: which data versions its pages came from and when.
#[derive(Debug, Clone)]
struct Listing {
    versions: BTreeSet<usize>,
    first_us: i64,
    last_us: i64,
    complete: bool,
}

struct Hris {
    rng: fastrand::Rng,
    /// The listing now, in id order. A leaver removed from it is in `removed`.
    people: Vec<Person>,
    removed: BTreeSet<u32>,
    /// `versions[v]` is the listing of data version v.
    versions: Vec<Vec<Person>>,
    listings: Vec<Listing>,
    next_id: u32,
    generation: u64,
    managers_had: HashMap<u32, BTreeSet<u32>>,
    steps: u64,
}

fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

impl Hris {
    fn new(seed: u64, head_count: u32) -> Hris {
        let mut h = Hris {
            rng: fastrand::Rng::with_seed(seed),
            people: Vec::new(),
            removed: BTreeSet::new(),
            versions: Vec::new(),
            listings: Vec::new(),
            next_id: 1,
            generation: 0,
            managers_had: HashMap::new(),
            steps: 0,
        };
        for _ in 0..head_count {
            h.hire();
        }
        h.versions.push(h.people.clone());
        h
    }

    fn version(&self) -> usize {
        self.versions.len() - 1
    }

    fn fresh(&mut self, what: &str) -> String {
        self.generation += 1;
        format!("{what} g{}", self.generation)
    }

    fn hire(&mut self) {
        let id = self.next_id;
        self.next_id += 1;
        let manager = match id {
            1 => None,
            2..=MANAGERS => Some(1),
            _ => Some(self.rng.u32(1..=MANAGERS)),
        };
        let title = self.fresh("Title");
        let dept = self.fresh("Dept");
        let start = format!(
            "20{}-{:02}-{:02}",
            15 + self.rng.u32(0..9),
            self.rng.u32(1..=12),
            self.rng.u32(1..=28)
        );
        self.managers_had
            .entry(id)
            .or_default()
            .extend(manager.iter().copied());
        self.people.push(Person {
            id,
            first: format!("First{id}"),
            last: format!("Last{id}"),
            title,
            dept,
            manager,
            active: true,
            start,
        });
    }

    /// The index of a random active person; `movable` excludes the managers.
    fn pick(&mut self, movable: bool) -> Option<usize> {
        let pool: Vec<usize> = (0..self.people.len())
            .filter(|&i| self.people[i].active && (!movable || self.people[i].id > MANAGERS))
            .collect();
        (!pool.is_empty()).then(|| pool[self.rng.usize(0..pool.len())])
    }

    /// One batch of HR changes, drawn from the seeded generator; a new data version unless it
    /// drew none (a quiet step: the next sync finds nothing to apply).
    fn step(&mut self) {
        self.steps += 1;
        let before = self.people.clone();
        if self.rng.u32(0..100) >= 12 {
            for _ in 0..self.rng.usize(0..=2) {
                self.hire();
            }
            if self.rng.u32(0..100) < 45
                && let Some(i) = self.pick(true)
            {
                if self.rng.bool() {
                    let gone = self.people.remove(i);
                    self.removed.insert(gone.id);
                } else {
                    self.people[i].active = false;
                }
            }
            for _ in 0..self.rng.usize(0..=3) {
                if let Some(i) = self.pick(false) {
                    self.people[i].title = self.fresh("Title");
                }
            }
            for _ in 0..self.rng.usize(0..=2) {
                if let Some(i) = self.pick(false) {
                    self.people[i].dept = self.fresh("Dept");
                }
            }
            if self.rng.bool()
                && let Some(i) = self.pick(true)
            {
                let id = self.people[i].id;
                let had = self.managers_had.entry(id).or_default();
                let free: Vec<u32> = (1..=MANAGERS).filter(|m| !had.contains(m)).collect();
                if !free.is_empty() {
                    let m = free[self.rng.usize(0..free.len())];
                    had.insert(m);
                    self.people[i].manager = Some(m);
                }
            }
        }
        if self.people != before {
            self.versions.push(self.people.clone());
        }
    }

    /// [`Hris::step`] unless a listing is in flight (incomplete and asked for a page
    /// recently); whether it stepped.
    fn step_unless_listing(&mut self) -> bool {
        let in_flight = self
            .listings
            .last()
            .is_some_and(|l| !l.complete && now_us() - l.last_us < ABANDONED_US);
        if !in_flight {
            self.step();
        }
        !in_flight
    }
}

type SharedHris = Arc<Mutex<Hris>>;

async fn people_page(
    State(h): State<SharedHris>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {HR_TOKEN}")) {
        return (StatusCode::UNAUTHORIZED, "bad token").into_response();
    }
    let num = |k: &str, d: usize| q.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let (offset, limit) = (num("offset", 0), num("limit", PAGE_SIZE));
    let now = now_us();
    let mut h = h.lock().unwrap();
    let version = h.version();
    let total = h.people.len();
    let page: Vec<Value> = h
        .people
        .iter()
        .skip(offset)
        .take(limit)
        .map(Person::json)
        .collect();
    if offset == 0 || h.listings.last().is_none_or(|l| l.complete) {
        h.listings.push(Listing {
            versions: BTreeSet::new(),
            first_us: now,
            last_us: now,
            complete: false,
        });
    }
    let l = h.listings.last_mut().unwrap();
    l.versions.insert(version);
    l.last_us = now;
    l.complete = offset + page.len() >= total;
    Json(json!({"data": page, "meta": {"total": total}})).into_response()
}

const PROVIDER: &str = r#"
title: Soak HR
base_url: http://ADDR
credentials:
  token: {description: API token}
auth: {kind: bearer, token: "{credentials.token}"}
streams:
  people:
    request: {path: /people}
    pagination: {kind: offset, page_size: PAGE}
    records: $.data[*]
    id: $.id
    total: $.meta.total
"#;

const MAPPING: &str = r#"
provider: soakhr
stream: people
fields:
  employee_id: $.id
  work_email: $.email
  first_name: $.first
  last_name: $.last
  job_title: $.title
  department: $.dept
  manager_id: $.manager
  status: {path: $.status, values: {active: active, inactive: terminated}}
  start_date: $.start
  end_date: $.end
"#;

// ---------------------------------------------------------------------------------------------
// The webhook receiver: verifies every signature; fails 20% of attempts with 500, decided by
// (seed, webhook-id, attempt number) so a seed replays the same failures.

#[derive(Debug, Clone)]
struct Got {
    id: String,
    body: bytes::Bytes,
    signed: bool,
    status: u16,
}

struct Sink {
    seed: u64,
    got: Mutex<Vec<Got>>,
}

async fn hook(State(s): State<Arc<Sink>>, headers: HeaderMap, body: bytes::Bytes) -> StatusCode {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let id = h("webhook-id");
    let ts: i64 = h("webhook-timestamp").parse().unwrap_or(0);
    let secret = sign::Secret::parse(SECRET).unwrap();
    let signed = sign::verify(&secret, &id, ts, &body, &h("webhook-signature"));
    let mut got = s.got.lock().unwrap();
    let nth = got.iter().filter(|g| g.id == id).count();
    let roll = xxhash_rust::xxh3::xxh3_64_with_seed(format!("{id}/{nth}").as_bytes(), s.seed);
    let status = match (signed, roll % 5) {
        (false, _) => 401,
        (true, 0) => 500,
        _ => 204,
    };
    got.push(Got {
        id,
        body,
        signed,
        status,
    });
    StatusCode::from_u16(status).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The daemon under test.

#[derive(Default)]
struct Stats {
    kills: u64,
    /// Where each kill landed in the daemon's work ([`kill_point`]).
    killed_in: BTreeMap<&'static str, u64>,
    sync_requests: u64,
    answers: BTreeMap<String, u64>,
    /// Milliseconds from spawn to ready, per run that got there.
    ready_ms: Vec<u128>,
    /// Milliseconds a `POST /sync` took, per answered request.
    sync_ms: Vec<u128>,
    /// Runs that found the published directory behind the state after a kill: (run, the
    /// state's last applied run, the directory's, the directory's once the daemon was ready).
    stale: Vec<(usize, String, String, String)>,
}

struct Soak {
    root: PathBuf,
    config: PathBuf,
    logs: PathBuf,
    admin: String,
    hris: SharedHris,
    sink: Arc<Sink>,
    http: reqwest::Client,
    child: Option<Child>,
    log: PathBuf,
}

impl Soak {
    async fn new(s: &Settings) -> Soak {
        let hris = Arc::new(Mutex::new(Hris::new(s.seed, s.people)));
        let hr = crate::provider_common::serve(
            axum::Router::new()
                .route("/people", get(people_page))
                .with_state(hris.clone()),
        )
        .await;
        let sink = Arc::new(Sink {
            seed: s.seed,
            got: Mutex::new(Vec::new()),
        });
        let hook_addr = crate::provider_common::serve(
            axum::Router::new()
                .route("/hook", post(hook))
                .with_state(sink.clone()),
        )
        .await;
        // Kept on failure (the logs and the state are the evidence); removed on success.
        let root =
            std::env::temp_dir().join(format!("roster-soak-{}-{}", s.seed, std::process::id()));
        let config = root.join("config");
        let logs = root.join("logs");
        for d in ["providers", "mappings", "secrets"] {
            std::fs::create_dir_all(config.join(d)).unwrap();
        }
        std::fs::create_dir_all(&logs).unwrap();
        let provider = PROVIDER
            .replace("ADDR", &hr.to_string())
            .replace("PAGE", &PAGE_SIZE.to_string());
        std::fs::write(config.join("providers/soakhr.yaml"), provider).unwrap();
        std::fs::write(config.join("mappings/soakhr.yaml"), MAPPING).unwrap();
        std::fs::write(config.join("secrets/hr"), HR_TOKEN).unwrap();
        std::fs::write(config.join("secrets/hook"), SECRET).unwrap();
        let admin = format!(
            "127.0.0.1:{}",
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        );
        // Retries 1s apart: at 20% failures, 16 attempts make a dead letter (a loss) a
        // one-in-10^11 event, and the final drain takes seconds, not a day.
        let retries = std::iter::once("0s")
            .chain(std::iter::repeat_n("1s", 15))
            .collect::<Vec<_>>()
            .join(", ");
        let yaml = format!(
            "time_zone: Europe/Berlin\nstore:\n  state_dir: state\nadmin:\n  listen: {admin}\nsources:\n  hr:\n    provider: soakhr\n    credentials:\n      token: {{file: secrets/hr}}\n    schedule: {{every: 24h}}\nwebhooks:\n  sink:\n    url: http://{hook_addr}/hook\n    secret: {{file: secrets/hook}}\n    allow_private_network: true\n    events: ['*']\n    retry_schedule: [{retries}]\n"
        );
        std::fs::write(config.join("roster.yaml"), yaml).unwrap();
        Soak {
            root,
            config,
            log: logs.join("none.log"),
            logs,
            admin,
            hris,
            sink,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            child: None,
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.config.join("state")
    }

    fn spawn(&mut self, name: &str) {
        self.log = self.logs.join(format!("{name}.log"));
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_roster"))
            .args([
                "run",
                "--log-format",
                "text",
                "--stop-grace",
                "10s",
                "--config",
            ])
            .arg(&self.config)
            .env("RUST_LOG", "info,roster=debug")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Exited on its own: the exit status.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    async fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "could not send SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not stop within 60s of SIGTERM:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn admin_client(&self) -> Admin {
        Admin {
            base: format!("http://{}", self.admin),
            token_file: self.state_dir().join("admin.token"),
            http: self.http.clone(),
        }
    }
}

impl Drop for Soak {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Talks to the admin endpoint; sends `<state_dir>/admin.token` as a bearer token when the
/// daemon wrote one.
#[derive(Clone)]
struct Admin {
    base: String,
    token_file: PathBuf,
    http: reqwest::Client,
}

impl Admin {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match std::fs::read_to_string(&self.token_file) {
            Ok(t) => r.bearer_auth(t.trim()),
            Err(_) => r,
        }
    }

    async fn ready(&self) -> bool {
        let r = self.request(reqwest::Method::GET, "/readyz").send().await;
        r.is_ok_and(|r| r.status().as_u16() == 200)
    }

    async fn wait_ready(&self) {
        while !self.ready().await {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `POST /sync?source=hr`: the run's outcome, or why there is none.
    async fn sync(&self) -> Result<String, String> {
        let r = self
            .request(reqwest::Method::POST, "/sync?source=hr")
            .send()
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let text = r.text().await.map_err(|e| format!("cut answer: {e}"))?;
        let v: Value = serde_json::from_str(&text).map_err(|_| format!("not JSON: {text}"))?;
        v["results"][0]["outcome"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no result: {text}"))
    }

    async fn status(&self) -> Option<Value> {
        let r = self
            .request(reqwest::Method::GET, "/status")
            .send()
            .await
            .ok()?;
        serde_json::from_str(&r.text().await.ok()?).ok()
    }
}

/// Where in the daemon's work a kill landed, from the last progress line of its log (the
/// store's debug timings, which `spawn` turns on): a figure only, so an unknown log format
/// shows as `unknown` rather than failing the soak.
fn kill_point(log: &str) -> &'static str {
    let last = log.lines().rev().find_map(|l| {
        [
            ("what=\"sync\" phase=\"publish\"", "idle or delivering"),
            (" records in ", "idle or delivering"),
            (
                "what=\"sync\" phase=\"apply\"",
                "publish (committed, not yet published)",
            ),
            ("what=\"apply\"", "apply (before commit)"),
            ("phase=\"fetch+map+stage\"", "apply (before commit)"),
            ("phase=\"known_hashes\"", "fetch"),
            ("roster is running", "ready, before a fetch"),
        ]
        .into_iter()
        .find_map(|(needle, point)| l.contains(needle).then_some(point))
    });
    match last {
        Some(point) => point,
        None if log.trim().is_empty() => "start-up",
        None => "unknown",
    }
}

/// One run's driver: wait until ready, then change the HRIS and sync, again and again, until
/// aborted by the kill.
async fn drive(
    admin: Admin,
    hris: SharedHris,
    stats: Arc<Mutex<Stats>>,
    stale: Option<(usize, String, String, PathBuf)>,
) {
    let spawned = Instant::now();
    admin.wait_ready().await;
    stats
        .lock()
        .unwrap()
        .ready_ms
        .push(spawned.elapsed().as_millis());
    // The directory was behind the state when this daemon started (a kill between commit
    // and publish): does a ready daemon serve a directory that caught up?
    if let Some((run, in_state, in_directory, published)) = stale {
        let now = tokio::task::spawn_blocking(move || last_applied(&published))
            .await
            .unwrap()
            .unwrap_or_else(|| "0".into());
        stats
            .lock()
            .unwrap()
            .stale
            .push((run, in_state, in_directory, now));
    }
    loop {
        // Never while a listing is in flight (a scheduled sync): each listing shows one
        // version of the data, so the checker knows what a run saw.
        while !hris.lock().unwrap().step_unless_listing() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stats.lock().unwrap().sync_requests += 1;
        let asked = Instant::now();
        let answer = admin.sync().await;
        if answer.is_ok() {
            stats
                .lock()
                .unwrap()
                .sync_ms
                .push(asked.elapsed().as_millis());
        }
        let key =
            answer.unwrap_or_else(|e| format!("error: {}", e.chars().take(60).collect::<String>()));
        *stats.lock().unwrap().answers.entry(key).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The checker.

fn open_ro(path: &Path) -> duckdb::Connection {
    let cfg = duckdb::Config::default()
        .access_mode(duckdb::AccessMode::ReadOnly)
        .unwrap();
    duckdb::Connection::open_with_flags(path, cfg)
        .unwrap_or_else(|e| panic!("cannot open {} read-only: {e}", path.display()))
}

/// The last applied run a database holds (state or published), None without the file.
fn last_applied(path: &Path) -> Option<String> {
    path.exists().then(|| {
        rows(
            &open_ro(path),
            "SELECT coalesce(max(id), 0)::VARCHAR FROM sync_runs WHERE outcome = 'applied'",
        )[0][0]
            .clone()
            .unwrap_or_default()
    })
}

/// Every row of `sql`, each value as text (NULL: None). Cast non-text columns in the SQL.
fn rows(c: &duckdb::Connection, sql: &str) -> Vec<Vec<Option<String>>> {
    let mut st = c.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rs = st.query([]).unwrap();
    let n = rs.as_ref().unwrap().column_count();
    let mut out = Vec::new();
    while let Some(r) = rs.next().unwrap() {
        out.push(
            (0..n)
                .map(|i| r.get::<_, Option<String>>(i).unwrap())
                .collect(),
        );
    }
    out
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// What an event is about, whatever its id: the key under which one real change has one
/// event. `data` is the event's data (outbox) or body `data` (delivery).
fn occurrence(kind: &str, data: &Value) -> String {
    let email = s(&data["work_email"]);
    match kind {
        "person.updated" => {
            let mut changes: Vec<String> = data["changes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| TRACKED.contains(&s(&c["field"])))
                .map(|c| format!("{}: {} -> {}", s(&c["field"]), s(&c["old"]), s(&c["new"])))
                .collect();
            changes.sort();
            format!("{kind} {email} [{}]", changes.join("; "))
        }
        "person.manager_changed" => format!(
            "{kind} {email} {} -> {}",
            s(&data["old_manager_email"]),
            s(&data["new_manager_email"])
        ),
        _ => format!("{kind} {email}"),
    }
}

/// The `person.*` occurrences a sync must announce when the HRIS went from `before` to
/// `after` (the mirror of the product's diff, restricted to what this HRIS changes).
fn expected_between(before: &[Person], after: &[Person]) -> Vec<String> {
    let was: HashMap<u32, &Person> = before.iter().map(|p| (p.id, p)).collect();
    let is: HashMap<u32, &Person> = after.iter().map(|p| (p.id, p)).collect();
    let manager = |p: &Person| p.manager.map(email_of).unwrap_or_default();
    let mut out = Vec::new();
    for p in after {
        let data = |extra: Value| {
            let mut d = json!({"work_email": p.email()});
            d.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            d
        };
        // The mapping's default filter drops inactive records: a leaver is gone from the
        // directory's point of view, like one removed from the listing (below), and one
        // never seen active never enters it.
        let Some(old) = was.get(&p.id).filter(|o| o.active) else {
            if p.active {
                out.push(occurrence("person.created", &data(json!({}))));
            }
            continue;
        };
        if !p.active {
            out.push(occurrence("person.terminated", &data(json!({}))));
            continue;
        }
        let manager_moved = manager(old) != manager(p);
        let mut changes = Vec::new();
        for (field, a, b) in [
            ("job_title", &old.title, &p.title),
            ("department", &old.dept, &p.dept),
            ("manager_email", &manager(old), &manager(p)),
        ] {
            if a != b {
                changes.push(json!({"field": field, "old": a, "new": b}));
            }
        }
        if !changes.is_empty() {
            out.push(occurrence(
                "person.updated",
                &data(json!({ "changes": changes })),
            ));
        }
        if manager_moved {
            out.push(occurrence(
                "person.manager_changed",
                &data(json!({"old_manager_email": manager(old), "new_manager_email": manager(p)})),
            ));
        }
    }
    for p in before
        .iter()
        .filter(|p| p.active && !is.contains_key(&p.id))
    {
        out.push(occurrence(
            "person.terminated",
            &json!({"work_email": p.email()}),
        ));
    }
    out
}

#[derive(Debug)]
struct Run {
    id: i64,
    outcome: String,
    started_us: i64,
    finished_us: i64,
}

#[derive(Debug)]
struct Event {
    id: String,
    kind: String,
    run: Option<i64>,
    data: Value,
}

/// What went wrong, by invariant; printed in full, asserted empty.
#[derive(Default)]
struct Findings(BTreeMap<&'static str, Vec<String>>);

impl Findings {
    fn add(&mut self, invariant: &'static str, what: String) {
        self.0.entry(invariant).or_default().push(what);
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (invariant, items) in &self.0 {
            out.push_str(&format!("\n== {invariant}: {} ==\n", items.len()));
            for i in items.iter().take(25) {
                out.push_str(&format!("  - {i}\n"));
            }
            if items.len() > 25 {
                out.push_str(&format!("  ... and {} more\n", items.len() - 25));
            }
        }
        out
    }
}

/// The directory's people as `email -> [employee_id, first, last, title, dept, manager,
/// status, start]`.
fn people_of(c: &duckdb::Connection) -> BTreeMap<String, Vec<String>> {
    rows(
        c,
        "SELECT work_email, employee_id, first_name, last_name, job_title, department, \
         manager_email, status, start_date::VARCHAR FROM people",
    )
    .into_iter()
    .map(|r| {
        let mut r: Vec<String> = r.into_iter().map(Option::unwrap_or_default).collect();
        (r.remove(0), r)
    })
    .collect()
}

fn row_of(p: &Person) -> Vec<String> {
    vec![
        p.id.to_string(),
        p.first.clone(),
        p.last.clone(),
        p.title.clone(),
        p.dept.clone(),
        p.manager.map(email_of).unwrap_or_default(),
        "active".to_string(),
        p.start.clone(),
    ]
}

/// The directory `people` (state or published) against the HRIS now: everyone employed,
/// field by field; every leaver a committed sync saw employed, terminated; nobody else.
fn compare_people(
    findings: &mut Findings,
    what: &'static str,
    got: &BTreeMap<String, Vec<String>>,
    hris: &Hris,
    seen_active: &BTreeSet<u32>,
) {
    let employed: BTreeMap<String, &Person> = hris
        .people
        .iter()
        .filter(|p| p.active)
        .map(|p| (p.email(), p))
        .collect();
    for (email, p) in &employed {
        match got.get(email) {
            None => findings.add(what, format!("{email} is employed but missing")),
            Some(row) if *row != row_of(p) => findings.add(
                what,
                format!("{email}: directory {row:?}, HRIS {:?}", row_of(p)),
            ),
            Some(_) => {}
        }
    }
    for email in seen_active.iter().map(|&id| email_of(id)) {
        if employed.contains_key(&email) {
            continue;
        }
        match got.get(&email).map(|row| row[6].as_str()) {
            None => findings.add(what, format!("{email} left and is missing")),
            Some("terminated") => {}
            Some(status) => findings.add(what, format!("{email} left but is {status}")),
        }
    }
    let known: BTreeSet<String> = seen_active.iter().map(|&id| email_of(id)).collect();
    for email in got.keys() {
        if !employed.contains_key(email) && !known.contains(email) {
            findings.add(
                what,
                format!("{email} is in the directory but no committed sync saw them employed"),
            );
        }
    }
}

struct Figures {
    applied: usize,
    unchanged: usize,
    other_runs: BTreeMap<String, usize>,
    person_events: usize,
    events: usize,
}

fn check(soak: &Soak, findings: &mut Findings) -> Figures {
    let hris = soak.hris.lock().unwrap();
    let state = open_ro(&soak.state_dir().join("state.duckdb"));
    let runs: Vec<Run> = rows(
        &state,
        "SELECT id::VARCHAR, outcome, epoch_us(started_at)::VARCHAR, \
         epoch_us(coalesce(finished_at, started_at))::VARCHAR FROM sync_runs ORDER BY id",
    )
    .into_iter()
    .map(|r| Run {
        id: r[0].as_deref().unwrap().parse().unwrap(),
        outcome: r[1].clone().unwrap(),
        started_us: r[2].as_deref().unwrap().parse().unwrap(),
        finished_us: r[3].as_deref().unwrap().parse().unwrap(),
    })
    .collect();
    let events: Vec<Event> = rows(
        &state,
        "SELECT id, type, sync_run::VARCHAR, data FROM events ORDER BY id",
    )
    .into_iter()
    .map(|r| Event {
        id: r[0].clone().unwrap(),
        kind: r[1].clone().unwrap(),
        run: r[2].as_deref().map(|v| v.parse().unwrap()),
        data: serde_json::from_str(r[3].as_deref().unwrap()).unwrap(),
    })
    .collect();

    // Which data each committed run saw, and what it therefore had to announce.
    let mut expected: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut previous: Option<(i64, usize)> = None;
    let mut seen_active: BTreeSet<u32> = BTreeSet::new();
    let mut figures = Figures {
        applied: 0,
        unchanged: 0,
        other_runs: BTreeMap::new(),
        person_events: 0,
        events: events.len(),
    };
    for run in &runs {
        if run.outcome != "applied" && run.outcome != "unchanged" {
            *figures.other_runs.entry(run.outcome.clone()).or_default() += 1;
            continue;
        }
        let seen: Vec<&Listing> = hris
            .listings
            .iter()
            .filter(|l| l.complete && l.first_us >= run.started_us && l.last_us <= run.finished_us)
            .collect();
        // A run reads the listing once, or twice when records disappeared: the second read
        // confirms departures (the HRIS does not change during a run here, so both agree).
        let (&[listing] | &[listing, _]) = seen.as_slice() else {
            findings.add(
                "harness",
                format!(
                    "run {} ({}) spans {} complete listings",
                    run.id,
                    run.outcome,
                    seen.len()
                ),
            );
            continue;
        };
        if listing.versions.len() != 1 {
            findings.add(
                "harness",
                format!(
                    "the HRIS changed during run {}'s listing ({:?})",
                    run.id, listing.versions
                ),
            );
            continue;
        }
        let version = *listing.versions.first().unwrap();
        if run.outcome == "unchanged" {
            figures.unchanged += 1;
            match previous {
                Some((_, v)) if hris.versions[v] != hris.versions[version] => findings.add(
                    "lost = none",
                    format!(
                        "run {} said `unchanged` but read data version {version}, which differs from version {v} of the last applied run ({} changes not applied)",
                        run.id,
                        expected_between(&hris.versions[v], &hris.versions[version]).len()
                    ),
                ),
                None => findings.add(
                    "harness",
                    format!("run {} is `unchanged` before any applied run", run.id),
                ),
                _ => {}
            }
            continue;
        }
        figures.applied += 1;
        seen_active.extend(
            hris.versions[version]
                .iter()
                .filter(|p| p.active)
                .map(|p| p.id),
        );
        if let Some((_, v)) = previous {
            for key in expected_between(&hris.versions[v], &hris.versions[version]) {
                expected.entry(key).or_default().push(run.id);
            }
        }
        previous = Some((run.id, version));
    }

    // The outbox against the expectations.
    let mut written: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.kind.starts_with("person.")) {
        figures.person_events += 1;
        written
            .entry(occurrence(&e.kind, &e.data))
            .or_default()
            .push(e);
    }
    for (key, want_runs) in &expected {
        match written.get(key) {
            None => findings.add(
                "lost = none",
                format!("no event for `{key}` (observed by run {want_runs:?})"),
            ),
            Some(got) => {
                let mut got_runs: Vec<Option<i64>> = got.iter().map(|e| e.run).collect();
                got_runs.sort();
                if got_runs
                    .iter()
                    .copied()
                    .ne(want_runs.iter().map(|r| Some(*r)))
                {
                    findings.add(
                        "lost = none",
                        format!(
                            "`{key}`: expected from run {want_runs:?}, written by {got_runs:?}"
                        ),
                    );
                }
            }
        }
    }
    let still_employed: BTreeSet<String> = hris
        .people
        .iter()
        .filter(|p| p.active)
        .map(Person::email)
        .collect();
    for (key, got) in &written {
        let ids: BTreeSet<&str> = got.iter().map(|e| e.id.as_str()).collect();
        if ids.len() > 1 && expected.get(key).is_none_or(|r| r.len() < ids.len()) {
            findings.add(
                "duplicates only with the same webhook-id",
                format!("`{key}` has {} event ids: {ids:?}", ids.len()),
            );
        }
        if expected.contains_key(key) {
            continue;
        }
        for e in got {
            let email = s(&e.data["work_email"]);
            let why = match e.kind.as_str() {
                "person.terminated" if still_employed.contains(email) => {
                    " (FALSE TERMINATION: still employed in the HRIS)"
                }
                "person.reactivated" => " (nobody was ever rehired)",
                _ => "",
            };
            findings.add(
                "unexpected = none",
                format!("event {} `{key}` from run {:?}{why}", e.id, e.run),
            );
        }
    }

    // Every outbox event delivered; nothing delivered that the outbox does not hold; a
    // redelivery is the same message.
    let got = soak.sink.got.lock().unwrap();
    let mut by_id: HashMap<&str, Vec<&Got>> = HashMap::new();
    for g in got.iter() {
        by_id.entry(g.id.as_str()).or_default().push(g);
        if !g.signed {
            findings.add(
                "signatures",
                format!("delivery of {} has no valid signature", g.id),
            );
        }
    }
    let dead = rows(
        &state,
        "SELECT event_id, state, attempts::VARCHAR, coalesce(last_error, '') FROM deliveries WHERE state <> 'delivered'",
    );
    for r in dead {
        findings.add(
            "lost = none",
            format!(
                "delivery of {} is {} after {} attempts: {}",
                r[0].as_deref().unwrap_or(""),
                r[1].as_deref().unwrap_or(""),
                r[2].as_deref().unwrap_or(""),
                r[3].as_deref().unwrap_or("")
            ),
        );
    }
    let outbox_ids: BTreeSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    for e in &events {
        let ok = by_id
            .get(e.id.as_str())
            .is_some_and(|gs| gs.iter().any(|g| g.status == 204));
        if !ok {
            findings.add(
                "lost = none",
                format!(
                    "event {} ({} {}) never delivered",
                    e.id,
                    e.kind,
                    occurrence(&e.kind, &e.data)
                ),
            );
        }
    }
    for (id, gs) in &by_id {
        if !outbox_ids.contains(id) {
            let body: Value = serde_json::from_slice(&gs[0].body).unwrap_or(Value::Null);
            findings.add(
                "unexpected = none",
                format!(
                    "delivered {id} (`{}`), which the outbox does not hold (a rolled-back event was sent?)",
                    occurrence(s(&body["type"]), &body["data"])
                ),
            );
        }
        if gs.iter().any(|g| g.body != gs[0].body) {
            findings.add(
                "duplicates only with the same webhook-id",
                format!("{id} was sent with different bodies"),
            );
        }
    }
    drop(got);

    // The directory at the end: the state's and the published copy.
    compare_people(
        findings,
        "state.duckdb people = HRIS",
        &people_of(&state),
        &hris,
        &seen_active,
    );
    let published = soak.state_dir().join("directory.duckdb");
    let directory = open_ro(&published);
    compare_people(
        findings,
        "published directory.duckdb = HRIS",
        &people_of(&directory),
        &hris,
        &seen_active,
    );
    let (in_state, in_directory) = (
        last_applied(&soak.state_dir().join("state.duckdb")),
        last_applied(&published),
    );
    if in_state != in_directory {
        findings.add(
            "published directory.duckdb = HRIS",
            format!(
                "the published directory reflects applied run {in_directory:?}, the state {in_state:?}: stale"
            ),
        );
    }
    figures
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak of several minutes; run bench/soak.sh"]
async fn soak_kill_9_while_the_hris_changes_and_the_receiver_fails() {
    let settings = Settings::from_env();
    let started = Instant::now();
    println!(
        "soak: seed {} (replay: ROSTER_SOAK_SEED={}), {} runs, kill within {} ms of start, {} people",
        settings.seed, settings.seed, settings.runs, settings.max_kill_ms, settings.people
    );
    let mut soak = Soak::new(&settings).await;
    println!("soak: config, state and logs in {}", soak.root.display());
    let mut kill_rng = fastrand::Rng::with_seed(settings.seed ^ 0x9e37_79b9_7f4a_7c15);
    let stats = Arc::new(Mutex::new(Stats::default()));

    for run in 1..=settings.runs {
        let delay = Duration::from_millis(kill_rng.u64(0..=settings.max_kill_ms));
        // With no daemon running, is the published directory behind the state?
        let published = soak.state_dir().join("directory.duckdb");
        // (No directory yet counts as applied run 0: nothing was applied, nothing is due.)
        let zero = || "0".to_string();
        let stale = match (
            last_applied(&soak.state_dir().join("state.duckdb")),
            last_applied(&published).unwrap_or_else(zero),
        ) {
            (Some(s), d) if s != d => Some((run, s, d, published)),
            _ => None,
        };
        soak.spawn(&format!("run-{run:03}"));
        let driver = tokio::spawn(drive(
            soak.admin_client(),
            soak.hris.clone(),
            stats.clone(),
            stale,
        ));
        let until = Instant::now() + delay;
        while Instant::now() < until {
            if let Some(status) = soak.exited() {
                driver.abort();
                panic!(
                    "run {run}: the daemon exited on its own ({status}) after a kill -9 in the run before; seed {}; log {}:\n{}",
                    settings.seed,
                    soak.log.display(),
                    soak.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        soak.kill();
        driver.abort();
        let _ = driver.await;
        let mut st = stats.lock().unwrap();
        st.kills += 1;
        let log = std::fs::read_to_string(&soak.log).unwrap_or_default();
        *st.killed_in.entry(kill_point(&log)).or_default() += 1;
    }

    // The end: no more kills or changes; one committed sync of the final data, then drain.
    soak.spawn("final");
    let admin = soak.admin_client();
    let ready = tokio::time::timeout(Duration::from_secs(120), admin.wait_ready()).await;
    assert!(
        ready.is_ok(),
        "the daemon is not ready 120s after the last kill; seed {}:\n{}",
        settings.seed,
        soak.log_tail()
    );
    let mut last = String::new();
    for _ in 0..5 {
        last = admin.sync().await.unwrap_or_else(|e| e);
        if last == "applied" || last == "unchanged" {
            break;
        }
    }
    assert!(
        last == "applied" || last == "unchanged",
        "the final sync does not commit: {last}; seed {}:\n{}",
        settings.seed,
        soak.log_tail()
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let pending = admin
            .status()
            .await
            .and_then(|s| s["webhooks"][0]["pending"].as_u64());
        if pending == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the outbox does not drain ({pending:?} pending after 300s); seed {}",
            settings.seed
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = soak.stop().await;
    assert!(status.success(), "SIGTERM: {status}:\n{}", soak.log_tail());

    let mut findings = Findings::default();
    let figures = check(&soak, &mut findings);
    let st = stats.lock().unwrap();
    for (run, in_state, in_directory, once_ready) in &st.stale {
        if once_ready != in_state {
            findings.add(
                "published directory.duckdb = HRIS",
                format!(
                    "run {run} started with the directory at applied run {in_directory} and the state at {in_state}; once ready it served {once_ready}: a restart does not republish"
                ),
            );
        }
    }
    let got = soak.sink.got.lock().unwrap();
    let mut delivered: HashMap<&str, u64> = HashMap::new();
    for g in got.iter().filter(|g| g.status == 204) {
        *delivered.entry(&g.id).or_default() += 1;
    }
    let duplicates: u64 = delivered.values().map(|n| n - 1).sum();
    let hris = soak.hris.lock().unwrap();
    println!("soak figures (seed {}):", settings.seed);
    println!(
        "  runs {} + final, kills {} (landed in: {:?})",
        settings.runs, st.kills, st.killed_in
    );
    println!(
        "  HRIS: {} change steps, {} data versions, {} listings served ({} complete), {} people listed, {} left",
        hris.steps,
        hris.versions.len(),
        hris.listings.len(),
        hris.listings.iter().filter(|l| l.complete).count(),
        hris.people.len(),
        hris.removed.len() + hris.people.iter().filter(|p| !p.active).count()
    );
    println!(
        "  syncs: {} asked ({:?}); committed runs: {} applied, {} unchanged, others {:?}",
        st.sync_requests, st.answers, figures.applied, figures.unchanged, figures.other_runs
    );
    let mean = |v: &[u128]| v.iter().sum::<u128>() / (v.len().max(1) as u128);
    println!(
        "  timing: ready {} ms after spawn (mean of {}), a sync answers in {} ms (mean of {})",
        mean(&st.ready_ms),
        st.ready_ms.len(),
        mean(&st.sync_ms),
        st.sync_ms.len()
    );
    println!(
        "  events: {} in the outbox ({} person.*)",
        figures.events, figures.person_events
    );
    println!(
        "  deliveries: {} attempted, {} failed with 500, {} events delivered, {} duplicates (same id)",
        got.len(),
        got.iter().filter(|g| g.status == 500).count(),
        delivered.len(),
        duplicates
    );
    // Not one of the four invariants, but evidence for issue 14 (defect 5): temp copies of
    // the directory that a kill left behind.
    let leftovers: Vec<String> = std::fs::read_dir(soak.state_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp") || n.contains(".tmp."))
        .collect();
    println!("  leftover temp copies in the state dir: {leftovers:?}");
    println!(
        "  directory behind the state at a restart (a kill between commit and publish): {} times",
        st.stale.len()
    );
    println!("  wall time {:.1?}", started.elapsed());
    drop((st, got, hris));
    if findings.0.is_empty() {
        println!(
            "soak: lost = none, unexpected = none, duplicates only with the same webhook-id, directory = HRIS"
        );
        if std::env::var_os("ROSTER_SOAK_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&soak.root);
        }
    } else {
        panic!(
            "soak failed (seed {}; evidence kept in {}):{}",
            settings.seed,
            soak.root.display(),
            findings.render()
        );
    }
}
