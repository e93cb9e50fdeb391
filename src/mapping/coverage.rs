//! Coverage expectations (`coverage:` in a mapping): how often a field may be empty across the
//! kept records of one sync, so an empty hire date in every record fails loudly instead of
//! syncing green (a renamed attribute, a revoked permission).

use std::fmt;

use indexmap::IndexMap;

use super::MappedPerson;
use crate::config::mapping::{Coverage as CoverageSpec, CoverageAction};
use crate::config::person::Field;

/// One `coverage:` entry, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// The key as written in `coverage:`.
    field: String,
    slot: Slot,
    max_empty: f64,
    action: CoverageAction,
}

#[derive(Debug, Clone)]
enum Slot {
    Canonical(Field),
    Custom(String),
}

/// Resolves `coverage:` keys: a canonical field name, else a custom field (written bare, as
/// `coverage:` keys are, or as `custom.NAME`).
pub(crate) fn rules(spec: &IndexMap<String, CoverageSpec>) -> Vec<Rule> {
    spec.iter()
        .map(|(key, c)| Rule {
            field: key.clone(),
            slot: match Field::from_name(key) {
                Some(f) => Slot::Canonical(f),
                None => Slot::Custom(key.strip_prefix("custom.").unwrap_or(key).to_string()),
            },
            max_empty: c.max_empty.get(),
            action: c.action,
        })
        .collect()
}

/// Counts empty fields over the kept records of one sync. Make one per sync with
/// [`super::Mapper::coverage`], [`observe`](Coverage::observe) every kept person, then
/// [`finish`](Coverage::finish).
#[derive(Debug, Clone)]
pub struct Coverage {
    rules: Vec<Rule>,
    empty: Vec<u64>,
    total: u64,
}

impl Coverage {
    pub(crate) fn new(rules: Vec<Rule>) -> Coverage {
        Coverage {
            empty: vec![0; rules.len()],
            rules,
            total: 0,
        }
    }

    /// Counts one kept person.
    pub fn observe(&mut self, p: &MappedPerson) {
        self.total += 1;
        for (rule, empty) in self.rules.iter().zip(&mut self.empty) {
            let is_empty = match &rule.slot {
                Slot::Canonical(f) => p.get(*f).is_none_or(str::is_empty),
                Slot::Custom(n) => p
                    .custom
                    .get(n)
                    .is_none_or(|v| v.is_null() || v.as_str() == Some("")),
            };
            if is_empty {
                *empty += 1;
            }
        }
    }

    /// How many people were observed.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The expectations not met, in `coverage:` order. None when no record was kept.
    pub fn finish(&self) -> Vec<CoverageViolation> {
        if self.total == 0 {
            return Vec::new();
        }
        self.rules
            .iter()
            .zip(&self.empty)
            .filter(|(rule, empty)| **empty as f64 / self.total as f64 > rule.max_empty)
            .map(|(rule, empty)| CoverageViolation {
                field: rule.field.clone(),
                empty: *empty,
                total: self.total,
                max_empty: rule.max_empty,
                action: rule.action,
            })
            .collect()
    }
}

/// A coverage expectation that a sync did not meet.
#[derive(Debug, Clone, PartialEq)]
pub struct CoverageViolation {
    /// The field as written in `coverage:`.
    pub field: String,
    /// Kept records with the field empty.
    pub empty: u64,
    /// Kept records.
    pub total: u64,
    /// The largest share allowed empty (0..=1).
    pub max_empty: f64,
    /// Warn or fail the sync.
    pub action: CoverageAction,
}

/// A share as a percentage: whole numbers without decimals, else one decimal.
fn percent(share: f64) -> String {
    let p = share * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

impl fmt::Display for CoverageViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let share = self.empty as f64 / self.total as f64;
        write!(
            f,
            "{} is empty in {} of {} records ({}; allowed {})",
            self.field,
            self.empty,
            self.total,
            percent(share),
            percent(self.max_empty),
        )?;
        if self.empty == self.total {
            f.write_str(
                " (help: the field is empty everywhere: check that the mapping's path still matches the records `roster fetch` prints, and that the API credential may read this field)",
            )
        } else {
            f.write_str(
                " (help: check the records `roster fetch` prints; raise `max_empty` if this is expected)",
            )
        }
    }
}
