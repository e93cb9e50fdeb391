//! `roster explain EMAIL` on the two-source fake HRIS of the sync tests: a person merged from
//! `core` and `side` (per-field precedence), a record the filter excluded, the manager
//! resolved by id, the history of a change, and the events sent and not sent.

use serde_json::json;

use crate::cli::roster;
use crate::sync::env;
use roster::sync::Options;

fn has(out: &str, line: &str) {
    assert!(
        out.lines().any(|l| l.trim_end() == line),
        "no line {line:?} in:\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_a_person_merged_from_two_sources_field_by_field() {
    let e = env().await;
    e.add_webhooks("sales", "Sales");
    e.sync("core", Options::default()).await.unwrap();
    e.sync("side", Options::default()).await.unwrap();
    // Ben (core #2, side S-1) moves to another department in core: person.updated.
    e.hris.lock().unwrap().core[1]["attrs"]["dept"] = json!("Platform");
    let r = e.sync("core", Options::default()).await.unwrap();
    assert_eq!(r.applied.updated, 1);

    let c = e.config.to_str().unwrap();
    let (code, out, err) = roster(&["explain", "-c", c, " Ben@Corp.example "]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("ben@corp.example: Ben Lead, active; sources: core, side\n"),
        "{out}"
    );
    // Side wins job_title (precedence.fields), core everything else (precedence.default).
    has(
        &out,
        r#"  job_title = "Engineering Manager" <- side record S-1: mappings/side.yaml fields.job_title: "$.role""#,
    );
    has(
        &out,
        r#"      core record 2 has "Engineer": lost under precedence for job_title: side > core"#,
    );
    has(
        &out,
        r#"  first_name = "Ben" <- core record 2: mappings/core.yaml fields.first_name: {"path":"$.attrs.first","transform":["trim"]}"#,
    );
    has(
        &out,
        r#"      side record S-1 has "Benjamin": lost under precedence for first_name: core > side"#,
    );
    has(&out, r#"      side record S-1 has "Lead": same value"#);
    // Only side maps an office: core ranks higher but has nothing.
    has(
        &out,
        r#"  office = "Berlin" <- side record S-1: mappings/side.yaml fields.office: "$.site""#,
    );
    has(
        &out,
        "      core record 2 ranks higher but is empty (not mapped by mappings/core.yaml)",
    );
    // The manager: core's manager id resolved within core; side's mapped email lost.
    has(
        &out,
        r#"  core record 2 names manager id "1": core record 1 (ada@corp.example) -> "ada@corp.example""#,
    );
    has(&out, "  core record 2: kept");
    has(&out, "  side record S-1: kept");
    // History: the old department closed, the new one open.
    let dept: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" department = ") && l.contains(", run "))
        .collect();
    assert_eq!(dept.len(), 2, "{out}");
    assert!(
        dept[0].ends_with(r#"department = "R&D" (core, run 1)"#) && !dept[0].contains(".. now"),
        "{out}"
    );
    assert!(
        dept[1].contains(".. now  department = \"Platform\" (core, run 3)"),
        "{out}"
    );
    // Events: the two first syncs were baselines; the update went to `all` only.
    has(
        &out,
        "  run 1 was the first sync of `core`: a baseline, so its changes to this person sent no person events (events.created_on_first_sync: false)",
    );
    has(
        &out,
        "  run 2 was the first sync of `side`: a baseline, so its changes to this person sent no person events (events.created_on_first_sync: false)",
    );
    let updated = out
        .lines()
        .find(|l| l.contains(" person.updated msg_"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(updated.ends_with(": all pending"), "{updated}");
    has(
        &out,
        r#"      not sent to sales: its `when` does not match: department in [Sales] (this person: "Platform")"#,
    );
    has(&out, "data problems:");

    // A record the filter excluded: not in the directory, and why.
    let (code, out, err) = roster(&["explain", "-c", c, "jo@corp.example"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("jo@corp.example: not in the directory"),
        "{out}"
    );
    let excluded = out
        .lines()
        .find(|l| l.starts_with("  core record 10: excluded by the filter of its mapping: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(excluded.contains("status `terminated`"), "{excluded}");

    // Nobody: exit 1, and how to find the right email.
    let (code, _, err) = roster(&["explain", "-c", c, "nobody@corp.example"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("nobody with the work email `nobody@corp.example`") && err.contains("ilike"),
        "{err}"
    );
}
