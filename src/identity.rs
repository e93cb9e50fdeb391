//! Identity: one person from the records of every source that lists their work email, field by
//! field by precedence ("source of truth"), with the status derived from the dates, and the
//! field-level difference against what the directory holds. Pure: the store reads the records
//! and writes the result.
//!
//! A person's state is long form: field name (canonical fields, `hris_status` for the HRIS's
//! own status, `status` derived, `custom.NAME`) to value and the source that set it.

use std::collections::{BTreeMap, HashMap};

use crate::config::person::Field;

/// A field's value and the source that set it (`roster` for what Roster derives).
pub type State = BTreeMap<String, (String, String)>;

/// The source named for values Roster sets itself (a derived status, a departure).
pub const ROSTER: &str = "roster";

/// One kept record of one source for a person, manager already resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRecord {
    /// The source.
    pub source: String,
    /// Canonical values in `Field::ALL` order; `manager_email` is the resolved manager.
    pub values: Vec<Option<String>>,
    /// Custom fields (name, value).
    pub custom: Vec<(String, String)>,
}

/// Per-field source ranks (lower wins), from `sync::precedence_table`.
#[derive(Debug, Clone, Default)]
pub struct Precedence {
    default: HashMap<String, i32>,
    fields: HashMap<String, HashMap<String, i32>>,
}

/// Rank of a source that no order names (a source no longer configured).
const UNRANKED: i32 = 1_000_000;

impl Precedence {
    /// From `(field, source, rank)` rows; field `*` is the default order.
    pub fn new(table: &[(String, String, i32)]) -> Precedence {
        let mut p = Precedence::default();
        for (field, source, rank) in table {
            if field == "*" {
                p.default.insert(source.clone(), *rank);
            } else {
                p.fields
                    .entry(field.clone())
                    .or_default()
                    .insert(source.clone(), *rank);
            }
        }
        p
    }

    /// The rank of `source` for `field` (a per-field order first, then the default order).
    pub fn rank(&self, field: &str, source: &str) -> i32 {
        self.fields
            .get(field)
            .and_then(|m| m.get(source))
            .or_else(|| self.default.get(source))
            .copied()
            .unwrap_or(UNRANKED)
    }
}

/// The long-form name of a canonical field (the HRIS's `status` is kept as `hris_status`).
pub fn field_key(f: Field) -> &'static str {
    if f == Field::status {
        "hris_status"
    } else {
        f.name()
    }
}

/// The status a person has: the HRIS's status corrected by the dates (an `active` person whose
/// start date is ahead is a pre-hire; anyone whose end date has passed has left), or derived
/// from the dates when the HRIS gives none. An HRIS status `inactive` (only "not active", see
/// `config::person::MAPPED_STATUSES`) is a pre-hire while the start date is ahead, else a
/// leaver. Dates and `today` are `YYYY-MM-DD`.
pub fn derive_status(
    hris: Option<&str>,
    start: Option<&str>,
    end: Option<&str>,
    today: &str,
) -> String {
    if let Some(en) = end
        && en < today
        && hris != Some("terminated")
    {
        return "terminated".into();
    }
    match (hris, start) {
        (None, Some(sd)) if sd > today => "pre_hire".into(),
        (Some("active" | "inactive"), Some(sd)) if sd > today => "pre_hire".into(),
        (Some("inactive"), _) => "terminated".into(),
        (None, _) => "active".into(),
        (Some(st), _) => st.to_string(),
    }
}

/// Merges the records of one person: for every field, the non-empty value of the best-ranked
/// source (ties: the source name), then `status` derived. Empty when there are no records.
pub fn merge(records: &[SourceRecord], precedence: &Precedence, today: &str) -> State {
    // Keys borrowed where they can be (canonical names are static): this runs once per
    // affected person, 100k times in a first sync.
    let mut best: BTreeMap<std::borrow::Cow<'_, str>, (i32, &str, &str)> = BTreeMap::new();
    for r in records {
        let canonical = Field::ALL
            .iter()
            .zip(&r.values)
            .filter_map(|(f, v)| Some((std::borrow::Cow::Borrowed(field_key(*f)), v.as_deref()?)));
        let custom = r.custom.iter().map(|(name, v)| {
            (
                std::borrow::Cow::Owned(format!("custom.{name}")),
                v.as_str(),
            )
        });
        for (field, value) in canonical.chain(custom) {
            let rank = precedence.rank(&field, &r.source);
            match best.entry(field) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert((rank, r.source.as_str(), value));
                }
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    let (br, bs, _) = *e.get();
                    if (rank, r.source.as_str()) < (br, bs) {
                        e.insert((rank, r.source.as_str(), value));
                    }
                }
            }
        }
    }
    let mut state: State = best
        .into_iter()
        .map(|(f, (_, s, v))| (f.into_owned(), (v.to_string(), s.to_string())))
        .collect();
    if !state.is_empty() {
        let get = |k: &str| state.get(k).map(|(v, _)| v.as_str());
        let status = derive_status(
            get("hris_status"),
            get("start_date"),
            get("end_date"),
            today,
        );
        let src = state
            .get("hris_status")
            .map_or(ROSTER, |(_, s)| s.as_str())
            .to_string();
        state.insert("status".into(), (status, src));
    }
    state
}

/// A person no source lists any more has left: their last values stay, the status becomes
/// `terminated` (set by Roster).
pub fn departed(current: &State) -> State {
    let mut s = current.clone();
    if !s.is_empty() {
        s.insert("status".into(), ("terminated".into(), ROSTER.into()));
    }
    s
}

/// One field-level difference: (field, old, new, source of the new value, else of the old),
/// borrowed from the two states compared.
pub type Diff<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a str);

/// The fields whose value differs between `current` and `next` (a source change alone is no
/// change), in field order.
pub fn diff<'a>(current: &'a State, next: &'a State) -> Vec<Diff<'a>> {
    let mut out = Vec::new();
    let mut a = current.iter().peekable();
    let mut b = next.iter().peekable();
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
        };
        match order {
            std::cmp::Ordering::Less => {
                let (k, (v, s)) = a.next().expect("peeked");
                out.push((k.as_str(), Some(v.as_str()), None, s.as_str()));
            }
            std::cmp::Ordering::Greater => {
                let (k, (v, s)) = b.next().expect("peeked");
                out.push((k.as_str(), None, Some(v.as_str()), s.as_str()));
            }
            std::cmp::Ordering::Equal => {
                let (k, (va, _)) = a.next().expect("peeked");
                let (_, (vb, sb)) = b.next().expect("peeked");
                if va != vb {
                    out.push((
                        k.as_str(),
                        Some(va.as_str()),
                        Some(vb.as_str()),
                        sb.as_str(),
                    ));
                }
            }
        }
    }
    out
}

/// The state in force after moving from `current` to `next`: `next`'s values, but a value
/// that did not change keeps the source `current` names for it (provenance names who set the
/// value in force, see [`diff`]).
pub fn apply(current: &State, mut next: State) -> State {
    for (field, (value, source)) in next.iter_mut() {
        if let Some((was, was_source)) = current.get(field)
            && was == value
            && was_source != source
        {
            source.clone_from(was_source);
        }
    }
    next
}

/// The current people whose management chain leads back to them (each chain followed
/// through the directory, whatever its length), by number: `next[i]` is the number of person
/// `i`'s manager, `current[i]` whether `i` is not terminated (only current people are
/// reported, though a chain may pass through anyone). Ascending. The store numbers the people
/// in SQL, so this holds 8 bytes a person rather than two emails.
pub fn cycles_by_index(next: &[Option<u32>], current: &[bool]) -> Vec<usize> {
    let n = next.len();
    let at = |i: usize| next[i].map(|m| m as usize).filter(|&m| m < n);
    // 0: not visited, 1: on the path being walked, 2: done.
    let mut state = vec![0u8; n];
    let mut on_cycle = vec![false; n];
    let mut path = Vec::new();
    for start in 0..n {
        let mut cur = Some(start);
        path.clear();
        while let Some(i) = cur {
            match state[i] {
                0 => {
                    state[i] = 1;
                    path.push(i);
                    cur = at(i);
                }
                1 => {
                    // Back on this walk's own path: everyone from `i` on is on a cycle.
                    let from = path.iter().position(|&p| p == i).unwrap_or(path.len());
                    for &p in &path[from..] {
                        on_cycle[p] = true;
                    }
                    break;
                }
                _ => break,
            }
        }
        for &p in &path {
            state[p] = 2;
        }
    }
    (0..n)
        .filter(|&i| on_cycle[i] && current.get(i).copied().unwrap_or(false))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One person's reporting line, for the tests' [`management_cycles`].
    #[derive(Debug, Clone)]
    struct Reports {
        /// The person.
        email: String,
        /// Their manager's work email.
        manager: Option<String>,
        /// Not terminated: only current people are reported as in a cycle, though a chain may
        /// pass through anyone.
        current: bool,
    }

    /// [`cycles_by_index`] over emails, numbered here as the store numbers them in SQL: the
    /// current people on a cycle, sorted.
    fn management_cycles(people: &[Reports]) -> Vec<&str> {
        let index: HashMap<&str, u32> = people
            .iter()
            .enumerate()
            .map(|(i, p)| (p.email.as_str(), i as u32))
            .collect();
        let next: Vec<Option<u32>> = people
            .iter()
            .map(|p| p.manager.as_deref().and_then(|m| index.get(m).copied()))
            .collect();
        let current: Vec<bool> = people.iter().map(|p| p.current).collect();
        let mut out: Vec<&str> = cycles_by_index(&next, &current)
            .into_iter()
            .map(|i| people[i].email.as_str())
            .collect();
        out.sort_unstable();
        out
    }

    fn rec(source: &str, pairs: &[(Field, &str)]) -> SourceRecord {
        let mut values = vec![None; Field::ALL.len()];
        for (f, v) in pairs {
            values[*f as usize] = Some(v.to_string());
        }
        SourceRecord {
            source: source.into(),
            values,
            custom: Vec::new(),
        }
    }

    fn table(rows: &[(&str, &str, i32)]) -> Precedence {
        Precedence::new(
            &rows
                .iter()
                .map(|(f, s, r)| (f.to_string(), s.to_string(), *r))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn each_field_comes_from_the_best_ranked_source_that_has_it() {
        let p = table(&[
            ("*", "hr", 0),
            ("*", "it", 1),
            ("job_title", "it", 0),
            ("job_title", "hr", 1),
        ]);
        let hr = rec(
            "hr",
            &[
                (Field::work_email, "a@x.io"),
                (Field::job_title, "Engineer"),
                (Field::department, "R&D"),
            ],
        );
        let it = rec(
            "it",
            &[
                (Field::work_email, "a@x.io"),
                (Field::job_title, "Staff Engineer"),
                (Field::department, "IT"),
                (Field::office, "Berlin"),
            ],
        );
        let s = merge(&[hr, it], &p, "2026-01-01");
        assert_eq!(s["job_title"], ("Staff Engineer".into(), "it".into()));
        assert_eq!(s["department"], ("R&D".into(), "hr".into()));
        assert_eq!(
            s["office"],
            ("Berlin".into(), "it".into()),
            "gaps are filled"
        );
        assert_eq!(s["work_email"].1, "hr");
        assert_eq!(s["status"], ("active".into(), ROSTER.into()));
    }

    #[test]
    fn a_per_field_order_on_status_applies_to_the_hris_status() {
        let p = table(&[
            ("*", "hr", 0),
            ("*", "it", 1),
            ("hris_status", "it", 0),
            ("hris_status", "hr", 1),
        ]);
        let hr = rec(
            "hr",
            &[(Field::work_email, "a@x.io"), (Field::status, "active")],
        );
        let it = rec(
            "it",
            &[(Field::work_email, "a@x.io"), (Field::status, "on_leave")],
        );
        let s = merge(&[hr, it], &p, "2026-01-01");
        assert_eq!(s["hris_status"], ("on_leave".into(), "it".into()));
        assert_eq!(s["status"], ("on_leave".into(), "it".into()));
    }

    #[test]
    fn status_follows_the_dates() {
        let t = "2026-06-15";
        assert_eq!(derive_status(None, Some("2026-07-01"), None, t), "pre_hire");
        assert_eq!(
            derive_status(Some("active"), Some("2026-07-01"), None, t),
            "pre_hire"
        );
        assert_eq!(
            derive_status(Some("on_leave"), Some("2026-07-01"), None, t),
            "on_leave"
        );
        assert_eq!(derive_status(None, Some("2026-06-15"), None, t), "active");
        assert_eq!(
            derive_status(Some("active"), None, Some("2026-06-14"), t),
            "terminated"
        );
        assert_eq!(
            derive_status(Some("active"), None, Some("2026-06-15"), t),
            "active",
            "the last working day is still a working day"
        );
        assert_eq!(derive_status(None, None, None, t), "active");
        // Kenjo's `isActive: false`: a hire not activated yet, or a leaver.
        assert_eq!(
            derive_status(Some("inactive"), Some("2026-07-01"), None, t),
            "pre_hire"
        );
        assert_eq!(
            derive_status(Some("inactive"), Some("2026-06-15"), None, t),
            "terminated"
        );
        assert_eq!(derive_status(Some("inactive"), None, None, t), "terminated");
        assert_eq!(
            derive_status(Some("inactive"), Some("2026-07-01"), Some("2026-06-01"), t),
            "terminated",
            "a past end date wins"
        );
    }

    #[test]
    fn custom_fields_merge_like_the_others() {
        let p = table(&[("*", "hr", 0), ("*", "it", 1)]);
        let mut hr = rec("hr", &[(Field::work_email, "a@x.io")]);
        hr.custom.push(("shirt".into(), "M".into()));
        let mut it = rec("it", &[(Field::work_email, "a@x.io")]);
        it.custom.push(("shirt".into(), "L".into()));
        it.custom.push(("laptop".into(), "mac".into()));
        let s = merge(&[it, hr], &p, "2026-01-01");
        assert_eq!(s["custom.shirt"], ("M".into(), "hr".into()));
        assert_eq!(s["custom.laptop"], ("mac".into(), "it".into()));
    }

    #[test]
    fn unranked_sources_tie_break_by_name() {
        let p = table(&[]);
        let b = rec("b", &[(Field::work_email, "a@x.io"), (Field::team, "B")]);
        let a = rec("a", &[(Field::work_email, "a@x.io"), (Field::team, "A")]);
        assert_eq!(
            merge(&[b.clone(), a.clone()], &p, "2026-01-01")["team"].0,
            "A"
        );
        assert_eq!(merge(&[a, b], &p, "2026-01-01")["team"].0, "A");
    }

    #[test]
    fn diff_and_apply_keep_provenance_of_unchanged_values() {
        let p = table(&[("*", "hr", 0), ("*", "it", 1)]);
        let before = merge(
            &[rec(
                "it",
                &[(Field::work_email, "a@x.io"), (Field::team, "Core")],
            )],
            &p,
            "2026-01-01",
        );
        let hr = rec(
            "hr",
            &[(Field::work_email, "a@x.io"), (Field::team, "Core")],
        );
        let it = rec(
            "it",
            &[(Field::work_email, "a@x.io"), (Field::office, "Rome")],
        );
        let after = merge(&[hr, it], &p, "2026-01-01");
        let d = diff(&before, &after);
        assert_eq!(
            d,
            vec![("office", None, Some("Rome"), "it")],
            "a value now set by another source is no change"
        );
        let s = apply(&before, after.clone());
        assert_eq!(s["team"], ("Core".into(), "it".into()));
        assert_eq!(s["office"], ("Rome".into(), "it".into()));
    }

    fn reports(rows: &[(&str, Option<&str>, bool)]) -> Vec<Reports> {
        rows.iter()
            .map(|(e, m, c)| Reports {
                email: e.to_string(),
                manager: m.map(str::to_string),
                current: *c,
            })
            .collect()
    }

    #[test]
    fn management_cycles_are_found_whatever_their_length() {
        let mut rows: Vec<(&str, Option<&str>, bool)> = vec![
            ("ceo", None, true),
            ("a", Some("ceo"), true),
            ("b", Some("a"), true),
            // A three-person loop with a tail hanging off it.
            ("x", Some("y"), true),
            ("y", Some("z"), true),
            ("z", Some("x"), true),
            ("tail", Some("x"), true),
            // Their own manager.
            ("self", Some("self"), true),
            // A loop through someone who left: the leaver is not reported.
            ("p", Some("gone"), true),
            ("gone", Some("p"), false),
            // A manager outside the directory.
            ("q", Some("nobody"), true),
        ];
        let people = reports(&rows);
        assert_eq!(management_cycles(&people), ["p", "self", "x", "y", "z"]);
        rows.clear();
        assert!(management_cycles(&reports(&rows)).is_empty());
        // A chain longer than any fixed depth limit.
        let names: Vec<String> = (0..500).map(|i| format!("p{i}")).collect();
        let long: Vec<Reports> = (0..500)
            .map(|i| Reports {
                email: names[i].clone(),
                manager: Some(names[(i + 1) % 500].clone()),
                current: true,
            })
            .collect();
        assert_eq!(management_cycles(&long).len(), 500);
    }

    #[test]
    fn cycles_by_number_ignore_numbers_outside_the_directory() {
        // 0 -> 1 -> 0 is a loop; 2 names a manager number nobody has; 3 manages itself but left.
        let next = [Some(1), Some(0), Some(99), Some(3)];
        let current = [true, true, true, false];
        assert_eq!(cycles_by_index(&next, &current), [0, 1]);
        assert!(cycles_by_index(&[], &[]).is_empty());
    }

    #[test]
    fn a_departure_keeps_the_last_values() {
        let p = table(&[("*", "hr", 0)]);
        let before = merge(
            &[rec(
                "hr",
                &[(Field::work_email, "a@x.io"), (Field::team, "Core")],
            )],
            &p,
            "2026-01-01",
        );
        let after = departed(&before);
        let d = diff(&before, &after);
        assert_eq!(
            d,
            vec![("status", Some("active"), Some("terminated"), ROSTER)]
        );
        let s = apply(&before, after.clone());
        assert_eq!(s["status"], ("terminated".into(), ROSTER.into()));
        assert_eq!(s["team"], before["team"]);
        assert!(departed(&State::new()).is_empty());
        let nothing = State::new();
        let gone = diff(&before, &nothing);
        assert_eq!(gone.len(), before.len());
        assert!(gone.iter().all(|c| c.2.is_none()));
    }
}
