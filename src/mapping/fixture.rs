//! Mapping fixtures (`tests:` in a mapping file): a provider record and the person it must
//! map to, or `excluded: true` for a record the filter must drop. `roster test` runs them;
//! so does the test suite for the built-in catalog.
//!
//! `expect` lists canonical fields by name and custom fields as `custom.NAME`; fields not
//! listed are not checked. Canonical values compare as canonical text (dates as
//! `"YYYY-MM-DD"`, `1042` matches `"1042"`); custom values compare as typed JSON; `null`
//! expects an empty field. The status is the one the mapping yields: when it maps none, the
//! store derives one from the dates, which depends on the day and is not a mapping's to pin
//! (such fixtures expect `status: null`). A field listed in `expect` that has a data problem fails
//! the fixture even when the expected value is `null`: the fixture pins that a value reads as
//! "empty", not as an error. With `excluded: true`, `expect` checks the fields of the dropped
//! record.

use serde_json::Value;

use super::{Mapped, MappedPerson, Mapper};
use crate::config::mapping::MappingTest;
use crate::config::person::Field;

/// What running one fixture found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FixtureOutcome {
    /// Why the fixture fails, one line each (`job_title: expected "CTO", got "cto"`); empty
    /// when it passes.
    pub failures: Vec<String>,
    /// Data problems in fields the fixture does not check: shown, not failed.
    pub notes: Vec<String>,
}

impl FixtureOutcome {
    /// True when the record mapped as expected.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs one fixture.
pub fn check(mapper: &Mapper, test: &MappingTest) -> FixtureOutcome {
    let mut out = FixtureOutcome::default();
    match (mapper.map(&test.record), test.excluded) {
        (Mapped::Excluded { reason, .. }, false) => out
            .failures
            .push(format!("the filter drops it ({reason}); expected it kept")),
        (Mapped::Excluded { .. }, true) => {}
        (Mapped::Kept(p), true) => out.failures.push(format!(
            "expected the filter to drop it, but it is kept with status {}",
            p.get(Field::status).map_or_else(
                || "empty (the filter's `statuses` apply to a mapped status only)".to_string(),
                |s| format!("`{s}`")
            )
        )),
        (Mapped::Failed { .. }, true) => out
            .failures
            .push("expected the filter to drop it, but it fails to map (a data problem)".into()),
        (Mapped::Kept(_) | Mapped::Failed { .. }, false) => {}
    }
    let Some(expect) = &test.expect else {
        return out;
    };
    let p = match mapper.map_unfiltered(&test.record) {
        Mapped::Kept(p) => p,
        Mapped::Failed { errors, .. } => {
            out.failures
                .push("it fails to map, so it would be reported as a data problem:".into());
            out.failures.extend(errors.iter().map(|e| format!("  {e}")));
            return out;
        }
        Mapped::Excluded { .. } => return out,
    };
    for (key, want) in expect {
        if let Some(line) = compare(&p, key, want) {
            out.failures.push(line);
        }
    }
    out.notes = p
        .problems
        .iter()
        .filter(|e| !expect.contains_key(&e.field))
        .map(|e| format!("data problem in {e}"))
        .collect();
    out
}

/// One expected field against the mapped person: `None` when it matches.
fn compare(p: &MappedPerson, key: &str, want: &Value) -> Option<String> {
    let got = if let Some(f) = Field::from_name(key) {
        p.get(f).map(|s| Value::String(s.to_string()))
    } else if let Some(name) = key.strip_prefix("custom.") {
        p.custom.get(name).cloned()
    } else {
        return Some(format!("{key}: not a field of the person"));
    };
    if let Some(problem) = p.problems.iter().find(|e| e.field == key) {
        return Some(format!(
            "{key}: expected {want}, got a data problem: {}",
            problem.message
        ));
    }
    let canonical = Field::from_name(key).is_some();
    let matches = match (&got, want) {
        (None, Value::Null) => true,
        (Some(g), w) if g == w => true,
        // Canonical values are text: `employee_id: 1042` expects "1042".
        (Some(Value::String(g)), Value::Number(_) | Value::Bool(_)) if canonical => {
            let text = want.to_string();
            *g == text
        }
        _ => false,
    };
    (!matches).then(|| {
        format!(
            "{key}: expected {want}, got {}",
            got.as_ref()
                .map_or_else(|| "null".to_string(), Value::to_string)
        )
    })
}
