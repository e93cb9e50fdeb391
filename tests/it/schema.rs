//! The JSON Schemas: generated from the config types, committed in examples/schema/ for
//! editors, every property described, and every example and built-in catalog file valid
//! against them by an independent JSON Schema implementation (the `jsonschema` crate), which
//! also proves the schemas are well-formed draft-07.

use roster::config::schema::{FileKind, schema, to_pretty, undescribed_properties};
use roster::config::yaml;

use crate::{load, repo};

#[test]
fn committed_schemas_match_the_config_types() {
    for kind in FileKind::ALL {
        let path = repo().join(format!("examples/schema/{}.schema.json", kind.name()));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != to_pretty(kind) {
            if std::env::var_os("ROSTER_UPDATE_SCHEMAS").is_some() {
                std::fs::write(&path, to_pretty(kind)).unwrap();
            } else {
                panic!(
                    "{} is out of date; regenerate with `ROSTER_UPDATE_SCHEMAS=1 cargo test --test it schema`",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn the_committed_webhook_payload_schema_matches_the_event_types() {
    let path = repo().join("examples/schema/events.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let current = roster::cli::schema::events_schema();
    if committed != current {
        if std::env::var_os("ROSTER_UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, current).unwrap();
        } else {
            panic!(
                "{} is out of date; regenerate with `ROSTER_UPDATE_SCHEMAS=1 cargo test --test it schema`",
                path.display()
            );
        }
    }
}

#[test]
fn every_schema_property_has_a_description() {
    for kind in FileKind::ALL {
        let missing = undescribed_properties(kind);
        assert!(
            missing.is_empty(),
            "{} schema: no description for {missing:#?}",
            kind.name()
        );
    }
}

fn validator(kind: FileKind) -> jsonschema::Validator {
    jsonschema::draft7::new(schema(kind)).expect("a valid draft-07 schema")
}

fn assert_valid(kind: FileKind, path: &std::path::Path, text: &str) {
    let first = text.lines().next().unwrap_or_default();
    let parsed = yaml::parse(text);
    assert!(
        parsed.problems.is_empty(),
        "{}: {:?}",
        path.display(),
        parsed.problems
    );
    let json = parsed.root.unwrap().to_json();
    let errors: Vec<String> = validator(kind)
        .iter_errors(&json)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{} is not valid against the {} schema: {errors:#?}",
        path.display(),
        kind.name()
    );
    assert!(
        first.starts_with("# yaml-language-server: $schema="),
        "{} must start with a yaml-language-server modeline, found {first:?}",
        path.display()
    );
}

fn yaml_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    out.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "yaml"));
    out.sort();
    out
}

#[test]
fn examples_and_catalog_are_valid_against_the_schema() {
    let root = repo();
    let mut checked = 0;
    for example in ["examples/minimal", "examples/full"] {
        let dir = root.join(example);
        for (sub, kind) in [
            (".", FileKind::Deployment),
            ("providers", FileKind::Provider),
            ("mappings", FileKind::Mapping),
        ] {
            for path in yaml_files(&dir.join(sub)) {
                assert_valid(kind, &path, &std::fs::read_to_string(&path).unwrap());
                checked += 1;
            }
        }
    }
    for (sub, kind) in [
        ("providers", FileKind::Provider),
        ("mappings", FileKind::Mapping),
    ] {
        for path in yaml_files(&root.join(sub)) {
            assert_valid(kind, &path, &std::fs::read_to_string(&path).unwrap());
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} files checked");
}

#[test]
fn examples_load_through_the_pipeline_without_warnings() {
    for example in ["examples/minimal", "examples/full"] {
        let cfg =
            load(&repo().join(example)).unwrap_or_else(|d| panic!("{example}:\n{}", d.render()));
        assert!(
            cfg.warnings.sorted().is_empty(),
            "{example}:\n{}",
            cfg.warnings.render()
        );
        assert!(!cfg.sources.is_empty());
    }
}

#[test]
fn the_schema_and_the_checker_agree_on_every_mistake_fixture() {
    // What the independent validator rejects, Roster's checker must reject too (the
    // reverse does not hold: Roster checks references and formats the schema cannot).
    let dir = repo().join("tests/fixtures/invalid");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let fixture = entry.unwrap().path();
        for (file, kind) in [
            ("roster.yaml", FileKind::Deployment),
            ("providers/hr.yaml", FileKind::Provider),
            ("mappings/hr.yaml", FileKind::Mapping),
        ] {
            let Ok(text) = std::fs::read_to_string(fixture.join(file)) else {
                continue;
            };
            let parsed = yaml::parse(&text);
            let Some(root) = parsed.root else { continue };
            let independent = validator(kind).is_valid(&root.to_json());
            let ours = roster::config::check::check(schema(kind), &root).is_empty();
            assert!(
                independent || !ours,
                "{}/{file}: jsonschema rejects it but Roster's checker accepts it",
                fixture.display()
            );
        }
    }
}
