//! The mapping engine through its users: `roster test` (the real binary) on the example
//! config and on a config with a failing fixture, and every built-in fixture through the
//! library.

use roster::config::Origin;
use roster::config::builtin_mappings;
use roster::mapping::{Mapped, Mapper, fixture};

use crate::cli::roster;
use crate::{load, repo};

#[test]
fn roster_test_passes_on_the_full_example() {
    let dir = repo().join("examples/full");
    let (code, out, err) = roster(&["test", "--config", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ok   acme-hr (local): an engaged contractor\n"),
        "{out}"
    );
    assert!(out.contains("ok   personio: "), "{out}");
    let fixture_lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("ok ") || l.starts_with("FAIL "))
        .collect();
    assert!(
        fixture_lines.iter().all(|l| l.starts_with("ok   ")),
        "{out}"
    );
    let summary = out.lines().last().unwrap();
    assert_eq!(
        summary,
        format!("{} fixtures, 0 failed", fixture_lines.len()),
        "{out}"
    );
}

#[test]
fn roster_test_runs_one_mapping_and_refuses_an_unknown_one() {
    let dir = repo().join("examples/full");
    let dir = dir.to_str().unwrap();
    let (code, out, _) = roster(&["test", "--config", dir, "--mapping", "acme-hr"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        "ok   acme-hr (local): an engaged contractor\n\
         ok   acme-hr (local): an ended engagement is not in the directory\n\
         2 fixtures, 0 failed\n"
    );
    let (code, _, err) = roster(&["test", "--config", dir, "--mapping", "acme"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("no mapping `acme`"), "{err}");
    assert!(err.contains("acme-hr"), "{err}");
}

#[test]
fn roster_test_fails_with_a_diff_per_field() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("roster.yaml"),
        "time_zone: UTC\nsources:\n  hr:\n    provider: personio\n    mapping: people\n    credentials:\n      client_id: x\n      client_secret: {env: S}\n",
    )
    .unwrap();
    std::fs::create_dir(tmp.path().join("mappings")).unwrap();
    std::fs::write(
        tmp.path().join("mappings/people.yaml"),
        r#"provider: personio
stream: employees
fields:
  work_email: $.email
  job_title:
    path: $.title
    transform: [lowercase]
  start_date: $.start
  status:
    path: $.status
    values: {active: active, inactive: terminated}
tests:
  - name: a title kept as written
    record: {email: Ada@Example.com, title: CTO, start: "2024-02-30", status: active}
    expect:
      work_email: ada@example.com
      job_title: CTO
      start_date: null
  - name: a leaver is dropped
    record: {email: bob@example.com, status: active}
    excluded: true
  - name: this one passes
    record: {email: c@example.com, status: inactive}
    excluded: true
"#,
    )
    .unwrap();
    let (code, out, err) = roster(&[
        "test",
        "--config",
        tmp.path().to_str().unwrap(),
        "--mapping",
        "people",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        out,
        "FAIL people (local): a title kept as written\n  \
         job_title: expected \"CTO\", got \"cto\"\n  \
         start_date: expected null, got a data problem: not a valid date for format %Y-%m-%d (a day that does not exist in that month)\n\
         FAIL people (local): a leaver is dropped\n  \
         expected the filter to drop it, but it is kept with status `active`\n\
         ok   people (local): this one passes\n\
         3 fixtures, 2 failed\n"
    );
}

#[test]
fn roster_test_reports_an_invalid_config() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("roster.yaml"), "time_zone: Nowhere/Land\n").unwrap();
    let (code, _, err) = roster(&["test", "--config", tmp.path().to_str().unwrap()]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("Nowhere/Land"), "{err}");
}

/// Every built-in mapping ships fixtures, and all of them pass through the library (the same
/// code `roster test` runs).
#[test]
fn every_builtin_fixture_maps_as_expected() {
    let cfg = load(&repo().join("examples/minimal")).unwrap();
    let mut failures = Vec::new();
    let mut count = 0;
    for (name, _) in builtin_mappings() {
        let loaded = &cfg.mappings[*name];
        assert_eq!(loaded.origin, Origin::Builtin);
        let spec = &loaded.spec;
        assert!(
            spec.tests.len() >= 2,
            "built-in mapping `{name}` ships {} fixtures",
            spec.tests.len()
        );
        // A filter that cannot drop anything needs no such fixture: Kenjo's statuses are all
        // kept (whether `inactive` is a pre-hire or a leaver is the directory's call).
        let can_drop = !spec.filter.exclude.is_empty()
            || spec
                .fields
                .status
                .as_ref()
                .is_some_and(|m| m.spec().values.values().any(|v| v == "terminated"));
        assert!(
            !can_drop || spec.tests.iter().any(|t| t.excluded),
            "built-in mapping `{name}` has no fixture for a record the filter drops"
        );
        let mapper = Mapper::from_spec(spec);
        for t in &spec.tests {
            count += 1;
            let outcome = fixture::check(&mapper, t);
            if !outcome.passed() {
                failures.push(format!(
                    "{name}: {}\n  {}",
                    t.name,
                    outcome.failures.join("\n  ")
                ));
            }
            // A kept fixture maps without data problems at all.
            if !t.excluded {
                match mapper.map(&t.record) {
                    Mapped::Kept(p) => assert!(
                        p.problems.is_empty(),
                        "{name}: {}: {:?}",
                        t.name,
                        p.problems
                    ),
                    other => panic!("{name}: {}: {other:?}", t.name),
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(count >= 12, "{count} fixtures");
}

/// The fingerprint is a pure function of the mapping: the same config loaded twice gives the
/// same value, and a source override changes it.
#[test]
fn fingerprints_are_stable_across_loads_and_follow_overrides() {
    let full = repo().join("examples/full");
    let fps = |cfg: &roster::config::Config| -> Vec<u64> {
        cfg.sources
            .iter()
            .map(|p| Mapper::new(p, &cfg.mappings[&p.mapping].spec).fingerprint())
            .collect()
    };
    let a = fps(&load(&full).unwrap());
    assert_eq!(a, fps(&load(&full).unwrap()));
    let cfg = load(&full).unwrap();
    let personio = cfg.sources.iter().find(|s| s.name == "personio").unwrap();
    // examples/full overrides personio's birth_date.
    assert_ne!(
        Mapper::new(personio, &cfg.mappings["personio"].spec).fingerprint(),
        Mapper::from_spec(&cfg.mappings["personio"].spec).fingerprint()
    );
}
