//! Lifecycle events: what they are, which endpoints want them, and what each endpoint is sent.
//!
//! Pure: no I/O and no clock. The store writes events in the same transaction as the
//! directory change that causes them (the outbox); `webhook` delivers them.
//!
//! - Change events come from a sync's person-level diff: `person.created` (pre-hires
//!   flagged), `person.updated` (fields with old and new values), `person.terminated`,
//!   `person.reactivated`, and `person.manager_changed` beside any of the last three.
//! - Date events come from triggers (`triggers`): `lifecycle.start_date`, `end_date`,
//!   `probation_end`, `work_anniversary`, `birthday`, and `lifecycle.date` for custom dates.
//! - Run events: `sync.completed`, `sync.failed`, `sync.held`.
//!
//! Every event has a key derived from what the event is about (`event_id`): a change's type,
//! person, source, run and content; a date's trigger, person and day. The outbox stores it
//! scoped to the installation (`scoped_id`), so the same occurrence always has the same id
//! (the outbox refuses a second copy, a redelivery carries the same `webhook-id`) and
//! different occurrences never share one, also across rebuilt state and other deployments.

pub mod triggers;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::deployment::{BirthDateDisclosure, Conditions, Deployment, PayloadKind};
use crate::store::sync::{Change, PersonChange};

/// The version of the event payloads; bumped on an incompatible change.
pub const PAYLOAD_VERSION: u32 = 1;

/// A deterministic event key or id: `msg_` and 32 hex digits of a 128-bit hash of the parts.
pub fn event_id(parts: &[&str]) -> String {
    let mut key = String::new();
    for p in parts {
        key.push_str(p);
        key.push('\u{1f}');
    }
    format!("msg_{:032x}", xxhash_rust::xxh3::xxh3_128(key.as_bytes()))
}

/// The id an event is stored and sent with (`webhook-id`, which Standard Webhooks receivers
/// deduplicate on): its key (`NewEvent::id`) scoped to the installation, a random id made
/// once per state database (`Store::installation_id`). Without it, a rebuilt state (run
/// numbers start again) or another deployment would reuse the ids of different changes, and
/// receivers would drop them as duplicates.
pub fn scoped_id(installation: &str, key: &str) -> String {
    event_id(&["installation", installation, key])
}

/// An event about to be written to the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The event's key: deterministic, from what it is about (`event_id`). The outbox stores
    /// and sends it as `scoped_id(installation, key)`.
    pub id: String,
    /// The event type, e.g. `person.updated`.
    pub kind: String,
    /// The person, for person and lifecycle events.
    pub work_email: Option<String>,
    /// The source whose sync caused it.
    pub source: Option<String>,
    /// The sync run that caused it.
    pub sync_run: Option<i64>,
    /// The trigger that fired it.
    pub trigger: Option<String>,
    /// The day a lifecycle event is about.
    pub occurrence: Option<String>,
    /// When a lifecycle event was due (RFC 3339).
    pub scheduled_at: Option<String>,
    /// Fired more than `LATE_AFTER` after it was due (after downtime).
    pub late: bool,
    /// The full event data (`EventData`), before any endpoint's redaction.
    pub data: Value,
}

/// One field-level change in a `person.*` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FieldChange {
    /// The canonical field, `custom.NAME`, or `hris_status`.
    pub field: String,
    /// The value before (absent: empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    /// The value after (absent: empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
    /// The source that set the new value.
    pub source: String,
}

/// The body of every webhook (Standard Webhooks' recommended shape).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Roster webhook payload")]
pub struct Envelope {
    /// The event id, also sent as `webhook-id`. Stable across retries and replays.
    pub id: String,
    /// The event type, e.g. `person.updated`.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When Roster recorded the event (RFC 3339, UTC).
    pub timestamp: String,
    /// Payload version (currently 1).
    pub version: u32,
    /// Present and true when the full body would have been over the webhook body cap (256
    /// KiB): `data` then holds only identifiers (`work_email`, `source`, `sync_run`,
    /// `trigger`, `date`, `changed_fields`); read the rest from the directory.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// What happened.
    pub data: EventData,
}

/// Every event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EventType {
    /// A person appeared in the directory (pre-hires included, flagged `pre_hire`).
    #[serde(rename = "person.created")]
    PersonCreated,
    /// Fields of a person changed.
    #[serde(rename = "person.updated")]
    PersonUpdated,
    /// A person left: absent from every source, or their end date passed.
    #[serde(rename = "person.terminated")]
    PersonTerminated,
    /// A person who had left is back (rehire).
    #[serde(rename = "person.reactivated")]
    PersonReactivated,
    /// A person's manager changed.
    #[serde(rename = "person.manager_changed")]
    PersonManagerChanged,
    /// A start date trigger fired.
    #[serde(rename = "lifecycle.start_date")]
    StartDate,
    /// An end date trigger fired.
    #[serde(rename = "lifecycle.end_date")]
    EndDate,
    /// A probation end trigger fired.
    #[serde(rename = "lifecycle.probation_end")]
    ProbationEnd,
    /// A work anniversary trigger fired (`years`).
    #[serde(rename = "lifecycle.work_anniversary")]
    WorkAnniversary,
    /// A birthday trigger fired.
    #[serde(rename = "lifecycle.birthday")]
    Birthday,
    /// A custom date trigger fired.
    #[serde(rename = "lifecycle.date")]
    Date,
    /// A sync applied (or found nothing to apply).
    #[serde(rename = "sync.completed")]
    SyncCompleted,
    /// A sync failed; nothing was applied.
    #[serde(rename = "sync.failed")]
    SyncFailed,
    /// A sync was held by the safety thresholds; nothing was applied.
    #[serde(rename = "sync.held")]
    SyncHeld,
}

/// The `data` of an event, by family.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EventData {
    /// `person.*`.
    Person(PersonData),
    /// `lifecycle.*`.
    Lifecycle(LifecycleData),
    /// `sync.*`.
    Sync(SyncData),
}

/// The data of a `person.*` event.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PersonData {
    /// The person's canonical id.
    pub work_email: String,
    /// The source whose sync caused the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The sync run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_run: Option<i64>,
    /// `person.created`: the start date is ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_hire: Option<bool>,
    /// The fields that changed (`thin` payloads: names only, in `changed_fields`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// Thin payloads: the names of the changed fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_fields: Vec<String>,
    /// `person.manager_changed`: the manager before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_manager_email: Option<String>,
    /// `person.manager_changed`: the manager after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_manager_email: Option<String>,
    /// The person after the change: every canonical field, `hris_status`, `custom`,
    /// `employee_ids`, `sources`, `first_seen`, `last_changed` (full payloads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<Map<String, Value>>,
}

/// The data of a `lifecycle.*` event.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LifecycleData {
    /// The person's canonical id.
    pub work_email: String,
    /// The trigger's name in `roster.yaml`.
    pub trigger: String,
    /// The day the event is about (for birthdays and anniversaries, this year's day).
    pub date: String,
    /// When the trigger was due (RFC 3339): `date` plus the trigger's offset, at its time of
    /// day in the company time zone.
    pub scheduled_at: String,
    /// True when it fired more than an hour after `scheduled_at` (caught up after downtime).
    pub late: bool,
    /// Work anniversaries: completed years. Birthdays: the age, only with `birth_date: full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years: Option<i64>,
    /// The person (full payloads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<Map<String, Value>>,
}

/// The data of a `sync.*` event.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SyncData {
    /// The source.
    pub source: String,
    /// The sync run (`sync_runs.id`).
    pub sync_run: i64,
    /// `applied`, `unchanged`, `held` or `failed`.
    pub outcome: String,
    /// Records read.
    pub records: u64,
    /// People created, updated and terminated.
    pub created: u64,
    /// People updated.
    pub updated: u64,
    /// People terminated.
    pub terminated: u64,
    /// Why it failed or was held: Roster's own words, never text from the HRIS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A stable code for a failed run (e.g. `hris_auth_rejected`, `listing_incomplete`; the
    /// README lists them), for alerting rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// A lifecycle event fired more than this long after it was due is marked `late`.
pub const LATE_AFTER: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// What an endpoint subscribes to.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The endpoint's name.
    pub endpoint: String,
    /// Event type patterns (`person.*`, `*`, `lifecycle.birthday`).
    pub patterns: Vec<String>,
    /// Only lifecycle events of these triggers (empty: all).
    pub triggers: Vec<String>,
    /// Only events about people matching these.
    pub when: Conditions,
}

impl Subscription {
    /// Whether this endpoint wants the event.
    pub fn wants(&self, ev: &NewEvent) -> bool {
        if !self.patterns.iter().any(|p| type_matches(p, &ev.kind)) {
            return false;
        }
        if let Some(t) = &ev.trigger {
            if !self.triggers.is_empty() && !self.triggers.iter().any(|x| x == t) {
                return false;
            }
        }
        if self.when.is_empty() {
            return true;
        }
        // Run events concern no person: person conditions do not filter them.
        match ev.data.get("person").and_then(Value::as_object) {
            Some(person) => person_matches(&self.when, person),
            None => ev.work_email.is_none(),
        }
    }
}

/// `person.*` matches `person.updated`; `*` matches one segment, or everything on its own.
pub fn type_matches(pattern: &str, kind: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let mut p = pattern.split('.');
    let mut k = kind.split('.');
    loop {
        match (p.next(), k.next()) {
            (None, None) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// Each condition's field equals one of its values (case-insensitive). `custom.NAME` reads a
/// custom field. A field that is empty matches nothing.
pub fn person_matches(when: &Conditions, person: &Map<String, Value>) -> bool {
    when.iter().all(|(field, allowed)| {
        let value = match field.strip_prefix("custom.") {
            Some(name) => person
                .get("custom")
                .and_then(|c| c.get(name))
                .and_then(Value::as_str),
            None => person.get(field.as_str()).and_then(Value::as_str),
        };
        value.is_some_and(|v| allowed.values().iter().any(|a| a.eq_ignore_ascii_case(v)))
    })
}

/// Routing and rendering settings for every endpoint, from the deployment.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// One per webhook endpoint.
    pub subscriptions: Vec<Subscription>,
    /// Emit `person.created` on a source's first sync.
    pub created_on_first_sync: bool,
}

impl Routing {
    /// From the deployment file.
    pub fn from_deployment(d: &Deployment) -> Routing {
        Routing {
            subscriptions: d
                .webhooks
                .iter()
                .map(|(name, w)| Subscription {
                    endpoint: name.clone(),
                    patterns: w.events.clone(),
                    triggers: w.triggers.iter().map(|t| t.as_str().to_string()).collect(),
                    when: w.when.clone(),
                })
                .collect(),
            created_on_first_sync: d.events.created_on_first_sync,
        }
    }

    /// The endpoints that want `ev`.
    pub fn route(&self, ev: &NewEvent) -> Vec<String> {
        self.subscriptions
            .iter()
            .filter(|s| s.wants(ev))
            .map(|s| s.endpoint.clone())
            .collect()
    }
}

/// Where a batch of person changes comes from.
#[derive(Debug, Clone, Copy)]
pub struct ChangeContext<'a> {
    /// The source synced.
    pub source: &'a str,
    /// The sync run.
    pub sync_run: i64,
    /// The source's first applied sync: no change events, except `person.created` when
    /// `created_on_first_sync`.
    pub baseline: bool,
    /// Emit `person.created` on the baseline.
    pub created_on_first_sync: bool,
}

/// The `person.*` events of one person's change. `person` is the person after the change.
///
/// The key covers the type, person, source and run, and the event's content (the diff and
/// the person after it): two different changes never share a key, even when a restored or
/// rebuilt state repeats a run number.
pub fn person_events(
    cx: &ChangeContext<'_>,
    email: &str,
    kind: PersonChange,
    changes: &[Change],
    person: &Map<String, Value>,
) -> Vec<NewEvent> {
    let run = cx.sync_run.to_string();
    let base = |kind: EventType, data: PersonData| {
        let data = serde_json::to_value(EventData::Person(data)).unwrap_or(Value::Null);
        NewEvent {
            id: event_id(&[type_name(kind), email, cx.source, &run, &data.to_string()]),
            kind: type_name(kind).to_string(),
            work_email: Some(email.to_string()),
            source: Some(cx.source.to_string()),
            sync_run: Some(cx.sync_run),
            trigger: None,
            occurrence: None,
            scheduled_at: None,
            late: false,
            data,
        }
    };
    let data = |pre_hire: Option<bool>| PersonData {
        work_email: email.to_string(),
        source: Some(cx.source.to_string()),
        sync_run: Some(cx.sync_run),
        pre_hire,
        changes: changes
            .iter()
            .map(|c| FieldChange {
                field: c.field.clone(),
                old: c.old.clone(),
                new: c.new.clone(),
                source: c.source.clone(),
            })
            .collect(),
        changed_fields: Vec::new(),
        old_manager_email: None,
        new_manager_email: None,
        person: Some(person.clone()),
    };
    let mut out = Vec::new();
    if cx.baseline {
        if kind == PersonChange::Created && cx.created_on_first_sync {
            let pre = person.get("status").and_then(Value::as_str) == Some("pre_hire");
            let mut d = data(Some(pre));
            d.changes.clear();
            out.push(base(EventType::PersonCreated, d));
        }
        return out;
    }
    match kind {
        PersonChange::Created => {
            // Every field is new: the person says it all.
            let pre = person.get("status").and_then(Value::as_str) == Some("pre_hire");
            let mut d = data(Some(pre));
            d.changes.clear();
            out.push(base(EventType::PersonCreated, d));
            return out;
        }
        PersonChange::Updated => out.push(base(EventType::PersonUpdated, data(None))),
        PersonChange::Terminated => out.push(base(EventType::PersonTerminated, data(None))),
        PersonChange::Reactivated => out.push(base(EventType::PersonReactivated, data(None))),
    }
    if let Some(m) = changes.iter().find(|c| c.field == "manager_email") {
        let mut d = data(None);
        d.changes.clear();
        d.old_manager_email = m.old.clone();
        d.new_manager_email = m.new.clone();
        out.push(base(EventType::PersonManagerChanged, d));
    }
    out
}

/// A `lifecycle.*` event for one occurrence of a trigger. The key is the trigger's name, the
/// person and the occurrence's day, never the person's data: however often the trigger is
/// evaluated, whatever a sync changed in between, and whatever the clock does, the outbox
/// holds it once.
pub fn lifecycle_event(
    trigger: &str,
    kind: &str,
    email: &str,
    occ: &triggers::Occurrence,
    person: &Map<String, Value>,
    now: jiff::Timestamp,
) -> NewEvent {
    let date = occ.date.to_string();
    let scheduled_at = occ.fire_at.to_string();
    let late = now.duration_since(occ.fire_at) > LATE_AFTER;
    let data = LifecycleData {
        work_email: email.to_string(),
        trigger: trigger.to_string(),
        date: date.clone(),
        scheduled_at: scheduled_at.clone(),
        late,
        years: occ.years.map(i64::from),
        person: Some(person.clone()),
    };
    NewEvent {
        id: event_id(&["lifecycle", trigger, email, &date]),
        kind: kind.to_string(),
        work_email: Some(email.to_string()),
        source: None,
        sync_run: None,
        trigger: Some(trigger.to_string()),
        occurrence: Some(date),
        scheduled_at: Some(scheduled_at),
        late,
        data: serde_json::to_value(EventData::Lifecycle(data)).unwrap_or(Value::Null),
    }
}

/// A `sync.*` event. The key is the type, source, run and the run's figures.
pub fn sync_event(data: SyncData) -> NewEvent {
    let kind = match data.outcome.as_str() {
        "failed" => EventType::SyncFailed,
        "held" => EventType::SyncHeld,
        _ => EventType::SyncCompleted,
    };
    let content = serde_json::to_string(&data).unwrap_or_default();
    NewEvent {
        id: event_id(&[
            type_name(kind),
            &data.source,
            &data.sync_run.to_string(),
            &content,
        ]),
        kind: type_name(kind).to_string(),
        work_email: None,
        source: Some(data.source.clone()),
        sync_run: Some(data.sync_run),
        trigger: None,
        occurrence: None,
        scheduled_at: None,
        late: false,
        data: serde_json::to_value(EventData::Sync(data)).unwrap_or(Value::Null),
    }
}

/// The wire name of an event type.
pub fn type_name(t: EventType) -> &'static str {
    match t {
        EventType::PersonCreated => "person.created",
        EventType::PersonUpdated => "person.updated",
        EventType::PersonTerminated => "person.terminated",
        EventType::PersonReactivated => "person.reactivated",
        EventType::PersonManagerChanged => "person.manager_changed",
        EventType::StartDate => "lifecycle.start_date",
        EventType::EndDate => "lifecycle.end_date",
        EventType::ProbationEnd => "lifecycle.probation_end",
        EventType::WorkAnniversary => "lifecycle.work_anniversary",
        EventType::Birthday => "lifecycle.birthday",
        EventType::Date => "lifecycle.date",
        EventType::SyncCompleted => "sync.completed",
        EventType::SyncFailed => "sync.failed",
        EventType::SyncHeld => "sync.held",
    }
}

/// The largest webhook body sent in full (256 KiB). A 5 MB job title once made a 10.5 MB
/// body; receivers and their proxies refuse such bodies (often with 413), so the event would
/// only ever be retried into the dead letter.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The `data` keys a truncated body keeps: identifiers, never the person's values.
const TRUNCATED_KEEPS: [&str; 8] = [
    "work_email",
    "source",
    "sync_run",
    "trigger",
    "date",
    "scheduled_at",
    "late",
    "outcome",
];

/// How one endpoint is sent an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rendering {
    /// Full or thin.
    pub payload: PayloadKind,
    /// How a date of birth appears.
    pub birth_date: BirthDateDisclosure,
}

/// A rendered webhook body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The bytes to sign and send.
    pub body: Vec<u8>,
    /// The size of the full rendering when it was over the cap and `body` is the truncated
    /// one (`"truncated": true`).
    pub truncated_from: Option<usize>,
}

/// The webhook body of a stored event for one endpoint: the envelope with `data` redacted
/// to what the endpoint may see; over [`MAX_BODY_BYTES`], only its identifiers with
/// `"truncated": true` (`render_capped`). Deterministic: a retry or replay sends the same
/// bytes.
pub fn render(id: &str, kind: &str, timestamp: &str, data: &Value, r: Rendering) -> Vec<u8> {
    render_capped(id, kind, timestamp, data, r, MAX_BODY_BYTES).body
}

/// `render` with the cap given, saying whether the body was truncated.
pub fn render_capped(
    id: &str,
    kind: &str,
    timestamp: &str,
    data: &Value,
    r: Rendering,
    max_body_bytes: usize,
) -> Rendered {
    let mut data = data.clone();
    if let Value::Object(d) = &mut data {
        redact(d, kind, r);
    }
    let envelope = |data: Value, truncated: bool| {
        let mut body = Map::new();
        body.insert("id".into(), Value::from(id));
        body.insert("type".into(), Value::from(kind));
        body.insert("timestamp".into(), Value::from(timestamp));
        body.insert("version".into(), Value::from(PAYLOAD_VERSION));
        if truncated {
            body.insert("truncated".into(), Value::Bool(true));
        }
        body.insert("data".into(), data);
        serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
    };
    let full = envelope(data.clone(), false);
    if full.len() <= max_body_bytes {
        return Rendered {
            body: full,
            truncated_from: None,
        };
    }
    let mut ids = Map::new();
    if let Value::Object(d) = &data {
        for k in TRUNCATED_KEEPS {
            if let Some(v) = d.get(k) {
                ids.insert(k.into(), v.clone());
            }
        }
        let names = match (d.get("changes"), d.get("changed_fields")) {
            (Some(Value::Array(changes)), _) => changes
                .iter()
                .filter_map(|c| c.get("field").cloned())
                .collect(),
            (_, Some(Value::Array(names))) => names.clone(),
            _ => Vec::new(),
        };
        if !names.is_empty() {
            ids.insert("changed_fields".into(), Value::Array(names));
        }
    }
    let mut body = envelope(Value::Object(ids), true);
    if body.len() > max_body_bytes {
        // Even the identifiers are too big (a hostile HRIS value in an email or a field
        // name): the envelope alone still says which event to look up.
        body = envelope(Value::Object(Map::new()), true);
    }
    Rendered {
        body,
        truncated_from: Some(full.len()),
    }
}

fn redact(d: &mut Map<String, Value>, kind: &str, r: Rendering) {
    if r.payload == PayloadKind::Thin {
        d.remove("person");
        if let Some(Value::Array(changes)) = d.remove("changes") {
            let names: Vec<Value> = changes
                .iter()
                .filter_map(|c| c.get("field").cloned())
                .collect();
            d.insert("changed_fields".into(), Value::Array(names));
        }
        d.remove("old_manager_email");
        d.remove("new_manager_email");
        if kind == "lifecycle.birthday" {
            d.remove("years");
        }
        return;
    }
    let disclose = |v: &Value| -> Option<Value> {
        match r.birth_date {
            BirthDateDisclosure::Full => Some(v.clone()),
            BirthDateDisclosure::Omit => None,
            BirthDateDisclosure::MonthDay => v
                .as_str()
                .and_then(|s| s.get(4..10))
                .map(|md| Value::from(format!("-{md}"))),
        }
    };
    if let Some(Value::Object(p)) = d.get_mut("person") {
        if let Some(b) = p.remove("birth_date") {
            if let Some(v) = disclose(&b) {
                p.insert("birth_date".into(), v);
            }
        }
    }
    if let Some(Value::Array(changes)) = d.get_mut("changes") {
        changes.retain_mut(|c| {
            if c.get("field").and_then(Value::as_str) != Some("birth_date") {
                return true;
            }
            if r.birth_date == BirthDateDisclosure::Omit {
                return false;
            }
            if let Value::Object(c) = c {
                for k in ["old", "new"] {
                    if let Some(v) = c.remove(k) {
                        if let Some(v) = disclose(&v) {
                            c.insert(k.into(), v);
                        }
                    }
                }
            }
            true
        });
    }
    if kind == "lifecycle.birthday" && r.birth_date != BirthDateDisclosure::Full {
        d.remove("years");
    }
}

#[cfg(test)]
mod tests;
