//! Personio (API v1) end to end: a fake Personio on 127.0.0.1:0 that behaves as the vendor
//! documents it, read through the built-in spec (only `base_url` changed) and the built-in
//! mapping into a real DuckDB directory, checked field by field against what the fake served.
//!
//! What the fake reproduces (personio-auth-api.yaml and personio-personnel-data-api-oa3.yaml
//! in ../shared/provider-specs/personio, and the notes in providers/personio.yaml):
//! - `POST /auth` with `client_id` and `client_secret` (JSON or form body) answers
//!   `{success, data: {token, expires_in, scope}}`; wrong ones get 401 with the documented
//!   `ErrorResponse` body `{success: false, error: {code, message}}`.
//! - Tokens are single-use, Personio's original (and strictest) documented behaviour: each
//!   works for one request, which answers with the next one in its `authorization` header. A
//!   stale token is rejected with 401.
//! - `GET /company/employees`: `limit` (default 50, capped at 100 like the live API) and
//!   `offset` counted in records; `metadata.total_elements` is the whole listing.
//! - Every attribute wrapped as `{label, value, type, universal_id}`; department, office,
//!   subcompany and team one level deeper; the supervisor a nested short Employee whose own
//!   attributes are wrapped again, with or without the email (depends on the credential's
//!   scope). Attributes the credential may not read are missing altogether.
//! - `status` `active | onboarding | leave | inactive`, `employment_type internal | external`.
//! - Dates at local midnight with an offset (`+01:00`, `+02:00`, `+09:00`, and the `+0100`
//!   of the Employee schema's examples), so several of them are the day before in UTC.
//! - Custom attributes as `dynamic_NNN` (a date of birth, an anniversary, a title), custom
//!   dates both as date-times and as plain dates (the list example's `dynamic_33400`).
//!
//! Not reproduced: the rate limit (300/min, bursts of 15); three pages stay far below it.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::provider_common::{
    Env, assert_fetch_error, assert_people, assert_published, date, derived_status, serve, text,
    today_in,
};

const TIME_ZONE: &str = "Europe/Berlin";

const CLIENT_ID: &str = "papi-4b1d2c3e-9f80-client";
const CLIENT_SECRET: &str = "papi-secret-Vq7Lm2Xr9Tz4Kc8N";
const WRONG_SECRET: &str = "papi-secret-REVOKED-h3Jk8Pq1Ws5Y";
/// The tenant's custom attribute holding the date of birth (the number differs per account).
const BIRTHDAY: &str = "dynamic_1480391";

// ---------------------------------------------------------------------------------------
// The fake
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Personio {
    employees: Vec<Value>,
    /// Attributes the API credential may not read: Personio leaves them out of every
    /// record (no error, no null).
    hidden: Vec<String>,
    /// Tokens that work (each once).
    live: HashSet<String>,
    issued: u64,
    /// Every login: the token issued, or `None` when the credentials were wrong.
    logins: Vec<Option<String>>,
    /// Every employees request that was let in.
    pages: Vec<PageSeen>,
    /// Employees requests refused for a missing, stale or unknown token.
    rejected: usize,
}

#[derive(Debug, Clone)]
struct PageSeen {
    /// The token the request came with.
    token: String,
    /// The token the response handed on.
    next: String,
    offset: Option<String>,
    limit: Option<String>,
    app_id: Option<String>,
}

impl Personio {
    fn issue(&mut self) -> String {
        self.issued += 1;
        let t = format!(
            "papi-{:016x}",
            self.issued.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        );
        self.live.insert(t.clone());
        t
    }
}

type Shared = Arc<Mutex<Personio>>;

/// Personio's `ErrorResponse`.
fn personio_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"success": false, "error": {"code": status.as_u16(), "message": message}})),
    )
        .into_response()
}

async fn auth(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let pairs: Vec<(String, String)> = if form {
        url::form_urlencoded::parse(&body).into_owned().collect()
    } else {
        serde_json::from_slice::<serde_json::Map<String, Value>>(&body)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
            .collect()
    };
    let field = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let mut p = s.lock().unwrap();
    if field("client_id") != Some(CLIENT_ID) || field("client_secret") != Some(CLIENT_SECRET) {
        p.logins.push(None);
        return personio_error(
            StatusCode::UNAUTHORIZED,
            "Wrong credentials: unknown client_id or client_secret",
        );
    }
    let token = p.issue();
    p.logins.push(Some(token.clone()));
    Json(json!({
        "success": true,
        "data": {"token": token, "expires_in": 86400, "scope": "employees:read"}
    }))
    .into_response()
}

async fn employees(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let mut p = s.lock().unwrap();
    // Single-use: a token is gone once used; the response carries the next one.
    if !p.live.remove(&token) {
        p.rejected += 1;
        return personio_error(
            StatusCode::UNAUTHORIZED,
            "The token is invalid, expired or was already used",
        );
    }
    let next = p.issue();
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let limit = param("limit")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, 100);
    let offset = param("offset")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    p.pages.push(PageSeen {
        token,
        next: next.clone(),
        offset: param("offset"),
        limit: param("limit"),
        app_id: headers
            .get("x-personio-app-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    let total = p.employees.len();
    let data: Vec<Value> = p
        .employees
        .iter()
        .skip(offset)
        .take(limit)
        .map(|e| {
            let mut e = e.clone();
            if let Some(attrs) = e["attributes"].as_object_mut() {
                for h in &p.hidden {
                    attrs.remove(h);
                }
            }
            e
        })
        .collect();
    let body = json!({
        "success": true,
        "metadata": {
            "total_elements": total,
            "current_page": offset / limit,
            "total_pages": total.div_ceil(limit)
        },
        "offset": offset,
        "limit": limit,
        "data": data
    });
    (
        [(header::AUTHORIZATION, format!("Bearer {next}"))],
        Json(body),
    )
        .into_response()
}

/// Starts the fake; returns its base URL (`.../v1`) and its state.
async fn start(people: Vec<Value>) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(Personio {
        employees: people,
        ..Personio::default()
    }));
    let app = axum::Router::new()
        .route("/v1/auth", post(auth))
        .route("/v1/company/employees", get(employees))
        .with_state(shared.clone());
    let addr = serve(app).await;
    (format!("http://{addr}/v1"), shared)
}

// ---------------------------------------------------------------------------------------
// The company the fake serves
// ---------------------------------------------------------------------------------------

fn wrapped(label: &str, value: Value, kind: &str, universal_id: Option<&str>) -> Value {
    json!({"label": label, "value": value, "type": kind, "universal_id": universal_id})
}

fn unit(kind: &str, id: usize, name: &str) -> Value {
    json!({"type": kind, "attributes": {"id": id, "name": name}})
}

/// The supervisor as Personio nests it: a short Employee, its attributes wrapped again. The
/// email is there only when the credential may read it.
fn supervisor(of: &Value) -> Value {
    json!({"type": "Employee", "attributes": {
        "id": of["attributes"]["id"],
        "email": of["attributes"]["email"]
    }})
}

fn supervisor_id_only(id: u64) -> Value {
    let id = wrapped("ID", json!(id), "integer", Some("id"));
    json!({"type": "Employee", "attributes": {"id": id}})
}

/// Sets an attribute's `value`.
fn set(e: &mut Value, name: &str, value: Value) {
    e["attributes"][name]["value"] = value;
}

const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Customer Support",
    "Sales",
    "Finance",
    "People",
];
const TEAMS: &[&str] = &["Platform", "Tier 2", "Field Sales", "Payroll", "Talent"];
const OFFICES: &[&str] = &["Berlin", "Munich", "Hamburg"];
const SUBCOMPANIES: &[&str] = &["Kestrel Labs GmbH", "Kestrel Labs Services GmbH"];
const FIRST: &[&str] = &[
    "Anna", "Ben", "Clara", "David", "Elif", "Felix", "Hanna", "Ismail", "Jule", "Karl", "Lena",
    "Milan", "Nora", "Omar", "Pia", "Quentin",
];
const LAST: &[&str] = &[
    "Becker",
    "Schulz",
    "Yilmaz",
    "Hoffmann",
    "Schaefer",
    "Koch",
    "Richter",
    "Wolf",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krueger",
    "Hartmann",
    "Lange",
    "Werner",
];

/// One employee as `GET /company/employees` lists it, with the attributes of the vendor's
/// list example; dates at local midnight in Berlin (`+01:00` in winter, `+02:00` in summer).
fn employee(id: u64, first: &str, last: &str, boss: Option<Value>) -> Value {
    let n = id as usize;
    let month = 1 + n % 12;
    let tz = |m: usize| {
        if (4..=10).contains(&m) {
            "+02:00"
        } else {
            "+01:00"
        }
    };
    let hire_year = 2012 + n % 10;
    let day = 1 + n % 28;
    let hire = format!("{hire_year}-{month:02}-{day:02}T00:00:00{}", tz(month));
    let probation_month = 1 + (month + 5) % 12;
    let probation_year = hire_year + usize::from(month + 6 > 12);
    let probation = format!(
        "{probation_year}-{probation_month:02}-{day:02}T00:00:00{}",
        tz(probation_month)
    );
    let born = format!(
        "{}-{:02}-{:02}",
        1965 + n % 35,
        1 + n * 7 % 12,
        1 + n * 3 % 28
    );
    // Custom dates come back as date-times or as plain dates; some people have none.
    let birthday = match n % 3 {
        0 => json!(format!("{born}T00:00:00{}", tz(1 + n * 7 % 12))),
        1 => json!(born),
        _ if n % 7 == 0 => Value::Null,
        _ => json!(born),
    };
    let email = format!("{}.{}@Kestrel-Labs.example", first.trim(), last.trim());
    let mut attributes = serde_json::Map::new();
    let mut put = |key: &str, label: &str, kind: &str, value: Value| {
        // Standard attributes carry their own name as `universal_id`, custom ones null.
        let universal_id = (!key.starts_with("dynamic_")).then_some(key);
        attributes.insert(key.to_string(), wrapped(label, value, kind, universal_id));
    };
    let (std, date) = ("standard", "date");
    put("id", "ID", "integer", json!(id));
    put("first_name", "First name", std, json!(first));
    put("last_name", "Last name", std, json!(last));
    put("preferred_name", "Name (preferred)", std, Value::Null);
    put("email", "Email", std, json!(email));
    put("gender", "Gender", std, json!(["female", "male"][n % 2]));
    put("status", "Status", std, json!("active"));
    let position = format!("{} Specialist", DEPARTMENTS[n % 5]);
    put("position", "Position", std, json!(position));
    put("supervisor", "Supervisor", std, boss.unwrap_or(Value::Null));
    put("employment_type", "Employment type", std, json!("internal"));
    put("weekly_working_hours", "Weekly hours", std, json!("40"));
    put("hire_date", "Hire date", date, json!(hire));
    put("contract_end_date", "Contract ends", date, Value::Null);
    put("termination_date", "Termination date", date, Value::Null);
    put("termination_type", "Termination type", std, Value::Null);
    put("termination_reason", "Termination reason", std, Value::Null);
    put(
        "probation_period_end",
        "Probation period end",
        date,
        json!(probation),
    );
    put(
        "created_at",
        "created_at",
        date,
        json!("2017-05-23T09:49:03+02:00"),
    );
    put(
        "last_modified_at",
        "Last modified",
        date,
        json!("2024-11-18T17:33:55+01:00"),
    );
    let subcompany = unit("Subcompany", 7033 + n % 2, SUBCOMPANIES[n % 2]);
    put("subcompany", "Subcompany", std, subcompany);
    put(
        "office",
        "Office",
        std,
        unit("Office", 131_014 + n % 3, OFFICES[n % 3]),
    );
    let department = unit("Department", 281_521 + n % 5, DEPARTMENTS[n % 5]);
    put("department", "Department", std, department);
    put(
        "team",
        "Team",
        std,
        unit("Team", 59026 + n % 5, TEAMS[n % 5]),
    );
    let cost_centers = json!([{"type": "CostCenter",
        "attributes": {"id": 82957, "name": "Cost center 1", "percentage": 100}}]);
    put("cost_centers", "Cost center", std, cost_centers);
    put("last_working_day", "Last day of work", date, Value::Null);
    let picture = format!("https://api.personio.de/v1/company/employees/{id}/profile-picture");
    put("profile_picture", "Profile Picture", std, json!(picture));
    let title = if n % 9 == 0 { json!("Dr") } else { Value::Null };
    put("dynamic_24407", "Titel", std, title);
    // A decoy custom date: the override must pick the birthday, not this one.
    let anniversary = format!("{}-01-01", 2015 + n % 8);
    put(
        "dynamic_33400",
        "Anniversary Date",
        date,
        json!(anniversary),
    );
    put(BIRTHDAY, "Date of birth", date, birthday);
    json!({"type": "Employee", "attributes": attributes})
}

/// Kestrel Labs: a CEO, five leads, 230 people under them, and one person per quirk,
/// spread over the three pages.
fn company() -> Vec<Value> {
    let ceo = {
        let mut e = employee(1, "Jana", "Roth", None);
        set(&mut e, "position", json!("CEO"));
        e
    };
    let leads: Vec<Value> = (0..5u64)
        .map(|i| employee(2 + i, FIRST[i as usize * 3], "Lead", Some(supervisor(&ceo))))
        .collect();
    let mut people = vec![ceo.clone()];
    people.extend(leads.iter().cloned());
    for i in 0..230usize {
        let lead = &leads[i % 5];
        let id = lead["attributes"]["id"]["value"].as_u64().unwrap();
        people.push(employee(
            1000 + i as u64,
            FIRST[i % 16],
            LAST[i / 16 % 16],
            // The list example's supervisor: the id only.
            Some(supervisor_id_only(id)),
        ));
    }

    let mut specials = Vec::new();
    // An external hire still onboarding: a pre-hire contractor on a fixed-term contract.
    let mut e = employee(900, "Mira", "Okafor", Some(supervisor(&leads[0])));
    set(&mut e, "status", json!("onboarding"));
    set(&mut e, "employment_type", json!("external"));
    set(&mut e, "hire_date", json!("2099-03-01T00:00:00+01:00"));
    set(
        &mut e,
        "contract_end_date",
        json!("2099-08-31T00:00:00+02:00"),
    );
    specials.push(e);
    // Active in Personio but starting in the future: a pre-hire by date.
    let mut e = employee(901, "Noah", "Brandt", Some(supervisor(&leads[1])));
    set(&mut e, "hire_date", json!("2099-01-04T00:00:00+01:00"));
    specials.push(e);
    // On leave.
    let mut e = employee(902, "Lea", "Fischer", Some(supervisor(&leads[2])));
    set(&mut e, "status", json!("leave"));
    specials.push(e);
    // Left: inactive, out of the directory. Still somebody's supervisor.
    let mut leaver = employee(903, "Tobias", "Weber", Some(supervisor(&ceo)));
    set(&mut leaver, "status", json!("inactive"));
    set(
        &mut leaver,
        "termination_date",
        json!("2020-06-30T00:00:00+02:00"),
    );
    set(
        &mut leaver,
        "contract_end_date",
        json!("2020-12-31T00:00:00+01:00"),
    );
    set(
        &mut leaver,
        "last_working_day",
        json!("2020-06-13T00:00:00+02:00"),
    );
    specials.push(leaver.clone());
    // Reports to the leaver: the id resolves to nobody, the supervisor's email is the fallback.
    specials.push(employee(904, "Ida", "Kraus", Some(supervisor(&leaver))));
    // Reports to someone the credential cannot see, email not readable: no manager email.
    specials.push(employee(
        905,
        "Emil",
        "Vogt",
        Some(supervisor_id_only(7777)),
    ));
    // A fixed-term contract: the end date is the contract end.
    let mut e = employee(906, "Greta", "Lang", Some(supervisor(&leads[3])));
    set(
        &mut e,
        "contract_end_date",
        json!("2099-12-31T00:00:00+01:00"),
    );
    specials.push(e);
    // Resigned, serving notice: the termination date wins over the contract end.
    let mut e = employee(907, "Paul", "Seidel", Some(supervisor(&leads[4])));
    set(
        &mut e,
        "termination_date",
        json!("2099-01-31T00:00:00+01:00"),
    );
    set(
        &mut e,
        "contract_end_date",
        json!("2099-12-31T00:00:00+01:00"),
    );
    set(
        &mut e,
        "last_working_day",
        json!("2099-01-15T00:00:00+01:00"),
    );
    specials.push(e);
    // No work email: a data problem, not in the directory.
    let mut e = employee(908, "Ole", "Nomail", Some(supervisor(&leads[0])));
    set(&mut e, "email", Value::Null);
    specials.push(e);
    // An external freelancer, active.
    let mut e = employee(909, "Rosa", "Klein", Some(supervisor(&leads[1])));
    set(&mut e, "employment_type", json!("external"));
    specials.push(e);
    // Offsets without a colon, as in the Employee schema's examples.
    let mut e = employee(910, "Jonas", "Hahn", Some(supervisor(&leads[2])));
    set(&mut e, "hire_date", json!("2012-02-01T00:00:00+0100"));
    set(
        &mut e,
        "probation_period_end",
        json!("2012-08-01T00:00:00+0200"),
    );
    set(&mut e, BIRTHDAY, json!("1984-03-31T00:00:00+0200"));
    specials.push(e);
    // Untrimmed names and a preferred name that is a whole name (the vendor's example).
    let mut e = employee(911, "  Zoë ", "Çelik ", Some(supervisor(&leads[3])));
    set(&mut e, "email", json!("zoe.celik@kestrel-labs.example"));
    set(&mut e, "preferred_name", json!("Zoë Çelik"));
    specials.push(e);
    // Tokyo office: midnight at +09:00 is the previous day in UTC (a birthday a year early).
    let mut e = employee(912, "Kenji", "Sato", Some(supervisor(&leads[4])));
    set(&mut e, "office", unit("Office", 131_020, "Tokyo"));
    set(&mut e, "hire_date", json!("2019-04-01T00:00:00+09:00"));
    set(&mut e, BIRTHDAY, json!("1990-01-01T00:00:00+09:00"));
    specials.push(e);
    // A credential without access to the position and the birthday: the attributes are
    // missing, not null.
    let mut e = employee(913, "Lina", "Berg", Some(supervisor(&leads[0])));
    let attrs = e["attributes"].as_object_mut().unwrap();
    attrs.remove("position");
    attrs.remove(BIRTHDAY);
    specials.push(e);
    // No department, team or office set in Personio.
    let mut e = employee(914, "Finn", "Arnold", Some(supervisor(&leads[1])));
    for a in ["department", "team", "office"] {
        set(&mut e, a, Value::Null);
    }
    specials.push(e);

    // Spread over the pages (100 per page).
    for (j, s) in specials.into_iter().enumerate() {
        people.insert(10 + j * 16, s);
    }
    people
}

// ---------------------------------------------------------------------------------------
// Expectations, from what the fake serves
// ---------------------------------------------------------------------------------------

fn value<'a>(r: &'a Value, name: &str) -> &'a Value {
    &r["attributes"][name]["value"]
}

fn email(r: &Value) -> String {
    text(value(r, "email")).trim().to_lowercase()
}

fn kept(r: &Value) -> bool {
    text(value(r, "status")) != "inactive" && !email(r).is_empty()
}

const COLUMNS: &str = "employee_id, first_name, last_name, preferred_name, display_name, job_title,
    department, team, sub_company, legal_entity, office, manager_id, manager_email,
    employment_type, worker_type, hris_status, status, start_date, end_date,
    probation_end_date, birth_date, custom['contract_end_date'], custom['last_working_day'],
    sources";

/// Every column of [`COLUMNS`] for a record the directory should have.
fn expected(r: &Value, all: &[Value], today: &str) -> Vec<String> {
    let trimmed = |name: &str| text(value(r, name)).trim().to_string();
    let name_of = |name: &str| text(&value(r, name)["attributes"]["name"]);
    let boss = &value(r, "supervisor")["attributes"];
    let boss_id = text(&boss["id"]["value"]);
    // The supervisor's id resolves within Personio; else the nested email, if readable.
    let manager_email = all
        .iter()
        .find(|o| kept(o) && text(value(o, "id")) == boss_id)
        .map(email)
        .unwrap_or_else(|| text(&boss["email"]["value"]).trim().to_lowercase());
    let employment_type = text(value(r, "employment_type"));
    let hris_status = match text(value(r, "status")).as_str() {
        "active" => "active",
        "onboarding" => "pre_hire",
        "leave" => "on_leave",
        other => panic!("status {other} is not kept"),
    };
    let start = date(value(r, "hire_date"));
    let end = match date(value(r, "termination_date")) {
        d if d.is_empty() => date(value(r, "contract_end_date")),
        d => d,
    };
    let status = derived_status(hris_status, &start, &end, today);
    vec![
        text(value(r, "id")),
        trimmed("first_name"),
        trimmed("last_name"),
        trimmed("preferred_name"),
        format!("{} {}", trimmed("first_name"), trimmed("last_name")),
        trimmed("position"),
        name_of("department"),
        name_of("team"),
        name_of("subcompany"),
        // Personio v1's legal entity is the subcompany (the employing company).
        name_of("subcompany"),
        name_of("office"),
        boss_id,
        manager_email,
        employment_type.clone(),
        match employment_type.as_str() {
            "internal" => "employee",
            "external" => "contractor",
            other => panic!("employment type {other}"),
        }
        .to_string(),
        hris_status.to_string(),
        status.to_string(),
        start,
        end,
        date(value(r, "probation_period_end")),
        date(value(r, BIRTHDAY)),
        date(value(r, "contract_end_date")),
        date(value(r, "last_working_day")),
        "[personio]".to_string(),
    ]
}

// ---------------------------------------------------------------------------------------
// A config directory and a sync
// ---------------------------------------------------------------------------------------

/// The built-in `personio` spec with only `base_url` replaced, the built-in mapping, and a
/// source that names the tenant's birthday attribute in its one setting.
fn env(base_url: &str, secret: &str) -> Env {
    env_with(base_url, secret, Some(BIRTHDAY))
}

/// [`env`] with `birth_date_attribute` set to `attribute` (written as is into the YAML), or
/// not set at all.
fn env_with(base_url: &str, secret: &str, attribute: Option<&str>) -> Env {
    let env = Env::new();
    env.override_base_url("personio", base_url);
    env.write_secret("personio_client_secret", secret);
    let settings = attribute
        .map(|a| format!("    settings:\n      birth_date_attribute: {a}\n"))
        .unwrap_or_default();
    env.write_roster(
        TIME_ZONE,
        &format!(
            "  personio:
    provider: personio
    credentials:
      client_id: {CLIENT_ID}
      client_secret: {{file: secrets/personio_client_secret}}
{settings}"
        ),
    );
    env
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn personio_employees_land_in_the_directory_field_by_field() {
    let company = company();
    let (base, fake) = start(company.clone()).await;
    let e = env(&base, CLIENT_SECRET);
    let r = e.sync().await.unwrap();
    assert_published(&r);

    let inactive = company
        .iter()
        .filter(|p| text(value(p, "status")) == "inactive")
        .count();
    let no_email = company.iter().filter(|p| email(p).is_empty()).count();
    assert_eq!((inactive, no_email), (1, 1));
    // (The pages are checked below, from what the fake saw: the run's `pages` counts every
    // request, the login included.)
    assert_eq!(
        (r.run.records, r.run.excluded, r.run.failed),
        (company.len() as u64, 1, 1),
        "the leaver excluded, the one without email failed"
    );

    // Everyone kept, with every mapped field as the fake served it; nobody else.
    let today = today_in(TIME_ZONE).to_string();
    let want: BTreeMap<String, Vec<String>> = company
        .iter()
        .filter(|p| kept(p))
        .map(|p| (email(p), expected(p, &company, &today)))
        .collect();
    assert_people(&e.people_by_email(COLUMNS), &want, COLUMNS);

    // The quirks, spelled out (the loop above already compared them with the records).
    let one = |email: &str, cols: &str| e.row_of(email, cols);
    // Pre-hires are in: onboarding, and active with a hire date ahead.
    assert_eq!(
        one(
            "mira.okafor@kestrel-labs.example",
            "status, worker_type, start_date, end_date"
        ),
        ["pre_hire", "contractor", "2099-03-01", "2099-08-31"]
    );
    assert_eq!(
        one("noah.brandt@kestrel-labs.example", "status, hris_status"),
        ["pre_hire", "active"]
    );
    assert_eq!(
        one("lea.fischer@kestrel-labs.example", "status")[0],
        "on_leave"
    );
    // The leaver is out.
    assert!(
        e.query("select 1 from people where work_email = 'tobias.weber@kestrel-labs.example'")
            .is_empty()
    );
    // Local midnight east of UTC keeps its calendar date, with or without the colon.
    assert_eq!(
        one(
            "kenji.sato@kestrel-labs.example",
            "start_date, birth_date, office"
        ),
        ["2019-04-01", "1990-01-01", "Tokyo"]
    );
    assert_eq!(
        one(
            "jonas.hahn@kestrel-labs.example",
            "start_date, probation_end_date, birth_date"
        ),
        ["2012-02-01", "2012-08-01", "1984-03-31"]
    );
    // The termination date wins over the contract end; the last working day is kept.
    assert_eq!(
        one(
            "paul.seidel@kestrel-labs.example",
            "end_date, custom['last_working_day'], status"
        ),
        ["2099-01-31", "2099-01-15", "active"]
    );
    // The contract end date is kept on its own too (the seed's "contract end date").
    assert_eq!(
        one(
            "mira.okafor@kestrel-labs.example",
            "end_date, custom['contract_end_date']"
        ),
        ["2099-08-31", "2099-08-31"]
    );
    // Names trimmed, the preferred name as Personio has it.
    assert_eq!(
        one(
            "zoe.celik@kestrel-labs.example",
            "first_name, last_name, preferred_name, display_name"
        ),
        ["Zoë", "Çelik", "Zoë Çelik", "Zoë Çelik"]
    );
    // The birthday is the overridden custom attribute, not the other custom date.
    let anniversaries = e.query(
        "select count(*) from people where birth_date is not null and year(birth_date) >= 2015",
    );
    assert_eq!(anniversaries[0][0], "0");

    // Managers: a filler's supervisor (id only) resolves to the lead's email, two levels
    // below the CEO.
    let filler = &company
        .iter()
        .find(|p| text(value(p, "id")) == "1000")
        .unwrap();
    let lead = company
        .iter()
        .find(|p| value(p, "id") == &value(filler, "supervisor")["attributes"]["id"]["value"])
        .unwrap();
    assert_eq!(
        one(&email(filler), "manager_id, manager_email"),
        [text(value(lead, "id")), email(lead)]
    );
    assert_eq!(
        e.query(&format!(
            "select depth from org_chart where work_email = '{}'",
            email(filler)
        )),
        [["2"]]
    );
    // A supervisor who left: their email from the nested object; one nobody can see: empty.
    assert_eq!(
        one(
            "ida.kraus@kestrel-labs.example",
            "manager_id, manager_email"
        ),
        ["903", "tobias.weber@kestrel-labs.example"]
    );
    assert_eq!(
        one(
            "emil.vogt@kestrel-labs.example",
            "manager_id, manager_email"
        ),
        ["7777", ""]
    );
    let problems: HashSet<(String, String)> = e
        .query("select kind, record_key from data_problems where record_key is not null")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    for (kind, key) in [
        ("unresolved_manager", "904"),
        ("unresolved_manager", "905"),
        ("missing_work_email", "908"),
        // Lina Berg's record lacks the birthday attribute (see `company`).
        ("field_problem", "913"),
    ] {
        assert!(
            problems.contains(&(kind.to_string(), key.to_string())),
            "{kind} {key} not in {problems:?}"
        );
    }

    // Token rotation: one login, then each page sent the token the previous answer handed
    // on; none was refused. Offsets in records, 100 at a time, with the app id header.
    let stale = {
        let p = fake.lock().unwrap();
        assert_eq!(p.logins.len(), 1, "logged in once: {:?}", p.logins);
        assert_eq!(p.rejected, 0, "no stale token was sent");
        assert_eq!(p.pages[0].token, p.logins[0].clone().unwrap());
        for w in p.pages.windows(2) {
            assert_eq!(w[1].token, w[0].next, "{:?}", p.pages);
        }
        let paging: Vec<(Option<&str>, Option<&str>, Option<&str>)> = p
            .pages
            .iter()
            .map(|s| (s.offset.as_deref(), s.limit.as_deref(), s.app_id.as_deref()))
            .collect();
        assert_eq!(
            paging,
            [
                (Some("0"), Some("100"), Some("ROSTER")),
                (Some("100"), Some("100"), Some("ROSTER")),
                (Some("200"), Some("100"), Some("ROSTER")),
            ]
        );
        p.pages[0].token.clone()
    };
    // The fake does refuse a token used before (so the chain above is the engine following
    // the rotation, not a lenient fake).
    let resp = reqwest::Client::new()
        .get(format!("{base}/company/employees?limit=1"))
        .bearer_auth(stale)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn a_wrong_personio_secret_fails_the_login_with_what_to_do_and_no_secret() {
    let (base, fake) = start(company()).await;
    let e = env(&base, WRONG_SECRET);
    assert_fetch_error(
        &e.sync().await.unwrap_err(),
        &[
            "source `personio`",
            "/auth",
            "login failed with HTTP 401",
            // Personio's own message from the documented error body.
            "Wrong credentials: unknown client_id or client_secret",
            // What to do.
            "`client_secret`",
            "Create new ones",
            "nothing was applied",
        ],
        &[WRONG_SECRET],
    );
    // One login, not retried (repeating a rejected credential can lock the account), and
    // no employees request; nothing published.
    let p = fake.lock().unwrap();
    assert_eq!(p.logins, [None]);
    assert!(p.pages.is_empty() && p.rejected == 0);
    assert!(!e.directory_path().exists());
}

#[tokio::test]
async fn a_birthday_attribute_the_credential_may_not_read_is_a_problem_that_names_it() {
    let company = company();
    let (base, fake) = start(company.clone()).await;
    let e = env(&base, CLIENT_SECRET);
    e.sync().await.unwrap();
    let kenji = "kenji.sato@kestrel-labs.example";
    assert_eq!(e.row_of(kenji, "birth_date"), ["1990-01-01"]);

    // A new credential pair without the attribute: Personio leaves it out of every record,
    // without an error.
    fake.lock().unwrap().hidden = vec![BIRTHDAY.to_string()];
    let r = e.sync().await.unwrap();
    assert_published(&r);
    // The dates already stored are kept (a field that fails keeps its last good value)...
    assert_eq!(e.row_of(kenji, "birth_date"), ["1990-01-01"]);
    // ...and every kept record says which attribute to allow, and where.
    let problems = e.query(
        "select record_key, detail from data_problems where kind = 'field_problem' and field = 'birth_date'",
    );
    let kept_with_email = company.iter().filter(|p| kept(p)).count();
    assert_eq!(problems.len(), kept_with_email, "{problems:?}");
    for (_, message) in problems.iter().map(|r| (&r[0], &r[1])) {
        for part in [
            &format!("`{BIRTHDAY}`"),
            "API credentials",
            "read access to the attribute",
            "new credential pair",
        ] {
            assert!(message.contains(part), "`{part}` not in: {message}");
        }
    }
}

#[tokio::test]
async fn the_birthday_setting_is_validated_and_optional() {
    // A value that is not an attribute name is refused by `validate`, at its key.
    let e = env_with(
        "http://127.0.0.1:9/v1",
        CLIENT_SECRET,
        Some("\"dynamic_1' or x\""),
    );
    let err = crate::load(&e.config).map(|_| ()).unwrap_err().render();
    assert!(
        err.contains("roster.yaml:11:")
            && err.contains("sources.personio.settings.birth_date_attribute")
            && err.contains("not a plain attribute name"),
        "{err}"
    );

    // Without the setting, birth_date is not mapped at all: no problem for anyone.
    let (base, _fake) = start(company()).await;
    let e = env_with(&base, CLIENT_SECRET, None);
    assert_published(&e.sync().await.unwrap());
    assert_eq!(
        e.query("select count(*) from people where birth_date is not null"),
        [["0"]]
    );
    assert_eq!(
        e.query("select count(*) from data_problems where field = 'birth_date'"),
        [["0"]]
    );
}
