//! `roster events upcoming`: the real binary against a directory synced from the events
//! tests' fake HRIS; the calendar it prints across a daylight-saving change (Europe/Berlin,
//! 28 March 2027), a 29 February birthday in a non-leap year, offsets, conditions, leavers
//! and routing to endpoints.

use serde_json::{Value, json};

use crate::cli::roster;
use crate::events::{env, hr_person, sync};

/// Triggers and two endpoints: `hr` takes everything, `it` only day-one events of contractors.
const EXTRA: &str = "triggers:
  birthdays: {event: lifecycle.birthday}
  day-one: {event: lifecycle.start_date, at: '02:30'}
  pre-boarding: {event: lifecycle.start_date, offset: -7d, when: {worker_type: employee}}
  leaving: {event: lifecycle.end_date, at: '17:00'}
webhooks:
  hr:
    url: http://127.0.0.1:9/hook
    secret: {file: secrets/hook}
    allow_private_network: true
    events: ['*']
  it:
    url: http://127.0.0.1:9/hook
    secret: {file: secrets/hook}
    allow_private_network: true
    events: [lifecycle.start_date]
    triggers: [day-one]
    when: {worker_type: contractor}
";

fn people() -> Vec<Value> {
    let mut p = Vec::new();
    // Born on 29 February: 2027 has none, so the birthday is on the 28th (leap_day default).
    let mut leap = hr_person(1, "leap@corp.example", None);
    leap["born"] = json!("2000-02-29");
    p.push(leap);
    // Left last year: no birthday although it falls in the window.
    let mut gone = hr_person(2, "gone@corp.example", None);
    gone["born"] = json!("1990-03-01");
    gone["status"] = json!("inactive");
    gone["end"] = json!("2026-01-31");
    p.push(gone);
    // Starts on the day the clocks go forward: 02:30 does not exist that night.
    let mut dst = hr_person(3, "dst@corp.example", None);
    dst["start"] = json!("2027-03-28");
    p.push(dst);
    // Starts after the change: a week before is still winter time.
    let mut april = hr_person(4, "april@corp.example", None);
    april["start"] = json!("2027-04-01");
    p.push(april);
    // A contractor: day-one goes to `it` too, pre-boarding (employees only) does not fire.
    let mut contractor = hr_person(5, "contractor@corp.example", None);
    contractor["start"] = json!("2027-03-29");
    contractor["kind"] = json!("contractor");
    p.push(contractor);
    // Leaves on 5 March: the end-date event fires, the birthday after it does not.
    let mut leaver = hr_person(6, "leaver@corp.example", None);
    leaver["born"] = json!("1980-03-10");
    leaver["end"] = json!("2027-03-05");
    p.push(leaver);
    p
}

fn upcoming(config: &std::path::Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["events", "upcoming", "-c", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    roster(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upcoming_lists_the_calendar_across_a_dst_change_and_29_february() {
    let e = env(people(), EXTRA).await;
    sync(&e.config).await;
    let (code, out, err) = upcoming(
        &e.config,
        &["--from", "2027-02-20", "--days", "45", "--format", "json"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["time_zone"], "Europe/Berlin");
    assert_eq!(
        doc["from"], "2027-02-19T23:00:00Z",
        "midnight in Berlin (CET)"
    );
    let got: Vec<(String, String, String, String, String)> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let endpoints: Vec<&str> = e["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            (
                e["fire_at_local"].as_str().unwrap().to_string(),
                e["trigger"].as_str().unwrap().to_string(),
                e["work_email"].as_str().unwrap().to_string(),
                e["date"].as_str().unwrap().to_string(),
                endpoints.join(","),
            )
        })
        .collect();
    let row = |at: &str, t: &str, who: &str, date: &str, to: &str| {
        (
            at.to_string(),
            t.to_string(),
            who.to_string(),
            date.to_string(),
            to.to_string(),
        )
    };
    assert_eq!(
        got,
        [
            // 29 February → 28 February in 2027, at 09:00 CET.
            row(
                "2027-02-28T09:00:00+01:00[Europe/Berlin]",
                "birthdays",
                "leap@corp.example",
                "2027-02-28",
                "hr"
            ),
            row(
                "2027-03-05T17:00:00+01:00[Europe/Berlin]",
                "leaving",
                "leaver@corp.example",
                "2027-03-05",
                "hr"
            ),
            row(
                "2027-03-21T09:00:00+01:00[Europe/Berlin]",
                "pre-boarding",
                "dst@corp.example",
                "2027-03-28",
                "hr"
            ),
            // -7d are calendar days: 09:00 local in winter time, not 10:00.
            row(
                "2027-03-25T09:00:00+01:00[Europe/Berlin]",
                "pre-boarding",
                "april@corp.example",
                "2027-04-01",
                "hr"
            ),
            // 02:30 does not exist on 28 March 2027: it moves on by the gap, to 03:30 CEST.
            row(
                "2027-03-28T03:30:00+02:00[Europe/Berlin]",
                "day-one",
                "dst@corp.example",
                "2027-03-28",
                "hr"
            ),
            row(
                "2027-03-29T02:30:00+02:00[Europe/Berlin]",
                "day-one",
                "contractor@corp.example",
                "2027-03-29",
                "hr,it"
            ),
            row(
                "2027-04-01T02:30:00+02:00[Europe/Berlin]",
                "day-one",
                "april@corp.example",
                "2027-04-01",
                "hr"
            ),
        ]
    );
    let birthday = &doc["events"][0];
    assert_eq!(birthday["years"], 27);
    assert_eq!(birthday["fire_at"], "2027-02-28T08:00:00Z");
    assert_eq!(birthday["type"], "lifecycle.birthday");

    // As text, it is the README's example, line for line.
    let (code, out, _) = upcoming(&e.config, &["--from", "2027-02-20", "--days", "45"]);
    assert_eq!(code, 0);
    let readme = std::fs::read_to_string(crate::repo().join("README.md")).unwrap();
    for line in out.lines() {
        assert!(
            readme.lines().any(|l| l == line),
            "README's `events upcoming` example lacks: {line:?}\n{out}"
        );
    }

    // The same calendar as text, filtered to one endpoint: only the contractor's day one.
    let (code, out, err) = upcoming(
        &e.config,
        &["--from", "2027-02-20", "--days", "45", "--endpoint", "it"],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].starts_with("  2027-03-29 02:30 CEST  day-one")
            && lines[0].contains("contractor@corp.example")
            && lines[0].ends_with("-> hr, it"),
        "{out}"
    );
    assert!(out.contains("1 event in the next 45 days."), "{out}");

    // One trigger; a window that ends before the DST change.
    let (code, out, _) = upcoming(
        &e.config,
        &[
            "--from",
            "2027-02-27T12:00",
            "--days",
            "2",
            "--trigger",
            "birthdays",
        ],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("2027-02-28 09:00 CET  birthdays") && out.contains("2027-02-28 (27 years)"),
        "{out}"
    );

    // Unknown names say what exists.
    let (code, _, err) = upcoming(&e.config, &["--trigger", "birthday"]);
    assert_eq!(code, 64);
    assert!(
        err.contains("no trigger `birthday`")
            && err.contains("birthdays, day-one, pre-boarding, leaving"),
        "{err}"
    );
    let (code, _, err) = upcoming(&e.config, &["--endpoint", "slack"]);
    assert_eq!(code, 64);
    assert!(err.contains("the webhook endpoints are: hr, it"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upcoming_agrees_with_what_the_evaluation_then_fires() {
    let e = env(people(), EXTRA).await;
    sync(&e.config).await;
    let (code, out, err) = upcoming(
        &e.config,
        &[
            "--from",
            "2027-03-27T12:00",
            "--days",
            "2",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let mut listed: Vec<(String, String)> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["trigger"].as_str().unwrap().to_string(),
                e["work_email"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    listed.sort();
    assert!(!listed.is_empty());

    // The daemon's evaluation over the same window (first evaluation = baseline at the start).
    let cfg = crate::events::load(&e.config);
    let store = roster::sync::open_store(&cfg).unwrap();
    let at = |s: &str| {
        format!("{s}[Europe/Berlin]")
            .parse::<jiff::Zoned>()
            .unwrap()
            .timestamp()
    };
    roster::lifecycle::evaluate(&cfg, &store, at("2027-03-27T12:00:00")).unwrap();
    roster::lifecycle::evaluate(&cfg, &store, at("2027-03-29T12:00:00")).unwrap();
    drop(store);
    let mut fired: Vec<(String, String)> = crate::events::lifecycle_events(&e.config)
        .into_iter()
        .map(|r| (r.trigger.unwrap(), r.work_email.unwrap()))
        .collect();
    fired.sort();
    assert_eq!(listed, fired);
}
