//! Date triggers against the directory: which occurrences are due now, written to the outbox.
//!
//! Each evaluation looks at the window from `max(trigger first seen, now - catch_up_window)`
//! to now (for birthdays and anniversaries, from the last evaluation at the earliest).
//! Occurrences already in the outbox are skipped by id, so evaluating often, after a
//! restart, or after the clock stepped back fires nothing twice; an occurrence that became
//! due because a sync changed a date (a start date edited to today) fires at the next
//! evaluation. A trigger's first evaluation is its baseline: nothing before it fires.
//! Occurrences that fell due during downtime longer than the window are skipped and logged.

use jiff::{SignedDuration, Timestamp};

use crate::config::Config;
use crate::config::deployment::{LeapDay, LifecycleEvent, Trigger};
use crate::events::triggers::{self, Occurrence, Recurrence, Rule, Subject};
use crate::events::{self, NewEvent, Routing};
use crate::store::{Store, StoreError};

/// Default for `events.catch_up_window`.
pub const DEFAULT_CATCH_UP: SignedDuration = SignedDuration::from_hours(72);

/// What one trigger's evaluation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerReport {
    /// The trigger.
    pub trigger: String,
    /// New events written (delivered to at least one endpoint or not).
    pub fired: u64,
    /// Of those, fired more than an hour late.
    pub late: u64,
    /// Occurrences older than the catch-up window, skipped.
    pub skipped: u64,
}

/// The rule of a configured trigger.
pub fn rule(t: &Trigger, leap: LeapDay) -> Rule {
    let yearly = matches!(
        t.event,
        LifecycleEvent::WorkAnniversary | LifecycleEvent::Birthday
    );
    Rule {
        recurrence: if yearly {
            Recurrence::Yearly { first_year: 1 }
        } else {
            Recurrence::Once
        },
        offset: t.offset.as_ref().map_or(SignedDuration::ZERO, |o| o.get()),
        at: t
            .at
            .as_ref()
            .map_or(jiff::civil::time(9, 0, 0, 0), |a| a.time()),
        skip_leavers: yearly,
        leap_day: match leap {
            LeapDay::Feb28 => triggers::LeapDay::Feb28,
            LeapDay::Mar1 => triggers::LeapDay::Mar1,
        },
    }
}

/// Evaluates every trigger at `now` and writes what fell due. Returns one report per trigger.
pub fn evaluate(
    cfg: &Config,
    store: &Store,
    now: Timestamp,
) -> Result<Vec<TriggerReport>, StoreError> {
    let spec = &cfg.deployment.spec;
    let tz = spec.time_zone.time_zone();
    let routing = Routing::from_deployment(spec);
    let window = spec
        .events
        .catch_up_window
        .as_ref()
        .and_then(|d| SignedDuration::try_from(d.get()).ok())
        .unwrap_or(DEFAULT_CATCH_UP);
    let now_text = now.to_string();
    let mut reports = Vec::new();
    for (name, trigger) in &spec.triggers {
        let rule = rule(trigger, spec.events.leap_day);
        let (first_seen, until) = match store.trigger_state(name)? {
            Some((f, u)) => (
                f.parse::<Timestamp>().unwrap_or(now),
                u.parse::<Timestamp>().unwrap_or(now),
            ),
            None => (now, now),
        };
        let earliest = now.checked_sub(window).unwrap_or(now);
        // Once-only dates are looked at over the whole window again each time, so a date a
        // sync moved into the past hours (a start date edited to today) still fires. Yearly
        // ones only from the last evaluation: a birthday spent away is not sent on return.
        let from = if rule.skip_leavers {
            first_seen.max(earliest).max(until)
        } else {
            first_seen.max(earliest)
        };
        let mut due: Vec<(String, Occurrence)> = Vec::new();
        let mut skipped = 0u64;
        let rows = store.trigger_rows(&columns(trigger))?;
        for (email, subject) in subjects(trigger, &rows) {
            for occ in triggers::occurrences(&rule, &subject, &tz, from, now) {
                due.push((email.to_string(), occ));
            }
            if until < earliest && first_seen < earliest {
                skipped +=
                    triggers::occurrences(&rule, &subject, &tz, until.max(first_seen), earliest)
                        .len() as u64;
            }
        }
        if skipped > 0 {
            tracing::warn!(
                trigger = name.as_str(),
                skipped,
                "date trigger occurrences older than the catch-up window were skipped (downtime longer than events.catch_up_window)"
            );
        }
        let emails: Vec<String> = due.iter().map(|(e, _)| e.clone()).collect();
        let people = store.people_json(&emails)?;
        let empty = serde_json::Map::new();
        let mut events: Vec<(NewEvent, Vec<String>)> = Vec::new();
        for (email, occ) in &due {
            let person = people.get(email).unwrap_or(&empty);
            let ev = events::lifecycle_event(name, trigger.event.name(), email, occ, person, now);
            let endpoints = routing.route(&ev);
            events.push((ev, endpoints));
        }
        let late = events.iter().filter(|(e, _)| e.late).count() as u64;
        let fired = store.record_trigger_run(
            name,
            &first_seen.to_string(),
            &now.to_string(),
            &events,
            &now_text,
        )?;
        reports.push(TriggerReport {
            trigger: name.clone(),
            fired,
            late: if fired == 0 { 0 } else { late.min(fired) },
            skipped,
        });
    }
    Ok(reports)
}

/// The `people` columns a trigger reads, in the order [`subjects`] expects: work email,
/// status, end date, the trigger's date field, then the fields of its `when:` conditions.
pub fn columns(trigger: &Trigger) -> Vec<String> {
    let field = trigger
        .field
        .clone()
        .or_else(|| trigger.event.default_field().map(str::to_string))
        .unwrap_or_default();
    let mut columns = vec![
        "work_email".to_string(),
        "status".to_string(),
        "end_date".to_string(),
        field,
    ];
    columns.extend(trigger.when.keys().cloned());
    columns
}

/// The people a trigger is about, from rows read with [`columns`]: everyone with an email and
/// a readable date who matches the trigger's `when:` conditions (case-insensitive), as the
/// [`Subject`] the calendar arithmetic needs (leavers are marked; the rule decides).
pub fn subjects<'r>(
    trigger: &'r Trigger,
    rows: &'r [Vec<Option<String>>],
) -> impl Iterator<Item = (&'r str, Subject)> + 'r {
    rows.iter().filter_map(move |row| {
        let (Some(email), Some(date)) = (&row[0], &row[3]) else {
            return None;
        };
        let date = parse_date(date)?;
        let matches = trigger.when.values().enumerate().all(|(i, allowed)| {
            row[4 + i]
                .as_deref()
                .is_some_and(|v| allowed.values().iter().any(|a| a.eq_ignore_ascii_case(v)))
        });
        matches.then(|| {
            (
                email.as_str(),
                Subject {
                    date,
                    end_date: row[2].as_deref().and_then(parse_date),
                    left: row[1].as_deref() == Some("terminated"),
                },
            )
        })
    })
}

/// One occurrence a trigger will fire, as `roster events upcoming` lists it.
#[derive(Debug, Clone)]
pub struct Upcoming {
    /// The trigger's name.
    pub trigger: String,
    /// The occurrence (its day, when it fires, the years for yearly ones).
    pub occurrence: Occurrence,
    /// The event as it would be written at its fire time (never late).
    pub event: NewEvent,
    /// The endpoints it would go to (empty: no endpoint subscribes).
    pub endpoints: Vec<String>,
}

/// Every occurrence of every trigger (or of `only` the named one) with `from < fire time <=
/// to`, as the daemon would fire it on time, with the endpoints it is routed to: the same
/// rules as [`evaluate`] (offsets, conditions, 29 February, leavers) against the people of
/// `directory`. In fire order, then by trigger and person.
pub fn upcoming(
    cfg: &Config,
    directory: &crate::store::read::Directory,
    only: Option<&str>,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<Upcoming>, StoreError> {
    let spec = &cfg.deployment.spec;
    let tz = spec.time_zone.time_zone();
    let routing = Routing::from_deployment(spec);
    let mut found: Vec<(String, &Trigger, String, Occurrence)> = Vec::new();
    for (name, trigger) in &spec.triggers {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let rule = rule(trigger, spec.events.leap_day);
        let rows = directory.trigger_rows(&columns(trigger))?;
        for (email, subject) in subjects(trigger, &rows) {
            for occ in triggers::occurrences(&rule, &subject, &tz, from, to) {
                found.push((name.clone(), trigger, email.to_string(), occ));
            }
        }
    }
    let emails: Vec<String> = found.iter().map(|(_, _, e, _)| e.clone()).collect();
    let people = directory.people_json(&emails)?;
    let empty = serde_json::Map::new();
    let mut out: Vec<Upcoming> = found
        .into_iter()
        .map(|(name, trigger, email, occ)| {
            let person = people.get(&email).unwrap_or(&empty);
            let event = events::lifecycle_event(
                &name,
                trigger.event.name(),
                &email,
                &occ,
                person,
                occ.fire_at,
            );
            let endpoints = routing.route(&event);
            Upcoming {
                trigger: name,
                occurrence: occ,
                event,
                endpoints,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (a.occurrence.fire_at, &a.trigger, &a.event.work_email).cmp(&(
            b.occurrence.fire_at,
            &b.trigger,
            &b.event.work_email,
        ))
    });
    Ok(out)
}

fn parse_date(s: &str) -> Option<jiff::civil::Date> {
    s.get(..10)?.parse().ok()
}
