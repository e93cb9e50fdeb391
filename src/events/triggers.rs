//! Which occurrences of a date trigger fall due in a time window: pure, no I/O and no clock
//! (every instant is an argument), so the daemon decides what "now" and "last run" are.
//!
//! A trigger reads one date from a person (start date, end date, probation end, birth date, a
//! custom date) and fires either once, on that date, or every year on its month and day. The
//! rules:
//!
//! - **When it fires.** The occurrence's date, moved by the offset's whole days as *calendar*
//!   days, at the trigger's local time `at` in the company time zone; any remainder of the
//!   offset (the `2h` of `-1d2h`) is then applied as exact elapsed time. So `-7d` at `09:00`
//!   fires at 09:00 local a week before, even when a daylight-saving change lies in between.
//! - **Daylight saving.** A local time that does not exist (in the spring-forward gap) moves
//!   forward by the length of the gap: 02:30 becomes 03:30. A local time that exists twice (in
//!   the fall-back fold) fires at the earlier of the two instants. This is jiff's (and RFC
//!   5545's) "compatible" disambiguation.
//! - **Yearly triggers** start `first_year` years after the date: 1 for work anniversaries and
//!   birthdays alike, so nothing fires on the start date or the day of birth itself. `years` is
//!   the number of calendar years since the date (the anniversary number, the age).
//! - **29 February.** A yearly trigger on 29 February fires on 29 February in leap years, and on
//!   28 February or 1 March in other years, as the deployment's `leap_day` setting says.
//! - **Leavers.** Yearly triggers that skip leavers (birthdays, anniversaries) fire for nobody
//!   whose status says they have left, and never for a date after the person's end date (on the
//!   end date itself they still fire). One-off triggers ignore this: the end-date event of a
//!   leaver is the point.
//! - **Windows** are `from < fire time <= to`: the daemon passes its last run as `from` and now
//!   as `to`, so consecutive windows neither miss nor repeat an occurrence, and a window that
//!   spans downtime returns everything missed, in fire order. Deciding how far back to catch up
//!   is the caller's business.
//! - **Never a panic.** A date (or a date plus offset) outside jiff's range, years -9999 to
//!   9999, simply has no occurrence.
//!
//! This module does not read people, conditions (`when:`) or the store, and does not decide
//! whether an occurrence is late; it only does calendar arithmetic.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

/// Seconds in a calendar day, for splitting an offset into whole days and a remainder.
const SECONDS_PER_DAY: i64 = 86_400;

/// Seconds in 365 days: the shortest year, so dividing by it never under-counts years.
const SECONDS_PER_YEAR: u64 = 365 * 86_400;

/// The years jiff's civil dates can hold.
const YEARS: std::ops::RangeInclusive<i32> = -9999..=9999;

/// How a trigger repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recurrence {
    /// Fires once, on the date itself (start date, end date, probation end, custom dates).
    Once,
    /// Fires every year on the date's month and day, starting `first_year` years after the
    /// date: 1 for both work anniversaries and birthdays (no "0th anniversary" on the start
    /// date, no event on the day of birth). A negative value is treated as 0.
    Yearly {
        /// How many years after the date the first occurrence is.
        first_year: i16,
    },
}

/// Where 29 February falls in a non-leap year.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LeapDay {
    /// 28 February (the default).
    #[default]
    Feb28,
    /// 1 March.
    Mar1,
}

/// One trigger, compiled: how it repeats and when in the day it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Once or every year.
    pub recurrence: Recurrence,
    /// Fire this long before (negative) or after the date. Whole days are calendar days on the
    /// local date (so `-7d` across a DST change still fires at `at` local time); any remainder
    /// (e.g. `-2h`) is then applied as an exact duration.
    pub offset: SignedDuration,
    /// Local time of day the occurrence fires, in the company time zone.
    pub at: Time,
    /// Yearly occurrences are not fired for people who have left (birthdays, anniversaries),
    /// nor for dates after their end date. Ignored by [`Recurrence::Once`].
    pub skip_leavers: bool,
    /// Where a 29 February date falls in non-leap years.
    pub leap_day: LeapDay,
}

/// What the rule reads from one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    /// The person's date the trigger is about: start date, birth date, ...
    pub date: Date,
    /// The person's end date, if any.
    pub end_date: Option<Date>,
    /// The person's status says they have left.
    pub left: bool,
}

/// One occurrence of a trigger for one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    /// The day the event is about: the date itself for `Once`; for `Yearly`, the month and day
    /// in that year after the leap-day rule (so 2027-02-28 for a 29 February birthday with
    /// [`LeapDay::Feb28`]). Before the offset.
    pub date: Date,
    /// When it fires: (`date` + whole offset days) at `at` in the zone, plus the offset
    /// remainder.
    pub fire_at: Timestamp,
    /// Yearly: calendar years since the date (anniversary number, age). `None` for `Once`.
    pub years: Option<i16>,
}

/// Every occurrence with `from < fire_at <= to`, in fire order.
///
/// `from >= to` gives nothing. Occurrences that cannot be computed (dates outside jiff's
/// range) are left out.
pub fn occurrences(
    rule: &Rule,
    subject: &Subject,
    tz: &TimeZone,
    from: Timestamp,
    to: Timestamp,
) -> Vec<Occurrence> {
    if from >= to {
        return Vec::new();
    }
    let mut found = match rule.recurrence {
        Recurrence::Once => once(rule, subject, tz).into_iter().collect(),
        Recurrence::Yearly { first_year } => yearly(rule, subject, first_year, tz, from, to),
    };
    found.retain(|o| from < o.fire_at && o.fire_at <= to);
    // Yearly dates strictly increase and firing is monotonic in the date, so this is already
    // in order; sorting keeps the promise without relying on that argument.
    found.sort_by_key(|o| o.fire_at);
    found
}

/// The one occurrence of a `Once` rule, whatever the window.
fn once(rule: &Rule, subject: &Subject, tz: &TimeZone) -> Option<Occurrence> {
    Some(Occurrence {
        date: subject.date,
        fire_at: fire_at(rule, subject.date, tz)?,
        years: None,
    })
}

/// The yearly occurrences whose fire time can fall in the window (a superset; the caller
/// filters by the exact window).
fn yearly(
    rule: &Rule,
    subject: &Subject,
    first_year: i16,
    tz: &TimeZone,
    from: Timestamp,
    to: Timestamp,
) -> Vec<Occurrence> {
    if rule.skip_leavers && subject.left {
        return Vec::new();
    }
    let first = i32::from(subject.date.year()) + i32::from(first_year.max(0));
    let (lo, hi) = candidate_years(rule.offset, tz, from, to);
    let after_end =
        |date: &Date| rule.skip_leavers && subject.end_date.is_some_and(|end| *date > end);
    (lo.max(first)..=hi)
        .filter_map(|year| in_year(subject.date, year, rule.leap_day))
        .take_while(|date| !after_end(date))
        .filter_map(|date| {
            Some(Occurrence {
                date,
                fire_at: fire_at(rule, date, tz)?,
                years: Some(date.year().checked_sub(subject.date.year())?),
            })
        })
        .collect()
}

/// The years whose occurrence can fire in the window, clamped to jiff's range: the window's
/// local years widened by the offset in years, plus two years either side for the offset's
/// leftover days and remainder (a year boundary can fall in either).
fn candidate_years(
    offset: SignedDuration,
    tz: &TimeZone,
    from: Timestamp,
    to: Timestamp,
) -> (i32, i32) {
    let offset_years = offset.as_secs().unsigned_abs() / SECONDS_PER_YEAR;
    // Capped at the width of jiff's range (a larger offset leaves every date out of range
    // anyway), so the additions below stay far from overflow.
    let margin = i32::try_from(offset_years.min(20_000)).unwrap_or(20_000) + 2;
    let lo = i32::from(tz.to_datetime(from).year()) - margin;
    let hi = i32::from(tz.to_datetime(to).year()) + margin;
    (lo.max(*YEARS.start()), hi.min(*YEARS.end()))
}

/// `date`'s month and day in `year`; 29 February in a non-leap year goes where `leap_day`
/// says. `None` when the year is outside jiff's range.
fn in_year(date: Date, year: i32, leap_day: LeapDay) -> Option<Date> {
    let year = i16::try_from(year).ok()?;
    if let Ok(same) = Date::new(year, date.month(), date.day()) {
        return Some(same);
    }
    // The only month and day missing from some years is 29 February.
    match leap_day {
        LeapDay::Feb28 => Date::new(year, 2, 28).ok(),
        LeapDay::Mar1 => Date::new(year, 3, 1).ok(),
    }
}

/// When an occurrence on `date` fires: the date moved by the offset's whole days, at the
/// rule's local time (compatible disambiguation), plus the offset's remainder.
fn fire_at(rule: &Rule, date: Date, tz: &TimeZone) -> Option<Timestamp> {
    let (days, remainder) = split_offset(rule.offset);
    let day = date.checked_add(Span::new().try_days(days).ok()?).ok()?;
    let local = tz
        .to_ambiguous_timestamp(day.to_datetime(rule.at))
        .compatible()
        .ok()?;
    local.checked_add(remainder).ok()
}

/// An offset as whole calendar days and the rest, both with the offset's sign: `-26h` is one
/// day back, then two hours back.
fn split_offset(offset: SignedDuration) -> (i64, SignedDuration) {
    let secs = offset.as_secs();
    let remainder = SignedDuration::new(secs % SECONDS_PER_DAY, offset.subsec_nanos());
    (secs / SECONDS_PER_DAY, remainder)
}

#[cfg(test)]
mod tests {
    use jiff::civil::{date, time};

    use super::*;

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn days(n: i64) -> SignedDuration {
        SignedDuration::from_hours(24 * n)
    }

    fn once() -> Rule {
        Rule {
            recurrence: Recurrence::Once,
            offset: SignedDuration::ZERO,
            at: time(9, 0, 0, 0),
            skip_leavers: false,
            leap_day: LeapDay::Feb28,
        }
    }

    fn yearly() -> Rule {
        Rule {
            recurrence: Recurrence::Yearly { first_year: 1 },
            skip_leavers: true,
            ..once()
        }
    }

    fn person(date: Date) -> Subject {
        Subject {
            date,
            end_date: None,
            left: false,
        }
    }

    /// Each occurrence in the window as `date fires <local time and offset> [#years]`.
    fn fires(rule: &Rule, subject: &Subject, tz: &str, from: &str, to: &str) -> Vec<String> {
        let tz = zone(tz);
        occurrences(rule, subject, &tz, ts(from), ts(to))
            .iter()
            .map(|o| {
                let local = o.fire_at.to_zoned(tz.clone()).strftime("%F %H:%M %:z");
                match o.years {
                    Some(n) => format!("{} fires {local} #{n}", o.date),
                    None => format!("{} fires {local}", o.date),
                }
            })
            .collect()
    }

    /// The UTC fire times in the window.
    fn fire_times(rule: &Rule, subject: &Subject, tz: &str, from: &str, to: &str) -> Vec<String> {
        occurrences(rule, subject, &zone(tz), ts(from), ts(to))
            .iter()
            .map(|o| o.fire_at.to_string())
            .collect()
    }

    const BERLIN: &str = "Europe/Berlin";
    const NEW_YORK: &str = "America/New_York";

    #[test]
    fn a_once_trigger_fires_on_its_date_at_the_local_time() {
        let start = person(date(2026, 5, 4));
        assert_eq!(
            fires(
                &once(),
                &start,
                BERLIN,
                "2026-01-01T00:00Z",
                "2027-01-01T00:00Z"
            ),
            ["2026-05-04 fires 2026-05-04 09:00 +02:00"]
        );
        assert_eq!(
            fire_times(
                &once(),
                &start,
                BERLIN,
                "2026-01-01T00:00Z",
                "2027-01-01T00:00Z"
            ),
            ["2026-05-04T07:00:00Z"]
        );
    }

    #[test]
    fn a_work_anniversary_is_not_fired_on_the_start_date_itself() {
        let start = person(date(2025, 6, 15));
        assert!(
            fires(
                &yearly(),
                &start,
                BERLIN,
                "2025-01-01T00:00Z",
                "2026-01-01T00:00Z"
            )
            .is_empty()
        );
        assert_eq!(
            fires(
                &yearly(),
                &start,
                BERLIN,
                "2026-01-01T00:00Z",
                "2027-01-01T00:00Z"
            ),
            ["2026-06-15 fires 2026-06-15 09:00 +02:00 #1"]
        );
    }

    #[test]
    fn a_birthday_is_not_fired_on_the_day_of_birth() {
        let baby = person(date(2026, 5, 1));
        assert!(
            fires(
                &yearly(),
                &baby,
                BERLIN,
                "2026-01-01T00:00Z",
                "2027-01-01T00:00Z"
            )
            .is_empty()
        );
        assert_eq!(
            fires(
                &yearly(),
                &baby,
                BERLIN,
                "2027-01-01T00:00Z",
                "2028-01-01T00:00Z"
            ),
            ["2027-05-01 fires 2027-05-01 09:00 +02:00 #1"]
        );
    }

    #[test]
    fn first_year_0_fires_on_the_date_itself_and_a_negative_first_year_counts_as_0() {
        let start = person(date(2026, 6, 15));
        for first_year in [0, -5] {
            let rule = Rule {
                recurrence: Recurrence::Yearly { first_year },
                ..yearly()
            };
            assert_eq!(
                fires(
                    &rule,
                    &start,
                    BERLIN,
                    "2020-01-01T00:00Z",
                    "2027-01-01T00:00Z"
                ),
                ["2026-06-15 fires 2026-06-15 09:00 +02:00 #0"],
                "first_year {first_year}"
            );
        }
    }

    #[test]
    fn years_are_calendar_years_since_the_date() {
        let born = person(date(1990, 8, 20));
        assert_eq!(
            fires(
                &yearly(),
                &born,
                BERLIN,
                "2026-01-01T00:00Z",
                "2027-01-01T00:00Z"
            ),
            ["2026-08-20 fires 2026-08-20 09:00 +02:00 #36"]
        );
    }

    #[test]
    fn a_leap_day_birthday_fires_on_28_february_in_2027() {
        let born = person(date(2000, 2, 29));
        assert_eq!(
            fires(
                &yearly(),
                &born,
                BERLIN,
                "2027-01-01T00:00Z",
                "2028-01-01T00:00Z"
            ),
            ["2027-02-28 fires 2027-02-28 09:00 +01:00 #27"]
        );
    }

    #[test]
    fn a_leap_day_birthday_fires_on_1_march_in_2027_with_mar1() {
        let born = person(date(2000, 2, 29));
        let rule = Rule {
            leap_day: LeapDay::Mar1,
            ..yearly()
        };
        assert_eq!(
            fires(
                &rule,
                &born,
                BERLIN,
                "2027-01-01T00:00Z",
                "2028-01-01T00:00Z"
            ),
            ["2027-03-01 fires 2027-03-01 09:00 +01:00 #27"]
        );
    }

    #[test]
    fn a_leap_day_birthday_fires_on_29_february_in_2028_with_either_rule() {
        let born = person(date(2000, 2, 29));
        for leap_day in [LeapDay::Feb28, LeapDay::Mar1] {
            let rule = Rule {
                leap_day,
                ..yearly()
            };
            assert_eq!(
                fires(
                    &rule,
                    &born,
                    BERLIN,
                    "2028-01-01T00:00Z",
                    "2029-01-01T00:00Z"
                ),
                ["2028-02-29 fires 2028-02-29 09:00 +01:00 #28"],
                "{leap_day:?}"
            );
        }
    }

    #[test]
    fn leavers_get_no_yearly_occurrences() {
        let leaver = Subject {
            left: true,
            ..person(date(1990, 8, 20))
        };
        assert!(
            fires(
                &yearly(),
                &leaver,
                BERLIN,
                "2026-01-01T00:00Z",
                "2027-01-01T00:00Z"
            )
            .is_empty()
        );
    }

    #[test]
    fn yearly_occurrences_after_the_end_date_are_skipped_but_the_end_date_itself_fires() {
        let leaving = Subject {
            end_date: Some(date(2026, 6, 30)),
            ..person(date(2020, 6, 30))
        };
        assert_eq!(
            fires(
                &yearly(),
                &leaving,
                BERLIN,
                "2025-01-01T00:00Z",
                "2030-01-01T00:00Z"
            ),
            [
                "2025-06-30 fires 2025-06-30 09:00 +02:00 #5",
                "2026-06-30 fires 2026-06-30 09:00 +02:00 #6",
            ]
        );
        let left_a_day_earlier = Subject {
            end_date: Some(date(2026, 6, 29)),
            ..leaving
        };
        assert_eq!(
            fires(
                &yearly(),
                &left_a_day_earlier,
                BERLIN,
                "2026-01-01T00:00Z",
                "2030-01-01T00:00Z"
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn without_skip_leavers_leavers_still_get_yearly_occurrences() {
        let leaver = Subject {
            left: true,
            end_date: Some(date(2020, 1, 31)),
            ..person(date(1990, 8, 20))
        };
        let rule = Rule {
            skip_leavers: false,
            ..yearly()
        };
        assert_eq!(
            fires(
                &rule,
                &leaver,
                BERLIN,
                "2026-01-01T00:00Z",
                "2027-01-01T00:00Z"
            ),
            ["2026-08-20 fires 2026-08-20 09:00 +02:00 #36"]
        );
    }

    #[test]
    fn once_rules_ignore_skip_leavers_so_a_leaver_gets_the_end_date_event() {
        let leaver = Subject {
            date: date(2026, 6, 30),
            end_date: Some(date(2026, 6, 30)),
            left: true,
        };
        let rule = Rule {
            skip_leavers: true,
            ..once()
        };
        assert_eq!(
            fires(
                &rule,
                &leaver,
                BERLIN,
                "2026-01-01T00:00Z",
                "2027-01-01T00:00Z"
            ),
            ["2026-06-30 fires 2026-06-30 09:00 +02:00"]
        );
    }

    #[test]
    fn berlin_0900_fires_at_0900_local_on_both_sides_of_spring_forward() {
        for (day, utc) in [
            (28, "2026-03-28T08:00:00Z"),
            (29, "2026-03-29T07:00:00Z"),
            (30, "2026-03-30T07:00:00Z"),
        ] {
            let start = person(date(2026, 3, day));
            assert_eq!(
                fire_times(
                    &once(),
                    &start,
                    BERLIN,
                    "2026-03-01T00:00Z",
                    "2026-04-01T00:00Z"
                ),
                [utc]
            );
        }
    }

    #[test]
    fn berlin_0900_fires_at_0900_local_on_both_sides_of_fall_back() {
        for (day, utc) in [
            (24, "2026-10-24T07:00:00Z"),
            (25, "2026-10-25T08:00:00Z"),
            (26, "2026-10-26T08:00:00Z"),
        ] {
            let start = person(date(2026, 10, day));
            assert_eq!(
                fire_times(
                    &once(),
                    &start,
                    BERLIN,
                    "2026-10-01T00:00Z",
                    "2026-11-01T00:00Z"
                ),
                [utc]
            );
        }
    }

    #[test]
    fn new_york_0900_fires_at_0900_local_on_both_sides_of_both_changes() {
        for (day, utc) in [
            (date(2026, 3, 7), "2026-03-07T14:00:00Z"),
            (date(2026, 3, 9), "2026-03-09T13:00:00Z"),
            (date(2026, 10, 31), "2026-10-31T13:00:00Z"),
            (date(2026, 11, 2), "2026-11-02T14:00:00Z"),
        ] {
            assert_eq!(
                fire_times(
                    &once(),
                    &person(day),
                    NEW_YORK,
                    "2026-01-01T00:00Z",
                    "2027-01-01T00:00Z"
                ),
                [utc]
            );
        }
    }

    #[test]
    fn a_week_before_across_a_dst_change_still_fires_at_0900_local() {
        let week_before = Rule {
            offset: days(-7),
            ..once()
        };
        let cases = [
            // Berlin, spring forward on 29 March: the date is in CEST, the fire time in CET.
            (BERLIN, date(2026, 4, 2), "2026-03-26 09:00 +01:00"),
            // Berlin, fall back on 25 October: the date is in CET, the fire time in CEST.
            (BERLIN, date(2026, 10, 29), "2026-10-22 09:00 +02:00"),
            // New York, spring forward on 8 March and fall back on 1 November.
            (NEW_YORK, date(2026, 3, 12), "2026-03-05 09:00 -05:00"),
            (NEW_YORK, date(2026, 11, 5), "2026-10-29 09:00 -04:00"),
        ];
        for (tz, day, local) in cases {
            assert_eq!(
                fires(
                    &week_before,
                    &person(day),
                    tz,
                    "2026-01-01T00:00Z",
                    "2027-01-01T00:00Z"
                ),
                [format!("{day} fires {local}")],
                "{tz}"
            );
        }
    }

    #[test]
    fn a_time_in_the_spring_forward_gap_moves_forward() {
        let rule = Rule {
            at: time(2, 30, 0, 0),
            ..once()
        };
        let day = person(date(2026, 3, 29));
        assert_eq!(
            fires(
                &rule,
                &day,
                BERLIN,
                "2026-03-01T00:00Z",
                "2026-04-01T00:00Z"
            ),
            ["2026-03-29 fires 2026-03-29 03:30 +02:00"]
        );
    }

    #[test]
    fn a_time_in_the_fall_back_fold_fires_at_the_earlier_instant() {
        let rule = Rule {
            at: time(2, 30, 0, 0),
            ..once()
        };
        let day = person(date(2026, 10, 25));
        assert_eq!(
            fires(
                &rule,
                &day,
                BERLIN,
                "2026-10-01T00:00Z",
                "2026-11-01T00:00Z"
            ),
            ["2026-10-25 fires 2026-10-25 02:30 +02:00"]
        );
        assert_eq!(
            fire_times(
                &rule,
                &day,
                BERLIN,
                "2026-10-01T00:00Z",
                "2026-11-01T00:00Z"
            ),
            ["2026-10-25T00:30:00Z"]
        );
    }

    #[test]
    fn an_offset_in_hours_is_exact_time_before_the_local_time() {
        // 04:00 CEST on the spring-forward day minus three real hours is 00:00 CET: the
        // clock reads four hours earlier because one hour never happened.
        let rule = Rule {
            offset: SignedDuration::from_hours(-3),
            at: time(4, 0, 0, 0),
            ..once()
        };
        assert_eq!(
            fires(
                &rule,
                &person(date(2026, 3, 29)),
                BERLIN,
                "2026-03-01T00:00Z",
                "2026-04-01T00:00Z"
            ),
            ["2026-03-29 fires 2026-03-29 00:00 +01:00"]
        );
    }

    #[test]
    fn an_offset_of_days_and_hours_goes_back_calendar_days_then_exact_hours() {
        // -26h is one calendar day back (30 → 29 March, 09:00 CEST) and then two hours.
        let rule = Rule {
            offset: SignedDuration::from_hours(-26),
            ..once()
        };
        assert_eq!(
            fires(
                &rule,
                &person(date(2026, 3, 30)),
                BERLIN,
                "2026-03-01T00:00Z",
                "2026-04-01T00:00Z"
            ),
            ["2026-03-30 fires 2026-03-29 07:00 +02:00"]
        );
        // +1d2h is the next calendar day at 09:00, then two hours later.
        let rule = Rule {
            offset: SignedDuration::from_hours(26),
            ..once()
        };
        assert_eq!(
            fires(
                &rule,
                &person(date(2026, 3, 28)),
                BERLIN,
                "2026-03-01T00:00Z",
                "2026-04-01T00:00Z"
            ),
            ["2026-03-28 fires 2026-03-29 11:00 +02:00"]
        );
    }

    #[test]
    fn the_window_excludes_from_and_includes_to() {
        // 2026-05-04 09:00 in Berlin is 07:00 UTC.
        let start = person(date(2026, 5, 4));
        assert!(
            fires(
                &once(),
                &start,
                BERLIN,
                "2026-05-04T07:00Z",
                "2026-05-05T00:00Z"
            )
            .is_empty()
        );
        assert_eq!(
            fire_times(
                &once(),
                &start,
                BERLIN,
                "2026-05-04T00:00Z",
                "2026-05-04T07:00Z"
            ),
            ["2026-05-04T07:00:00Z"]
        );
        assert!(
            fires(
                &once(),
                &start,
                BERLIN,
                "2026-05-04T00:00Z",
                "2026-05-04T06:59:59.999Z"
            )
            .is_empty()
        );
    }

    #[test]
    fn an_empty_or_reversed_window_has_no_occurrences() {
        let start = person(date(2026, 5, 4));
        assert!(
            fires(
                &once(),
                &start,
                BERLIN,
                "2026-05-04T07:00Z",
                "2026-05-04T07:00Z"
            )
            .is_empty()
        );
        assert!(
            fires(
                &once(),
                &start,
                BERLIN,
                "2027-01-01T00:00Z",
                "2026-01-01T00:00Z"
            )
            .is_empty()
        );
        assert!(
            fires(
                &yearly(),
                &person(date(2000, 5, 4)),
                BERLIN,
                "2030-01-01T00:00Z",
                "2020-01-01T00:00Z"
            )
            .is_empty()
        );
    }

    #[test]
    fn a_window_of_several_years_returns_every_yearly_occurrence_in_order() {
        let start = person(date(2020, 6, 15));
        assert_eq!(
            fires(
                &yearly(),
                &start,
                BERLIN,
                "2019-01-01T00:00Z",
                "2024-01-01T00:00Z"
            ),
            [
                "2021-06-15 fires 2021-06-15 09:00 +02:00 #1",
                "2022-06-15 fires 2022-06-15 09:00 +02:00 #2",
                "2023-06-15 fires 2023-06-15 09:00 +02:00 #3",
            ]
        );
    }

    #[test]
    fn a_birthday_a_week_before_2_january_fires_in_the_previous_december() {
        let rule = Rule {
            offset: days(-7),
            ..yearly()
        };
        let born = person(date(1990, 1, 2));
        assert_eq!(
            fires(
                &rule,
                &born,
                BERLIN,
                "2026-12-01T00:00Z",
                "2027-01-01T00:00Z"
            ),
            ["2027-01-02 fires 2026-12-26 09:00 +01:00 #37"]
        );
        // January 2027 holds the birthday itself but not its fire time.
        assert!(
            fires(
                &rule,
                &born,
                BERLIN,
                "2027-01-01T00:00Z",
                "2027-02-01T00:00Z"
            )
            .is_empty()
        );
    }

    #[test]
    fn a_day_after_31_december_fires_in_the_next_january() {
        let rule = Rule {
            offset: days(1),
            ..yearly()
        };
        let born = person(date(1990, 12, 31));
        assert_eq!(
            fires(
                &rule,
                &born,
                BERLIN,
                "2027-01-01T00:00Z",
                "2027-02-01T00:00Z"
            ),
            ["2026-12-31 fires 2027-01-01 09:00 +01:00 #36"]
        );
    }

    #[test]
    fn an_offset_of_years_still_finds_its_occurrences() {
        let rule = Rule {
            offset: days(-800),
            ..yearly()
        };
        let born = person(date(1990, 8, 20));
        // 2028-08-20 minus 800 days (2028 is a leap year) is 2026-06-12.
        assert_eq!(
            fires(
                &rule,
                &born,
                BERLIN,
                "2026-01-01T00:00Z",
                "2027-01-01T00:00Z"
            ),
            ["2028-08-20 fires 2026-06-12 09:00 +02:00 #38"]
        );
    }

    #[test]
    fn a_window_over_three_days_of_downtime_returns_the_three_days_occurrences() {
        // The daemon last ran at 09:00 on 3 May (and fired that day's events) and comes back
        // at 09:00 on 6 May: the events of 4, 5 and 6 May are due, those of 3 and 7 May not.
        let (from, to) = ("2026-05-03T07:00Z", "2026-05-06T07:00Z");
        let due: Vec<String> = (3..=7)
            .flat_map(|day| fires(&once(), &person(date(2026, 5, day)), BERLIN, from, to))
            .collect();
        assert_eq!(
            due,
            [
                "2026-05-04 fires 2026-05-04 09:00 +02:00",
                "2026-05-05 fires 2026-05-05 09:00 +02:00",
                "2026-05-06 fires 2026-05-06 09:00 +02:00",
            ]
        );
    }

    #[test]
    fn dates_out_of_jiffs_range_produce_no_occurrence() {
        let tz = zone(BERLIN);
        let all = (Timestamp::MIN, Timestamp::MAX);
        let cases = [
            (
                Rule {
                    offset: days(1),
                    ..once()
                },
                date(9999, 12, 31),
            ),
            (
                Rule {
                    offset: days(-1),
                    ..once()
                },
                date(-9999, 1, 1),
            ),
            (
                Rule {
                    offset: SignedDuration::MAX,
                    ..once()
                },
                date(2026, 5, 4),
            ),
            (
                Rule {
                    offset: SignedDuration::MIN,
                    ..once()
                },
                date(2026, 5, 4),
            ),
            (
                Rule {
                    offset: SignedDuration::MAX,
                    ..yearly()
                },
                date(2026, 5, 4),
            ),
            (
                Rule {
                    offset: SignedDuration::MIN,
                    ..yearly()
                },
                date(2026, 5, 4),
            ),
            (yearly(), date(9999, 12, 31)),
        ];
        for (rule, day) in cases {
            assert!(
                occurrences(&rule, &person(day), &tz, all.0, all.1).is_empty(),
                "{rule:?} {day}"
            );
        }
    }

    #[test]
    fn the_widest_window_returns_every_yearly_occurrence_up_to_year_9999_in_order() {
        let tz = zone(BERLIN);
        let found = occurrences(
            &yearly(),
            &person(date(2000, 1, 1)),
            &tz,
            Timestamp::MIN,
            Timestamp::MAX,
        );
        assert_eq!(found.len(), 7999);
        assert_eq!(found.first().map(|o| o.date), Some(date(2001, 1, 1)));
        assert_eq!(
            found.last().map(|o| (o.date, o.years)),
            Some((date(9999, 1, 1), Some(7999)))
        );
        assert!(found.windows(2).all(|w| w[0].fire_at < w[1].fire_at));
    }

    #[test]
    fn the_yearly_search_finds_what_checking_every_year_finds() {
        // Offsets of up to two years, with hour remainders of either sign, against short
        // windows at the turn of the year, where a narrow year search would miss.
        let tz = zone(NEW_YORK);
        let born = person(date(1992, 12, 31));
        for days_off in (-800..=800).step_by(23) {
            for hours in [-23, 0, 23] {
                let offset = SignedDuration::from_hours(24 * days_off + hours);
                let rule = Rule { offset, ..yearly() };
                for year in 2024..=2028 {
                    let from = date(year, 12, 20).to_zoned(tz.clone()).unwrap().timestamp();
                    let to = date(year + 1, 1, 10)
                        .to_zoned(tz.clone())
                        .unwrap()
                        .timestamp();
                    let every_year: Vec<Occurrence> = (1993..=2035)
                        .filter_map(|y| {
                            let day = in_year(born.date, y, rule.leap_day)?;
                            let fire_at = fire_at(&rule, day, &tz)?;
                            let years = Some(day.year() - born.date.year());
                            Some(Occurrence {
                                date: day,
                                fire_at,
                                years,
                            })
                        })
                        .filter(|o| from < o.fire_at && o.fire_at <= to)
                        .collect();
                    assert_eq!(
                        occurrences(&rule, &born, &tz, from, to),
                        every_year,
                        "offset {offset:?}, window {from} to {to}"
                    );
                }
            }
        }
    }
}
