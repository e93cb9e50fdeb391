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
        let field = trigger
            .field
            .clone()
            .or_else(|| trigger.event.default_field().map(str::to_string))
            .unwrap_or_default();
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
        let mut columns = vec![
            "work_email".to_string(),
            "status".to_string(),
            "end_date".to_string(),
            field.clone(),
        ];
        let conds: Vec<&String> = trigger.when.keys().collect();
        columns.extend(conds.iter().map(|c| c.to_string()));
        let mut due: Vec<(String, Occurrence)> = Vec::new();
        let mut skipped = 0u64;
        for row in store.trigger_rows(&columns)? {
            let (Some(email), Some(date)) = (&row[0], &row[3]) else {
                continue;
            };
            let Some(date) = parse_date(date) else {
                continue;
            };
            let matches = conds.iter().enumerate().all(|(i, c)| {
                row[4 + i].as_deref().is_some_and(|v| {
                    trigger.when[*c]
                        .values()
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(v))
                })
            });
            if !matches {
                continue;
            }
            let subject = Subject {
                date,
                end_date: row[2].as_deref().and_then(parse_date),
                left: row[1].as_deref() == Some("terminated"),
            };
            for occ in triggers::occurrences(&rule, &subject, &tz, from, now) {
                due.push((email.clone(), occ));
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

fn parse_date(s: &str) -> Option<jiff::civil::Date> {
    s.get(..10)?.parse().ok()
}
