//! Applying a mapping: one provider record becomes a canonical person (pure, no I/O, no
//! clock, no SQL).
//!
//! A [`Mapper`] is built once per source per sync from the compiled mapping (the source's
//! `fields:` overrides already applied); its JSONPaths are compiled once, simple ones into a
//! direct walk of the record (`path.rs`). [`Mapper::map`] then turns each record into one of:
//!
//! - [`Mapped::Kept`]: a [`MappedPerson`] that belongs in the directory, with the problems of
//!   optional fields. A field whose value failed to convert is left empty and listed in
//!   [`MappedPerson::failed`] / [`MappedPerson::failed_custom`], apart from fields that are
//!   empty in the record: the store keeps the last good value of a failed field, so a bad value
//!   (`2023-02-30`, an unknown status) never erases a good one;
//! - [`Mapped::Excluded`]: dropped by the mapping's `filter:`;
//! - [`Mapped::Failed`]: the work email or a `required: true` field is missing or invalid. The
//!   record is a data problem and still counts as present (never a departure).
//!
//! How one field is filled, in order (the contract is the doc comments of
//! [`crate::config::mapping::FieldSpec`]):
//!
//! 1. the source: `path` (the first match; JSON null is no value), `coalesce` (the first path
//!    that yields a non-empty value after the transforms and `empty_values`), `value` (a
//!    constant), or `template`. Templates are filled after every other field, from the other
//!    fields' canonical text (custom fields by their bare name); a template may use fields that
//!    are templates themselves, to any depth (templates are resolved in dependency order;
//!    `validate` refuses cycles). A template whose placeholders are all empty yields nothing;
//!    its result is trimmed, so a missing last name gives `Ada`, not `Ada `;
//! 2. scalar to text: strings as they are, numbers as their JSON text (`1042`, `12.0`),
//!    booleans `true`/`false`; an object or a list is a field error (point the path at a
//!    scalar);
//! 3. `transform`s in order, then `empty_values`. An empty string is kept for text fields
//!    (`empty_as_null` turns it into no value) and is no value for every other type;
//! 4. the `values` map (exact match on the transformed text); a value missing from it follows
//!    `unmapped` (`error`, the default for enums; `keep`, the default for other types;
//!    `default`). A field without a `values` map takes its value as it is;
//! 5. the type: email (trimmed, lowercased, one `@`), date (`YYYY-MM-DD`; an ISO date-time
//!    keeps its calendar date as written, never shifted to UTC; other shapes through
//!    `date_format`), enum (a canonical enum field must end in one of its values), bool, int;
//! 6. `default` when nothing was yielded (typed, but not transformed or value-mapped).
//!
//! A value longer than `limits.max_field_bytes` (as text, after the transforms) fails before
//! step 4, like any value that does not convert. A template that uses a field that failed fails
//! too: its value is not known, and an empty part would make it look changed.
//!
//! Problem messages say which field, what was expected and what to do, never the value: they
//! reach logs, `data_problems` and sync summaries, and a provider value is personal data.
//!
//! The status is what the mapping yields, never derived from dates here: that needs today's
//! date, and a mapped record must not change with the clock (its result is cached by content
//! hash, and fixtures must not expire). The store derives the status the directory shows (an
//! `active` person whose start date is ahead is a pre-hire, and so on). Likewise the filter's
//! `statuses` apply only to a status the mapping yields.

mod convert;
pub mod fixture;
mod parse;
mod path;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;

use crate::config::compile::{LimitsPlan, SourcePlan};
use crate::config::mapping::{
    FieldMapping, FieldSpec, Filter, Latest, MappingSpec, RecordRule, Status, Transform, Unmapped,
    ValueType,
};
use crate::config::person::{Field, FieldKind, FieldMappings};
use crate::config::value::{Piece, Template};
use path::Path;

/// Part of the fingerprint: bump it when the engine maps the same mapping differently, so
/// stored content hashes are invalidated. 2: field size limits, failed fields, and problem
/// messages without values (a remap replaces stored messages that quoted values). 3: the
/// default filter keeps the mapped status `inactive`.
const ENGINE_VERSION: u32 = 3;

/// The statuses the filter keeps when `filter.statuses` is not given. `inactive` is kept:
/// whether it means a pre-hire or a leaver depends on today's date, which the store knows
/// and the mapping must not (see the module docs).
const DEFAULT_STATUSES: &[Status] = &[
    Status::PreHire,
    Status::Active,
    Status::OnLeave,
    Status::Inactive,
];

/// Maps the records of one source. Built once per source per sync.
#[derive(Debug, Clone)]
pub struct Mapper {
    /// Every field rule in evaluation order: the sourced ones, then templates in dependency
    /// order.
    rules: Vec<Rule>,
    /// Custom field names, indexed by `Slot::Custom`.
    custom_names: Vec<String>,
    filter: CompiledFilter,
    /// `limits:` (field and record sizes).
    limits: LimitsPlan,
    fingerprint: u64,
    /// What the rules and the filter read of a record ([`Mapper::parse`]).
    needs: parse::Needs,
}

/// The outcome of mapping one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// Belongs in the directory.
    Kept(MappedPerson),
    /// Dropped by the filter (status not kept, or an `exclude` rule matched). `key` as in
    /// [`MappedPerson::key`] when it could be read.
    Excluded {
        /// The employee id, else the work email, when mapped.
        key: Option<String>,
        /// Which rule or status dropped it.
        reason: String,
    },
    /// Could not be mapped: work_email missing/invalid, or a `required: true` field
    /// missing/invalid. Still "present" for the sync (never a departure). key/email
    /// best-effort.
    Failed {
        /// The employee id, else the work email, when mapped.
        key: Option<String>,
        /// The work email, when it is valid.
        email: Option<String>,
        /// What is wrong with the required fields.
        errors: Vec<FieldError>,
    },
}

/// A mapped person.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedPerson {
    /// Canonical values indexed by `Field as usize` (Field::ALL order), as canonical text:
    /// strings as mapped, emails trimmed+lowercased, dates `YYYY-MM-DD`, enums the canonical
    /// value (e.g. `pre_hire`, `contractor`).
    pub values: Vec<Option<String>>,
    /// Custom fields by name, typed JSON (string, bool, integer, date as "YYYY-MM-DD"
    /// string). Omitted when empty.
    pub custom: BTreeMap<String, Value>,
    /// Problems with non-required fields: the field is left empty and the record is still
    /// kept.
    pub problems: Vec<FieldError>,
    /// Canonical fields whose value failed to convert (a bad date, an unknown enum value, a
    /// value over `limits.max_field_bytes`, ...), in evaluation order. Their `values` entry is
    /// `None`, but unlike a field that is empty in the record, the person keeps the last good
    /// value. Each has a problem in `problems`.
    pub failed: Vec<Field>,
    /// Custom fields (bare names) whose value failed to convert, as for `failed`; absent from
    /// `custom`.
    pub failed_custom: Vec<String>,
}

/// What is wrong with one field of one record.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The canonical field name, or `custom.NAME`.
    pub field: String,
    /// What was wrong, what was expected and what to do; never the value itself (locate the
    /// record by its key).
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl MappedPerson {
    /// A canonical field's value.
    pub fn get(&self, f: Field) -> Option<&str> {
        self.values.get(f as usize)?.as_deref()
    }

    /// The person's key in its source: the employee id when mapped and non-empty, else the
    /// work email.
    pub fn key(&self) -> &str {
        self.get(Field::employee_id)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| self.work_email())
    }

    /// The work email (always present on a kept person).
    pub fn work_email(&self) -> &str {
        self.get(Field::work_email).unwrap_or_default()
    }

    /// True when `f` failed to convert in this record (keep its last good value), as opposed to
    /// being empty in it.
    pub fn has_failed(&self, f: Field) -> bool {
        self.failed.contains(&f)
    }
}

impl Mapper {
    /// From a compiled source (plan.fields / plan.custom already include the source's
    /// overrides, plan.limits the deployment's `limits:`) and its mapping spec (filter).
    /// Coverage is checked by the store on the whole listing, unchanged records included.
    pub fn new(plan: &SourcePlan, spec: &MappingSpec) -> Mapper {
        Mapper::build(&plan.fields, &plan.custom, &spec.filter, plan.limits)
    }

    /// From a mapping file alone (for `roster test` fixtures), with the default limits.
    pub fn from_spec(spec: &MappingSpec) -> Mapper {
        Mapper::build(
            &spec.fields,
            &spec.custom,
            &spec.filter,
            LimitsPlan::default(),
        )
    }

    fn build(
        fields: &FieldMappings,
        custom: &IndexMap<String, FieldMapping>,
        filter: &Filter,
        limits: LimitsPlan,
    ) -> Mapper {
        let custom_names: Vec<String> = custom.keys().cloned().collect();
        let slot_of = |name: &str| {
            Field::from_name(name).map(Slot::Canonical).or_else(|| {
                custom_names
                    .iter()
                    .position(|n| n == name)
                    .map(Slot::Custom)
            })
        };
        // A field whose `{settings.NAME}` was not put in by a source (a fixture has none) is
        // not mapped: its path names no real attribute.
        let all: Vec<Rule> = fields
            .iter()
            .filter(|(_, m)| m.spec().setting_refs().is_empty())
            .map(|(f, m)| {
                Rule::new(
                    Slot::Canonical(f),
                    Some(f),
                    f.name().into(),
                    &m.spec(),
                    &slot_of,
                )
            })
            .chain(
                custom
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, m))| m.spec().setting_refs().is_empty())
                    .map(|(i, (name, m))| {
                        Rule::new(
                            Slot::Custom(i),
                            None,
                            format!("custom.{name}"),
                            &m.spec(),
                            &slot_of,
                        )
                    }),
            )
            .collect();
        let mut rules = order_templates(all);
        // work_email is always required, even when its mapping is missing (an unchecked spec).
        if !rules
            .iter()
            .any(|r| matches!(r.slot, Slot::Canonical(Field::work_email)))
        {
            rules.push(Rule::unmapped_work_email());
        }
        let fingerprint = fingerprint(fields, custom, filter, limits.max_field_bytes);
        let filter = CompiledFilter::new(filter);
        let mut needs = parse::Needs::default();
        for rule in &rules {
            match (&rule.latest, &rule.source) {
                // The rule's paths start at the candidate chosen: each is read whole.
                (Some(pick), _) => needs.add(&pick.among),
                (None, Source::Path(p)) => needs.add(p),
                (None, Source::Coalesce(ps)) => ps.iter().for_each(|p| needs.add(p)),
                (None, Source::Template(..) | Source::Value(_) | Source::Nothing) => {}
            }
        }
        for (path, _) in &filter.exclude {
            needs.add(path);
        }
        Mapper {
            rules,
            filter,
            needs,
            limits,
            fingerprint,
            custom_names,
        }
    }

    /// A stable 64-bit fingerprint of the effective mapping (fields, custom, filter): xxh3 over
    /// a canonical serialization. Changes whenever the mapping's meaning changes; used to
    /// invalidate stored content hashes.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// A record's JSON parsed for mapping: only the members the rules and the filter read are
    /// built (see `parse.rs`); mapping it gives what mapping the whole record does. Errors as
    /// `serde_json::from_slice` gives them, but nesting too deep to build (over 128 levels)
    /// fails only in a member the mapping reads.
    pub fn parse(&self, raw: &[u8]) -> serde_json::Result<Value> {
        self.needs.parse(raw)
    }

    /// Maps one record and applies the filter.
    pub fn map(&self, record: &Value) -> Mapped {
        let mapped = self.map_filtered(record);
        #[cfg(test)]
        self.check_pruned(record, &mapped, Mapper::map_filtered);
        mapped
    }

    /// The unit tests' check of [`Mapper::parse`], on every record they map: the record
    /// parsed for mapping maps as the whole record does.
    #[cfg(test)]
    fn check_pruned(&self, record: &Value, mapped: &Mapped, map: fn(&Mapper, &Value) -> Mapped) {
        let raw = serde_json::to_vec(record).expect("a Value serializes");
        let pruned = self.parse(&raw).expect("a serialized Value parses");
        assert_eq!(
            &map(self, &pruned),
            mapped,
            "the record parsed for mapping maps differently: {pruned} (whole: {record})"
        );
    }

    fn map_filtered(&self, record: &Value) -> Mapped {
        let e = self.evaluate(record);
        match self
            .filter
            .reason(record, e.values[Field::status as usize].as_deref())
        {
            Some(reason) => Mapped::Excluded {
                key: e.key(),
                reason,
            },
            None => e.into_mapped(),
        }
    }

    /// `limits.max_record_bytes`: the largest raw record (as JSON) a sync maps.
    pub fn max_record_bytes(&self) -> u64 {
        self.limits.max_record_bytes
    }

    /// [`Mapper::map`] for a record whose raw JSON is `raw_len` bytes. Over
    /// `limits.max_record_bytes` the record is not mapped: it is [`Mapped::Failed`] (still
    /// present, never a departure, so the store keeps its last good version) with its key and
    /// email read best-effort, or [`Mapped::Excluded`] when the filter drops it (exclude rules
    /// and the mapped status still apply, so a leaver is not kept by being oversized).
    pub fn map_sized(&self, record: &Value, raw_len: usize) -> Mapped {
        let len = raw_len as u64;
        if len <= self.limits.max_record_bytes {
            return self.map(record);
        }
        let wanted = [Field::employee_id, Field::work_email, Field::status];
        let e = self.evaluate_only(
            record,
            |slot| matches!(slot, Slot::Canonical(f) if wanted.contains(&f)),
        );
        let status = e.values[Field::status as usize].as_deref();
        if let Some(reason) = self.filter.reason(record, status) {
            return Mapped::Excluded {
                key: e.key(),
                reason,
            };
        }
        Mapped::Failed {
            key: e.key(),
            email: e.values[Field::work_email as usize].clone(),
            errors: vec![FieldError {
                field: "record".into(),
                message: format!(
                    "the record is {} bytes as JSON, over `limits.max_record_bytes` ({}); it is not mapped, and the directory keeps what it had from it (help: raise `limits.max_record_bytes` in roster.yaml if records this large are expected)",
                    convert::thousands(len),
                    convert::size(self.limits.max_record_bytes)
                ),
            }],
        }
    }

    /// Maps one record without the filter: [`Mapped::Kept`] or [`Mapped::Failed`] (fixtures
    /// check the fields of records the filter drops).
    pub fn map_unfiltered(&self, record: &Value) -> Mapped {
        let mapped = self.evaluate(record).into_mapped();
        #[cfg(test)]
        self.check_pruned(record, &mapped, |m, r| m.evaluate(r).into_mapped());
        mapped
    }

    fn evaluate(&self, record: &Value) -> Evaluation<'_> {
        self.evaluate_only(record, |_| true)
    }

    /// Evaluates the rules whose slot `wanted` accepts (in evaluation order).
    fn evaluate_only(&self, record: &Value, wanted: impl Fn(Slot) -> bool) -> Evaluation<'_> {
        let mut e = Evaluation {
            values: vec![None; Field::ALL.len()],
            custom: vec![None; self.custom_names.len()],
            errors: Vec::new(),
            problems: Vec::new(),
            failed: Vec::new(),
            custom_names: &self.custom_names,
            max_field_bytes: self.limits.max_field_bytes,
        };
        for rule in self.rules.iter().filter(|r| wanted(r.slot)) {
            let result = rule.eval(record, &e);
            match result {
                Ok(Some(v)) => e.set(rule.slot, v),
                Ok(None) if rule.required => e.errors.push(rule.error(rule.missing())),
                Ok(None) => {}
                Err(m) if rule.required => {
                    e.errors.push(rule.error(m));
                    e.failed.push(rule.slot);
                }
                // The one place an optional field fails: its problem and its failure together.
                Err(m) => {
                    e.problems.push(rule.error(m));
                    e.failed.push(rule.slot);
                }
            }
        }
        e
    }
}

/// The fields of one record while it is mapped.
struct Evaluation<'a> {
    values: Vec<Option<String>>,
    custom: Vec<Option<Value>>,
    errors: Vec<FieldError>,
    problems: Vec<FieldError>,
    /// Fields whose value failed to convert (required or not), for templates and
    /// [`MappedPerson::failed`].
    failed: Vec<Slot>,
    custom_names: &'a [String],
    max_field_bytes: u64,
}

impl Evaluation<'_> {
    fn set(&mut self, slot: Slot, v: Typed) {
        match slot {
            Slot::Canonical(f) => self.values[f as usize] = Some(v.into_text()),
            Slot::Custom(i) => self.custom[i] = Some(v.into_json()),
        }
    }

    /// A field's canonical text, for templates.
    fn text(&self, slot: Slot) -> Option<Cow<'_, str>> {
        match slot {
            Slot::Canonical(f) => self.values[f as usize].as_deref().map(Cow::Borrowed),
            Slot::Custom(i) => match self.custom[i].as_ref()? {
                Value::String(s) => Some(Cow::Borrowed(s)),
                Value::Null => None,
                v => Some(Cow::Owned(v.to_string())),
            },
        }
    }

    fn key(&self) -> Option<String> {
        self.values[Field::employee_id as usize]
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| self.values[Field::work_email as usize].clone())
    }

    fn into_mapped(self) -> Mapped {
        if !self.errors.is_empty() {
            return Mapped::Failed {
                key: self.key(),
                email: self.values[Field::work_email as usize].clone(),
                errors: self.errors,
            };
        }
        let custom = self
            .custom_names
            .iter()
            .zip(self.custom)
            .filter_map(|(n, v)| Some((n.clone(), v?)))
            .collect();
        let (mut failed, mut failed_custom) = (Vec::new(), Vec::new());
        for slot in self.failed {
            match slot {
                Slot::Canonical(f) => failed.push(f),
                Slot::Custom(i) => failed_custom.push(self.custom_names[i].clone()),
            }
        }
        Mapped::Kept(MappedPerson {
            values: self.values,
            custom,
            problems: self.problems,
            failed,
            failed_custom,
        })
    }
}

/// Where a field's value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Canonical(Field),
    Custom(usize),
}

/// A typed value.
#[derive(Debug, Clone, PartialEq)]
enum Typed {
    Text(String),
    Bool(bool),
    Int(i64),
}

impl Typed {
    fn into_text(self) -> String {
        match self {
            Typed::Text(s) => s,
            Typed::Bool(b) => b.to_string(),
            Typed::Int(i) => i.to_string(),
        }
    }

    fn into_json(self) -> Value {
        match self {
            Typed::Text(s) => Value::String(s),
            Typed::Bool(b) => Value::Bool(b),
            Typed::Int(i) => Value::from(i),
        }
    }
}

/// Where a field's value comes from.
#[derive(Debug, Clone)]
enum Source {
    Path(Path),
    Coalesce(Vec<Path>),
    /// The template and, per placeholder in order, the field it names (`None`: unknown).
    Template(Template, Vec<Option<Slot>>),
    Value(Value),
    /// Only a `default` (or nothing, for an unchecked spec).
    Nothing,
}

/// One field's mapping, compiled.
#[derive(Debug, Clone)]
struct Rule {
    slot: Slot,
    /// `start_date` or `custom.NAME`.
    label: String,
    /// `latest:`: the object `source` reads from, when not the record itself.
    latest: Option<Pick>,
    source: Source,
    kind: ValueType,
    /// The values a canonical enum field allows.
    allowed: Option<&'static [&'static str]>,
    transforms: Vec<Transform>,
    date_format: Option<String>,
    values: HashMap<String, String>,
    /// The `values` keys in file order, for messages.
    value_keys: Vec<String>,
    unmapped: Unmapped,
    empty_values: Vec<String>,
    default: Option<Value>,
    /// `absent:`: the problem when the path does not exist in the record.
    absent: Option<String>,
    required: bool,
}

impl Rule {
    fn new(
        slot: Slot,
        field: Option<Field>,
        label: String,
        spec: &FieldSpec,
        slot_of: &dyn Fn(&str) -> Option<Slot>,
    ) -> Rule {
        let (kind, allowed) = match field.map(Field::mapped_kind) {
            Some(FieldKind::Date) => (ValueType::Date, None),
            Some(FieldKind::Email) => (ValueType::Email, None),
            Some(FieldKind::Enum(values)) => (ValueType::Enum, Some(values)),
            Some(FieldKind::String) | None => (spec.kind.unwrap_or(ValueType::String), None),
        };
        let source = if let Some(p) = &spec.path {
            Source::Path(Path::new(p))
        } else if let Some(ps) = &spec.coalesce {
            Source::Coalesce(ps.iter().map(Path::new).collect())
        } else if let Some(t) = &spec.template {
            let slots = t.vars().map(slot_of).collect();
            Source::Template(t.clone(), slots)
        } else if let Some(v) = &spec.value {
            Source::Value(v.clone())
        } else {
            Source::Nothing
        };
        Rule {
            slot,
            label,
            latest: spec.latest.as_ref().map(Pick::new),
            source,
            kind,
            allowed,
            transforms: spec.transform.clone(),
            date_format: spec.date_format.clone(),
            values: spec
                .values
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            value_keys: spec.values.keys().cloned().collect(),
            unmapped: spec.unmapped.unwrap_or(if kind == ValueType::Enum {
                Unmapped::Error
            } else {
                Unmapped::Keep
            }),
            empty_values: spec.empty_values.clone(),
            default: spec.default.clone(),
            absent: spec.absent.clone(),
            required: spec.required || field == Some(Field::work_email),
        }
    }

    fn unmapped_work_email() -> Rule {
        let f = Field::work_email;
        Rule::new(
            Slot::Canonical(f),
            Some(f),
            f.name().into(),
            &FieldSpec::default(),
            &|_| None,
        )
    }

    fn error(&self, message: String) -> FieldError {
        FieldError {
            field: self.label.clone(),
            message,
        }
    }

    /// Why a required field has no value.
    fn missing(&self) -> String {
        match &self.source {
            Source::Path(p) => format!("no value at `{}`", p.as_str()),
            Source::Coalesce(ps) => format!(
                "no value at any of {}",
                ps.iter()
                    .map(|p| format!("`{}`", p.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Source::Template(t, _) => {
                format!("the template `{}` has nothing to fill in", t.as_str())
            }
            Source::Value(_) => "the constant `value` is empty".into(),
            Source::Nothing => "not mapped".into(),
        }
    }

    /// The field's value in `record`; `Ok(None)` when there is none.
    fn eval(&self, record: &Value, e: &Evaluation) -> Result<Option<Typed>, String> {
        let record = match &self.latest {
            None => record,
            Some(pick) => match pick.choose(record) {
                Some(chosen) => chosen,
                None => return self.default_value(),
            },
        };
        if let Some(message) = &self.absent {
            let absent = match &self.source {
                Source::Path(p) => p.first(record).is_none(),
                Source::Coalesce(ps) => ps.iter().all(|p| p.first(record).is_none()),
                _ => false,
            };
            if absent {
                return Err(message.clone());
            }
        }
        let text = match &self.source {
            Source::Path(p) => self.prepare(p.first(record), p.as_str())?,
            Source::Coalesce(ps) => {
                let mut found = None;
                for p in ps {
                    if let Some(t) = self.prepare(p.first(record), p.as_str())?
                        && !t.is_empty()
                    {
                        found = Some(t);
                        break;
                    }
                }
                found
            }
            Source::Template(t, slots) => render(t, slots, e)?.and_then(|s| self.prepare_text(s)),
            Source::Value(v) => self.prepare(Some(v), "value")?,
            Source::Nothing => None,
        };
        // An empty string is a value only for text (and for a value map that names it).
        let text = text.filter(|t| {
            !t.is_empty() || self.kind == ValueType::String || self.values.contains_key("")
        });
        match text {
            Some(t) if t.len() as u64 > e.max_field_bytes => Err(format!(
                "the value is {} bytes, over `limits.max_field_bytes` ({}); the person keeps the last value that fit (help: raise `limits.max_field_bytes` in roster.yaml if values this long are expected)",
                convert::thousands(t.len() as u64),
                convert::size(e.max_field_bytes)
            )),
            Some(t) => self.convert(t),
            None => self.default_value(),
        }
    }

    /// A selected JSON value as transformed text.
    fn prepare(&self, v: Option<&Value>, path: &str) -> Result<Option<String>, String> {
        match v {
            None => Ok(None),
            Some(v) => Ok(convert::scalar_text(v, path)?.and_then(|t| self.prepare_text(t))),
        }
    }

    /// Transforms, then `empty_values`.
    fn prepare_text(&self, t: String) -> Option<String> {
        convert::transform(t, &self.transforms).filter(|t| !self.empty_values.contains(t))
    }

    /// The value map, then the type.
    fn convert(&self, t: String) -> Result<Option<Typed>, String> {
        if self.values.is_empty() {
            return self.typed(t).map(Some);
        }
        match self.values.get(&t) {
            Some(v) => self.typed(v.clone()).map(Some),
            None => match self.unmapped {
                Unmapped::Keep => self.typed(t).map(Some),
                Unmapped::Default => self.default_value(),
                Unmapped::Error => Err(format!(
                    "not in `values` ({}); add the provider's value there (`roster fetch SOURCE` shows the record), or set `unmapped: keep` or `unmapped: default`",
                    self.known_values()
                )),
            },
        }
    }

    /// The `values` keys for a message, the first few.
    fn known_values(&self) -> String {
        const SHOWN: usize = 6;
        let mut s = self
            .value_keys
            .iter()
            .take(SHOWN)
            .map(|k| format!("`{}`", k.escape_debug()))
            .collect::<Vec<_>>()
            .join(", ");
        if self.value_keys.len() > SHOWN {
            s.push_str(&format!(", ... ({} in all)", self.value_keys.len()));
        }
        format!("it has {s}")
    }

    /// `default`, typed (not transformed or value-mapped).
    fn default_value(&self) -> Result<Option<Typed>, String> {
        let Some(d) = &self.default else {
            return Ok(None);
        };
        match convert::scalar_text(d, "default")? {
            None => Ok(None),
            Some(t) => self
                .typed(t)
                .map(Some)
                .map_err(|e| format!("the `default`: {e}")),
        }
    }

    fn typed(&self, t: String) -> Result<Typed, String> {
        Ok(match self.kind {
            ValueType::String => Typed::Text(t),
            ValueType::Email => Typed::Text(convert::email(&t)?),
            ValueType::Date => Typed::Text(convert::date(&t, self.date_format.as_deref())?),
            ValueType::Enum => match self.allowed {
                Some(allowed) if !allowed.contains(&t.as_str()) => {
                    return Err(format!(
                        "not an allowed value (expected {}); map the provider's value with `values:` (`roster fetch SOURCE` shows the record)",
                        allowed.join(", ")
                    ));
                }
                _ => Typed::Text(t),
            },
            ValueType::Bool => Typed::Bool(convert::boolean(&t)?),
            ValueType::Int => Typed::Int(convert::integer(&t)?),
        })
    }
}

/// `latest:` compiled: the candidates and where each one's date is.
#[derive(Debug, Clone)]
struct Pick {
    among: Path,
    by: Path,
}

impl Pick {
    fn new(l: &Latest) -> Pick {
        Pick {
            among: Path::new(&l.among),
            by: Path::new(&l.by),
        }
    }

    /// The candidate with the greatest date (its calendar date, then its text); the first of
    /// equals, and the first candidate when none has a date. `None` without candidates.
    fn choose<'a>(&self, record: &'a Value) -> Option<&'a Value> {
        let candidates = self.among.all(record);
        let mut best: Option<(&'a Value, Option<(String, String)>)> = None;
        for c in candidates {
            let key = self.date_of(c);
            let better = match &best {
                None => true,
                Some((_, best_key)) => key > *best_key,
            };
            if better {
                best = Some((c, key));
            }
        }
        best.map(|(c, _)| c)
    }

    /// A candidate's date as (calendar date, text); `None` when missing or not a date, which
    /// ranks below every date.
    fn date_of(&self, candidate: &Value) -> Option<(String, String)> {
        let text = convert::scalar_text(self.by.first(candidate)?, "")
            .ok()
            .flatten()?;
        let text = text.trim().to_string();
        let day = convert::date(&text, None).ok()?;
        Some((day, text))
    }
}

/// Fills a template from the fields mapped so far; `None` when every placeholder is empty. An
/// error when a placeholder's field failed to convert: the template's value is not known then
/// (filling it without that part would announce a change that did not happen).
fn render(t: &Template, slots: &[Option<Slot>], e: &Evaluation) -> Result<Option<String>, String> {
    let mut out = String::new();
    let mut filled = false;
    let mut slots = slots.iter();
    for piece in t.pieces() {
        match piece {
            Piece::Text(s) => out.push_str(s),
            Piece::Var(name) => {
                let slot = slots.next().copied().flatten();
                if slot.is_some_and(|s| e.failed.contains(&s)) {
                    return Err(format!(
                        "its template uses `{name}`, which failed to convert; the person keeps the last value"
                    ));
                }
                if let Some(v) = slot.and_then(|s| e.text(s)) {
                    filled |= !v.is_empty();
                    out.push_str(&v);
                }
            }
        }
    }
    Ok(filled.then(|| out.trim().to_string()))
}

/// Sourced rules first (file order), then templates so that each comes after the templates
/// it uses. A cycle (refused by `validate`; possible only in an unchecked spec) keeps file
/// order, the later template seeing the earlier one empty.
fn order_templates(rules: Vec<Rule>) -> Vec<Rule> {
    let (mut ordered, mut pending): (Vec<Rule>, Vec<Rule>) = rules
        .into_iter()
        .partition(|r| !matches!(r.source, Source::Template(..)));
    while !pending.is_empty() {
        let ready = pending.iter().position(|r| {
            let Source::Template(_, slots) = &r.source else {
                return true;
            };
            slots
                .iter()
                .flatten()
                .all(|s| !pending.iter().any(|p| p.slot == *s))
        });
        ordered.push(pending.remove(ready.unwrap_or(0)));
    }
    ordered
}

/// The filter, compiled.
#[derive(Debug, Clone)]
struct CompiledFilter {
    statuses: Vec<&'static str>,
    exclude: Vec<(Path, RecordRule)>,
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::PreHire => "pre_hire",
        Status::Active => "active",
        Status::OnLeave => "on_leave",
        Status::Terminated => "terminated",
        Status::Inactive => "inactive",
    }
}

impl CompiledFilter {
    fn new(f: &Filter) -> CompiledFilter {
        CompiledFilter {
            statuses: f
                .statuses
                .as_deref()
                .unwrap_or(DEFAULT_STATUSES)
                .iter()
                .map(|s| status_name(*s))
                .collect(),
            exclude: f
                .exclude
                .iter()
                .map(|r| (Path::new(&r.path), r.clone()))
                .collect(),
        }
    }

    /// Why the record is dropped, if it is: an `exclude` rule on the raw record, else a
    /// mapped status the filter does not keep.
    fn reason(&self, record: &Value, status: Option<&str>) -> Option<String> {
        for (i, (path, rule)) in self.exclude.iter().enumerate() {
            let found = path.all(record);
            if rule.empty {
                let empty = found.iter().all(|v| v.is_null() || v.as_str() == Some(""));
                if empty {
                    return Some(format!("filter.exclude[{i}]: `{}` is empty", path.as_str()));
                }
            } else if let Some(want) = &rule.equals {
                let hit = if want.is_null() {
                    found.iter().all(|v| v.is_null())
                } else {
                    found.iter().any(|v| convert::loose_eq(v, want))
                };
                if hit {
                    return Some(format!(
                        "filter.exclude[{i}]: `{}` equals {want}",
                        path.as_str()
                    ));
                }
            }
        }
        match status {
            Some(s) if !self.statuses.contains(&s) => Some(format!(
                "status `{s}` is not one the filter keeps ({})",
                self.statuses.join(", ")
            )),
            _ => None,
        }
    }
}

/// What the fingerprint covers: everything that changes how a record maps, in one canonical
/// form (the shorthand `field: $.path` and `field: {path: $.path}` are the same; custom
/// fields sorted by name; an absent `filter.statuses` is the default list).
#[derive(Serialize)]
struct Canonical<'a> {
    engine: u32,
    /// A changed limit changes which values fail.
    max_field_bytes: u64,
    fields: Vec<(&'static str, Cow<'a, FieldSpec>)>,
    custom: BTreeMap<&'a str, Cow<'a, FieldSpec>>,
    statuses: Vec<&'static str>,
    exclude: &'a [RecordRule],
}

fn fingerprint(
    fields: &FieldMappings,
    custom: &IndexMap<String, FieldMapping>,
    filter: &Filter,
    max_field_bytes: u64,
) -> u64 {
    let c = Canonical {
        engine: ENGINE_VERSION,
        max_field_bytes,
        fields: fields.iter().map(|(f, m)| (f.name(), m.spec())).collect(),
        custom: custom.iter().map(|(k, m)| (k.as_str(), m.spec())).collect(),
        statuses: CompiledFilter::new(filter).statuses,
        exclude: &filter.exclude,
    };
    // Serializing plain data into a Vec cannot fail.
    let bytes = serde_json::to_vec(&c).unwrap_or_default();
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

#[cfg(test)]
mod tests;
