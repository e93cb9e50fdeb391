//! `roster run`, the real binary as a child process: hot reload (valid, invalid, slow
//! writes, rename-saves, many files at once, SIGHUP), sync now, continuous delivery, SIGTERM
//! during a sync, a second instance, and secrets kept out of every output.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::events::{SECRET, hr_person, start_receiver};

const CANARY_KEY: &str = "canary-key-5f1e9c07d3";

/// A paged HR fake whose pages can be made slow.
#[derive(Default)]
struct Hr {
    people: Mutex<Vec<Value>>,
    delay_ms: AtomicU64,
    requests: AtomicU64,
}

async fn staff(
    State(h): State<Arc<Hr>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    h.requests.fetch_add(1, Ordering::SeqCst);
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if key != "hr-key" {
        // Like some vendors, echo the rejected key back.
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": format!("API key {key} is not valid")})),
        )
            .into_response();
    }
    let delay = h.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let page: usize = q
        .iter()
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(1);
    let people = h.people.lock().unwrap();
    let data: Vec<Value> = people
        .iter()
        .skip((page - 1) * 2)
        .take(2)
        .cloned()
        .collect();
    Json(json!({"staff": data, "total": people.len()})).into_response()
}

const PROVIDER: &str = r#"
title: HR
base_url: http://ADDR
credentials:
  key: {description: API key}
auth: {kind: api_key, in: header, name: X-Api-Key, value: "{credentials.key}"}
retry: {max_attempts: 1}
streams:
  staff:
    request: {path: /staff}
    pagination: {kind: page, page_size: 2}
    records: $.staff[*]
    total: $.total
"#;

fn mapping(title_path: &str) -> String {
    format!(
        "provider: hr\nstream: staff\nfields:\n  employee_id: $.id\n  work_email: $.email\n  first_name: $.first\n  last_name: $.last\n  job_title: {title_path}\n  department: $.dept\n  manager_id: $.manager\n  start_date: $.start\n  birth_date: $.born\n"
    )
}

struct Daemon {
    dir: tempfile::TempDir,
    /// The log lives outside the config directory (a file in it would be watched).
    _logs: tempfile::TempDir,
    hr: Arc<Hr>,
    admin: String,
    child: Option<Child>,
    log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn roster_yaml(admin: &str, key_file: &str, extra: &str) -> String {
    format!(
        "time_zone: Europe/Berlin\nstore:\n  state_dir: state\nadmin:\n  listen: {admin}\nsources:\n  hr:\n    provider: hr\n    credentials:\n      key: {{file: {key_file}}}\n    schedule: {{every: 24h}}\n{extra}"
    )
}

impl Daemon {
    async fn new(people: Vec<Value>, extra: &str) -> Daemon {
        let hr = Arc::new(Hr {
            people: Mutex::new(people),
            ..Hr::default()
        });
        let app = axum::Router::new()
            .route("/staff", get(staff))
            .with_state(hr.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["providers", "mappings", "secrets"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(
            root.join("providers/hr.yaml"),
            PROVIDER.replace("ADDR", &addr),
        )
        .unwrap();
        std::fs::write(root.join("mappings/hr.yaml"), mapping("$.title")).unwrap();
        std::fs::write(root.join("secrets/hr"), "hr-key").unwrap();
        std::fs::write(root.join("secrets/canary"), CANARY_KEY).unwrap();
        std::fs::write(root.join("secrets/hook"), SECRET).unwrap();
        let admin = format!("127.0.0.1:{}", free_port());
        std::fs::write(
            root.join("roster.yaml"),
            roster_yaml(&admin, "secrets/hr", extra),
        )
        .unwrap();
        let logs = tempfile::tempdir().unwrap();
        let log = logs.path().join("daemon.log");
        Daemon {
            dir,
            _logs: logs,
            hr,
            admin,
            child: None,
            log,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn start(&mut self) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_roster"))
            .args([
                "run",
                "--log-format",
                "text",
                "--stop-grace",
                "2s",
                "--config",
            ])
            .arg(self.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let r = reqwest::get(format!("http://{}{path}", self.admin))
            .await
            .ok()?;
        Some((r.status().as_u16(), r.text().await.ok()?))
    }

    async fn status(&self) -> Value {
        serde_json::from_str(&self.get("/status").await.unwrap().1).unwrap()
    }

    async fn wait_ready(&self) {
        self.wait_for("ready", |d| {
            let d = d.to_string();
            async move { matches!(Daemon::probe(&d).await, Some(200)) }
        })
        .await;
    }

    async fn probe(admin: &str) -> Option<u16> {
        let r = reqwest::get(format!("http://{admin}/readyz")).await.ok()?;
        Some(r.status().as_u16())
    }

    async fn wait_for<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn(&str) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check(&self.admin).await {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_log(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.log().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {count}x {needle:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn roster(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(args)
            .arg("--config")
            .arg(self.path())
            .output()
            .unwrap()
    }

    async fn sync_now(&self) -> std::process::Output {
        let path = self.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_roster"))
                .args(["sync", "--now", "--config"])
                .arg(path)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    async fn stop(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let mut child = self.child.take().unwrap();
        tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap()
    }

    fn query(&self, sql: &str) -> String {
        let out = self.roster(&["query", "--format", "csv", sql]);
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn team() -> Vec<Value> {
    (1..=5)
        .map(|i| hr_person(i, &format!("p{i}@corp.example"), (i > 1).then_some(1)))
        .collect()
}

fn version(status: &Value) -> String {
    status["reload"]["config_version"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_on_start_reloads_a_valid_edit_and_keeps_running_through_an_invalid_one() {
    let mut d = Daemon::new(team(), "").await;
    d.start();
    d.wait_ready().await;
    // Never synced: the first sync starts within a minute (jitter ≤ 1m); sync now instead.
    let out = d.sync_now().await;
    assert!(out.status.success(), "{out:?}\n{}", d.log());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("hr: 5 records"), "{said}");
    assert!(
        d.query("select job_title from people where work_email = 'p2@corp.example'")
            .contains("Engineer")
    );
    let v1 = version(&d.status().await);

    // A valid edit: job titles come from another field. Applied within a second or so.
    let started = Instant::now();
    std::fs::write(d.path().join("mappings/hr.yaml"), mapping("$.dept")).unwrap();
    d.wait_log("reloaded the config", 1).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let s = d.status().await;
    assert_ne!(version(&s), v1);
    assert_eq!(s["reload"]["last_successful"], true);
    let out = d.sync_now().await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        d.query("select job_title from people where work_email = 'p2@corp.example'")
            .contains("R&D"),
        "the new mapping is used"
    );
    let v2 = version(&d.status().await);

    // An invalid edit: located errors in the log, the last good config keeps running.
    let good = std::fs::read_to_string(d.path().join("roster.yaml")).unwrap();
    let bad = good.replace("    schedule: {every: 24h}", "    schedule: {every: soon}");
    std::fs::write(d.path().join("roster.yaml"), &bad).unwrap();
    d.wait_log("the last good config keeps running", 1).await;
    let log = d.log();
    assert!(
        log.contains("roster.yaml:"),
        "file:line:col in the log:\n{log}"
    );
    let s = d.status().await;
    assert_eq!(version(&s), v2, "still running the last good config");
    assert_eq!(s["reload"]["last_successful"], false);
    let metrics = d.get("/metrics").await.unwrap().1;
    assert!(
        metrics.contains("roster_config_last_reload_successful 0"),
        "{metrics}"
    );
    let out = d.sync_now().await;
    assert!(out.status.success(), "the old config still syncs: {out:?}");

    // Fixed again.
    std::fs::write(d.path().join("roster.yaml"), &good).unwrap();
    d.wait_log("the config is unchanged", 1).await;
    let metrics = d.get("/metrics").await.unwrap().1;
    assert!(
        metrics.contains("roster_config_last_reload_successful 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("roster_sync_runs_total{source=\"hr\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("roster_provider_requests_total{source=\"hr\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("roster_people 5"), "{metrics}");
    let status = d.stop().await;
    assert!(status.success(), "{status:?}\n{}", d.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_writes_rename_saves_many_files_at_once_and_sighup_each_reload_once() {
    let mut d = Daemon::new(team(), "").await;
    d.start();
    d.wait_ready().await;
    let reloads = |d: &Daemon| d.log().matches("reloading").count();

    // Byte by byte, 10 ms apart: one reload, of the whole file, never a rejected half.
    let text = mapping("$.last");
    let mut f = std::fs::File::create(d.path().join("mappings/hr.yaml")).unwrap();
    for chunk in text.as_bytes().chunks(4) {
        f.write_all(chunk).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(f);
    d.wait_log("reloaded the config", 1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(reloads(&d), 1, "{}", d.log());
    assert!(!d.log().contains("not valid"), "{}", d.log());

    // An editor's rename-save.
    let tmp = d.path().join("mappings/.hr.yaml.tmp");
    std::fs::write(&tmp, mapping("$.first")).unwrap();
    std::fs::rename(&tmp, d.path().join("mappings/hr.yaml")).unwrap();
    d.wait_log("reloaded the config", 2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(reloads(&d), 2, "{}", d.log());

    // Six files replaced at once (a git checkout): one reload.
    for i in 0..5 {
        std::fs::write(
            d.path().join(format!("mappings/extra{i}.yaml")),
            mapping("$.title"),
        )
        .unwrap();
    }
    std::fs::write(d.path().join("mappings/hr.yaml"), mapping("$.title")).unwrap();
    d.wait_log("reloaded the config", 3).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(reloads(&d), 3, "{}", d.log());

    // SIGHUP goes through the same path.
    d.signal("HUP");
    d.wait_log("SIGHUP", 1).await;
    d.wait_log("the config is unchanged", 1).await;
    assert_eq!(reloads(&d), 4, "{}", d.log());
    assert!(d.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_now_delivers_events_at_once_and_without_a_daemon_says_so() {
    let (raddr, rx) = start_receiver().await;
    let hooks = format!(
        "webhooks:\n  tool:\n    url: http://{raddr}/hook\n    secret: {{file: secrets/hook}}\n    allow_private_network: true\n    events: ['person.*']\n"
    );
    let mut d = Daemon::new(team(), &hooks).await;

    let out = d.roster(&["sync", "--now"]);
    assert_eq!(out.status.code(), Some(69));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no roster daemon answers on"), "{err}");

    d.start();
    d.wait_ready().await;
    assert!(d.sync_now().await.status.success());
    d.hr.people.lock().unwrap()[1]["title"] = json!("Head of Things");
    let out = d.sync_now().await;
    assert!(out.status.success(), "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.got.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no delivery:\n{}", d.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got[0].body["type"], "person.updated");
    assert!(got[0].signed_by_new);

    // `roster events` beside the daemon: list reads the published copy, replay asks the
    // daemon, which sends the event again with the same webhook-id.
    let out = d.roster(&["events", "list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains(&got[0].id), "{listed}");
    let out = d.roster(&["events", "replay", &got[0].id]);
    assert!(out.status.success(), "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx
        .got
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.id == got[0].id)
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "no replay:\n{}", d.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A second instance on the same state is refused, naming the first.
    let out = d.roster(&["run"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let pid = d.child.as_ref().unwrap().id().to_string();
    assert!(err.contains("in use by another process"), "{err}");
    assert!(err.contains(&pid), "names PID {pid}: {err}");
    assert!(d.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_sync_stops_cleanly_and_applies_nothing_half_done() {
    let mut d = Daemon::new(team(), "").await;
    d.start();
    d.wait_ready().await;
    assert!(d.sync_now().await.status.success());
    let before = d.query("select count(*) from sync_runs");

    // Slow pages: a sync takes 3 x 1.5 s; SIGTERM in the middle with a 2 s grace.
    for p in d.hr.people.lock().unwrap().iter_mut() {
        p["title"] = json!("Changed");
    }
    d.hr.delay_ms.store(1500, Ordering::SeqCst);
    let path = d.path().to_path_buf();
    let now = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(["sync", "--now", "--config"])
            .arg(path)
            .output()
            .unwrap()
    });
    let requests = d.hr.requests.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.hr.requests.load(Ordering::SeqCst) == requests {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = Instant::now();
    let status = d.stop().await;
    assert!(status.success(), "exit 0: {status:?}\n{}", d.log());
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    let answer = now.await.unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&answer.stdout),
        String::from_utf8_lossy(&answer.stderr)
    );
    assert!(
        said.contains("abandoned") || said.contains("daemon"),
        "{said}"
    );
    // Nothing of the interrupted sync was applied.
    assert!(
        d.query("select count(*) from people where job_title = 'Changed'")
            .contains('0')
    );
    assert_eq!(d.query("select count(*) from sync_runs"), before);
    assert!(d.log().contains("stopped"), "{}", d.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_secret_never_appears_in_any_output() {
    let mut d = Daemon::new(team(), "").await;
    // The HRIS rejects the canary key and echoes it back in its error body.
    let yaml = roster_yaml(&d.admin, "secrets/canary", "");
    std::fs::write(d.path().join("roster.yaml"), yaml).unwrap();
    d.start();
    d.wait_ready().await;
    let out = d.sync_now().await;
    assert!(!out.status.success());
    let status = d.get("/status").await.unwrap().1;
    let metrics = d.get("/metrics").await.unwrap().1;
    // And a reload error.
    std::fs::write(d.path().join("roster.yaml"), "time_zone: Mars/Olympus\n").unwrap();
    d.wait_log("the last good config keeps running", 1).await;
    let status2 = d.get("/status").await.unwrap().1;
    assert!(d.stop().await.success());
    // Failed runs are not published: read the state database, now that the daemon is gone.
    let conn = roster::store::open_readonly(&d.path().join("state/state.duckdb")).unwrap();
    let (_, rows) =
        roster::store::value::execute(&conn, "select error from sync_runs where error is not null")
            .unwrap();
    let runs: String = rows
        .iter()
        .map(|r| roster::store::value::text(&r[0]))
        .collect::<Vec<_>>()
        .join("\n");
    for (what, text) in [
        ("stdout", String::from_utf8_lossy(&out.stdout).to_string()),
        ("stderr", String::from_utf8_lossy(&out.stderr).to_string()),
        ("log", d.log()),
        ("status", status),
        ("status after reload", status2),
        ("metrics", metrics),
        ("sync_runs.error", runs.clone()),
    ] {
        assert!(
            !text.contains(CANARY_KEY),
            "{what} leaks the canary:\n{text}"
        );
    }
    assert!(runs.contains("***") || runs.contains("rejected"), "{runs}");
}

impl Daemon {
    /// `roster ARGS --config DIR` off the runtime's threads (the fake HR serves on them while
    /// the daemon syncs).
    async fn cli(&self, args: &[&str]) -> std::process::Output {
        let path = self.path().to_path_buf();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_roster"))
                .args(&args)
                .arg("--config")
                .arg(path)
                .env_remove("ROSTER_CONFIG")
                .env_remove("STATE_DIRECTORY")
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    }

    fn state(&self, file: &str) -> PathBuf {
        self.path().join("state").join(file)
    }

    /// Waits until `/readyz` answers `code`; returns its body. A 503 while the daemon is
    /// still starting (its admin endpoint answers before it is ready) is not the answer.
    async fn wait_readyz(&self, code: u16) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((c, body)) = self.get("/readyz").await {
                if c == code && !body.contains("roster is starting") {
                    return body;
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for /readyz {code}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Issue 14.11: a state database with a damaged data block (not the header) opens fine and
/// used to leave `/readyz` at 200 while every sync failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_11_a_damaged_data_block_makes_the_daemon_unready_with_the_help() {
    let mut d = Daemon::new(team(), "").await;
    let out = d.cli(&["sync"]).await;
    assert!(out.status.success(), "{}", text(&out));
    // Overwrite the middle of the file: past the headers, inside the data blocks.
    let state = d.state("state.duckdb");
    let mut bytes = std::fs::read(&state).unwrap();
    let (from, to) = (bytes.len() / 4, bytes.len() * 3 / 4);
    for b in &mut bytes[from..to] {
        *b ^= 0x5a;
    }
    std::fs::write(&state, &bytes).unwrap();

    d.start();
    let body = d.wait_readyz(503).await;
    assert!(body.contains("is not a readable DuckDB database"), "{body}");
    assert!(body.contains("stop roster, move it aside"), "{body}");
    let status = d.status().await;
    assert_eq!(status["ready"], false, "{status}");
    assert!(
        status["not_ready"].as_str().unwrap().contains("checksum"),
        "{status}"
    );
    // A sync says the same, not DuckDB's bare words.
    let out = d.cli(&["sync", "--now"]).await;
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a readable DuckDB database"),
        "{}",
        text(&out)
    );
    assert_eq!(d.get("/readyz").await.unwrap().0, 503);
    assert!(d.stop().await.success(), "{}", d.log());
}

/// Issue 14.7: the state database deleted or replaced under a running daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_7_a_deleted_or_replaced_state_database_stops_the_daemon_writing() {
    let mut d = Daemon::new(team(), "").await;
    d.start();
    d.wait_ready().await;
    let out = d.sync_now().await;
    assert!(out.status.success(), "{}", text(&out));
    let state = d.state("state.duckdb");
    let aside = d.state("state.duckdb.aside");

    // Moved away (as `rm` would leave it, but restorable): unready within seconds.
    std::fs::rename(&state, &aside).unwrap();
    let body = d.wait_readyz(503).await;
    assert!(body.contains("was deleted while roster ran"), "{body}");
    assert!(body.contains("stopped writing"), "{body}");
    assert!(body.contains("--rebaseline"), "{body}");
    let out = d.cli(&["sync", "--now"]).await;
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("was deleted while roster ran"), "{err}");
    assert!(err.contains("recreates nothing"), "{err}");
    assert!(!state.exists(), "nothing recreated the state database");
    let mut wal = state.clone().into_os_string();
    wal.push(".wal");
    assert!(
        !PathBuf::from(wal).exists(),
        "no fresh WAL beside a missing file"
    );
    // A plan through the daemon is refused too. (Not `roster plan`: with no file at the path
    // nothing holds a lock there, so it would plan on a new, empty state database of its own.)
    let token = std::fs::read_to_string(d.state("admin.token")).unwrap();
    let plan = reqwest::Client::new()
        .post(format!("http://{}/plan", d.admin))
        .bearer_auth(token.trim())
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let plan: Value = serde_json::from_slice(&plan).unwrap();
    assert_eq!(plan["code"], 1, "{plan}");
    assert!(
        plan["stderr"].as_str().unwrap().contains("was deleted"),
        "{plan}"
    );

    // The same file back: ready again, and syncs work.
    std::fs::rename(&aside, &state).unwrap();
    d.wait_readyz(200).await;
    let out = d.sync_now().await;
    assert!(out.status.success(), "{}", text(&out));

    // Replaced by a copy (another inode): unready again.
    std::fs::copy(&state, &aside).unwrap();
    std::fs::rename(&aside, &state).unwrap();
    let body = d.wait_readyz(503).await;
    assert!(body.contains("was replaced by another file"), "{body}");
    assert!(
        d.log().contains("not ready: the state database"),
        "{}",
        d.log()
    );
    assert!(d.stop().await.success(), "{}", d.log());
}

/// Issue 15.7: a held run handled beside the daemon: plan through it, apply it with
/// `sync --now --allow-removals`, the hold reason shown; POSTs need the admin token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_15_7_plan_and_a_held_run_go_through_the_daemon_with_its_token() {
    let mut d = Daemon::new(team(), "").await;
    d.start();
    d.wait_ready().await;
    let out = d.sync_now().await;
    assert!(out.status.success(), "{}", text(&out));

    // The token: 64 hex digits, readable by the service's group, nobody else.
    let token_file = d.state("admin.token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(token.trim().len(), 64, "{token}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    let client = reqwest::Client::new();
    let url = format!("http://{}/sync?source=hr", d.admin);
    let r = client.post(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.text().await.unwrap().contains("admin.token"));
    let r = client
        .post(&url)
        .bearer_auth("0".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "a wrong token");
    for path in ["/events/retry", "/plan"] {
        let r = client
            .post(format!("http://{}{path}", d.admin))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    for path in ["/healthz", "/readyz", "/metrics", "/status"] {
        assert_eq!(d.get(path).await.unwrap().0, 200, "{path} stays open");
    }

    // Four of five people gone: held.
    d.hr.people.lock().unwrap().truncate(1);
    let plan = d.cli(&["plan"]).await;
    assert_eq!(plan.status.code(), Some(75), "{}", text(&plan));
    let said = String::from_utf8_lossy(&plan.stdout);
    assert!(said.contains("- p2@corp.example (terminate)"), "{said}");
    assert!(said.contains("HELD: "), "{said}");
    assert!(said.contains("Plan for hr: 0 to create"), "{said}");
    assert!(
        String::from_utf8_lossy(&plan.stderr).contains("the roster daemon on"),
        "{}",
        text(&plan)
    );
    // Issue 17: a plan never points at `sync --now`, which applies.
    assert!(!text(&plan).contains("sync --now"), "{}", text(&plan));
    let json_plan = d.cli(&["plan", "--json"]).await;
    let doc: Value = serde_json::from_slice(&json_plan.stdout).unwrap();
    assert_eq!(doc["terminated"], 4, "{doc}");
    // A plan changes nothing.
    assert!(
        d.query("select count(*) from people where status = 'terminated'")
            .contains('0')
    );

    let out = d.cli(&["sync", "--now"]).await;
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("hr: HELD: "), "the reason: {said}");
    assert!(
        said.contains("roster sync --now --allow-removals --source hr"),
        "{said}"
    );
    assert!(
        d.query("select count(*) from people where status = 'terminated'")
            .contains('0')
    );

    let out = d
        .cli(&["sync", "--now", "--allow-removals", "--source", "hr"])
        .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        d.query("select count(*) from people where status = 'terminated'")
            .contains('4'),
        "applied"
    );
    assert!(d.stop().await.success(), "{}", d.log());
}

/// Issue 15.8: with `roster.yaml` unparseable, `sync --now` still finds a daemon on a
/// non-default port (its address file), and says what it tried when none answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_15_8_sync_now_finds_the_daemon_while_roster_yaml_is_broken() {
    let mut d = Daemon::new(team(), "").await;
    d.start();
    d.wait_ready().await;
    let addr_file = d.state("admin.addr");
    assert_eq!(std::fs::read_to_string(&addr_file).unwrap().trim(), d.admin);

    // Mid-edit: not YAML at all, and the admin block is gone.
    std::fs::write(
        d.path().join("roster.yaml"),
        "store:\n  state_dir: state\nsources: [hr\n  schedule: {every\n",
    )
    .unwrap();
    d.wait_log("the last good config keeps running", 1).await;
    let out = d.sync_now().await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hr: 5 records"),
        "{}",
        text(&out)
    );

    // Stopped: the address file is gone, and the message lists what was tried.
    assert!(d.stop().await.success(), "{}", d.log());
    assert!(!addr_file.exists(), "removed at a clean stop");
    let out = d.sync_now().await;
    if out.status.code() == Some(69) {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no roster daemon answers on 127.0.0.1:9187 (the default admin address"),
            "{err}"
        );
        assert!(
            err.contains(&format!("no address file at {}", addr_file.display())),
            "{err}"
        );
    } else {
        // Something else answers on the default port on this machine; nothing to assert.
        eprintln!("127.0.0.1:9187 is in use here: {}", text(&out));
    }
}

/// Merge's scheme: HMAC-SHA256 of the raw body, unpadded URL-safe base64.
fn merge_signature(key: &str, body: &str) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_hris_notification_syncs_at_once_and_forged_or_flooding_ones_do_not() {
    const INBOUND_KEY: &str = "inbound-key-CANARY-93kd02";
    let inbound = format!("127.0.0.1:{}", free_port());
    let mut d = Daemon::new(
        team(),
        &format!(
            "    inbound: {{secret: {{file: secrets/inbound}}}}\ninbound:\n  listen: {inbound}\n  requests_per_minute: 2\n"
        ),
    )
    .await;
    let spec = std::fs::read_to_string(d.path().join("providers/hr.yaml")).unwrap();
    std::fs::write(
        d.path().join("providers/hr.yaml"),
        format!(
            "{spec}inbound:\n  header: X-Merge-Webhook-Signature\n  encoding: base64url\n  ping: [Ping test]\n"
        ),
    )
    .unwrap();
    std::fs::write(d.path().join("secrets/inbound"), INBOUND_KEY).unwrap();
    d.start();
    d.wait_ready().await;
    let out = d.sync_now().await;
    assert!(out.status.success(), "{out:?}\n{}", d.log());

    // Bo is promoted in the HRIS, which notifies.
    d.hr.people.lock().unwrap()[1]["title"] = json!("Staff Engineer");
    let body =
        r#"{"hook":{"event":"Employee.changed"},"linked_account":{"id":"la-1"},"data":{"id":"2"}}"#;
    let client = reqwest::Client::new();
    let post = |source: &str, signature: Option<String>| {
        let mut r = client
            .post(format!("http://{inbound}/inbound/{source}"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(sig) = signature {
            r = r.header("X-Merge-Webhook-Signature", sig);
        }
        r.send()
    };
    let before = d.hr.requests.load(Ordering::SeqCst);
    let unsigned = post("hr", None).await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let forged = post("hr", Some(merge_signature("guessed-key", body)))
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert!(forged.text().await.unwrap().contains("does not match"));
    let unknown = post("payroll", Some(merge_signature(INBOUND_KEY, body)))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    // The HRIS's unsigned connection test is answered, and triggers nothing; any other
    // unsigned body is refused.
    for (text, status) in [("Ping test", 200), ("Ping test, sync please", 401)] {
        let r = client
            .post(format!("http://{inbound}/inbound/hr"))
            .body(text)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{text}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        d.hr.requests.load(Ordering::SeqCst),
        before,
        "refused notifications trigger nothing"
    );

    let good = post("hr", Some(merge_signature(INBOUND_KEY, body)))
        .await
        .unwrap();
    assert_eq!(good.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !d
        .query("select job_title from people where work_email = 'p2@corp.example'")
        .contains("Staff Engineer")
    {
        assert!(
            Instant::now() < deadline,
            "the notification synced nothing; log:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Two a minute are accepted; the third waits, and says for how long.
    let second = post("hr", Some(merge_signature(INBOUND_KEY, body)))
        .await
        .unwrap();
    assert_eq!(second.status(), 202);
    let third = post("hr", Some(merge_signature(INBOUND_KEY, body)))
        .await
        .unwrap();
    assert_eq!(third.status(), 429);
    let wait: u64 = third.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");

    d.stop().await;
    assert!(!d.log().contains(INBOUND_KEY), "{}", d.log());
    assert!(d.log().contains("refused a notification"), "{}", d.log());
}
