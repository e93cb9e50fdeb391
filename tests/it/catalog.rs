//! The built-in catalog: every provider has a mapping of the same name, and a source that
//! gives nothing but the credentials and settings the provider declares validates cleanly.

use std::fmt::Write as _;

use roster::config::{builtin_mappings, builtin_providers};

use crate::load;

#[test]
fn every_builtin_provider_works_from_credentials_alone() {
    let mut roster = String::from("time_zone: UTC\nsources:\n");
    let tmp = tempfile::tempdir().unwrap();
    let providers = builtin_providers();
    assert!(
        providers.len() >= 6,
        "catalog has {} providers",
        providers.len()
    );
    for (name, text) in providers {
        assert!(
            builtin_mappings().iter().any(|(m, _)| m == name),
            "built-in provider `{name}` has no mapping of the same name"
        );
        let spec: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        writeln!(roster, "  {name}:\n    provider: {name}\n    credentials:").unwrap();
        for (cred, decl) in spec["credentials"].as_mapping().into_iter().flatten() {
            let cred = cred.as_str().unwrap();
            if decl["secret"].as_bool() == Some(false) {
                writeln!(roster, "      {cred}: not-a-secret").unwrap();
            } else {
                writeln!(
                    roster,
                    "      {cred}: {{env: SECRET_{}}}",
                    cred.to_uppercase()
                )
                .unwrap();
            }
        }
        let required: Vec<&str> = spec["settings"]
            .as_mapping()
            .into_iter()
            .flatten()
            .filter(|(_, decl)| decl["default"].is_null())
            .map(|(k, _)| k.as_str().unwrap())
            .collect();
        if !required.is_empty() {
            writeln!(roster, "    settings:").unwrap();
            for setting in required {
                writeln!(roster, "      {setting}: acme").unwrap();
            }
        }
    }
    std::fs::write(tmp.path().join("roster.yaml"), &roster).unwrap();
    let cfg = load(tmp.path()).unwrap_or_else(|d| panic!("{roster}\n{}", d.render()));
    assert_eq!(cfg.sources.len(), providers.len());
    assert!(
        cfg.warnings.sorted().is_empty(),
        "{}",
        cfg.warnings.render()
    );
}
