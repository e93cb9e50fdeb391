//! The records as the vendors' APIs send them, as borrowed `Serialize` structs: serialized
//! straight to text for the server (no `serde_json::Value` tree per record, which costs
//! ~40 KB and most of the time of a 100,000-person company), or turned into `Value`s for
//! [`Dataset`](super::Dataset).
//!
//! Fields are declared in the byte order of their JSON keys, which is the order a
//! `serde_json::Value` object serializes in, so both routes give the same text (a test
//! checks it).

use serde::Serialize;
use serde_json::Value;

/// One Personio attribute: `{label, type, universal_id, value}`.
#[derive(Serialize)]
pub struct Attr<V> {
    pub label: &'static str,
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub universal_id: Option<&'static str>,
    pub value: V,
}

/// A standard attribute (`type: standard`, `universal_id` = its key).
pub fn std<V>(label: &'static str, uid: &'static str, value: V) -> Attr<V> {
    Attr {
        label,
        ty: "standard",
        universal_id: Some(uid),
        value,
    }
}

/// A date attribute (`type: date`).
pub fn date<V>(label: &'static str, uid: &'static str, value: V) -> Attr<V> {
    Attr {
        label,
        ty: "date",
        universal_id: Some(uid),
        value,
    }
}

/// A custom attribute (`dynamic_NNN`): no universal id.
pub fn custom<V>(label: &'static str, ty: &'static str, value: V) -> Attr<V> {
    Attr {
        label,
        ty,
        universal_id: None,
        value,
    }
}

/// A department, office, subcompany or team: `{attributes: {id, name}, type}`.
#[derive(Serialize)]
pub struct Org {
    pub attributes: OrgAttrs,
    #[serde(rename = "type")]
    pub ty: &'static str,
}

#[derive(Serialize)]
pub struct OrgAttrs {
    pub id: u64,
    pub name: &'static str,
}

pub fn org(ty: &'static str, id: u64, name: &'static str) -> Org {
    Org {
        attributes: OrgAttrs { id, name },
        ty,
    }
}

/// Personio's ShortEmployee, nested in `supervisor.value`.
#[derive(Serialize)]
pub struct Short<'a> {
    pub attributes: ShortAttrs<'a>,
    #[serde(rename = "type")]
    pub ty: &'static str,
}

#[derive(Serialize)]
pub struct ShortAttrs<'a> {
    pub email: Attr<Option<&'a str>>,
    pub first_name: Attr<&'a str>,
    pub id: Attr<u64>,
    pub last_name: Attr<&'a str>,
}

pub fn short<'a>(id: u64, first: &'a str, last: &'a str, email: Option<&'a str>) -> Short<'a> {
    Short {
        attributes: ShortAttrs {
            email: std("Email", "email", email),
            first_name: std("First name", "first_name", first),
            id: Attr {
                label: "ID",
                ty: "integer",
                universal_id: Some("id"),
                value: id,
            },
            last_name: std("Last name", "last_name", last),
        },
        ty: "Employee",
    }
}

/// A Personio employee: `{attributes, type: Employee}`.
#[derive(Serialize)]
pub struct Employee<'a> {
    pub attributes: Attributes<'a>,
    #[serde(rename = "type")]
    pub ty: &'static str,
}

/// The attributes the demo credential may read, custom ones included.
#[derive(Serialize)]
pub struct Attributes<'a> {
    pub contract_end_date: Attr<Option<String>>,
    pub created_at: Attr<String>,
    pub department: Attr<Org>,
    pub dynamic_24407: Attr<Option<&'static str>>,
    /// [`PERSONIO_BIRTHDAY_ATTRIBUTE`](super::PERSONIO_BIRTHDAY_ATTRIBUTE).
    #[serde(rename = "dynamic_7021350")]
    pub birthday: Attr<String>,
    pub email: Attr<Option<&'a str>>,
    pub employment_type: Attr<&'static str>,
    pub first_name: Attr<&'static str>,
    pub gender: Attr<&'static str>,
    pub hire_date: Attr<String>,
    pub id: Attr<u64>,
    pub last_modified_at: Attr<String>,
    pub last_name: Attr<&'static str>,
    pub last_working_day: Attr<Option<String>>,
    pub office: Attr<Org>,
    pub position: Attr<&'a str>,
    pub preferred_name: Attr<&'static str>,
    pub probation_period_end: Attr<Option<String>>,
    pub status: Attr<&'static str>,
    pub subcompany: Attr<Option<Org>>,
    pub supervisor: Attr<Option<Short<'a>>>,
    pub team: Attr<Option<Org>>,
    pub termination_date: Attr<Option<String>>,
    pub termination_reason: Attr<Option<&'static str>>,
    pub termination_type: Attr<Option<&'static str>>,
    pub weekly_working_hours: Attr<String>,
}

/// A Merge Employee (the HRIS common model). Related objects are `&Value`s: the shared
/// object when expanded, its `id` when not.
#[derive(Serialize)]
pub struct MergeEmployee<'a> {
    pub avatar: (),
    pub company: &'a Value,
    pub custom_fields: (),
    pub date_of_birth: Option<String>,
    pub display_full_name: &'a str,
    pub employee_number: &'a str,
    pub employment_status: &'static str,
    pub employments: [Employment<'a>; 1],
    pub ethnicity: (),
    pub field_mappings: (),
    pub first_name: &'a str,
    pub gender: &'static str,
    pub groups: [&'a Value; 2],
    pub hire_date: String,
    pub home_location: (),
    pub id: &'a str,
    pub last_name: &'a str,
    pub manager: Manager<'a>,
    pub marital_status: (),
    pub mobile_phone_number: (),
    pub modified_at: String,
    pub pay_group: (),
    pub personal_email: (),
    pub remote_created_at: String,
    pub remote_data: (),
    pub remote_id: &'a str,
    pub remote_was_deleted: bool,
    pub start_date: String,
    pub team: Option<&'a Value>,
    pub termination_date: Option<String>,
    pub username: String,
    pub work_email: &'a str,
    pub work_location: &'a Value,
}

/// `manager`: null, a UUID, or the manager's own (unexpanded) record.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Manager<'a> {
    None,
    Id(&'a str),
    Expanded(Box<MergeEmployee<'a>>),
    /// One outside the listing, as Merge expands it.
    Raw(&'a Value),
}

/// An entry of `employments`: its UUID, or the object.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Employment<'a> {
    Id(&'a str),
    Expanded(EmploymentObject<'a>),
}

#[derive(Serialize)]
pub struct EmploymentObject<'a> {
    pub effective_date: String,
    pub employee: &'a str,
    pub employment_type: &'static str,
    pub field_mappings: (),
    pub flsa_status: &'static str,
    pub id: &'a str,
    pub job_title: &'a str,
    pub modified_at: String,
    pub pay_currency: &'static str,
    pub pay_frequency: &'static str,
    pub pay_group: (),
    pub pay_period: &'static str,
    pub pay_rate: f64,
    pub remote_data: (),
    pub remote_id: String,
    pub remote_was_deleted: bool,
}
