//! Events end to end: a fake HRIS on 127.0.0.1:0, syncs into a real DuckDB file, the outbox,
//! and real webhook receivers (axum) that check every Standard Webhooks signature.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use serde_json::{Value, json};

use roster::config::LoadOptions;
use roster::sync::{NoProgress, Options};
use roster::webhook::{self, Mode, sign};

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_dGhpcyBpcyB0aGUgb2xkIHNlY3JldCBrZXkgMTIz";

// ---------------------------------------------------------------------------------------------
// The fake HRIS: one flat listing behind an API key.

type People = Arc<Mutex<Vec<Value>>>;

async fn staff(State(p): State<People>, headers: HeaderMap) -> Response {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some("hr-key") {
        return (StatusCode::UNAUTHORIZED, "bad key").into_response();
    }
    Json(json!({"staff": *p.lock().unwrap()})).into_response()
}

const PROVIDER: &str = r#"
title: HR
base_url: http://ADDR
credentials:
  key: {description: API key}
auth: {kind: api_key, in: header, name: X-Api-Key, value: "{credentials.key}"}
streams:
  staff:
    request: {path: /staff}
    records: $.staff[*]
"#;

const MAPPING: &str = r#"
provider: hr
stream: staff
fields:
  employee_id: $.id
  work_email: $.email
  first_name: $.first
  last_name: $.last
  job_title: $.title
  department: $.dept
  manager_id: $.manager
  worker_type: {path: $.kind, values: {employee: employee, contractor: contractor}}
  status: {path: $.status, values: {active: active, onboarding: pre_hire, inactive: terminated}}
  start_date: $.start
  end_date: $.end
  birth_date: $.born
"#;

pub fn hr_person(id: u32, email: &str, manager: Option<u32>) -> Value {
    json!({
        "id": id.to_string(), "email": email, "first": format!("P{id}"), "last": "Person",
        "title": "Engineer", "dept": "R&D", "manager": manager.map(|m| m.to_string()),
        "kind": "employee", "status": "active", "start": "2020-03-01", "end": null,
        "born": "1990-11-09"
    })
}

async fn start_hr(people: Vec<Value>) -> (String, People) {
    let shared: People = Arc::new(Mutex::new(people));
    let app = axum::Router::new()
        .route("/staff", get(staff))
        .with_state(shared.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (addr, shared)
}

// ---------------------------------------------------------------------------------------------
// The receiver: records every request, answers with a settable status after a settable delay.

#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub body: Value,
    pub signed_by_new: bool,
    pub signed_by_old: bool,
}

#[derive(Default)]
pub struct Receiver {
    pub got: Mutex<Vec<Received>>,
    pub status: AtomicU16,
    pub delay_ms: AtomicU64,
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let ts: i64 = ts.parse().unwrap_or(0);
    let check = |s: &str| sign::verify(&sign::Secret::parse(s).unwrap(), &id, ts, &body, &sig);
    let rec = Received {
        id: id.clone(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        signed_by_new: check(SECRET),
        signed_by_old: check(OLD_SECRET),
    };
    let delay = r.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    r.got.lock().unwrap().push(rec);
    let status = match r.status.load(Ordering::SeqCst) {
        0 => 204,
        s => s,
    };
    StatusCode::from_u16(status).unwrap().into_response()
}

pub async fn start_receiver_on(l: tokio::net::TcpListener) -> Arc<Receiver> {
    let r = Arc::new(Receiver::default());
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    r
}

pub async fn start_receiver() -> (String, Arc<Receiver>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (addr, start_receiver_on(l).await)
}

// ---------------------------------------------------------------------------------------------

pub struct Env {
    _dir: tempfile::TempDir,
    pub config: PathBuf,
    pub hr: People,
}

/// A config directory: the HR source, and `webhooks`/`triggers`/`events` YAML appended.
pub async fn env(people: Vec<Value>, extra: &str) -> Env {
    let (addr, hr) = start_hr(people).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    for d in ["providers", "mappings", "secrets"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("providers/hr.yaml"),
        PROVIDER.replace("ADDR", &addr),
    )
    .unwrap();
    std::fs::write(root.join("mappings/hr.yaml"), MAPPING).unwrap();
    std::fs::write(root.join("secrets/hr"), "hr-key").unwrap();
    std::fs::write(root.join("secrets/hook"), SECRET).unwrap();
    std::fs::write(root.join("secrets/old_hook"), OLD_SECRET).unwrap();
    let yaml = format!(
        "time_zone: Europe/Berlin\nstore:\n  state_dir: state\nsources:\n  hr:\n    provider: hr\n    credentials:\n      key: {{file: secrets/hr}}\n{extra}"
    );
    std::fs::write(root.join("roster.yaml"), yaml).unwrap();
    Env {
        _dir: dir,
        config: root,
        hr,
    }
}

pub fn hook_yaml(name: &str, addr: &str, extra: &str) -> String {
    format!(
        "  {name}:\n    url: http://{addr}/hook\n    secret: {{file: secrets/hook}}\n    allow_private_network: true\n    events: ['*']\n{extra}"
    )
}

pub fn load(config: &Path) -> roster::config::Config {
    roster::config::load(config, &LoadOptions::default())
        .unwrap_or_else(|d| panic!("{}", d.render()))
}

pub async fn sync(config: &Path) -> roster::sync::Report {
    let cfg = load(config);
    let mut store = roster::sync::open_store(&cfg).unwrap();
    let plan = &cfg.sources[0];
    roster::sync::sync_source(&cfg, &mut store, plan, &Options::default(), &mut NoProgress)
        .await
        .unwrap()
}

pub async fn deliver(config: &Path, mode: Mode) -> Vec<webhook::Report> {
    let cfg = load(config);
    let eps: Vec<_> = webhook::endpoints(&cfg)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let delivering = {
        let store = roster::sync::open_store(&cfg).unwrap();
        webhook::start(&store, eps, mode).unwrap()
    };
    delivering.wait().await.unwrap()
}

fn of_type<'a>(got: &'a [Received], t: &str) -> Vec<&'a Received> {
    got.iter().filter(|r| r.body["type"] == t).collect()
}

fn team() -> Vec<Value> {
    vec![
        hr_person(1, "ada@corp.example", None),
        hr_person(2, "ben@corp.example", Some(1)),
        hr_person(3, "cy@corp.example", Some(2)),
        hr_person(4, "di@corp.example", Some(1)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_sync_is_a_baseline_then_changes_arrive_signed_with_old_and_new_values() {
    let (raddr, rx) = start_receiver().await;
    let hooks = format!(
        "webhooks:\n{}",
        hook_yaml(
            "hr-tool",
            &raddr,
            "    rotating_secrets: [{file: secrets/old_hook}]\n"
        )
    );
    let e = env(team(), &hooks).await;
    sync(&e.config).await;
    deliver(&e.config, Mode::Due).await;
    {
        let got = rx.got.lock().unwrap();
        assert!(
            got.iter()
                .all(|r| !r.body["type"].as_str().unwrap().starts_with("person.")),
            "the baseline sends no person events: {got:?}"
        );
        assert_eq!(of_type(&got, "sync.completed").len(), 1);
    }

    // Cy moves under Di and gets a new title; Eve is hired; Ben leaves the listing.
    {
        let mut hr = e.hr.lock().unwrap();
        hr[2]["title"] = json!("Staff Engineer");
        hr[2]["manager"] = json!("4");
        hr.remove(1);
        let mut eve = hr_person(5, "eve@corp.example", Some(1));
        eve["status"] = json!("onboarding");
        eve["start"] = json!("2099-01-04");
        hr.push(eve);
    }
    let report = sync(&e.config).await;
    // terminated (Ben), updated and manager_changed (Cy), created (Eve).
    assert_eq!(report.applied.events_written, 4);
    assert!(
        report.applied.events.is_empty(),
        "an applied run does not keep its events in memory"
    );
    let reports = deliver(&e.config, Mode::Due).await;
    assert_eq!(reports[0].delivered, 5, "and sync.completed: {reports:?}");

    let got = rx.got.lock().unwrap().clone();
    for r in &got {
        assert!(
            r.signed_by_new && r.signed_by_old,
            "both secrets sign: {r:?}"
        );
        assert_eq!(r.body["id"], r.id, "the body's id is the webhook-id");
        assert!(r.id.starts_with("msg_"));
    }
    let updated = of_type(&got, "person.updated");
    let cy: Vec<_> = updated
        .iter()
        .filter(|r| r.body["data"]["work_email"] == "cy@corp.example")
        .collect();
    assert_eq!(cy.len(), 1);
    let changes = cy[0].body["data"]["changes"].as_array().unwrap();
    let title = changes.iter().find(|c| c["field"] == "job_title").unwrap();
    assert_eq!(title["old"], "Engineer");
    assert_eq!(title["new"], "Staff Engineer");
    assert_eq!(title["source"], "hr");
    let person = &cy[0].body["data"]["person"];
    assert_eq!(person["job_title"], "Staff Engineer");
    assert_eq!(person["manager_email"], "di@corp.example");
    assert_eq!(
        person["birth_date"], "--11-09",
        "birthdays go out as month and day by default"
    );

    let moved = of_type(&got, "person.manager_changed");
    assert_eq!(moved.len(), 1);
    assert_eq!(
        moved[0].body["data"]["old_manager_email"],
        "ben@corp.example"
    );
    assert_eq!(
        moved[0].body["data"]["new_manager_email"],
        "di@corp.example"
    );

    let left = of_type(&got, "person.terminated");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].body["data"]["work_email"], "ben@corp.example");

    let created = of_type(&got, "person.created");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].body["data"]["work_email"], "eve@corp.example");
    assert_eq!(created[0].body["data"]["pre_hire"], true);
    assert_eq!(of_type(&got, "sync.completed").len(), 2);

    // Delivered events are not sent again; an identical re-sync emits only its run event.
    sync(&e.config).await;
    let again = deliver(&e.config, Mode::Due).await;
    assert_eq!(again[0].delivered, 1, "only sync.completed: {again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_then_returns_gets_every_event() {
    // A port held but not listening: connections are refused until the receiver starts there.
    let down = crate::ports::RefusingPort::new();
    let raddr = down.addr.to_string();
    let hooks = format!(
        "webhooks:\n{}",
        hook_yaml(
            "down",
            &raddr,
            "    events: ['person.*']\n    retry_schedule: [0s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s]\n"
        )
        .replace("    events: ['*']\n", "")
    );
    let e = env(team(), &hooks).await;
    sync(&e.config).await;
    for p in e.hr.lock().unwrap().iter_mut() {
        p["title"] = json!("Principal");
    }
    sync(&e.config).await;

    let first = deliver(&e.config, Mode::Due).await;
    assert_eq!(first[0].delivered, 0);
    assert_eq!(first[0].retried, 4, "{first:?}");
    assert!(
        first[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("connect"),
        "{first:?}"
    );

    let config = e.config.clone();
    let drain = tokio::spawn(async move {
        deliver(
            &config,
            Mode::Drain {
                deadline: std::time::Instant::now() + Duration::from_secs(30),
            },
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rx = start_receiver_on(down.listen()).await;
    let reports = drain.await.unwrap();
    assert_eq!(reports[0].delivered, 4, "{reports:?}");
    let got = rx.got.lock().unwrap();
    let mut ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "every event arrived: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_never_delays_the_others_and_410_disables_it() {
    let (slow_addr, slow) = start_receiver().await;
    slow.delay_ms.store(3_000, Ordering::SeqCst);
    let (gone_addr, gone) = start_receiver().await;
    gone.status.store(410, Ordering::SeqCst);
    let (fast_addr, fast) = start_receiver().await;
    let hooks = format!(
        "webhooks:\n{}{}{}",
        hook_yaml("slow", &slow_addr, "    timeout: 1s\n"),
        hook_yaml("gone", &gone_addr, ""),
        hook_yaml("fast", &fast_addr, ""),
    );
    let e = env(team(), &hooks).await;
    sync(&e.config).await;
    for p in e.hr.lock().unwrap().iter_mut() {
        p["dept"] = json!("Platform");
    }
    sync(&e.config).await;

    let started = std::time::Instant::now();
    let reports = deliver(&e.config, Mode::Due).await;
    let by = |n: &str| reports.iter().find(|r| r.endpoint == n).unwrap().clone();
    assert_eq!(
        by("fast").delivered,
        6,
        "2 sync.completed + 4 person.updated"
    );
    assert_eq!(fast.got.lock().unwrap().len(), 6);
    assert!(by("slow").retried > 0 && by("slow").delivered == 0);
    assert!(
        by("slow").last_error.as_deref().unwrap().contains("time"),
        "{:?}",
        by("slow")
    );
    assert!(
        by("gone").disabled.as_deref().unwrap().contains("410"),
        "{:?}",
        by("gone")
    );
    // `gone` got the requests already in flight, then nothing more: a disabled endpoint is
    // not attempted.
    let before = gone.got.lock().unwrap().len();
    assert!((1..=6).contains(&before));
    let again = deliver(&e.config, Mode::Due).await;
    assert_eq!(gone.got.lock().unwrap().len(), before, "{again:?}");
    assert!(started.elapsed() < Duration::from_secs(20));

    // `roster events retry --endpoint gone` re-enables it; once it answers 2xx it drains.
    gone.status.store(200, Ordering::SeqCst);
    let cfg = load(&e.config);
    let store = roster::sync::open_store(&cfg).unwrap();
    store.outbox().unwrap().retry(Some("gone")).unwrap();
    drop(store);
    let after = deliver(&e.config, Mode::Due).await;
    let g = after.iter().find(|r| r.endpoint == "gone").unwrap();
    assert_eq!(g.delivered, 6, "{after:?}");
}

// ---------------------------------------------------------------------------------------------
// Date triggers, evaluated at chosen instants (the clock is an argument).

const TRIGGERS: &str = "triggers:
  birthdays: {event: lifecycle.birthday, at: '09:00'}
  day-one: {event: lifecycle.start_date, at: '08:00'}
  pre-boarding: {event: lifecycle.start_date, offset: -7d, when: {worker_type: employee}}
  anniversaries: {event: lifecycle.work_anniversary}
events:
  catch_up_window: 3d
";

fn at(s: &str) -> Timestamp {
    format!("{s}[Europe/Berlin]")
        .parse::<jiff::Zoned>()
        .unwrap()
        .timestamp()
}

fn evaluate(config: &Path, now: &str) -> Vec<roster::lifecycle::TriggerReport> {
    let cfg = load(config);
    let store = roster::sync::open_store(&cfg).unwrap();
    roster::lifecycle::evaluate(&cfg, &store, at(now)).unwrap()
}

pub fn lifecycle_events(config: &Path) -> Vec<roster::store::events::EventRow> {
    let cfg = load(config);
    let store = roster::sync::open_store(&cfg).unwrap();
    let mut rows = store
        .outbox()
        .unwrap()
        .list(&roster::store::events::ListFilter {
            kind: Some("lifecycle.*".into()),
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    rows.sort_by(|a, b| (&a.occurrence, &a.id).cmp(&(&b.occurrence, &b.id)));
    rows
}

fn fired(reports: &[roster::lifecycle::TriggerReport], trigger: &str) -> u64 {
    reports.iter().find(|r| r.trigger == trigger).unwrap().fired
}

fn born(id: u32, date: &str) -> Value {
    let mut p = hr_person(id, &format!("p{id}@corp.example"), None);
    p["born"] = json!(date);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_birthday_fires_once_whatever_the_restarts_and_the_first_evaluation_is_a_baseline() {
    let (raddr, rx) = start_receiver().await;
    let extra = format!("{TRIGGERS}webhooks:\n{}", hook_yaml("hr-tool", &raddr, ""));
    let e = env(vec![born(1, "1990-11-09"), born(2, "1985-11-07")], &extra).await;
    sync(&e.config).await;

    // The first evaluation is a baseline: the birthday two days ago does not fire.
    let first = evaluate(&e.config, "2026-11-09T08:00:00");
    assert_eq!(fired(&first, "birthdays"), 0);
    // 09:30 on the birthday; then two restarts (fresh config and store each time).
    assert_eq!(
        fired(&evaluate(&e.config, "2026-11-09T09:30:00"), "birthdays"),
        1
    );
    assert_eq!(
        fired(&evaluate(&e.config, "2026-11-09T09:31:00"), "birthdays"),
        0
    );
    assert_eq!(
        fired(&evaluate(&e.config, "2026-11-09T23:59:00"), "birthdays"),
        0
    );
    // The clock steps back an hour and forward again: still one.
    assert_eq!(
        fired(&evaluate(&e.config, "2026-11-09T08:59:00"), "birthdays"),
        0
    );
    assert_eq!(
        fired(&evaluate(&e.config, "2026-11-09T10:00:00"), "birthdays"),
        0
    );

    let events = lifecycle_events(&e.config);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, "lifecycle.birthday");
    assert_eq!(events[0].occurrence.as_deref(), Some("2026-11-09"));
    assert!(!events[0].late);

    deliver(&e.config, Mode::Due).await;
    let got = rx.got.lock().unwrap();
    let b = of_type(&got, "lifecycle.birthday");
    assert_eq!(b.len(), 1);
    let d = &b[0].body["data"];
    assert_eq!(d["trigger"], "birthdays");
    assert_eq!(d["date"], "2026-11-09");
    assert_eq!(
        d["scheduled_at"], "2026-11-09T08:00:00Z",
        "09:00 in Berlin (CET)"
    );
    assert!(d.get("years").is_none(), "no age unless birth_date: full");
    assert_eq!(d["person"]["birth_date"], "--11-09");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_days_of_downtime_are_caught_up_late_and_older_occurrences_are_skipped() {
    let people = vec![
        born(1, "1990-11-04"), // during the downtime but older than the 3-day window
        born(2, "1990-11-06"),
        born(3, "1990-11-07"),
        born(4, "1990-11-08"),
        born(5, "1990-11-10"), // after the downtime
    ];
    let e = env(people, TRIGGERS).await;
    sync(&e.config).await;
    evaluate(&e.config, "2026-11-03T12:00:00");
    // Down from the 3rd to the 8th at 12:00; the window reaches back to the 5th at 12:00.
    let r = evaluate(&e.config, "2026-11-08T12:00:00");
    let b = r.iter().find(|r| r.trigger == "birthdays").unwrap();
    assert_eq!((b.fired, b.late, b.skipped), (3, 3, 1), "{r:?}");
    let dates: Vec<_> = lifecycle_events(&e.config)
        .iter()
        .filter(|e| e.kind == "lifecycle.birthday")
        .map(|e| (e.occurrence.clone().unwrap(), e.late))
        .collect();
    assert_eq!(
        dates,
        [
            ("2026-11-06".to_string(), true),
            ("2026-11-07".to_string(), true),
            ("2026-11-08".to_string(), true)
        ]
    );
    // Back to normal: the 10th fires on time.
    let r = evaluate(&e.config, "2026-11-10T09:05:00");
    assert_eq!(fired(&r, "birthdays"), 1);
    assert!(!lifecycle_events(&e.config).last().unwrap().late);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_dates_across_a_dst_change_fire_at_local_time_and_a_start_date_edited_to_today_fires()
{
    let mut a = hr_person(1, "a@corp.example", None);
    a["start"] = json!("2026-10-24");
    let mut b = hr_person(2, "b@corp.example", None);
    b["start"] = json!("2026-10-26");
    let mut c = hr_person(3, "c@corp.example", None);
    c["start"] = json!("2026-12-01");
    c["kind"] = json!("contractor");
    let mut d = hr_person(4, "d@corp.example", None);
    d["start"] = json!("2026-11-03");
    let mut f = hr_person(5, "f@corp.example", None);
    f["start"] = json!("2026-11-03");
    f["kind"] = json!("contractor");
    let e = env(vec![a, b, c, d, f], TRIGGERS).await;
    sync(&e.config).await;
    evaluate(&e.config, "2026-10-01T00:00:00");
    let r = evaluate(&e.config, "2026-10-27T00:00:00");
    assert_eq!(fired(&r, "day-one"), 2, "{r:?}");
    let scheduled: Vec<_> = {
        let cfg = load(&e.config);
        let store = roster::sync::open_store(&cfg).unwrap();
        let ob = store.outbox().unwrap();
        lifecycle_events(&e.config)
            .iter()
            .filter(|e| e.trigger.as_deref() == Some("day-one"))
            .map(|e| {
                let full = ob.show(&e.id).unwrap().unwrap();
                full.data.unwrap()["scheduled_at"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    // 08:00 in Berlin: CEST (UTC+2) on the 24th, CET (UTC+1) after the change on the 25th.
    assert_eq!(scheduled, ["2026-10-24T06:00:00Z", "2026-10-26T07:00:00Z"]);
    assert_eq!(
        fired(&r, "pre-boarding"),
        0,
        "a week before the 3rd is the 27th, 09:00"
    );

    // C's start date is moved to today (the 27th) after 08:00: it fires at the next
    // evaluation, marked late, and only once.
    e.hr.lock().unwrap()[2]["start"] = json!("2026-10-27");
    sync(&e.config).await;
    let r = evaluate(&e.config, "2026-10-27T10:30:00");
    assert_eq!(fired(&r, "day-one"), 1);
    // Pre-boarding a week ahead is for employees only: d, not the contractor f.
    assert_eq!(fired(&r, "pre-boarding"), 1);
    let c_event = lifecycle_events(&e.config)
        .into_iter()
        .find(|e| {
            e.work_email.as_deref() == Some("c@corp.example")
                && e.kind == "lifecycle.start_date"
                && e.trigger.as_deref() == Some("day-one")
        })
        .unwrap();
    assert_eq!(c_event.occurrence.as_deref(), Some("2026-10-27"));
    assert!(c_event.late);
    assert_eq!(
        fired(&evaluate(&e.config, "2026-10-27T11:00:00"), "day-one"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leap_day_birthday_fires_on_28_february_and_leavers_get_no_birthday() {
    let mut gone = born(2, "1990-02-28");
    gone["status"] = json!("inactive");
    gone["end"] = json!("2026-01-31");
    let e = env(vec![born(1, "2000-02-29"), gone], TRIGGERS).await;
    sync(&e.config).await;
    evaluate(&e.config, "2027-02-27T12:00:00");
    let r = evaluate(&e.config, "2027-02-28T12:00:00");
    assert_eq!(fired(&r, "birthdays"), 1, "only the person still here");
    let ev = lifecycle_events(&e.config);
    assert_eq!(ev[0].work_email.as_deref(), Some("p1@corp.example"));
    assert_eq!(ev[0].occurrence.as_deref(), Some("2027-02-28"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehire_is_reactivated_and_gets_a_new_start_date_event() {
    let (raddr, rx) = start_receiver().await;
    let extra = format!(
        "{TRIGGERS}webhooks:\n{}",
        hook_yaml("hr-tool", &raddr, "").replace("['*']", "['person.*', 'lifecycle.*']")
    );
    let mut p = born(1, "1990-03-10");
    p["start"] = json!("2019-05-01");
    let keep = (2..=6).map(|i| born(i, "1980-01-01")).collect::<Vec<_>>();
    let mut all = vec![p.clone()];
    all.extend(keep.clone());
    let e = env(all, &extra).await;
    sync(&e.config).await;
    evaluate(&e.config, "2026-03-01T00:00:00");

    // P1 leaves (absent from the listing): terminated; no birthday while gone.
    e.hr.lock().unwrap().remove(0);
    sync(&e.config).await;
    let r = evaluate(&e.config, "2026-03-10T12:00:00");
    assert_eq!(fired(&r, "birthdays"), 0);

    // Rehired with a new start date.
    p["start"] = json!("2026-03-12");
    e.hr.lock().unwrap().push(p);
    sync(&e.config).await;
    let r = evaluate(&e.config, "2026-03-12T08:30:00");
    assert_eq!(fired(&r, "day-one"), 1);
    deliver(&e.config, Mode::Due).await;
    let got = rx.got.lock().unwrap();
    let types: Vec<&str> = got
        .iter()
        .filter(|r| r.body["data"]["work_email"] == "p1@corp.example")
        .map(|r| r.body["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"person.terminated"), "{types:?}");
    assert!(types.contains(&"person.reactivated"), "{types:?}");
    assert!(types.contains(&"lifecycle.start_date"), "{types:?}");
    assert!(!types.contains(&"lifecycle.birthday"), "{types:?}");
    let day_one = of_type(&got, "lifecycle.start_date");
    assert_eq!(day_one[0].body["data"]["date"], "2026-03-12");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_process_killed_mid_run_loses_nothing_and_duplicates_keep_their_id() {
    let (raddr, rx) = start_receiver().await;
    rx.delay_ms.store(300, Ordering::SeqCst);
    let hooks = format!(
        "webhooks:\n{}",
        hook_yaml("hr-tool", &raddr, "").replace("['*']", "['person.*']")
    );
    let people: Vec<Value> = (1..=60)
        .map(|i| hr_person(i, &format!("p{i}@corp.example"), None))
        .collect();
    let e = env(people, &hooks).await;
    sync(&e.config).await;
    for p in e.hr.lock().unwrap().iter_mut() {
        p["title"] = json!("Senior Engineer");
    }
    sync(&e.config).await;

    let config = e.config.clone();
    let spawn = move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(["events", "deliver", "--wait", "60s", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while rx.got.lock().unwrap().len() < 12 {
        assert!(std::time::Instant::now() < deadline, "no deliveries");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = rx.got.lock().unwrap().len();
    assert!(at_kill < 60, "killed before the end ({at_kill})");

    let status = tokio::task::spawn_blocking(move || spawn().wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    let got = rx.got.lock().unwrap();
    let mut ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 60, "every event arrived");
    // A duplicate (sent before the kill, not yet recorded) is byte-for-byte the same event.
    for r in got.iter() {
        let same: Vec<_> = got.iter().filter(|x| x.id == r.id).collect();
        assert!(same.iter().all(|x| x.body == r.body && x.signed_by_new));
    }
}

#[test]
fn an_event_written_twice_is_stored_once_with_one_delivery_per_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let event = |id: &str| roster::events::NewEvent {
        id: id.to_string(),
        kind: "person.updated".into(),
        work_email: Some("a@x.io".into()),
        source: Some("hr".into()),
        sync_run: Some(1),
        trigger: None,
        occurrence: None,
        scheduled_at: None,
        late: false,
        data: json!({"big": "x".repeat(2000)}),
    };
    let now = "2026-11-22 10:00:00";
    let installation = {
        let store = roster::store::Store::open(&state, &state.join("directory.duckdb")).unwrap();
        // The same event twice in one batch, one endpoint named twice.
        let batch = vec![
            (event("evt_1"), vec!["hook".to_string(), "hook".to_string()]),
            (event("evt_1"), vec!["hook".to_string()]),
            (event("evt_2"), vec!["hook".to_string()]),
        ];
        assert_eq!(store.write_events(&batch, now).unwrap(), 2);
        // Again, with a new endpoint for a stored event: no new event, one new delivery.
        let again = vec![(event("evt_1"), vec!["hook".to_string(), "crm".to_string()])];
        assert_eq!(store.write_events(&again, now).unwrap(), 0);
        store.installation_id().unwrap()
    };
    // Stored under the keys scoped to this state database's installation.
    let id = |key: &str| roster::events::scoped_id(&installation, key);
    let (evt_1, evt_2) = (id("evt_1"), id("evt_2"));
    let c = duckdb::Connection::open(state.join(roster::store::STATE_FILE)).unwrap();
    let rows: Vec<(String, String)> = c
        .prepare("SELECT event_id, endpoint FROM deliveries ORDER BY ALL")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let pairs: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let mut want = vec![
        (evt_1.as_str(), "crm"),
        (evt_1.as_str(), "hook"),
        (evt_2.as_str(), "hook"),
    ];
    want.sort();
    assert_eq!(pairs, want);
    let events: i64 = c
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, 2);
}

/// Every event in a config's outbox: (type, person, id), sorted.
fn stored_events(config: &Path) -> Vec<(String, Option<String>, String)> {
    let cfg = load(config);
    let store = roster::sync::open_store(&cfg).unwrap();
    let filter = roster::store::events::ListFilter {
        limit: 10_000,
        ..Default::default()
    };
    let mut out: Vec<_> = store
        .outbox()
        .unwrap()
        .list(&filter)
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.work_email, e.id))
        .collect();
    out.sort();
    out
}

/// Issue 15.4: ids came from type, person, source and run number only, so a rebuilt state
/// (run numbers start again) or another deployment reused the ids of different changes, and
/// receivers deduplicating on `webhook-id` dropped them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_ids_differ_across_state_directories_and_after_a_rebuild() {
    let (raddr, _rx) = start_receiver().await;
    let hooks = format!(
        "events:\n  created_on_first_sync: true\nwebhooks:\n{}",
        hook_yaml("hook", &raddr, "")
    );
    let a = env(team(), &hooks).await;
    let b = env(team(), &hooks).await;
    sync(&a.config).await;
    sync(&b.config).await;
    let (ea, eb) = (stored_events(&a.config), stored_events(&b.config));
    assert_eq!(ea.len(), 5, "4 person.created and sync.completed: {ea:?}");
    // The same HRIS data, the same events, one by one: never the same id.
    for (x, y) in ea.iter().zip(&eb) {
        assert_eq!((&x.0, &x.1), (&y.0, &y.1));
        assert_ne!(x.2, y.2, "{x:?}");
    }

    // The documented rebuild: state moved aside, synced again from scratch (run 1 again),
    // now with a different title for everyone.
    let state = load(&a.config).state_dir();
    std::fs::rename(&state, state.with_extension("old")).unwrap();
    for p in a.hr.lock().unwrap().iter_mut() {
        p["title"] = json!("Principal");
    }
    sync(&a.config).await;
    let rebuilt = stored_events(&a.config);
    assert_eq!(rebuilt.len(), 5);
    for e in &rebuilt {
        assert!(
            !ea.iter().any(|old| old.2 == e.2),
            "{e:?} reuses an id of the state before the rebuild"
        );
    }
}
