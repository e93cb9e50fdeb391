//! Event unit tests.

use super::*;

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
