//! The demo end to end: the built-in fake HRIS (Personio- and Merge-shaped), the config
//! `roster demo` writes, both sources synced through the built-in specs and mappings into a
//! real DuckDB directory; people checked field by field against the records the fake served.

use std::collections::BTreeSet;

use serde_json::Value;

use roster::config::LoadOptions;
use roster::demo::{Dataset, FakeHris, PERSONIO_BIRTHDAY_ATTRIBUTE, write_config};
use roster::sync::{NoProgress, Options};

fn attr<'a>(r: &'a Value, name: &str) -> &'a Value {
    &r["attributes"][name]["value"]
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn date(v: &Value) -> String {
    text(v).chars().take(10).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_company_lands_in_the_directory_field_by_field() {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Europe/Berlin").unwrap())
        .date();
    let data = Dataset::generate(7, 120, today);
    let fake = FakeHris::start(data.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), fake.addr()).unwrap();
    let cfg = roster::config::load(dir.path(), &LoadOptions::default()).unwrap();
    let mut store = roster::sync::open_store(&cfg).unwrap();
    for plan in &cfg.sources {
        let r =
            roster::sync::sync_source(&cfg, &mut store, plan, &Options::default(), &mut NoProgress)
                .await
                .unwrap();
        assert!(r.applied.held.is_none(), "{:?}", r.applied.held);
    }
    drop(store);
    let path = roster::sync::directory_path(&cfg);
    let conn = roster::store::open_readonly(&path).unwrap();
    let q = |sql: &str| -> Vec<Vec<String>> {
        let (_, rows) = roster::cli::query::execute(&conn, sql).unwrap();
        rows.iter()
            .map(|r| r.iter().map(roster::cli::query::text).collect())
            .collect()
    };

    let merge_emails: BTreeSet<String> = data
        .merge
        .iter()
        .map(|r| text(&r["work_email"]).trim().to_lowercase())
        .collect();
    let by_id = |id: &Value| {
        data.personio
            .iter()
            .find(|r| attr(r, "id") == id)
            .map(|r| text(attr(r, "email")).trim().to_lowercase())
    };
    // Every active internal Personio employee only in Personio, with a supervisor that exists:
    // every mapped field as the fake served it.
    let mut checked = 0;
    for r in &data.personio {
        let email = text(attr(r, "email")).trim().to_lowercase();
        let supervisor = &attr(r, "supervisor")["attributes"]["id"]["value"];
        if email.is_empty()
            || text(attr(r, "status")) != "active"
            || text(attr(r, "employment_type")) != "internal"
            || merge_emails.contains(&email)
            || by_id(supervisor).is_none()
            || data
                .personio
                .iter()
                .filter(|o| text(attr(o, "email")).trim().to_lowercase() == email)
                .count()
                > 1
        {
            continue;
        }
        let row = q(&format!(
            "select employee_id, first_name, last_name, job_title, department, team, sub_company, office,
                    manager_email, employment_type, worker_type, status, start_date, probation_end_date,
                    birth_date, sources
             from people where work_email = '{email}'"
        ));
        assert_eq!(row.len(), 1, "{email} missing");
        let expected = vec![
            text(attr(r, "id")),
            text(attr(r, "first_name")).trim().to_string(),
            text(attr(r, "last_name")).trim().to_string(),
            text(attr(r, "position")).trim().to_string(),
            text(&attr(r, "department")["attributes"]["name"]),
            text(&attr(r, "team")["attributes"]["name"]),
            text(&attr(r, "subcompany")["attributes"]["name"]),
            text(&attr(r, "office")["attributes"]["name"]),
            by_id(supervisor).unwrap(),
            "internal".to_string(),
            "employee".to_string(),
            "active".to_string(),
            date(attr(r, "hire_date")),
            date(attr(r, "probation_period_end")),
            date(attr(r, PERSONIO_BIRTHDAY_ATTRIBUTE)),
            "[personio]".to_string(),
        ];
        assert_eq!(row[0], expected, "{email}");
        checked += 1;
    }
    assert!(checked > 50, "checked {checked} people");

    // Pre-hires are in as pre_hire; inactive people are out.
    for r in &data.personio {
        let email = text(attr(r, "email")).trim().to_lowercase();
        if email.is_empty() || merge_emails.contains(&email) {
            continue;
        }
        let status = q(&format!(
            "select status from people where work_email = '{email}'"
        ));
        match text(attr(r, "status")).as_str() {
            "inactive" => assert!(status.is_empty(), "{email} left but is listed"),
            "onboarding" => assert_eq!(status[0][0], "pre_hire", "{email}"),
            _ => {}
        }
    }
    // The deliberate data problems are listed.
    let kinds: BTreeSet<String> = q("select kind from data_problems")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    for k in [
        "missing_work_email",
        "duplicate_work_email",
        "unresolved_manager",
    ] {
        assert!(kinds.contains(k), "{k} not in {kinds:?}");
    }
    // People in both systems are merged, Personio first by default.
    let both = q("select count(*) from people where len(sources) = 2");
    assert!(both[0][0].parse::<u32>().unwrap() >= 5, "{both:?}");
}

#[test]
fn roster_demo_syncs_twice_and_its_receiver_gets_the_signed_events_of_the_changes() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("roster-demo");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["demo", "--dir"])
        .arg(&demo)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every delivery, as received, is in webhooks.jsonl; the receiver verified each.
    let lines = std::fs::read_to_string(demo.join("webhooks.jsonl")).unwrap();
    let bodies: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|d| serde_json::from_str(d["body"].as_str().unwrap()).unwrap())
        .collect();
    let types: BTreeSet<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    for t in [
        "sync.completed",
        "person.created",
        "person.updated",
        "person.terminated",
        "person.manager_changed",
    ] {
        assert!(types.contains(t), "{t} missing from {types:?}\n{stdout}");
    }
    // The second sync's events, all verified by the receiver (the log also has the first
    // sync's run events).
    let n = bodies.len();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("The webhook receiver got "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let (got, valid): (usize, usize) = (words[4].parse().unwrap(), words[6].parse().unwrap());
    assert_eq!(got, valid, "{line}");
    assert!(got >= 5 && got <= n, "{line} ({n} in the log)");
    // The outbox agrees: every event delivered, none pending.
    let list = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["events", "list", "--json", "--config"])
        .arg(demo.join("config"))
        .output()
        .unwrap();
    let rows: Vec<Value> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), n);
    assert!(
        rows.iter()
            .all(|r| r["deliveries"][0]["state"] == "delivered"),
        "{rows:?}"
    );
}
