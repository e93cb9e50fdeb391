//! Unit tests of the mapping engine: one table per rule of the contract.

use serde_json::{Value, json};

use super::*;
use crate::config::mapping::MappingSpec;

/// A mapping spec from YAML (provider and stream added).
fn spec(yaml: &str) -> MappingSpec {
    serde_yaml::from_str(&format!("provider: p\nstream: s\n{yaml}"))
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn mapper(yaml: &str) -> Mapper {
    Mapper::from_spec(&spec(yaml))
}

fn kept(m: Mapped) -> MappedPerson {
    match m {
        Mapped::Kept(p) => p,
        other => panic!("expected Kept, got {other:?}"),
    }
}

/// A mapper with `limits.max_field_bytes` set.
fn mapper_with_limit(yaml: &str, max_field_bytes: u64) -> Mapper {
    let s = spec(yaml);
    let limits = LimitsPlan {
        max_field_bytes,
        ..LimitsPlan::default()
    };
    Mapper::build(&s.fields, &s.custom, &s.filter, limits)
}

/// The mapping of `check`: `work_email: $.email` plus `target: <field>`.
fn target_yaml(target: &str, field: &str) -> String {
    match target.strip_prefix("custom.") {
        Some(name) => format!("fields:\n  work_email: $.email\ncustom:\n  {name}: {field}\n"),
        None if target == "work_email" => format!("fields:\n  work_email: {field}\n"),
        None => format!("fields:\n  work_email: $.email\n  {target}: {field}\n"),
    }
}

/// Maps `record` (with a valid `email` added unless it has one) through a mapping of
/// `work_email: $.email` plus `target: <field>` (a canonical name or `custom.NAME`). Returns
/// the field's value (canonical as a JSON string, custom as typed JSON) or its error.
///
/// Checks on every call that a problem and a failed field go together: the target is in
/// `failed`/`failed_custom` exactly when it has a problem, and its value is then empty.
fn check(target: &str, field: &str, record: Value) -> Result<Option<Value>, String> {
    check_with(&mapper(&target_yaml(target, field)), target, record)
}

/// `check` with a given mapper.
fn check_with(m: &Mapper, target: &str, mut record: Value) -> Result<Option<Value>, String> {
    if let Some(o) = record.as_object_mut() {
        o.entry("email").or_insert(json!("ada@example.com"));
    }
    match m.map_unfiltered(&record) {
        Mapped::Kept(p) => {
            let failed = match target.strip_prefix("custom.") {
                Some(n) => p.failed_custom.iter().any(|f| f == n),
                None => p.has_failed(Field::from_name(target).unwrap()),
            };
            let value = match target.strip_prefix("custom.") {
                Some(n) => p.custom.get(n).cloned(),
                None => p.get(Field::from_name(target).unwrap()).map(|s| json!(s)),
            };
            let problem = p.problems.iter().find(|e| e.field == target);
            assert_eq!(failed, problem.is_some(), "{target}: {p:?}");
            assert_eq!(
                p.problems.len(),
                p.failed.len() + p.failed_custom.len(),
                "{p:?}"
            );
            match problem {
                Some(e) => {
                    assert_eq!(value, None, "{target}: a failed field is empty");
                    Err(e.message.clone())
                }
                None => Ok(value),
            }
        }
        Mapped::Failed { errors, .. } => Err(errors[0].message.clone()),
        Mapped::Excluded { .. } => unreachable!(),
    }
}

fn ok(v: Value) -> Result<Option<Value>, String> {
    Ok(Some(v))
}

fn err_contains(r: Result<Option<Value>, String>, needle: &str) {
    match r {
        Err(e) => assert!(e.contains(needle), "`{e}` does not contain `{needle}`"),
        Ok(v) => panic!("expected an error containing `{needle}`, got {v:?}"),
    }
}

#[test]
fn paths_take_the_first_match_and_null_is_no_value() {
    let r = json!({"a": {"b": "x"}, "n": null, "list": [{"v": 1}, {"v": 2}]});
    assert_eq!(check("job_title", "$.a.b", r.clone()), ok(json!("x")));
    assert_eq!(check("job_title", "$.n", r.clone()), Ok(None));
    assert_eq!(check("job_title", "$.missing.deeper", r.clone()), Ok(None));
    assert_eq!(check("job_title", "$.list[*].v", r.clone()), ok(json!("1")));
    assert_eq!(check("job_title", "$.list[1].v", r), ok(json!("2")));
}

#[test]
fn scalars_become_text_and_objects_are_errors() {
    let r = json!({"id": 1042, "f": 12.0, "b": true, "o": {"name": "x"}, "l": [1]});
    assert_eq!(check("employee_id", "$.id", r.clone()), ok(json!("1042")));
    assert_eq!(check("job_title", "$.f", r.clone()), ok(json!("12.0")));
    assert_eq!(check("job_title", "$.b", r.clone()), ok(json!("true")));
    err_contains(
        check("department", "$.o", r.clone()),
        "`$.o` selects an object",
    );
    err_contains(check("department", "$.l", r.clone()), "a list of 1");
    // Also for a custom string field: point the path at a scalar.
    err_contains(
        check("custom.x", "$.o", r.clone()),
        "point the path at one of its fields",
    );
    // An object at a coalesce path is an error too, not silently skipped.
    err_contains(
        check("department", "{coalesce: [$.o, $.id]}", r),
        "selects an object",
    );
}

#[test]
fn transforms_apply_in_order_before_empty_values() {
    let r = json!({"t": "  Senior   Accountant "});
    for (field, want) in [
        (
            "{path: $.t, transform: [trim]}",
            ok(json!("Senior   Accountant")),
        ),
        (
            "{path: $.t, transform: [collapse_whitespace]}",
            ok(json!("Senior Accountant")),
        ),
        (
            "{path: $.t, transform: [trim, lowercase]}",
            ok(json!("senior   accountant")),
        ),
        (
            "{path: $.t, transform: [collapse_whitespace, uppercase]}",
            ok(json!("SENIOR ACCOUNTANT")),
        ),
    ] {
        assert_eq!(check("job_title", field, r.clone()), want, "{field}");
    }
    let r = json!({"blank": "  ", "na": " N/A "});
    assert_eq!(
        check(
            "job_title",
            "{path: $.blank, transform: [trim, empty_as_null]}",
            r.clone()
        ),
        Ok(None)
    );
    // empty_values compare after the transforms.
    assert_eq!(
        check(
            "job_title",
            "{path: $.na, transform: [trim], empty_values: [N/A]}",
            r.clone()
        ),
        Ok(None)
    );
    assert_eq!(
        check("job_title", "{path: $.na, empty_values: [N/A]}", r),
        ok(json!(" N/A "))
    );
}

#[test]
fn an_empty_string_is_a_value_only_for_text() {
    let r = json!({"e": ""});
    assert_eq!(check("job_title", "$.e", r.clone()), ok(json!("")));
    assert_eq!(check("start_date", "$.e", r.clone()), Ok(None));
    assert_eq!(check("manager_email", "$.e", r.clone()), Ok(None));
    assert_eq!(
        check("custom.flag", "{path: $.e, type: bool}", r.clone()),
        Ok(None)
    );
    assert_eq!(
        check(
            "worker_type",
            "{path: $.e, values: {x: employee}}",
            r.clone()
        ),
        Ok(None)
    );
    // ... unless the value map names it.
    assert_eq!(
        check("worker_type", "{path: $.e, values: {'': employee}}", r),
        ok(json!("employee"))
    );
}

#[test]
fn emails_are_trimmed_lowercased_and_checked() {
    let r = json!({"m": " Dana.Whitfield@Acme.example ", "bad": "dana at acme"});
    assert_eq!(
        check("manager_email", "$.m", r.clone()),
        ok(json!("dana.whitfield@acme.example"))
    );
    // An invalid optional email is a problem; the person is kept without it.
    let m = mapper("fields:\n  work_email: $.email\n  manager_email: $.bad\n");
    let p = kept(m.map(&json!({"email": "a@b.example", "bad": "dana at acme"})));
    assert_eq!(p.get(Field::manager_email), None);
    assert_eq!(
        p.problems,
        vec![FieldError {
            field: "manager_email".into(),
            message: "not an email address: it has no `@`".into()
        }]
    );
    assert_eq!(p.failed, vec![Field::manager_email]);
}

#[test]
fn work_email_is_always_required() {
    let m = mapper("fields:\n  employee_id: $.id\n  work_email: $.email\n");
    match m.map(&json!({"id": 7, "email": "not-an-email"})) {
        Mapped::Failed { key, email, errors } => {
            assert_eq!(key.as_deref(), Some("7"));
            assert_eq!(email, None);
            assert_eq!(errors[0].field, "work_email");
            assert_eq!(errors[0].message, "not an email address: it has no `@`");
        }
        other => panic!("{other:?}"),
    }
    match m.map(&json!({"id": 8})) {
        Mapped::Failed { key, errors, .. } => {
            assert_eq!(key.as_deref(), Some("8"));
            assert_eq!(errors[0].message, "no value at `$.email`");
        }
        other => panic!("{other:?}"),
    }
    // Without an id, the key is the email when it is valid.
    let m = mapper("fields:\n  work_email: $.email\n  start_date: {path: $.s, required: true}\n");
    match m.map(&json!({"email": "A@B.example", "s": "soon"})) {
        Mapped::Failed { key, email, errors } => {
            assert_eq!(key.as_deref(), Some("a@b.example"));
            assert_eq!(email.as_deref(), Some("a@b.example"));
            assert_eq!(errors[0].field, "start_date");
            assert!(errors[0].message.starts_with("not a date: "), "{errors:?}");
        }
        other => panic!("{other:?}"),
    }
    // A spec that does not map work_email at all (only possible unchecked) fails every record.
    let m = mapper("fields:\n  employee_id: $.id\n");
    match m.map(&json!({"id": 1})) {
        Mapped::Failed { errors, .. } => {
            assert_eq!(errors[0].to_string(), "work_email: not mapped");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn dates_keep_the_day_as_written() {
    for (value, field, want) in [
        (json!("2019-04-01"), "$.d", ok(json!("2019-04-01"))),
        (
            json!("2014-11-09T00:00:00+01:00"),
            "$.d",
            ok(json!("2014-11-09")),
        ),
        (
            json!("1990-11-10T00:00:00Z"),
            "$.d",
            ok(json!("1990-11-10")),
        ),
        (
            json!("2020-07-01T00:00:00.000Z"),
            "$.d",
            ok(json!("2020-07-01")),
        ),
        (json!("2022-05-10T00:00:00"), "$.d", ok(json!("2022-05-10"))),
        (
            json!("2014-11-09T23:59:59-10:00"),
            "$.d",
            ok(json!("2014-11-09")),
        ),
        (
            json!("01.02.2024"),
            "{path: $.d, date_format: '%d.%m.%Y'}",
            ok(json!("2024-02-01")),
        ),
        (
            json!("2024-02-01"),
            "{path: $.d, date_format: '%d.%m.%Y'}",
            ok(json!("2024-02-01")),
        ),
        // Time parts are read and dropped: the date stays as written.
        (
            json!("01.02.2024 23:30"),
            "{path: $.d, date_format: '%d.%m.%Y %H:%M'}",
            ok(json!("2024-02-01")),
        ),
        (
            json!("02/29/2024 11:59 PM"),
            "{path: $.d, date_format: '%m/%d/%Y %I:%M %p'}",
            ok(json!("2024-02-29")),
        ),
        (
            json!("0000-00-00"),
            "{path: $.d, empty_values: ['0000-00-00']}",
            Ok(None),
        ),
        (json!(null), "$.d", Ok(None)),
    ] {
        assert_eq!(
            check("start_date", field, json!({"d": value})),
            want,
            "{value}"
        );
    }
    err_contains(
        check(
            "start_date",
            "{path: $.d, date_format: '%d/%m/%Y'}",
            json!({"d": "31/02/2024"}),
        ),
        "not a valid date for format %d/%m/%Y (a day that does not exist in that month?)",
    );
    err_contains(
        check("start_date", "$.d", json!({"d": "0000-00-00"})),
        "add the provider's text for it to `empty_values`",
    );
    err_contains(
        check("start_date", "$.d", json!({"d": 20240101})),
        "not a date: expected YYYY-MM-DD",
    );
    // Custom dates are dates too, stored as text.
    assert_eq!(
        check(
            "custom.renewal",
            "{path: $.d, type: date}",
            json!({"d": "2025-06-13T00:00:00+02:00"})
        ),
        ok(json!("2025-06-13"))
    );
}

#[test]
fn enums_go_through_the_value_map() {
    let status = "{path: $.s, values: {onboarding: pre_hire, active: active, leave: on_leave}}";
    assert_eq!(
        check("status", status, json!({"s": "onboarding"})),
        ok(json!("pre_hire"))
    );
    // unmapped: error is the default for enums.
    let e = check("status", status, json!({"s": "probation"})).unwrap_err();
    assert_eq!(
        e,
        "not in `values` (it has `onboarding`, `active`, `leave`); add the provider's value there (`roster fetch SOURCE` shows the record), or set `unmapped: keep` or `unmapped: default`"
    );
    // Matching is exact, after the transforms.
    assert!(check("status", status, json!({"s": "Active"})).is_err());
    assert_eq!(
        check(
            "status",
            "{path: $.s, transform: [trim, lowercase], values: {active: active}}",
            json!({"s": " Active "})
        ),
        ok(json!("active"))
    );
    // unmapped: default.
    let wt = "{path: $.t, values: {Contractor: contractor}, unmapped: default, default: employee}";
    assert_eq!(
        check("worker_type", wt, json!({"t": "Contractor"})),
        ok(json!("contractor"))
    );
    assert_eq!(
        check("worker_type", wt, json!({"t": "Temporary"})),
        ok(json!("employee"))
    );
    // ... and when the path yields nothing.
    assert_eq!(check("worker_type", wt, json!({})), ok(json!("employee")));
    // unmapped: keep still has to end in a canonical value.
    let keep = "{path: $.t, values: {W2: employee}, unmapped: keep}";
    assert_eq!(
        check("worker_type", keep, json!({"t": "contractor"})),
        ok(json!("contractor"))
    );
    err_contains(
        check("worker_type", keep, json!({"t": "1099"})),
        "not an allowed value (expected employee, contractor); map the provider's value with `values:`",
    );
    // Without a value map the value must already be canonical (a constant, typically).
    assert_eq!(
        check("worker_type", "{value: contractor}", json!({})),
        ok(json!("contractor"))
    );
    err_contains(
        check("worker_type", "$.t", json!({"t": "W2"})),
        "not an allowed value",
    );
    // Booleans and numbers are looked up by their text (Kenjo's isActive).
    let active = "{path: $.a, values: {'true': active, 'false': terminated}}";
    assert_eq!(
        check("status", active, json!({"a": true})),
        ok(json!("active"))
    );
    assert_eq!(
        check("status", active, json!({"a": false})),
        ok(json!("terminated"))
    );
    // A custom enum takes any mapped value.
    assert_eq!(
        check(
            "custom.level",
            "{path: $.l, type: enum, values: {'1': junior, '2': senior}}",
            json!({"l": 2})
        ),
        ok(json!("senior"))
    );
}

#[test]
fn value_maps_apply_to_text_and_keep_unknown_values_by_default() {
    let f = "{path: $.d, values: {ENG: Engineering}}";
    assert_eq!(
        check("department", f, json!({"d": "ENG"})),
        ok(json!("Engineering"))
    );
    assert_eq!(
        check("department", f, json!({"d": "Sales"})),
        ok(json!("Sales"))
    );
    err_contains(
        check(
            "department",
            "{path: $.d, values: {ENG: Engineering}, unmapped: error}",
            json!({"d": "Sales"}),
        ),
        "not in `values` (it has `ENG`)",
    );
}

#[test]
fn long_value_maps_are_summarised_in_messages() {
    let f = "{path: $.s, values: {a: active, b: active, c: active, d: active, e: active, f: active, g: active, h: active}}";
    let e = check("status", f, json!({"s": "z"})).unwrap_err();
    assert!(e.contains("`f`, ... (8 in all)"), "{e}");
    assert!(!e.contains("`g`"), "{e}");
}

#[test]
fn booleans_and_integers() {
    for (v, want) in [
        (json!(true), ok(json!(true))),
        (json!("yes"), ok(json!(true))),
        (json!("1"), ok(json!(true))),
        (json!(1), ok(json!(true))),
        (json!("false"), ok(json!(false))),
        (json!(0), ok(json!(false))),
        (json!(null), Ok(None)),
    ] {
        assert_eq!(
            check("custom.flag", "{path: $.v, type: bool}", json!({"v": v})),
            want,
            "{v}"
        );
    }
    err_contains(
        check(
            "custom.flag",
            "{path: $.v, type: bool}",
            json!({"v": "maybe"}),
        ),
        "yes/no",
    );
    for (v, want) in [
        (json!(1042), ok(json!(1042))),
        (json!("17"), ok(json!(17))),
        (json!(12.0), ok(json!(12))),
        (json!(-3), ok(json!(-3))),
    ] {
        assert_eq!(
            check("custom.n", "{path: $.v, type: int}", json!({"v": v})),
            want,
            "{v}"
        );
    }
    err_contains(
        check("custom.n", "{path: $.v, type: int}", json!({"v": 1.5})),
        "not a whole number",
    );
    // A value map can feed a typed field.
    assert_eq!(
        check(
            "custom.flag",
            "{path: $.v, type: bool, values: {Y: 'true', N: 'false'}}",
            json!({"v": "N"})
        ),
        ok(json!(false))
    );
}

#[test]
fn templates_fill_from_other_fields() {
    let m = mapper(
        "fields:
  first_name: {path: $.f, transform: [trim]}
  last_name: $.l
  display_name: {template: '{first_name} {last_name}'}
  work_email: $.email
custom:
  # A template over a template, declared before the field it uses.
  signature: {template: '{display_name} <{work_email}> {team_size}'}
  team_size: {path: $.n, type: int}
  is_lead: {path: $.lead, type: bool}
  badge: {template: '{last_name}-{is_lead}'}
",
    );
    let p = kept(m.map(
        &json!({"f": " Ada ", "l": "Lovelace", "email": "ADA@x.example", "n": 3, "lead": "yes"}),
    ));
    assert_eq!(p.get(Field::display_name), Some("Ada Lovelace"));
    assert_eq!(
        p.custom["signature"],
        json!("Ada Lovelace <ada@x.example> 3")
    );
    assert_eq!(p.custom["badge"], json!("Lovelace-true"));

    // A missing part: the result is trimmed.
    let p = kept(m.map(&json!({"f": "Ada", "email": "a@x.example"})));
    assert_eq!(p.get(Field::display_name), Some("Ada"));
    // All parts empty: the template yields nothing.
    let p = kept(m.map(&json!({"f": "  ", "l": "", "email": "a@x.example"})));
    assert_eq!(p.get(Field::display_name), None);
}

#[test]
fn a_template_with_nothing_to_fill_takes_the_default() {
    let m = mapper(
        "fields:
  work_email: $.email
  first_name: $.f
  display_name: {template: '{first_name}', default: Unknown, transform: [uppercase]}
",
    );
    let p = kept(m.map(&json!({"email": "a@x.example"})));
    assert_eq!(p.get(Field::display_name), Some("Unknown"));
    let p = kept(m.map(&json!({"email": "a@x.example", "f": "Ada"})));
    assert_eq!(p.get(Field::display_name), Some("ADA"));
}

#[test]
fn coalesce_takes_the_first_non_empty_value() {
    let f = "{coalesce: [$.a, $.b, $.c], transform: [trim], empty_values: ['0000-00-00']}";
    assert_eq!(
        check("end_date", f, json!({"a": null, "b": "2026-12-31"})),
        ok(json!("2026-12-31"))
    );
    assert_eq!(
        check(
            "end_date",
            f,
            json!({"a": "0000-00-00", "b": " ", "c": "2025-06-30"})
        ),
        ok(json!("2025-06-30"))
    );
    assert_eq!(
        check("end_date", f, json!({"b": "2026-12-31", "c": "2025-06-30"})),
        ok(json!("2026-12-31"))
    );
    assert_eq!(check("end_date", f, json!({})), Ok(None));
    // Filter paths work inside coalesce (Justworks' typed emails).
    let email = "{coalesce: [\"$.emails[?@.type == 'WORK'].address\", \"$.emails[?@.type == 'work'].address\"]}";
    assert_eq!(
        check(
            "work_email",
            email,
            json!({"emails": [{"type": "work", "address": "M@x.example"}]})
        ),
        ok(json!("m@x.example"))
    );
    err_contains(
        check("work_email", email, json!({"emails": []})),
        "no value at any of",
    );
}

#[test]
fn latest_reads_the_candidate_with_the_greatest_date() {
    let f = "{latest: {among: \"$.jobs[*]\", by: $.since}, path: $.title}";
    let title = |jobs: Value| check("job_title", f, json!({ "jobs": jobs }));
    // Merge does not order employments: the newest wins wherever it is.
    assert_eq!(
        title(json!([
            {"title": "Old", "since": "2019-01-01T00:00:00Z"},
            {"title": "New", "since": "2023-05-01T00:00:00Z"},
            {"title": "Middle", "since": "2021-03-01"}
        ])),
        ok(json!("New"))
    );
    // A date-time counts by its calendar date as written (no shift to UTC), then its text.
    assert_eq!(
        title(json!([
            {"title": "Evening", "since": "2023-05-01T23:00:00-05:00"},
            {"title": "Next day", "since": "2023-05-02T01:00:00+02:00"}
        ])),
        ok(json!("Next day"))
    );
    assert_eq!(
        title(json!([
            {"title": "Morning", "since": "2023-05-01T08:00:00Z"},
            {"title": "Noon", "since": "2023-05-01T12:00:00Z"}
        ])),
        ok(json!("Noon"))
    );
    // Equal dates: the first in the record's order.
    assert_eq!(
        title(json!([
            {"title": "First", "since": "2023-05-01"},
            {"title": "Second", "since": "2023-05-01"}
        ])),
        ok(json!("First"))
    );
    // Missing and unreadable dates rank below every date; with no date at all, the first.
    assert_eq!(
        title(json!([
            {"title": "Undated"},
            {"title": "Garbage", "since": "soon"},
            {"title": "Dated", "since": "2001-01-01"},
            {"title": "Null", "since": null}
        ])),
        ok(json!("Dated"))
    );
    assert_eq!(
        title(json!([{"title": "A"}, {"title": "B", "since": "n/a"}])),
        ok(json!("A"))
    );
    // No candidates: no value, and the default applies.
    assert_eq!(title(json!([])), Ok(None));
    assert_eq!(check("job_title", f, json!({})), Ok(None));
    assert_eq!(
        check(
            "job_title",
            "{latest: {among: \"$.jobs[*]\", by: $.since}, path: $.title, default: Unknown}",
            json!({"jobs": []})
        ),
        ok(json!("Unknown"))
    );
    // The picked candidate's field empty: no value (not another candidate's).
    assert_eq!(
        title(json!([
            {"title": "Old", "since": "2019-01-01"},
            {"since": "2023-01-01"}
        ])),
        Ok(None)
    );
    // coalesce reads the picked candidate too; value maps and types apply as usual.
    let wt = "{latest: {among: \"$.jobs[*]\", by: $.since}, coalesce: [$.kind, $.type], values: {FULL_TIME: employee, CONTRACTOR: contractor}}";
    assert_eq!(
        check(
            "worker_type",
            wt,
            json!({"jobs": [
                {"kind": "CONTRACTOR", "since": "2020-01-01"},
                {"type": "FULL_TIME", "since": "2022-01-01"}
            ]})
        ),
        ok(json!("employee"))
    );
    err_contains(
        check(
            "worker_type",
            wt,
            json!({"jobs": [{"kind": "SEASONAL", "since": "2020-01-01"}]}),
        ),
        "not in `values`",
    );
    // Candidates may be selected by a filter path.
    assert_eq!(
        check(
            "job_title",
            "{latest: {among: \"$.jobs[?@.active == true]\", by: $.since}, path: $.title}",
            json!({"jobs": [
                {"title": "Inactive", "since": "2024-01-01", "active": false},
                {"title": "Active", "since": "2020-01-01", "active": true}
            ]})
        ),
        ok(json!("Active"))
    );
}

#[test]
fn latest_is_part_of_the_fingerprint() {
    let a = mapper("fields:\n  work_email: $.email\n  job_title: {path: $.title}\n");
    let b = mapper(
        "fields:\n  work_email: $.email\n  job_title: {path: $.title, latest: {among: \"$.jobs[*]\", by: $.since}}\n",
    );
    assert_ne!(a.fingerprint(), b.fingerprint());
}

#[test]
fn defaults_apply_when_nothing_is_yielded() {
    assert_eq!(
        check("office", "{path: $.o, default: Remote}", json!({})),
        ok(json!("Remote"))
    );
    assert_eq!(
        check("office", "{path: $.o, default: Remote}", json!({"o": null})),
        ok(json!("Remote"))
    );
    assert_eq!(
        check(
            "office",
            "{path: $.o, default: Remote}",
            json!({"o": "Berlin"})
        ),
        ok(json!("Berlin"))
    );
    // A default is typed but not transformed.
    assert_eq!(
        check(
            "office",
            "{path: $.o, default: remote, transform: [uppercase]}",
            json!({})
        ),
        ok(json!("remote"))
    );
    assert_eq!(
        check("end_date", "{path: $.e, default: '2099-12-31'}", json!({})),
        ok(json!("2099-12-31"))
    );
    assert_eq!(
        check("custom.n", "{path: $.n, type: int, default: 0}", json!({})),
        ok(json!(0))
    );
    // A default-only field.
    assert_eq!(check("office", "{default: HQ}", json!({})), ok(json!("HQ")));
}

#[test]
fn constants() {
    assert_eq!(
        check("legal_entity", "{value: Acme GmbH}", json!({})),
        ok(json!("Acme GmbH"))
    );
    assert_eq!(
        check("custom.n", "{value: 5, type: int}", json!({})),
        ok(json!(5))
    );
    assert_eq!(
        check("custom.b", "{value: true, type: bool}", json!({})),
        ok(json!(true))
    );
}

/// No problem message shows the provider's value, whatever the kind of failure: messages
/// reach logs and `data_problems`, and a value is personal data.
#[test]
fn problems_never_show_the_value() {
    const SECRET: &str = "Zq9Privat";
    for (target, field, value) in [
        ("manager_email", "$.v", format!("{SECRET} at example")),
        ("manager_email", "$.v", format!("{SECRET}@@example.com")),
        ("start_date", "$.v", SECRET.to_string()),
        (
            "start_date",
            "{path: $.v, date_format: '%d.%m.%Y'}",
            SECRET.to_string(),
        ),
        ("birth_date", "$.v", "1987-02-30".to_string()),
        (
            "birth_date",
            "{path: $.v, date_format: '%d.%m.%Y'}",
            "30.02.1987".to_string(),
        ),
        (
            "status",
            "{path: $.v, values: {a: active}}",
            SECRET.to_string(),
        ),
        ("worker_type", "$.v", SECRET.to_string()),
        ("custom.flag", "{path: $.v, type: bool}", SECRET.to_string()),
        ("custom.n", "{path: $.v, type: int}", SECRET.to_string()),
        ("custom.d", "{path: $.v, type: date}", SECRET.to_string()),
        ("job_title", "$.v", SECRET.repeat(2000)),
    ] {
        let e = check(target, field, json!({"v": value})).unwrap_err();
        assert!(!e.contains(SECRET), "{target} {field}: {e}");
        assert!(
            !e.contains("1987") && !e.contains("30.02"),
            "{target} {field}: {e}"
        );
    }
}

/// A value that fails to convert is a failure of that field, told apart from a field that is
/// empty in the record (which the store may clear) and from a good value.
#[test]
fn a_failed_conversion_is_told_apart_from_an_empty_field() {
    #[derive(Debug, PartialEq)]
    enum Want {
        Is(Value),
        Empty,
        Failed,
    }
    use Want::*;
    let status = "{path: $.v, values: {a: active}}";
    for (target, field, value, want) in [
        (
            "start_date",
            "$.v",
            json!("2023-02-28"),
            Is(json!("2023-02-28")),
        ),
        ("start_date", "$.v", json!("2023-02-30"), Failed),
        ("start_date", "$.v", json!("soon"), Failed),
        ("start_date", "$.v", json!(null), Empty),
        ("start_date", "$.v", json!(""), Empty),
        ("start_date", "$.missing", json!("2023-02-30"), Empty),
        (
            "start_date",
            "{path: $.v, empty_values: ['0000-00-00']}",
            json!("0000-00-00"),
            Empty,
        ),
        ("start_date", "$.v", json!("0000-00-00"), Failed),
        ("status", status, json!("a"), Is(json!("active"))),
        ("status", status, json!("b"), Failed),
        (
            "status",
            "{path: $.v, values: {a: active}, unmapped: default}",
            json!("b"),
            Empty,
        ),
        ("worker_type", "$.v", json!("W2"), Failed),
        ("manager_email", "$.v", json!("dana"), Failed),
        ("department", "$.v", json!({"name": "Eng"}), Failed),
        (
            "department",
            "{path: $.v, values: {x: y}, unmapped: error}",
            json!("z"),
            Failed,
        ),
        (
            "custom.flag",
            "{path: $.v, type: bool}",
            json!("maybe"),
            Failed,
        ),
        ("custom.flag", "{path: $.v, type: bool}", json!(null), Empty),
        ("custom.n", "{path: $.v, type: int}", json!(1.5), Failed),
        (
            "custom.d",
            "{path: $.v, type: date}",
            json!("2024-13-01"),
            Failed,
        ),
        (
            "custom.l",
            "{path: $.v, type: enum, values: {'1': junior}}",
            json!(2),
            Failed,
        ),
        ("job_title", "$.v", json!("x".repeat(9000)), Failed),
        ("custom.bio", "$.v", json!("x".repeat(9000)), Failed),
    ] {
        let got = match check(target, field, json!({"v": value})) {
            Ok(Some(v)) => Is(v),
            Ok(None) => Empty,
            Err(_) => Failed,
        };
        assert_eq!(got, want, "{target}: {field} on {value}");
    }
    // Lists of one record: canonical and custom failures apart.
    let m = mapper(
        "fields:
  work_email: $.email
  start_date: $.start
  end_date: $.end
  status: {path: $.s, values: {a: active}}
custom:
  n: {path: $.n, type: int}
  ok: {path: $.ok, type: int}
",
    );
    let p = kept(m.map(&json!({
        "email": "a@x.example", "start": "2023-02-30", "s": "?", "n": "many", "ok": 3
    })));
    let mut failed = p.failed.clone();
    failed.sort_by_key(|f| f.name());
    assert_eq!(failed, vec![Field::start_date, Field::status]);
    assert_eq!(p.failed_custom, vec!["n".to_string()]);
    assert!(p.has_failed(Field::start_date));
    assert!(
        !p.has_failed(Field::end_date),
        "empty in the record, not failed"
    );
    assert_eq!(p.custom, BTreeMap::from([("ok".to_string(), json!(3))]));
    // A good record has no failures.
    let p = kept(m.map(&json!({"email": "a@x.example", "start": "2023-02-28"})));
    assert!(p.failed.is_empty() && p.failed_custom.is_empty(), "{p:?}");
}

#[test]
fn values_over_the_field_limit_fail_and_say_so() {
    let over = "the value is 5,242,880 bytes, over `limits.max_field_bytes` (8 KiB); the person keeps the last value that fit (help: raise `limits.max_field_bytes` in roster.yaml if values this long are expected)";
    assert_eq!(
        check("job_title", "$.v", json!({"v": "x".repeat(5 << 20)})),
        Err(over.to_string())
    );
    // The default limit is 8 KiB, in bytes of the text after the transforms.
    let m = |field: &str, limit: u64| mapper_with_limit(&target_yaml("job_title", field), limit);
    let default = mapper(&target_yaml("job_title", "$.v"));
    for (mapper, value, fits) in [
        (&default, "x".repeat(8192), true),
        (&default, "x".repeat(8193), false),
        (&m("$.v", 300), "x".repeat(300), true),
        (&m("$.v", 300), "x".repeat(301), false),
        // Bytes, not characters: 151 two-byte characters are 302 bytes.
        (&m("$.v", 300), "é".repeat(150), true),
        (&m("$.v", 300), "é".repeat(151), false),
        // After the transforms: what would be stored is measured.
        (
            &m("{path: $.v, transform: [trim]}", 300),
            format!("{}x", " ".repeat(400)),
            true,
        ),
        (
            &m("{path: $.v, transform: [collapse_whitespace]}", 300),
            "a  ".repeat(200),
            false,
        ),
    ] {
        let r = check_with(mapper, "job_title", json!({"v": value}));
        assert_eq!(r.is_ok(), fits, "{} bytes: {r:?}", value.len());
    }
    let e = check_with(&m("$.v", 300), "job_title", json!({"v": "x".repeat(1000)})).unwrap_err();
    assert!(
        e.starts_with("the value is 1,000 bytes, over `limits.max_field_bytes` (300 bytes);"),
        "{e}"
    );
    // Custom fields and templates too.
    let big = "x".repeat(400);
    let c = mapper_with_limit(&target_yaml("custom.bio", "$.v"), 300);
    err_contains(
        check_with(&c, "custom.bio", json!({"v": big})),
        "over `limits.max_field_bytes`",
    );
    let t = mapper_with_limit(
        "fields:\n  work_email: $.email\n  first_name: $.f\n  last_name: $.l\n  display_name: {template: '{first_name} {last_name}'}\n",
        300,
    );
    let parts = "y".repeat(200);
    err_contains(
        check_with(&t, "display_name", json!({"f": parts, "l": parts})),
        "the value is 401 bytes",
    );
    // A required field over the limit fails the record, as any required field that fails.
    let r = mapper_with_limit(
        &target_yaml("employee_id", "{path: $.v, required: true}"),
        300,
    );
    assert!(matches!(
        r.map(&json!({"email": "a@x.example", "v": big})),
        Mapped::Failed { .. }
    ));
    // So does the work email.
    let w = mapper_with_limit("fields:\n  work_email: $.email\n", 300);
    match w.map(&json!({"email": format!("{big}@x.example")})) {
        Mapped::Failed { errors, email, .. } => {
            assert_eq!(email, None);
            assert!(
                errors[0].message.contains("over `limits.max_field_bytes`"),
                "{errors:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A template over a field that failed is not known either: filling it without that part
/// would announce a change (`Ada` instead of `Ada Lovelace`) that did not happen.
#[test]
fn a_template_over_a_failed_field_fails_too() {
    let m = mapper(
        "fields:
  work_email: $.email
  first_name: $.f
  start_date: $.s
  display_name: {template: '{first_name} ({start_date})'}
custom:
  # A template over that template fails as well.
  badge: {template: '{display_name}!'}
  # One over an empty field is just shorter.
  tag: {template: '{first_name} {last_name}'}
",
    );
    let p = kept(m.map(&json!({"email": "a@x.example", "f": "Ada", "s": "2023-02-30"})));
    assert_eq!(p.failed, vec![Field::start_date, Field::display_name]);
    assert_eq!(p.failed_custom, vec!["badge".to_string()]);
    assert_eq!(p.get(Field::display_name), None);
    assert_eq!(p.custom.get("tag"), Some(&json!("Ada")));
    let problem = p
        .problems
        .iter()
        .find(|e| e.field == "display_name")
        .unwrap();
    assert_eq!(
        problem.message,
        "its template uses `start_date`, which failed to convert; the person keeps the last value"
    );
    // Once the date is good, so is the template.
    let p = kept(m.map(&json!({"email": "a@x.example", "f": "Ada", "s": "2023-02-28"})));
    assert!(p.failed.is_empty(), "{p:?}");
    assert_eq!(p.get(Field::display_name), Some("Ada (2023-02-28)"));
    // A required template over a failed field fails the record.
    let r = mapper(
        "fields:
  work_email: $.email
  start_date: $.s
  display_name: {template: '{start_date}', required: true}
",
    );
    assert!(matches!(
        r.map(&json!({"email": "a@x.example", "s": "soon"})),
        Mapped::Failed { .. }
    ));
}

/// A raw record over `limits.max_record_bytes` is not mapped: it fails as a whole (with its key,
/// so the store keeps its last good version), unless the filter drops it anyway.
#[test]
fn records_over_the_record_limit_are_not_mapped() {
    let s = spec(
        "fields:
  employee_id: $.id
  work_email: $.email
  status: {path: $.s, values: {a: active, t: terminated}}
  job_title: $.t
",
    );
    let limits = LimitsPlan {
        max_field_bytes: 300,
        max_record_bytes: 1000,
    };
    let m = Mapper::build(&s.fields, &s.custom, &s.filter, limits);
    assert_eq!(m.max_record_bytes(), 1000);
    let r = json!({"id": 7, "email": "A@x.example", "s": "a", "t": "CTO"});
    assert_eq!(
        m.map_sized(&r, 1000),
        m.map(&r),
        "at the limit it maps as usual"
    );
    assert_eq!(
        m.map_sized(&r, 1001),
        Mapped::Failed {
            key: Some("7".into()),
            email: Some("a@x.example".into()),
            errors: vec![FieldError {
                field: "record".into(),
                message: "the record is 1,001 bytes as JSON, over `limits.max_record_bytes` (1 KB); it is not mapped, and the directory keeps what it had from it (help: raise `limits.max_record_bytes` in roster.yaml if records this large are expected)".into(),
            }],
        }
    );
    // A leaver is dropped by the filter, oversized or not.
    let leaver = json!({"id": 8, "email": "b@x.example", "s": "t"});
    assert!(matches!(
        m.map_sized(&leaver, 5000),
        Mapped::Excluded { key: Some(k), .. } if k == "8"
    ));
    // The default is 1 MiB.
    let d = Mapper::from_spec(&s);
    assert_eq!(d.max_record_bytes(), 1 << 20);
    assert!(matches!(d.map_sized(&r, 1 << 20), Mapped::Kept(_)));
    assert!(matches!(
        d.map_sized(&r, (1 << 20) + 1),
        Mapped::Failed { .. }
    ));
}

#[test]
fn the_filter_keeps_default_statuses() {
    let m = mapper(
        "fields:
  employee_id: $.id
  work_email: $.email
  status: {path: $.s, values: {hired: pre_hire, active: active, leave: on_leave, gone: terminated}}
",
    );
    for (s, kept) in [
        ("hired", true),
        ("active", true),
        ("leave", true),
        ("gone", false),
    ] {
        let r = m.map(&json!({"id": "9", "email": "a@x.example", "s": s}));
        assert_eq!(matches!(r, Mapped::Kept(_)), kept, "{s}: {r:?}");
        if !kept {
            assert_eq!(
                r,
                Mapped::Excluded {
                    key: Some("9".into()),
                    reason: "status `terminated` is not one the filter keeps (pre_hire, active, on_leave, inactive)".into()
                }
            );
        }
    }
    // No mapped status: the status filter does not apply.
    assert!(matches!(
        m.map(&json!({"email": "a@x.example"})),
        Mapped::Kept(_)
    ));
    // The filter wins over a mapping failure: a leaver without an email is not a data problem.
    assert!(matches!(
        m.map(&json!({"s": "gone"})),
        Mapped::Excluded { key: None, .. }
    ));
    // An unmapped status value is a problem; the person is kept without a status.
    let p = kept(m.map(&json!({"email": "a@x.example", "s": "sabbatical"})));
    assert_eq!(p.get(Field::status), None);
    assert_eq!(p.problems[0].field, "status");
}

#[test]
fn the_filter_statuses_can_be_set() {
    let m = mapper(
        "fields:
  work_email: $.email
  status: {path: $.s, values: {a: active, t: terminated}}
filter:
  statuses: [active, terminated]
",
    );
    assert!(matches!(
        m.map(&json!({"email": "a@x.example", "s": "t"})),
        Mapped::Kept(_)
    ));
}

#[test]
fn exclude_rules_read_the_raw_record() {
    let m = mapper(
        "fields:
  work_email: $.email
filter:
  exclude:
    - {path: $.test, equals: true}
    - {path: $.company_id, equals: '42'}
    - {path: $.kind, equals: service}
    - {path: '$.groups[*].name', equals: Bots}
    - {path: $.department, empty: true}
",
    );
    let base = json!({"email": "a@x.example", "department": "Eng", "company_id": 7});
    assert!(matches!(m.map(&base), Mapped::Kept(_)));
    let with = |k: &str, v: Value| {
        let mut r = base.clone();
        r[k] = v;
        match m.map(&r) {
            Mapped::Excluded { reason, .. } => reason,
            other => panic!("{k}: {other:?}"),
        }
    };
    assert_eq!(
        with("test", json!(true)),
        "filter.exclude[0]: `$.test` equals true"
    );
    assert_eq!(
        with("test", json!("true")),
        "filter.exclude[0]: `$.test` equals true"
    );
    assert_eq!(
        with("company_id", json!(42)),
        "filter.exclude[1]: `$.company_id` equals \"42\""
    );
    assert_eq!(
        with("kind", json!("service")),
        "filter.exclude[2]: `$.kind` equals \"service\""
    );
    assert_eq!(
        with("groups", json!([{"name": "Eng"}, {"name": "Bots"}])),
        "filter.exclude[3]: `$.groups[*].name` equals \"Bots\""
    );
    assert_eq!(
        with("department", json!("")),
        "filter.exclude[4]: `$.department` is empty"
    );
    assert_eq!(
        with("department", json!(null)),
        "filter.exclude[4]: `$.department` is empty"
    );
    let mut r = base.clone();
    r.as_object_mut().unwrap().remove("department");
    assert!(matches!(m.map(&r), Mapped::Excluded { .. }));
    // Near misses are kept.
    for (k, v) in [
        ("test", json!(false)),
        ("company_id", json!(420)),
        ("kind", json!("Service")),
    ] {
        let mut r = base.clone();
        r[k] = v;
        assert!(matches!(m.map(&r), Mapped::Kept(_)), "{k}");
    }
    // map_unfiltered ignores the filter.
    let mut r = base.clone();
    r["test"] = json!(true);
    assert!(matches!(m.map_unfiltered(&r), Mapped::Kept(_)));
}

#[test]
fn keys() {
    let m = mapper("fields:\n  employee_id: $.id\n  work_email: $.email\n");
    let p = kept(m.map(&json!({"id": 17, "email": "A@x.example"})));
    assert_eq!((p.key(), p.work_email()), ("17", "a@x.example"));
    let p = kept(m.map(&json!({"id": "", "email": "a@x.example"})));
    assert_eq!(p.key(), "a@x.example");
    assert_eq!(p.values.len(), Field::ALL.len());
}

#[test]
fn custom_fields_are_omitted_when_empty() {
    let m = mapper("fields:\n  work_email: $.email\ncustom:\n  a: $.a\n  b: $.b\n");
    let p = kept(m.map(&json!({"email": "a@x.example", "a": "x", "b": null})));
    assert_eq!(p.custom, BTreeMap::from([("a".to_string(), json!("x"))]));
}

#[test]
fn fingerprints_are_stable_and_follow_meaning() {
    let base = "fields:
  work_email: $.email
  job_title: {path: $.t, transform: [trim]}
custom:
  a: $.a
  b: $.b
";
    let fp = |yaml: &str| mapper(yaml).fingerprint();
    let f0 = fp(base);
    assert_eq!(f0, fp(base));
    // Pinned: the fingerprint must not change between builds or releases unless the mapping
    // or ENGINE_VERSION does (stored hashes would all be invalidated).
    assert_eq!(
        f0, 0x9132_a856_983d_f188,
        "update the pinned fingerprint only with ENGINE_VERSION"
    );

    // Same meaning, same fingerprint: shorthand vs full, custom order, description, tests,
    // coverage, default statuses written out.
    assert_eq!(
        f0,
        fp(&base.replace("work_email: $.email", "work_email: {path: $.email}"))
    );
    assert_eq!(
        f0,
        fp(&base.replace("  a: $.a\n  b: $.b\n", "  b: $.b\n  a: $.a\n"))
    );
    assert_eq!(
        f0,
        fp(&format!(
            "description: x\n{base}coverage:\n  a: {{max_empty: 5%}}\n"
        ))
    );
    assert_eq!(
        f0,
        fp(&format!(
            "{base}filter:\n  statuses: [pre_hire, active, on_leave, inactive]\n"
        ))
    );
    assert_eq!(
        f0,
        fp(&format!(
            "{base}tests:\n  - {{name: x, record: {{}}, excluded: true}}\n"
        ))
    );

    // The default field limit written out is the same mapping; another limit maps differently.
    assert_eq!(f0, mapper_with_limit(base, 8 << 10).fingerprint());
    assert_ne!(f0, mapper_with_limit(base, 4 << 10).fingerprint());

    // Changed meaning, changed fingerprint.
    for changed in [
        base.replace("$.t", "$.title"),
        base.replace("[trim]", "[trim, lowercase]"),
        base.replace("  a: $.a\n", ""),
        format!("{base}  c: $.c\n"),
        base.replace("  job_title:", "  department:"),
        format!("{base}filter:\n  statuses: [active]\n"),
        format!("{base}filter:\n  exclude: [{{path: $.x, equals: 1}}]\n"),
        base.replace("$.t,", "$.t, required: true,"),
    ] {
        assert_ne!(f0, fp(&changed), "{changed}");
    }
}

#[test]
fn new_uses_the_source_overrides_from_the_plan() {
    use crate::config::compile::{SafetyPlan, Schedule};
    let spec = spec("fields:\n  work_email: $.email\n  birth_date: $.dob\n");
    let mut fields = spec.fields.clone();
    fields.set(
        Field::birth_date,
        FieldMapping::Path(crate::config::value::JsonPath::parse("$.custom.birthday").unwrap()),
    );
    let plan = SourcePlan {
        name: "hr".into(),
        provider: "p".into(),
        mapping: "m".into(),
        fields,
        custom: IndexMap::new(),
        schedule: Schedule::Every {
            period: std::time::Duration::from_secs(3600),
            jitter: std::time::Duration::ZERO,
        },
        enabled: true,
        safety: SafetyPlan {
            max_removals: 0.2,
            min_removals_to_hold: 3,
            hold_on_empty: true,
        },
        limits: LimitsPlan::default(),
    };
    let m = Mapper::new(&plan, &spec);
    let r =
        json!({"email": "a@x.example", "dob": "1990-01-01", "custom": {"birthday": "1991-02-02"}});
    assert_eq!(kept(m.map(&r)).get(Field::birth_date), Some("1991-02-02"));
    assert_ne!(m.fingerprint(), Mapper::from_spec(&spec).fingerprint());

    // The plan's limits reach the mapper.
    let small = SourcePlan {
        limits: LimitsPlan {
            max_field_bytes: 300,
            ..LimitsPlan::default()
        },
        ..plan
    };
    let m = Mapper::new(&small, &spec);
    let r = json!({"email": "a@x.example", "custom": {"birthday": "1".repeat(301)}});
    assert_eq!(kept(m.map(&r)).failed, vec![Field::birth_date]);
}
