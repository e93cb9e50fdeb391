//! The canonical person's fields: one list, from which the [`Field`] enum, each field's value
//! kind, and the `fields:` block of a mapping ([`FieldMappings`]) are all generated.
//!
//! The list follows the seeds: identity, role, org structure, employment, lifecycle dates.
//! Adding a field here adds it to the schema, to `validate`, and to every `match` on `Field`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::mapping::FieldMapping;

/// What values a canonical field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Free text.
    String,
    /// An email address, stored lowercased and trimmed.
    Email,
    /// A calendar date (no time, no zone).
    Date,
    /// One of a fixed set of values.
    Enum(&'static [&'static str]),
}

/// Worker types: the seeds' "Worker Type (Employee / Contractor)".
pub const WORKER_TYPES: &[&str] = &["employee", "contractor"];
/// Statuses: pre-hire (start date ahead), active, on leave, terminated.
pub const STATUSES: &[&str] = &["pre_hire", "active", "on_leave", "terminated"];
/// What a mapping may yield for `status`: a status, or `inactive`, for an HRIS that says
/// only "not active" (Kenjo's `isActive: false`, which is both a hire not yet activated and
/// a leaver). The directory shows `inactive` as `pre_hire` while the start date is ahead and
/// as `terminated` from then on, so it never shows `inactive` itself.
pub const MAPPED_STATUSES: &[&str] = &["pre_hire", "active", "on_leave", "terminated", "inactive"];

macro_rules! canonical_fields {
    ($( $(#[doc = $doc:literal])* $name:ident : $kind:expr ),+ $(,)?) => {
        /// A field of the canonical person.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[allow(non_camel_case_types, missing_docs)]
        pub enum Field { $( $name ),+ }

        impl Field {
            /// Every field, in directory column order.
            pub const ALL: &'static [Field] = &[$( Field::$name ),+];

            /// The snake_case name used in YAML and SQL.
            pub fn name(self) -> &'static str {
                match self { $( Field::$name => stringify!($name) ),+ }
            }

            /// The kind of value.
            pub fn kind(self) -> FieldKind {
                match self { $( Field::$name => $kind ),+ }
            }

            /// Looks a field up by name.
            pub fn from_name(name: &str) -> Option<Field> {
                match name { $( stringify!($name) => Some(Field::$name), )+ _ => None }
            }
        }

        /// The canonical fields a mapping fills. Each is a JSONPath (shorthand) or a full
        /// field mapping; a field left out stays empty.
        #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct FieldMappings {
            $(
                $(#[doc = $doc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $name: Option<FieldMapping>,
            )+
        }

        impl FieldMappings {
            /// The mapped fields, in canonical order.
            pub fn iter(&self) -> impl Iterator<Item = (Field, &FieldMapping)> {
                [$( (Field::$name, self.$name.as_ref()) ),+]
                    .into_iter()
                    .filter_map(|(f, m)| m.map(|m| (f, m)))
            }

            /// Sets one field (used to apply per-source overrides).
            pub fn set(&mut self, field: Field, mapping: FieldMapping) {
                match field { $( Field::$name => self.$name = Some(mapping) ),+ }
            }
        }
    };
}

canonical_fields! {
    /// The person's id in the source HRIS (employee ID).
    employee_id: FieldKind::String,
    /// Legal first name.
    first_name: FieldKind::String,
    /// Legal last name.
    last_name: FieldKind::String,
    /// The name the person goes by, when different from the first name.
    preferred_name: FieldKind::String,
    /// Full name for display, e.g. a template `{first_name} {last_name}`.
    display_name: FieldKind::String,
    /// Work email: the canonical identifier across sources (trimmed and lowercased). People without one stay out of the directory and are listed as data problems.
    work_email: FieldKind::Email,
    /// Job title or position.
    job_title: FieldKind::String,
    /// Department name.
    department: FieldKind::String,
    /// Team name.
    team: FieldKind::String,
    /// Sub-company (Personio) or company within a group.
    sub_company: FieldKind::String,
    /// The manager's id in the same source; resolved to a person after the sync.
    manager_id: FieldKind::String,
    /// The manager's work email; used when no id is available or the id does not resolve.
    manager_email: FieldKind::Email,
    /// Office or work location.
    office: FieldKind::String,
    /// Legal entity (employing company).
    legal_entity: FieldKind::String,
    /// Contract or employment type as the HRIS names it (full-time, permanent, ...).
    employment_type: FieldKind::String,
    /// Worker type: `employee` or `contractor`. Map the HRIS values with `values:`.
    worker_type: FieldKind::Enum(WORKER_TYPES),
    /// Status: `pre_hire`, `active`, `on_leave` or `terminated`. Map the HRIS values with `values:`. When unmapped, it is derived from the start and end dates.
    status: FieldKind::Enum(STATUSES),
    /// First working day (hire date).
    start_date: FieldKind::Date,
    /// Last working day (termination or contract end date).
    end_date: FieldKind::Date,
    /// End of the probation period.
    probation_end_date: FieldKind::Date,
    /// Date of birth.
    birth_date: FieldKind::Date,
}

impl Field {
    /// The kind of value a mapping may yield: [`Field::kind`], except that `status` also
    /// takes `inactive` (see [`MAPPED_STATUSES`]).
    pub fn mapped_kind(self) -> FieldKind {
        match self {
            Field::status => FieldKind::Enum(MAPPED_STATUSES),
            f => f.kind(),
        }
    }

    /// Names of every field, for suggestions.
    pub fn names() -> impl Iterator<Item = &'static str> + Clone {
        Field::ALL.iter().map(|f| f.name())
    }

    /// Names of the date fields.
    pub fn date_names() -> impl Iterator<Item = &'static str> + Clone {
        Field::ALL
            .iter()
            .filter(|f| f.kind() == FieldKind::Date)
            .map(|f| f.name())
    }
}
