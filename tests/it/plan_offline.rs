//! `roster plan --offline` on the two-source fake HRIS of the sync tests: a proposed config
//! (a copy of the config directory, edited as in a pull request) planned against the
//! published directory's stored raw records, with the fake HRIS counting every request it
//! receives (none), and the original files byte for byte the same afterwards.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::roster;
use crate::sync::{Env, env};
use roster::sync::Options;

/// The sync tests' environment with webhooks, both sources synced twice (the first syncs
/// are baselines; a plan after them announces events).
async fn synced() -> Env {
    let e = env().await;
    e.add_webhooks("research", "Research");
    for source in ["core", "side", "core"] {
        e.sync(source, Options::default()).await.unwrap();
    }
    e
}

/// A copy of the config directory (as a pull request's checkout), with `edit` applied to
/// its core mapping. The secrets are left out: an offline plan needs none.
fn proposed(e: &Env, edit: impl Fn(&str) -> String) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("config");
    for sub in ["providers", "mappings"] {
        std::fs::create_dir_all(new.join(sub)).unwrap();
        for f in std::fs::read_dir(e.config.join(sub)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, new.join(sub).join(f.file_name().unwrap())).unwrap();
        }
    }
    // The proposed config reads nothing of the live state: the state_dir of a CI checkout.
    let yaml = std::fs::read_to_string(e.config.join("roster.yaml")).unwrap();
    std::fs::write(new.join("roster.yaml"), yaml).unwrap();
    let core = std::fs::read_to_string(e.config.join("mappings/core.yaml")).unwrap();
    std::fs::write(new.join("mappings/core.yaml"), edit(&core)).unwrap();
    (dir, new)
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

fn plan(config: &Path, against: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "plan",
        "--offline",
        "-c",
        config.to_str().unwrap(),
        "--against",
        against.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    roster(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_rename_is_planned_offline_with_its_events_and_no_request_to_the_hris() {
    let e = synced().await;
    let directory = e.directory();
    let state = e.cfg().state_dir().join("state.duckdb");
    let (dir_before, state_before) = (bytes(&directory), bytes(&state));
    let requests = e.hris.lock().unwrap().requests;
    // Everyone core lists has department R&D today.
    let rnd: Vec<String> = crate::sync::query_file(
        &directory,
        "select work_email from people where department = 'R&D' order by 1",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    assert!(rnd.len() >= 5, "{rnd:?}");

    // Unchanged config: nothing to do, exit 0.
    let (code, out, err) = plan(&e.config, &directory, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.ends_with("Offline plan: no changes.\n"), "{out}");

    // The pull request renames the department in the mapping.
    let (_keep, new) = proposed(&e, |m| {
        m.replace(
            "  department: $.attrs.dept\n",
            "  department: {path: $.attrs.dept, values: {'R&D': Research}, unmapped: keep}\n",
        )
    });
    let (code, out, err) = plan(&new, &directory, &[]);
    assert_eq!(code, 2, "changes: {out}{err}");
    for email in &rnd {
        assert!(
            out.contains(&format!("  ~ {email} (update)\n")),
            "{email}: {out}"
        );
    }
    assert_eq!(
        out.matches("      department: \"R&D\" -> \"Research\" (core)\n")
            .count(),
        rnd.len(),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Plan for core: 0 to create, {} to update, 0 to terminate",
            rnd.len()
        )),
        "{out}"
    );
    // Each update goes to both endpoints: `research` takes Research people, as they will be.
    assert_eq!(
        out.matches(" -> all, research\n").count(),
        rnd.len(),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "  all: {n} events (person.updated {n})\n  research: {n} events (person.updated {n})\n",
            n = rnd.len()
        )),
        "{out}"
    );
    assert!(
        out.ends_with("Offline plan: the directory would change.\n"),
        "{out}"
    );

    // The same as JSON for a bot: one document per source, then the summary.
    let (code, out, _) = plan(&new, &directory, &["--format", "json"]);
    assert_eq!(code, 2);
    let docs: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let core = docs.iter().find(|d| d["source"] == "core").unwrap();
    assert_eq!(core["updated"], rnd.len());
    let summary = docs.last().unwrap();
    assert_eq!(summary["offline"], true);
    assert_eq!(summary["changes"], true);
    assert_eq!(summary["events"]["research"]["person.updated"], rnd.len());

    // Nothing was fetched and nothing was written.
    assert_eq!(
        e.hris.lock().unwrap().requests,
        requests,
        "no request to the HRIS"
    );
    assert!(
        bytes(&directory) == dir_before,
        "the directory is untouched"
    );
    assert!(bytes(&state) == state_before, "the state is untouched");
    assert!(
        crate::sync::query_file(
            &directory,
            "select 1 from people where department = 'Research'"
        )
        .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_that_drops_40_percent_would_be_held_and_an_invalid_config_is_78() {
    let e = synced().await;
    let directory = e.directory();
    let requests = e.hris.lock().unwrap().requests;
    // Contractors (1) and Ben's reports (3) out: 4 of core's 10 people.
    let (_keep, new) = proposed(&e, |m| {
        format!(
            "{m}filter:\n  exclude:\n    - {{path: $.attrs.kind, equals: external}}\n    - {{path: $.attrs.manager, equals: 2}}\n"
        )
    });
    let (code, out, err) = plan(&new, &directory, &[]);
    assert_eq!(code, 75, "would hold: {out}{err}");
    assert!(
        out.contains(
            "  HELD: 4 of 10 people of `core` (40%) would leave (gone from the listing, or marked as left), more than the 20% allowed"
        ),
        "{out}"
    );
    assert_eq!(
        out.matches(" (terminate)\n").count(),
        4,
        "the held run still lists them: {out}"
    );
    assert!(
        out.ends_with("Offline plan: the sync of core would be HELD by the safety thresholds (nothing of it applied).\n"),
        "{out}"
    );
    // A folder holding the directory works as --against too.
    let folder = directory.parent().unwrap();
    let (code, _, _) = plan(&new, folder, &[]);
    assert_eq!(code, 75);

    // An invalid proposed config: 78, located errors, no plan.
    let (_keep2, broken) = proposed(&e, |m| m.replace("fields:", "feilds:"));
    let (code, out, err) = plan(&broken, &directory, &[]);
    assert_eq!(code, 78, "{out}{err}");
    assert!(err.contains("mappings/core.yaml:"), "{err}");
    assert!(out.is_empty(), "{out}");

    // Nothing to plan against: say what to pass.
    let (code, _, err) = plan(&new, &folder.join("nothing.duckdb"), &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("pass `--against` a copy of the published directory.duckdb"),
        "{err}"
    );
    assert_eq!(
        e.hris.lock().unwrap().requests,
        requests,
        "no request to the HRIS"
    );
}
