//! The real `roster` binary: exit codes, output format, the schema command.

use std::process::Command;

use crate::repo;

/// Runs the real binary with `args` (and no `ROSTER_CONFIG` from the environment); returns
/// its exit code, stdout and stderr.
pub fn roster(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(args)
        .env_remove("ROSTER_CONFIG")
        .output()
        .expect("run roster");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn validate_a_valid_config_exits_0_with_a_summary() {
    let dir = repo().join("tests/fixtures/valid-base");
    let (code, out, _) = roster(&["validate", "--config", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("ok: 1 source (hr), 1 webhook, 1 trigger;"),
        "{out}"
    );
}

#[test]
fn validate_an_invalid_config_exits_78_with_located_errors() {
    let dir = repo().join("tests/fixtures/invalid/unknown-nested-key");
    let (code, out, _) = roster(&["validate", "--config", dir.to_str().unwrap()]);
    assert_eq!(code, 78, "{out}");
    let first = out.lines().next().unwrap();
    assert!(
        first.ends_with("roster.yaml:5:5: error: sources.hr.shedule: unknown key `shedule` (help: did you mean `schedule`?)"),
        "{first}"
    );
    assert!(out.ends_with("; the config is not valid\n"), "{out}");
}

#[test]
fn validate_json_output_for_bots() {
    let dir = repo().join("tests/fixtures/invalid/unknown-time-zone");
    let (code, out, _) = roster(&[
        "validate",
        "--format",
        "json",
        "--config",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 78);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"], 1);
    let d = &v["diagnostics"][0];
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(1), Some(12))
    );
    assert_eq!(d["key_path"], "time_zone");
    assert_eq!(d["help"], "did you mean `Europe/Berlin`?");
}

#[test]
fn validate_accepts_the_deployment_file_itself() {
    let file = repo().join("tests/fixtures/valid-base/roster.yaml");
    let (code, out, _) = roster(&["validate", "-c", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn check_secrets_reports_missing_ones_without_values() {
    let dir = repo().join("tests/fixtures/valid-base");
    let (code, out, _) = roster(&[
        "validate",
        "--check-secrets",
        "--config",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("sources.hr.credentials.api_key: cannot read secret: environment variable `HR_API_KEY` is not set"), "{out}");
    assert!(
        out.contains(
            "webhooks.it.secret: cannot read secret: environment variable `IT_SECRET` is not set"
        ),
        "{out}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args([
            "validate",
            "--check-secrets",
            "--config",
            dir.to_str().unwrap(),
        ])
        .env("HR_API_KEY", "k-CANARY")
        .env("IT_SECRET", "whsec_CANARY")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(!stdout.contains("CANARY"));
}

#[test]
fn schema_command_prints_draft_07() {
    for kind in ["deployment", "provider", "mapping"] {
        let (code, out, _) = roster(&["schema", kind]);
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["$schema"], "http://json-schema.org/draft-07/schema#");
    }
    let (code, _, err) = roster(&["schema", "deploymnt"]);
    assert_eq!(code, 2);
    assert!(err.contains("deployment"), "{err}");
}

/// Issue 15.7/15.8: `sync --now --allow-removals` is a valid request (it used to be refused by
/// the argument parser), and without a daemon the message names every address tried and where
/// it came from, and the address file looked for.
#[test]
fn sync_now_allow_removals_without_a_daemon_lists_what_it_tried() {
    let dir = tempfile::tempdir().unwrap();
    let base = repo().join("tests/fixtures/valid-base");
    let copy = Command::new("cp")
        .arg("-r")
        .arg(base.join("."))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(copy.success());
    let refusing = crate::ports::RefusingPort::new();
    let port = refusing.port();
    let yaml = std::fs::read_to_string(dir.path().join("roster.yaml")).unwrap();
    std::fs::write(
        dir.path().join("roster.yaml"),
        format!("{yaml}store:\n  state_dir: state\nadmin:\n  listen: 127.0.0.1:{port}\n"),
    )
    .unwrap();
    let config = dir.path().to_str().unwrap();
    let (code, _, err) = roster(&[
        "sync",
        "--now",
        "--allow-removals",
        "-s",
        "hr",
        "-c",
        config,
    ]);
    assert_eq!(code, 69, "{err}");
    assert!(
        err.contains(&format!(
            "no roster daemon answers on 127.0.0.1:{port} (admin.listen in roster.yaml"
        )),
        "{err}"
    );
    let addr_file = dir.path().join("state/admin.addr");
    assert!(
        err.contains(&format!("no address file at {}", addr_file.display())),
        "{err}"
    );

    // A stale address file (a daemon killed without a clean stop) is tried first, then
    // admin.listen.
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let stale_port = crate::ports::RefusingPort::new();
    let stale = stale_port.port();
    std::fs::write(&addr_file, format!("127.0.0.1:{stale}\n")).unwrap();
    let (code, _, err) = roster(&["sync", "--now", "-c", config]);
    assert_eq!(code, 69, "{err}");
    assert!(
        err.contains(&format!(
            "no roster daemon answers on 127.0.0.1:{stale} (from {}",
            addr_file.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(", nor on 127.0.0.1:{port} (admin.listen")),
        "{err}"
    );
}
