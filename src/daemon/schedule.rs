//! When each source syncs next: a source's schedule as a [`Plan`], and [`Plan::next`], which
//! turns the last run's start, the current instant and a random number into the next start.
//!
//! Pure: no clock reads, no randomness of its own, no I/O. The daemon passes `now` and a
//! random number in `0..1` (fastrand), and the last start from the store, so restarts and
//! tests see the same rules.
//!
//! # Rules
//!
//! - **Never synced** (`last_start` is `None`): soon, `now + random × min(jitter, 1m)`, so a
//!   new source (or a fresh install) gets a directory without waiting a whole interval, and
//!   several new sources do not all start in the same second. Cron schedules use a 1m spread.
//! - **`every`**: `last_start + every + random × jitter`. Defaults: every 4h, jitter 10m;
//!   jitter never exceeds half of `every` (compile refuses more; the plan clamps it too).
//!   If that instant has already passed (the daemon was down), one catch-up run soon:
//!   `now + random × min(jitter, 1m)`, not one run per missed interval.
//! - **`cron`**: the first cron time strictly after `last_start`, evaluated on the wall clock
//!   of the company time zone through croner's `jiff::Zoned` support, so `0 6 * * MON-FRI` is
//!   06:00 local on both sides of a DST change. When the clock skips (spring forward) a time
//!   in the gap runs once, at the first instant after the gap; when it repeats (fall back) it
//!   runs once, on the first pass (croner follows the Open Cron Pattern Specification).
//!   If that cron time is in the past (a run was missed during downtime): one catch-up run,
//!   `now + random × 1m`. A cron time less than [`CRON_GRACE`] late (the daemon woke a few
//!   milliseconds after it, or re-planned on a reload at that second) is not "missed": it is
//!   due now, with no jitter, so a cron schedule stays punctual.
//! - **Clock stepped back** (`last_start` after `now`): the last start counts as `now`, so a
//!   clock correction never delays a sync by more than one interval.
//!
//! The result is never before `now`. Each call draws its jitter from `random`: call it once
//! per run (and on reload) and keep the answer, rather than re-planning in a loop.
//!
//! Not here: deciding *whether* a source may start (one sync per source at a time), sleeping,
//! and the daily evaluation of date triggers; the daemon loop owns those.

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::config::compile;
use crate::config::deployment::Schedule;
use crate::config::value::CronExpr;

/// Default interval when a source gives neither `every` nor `cron`.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(4 * 3600);
/// Default jitter for `every` schedules (capped at half of `every`).
pub const DEFAULT_JITTER: Duration = Duration::from_secs(10 * 60);
/// The most a catch-up or first run is spread by.
pub const CATCH_UP_SPREAD: Duration = Duration::from_secs(60);
/// How late a cron time may be before it counts as missed.
pub const CRON_GRACE: Duration = Duration::from_secs(60);
/// The shortest interval the plan accepts (compile refuses shorter ones); a zero interval
/// would make the daemon spin.
const MIN_EVERY: Duration = Duration::from_secs(60);
/// When a cron expression matches no time at all (`0 0 30 2 *`), the next try is this far
/// ahead; the daemon re-plans after every run and reload anyway.
const NEVER: Duration = Duration::from_secs(366 * 24 * 3600);

/// A source's schedule, ready to compute start times.
#[derive(Debug, Clone)]
pub enum Plan {
    /// At an interval, plus a random delay of up to `jitter`.
    Every {
        /// The interval between starts.
        every: Duration,
        /// The most random delay added to each start (at most half of `every`).
        jitter: Duration,
    },
    /// At the times of a cron expression, on the wall clock of `tz`.
    Cron {
        /// The five-field expression (parsed, and as written: croner's own text turns
        /// `MON-FRI` into `1-5`).
        cron: CronExpr,
        /// The company time zone.
        tz: TimeZone,
    },
}

impl Plan {
    /// The plan for a source's `schedule:` as written. `tz` is the company time zone
    /// (`time_zone:`), used by cron schedules. Defaults apply as described in the module
    /// docs; compile refuses `every` together with `cron`, and should both arrive, cron wins.
    pub fn new(s: &Schedule, tz: &TimeZone) -> Plan {
        if let Some(cron) = &s.cron {
            return Plan::cron(cron, tz);
        }
        let every = s.every.as_ref().map_or(DEFAULT_EVERY, |d| d.get());
        let jitter = s.jitter.as_ref().map_or(DEFAULT_JITTER, |d| d.get());
        Plan::every(every, jitter)
    }

    /// The plan for a compiled source schedule (`SourcePlan::schedule`, defaults already
    /// applied); same rules as [`Plan::new`].
    pub fn from_compiled(s: &compile::Schedule, tz: &TimeZone) -> Plan {
        match s {
            compile::Schedule::Every { period, jitter } => Plan::every(*period, *jitter),
            compile::Schedule::Cron(cron) => Plan::cron(cron, tz),
        }
    }

    fn cron(cron: &CronExpr, tz: &TimeZone) -> Plan {
        Plan::Cron {
            cron: cron.clone(),
            tz: tz.clone(),
        }
    }

    fn every(every: Duration, jitter: Duration) -> Plan {
        let every = every.max(MIN_EVERY);
        Plan::Every {
            every,
            jitter: jitter.min(every / 2),
        }
    }

    /// When the next sync should start (never before `now`).
    ///
    /// `last_start`: the start of the source's last run, whatever its outcome, from the store
    /// (`None`: never synced). `random`: a number in `0..1` that picks the jitter (values
    /// outside are clamped, NaN counts as 0).
    pub fn next(&self, last_start: Option<Timestamp>, now: Timestamp, random: f64) -> Timestamp {
        let random = if random.is_finite() {
            random.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let soon = add(now, self.catch_up_spread().mul_f64(random));
        let Some(last) = last_start else {
            return soon;
        };
        // A clock stepped back must not push the next run further than one interval away.
        let last = last.min(now);
        match self {
            Plan::Every { every, jitter } => {
                let due = add(add(last, *every), jitter.mul_f64(random));
                if due < now { soon } else { due }
            }
            Plan::Cron { cron, tz } => {
                let Ok(next) = cron
                    .cron()
                    .find_next_occurrence(&last.to_zoned(tz.clone()), false)
                else {
                    // Only an expression that never matches gets here.
                    return add(now, NEVER);
                };
                let next = next.timestamp();
                if next >= now {
                    next
                } else if add(next, CRON_GRACE) >= now {
                    now
                } else {
                    soon
                }
            }
        }
    }

    /// The plan in words, for logs and `/status`: `every 4h (jitter 10m)`,
    /// `cron 0 6 * * MON-FRI (Europe/Berlin)`.
    pub fn describe(&self) -> String {
        match self {
            Plan::Every { every, jitter } if jitter.is_zero() => {
                format!("every {} (no jitter)", human(*every))
            }
            Plan::Every { every, jitter } => {
                format!("every {} (jitter {})", human(*every), human(*jitter))
            }
            Plan::Cron { cron, tz } => format!(
                "cron {} ({})",
                cron.as_str(),
                tz.iana_name().unwrap_or("fixed offset")
            ),
        }
    }

    fn catch_up_spread(&self) -> Duration {
        match self {
            Plan::Every { jitter, .. } => (*jitter).min(CATCH_UP_SPREAD),
            Plan::Cron { .. } => CATCH_UP_SPREAD,
        }
    }
}

/// `t + d`, saturating at the end of jiff's range.
fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// A duration the way the config writes it: `4h`, `1h30m`, `90s` → `1m30s`, `7d`.
fn human(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return if d.is_zero() {
            "0s".into()
        } else {
            format!("{}ms", d.as_millis())
        };
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::value::Duration as ConfigDuration;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    fn schedule(every: Option<&str>, jitter: Option<&str>, cron: Option<&str>) -> Schedule {
        Schedule {
            every: every.map(|s| ConfigDuration::parse(s).unwrap()),
            jitter: jitter.map(|s| ConfigDuration::parse(s).unwrap()),
            cron: cron.map(|s| CronExpr::parse(s).unwrap()),
        }
    }

    fn mins(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    #[test]
    fn defaults_are_every_4h_with_10m_jitter() {
        let plan = Plan::new(&Schedule::default(), &berlin());
        let Plan::Every { every, jitter } = plan else {
            panic!("default must be an interval: {plan:?}")
        };
        assert_eq!((every, jitter), (Duration::from_secs(4 * 3600), mins(10)));
        assert_eq!(plan.describe(), "every 4h (jitter 10m)");

        let last = ts("2026-05-04T08:00:00Z");
        let now = ts("2026-05-04T09:00:00Z");
        assert_eq!(plan.next(Some(last), now, 0.0), ts("2026-05-04T12:00:00Z"));
        assert_eq!(plan.next(Some(last), now, 0.5), ts("2026-05-04T12:05:00Z"));
    }

    #[test]
    fn compiled_and_written_schedules_agree() {
        let tz = berlin();
        let written = Plan::new(&schedule(Some("1h"), Some("5m"), None), &tz);
        let compiled = Plan::from_compiled(
            &compile::Schedule::Every {
                period: Duration::from_secs(3600),
                jitter: mins(5),
            },
            &tz,
        );
        assert_eq!(written.describe(), compiled.describe());
        let cron = CronExpr::parse("0 6 * * MON-FRI").unwrap();
        assert_eq!(
            Plan::from_compiled(&compile::Schedule::Cron(cron), &tz).describe(),
            "cron 0 6 * * MON-FRI (Europe/Berlin)"
        );
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let plan = Plan::new(&schedule(Some("1h"), Some("10m"), None), &berlin());
        let last = ts("2026-05-04T08:00:00Z");
        let now = ts("2026-05-04T08:30:00Z");
        let base = ts("2026-05-04T09:00:00Z");
        let top = ts("2026-05-04T09:10:00Z");
        for i in 0..=100 {
            let r = f64::from(i) / 100.0;
            let next = plan.next(Some(last), now, r);
            assert!(base <= next && next <= top, "random {r}: {next}");
        }
        // Out-of-range randomness is clamped rather than trusted.
        assert_eq!(plan.next(Some(last), now, -3.0), base);
        assert_eq!(plan.next(Some(last), now, 7.0), top);
        assert_eq!(plan.next(Some(last), now, f64::NAN), base);
    }

    #[test]
    fn jitter_is_capped_at_half_of_every() {
        let cases = [
            // (every, jitter, expected jitter)
            (Some("10m"), Some("1h"), mins(5)),
            (Some("10m"), None, mins(5)), // the 10m default is capped too
            (Some("2h"), Some("1h"), mins(60)),
            (Some("2h"), Some("0s"), Duration::ZERO),
            (Some("0s"), None, Duration::from_secs(30)), // interval clamped to 1m
        ];
        for (every, jitter, want) in cases {
            let plan = Plan::new(&schedule(every, jitter, None), &berlin());
            let Plan::Every { jitter: got, .. } = plan else {
                panic!("{plan:?}")
            };
            assert_eq!(got, want, "every {every:?} jitter {jitter:?}");
        }
        let plan = Plan::new(&schedule(Some("2h"), Some("0s"), None), &berlin());
        assert_eq!(plan.describe(), "every 2h (no jitter)");
        let plan = Plan::new(&schedule(Some("1h30m"), Some("90s"), None), &berlin());
        assert_eq!(plan.describe(), "every 1h30m (jitter 1m30s)");
    }

    #[test]
    fn downtime_catches_up_once() {
        let plan = Plan::new(&schedule(Some("1h"), Some("10m"), None), &berlin());
        // Down for a day: 24 intervals missed, one run soon, then back on the interval.
        let last = ts("2026-05-04T08:00:00Z");
        let now = ts("2026-05-05T08:00:00Z");
        assert_eq!(plan.next(Some(last), now, 0.0), now);
        // Catch-up spread is min(jitter, 1m).
        assert_eq!(plan.next(Some(last), now, 0.5), ts("2026-05-05T08:00:30Z"));
        assert_eq!(plan.next(Some(last), now, 1.0), ts("2026-05-05T08:01:00Z"));
        // That catch-up run becomes the last start: the next one is an interval later.
        let caught_up = ts("2026-05-05T08:00:30Z");
        assert_eq!(
            plan.next(Some(caught_up), ts("2026-05-05T08:05:00Z"), 0.0),
            ts("2026-05-05T09:00:30Z")
        );
    }

    #[test]
    fn never_synced_starts_soon() {
        let now = ts("2026-05-04T09:00:00Z");
        let cases = [
            // (schedule, random, expected)
            (schedule(None, None, None), 0.0, now),
            (schedule(None, None, None), 1.0, ts("2026-05-04T09:01:00Z")),
            (
                schedule(Some("1h"), Some("20s"), None),
                1.0,
                ts("2026-05-04T09:00:20Z"),
            ),
            (
                schedule(None, None, Some("0 6 * * MON-FRI")),
                0.5,
                ts("2026-05-04T09:00:30Z"),
            ),
        ];
        for (s, r, want) in cases {
            let plan = Plan::new(&s, &berlin());
            assert_eq!(plan.next(None, now, r), want, "{}", plan.describe());
        }
    }

    #[test]
    fn clock_stepped_back_delays_at_most_one_interval() {
        let plan = Plan::new(&schedule(Some("1h"), Some("0s"), None), &berlin());
        let last = ts("2026-05-05T09:00:00Z"); // recorded before the clock went back a day
        let now = ts("2026-05-04T09:00:00Z");
        assert_eq!(plan.next(Some(last), now, 0.0), ts("2026-05-04T10:00:00Z"));
    }

    #[test]
    fn cron_weekdays_in_berlin_across_dst() {
        // Europe/Berlin springs forward on Sunday 2026-03-29 (02:00 CET → 03:00 CEST).
        let plan = Plan::new(&schedule(None, None, Some("0 6 * * MON-FRI")), &berlin());
        assert_eq!(plan.describe(), "cron 0 6 * * MON-FRI (Europe/Berlin)");
        let check = |last: &str, now: &str, want: &str| {
            assert_eq!(
                plan.next(Some(ts(last)), ts(now), 0.5),
                ts(want),
                "last {last}, now {now}"
            );
        };
        // Thursday 06:00 CET (05:00Z) → Friday 06:00 CET.
        check(
            "2026-03-26T05:00:00Z",
            "2026-03-26T05:00:01Z",
            "2026-03-27T05:00:00Z",
        );
        // Friday 06:00 CET → Monday 06:00 CEST, which is 04:00Z: the weekend's DST change
        // moves the UTC time, not the local one.
        check(
            "2026-03-27T05:00:00Z",
            "2026-03-27T05:00:02Z",
            "2026-03-30T04:00:00Z",
        );
        // A run that took a while (last start is the run's start, not its end).
        check(
            "2026-03-30T04:00:00Z",
            "2026-03-30T04:20:00Z",
            "2026-03-31T04:00:00Z",
        );
        // Falls back on 2026-10-25 (03:00 CEST → 02:00 CET): Friday 04:00Z → Monday 05:00Z.
        check(
            "2026-10-23T04:00:00Z",
            "2026-10-23T04:00:02Z",
            "2026-10-26T05:00:00Z",
        );
    }

    #[test]
    fn cron_in_the_dst_gap_and_overlap_runs_once() {
        let plan = Plan::new(&schedule(None, None, Some("30 2 * * *")), &berlin());
        // 02:30 does not exist on 2026-03-29 in Berlin: it runs at the end of the gap,
        // 03:00 CEST (01:00Z), then at 02:30 CEST the next day.
        let gap_day = plan.next(
            Some(ts("2026-03-28T01:30:00Z")),
            ts("2026-03-28T01:30:05Z"),
            0.0,
        );
        assert_eq!(gap_day, ts("2026-03-29T01:00:00Z"));
        assert_eq!(
            plan.next(Some(gap_day), gap_day, 0.0),
            ts("2026-03-30T00:30:00Z")
        );
        // 02:30 happens twice on 2026-10-25: once, on the first pass (02:30 CEST, 00:30Z).
        let fold_day = plan.next(
            Some(ts("2026-10-24T00:30:00Z")),
            ts("2026-10-24T00:30:05Z"),
            0.0,
        );
        assert_eq!(fold_day, ts("2026-10-25T00:30:00Z"));
        assert_eq!(
            plan.next(Some(fold_day), fold_day, 0.0),
            ts("2026-10-26T01:30:00Z")
        );
    }

    #[test]
    fn missed_cron_runs_once_soon_and_on_time_cron_stays_punctual() {
        let plan = Plan::new(&schedule(None, None, Some("0 6 * * *")), &berlin());
        let last = ts("2026-05-04T04:00:00Z"); // Monday 06:00 CEST
        // Down from Monday evening to Thursday noon: one catch-up run within a minute.
        let now = ts("2026-05-07T10:00:00Z");
        assert_eq!(plan.next(Some(last), now, 0.0), now);
        assert_eq!(plan.next(Some(last), now, 0.5), ts("2026-05-07T10:00:30Z"));
        // The daemon woke a moment after 06:00 and re-planned: due now, no jitter.
        let now = ts("2026-05-05T04:00:00.004Z");
        assert_eq!(plan.next(Some(last), now, 0.9), now);
        // Before the time: that time.
        let now = ts("2026-05-05T03:59:00Z");
        assert_eq!(plan.next(Some(last), now, 0.9), ts("2026-05-05T04:00:00Z"));
    }

    #[test]
    fn a_cron_that_never_matches_is_refused_by_the_config() {
        // 30 February never comes: `CronExpr::parse` refuses it, so `next` never meets one
        // (its one-year fallback stays as a guard).
        assert!(CronExpr::parse("0 0 30 2 *").is_err());
    }

    #[test]
    fn next_is_never_before_now() {
        let plans = [
            Plan::new(&schedule(None, None, None), &berlin()),
            Plan::new(&schedule(Some("1m"), Some("30s"), None), &berlin()),
            Plan::new(&schedule(None, None, Some("*/5 * * * *")), &berlin()),
            Plan::new(&schedule(None, None, Some("0 0 29 2 *")), &berlin()),
        ];
        let last = ts("2026-05-04T04:00:00Z");
        for plan in &plans {
            for hours in [0, 1, 3, 5, 30, 24 * 400] {
                let now = add(last, Duration::from_secs(hours * 3600));
                for r in [0.0, 0.3, 0.999] {
                    let next = plan.next(Some(last), now, r);
                    assert!(next >= now, "{}: {next} < {now}", plan.describe());
                }
            }
        }
    }

    #[test]
    fn human_durations() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (90, "1m30s"),
            (3600, "1h"),
            (5400, "1h30m"),
            (7 * 86_400, "7d"),
            (86_400 + 3_601, "1d1h1s"),
        ];
        for (secs, want) in cases {
            assert_eq!(human(Duration::from_secs(secs)), want);
        }
        assert_eq!(human(Duration::from_millis(250)), "250ms");
    }
}
