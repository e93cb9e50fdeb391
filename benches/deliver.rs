//! Benchmark: webhook delivery from the outbox to a loopback receiver (issue 6).
//!
//! A receiver (axum on 127.0.0.1:0, in this process) answers `204` and counts every request,
//! remembering each `webhook-id` and checking a sample of the Standard Webhooks signatures.
//! The work that touches the state database runs in child processes (this binary
//! re-executed), so each one's peak RSS is its own and the store's lock is never shared:
//! - `queue`: realistic `person.updated` events (`events::person_events`, 1-2 KB each) written
//!   with `Store::write_events` in chunks of 5,000: the time to queue;
//! - `profile`: one delivery batch taken apart with the public pieces the worker uses (the
//!   `due` query, render, sign, `attempt::attempt` with 8 in flight, `record`), before the
//!   drain, the outbox full;
//! - `drain`: `webhook::start(Mode::Drain)` and `wait`: wall time, deliveries/s, peak RSS;
//!   then every event must have reached the receiver exactly once and nothing may be pending;
//! - `split`: two endpoints get every event, one of them answers after 50 ms: the fast one's
//!   rate while the slow one still works (it is stopped when the fast one is done).
//!
//! Run: `cargo bench --bench deliver` (`DELIVER_SIZES=10000` for a quick run). Prints the
//! tables; asserts that every event was delivered. Target (issue 6): ≥ 2,000 deliveries/s.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use roster::config::deployment::{BirthDateDisclosure, PayloadKind};
use roster::events::{ChangeContext, Rendering, person_events, render};
use roster::store::sync::{Change, PersonChange};
use roster::webhook::{self, Mode, attempt, db_time, sign};

mod common;

/// Deliveries per second the issue asks for.
const TARGET: f64 = 2_000.0;
/// Events written per `write_events` call while queueing.
const CHUNK: usize = 5_000;
/// How late the slow receiver answers.
const SLOW: Duration = Duration::from_millis(50);
/// Events in the fast-beside-slow scenario.
const SPLIT_EVENTS: usize = 10_000;
/// One in this many requests has its signature checked.
const VERIFY_EVERY: u64 = 97;
/// The batch the worker takes: the profile's batch.
const BATCH: usize = roster::webhook::BATCH;
/// Requests in flight per endpoint.
const IN_FLIGHT: usize = roster::webhook::CONCURRENCY;

fn secret_text() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    )
}

// ---------------------------------------------------------------------------------------------
// The receiver.

/// What one path of the receiver saw.
#[derive(Default)]
struct Route {
    requests: AtomicU64,
    ids: Mutex<HashSet<String>>,
    verified: AtomicU64,
    bad_signatures: AtomicU64,
}

struct Receiver {
    secret: sign::Secret,
    hook: Route,
    slow: Route,
    bare: Route,
}

impl Receiver {
    fn reset(&self) {
        for p in [&self.hook, &self.slow, &self.bare] {
            p.requests.store(0, Ordering::SeqCst);
            p.ids.lock().unwrap().clear();
            p.verified.store(0, Ordering::SeqCst);
            p.bad_signatures.store(0, Ordering::SeqCst);
        }
    }
}

fn take(r: &Receiver, p: &Route, headers: &HeaderMap, body: &[u8]) {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    let id = h("webhook-id");
    let n = p.requests.fetch_add(1, Ordering::Relaxed);
    if n % VERIFY_EVERY == 0 {
        let ts = h("webhook-timestamp").parse().unwrap_or(0);
        if sign::verify(&r.secret, id, ts, body, h("webhook-signature")) {
            p.verified.fetch_add(1, Ordering::Relaxed);
        } else {
            p.bad_signatures.fetch_add(1, Ordering::Relaxed);
        }
    }
    p.ids.lock().unwrap().insert(id.to_owned());
}

/// Starts the receiver on its own thread (two tokio workers); returns its address.
fn start_receiver() -> (String, Arc<Receiver>) {
    let r = Arc::new(Receiver {
        secret: sign::Secret::parse(&secret_text()).unwrap(),
        hook: Route::default(),
        slow: Route::default(),
        bare: Route::default(),
    });
    let state = r.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new()
                .route(
                    "/hook",
                    post(
                        |State(r): State<Arc<Receiver>>, h: HeaderMap, b: bytes::Bytes| async move {
                            take(&r, &r.hook, &h, &b);
                            StatusCode::NO_CONTENT
                        },
                    ),
                )
                .route(
                    "/slow",
                    post(
                        |State(r): State<Arc<Receiver>>, h: HeaderMap, b: bytes::Bytes| async move {
                            tokio::time::sleep(SLOW).await;
                            take(&r, &r.slow, &h, &b);
                            StatusCode::NO_CONTENT
                        },
                    ),
                )
                .route(
                    "/bare",
                    post(
                        |State(r): State<Arc<Receiver>>, h: HeaderMap, b: bytes::Bytes| async move {
                            take(&r, &r.bare, &h, &b);
                            StatusCode::NO_CONTENT
                        },
                    ),
                )
                .with_state(state);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (rx.recv().unwrap().to_string(), r)
}

// ---------------------------------------------------------------------------------------------
// The config directory and the events.

/// `roster.yaml` with no sources and one webhook per (name, path) on the receiver.
fn write_config(dir: &Path, addr: &str, hooks: &[(&str, &str)]) {
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(dir.join("secrets/hook"), secret_text()).unwrap();
    let mut yaml = String::from(
        "time_zone: Europe/Berlin\nstore:\n  state_dir: state\nsources: {}\nwebhooks:\n",
    );
    for (name, path) in hooks {
        yaml.push_str(&format!(
            "  {name}:\n    url: http://{addr}{path}\n    secret: {{file: secrets/hook}}\n    allow_private_network: true\n    events: ['*']\n"
        ));
    }
    std::fs::write(dir.join("roster.yaml"), yaml).unwrap();
}

fn load(dir: &Path) -> roster::config::Config {
    roster::config::load(dir, &roster::config::LoadOptions::default())
        .unwrap_or_else(|d| panic!("{}", d.render()))
}

/// A person as `people_snapshots` renders the row: every canonical field, the HRIS status,
/// custom fields, ids, sources, provenance and the two timestamps.
fn person(i: usize) -> Map<String, Value> {
    let fields = [
        "employee_id",
        "first_name",
        "last_name",
        "display_name",
        "work_email",
        "job_title",
        "department",
        "team",
        "sub_company",
        "manager_id",
        "manager_email",
        "office",
        "legal_entity",
        "employment_type",
        "worker_type",
        "status",
        "start_date",
        "probation_end_date",
        "birth_date",
    ];
    let provenance: Map<String, Value> = fields
        .iter()
        .map(|f| ((*f).to_owned(), json!("personio")))
        .collect();
    let v = json!({
        "employee_id": i.to_string(),
        "first_name": format!("First{i}"),
        "last_name": format!("Last{i}"),
        "display_name": format!("First{i} Last{i}"),
        "work_email": format!("person{i}@example.com"),
        "job_title": "Staff Engineer",
        "department": format!("Department {}", i % 40),
        "team": format!("Team {}", i % 120),
        "sub_company": "Acme GmbH",
        "manager_id": (i / 8).to_string(),
        "manager_email": format!("person{}@example.com", i / 8),
        "office": "Berlin",
        "legal_entity": "Acme GmbH",
        "employment_type": "internal",
        "worker_type": "employee",
        "status": "active",
        "start_date": "2021-03-01",
        "probation_end_date": "2021-09-01",
        "birth_date": "1990-11-09",
        "hris_status": "active",
        "custom": {"cost_center": "R&D", "weekly_hours": "40", "gender": "diverse"},
        "employee_ids": {"personio": i.to_string()},
        "sources": ["personio"],
        "provenance": provenance,
        "first_seen": "2024-01-15 08:00:00",
        "last_changed": "2025-06-02 04:00:12",
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// The `person.updated` event of person `i` (a promotion and a move), for `endpoints`.
fn event(i: usize, endpoints: &[String]) -> (roster::events::NewEvent, Vec<String>) {
    let email = format!("person{i}@example.com");
    let cx = ChangeContext {
        source: "personio",
        sync_run: 2,
        baseline: false,
        created_on_first_sync: false,
    };
    let change = |field: &str, old: &str, new: String| Change {
        work_email: email.clone(),
        field: field.to_owned(),
        old: Some(old.to_owned()),
        new: Some(new),
        source: "personio".to_owned(),
    };
    let changes = [
        change("job_title", "Software Engineer", "Staff Engineer".into()),
        change(
            "department",
            "Department 0",
            format!("Department {}", i % 40),
        ),
        change("team", "Team 0", format!("Team {}", i % 120)),
    ];
    let mut evs = person_events(&cx, &email, PersonChange::Updated, &changes, &person(i));
    assert_eq!(evs.len(), 1);
    (evs.remove(0), endpoints.to_vec())
}

const RENDERING: Rendering = Rendering {
    payload: PayloadKind::Full,
    birth_date: BirthDateDisclosure::MonthDay,
};

// ---------------------------------------------------------------------------------------------
// Child processes. Each prints one line of numbers.

fn runtime() -> tokio::runtime::Runtime {
    // As `roster events deliver` builds it.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Prints: seconds spent in `write_events`, peak RSS MB, mean body bytes.
fn child_queue(dir: &Path, n: usize, endpoints: &str) {
    let cfg = load(dir);
    let store = roster::sync::open_store(&cfg).unwrap();
    let endpoints: Vec<String> = endpoints.split(',').map(str::to_owned).collect();
    let mut spent = Duration::ZERO;
    let mut body_bytes = 0usize;
    for start in (0..n).step_by(CHUNK) {
        let chunk: Vec<_> = (start..(start + CHUNK).min(n))
            .map(|i| event(i, &endpoints))
            .collect();
        let (e, _) = &chunk[0];
        body_bytes += render(&e.id, &e.kind, "2025-06-02T04:00:12Z", &e.data, RENDERING).len();
        let now = db_time(Timestamp::now());
        let t = Instant::now();
        let written = store.write_events(&chunk, &now).unwrap();
        spent += t.elapsed();
        assert_eq!(written as usize, chunk.len());
    }
    println!(
        "{} {} {}",
        spent.as_secs_f64(),
        common::peak_rss_mb(),
        body_bytes / n.div_ceil(CHUNK)
    );
}

/// One batch taken apart, `rounds` times, with the pieces the worker uses. Every attempt is
/// recorded as a retry due now, so the drain that follows still finds every delivery.
/// Prints milliseconds per batch: due, parse+render, sign, send, record; then the batch size.
fn child_profile(dir: &Path, addr: &str, rounds: usize) {
    let cfg = load(dir);
    let store = roster::sync::open_store(&cfg).unwrap();
    let outbox = store.outbox().unwrap();
    let secrets = [sign::Secret::parse(&secret_text()).unwrap()];
    let client = attempt::client(webhook::DEFAULT_TIMEOUT, true, "bench").unwrap();
    let url: url::Url = format!("http://{addr}/bare").parse().unwrap();
    let rt = runtime();
    let mut t = [Duration::ZERO; 5];
    let mut size = 0;
    for _ in 0..rounds {
        let now = db_time(Timestamp::now());
        let start = Instant::now();
        let due = outbox.due("hook", &now, BATCH).unwrap();
        t[0] += start.elapsed();
        size = due.len();

        let start = Instant::now();
        let bodies: Vec<Vec<u8>> = due
            .iter()
            .map(|d| {
                let data: Value = serde_json::from_str(&d.data).unwrap_or_default();
                render(&d.event_id, &d.kind, &d.created_at, &data, RENDERING)
            })
            .collect();
        t[1] += start.elapsed();

        let start = Instant::now();
        let ts = Timestamp::now().as_second();
        let sigs: Vec<String> = due
            .iter()
            .zip(&bodies)
            .map(|(d, b)| sign::signature_header(&secrets, &d.event_id, ts, b))
            .collect();
        t[2] += start.elapsed();

        let start = Instant::now();
        let outcomes: Vec<attempt::Outcome> = rt.block_on(async {
            use futures::StreamExt as _;
            futures::stream::iter(due.iter().zip(&bodies).zip(&sigs))
                .map(|((d, body), sig)| {
                    let (client, url) = (&client, &url);
                    async move {
                        let delivery = attempt::Delivery {
                            url,
                            msg_id: &d.event_id,
                            timestamp: ts,
                            signature: sig,
                            body,
                        };
                        attempt::attempt(client, true, &delivery).await
                    }
                })
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await
        });
        t[3] += start.elapsed();
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, attempt::Outcome::Delivered { .. })),
            "{outcomes:?}"
        );

        let at = db_time(Timestamp::now());
        let records: Vec<_> = due
            .iter()
            .map(|d| roster::store::events::AttemptRecord {
                event_id: d.event_id.clone(),
                state: "pending",
                at: at.clone(),
                next_attempt_at: Some(at.clone()),
                status: Some(204),
                error: None,
            })
            .collect();
        let start = Instant::now();
        outbox.record("hook", &records).unwrap();
        t[4] += start.elapsed();
    }
    let ms: Vec<String> = t
        .iter()
        .map(|d| format!("{}", d.as_secs_f64() * 1000.0 / rounds as f64))
        .collect();
    println!("{} {size}", ms.join(" "));
}

/// Prints: drain seconds, peak RSS MB, delivered (reports), pending, dead (outbox).
fn child_drain(dir: &Path) {
    let cfg = load(dir);
    let store = roster::sync::open_store(&cfg).unwrap();
    let endpoints: Vec<_> = webhook::endpoints(&cfg)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let rt = runtime();
    let start = Instant::now();
    let reports = rt
        .block_on(async {
            let deadline = Instant::now() + Duration::from_secs(600);
            webhook::start(&store, endpoints, Mode::Drain { deadline })
                .unwrap()
                .wait()
                .await
        })
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    let rss = common::peak_rss_mb();
    let delivered: u64 = reports.iter().map(|r| r.delivered).sum();
    let counts = store.outbox().unwrap().counts().unwrap();
    let pending: u64 = counts.iter().map(|(_, c)| c.pending).sum();
    let dead: u64 = counts.iter().map(|(_, c)| c.dead).sum();
    println!("{secs} {rss} {delivered} {pending} {dead}");
}

/// `fast` and `slow` started as two delivery runs; the fast one is awaited, then the process
/// ends (stopping the slow one, whose progress the receiver counted).
/// Prints: fast seconds, fast delivered, peak RSS MB.
fn child_split(dir: &Path) {
    let cfg = load(dir);
    let store = roster::sync::open_store(&cfg).unwrap();
    let (fast, slow): (Vec<_>, Vec<_>) = webhook::endpoints(&cfg)
        .into_iter()
        .map(Result::unwrap)
        .partition(|ep| ep.name == "fast");
    let rt = runtime();
    let deadline = Instant::now() + Duration::from_secs(600);
    let start = Instant::now();
    let reports = rt.block_on(async {
        let _slow = webhook::start(&store, slow, Mode::Drain { deadline }).unwrap();
        let fast = webhook::start(&store, fast, Mode::Drain { deadline }).unwrap();
        fast.wait().await.unwrap()
    });
    let secs = start.elapsed().as_secs_f64();
    println!("{secs} {} {}", reports[0].delivered, common::peak_rss_mb());
    // The slow worker is still sending; leave without waiting for it.
    std::process::exit(0);
}

// ---------------------------------------------------------------------------------------------
// The parent.

fn run_child(args: &[&str]) -> Vec<f64> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "child {args:?} failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect()
}

fn check_received(p: &Route, n: usize, what: &str) {
    let requests = p.requests.load(Ordering::SeqCst);
    let distinct = p.ids.lock().unwrap().len();
    let bad = p.bad_signatures.load(Ordering::SeqCst);
    let verified = p.verified.load(Ordering::SeqCst);
    assert_eq!(distinct, n, "{what}: distinct events received");
    assert_eq!(requests as usize, n, "{what}: requests (duplicates?)");
    assert_eq!(bad, 0, "{what}: bad signatures");
    assert!(verified > 0, "{what}: no signature checked");
}

fn verdict(rate: f64) -> &'static str {
    if rate >= TARGET { "ok" } else { "BELOW" }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args[i].as_str();
    match args.get(1).map(String::as_str) {
        Some("queue") => return child_queue(Path::new(arg(2)), arg(3).parse().unwrap(), arg(4)),
        Some("profile") => {
            return child_profile(Path::new(arg(2)), arg(3), arg(4).parse().unwrap());
        }
        Some("drain") => return child_drain(Path::new(arg(2))),
        Some("split") => return child_split(Path::new(arg(2))),
        _ => {}
    }
    let sizes: Vec<usize> = std::env::var("DELIVER_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let (addr, rx) = start_receiver();
    println!("target (issue 6): ≥ {TARGET:.0} deliveries/s; receiver on loopback, answers 204\n");
    println!(
        "{:>7}  {:<30}  {:>8}  {:>9}  {:>9}",
        "events", "run", "wall", "rate", "peak RSS"
    );
    let row = |n: usize, run: &str, secs: f64, rate: String, rss: f64, note: &str| {
        println!("{n:>7}  {run:<30}  {secs:>7.2}s  {rate:>9}  {rss:>6.1} MB  {note}");
    };
    let mut profiles = Vec::new();
    for &n in &sizes {
        rx.reset();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        write_config(dir.path(), &addr, &[("hook", "/hook")]);
        let q = run_child(&["queue", d, &n.to_string(), "hook"]);
        let note = format!("{:.0} B per body", q[2]);
        let rate = format!("{:.0}/s", n as f64 / q[0]);
        row(n, "queue (write_events)", q[0], rate, q[1], &note);
        profiles.push((n, run_child(&["profile", d, &addr, "5"])));
        let r = run_child(&["drain", d]);
        let (secs, rss, delivered, pending, dead) = (r[0], r[1], r[2], r[3], r[4]);
        let rate = n as f64 / secs;
        row(
            n,
            "drain, one endpoint",
            secs,
            format!("{rate:.0}/s"),
            rss,
            verdict(rate),
        );
        assert_eq!(delivered as usize, n, "reported delivered");
        assert_eq!((pending, dead), (0.0, 0.0), "outbox after the drain");
        check_received(&rx.hook, n, "one endpoint");
    }

    // A fast and a slow endpoint, every event to both.
    rx.reset();
    let n = SPLIT_EVENTS;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    write_config(dir.path(), &addr, &[("fast", "/hook"), ("slow", "/slow")]);
    let q = run_child(&["queue", d, &n.to_string(), "fast,slow"]);
    let rate = format!("{:.0}/s", 2.0 * n as f64 / q[0]);
    row(n, "queue, two endpoints", q[0], rate, q[1], "");
    let r = run_child(&["split", d]);
    let (secs, fast, rss) = (r[0], r[1], r[2]);
    let slow = rx.slow.requests.load(Ordering::SeqCst) as f64;
    let rate = n as f64 / secs;
    let run = format!("drain, fast beside slow {}ms", SLOW.as_millis());
    row(n, &run, secs, format!("{rate:.0}/s"), rss, verdict(rate));
    println!(
        "{:>7}  {:<30}  slow endpoint meanwhile: {slow:.0} received, {:.0}/s (ceiling {IN_FLIGHT} in flight / {} ms = {:.0}/s)",
        "",
        "",
        slow / secs,
        SLOW.as_millis(),
        IN_FLIGHT as f64 / SLOW.as_secs_f64()
    );
    assert_eq!(fast as usize, n, "fast endpoint delivered");
    check_received(&rx.hook, n, "fast endpoint");

    println!(
        "\none batch of {BATCH}, outbox full, taken apart (ms per batch, mean of 5; the worker runs due → send {IN_FLIGHT} at a time → record, one after the other):"
    );
    println!(
        "{:>7}  {:>7}  {:>13}  {:>6}  {:>7}  {:>7}  {:>13}",
        "events", "due", "parse+render", "sign", "send", "record", "sum → rate"
    );
    for (n, p) in profiles {
        let sum: f64 = p[..5].iter().sum();
        println!(
            "{n:>7}  {:>7.1}  {:>13.1}  {:>6.1}  {:>7.1}  {:>7.1}  {:>13}",
            p[0],
            p[1],
            p[2],
            p[3],
            p[4],
            format!("{:.0}/s", p[5] * 1000.0 / sum)
        );
    }
}
