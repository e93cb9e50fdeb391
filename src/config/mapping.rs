//! The mapping file (`mappings/*.yaml`): how one provider record becomes a canonical person.
//!
//! These are the types as written (serde + JSON Schema). Cross-file checks (the provider and
//! stream exist, templates name mapped fields, enum values are canonical) live in
//! `config::compile`; applying a mapping to a record is `mapping::` (a later stage).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::person::FieldMappings;
use super::value::{JsonPath, Name, Ratio, Template};

/// A field mapping file: which provider stream it reads, and how each canonical field is filled.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// What this mapping is for, shown by `roster validate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The provider spec whose records this mapping reads (a built-in name such as `personio`, or a file in `providers/`).
    pub provider: Name,
    /// The provider stream whose records are people (e.g. `employees`).
    pub stream: Name,
    /// Canonical fields, each from a JSONPath, a coalesce of paths, a template or a constant.
    pub fields: FieldMappings,
    /// Extra fields kept beside the canonical ones (in the directory's `custom` column), by name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub custom: IndexMap<String, CustomField>,
    /// Which mapped records belong in the directory. Default: active people, people on leave, and future hires.
    #[serde(default)]
    pub filter: Filter,
    /// Expectations on how often mapped fields are filled, so an empty hire date in every record fails loudly instead of syncing green.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub coverage: IndexMap<String, Coverage>,
    /// Fixtures for `roster test`: provider records and the people they must map to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<MappingTest>,
}

impl MappingSpec {
    /// The coverage rules as the store checks them: `(field, max_empty, fail)`.
    pub fn coverage_rules(&self) -> Vec<(String, f64, bool)> {
        self.coverage
            .iter()
            .map(|(field, rule)| {
                (
                    field.clone(),
                    rule.max_empty.get(),
                    rule.action == CoverageAction::Fail,
                )
            })
            .collect()
    }
}

/// How one field is filled: a JSONPath string, or a full mapping.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum FieldMapping {
    /// Shorthand: a JSONPath into the record, e.g. `$.attributes.email.value`.
    Path(JsonPath),
    /// A full mapping with a source, a type and transforms.
    Full(Box<FieldSpec>),
}

/// A full field mapping. Give exactly one of `path`, `coalesce`, `template` or `value`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// JSONPath into the provider record. The first match is used. A quoted name may be a provider setting, `$.attributes['{settings.NAME}'].value`: each source's own value (`settings:` in roster.yaml, else the provider's default) is put in, and when it is empty the field is not mapped for that source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<JsonPath>,
    /// Several JSONPaths; the first that yields a non-empty value wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coalesce: Option<Vec<JsonPath>>,
    /// A template over other mapped fields of the same mapping, e.g. `{first_name} {last_name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
    /// A constant value for every record (e.g. `worker_type: {value: contractor}` for a contractor-only source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// Picks one object among several before `path` or `coalesce` is read, which are then read from that object (`$` is the picked object): the one whose date at `latest.by` is the greatest. E.g. the current employment: `latest: {among: "$.employments[*]", by: $.effective_date}` with `path: $.job_title`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<Latest>,
    /// Value type. Canonical fields have a fixed type that may be omitted; custom fields default to `string`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<ValueType>,
    /// Transforms applied in order to the text value before typing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transform: Vec<Transform>,
    /// Input format for dates that are not ISO 8601, in strftime syntax (e.g. `%d.%m.%Y`). ISO dates and date-times are always understood; a date-time's own calendar date is kept (no time zone shift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_format: Option<String>,
    /// Value map from the provider's value to the stored one (required for enum fields whose provider values differ, e.g. `onboarding: pre_hire`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub values: IndexMap<String, String>,
    /// What to do with a provider value missing from `values`: `error` (the record is reported as a data problem, default for enum fields), `keep` (store it unchanged) or `default` (use `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmapped: Option<Unmapped>,
    /// Provider values that mean "no value", e.g. BambooHR's `0000-00-00` for an empty date. Compared after transforms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub empty_values: Vec<String>,
    /// Value used when the source yields nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// What it means when `path` (or every path of `coalesce`) does not exist in a record at all (the key is absent, not null): this message, as a data problem of the field, which keeps its last good value. For APIs that leave out what the credential may not read; say what to allow where. `{settings.NAME}` is put in as in `path`. Without it, an absent key is no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absent: Option<String>,
    /// When true, a record without this field fails to map and is reported (it still counts as present). `work_email` is always required.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
}

impl FieldSpec {
    /// The names of the `{settings.NAME}` placeholders in `path`, `coalesce` and `absent`,
    /// in order, each once: where a source's provider settings go into a mapping
    /// (`config::compile` puts the values in).
    pub fn setting_refs(&self) -> Vec<String> {
        const OPEN: &str = "{settings.";
        let texts = self
            .path
            .iter()
            .chain(self.coalesce.iter().flatten())
            .map(JsonPath::as_str)
            .chain(self.absent.as_deref());
        let mut out = Vec::new();
        for t in texts {
            let mut rest = t;
            while let Some(i) = rest.find(OPEN) {
                rest = &rest[i + OPEN.len()..];
                let end = rest.find('}').unwrap_or(rest.len());
                let name = rest[..end].to_string();
                if !out.contains(&name) {
                    out.push(name);
                }
                rest = &rest[end..];
            }
        }
        out
    }
}

impl FieldMapping {
    /// The full spec (the shorthand is a spec with only `path`).
    pub fn spec(&self) -> std::borrow::Cow<'_, FieldSpec> {
        match self {
            FieldMapping::Path(p) => std::borrow::Cow::Owned(FieldSpec {
                path: Some(p.clone()),
                ..FieldSpec::default()
            }),
            FieldMapping::Full(s) => std::borrow::Cow::Borrowed(s),
        }
    }
}

/// Which object of several a field is read from: the one with the greatest date.
///
/// Candidates whose date is missing or not an ISO date (or date-time) rank below every
/// dated one; among equal dates the first in the record's order wins, and when no candidate
/// has a date, the first candidate is read. No candidates at all is no value (`default`
/// applies).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Latest {
    /// JSONPath selecting the candidate objects in the record, e.g. `$.employments[*]`.
    pub among: JsonPath,
    /// JSONPath into each candidate (`$` is the candidate) to its date, e.g. `$.effective_date`. ISO dates and date-times; a date-time counts by its own calendar date, then by its full text.
    pub by: JsonPath,
}

/// A custom field: a field mapping with a type (default `string`).
pub type CustomField = FieldMapping;

/// Value types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// Text.
    String,
    /// An email address, trimmed and lowercased.
    Email,
    /// A calendar date.
    Date,
    /// One of a fixed set of values, given by `values`.
    Enum,
    /// true or false (also `"true"`, `"yes"`, `1`).
    Bool,
    /// A whole number.
    Int,
}

/// Text transforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// Remove leading and trailing white space.
    Trim,
    /// Lowercase.
    Lowercase,
    /// Uppercase.
    Uppercase,
    /// Collapse runs of white space into one space.
    CollapseWhitespace,
    /// Treat an empty string as no value.
    EmptyAsNull,
}

/// What to do with a value that is not in `values`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unmapped {
    /// Report a data problem for the record.
    Error,
    /// Keep the provider's value unchanged.
    Keep,
    /// Use the field's `default`.
    Default,
}

/// Which records belong in the directory.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Keep people whose mapped status is one of these. Default: `pre_hire`, `active`, `on_leave` and `inactive` (which the directory shows as `pre_hire` or `terminated` by the start date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Vec<Status>>,
    /// Drop records matching any of these rules (test accounts, service users, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<RecordRule>,
}

/// Canonical statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Hired, start date ahead.
    PreHire,
    /// Working.
    Active,
    /// On leave, still employed.
    OnLeave,
    /// Left.
    Terminated,
    /// Not active, without saying why: a pre-hire while the start date is ahead, else left.
    Inactive,
}

/// A rule on a raw record: true when the value at `path` equals `equals` (or, with
/// `empty: true`, when there is no value). A path may match several values (`$.tags[*]`):
/// `equals` then holds when ANY of them equals (`equals: null` when all are null), `empty`
/// when ALL are empty; no value is picked silently.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordRule {
    /// JSONPath into the provider record; every value it matches is compared.
    pub path: JsonPath,
    /// The value to compare with (string, number or boolean). With several matches, the rule holds when any of them equals it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<serde_json::Value>,
    /// Matches when the path yields no value or an empty string (with several matches: when all are empty).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty: bool,
}

/// A coverage expectation for one field.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Coverage {
    /// Largest share of kept records allowed to have this field empty, e.g. `10%`.
    pub max_empty: Ratio,
    /// What a violation does: `warn` (logged and recorded on the sync run) or `fail` (the sync applies nothing).
    #[serde(default)]
    pub action: CoverageAction,
}

/// What a coverage violation does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CoverageAction {
    /// Log and record it; apply the sync.
    #[default]
    Warn,
    /// Apply nothing and report the sync as failed.
    Fail,
}

/// A mapping fixture: one provider record and what it must map to.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingTest {
    /// What the fixture shows.
    pub name: String,
    /// The provider record, as the stream yields it (after joins and lookups).
    pub record: serde_json::Value,
    /// Expected canonical fields (by name; custom fields as `custom.NAME`). Fields not listed are not checked. With `excluded: true`, they are the fields of the dropped record as the mapping reads them before the filter (e.g. to pin the status that made the filter drop it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<IndexMap<String, serde_json::Value>>,
    /// True when the filter must drop this record.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub excluded: bool,
}
