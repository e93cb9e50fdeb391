//! Event unit tests.

use super::*;
use crate::config::deployment::{BirthDateDisclosure, PayloadKind};
use crate::store::sync::{Change, PersonChange};

const ALL: [EventType; 14] = [
    EventType::PersonCreated,
    EventType::PersonUpdated,
    EventType::PersonTerminated,
    EventType::PersonReactivated,
    EventType::PersonManagerChanged,
    EventType::StartDate,
    EventType::EndDate,
    EventType::ProbationEnd,
    EventType::WorkAnniversary,
    EventType::Birthday,
    EventType::Date,
    EventType::SyncCompleted,
    EventType::SyncFailed,
    EventType::SyncHeld,
];

#[test]
fn event_type_names_agree_with_the_payload_schema_and_the_config() {
    // The names are written three times (payload enum, `type_name`, the config's list for
    // subscriptions, and the triggers' own enum): they must stay one set.
    let mut names = Vec::new();
    for t in ALL {
        let wire = serde_json::to_value(t).unwrap();
        assert_eq!(wire, type_name(t), "{t:?}");
        names.push(type_name(t));
    }
    assert_eq!(names, crate::config::deployment::EVENT_TYPES);
    use crate::config::deployment::LifecycleEvent as L;
    for l in [
        L::StartDate,
        L::EndDate,
        L::ProbationEnd,
        L::WorkAnniversary,
        L::Birthday,
        L::Date,
    ] {
        assert!(names.contains(&l.name()), "{l:?}");
        assert_eq!(serde_json::to_value(l).unwrap(), l.name());
    }
}

fn cx(run: i64) -> ChangeContext<'static> {
    ChangeContext {
        source: "hr",
        sync_run: run,
        baseline: false,
        created_on_first_sync: false,
    }
}

fn change(field: &str, old: &str, new: &str) -> Change {
    Change {
        work_email: "ada@corp.example".into(),
        field: field.into(),
        old: Some(old.into()),
        new: Some(new.into()),
        source: "hr".into(),
    }
}

fn person(title: &str) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("work_email".into(), Value::from("ada@corp.example"));
    p.insert("job_title".into(), Value::from(title));
    p.insert("birth_date".into(), Value::from("1990-11-09"));
    p
}

fn updated_key(run: i64, changes: &[Change], title: &str) -> String {
    let evs = person_events(
        &cx(run),
        "ada@corp.example",
        PersonChange::Updated,
        changes,
        &person(title),
    );
    assert_eq!(evs.len(), 1);
    evs[0].id.clone()
}

#[test]
fn person_event_keys_cover_the_content_of_the_change() {
    let a = [change("job_title", "Engineer", "Staff Engineer")];
    let b = [change("job_title", "Engineer", "Principal")];
    let key = updated_key(7, &a, "Staff Engineer");
    // The same change computed twice: the same key.
    assert_eq!(key, updated_key(7, &a, "Staff Engineer"));
    // Same person, type and source; a rebuilt or restored state repeats run numbers, so a
    // different diff, person or run each makes a different key.
    let others = [
        (7, &b, "Principal"),
        (7, &a, "Staff Engineer II"),
        (8, &a, "Staff Engineer"),
    ];
    for (run, changes, title) in others {
        assert_ne!(key, updated_key(run, changes, title), "{run} {title}");
    }
}

#[test]
fn sync_event_keys_cover_the_run_figures() {
    let data = |updated| SyncData {
        source: "hr".into(),
        sync_run: 1,
        outcome: "applied".into(),
        records: 4,
        created: 0,
        updated,
        terminated: 0,
        reason: None,
        error_code: None,
    };
    assert_eq!(sync_event(data(1)).id, sync_event(data(1)).id);
    assert_ne!(sync_event(data(1)).id, sync_event(data(2)).id);
}

#[test]
fn lifecycle_keys_are_trigger_person_and_day_only() {
    let occ = triggers::Occurrence {
        date: jiff::civil::date(2026, 3, 2),
        fire_at: "2026-03-02T08:00:00Z".parse().unwrap(),
        years: None,
    };
    let now: jiff::Timestamp = "2026-03-02T08:01:00Z".parse().unwrap();
    let later: jiff::Timestamp = "2026-03-03T10:00:00Z".parse().unwrap();
    let ev = |p: &Map<String, Value>, now| {
        lifecycle_event(
            "welcome",
            "lifecycle.start_date",
            "ada@corp.example",
            &occ,
            p,
            now,
        )
    };
    // Re-evaluated later, after a sync changed the person: still one occurrence.
    let first = ev(&person("Engineer"), now);
    assert_eq!(first.id, ev(&person("Staff Engineer"), later).id);
    let next_day = triggers::Occurrence {
        date: jiff::civil::date(2026, 3, 3),
        ..occ
    };
    let other = lifecycle_event(
        "welcome",
        "lifecycle.start_date",
        "ada@corp.example",
        &next_day,
        &person("Engineer"),
        now,
    );
    assert_ne!(first.id, other.id);
}

#[test]
fn ids_are_scoped_to_the_installation() {
    let key = event_id(&["sync.completed", "hr", "1"]);
    assert_eq!(scoped_id("a", &key), scoped_id("a", &key));
    assert_ne!(scoped_id("a", &key), scoped_id("b", &key));
    assert!(scoped_id("a", &key).starts_with("msg_"));
    assert_eq!(scoped_id("a", &key).len(), key.len());
}

const FULL: Rendering = Rendering {
    payload: PayloadKind::Full,
    birth_date: BirthDateDisclosure::MonthDay,
};

#[test]
fn oversized_bodies_are_sent_with_identifiers_only() {
    let huge = "x".repeat(300 * 1024);
    let changes = [change("job_title", "Engineer", &huge)];
    let evs = person_events(
        &cx(3),
        "ada@corp.example",
        PersonChange::Updated,
        &changes,
        &person(&huge),
    );
    let ev = &evs[0];
    let r = render_capped(
        &ev.id,
        &ev.kind,
        "2026-01-01T00:00:00Z",
        &ev.data,
        FULL,
        MAX_BODY_BYTES,
    );
    let full = r.truncated_from.expect("over the cap");
    assert!(full > 600 * 1024, "{full}");
    assert!(r.body.len() < 1024, "{}", r.body.len());
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["truncated"], true);
    assert_eq!(body["id"], ev.id.as_str());
    assert_eq!(body["type"], "person.updated");
    assert_eq!(body["data"]["work_email"], "ada@corp.example");
    assert_eq!(body["data"]["source"], "hr");
    assert_eq!(body["data"]["sync_run"], 3);
    assert_eq!(
        body["data"]["changed_fields"],
        serde_json::json!(["job_title"])
    );
    assert!(body["data"].get("person").is_none() && body["data"].get("changes").is_none());
    // `render` applies the same cap; the truncated body is still a valid envelope.
    assert_eq!(
        render(&ev.id, &ev.kind, "2026-01-01T00:00:00Z", &ev.data, FULL),
        r.body
    );
    let envelope: Envelope = serde_json::from_slice(&r.body).unwrap();
    assert!(envelope.truncated);

    // Under the cap: the full body, no marker.
    let small = person_events(
        &cx(3),
        "ada@corp.example",
        PersonChange::Updated,
        &[change("job_title", "Engineer", "Lead")],
        &person("Lead"),
    );
    let r = render_capped(
        &small[0].id,
        &small[0].kind,
        "t",
        &small[0].data,
        FULL,
        MAX_BODY_BYTES,
    );
    assert_eq!(r.truncated_from, None);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(body.get("truncated").is_none());
    assert_eq!(body["data"]["person"]["job_title"], "Lead");

    // Even the identifiers over the cap: the envelope alone.
    let r = render_capped(&ev.id, &ev.kind, "t", &ev.data, FULL, 200);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["truncated"], true);
    assert_eq!(body["data"], serde_json::json!({}));
}
