//! What may leave the process (issue 15.3 and 15.6), with canary data through the real
//! binary: a person whose names, email, title and birth date are canaries is synced and sent
//! to receivers that echo the request in their error answers (500, 400, a redirect whose
//! `Location` carries it) or never answer. None of the canaries may appear in `roster`'s
//! stdout or logs (stderr, at debug level), nor in `deliveries.last_error` of the state and
//! the published database. And a 5 MB job title goes out as a truncated body.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::events::{env, hook_yaml, hr_person};

/// The person's values, lowercased: names, titles, the birth date.
const VALUES: [&str; 5] = [
    "zqxcanaryfirst",
    "zqxcanarylast",
    "zqxcanarytitle",
    "zqxcanarynewtitle",
    "1901-01-01",
];

/// Every canary: the values and the email (the person's id, which only listings of the
/// outbox that an operator asks for may show).
const CANARIES: [&str; 6] = [
    "zqxcanaryfirst",
    "zqxcanarylast",
    "zqxcanarytitle",
    "zqxcanarynewtitle",
    "1901-01-01",
    "zqxcanary.person",
];

fn canary_person() -> Value {
    let mut p = hr_person(1, "zqxcanary.person@corp.example", None);
    p["first"] = json!("Zqxcanaryfirst");
    p["last"] = json!("Zqxcanarylast");
    p["title"] = json!("Zqxcanarytitle");
    p["born"] = json!("1901-01-01");
    p
}

/// How a receiver answers.
#[derive(Clone, Copy)]
enum Answer {
    /// This status, with the request body as the answer.
    Echo(u16),
    /// A 302 whose `Location` carries the body.
    RedirectEcho,
    /// Nothing: it waits longer than the webhook's `timeout`.
    Hang,
    /// 204, and it keeps the bodies.
    Accept,
}

struct Receiver {
    answer: Answer,
    requests: AtomicUsize,
    saw_canary: AtomicBool,
    bodies: Mutex<Vec<Bytes>>,
}

async fn receive(State(r): State<Arc<Receiver>>, body: Bytes) -> Response {
    r.requests.fetch_add(1, Ordering::SeqCst);
    let text = String::from_utf8_lossy(&body).to_lowercase();
    if CANARIES.iter().any(|c| text.contains(c)) {
        r.saw_canary.store(true, Ordering::SeqCst);
    }
    match r.answer {
        Answer::Echo(code) => {
            let status = StatusCode::from_u16(code).unwrap();
            (
                status,
                format!("error processing {}", String::from_utf8_lossy(&body)),
            )
                .into_response()
        }
        Answer::RedirectEcho => {
            let q: String = text
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "-.@".contains(*c))
                .take(2000)
                .collect();
            (
                StatusCode::FOUND,
                [("location", format!("/retry?body={q}"))],
            )
                .into_response()
        }
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Answer::Accept => {
            r.bodies.lock().unwrap().push(body);
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

async fn receiver(answer: Answer) -> (String, Arc<Receiver>) {
    let r = Arc::new(Receiver {
        answer,
        requests: AtomicUsize::new(0),
        saw_canary: AtomicBool::new(false),
        bodies: Mutex::new(Vec::new()),
    });
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (addr, r)
}

/// Runs the real binary off the test's runtime threads; returns (code, stdout, stderr).
async fn roster(args: &[&str], config: &Path) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roster"));
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env_remove("ROSTER_CONFIG")
        .env("RUST_LOG", "debug");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run roster"))
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `deliveries.last_error` of a database file, read-only.
fn last_errors(db: &Path) -> Vec<String> {
    let conn = roster::store::open_readonly(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT last_error FROM deliveries WHERE last_error IS NOT NULL")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn assert_no_canary(what: &str, text: &str) {
    assert_no(&CANARIES, what, text);
}

fn assert_no(canaries: &[&str], what: &str, text: &str) {
    let lower = text.to_lowercase();
    for c in canaries {
        assert!(
            !lower.contains(c),
            "{what} contains the canary `{c}`:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_that_echo_personal_data_never_get_it_into_logs_outputs_or_the_outbox() {
    let (a500, r500) = receiver(Answer::Echo(500)).await;
    let (a400, r400) = receiver(Answer::Echo(400)).await;
    let (a302, r302) = receiver(Answer::RedirectEcho).await;
    let (ahang, rhang) = receiver(Answer::Hang).await;
    // A loaded test machine can take a while to answer: only `hang` has a short timeout.
    let opts = "    birth_date: full\n    timeout: 20s\n    retry_schedule: [0s, 1s]\n";
    let hang_opts = opts.replace("timeout: 20s", "timeout: 1s");
    let extra = format!(
        "events:\n  created_on_first_sync: true\nwebhooks:\n{}{}{}{}",
        hook_yaml("echo500", &a500, opts),
        hook_yaml("echo400", &a400, opts),
        hook_yaml("redirect", &a302, opts),
        hook_yaml("hang", &ahang, &hang_opts),
    );
    let e = env(vec![canary_person()], &extra).await;
    let mut outputs = Vec::new();

    // The first sync sends person.created (full data, full birth date) and fails everywhere.
    let first = roster(&["sync"], &e.config).await;
    assert_eq!(first.0, 0, "{first:?}");
    outputs.push(first);
    // A change: person.updated carries old and new values.
    e.hr.lock().unwrap()[0]["title"] = json!("Zqxcanarynewtitle");
    outputs.push(roster(&["sync"], &e.config).await);
    // The retries run out: dead-lettered, logged as warnings.
    outputs.push(roster(&["events", "deliver", "--wait", "10s"], &e.config).await);
    // The operator's listing of the outbox names people by their id (the work email), with
    // each delivery's state; never their values.
    let list = roster(&["events", "list"], &e.config).await;
    assert!(list.1.contains("dead(2)"), "{list:?}");
    assert_no(
        &VALUES,
        "`roster events list`",
        &format!("{}{}", list.1, list.2),
    );

    for r in [&r500, &r400, &r302, &rhang] {
        assert!(
            r.saw_canary.load(Ordering::SeqCst),
            "each receiver was sent the canaries, so an echo would have leaked them"
        );
    }
    let all_stderr: String = outputs.iter().map(|o| o.2.as_str()).collect();
    assert!(
        all_stderr.contains("dead-lettered after 2 attempts"),
        "the warnings that quote errors ran: {all_stderr}"
    );
    for (i, (_, stdout, stderr)) in outputs.iter().enumerate() {
        assert_no_canary(&format!("stdout of run {i}"), stdout);
        assert_no_canary(&format!("stderr of run {i}"), stderr);
    }

    let cfg = crate::events::load(&e.config);
    let state = cfg.state_dir().join(roster::store::STATE_FILE);
    let published = roster::sync::directory_path(&cfg);
    for db in [&state, &published] {
        let errors = last_errors(db);
        let joined = errors.join("\n");
        assert_no_canary(
            &format!("deliveries.last_error of {}", db.display()),
            &joined,
        );
        for want in [
            "HTTP 500",
            "HTTP 400",
            "redirected (HTTP 302)",
            "no answer from",
        ] {
            assert!(
                joined.contains(want),
                "{want} in {}: {joined}",
                db.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_megabyte_job_title_goes_out_truncated_with_a_warning_without_values() {
    let (addr, rx) = receiver(Answer::Accept).await;
    let extra = format!(
        // Limits raised so the 5 MB title reaches the webhook renderer (by default the
        // mapping refuses it: see `limits:`); the body cap is the last line of defence.
        "limits: {{max_field_bytes: 8MiB, max_record_bytes: 16MiB}}\nevents:\n  created_on_first_sync: true\nwebhooks:\n{}",
        hook_yaml("hook", &addr, "    events: ['person.*']\n").replace("    events: ['*']\n", "")
    );
    let mut p = canary_person();
    p["title"] = json!(format!("Zqxcanarybig{}", "x".repeat(5 * 1024 * 1024)));
    let e = env(vec![p], &extra).await;
    let (code, stdout, stderr) = roster(&["sync"], &e.config).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let bodies = rx.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "{stdout}{stderr}");
    assert!(bodies[0].len() <= roster::events::MAX_BODY_BYTES);
    let body: Value = serde_json::from_slice(&bodies[0]).unwrap();
    assert_eq!(body["truncated"], true);
    assert_eq!(body["type"], "person.created");
    assert_eq!(body["data"]["work_email"], "zqxcanary.person@corp.example");
    assert!(body["data"].get("person").is_none(), "{body}");
    assert!(
        stderr.contains("over the 262144 byte cap"),
        "a warning says so: {stderr}"
    );
    // The warning names the event, not its values (the email is the body's one identifier).
    let warning: String = stderr.lines().filter(|l| l.contains("byte cap")).collect();
    assert_no_canary("the truncation warning", &warning);
    assert!(!stdout.to_lowercase().contains("zqxcanarybig"), "{stdout}");
}
