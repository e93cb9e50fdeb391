//! Merge (unified HRIS API) end to end: a fake Merge on 127.0.0.1:0 that behaves as the vendor
//! documents it, read through the built-in spec (only `base_url` changed) and the built-in
//! mapping into a real DuckDB directory, checked field by field against what the fake served.
//!
//! What the fake reproduces (merge-hris-openapi.yaml in ../shared/provider-specs/merge and
//! the notes in providers/merge.yaml):
//! - Two headers on every request: `Authorization: Bearer <API key>` (the `Bearer` prefix is
//!   required) and `X-Account-Token` (the linked account). Missing or wrong, either one is a
//!   401 with a `{detail}` body (Django REST framework's shape; the texts are ours).
//! - `GET /employees` pages with an opaque cursor: `next` is a base64 string (here with `+`,
//!   `/` and `=` in it, so a client that does not URL-encode it breaks), sent back as
//!   `?cursor=`, null on the last page; `page_size` at most 100.
//! - `expand`: the Employee's related objects (`x-merge-expands`: company, employments,
//!   groups, home_location, manager, pay_group, team, work_location) are UUIDs unless named
//!   in `expand`; an expanded manager is an Employee whose own relations stay UUIDs.
//! - `employment_status` `ACTIVE | PENDING | INACTIVE`, `remote_was_deleted`,
//!   EmploymentTypeEnum on the Employment, departments as Groups of type DEPARTMENT, dates as
//!   `...T00:00:00Z`, `employee_number` null for HRIS that have none.
//!
//! - `modified_after`: only employees whose `modified_at` is later; a time without a zone is a
//!   400.
//!
//! Not reproduced: the plan's rate limit (the spec's 100/min paces the pages 0.6 s apart).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::provider_common::{
    Env, assert_fetch_error, assert_people, assert_published, date, derived_status, serve, text,
    today_in, trimmed,
};

const TIME_ZONE: &str = "America/New_York";

const API_KEY: &str = "merge-prod-key-Jd83kQp2ZxV7rN5sWq";
const ACCOUNT_TOKEN: &str = "merge-account-Hc4tY8wE1uB6mA3qLz";
const WRONG_KEY: &str = "merge-prod-key-REVOKED-p0Lk3Nd8Sx";
const WRONG_ACCOUNT: &str = "merge-account-UNLINKED-w7Ee2Rt5Gh";

/// The Employee fields `expand` turns from UUIDs into objects.
const EXPANDABLE: &[&str] = &[
    "company",
    "employments",
    "groups",
    "home_location",
    "manager",
    "pay_group",
    "team",
    "work_location",
];

// ---------------------------------------------------------------------------------------
// The fake
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Merge {
    /// Employees as Merge stores them: related objects as UUIDs.
    employees: Vec<Value>,
    /// Every related object (companies, employments, groups, locations, teams, pay groups)
    /// by id.
    related: HashMap<String, Value>,
    /// Every employees request that was let in.
    requests: Vec<Seen>,
    /// The `detail` of every refused request.
    refused: Vec<String>,
}

#[derive(Debug, Clone)]
struct Seen {
    cursor: Option<String>,
    expand: Option<String>,
    page_size: Option<String>,
    modified_after: Option<String>,
    /// The `next` the response handed on.
    next: Option<String>,
}

type Shared = Arc<Mutex<Merge>>;

/// An opaque cursor: base64 of bytes that make `+`, `/` and padding `=` appear in it.
fn encode_cursor(position: usize) -> String {
    let mut bytes = vec![0xfb, 0xff, 0xbf];
    bytes.extend(format!("p{position}").bytes());
    if bytes.len() % 3 == 0 {
        bytes.push(b'.');
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cursor)
        .ok()?;
    let text = std::str::from_utf8(bytes.strip_prefix(&[0xfb, 0xff, 0xbf])?).ok()?;
    text.strip_prefix('p')?.trim_end_matches('.').parse().ok()
}

impl Merge {
    /// One employee as served: the fields `expand` names turned into their objects.
    fn serve(&self, record: &Value, expand: &HashSet<&str>) -> Value {
        let mut out = record.clone();
        for f in EXPANDABLE.iter().filter(|f| expand.contains(*f)) {
            let object = |id: &Value| -> Value {
                let found = id.as_str().and_then(|id| {
                    if *f == "manager" {
                        self.employees.iter().find(|e| e["id"] == id).cloned()
                    } else {
                        self.related.get(id).cloned()
                    }
                });
                found.unwrap_or_else(|| id.clone())
            };
            out[*f] = match &record[*f] {
                Value::Array(ids) => Value::Array(ids.iter().map(object).collect()),
                id => object(id),
            };
        }
        out
    }
}

fn refuse(m: &mut Merge, detail: &str) -> Response {
    m.refused.push(detail.to_string());
    (StatusCode::UNAUTHORIZED, Json(json!({"detail": detail}))).into_response()
}

async fn employees(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut m = s.lock().unwrap();
    match header("authorization") {
        None => return refuse(&mut m, "Authentication credentials were not provided."),
        Some(v) if v == format!("Bearer {API_KEY}") => {}
        Some(_) => return refuse(&mut m, "Invalid token."),
    }
    match header("x-account-token") {
        None => return refuse(&mut m, "Missing X-Account-Token header."),
        Some(ACCOUNT_TOKEN) => {}
        Some(_) => return refuse(&mut m, "Invalid account token."),
    }
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let size = param("page_size")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 100);
    let start = match param("cursor").as_deref() {
        None | Some("") => 0,
        Some(c) => match decode_cursor(c) {
            Some(p) => p,
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    Json(json!({"detail": "Invalid cursor"})),
                )
                    .into_response();
            }
        },
    };
    let expand_param = param("expand");
    let expand: HashSet<&str> = expand_param
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    // `modified_after`: employees Merge stamped later; a time without a zone is refused, as
    // Django REST framework refuses a naive datetime.
    let since = match param("modified_after") {
        None => None,
        Some(t) => match t.parse::<jiff::Timestamp>() {
            Ok(t) => Some(t),
            Err(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"modified_after": ["Enter a valid date/time."]})),
                )
                    .into_response();
            }
        },
    };
    let listed: Vec<&Value> = m
        .employees
        .iter()
        .filter(|e| {
            since.is_none_or(|t| {
                e["modified_at"]
                    .as_str()
                    .and_then(|m| m.parse::<jiff::Timestamp>().ok())
                    .is_some_and(|m| m > t)
            })
        })
        .collect();
    let end = (start + size).min(listed.len());
    let results: Vec<Value> = listed[start.min(end)..end]
        .iter()
        .map(|r| m.serve(r, &expand))
        .collect();
    let next = (end < listed.len()).then(|| encode_cursor(end));
    let previous = (start > 0).then(|| encode_cursor(start.saturating_sub(size)));
    m.requests.push(Seen {
        cursor: param("cursor"),
        expand: expand_param,
        page_size: param("page_size"),
        modified_after: param("modified_after"),
        next: next.clone(),
    });
    Json(json!({"next": next, "previous": previous, "results": results})).into_response()
}

/// Starts the fake; returns its base URL (`.../api/hris/v1`) and its state.
async fn start(company: Merge) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(company));
    let app = axum::Router::new()
        .route("/api/hris/v1/employees", get(employees))
        .with_state(shared.clone());
    let addr = serve(app).await;
    (format!("http://{addr}/api/hris/v1"), shared)
}

// ---------------------------------------------------------------------------------------
// The company the fake serves
// ---------------------------------------------------------------------------------------

fn uuid(kind: u32, n: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

const EMPLOYEE: u32 = 0x0e;
const EMPLOYMENT: u32 = 0x1e;
const HOME: u32 = 0x40;

const DEPARTMENTS: &[&str] = &["Engineering", "Sales", "Customer Success", "Finance"];
const TEAMS: &[&str] = &["Platform", "Enterprise Sales", "Onboarding", "Payroll"];
const OFFICES: &[&str] = &["NYC Office", "Austin Office", "Remote US"];
const TITLES: &[&str] = &[
    "Software Engineer",
    "Account Executive",
    "CSM",
    "Accountant",
];
const FIRST: &[&str] = &[
    "Ava", "Liam", "Mia", "Noah", "Emma", "Ethan", "Zoe", "Lucas", "Chloe", "Mason", "Ruby",
    "Owen", "Ivy", "Caleb", "Nina",
];
const LAST: &[&str] = &[
    "Smith", "Johnson", "Garcia", "Brown", "Davis", "Miller", "Lopez", "Wilson", "Moore", "Taylor",
    "Clark", "Lewis", "Young", "Hall", "Allen",
];

fn company() -> Merge {
    let mut m = Merge::default();
    let add = |m: &mut Merge, v: Value| {
        m.related.insert(v["id"].as_str().unwrap().to_string(), v);
    };
    add(
        &mut m,
        json!({"id": uuid(0xc0, 1), "remote_id": "1", "legal_name": "Kestrel Labs, Inc.",
               "display_name": "Kestrel Labs US", "eins": ["12-3456789"],
               "remote_was_deleted": false}),
    );
    // A company with no legal name: the display name is the legal entity.
    add(
        &mut m,
        json!({"id": uuid(0xc0, 2), "remote_id": "2", "legal_name": null,
               "display_name": "Kestrel Field Services", "eins": [], "remote_was_deleted": false}),
    );
    for (i, name) in DEPARTMENTS.iter().enumerate() {
        add(
            &mut m,
            json!({"id": uuid(0x90, i), "remote_id": format!("{}", 800 + i), "parent_group": null,
                   "name": name, "type": "DEPARTMENT", "remote_was_deleted": false}),
        );
    }
    add(
        &mut m,
        json!({"id": uuid(0x91, 0), "remote_id": "900", "parent_group": null,
               "name": "COST_CENTER_US", "type": "COST_CENTER", "remote_was_deleted": false}),
    );
    for (i, name) in TEAMS.iter().enumerate() {
        add(
            &mut m,
            json!({"id": uuid(0x70, i), "remote_id": format!("{}", 50 + i), "name": name,
                   "parent_team": null, "remote_was_deleted": false}),
        );
    }
    for (i, name) in OFFICES.iter().enumerate() {
        add(
            &mut m,
            json!({"id": uuid(0x10, i), "remote_id": format!("{}", 120 + i), "name": name,
                   "phone_number": "+12125550100", "street_1": "1 Main St", "city": "New York",
                   "state": "NY", "zip_code": "10001", "country": "US", "location_type": "WORK",
                   "remote_was_deleted": false}),
        );
    }
    add(
        &mut m,
        json!({"id": uuid(0x50, 0), "remote_id": "PG-1", "pay_group_name": "US biweekly",
               "remote_was_deleted": false}),
    );
    m
}

/// Adds one employee (and its employment and home location) and returns its index.
fn hire(m: &mut Merge, n: usize, first: &str, last: &str, manager: Option<usize>) -> usize {
    let id = uuid(EMPLOYEE, n);
    let employment = uuid(EMPLOYMENT, n);
    let home = uuid(HOME, n);
    let year = 2012 + n % 11;
    let (month, day) = (1 + n % 12, 1 + n % 28);
    let effective = format!("{year}-{month:02}-{day:02}T00:00:00Z");
    m.related.insert(
        employment.clone(),
        json!({"id": employment, "remote_id": format!("E-{n}"), "employee": id,
               "job_title": TITLES[n % 4], "pay_rate": 90000.0, "pay_period": "YEAR",
               "pay_frequency": "BIWEEKLY", "pay_currency": "USD", "pay_group": uuid(0x50, 0),
               "flsa_status": "EXEMPT", "effective_date": effective,
               "employment_type": if n % 5 == 0 { "PART_TIME" } else { "FULL_TIME" },
               "remote_was_deleted": false}),
    );
    m.related.insert(
        home.clone(),
        json!({"id": home, "remote_id": null, "name": null, "city": "Brooklyn", "state": "NY",
               "country": "US", "location_type": "HOME", "remote_was_deleted": false}),
    );
    let email = format!("{first}.{last}@Kestrel-US.example");
    let manager = manager.map(|i| m.employees[i]["id"].clone());
    let born = (1965 + n % 35, 1 + n * 7 % 12, 1 + n * 3 % 28);
    m.employees.push(json!({
        "id": id,
        "remote_id": format!("{}", 19_200_000 + n),
        "employee_number": n.to_string(),
        "company": uuid(0xc0, 1),
        "first_name": first,
        "last_name": last,
        "display_full_name": format!("{first} {last}"),
        "username": format!("{}{}", first.to_lowercase(), last.to_lowercase()),
        "groups": [uuid(0x90, n % 4), uuid(0x91, 0)],
        "work_email": email,
        "personal_email": format!("{}@mail.example", first.to_lowercase()),
        "mobile_phone_number": "+12125550199",
        "employments": [employment],
        "home_location": home,
        "work_location": uuid(0x10, n % 3),
        "manager": manager,
        "team": uuid(0x70, n % 4),
        "pay_group": uuid(0x50, 0),
        "ssn": "",
        "gender": if n % 2 == 0 { "FEMALE" } else { "MALE" },
        "ethnicity": null,
        "marital_status": null,
        "date_of_birth": format!("{}-{:02}-{:02}T00:00:00Z", born.0, born.1, born.2),
        // Deprecated, the day the offer was signed: not the start date.
        "hire_date": format!("{}-{month:02}-{day:02}T00:00:00Z", year - 1),
        "start_date": format!("{year}-{month:02}-{day:02}T00:00:00Z"),
        "remote_created_at": format!("{}-{month:02}-{day:02}T00:00:00Z", year - 1),
        "employment_status": "ACTIVE",
        "termination_date": null,
        "avatar": null,
        "custom_fields": null,
        "remote_was_deleted": false,
        "field_mappings": null,
        "modified_at": "2024-10-16T00:00:00Z",
        "remote_data": null
    }));
    m.employees.len() - 1
}

fn employment_of(m: &mut Merge, i: usize) -> &mut Value {
    let id = m.employees[i]["employments"][0]
        .as_str()
        .unwrap()
        .to_string();
    m.related.get_mut(&id).unwrap()
}

/// The US subsidiary: a CEO, four leads, 210 people under them, and one person per quirk,
/// spread over the three pages.
fn us_company() -> Merge {
    let mut m = company();
    let ceo = hire(&mut m, 1, "Dana", "Whitfield", None);
    let leads: Vec<usize> = (0..4)
        .map(|i| hire(&mut m, 2 + i, FIRST[i * 3], "Lead", Some(ceo)))
        .collect();
    let mut people: Vec<usize> = Vec::new();
    for i in 0..210 {
        people.push(hire(
            &mut m,
            100 + i,
            FIRST[i % 15],
            LAST[i / 15 % 15],
            Some(leads[i % 4]),
        ));
    }
    let mut specials = Vec::new();
    // Not started yet: PENDING, a contractor.
    let i = hire(&mut m, 900, "Willa", "Ferreyra", Some(leads[0]));
    m.employees[i]["employment_status"] = json!("PENDING");
    m.employees[i]["start_date"] = json!("2099-02-04T00:00:00Z");
    employment_of(&mut m, i)["employment_type"] = json!("CONTRACTOR");
    specials.push(i);
    // Left: INACTIVE, out of the directory. Still somebody's manager.
    let leaver = hire(&mut m, 901, "Kendall", "Roy", Some(ceo));
    m.employees[leaver]["employment_status"] = json!("INACTIVE");
    m.employees[leaver]["termination_date"] = json!("2020-05-31T00:00:00Z");
    specials.push(leaver);
    // Reports to the leaver: the number resolves to nobody; the expanded manager's email
    // is the fallback.
    specials.push(hire(&mut m, 902, "Roman", "Gallo", Some(leaver)));
    // Deleted in the HRIS (Merge keeps it, flagged): out.
    let i = hire(&mut m, 903, "Connor", "Deleted", Some(leads[1]));
    m.employees[i]["remote_was_deleted"] = json!(true);
    specials.push(i);
    // A freelancer and an intern.
    let i = hire(&mut m, 904, "Frida", "Lance", Some(leads[2]));
    employment_of(&mut m, i)["employment_type"] = json!("FREELANCE");
    specials.push(i);
    let i = hire(&mut m, 905, "Ian", "Tern", Some(leads[3]));
    employment_of(&mut m, i)["employment_type"] = json!("INTERN");
    specials.push(i);
    // Leaving later: the termination date ahead, still active.
    let i = hire(&mut m, 906, "Gerri", "Kellman", Some(leads[0]));
    m.employees[i]["termination_date"] = json!("2099-06-30T00:00:00Z");
    specials.push(i);
    // A company without a legal name.
    let i = hire(&mut m, 907, "Stewy", "Hosseini", Some(leads[1]));
    m.employees[i]["company"] = json!(uuid(0xc0, 2));
    specials.push(i);
    // No department group, no employment, no team, no office.
    let i = hire(&mut m, 908, "Karl", "Muller", Some(leads[2]));
    m.employees[i]["groups"] = json!([uuid(0x91, 0)]);
    m.employees[i]["employments"] = json!([]);
    m.employees[i]["team"] = Value::Null;
    m.employees[i]["work_location"] = Value::Null;
    specials.push(i);
    // A display name with the preferred first name.
    let i = hire(&mut m, 909, "William", "Okafor", Some(leads[3]));
    m.employees[i]["display_full_name"] = json!("Bill Okafor");
    specials.push(i);
    // No date of birth.
    let i = hire(&mut m, 910, "Marcia", "Roy", Some(leads[0]));
    m.employees[i]["date_of_birth"] = Value::Null;
    specials.push(i);
    // An HRIS without employee numbers for these two: the manager resolves by email.
    let boss = hire(&mut m, 911, "Frank", "Vernon", Some(leads[1]));
    m.employees[boss]["employee_number"] = Value::Null;
    specials.push(boss);
    let i = hire(&mut m, 912, "Karolina", "Novotney", Some(boss));
    m.employees[i]["employee_number"] = Value::Null;
    specials.push(i);
    // An HRIS with history: one Employment per title or pay change, and Merge does not
    // order them. The current one (the latest `effective_date`) is in the middle; the first
    // is the oldest, a contractor engagement before the hire.
    let i = hire(&mut m, 914, "Gerri", "History", Some(leads[1]));
    let current = employment_of(&mut m, i).clone();
    let mut history = vec![];
    for (k, (title, kind, effective)) in [
        ("Freelance counsel", "CONTRACTOR", "2010-01-04T00:00:00Z"),
        ("General Counsel", "FULL_TIME", "2024-03-01T09:30:00Z"),
        ("Associate", "FULL_TIME", "2013-06-01T00:00:00Z"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = uuid(EMPLOYMENT, 9140 + k);
        let mut e = current.clone();
        e["id"] = json!(id);
        e["job_title"] = json!(title);
        e["employment_type"] = json!(kind);
        e["effective_date"] = json!(effective);
        m.related.insert(id.clone(), e);
        history.push(json!(id));
    }
    m.employees[i]["employments"] = json!(history);
    people.push(i);
    // A work email with stray spaces and capitals.
    let i = hire(&mut m, 913, "Grace", "Hopper", Some(leads[2]));
    m.employees[i]["work_email"] = json!("  Grace.Hopper@KESTREL-US.example ");
    specials.push(i);

    // Listing order: the CEO and leads, then everyone, the specials spread over the pages.
    let mut order = vec![ceo];
    order.extend(&leads);
    order.extend(&people);
    for (j, s) in specials.into_iter().enumerate() {
        order.insert(8 + j * 16, s);
    }
    let employees = std::mem::take(&mut m.employees);
    m.employees = order.into_iter().map(|i| employees[i].clone()).collect();
    m
}

// ---------------------------------------------------------------------------------------
// Expectations, from what the fake serves
// ---------------------------------------------------------------------------------------

fn email(r: &Value) -> String {
    text(&r["work_email"]).trim().to_lowercase()
}

fn kept(r: &Value) -> bool {
    r["employment_status"] != "INACTIVE" && r["remote_was_deleted"] != true && !email(r).is_empty()
}

const COLUMNS: &str = "employee_id, first_name, last_name, display_name, job_title, department,
    team, manager_id, manager_email, office, legal_entity, employment_type, worker_type,
    hris_status, status, start_date, end_date, birth_date, custom['remote_id'], sources";

/// Every column of [`COLUMNS`] for a served (expanded) record the directory should have.
fn expected(r: &Value, all: &[Value], today: &str) -> Vec<String> {
    // The current employment: the latest effective date (the fake's are all UTC, so their
    // text orders like their instants).
    let none = Value::Null;
    let employment = r["employments"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|e| text(&e["effective_date"]))
        .unwrap_or(&none);
    let manager = &r["manager"];
    let manager_id = text(&manager["employee_number"]);
    // The manager's employee number resolves within Merge; else the expanded email.
    let manager_email = all
        .iter()
        .find(|o| kept(o) && !manager_id.is_empty() && text(&o["employee_number"]) == manager_id)
        .map(email)
        .unwrap_or_else(|| email(manager));
    let department = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["type"] == "DEPARTMENT")
        .map(|g| text(&g["name"]))
        .unwrap_or_default();
    let legal_entity = match text(&r["company"]["legal_name"]) {
        l if l.is_empty() => text(&r["company"]["display_name"]),
        l => l,
    };
    let employment_type = text(&employment["employment_type"]);
    let worker_type = match employment_type.as_str() {
        "FULL_TIME" | "PART_TIME" | "INTERN" => "employee",
        "CONTRACTOR" | "FREELANCE" => "contractor",
        "" => "",
        other => panic!("employment type {other}"),
    };
    let hris_status = match r["employment_status"].as_str() {
        Some("ACTIVE") => "active",
        Some("PENDING") => "pre_hire",
        other => panic!("status {other:?} is not kept"),
    };
    let (start, end) = (date(&r["start_date"]), date(&r["termination_date"]));
    let status = derived_status(hris_status, &start, &end, today);
    vec![
        text(&r["employee_number"]),
        trimmed(&r["first_name"]),
        trimmed(&r["last_name"]),
        trimmed(&r["display_full_name"]),
        text(&employment["job_title"]),
        department,
        text(&r["team"]["name"]),
        manager_id,
        manager_email,
        text(&r["work_location"]["name"]),
        legal_entity,
        employment_type.clone(),
        worker_type.to_string(),
        hris_status.to_string(),
        status.to_string(),
        start,
        end,
        date(&r["date_of_birth"]),
        text(&r["remote_id"]),
        "[merge]".to_string(),
    ]
}

// ---------------------------------------------------------------------------------------
// A config directory and a sync
// ---------------------------------------------------------------------------------------

/// The built-in `merge` spec with only `base_url` replaced, the built-in mapping, and one
/// source per `(name, api key, account token)`.
fn env(base_url: &str, sources: &[(&str, &str, &str)]) -> Env {
    let env = Env::new();
    env.override_base_url("merge", base_url);
    let mut roster = String::new();
    for (name, key, account) in sources {
        env.write(&format!("secrets/{name}_key"), key);
        env.write(&format!("secrets/{name}_account"), account);
        roster.push_str(&format!(
            "  {name}:
    provider: merge
    credentials:
      api_key: {{file: secrets/{name}_key}}
      account_token: {{file: secrets/{name}_account}}
"
        ));
    }
    env.write_roster(TIME_ZONE, &roster);
    env
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn merge_employees_land_in_the_directory_field_by_field() {
    let (base, fake) = start(us_company()).await;
    // What the fake serves to the spec's `expand`: the expectations' input.
    let served: Vec<Value> = {
        let m = fake.lock().unwrap();
        let all: HashSet<&str> = EXPANDABLE.iter().copied().collect();
        m.employees.iter().map(|r| m.serve(r, &all)).collect()
    };
    let e = env(&base, &[("merge", API_KEY, ACCOUNT_TOKEN)]);
    let r = e.sync_source("merge").await.unwrap();
    assert_published(&r);
    assert_eq!(
        (r.run.records, r.run.excluded, r.run.failed),
        (served.len() as u64, 2, 0),
        "INACTIVE and remote_was_deleted excluded"
    );

    // Everyone kept, with every mapped field as the fake served it; nobody else.
    let today = today_in(TIME_ZONE).to_string();
    let want: BTreeMap<String, Vec<String>> = served
        .iter()
        .filter(|p| kept(p))
        .map(|p| (email(p), expected(p, &served, &today)))
        .collect();
    assert_people(&e.people_by_email(COLUMNS), &want, COLUMNS);

    // The quirks, spelled out (the loop above already compared them with the records).
    let one = |email: &str, cols: &str| e.row_of(email, cols);
    // PENDING is in, as a pre-hire; INACTIVE and deleted records are out.
    assert_eq!(
        one(
            "willa.ferreyra@kestrel-us.example",
            "status, worker_type, start_date"
        ),
        ["pre_hire", "contractor", "2099-02-04"]
    );
    for gone in [
        "kendall.roy@kestrel-us.example",
        "connor.deleted@kestrel-us.example",
    ] {
        assert!(
            e.query(&format!("select 1 from people where work_email = '{gone}'"))
                .is_empty(),
            "{gone}"
        );
    }
    // Names of expanded objects: job title, department (a DEPARTMENT group), team, office,
    // legal entity (the display name when there is no legal name).
    // The current employment wins wherever Merge lists it (not `employments[0]`).
    assert_eq!(
        one(
            "gerri.history@kestrel-us.example",
            "job_title, employment_type, worker_type"
        ),
        ["General Counsel", "FULL_TIME", "employee"]
    );
    let filler = &served[5];
    assert_eq!(
        one(
            &email(filler),
            "job_title, department, team, office, legal_entity, start_date"
        ),
        [
            text(&filler["employments"][0]["job_title"]),
            text(&filler["groups"][0]["name"]),
            text(&filler["team"]["name"]),
            text(&filler["work_location"]["name"]),
            "Kestrel Labs, Inc.".to_string(),
            date(&filler["start_date"]),
        ]
    );
    assert_eq!(
        one("stewy.hosseini@kestrel-us.example", "legal_entity")[0],
        "Kestrel Field Services"
    );
    // Managers: the expanded manager's employee number resolves to the lead, two levels
    // below the CEO.
    assert_eq!(
        one(&email(filler), "manager_id, manager_email"),
        [
            text(&filler["manager"]["employee_number"]),
            email(&filler["manager"])
        ]
    );
    assert_eq!(
        e.query(&format!(
            "select depth from org_chart where work_email = '{}'",
            email(filler)
        )),
        [["2"]]
    );
    // A manager who left: the expanded email, flagged; managers without employee numbers
    // resolve by email.
    assert_eq!(
        one(
            "roman.gallo@kestrel-us.example",
            "manager_id, manager_email"
        ),
        ["901", "kendall.roy@kestrel-us.example"]
    );
    assert_eq!(
        one(
            "karolina.novotney@kestrel-us.example",
            "employee_id, manager_id, manager_email"
        ),
        ["", "", "frank.vernon@kestrel-us.example"]
    );
    let unresolved = e
        .query("select work_email from data_problems where kind = 'unresolved_manager' order by 1");
    assert_eq!(unresolved, [["roman.gallo@kestrel-us.example"]]);

    // Cursor paging with the same `expand` and page size on every page; no incremental
    // filter on a first sync.
    {
        let m = fake.lock().unwrap();
        assert!(m.refused.is_empty(), "{:?}", m.refused);
        assert_eq!(m.requests.len(), 3);
        assert_eq!(m.requests[0].cursor, None);
        for w in m.requests.windows(2) {
            assert_eq!(w[1].cursor, w[0].next, "the cursor went back as given");
        }
        let sent = m.requests[1].cursor.clone().unwrap();
        assert!(
            sent.contains('+') && sent.contains('/') && sent.contains('='),
            "{sent}"
        );
        for s in &m.requests {
            let expand: HashSet<&str> = s.expand.as_deref().unwrap_or("").split(',').collect();
            let want: HashSet<&str> = [
                "manager",
                "team",
                "work_location",
                "company",
                "employments",
                "groups",
            ]
            .into();
            assert!(expand.is_superset(&want), "{s:?}");
            assert_eq!(s.page_size.as_deref(), Some("100"), "{s:?}");
            assert_eq!(s.modified_after, None, "{s:?}");
        }
    }

    // The fake is not lenient: without `expand` related objects are UUIDs, and both auth
    // headers are required (`Bearer` included).
    let http = reqwest::Client::new();
    let page = http
        .get(format!("{base}/employees?page_size=20"))
        .bearer_auth(API_KEY)
        .header("X-Account-Token", ACCOUNT_TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let page: Value = serde_json::from_slice(&page).unwrap();
    let bare = &page["results"][5];
    assert!(bare["manager"].is_string(), "{bare}");
    assert!(bare["team"].is_string() && bare["company"].is_string());
    assert!(bare["employments"][0].is_string() && bare["groups"][0].is_string());
    for req in [
        http.get(format!("{base}/employees")).bearer_auth(API_KEY),
        http.get(format!("{base}/employees"))
            .header("Authorization", API_KEY)
            .header("X-Account-Token", ACCOUNT_TOKEN),
    ] {
        assert_eq!(req.send().await.unwrap().status(), 401);
    }
}

#[tokio::test]
async fn a_wrong_merge_key_or_account_token_is_a_clear_error_without_secrets() {
    let (base, fake) = start(us_company()).await;
    let e = env(
        &base,
        &[
            ("bad_key", WRONG_KEY, ACCOUNT_TOKEN),
            ("bad_account", API_KEY, WRONG_ACCOUNT),
        ],
    );
    for (source, detail) in [
        ("bad_key", "Invalid token."),
        ("bad_account", "Invalid account token."),
    ] {
        assert_fetch_error(
            &e.sync_source(source).await.unwrap_err(),
            &[
                &format!("source `{source}`"),
                "/employees",
                "HTTP 401",
                // Merge's own words say which of the two it rejected.
                detail,
                // What to do.
                "`api_key`, `account_token`",
                "Create new ones",
                "nothing was applied",
            ],
            &[WRONG_KEY, WRONG_ACCOUNT, API_KEY, ACCOUNT_TOKEN],
        );
    }
    // One request each: a 401 is not retried (Merge blocks an IP after 20 errors in 10 s).
    let m = fake.lock().unwrap();
    assert_eq!(m.refused, ["Invalid token.", "Invalid account token."]);
    assert!(m.requests.is_empty());
    assert!(!e.directory_path().exists());
}

#[tokio::test]
async fn after_the_first_sync_merge_is_read_incrementally_since_the_last_run() {
    let (base, fake) = start(us_company()).await;
    let e = env(&base, &[("merge", API_KEY, ACCOUNT_TOKEN)]);
    let first = e.sync().await.unwrap();
    assert_eq!(first.run.listing.as_deref(), Some("full"));
    let everyone = first.run.records;
    assert!(everyone > 100, "{everyone}");
    let present =
        || e.query("select count(*) from people where status <> 'terminated'")[0][0].clone();
    let before = present();

    // One employee changes in Merge (stamped now); the next sync asks only for what changed.
    let email = {
        let mut m = fake.lock().unwrap();
        m.requests.clear();
        let i = m
            .employees
            .iter()
            .position(|r| kept(r) && r["work_email"].is_string())
            .unwrap();
        let r = &mut m.employees[i];
        r["first_name"] = json!("Renamed");
        r["modified_at"] = json!(jiff::Timestamp::now().to_string());
        r["work_email"].as_str().unwrap().to_lowercase()
    };
    let second = e.sync().await.unwrap();
    assert_eq!(second.run.listing.as_deref(), Some("incremental"));
    assert_eq!(second.run.records, 1);
    assert_eq!(second.applied.updated, 1);
    assert_eq!(
        second.applied.terminated, 0,
        "a partial listing removes nobody"
    );
    let m = fake.lock().unwrap();
    assert_eq!(m.requests.len(), 1);
    let since = m.requests[0]
        .modified_after
        .clone()
        .expect("modified_after sent");
    assert!(since.ends_with('Z'), "{since}");
    assert!(
        m.requests[0].expand.is_some(),
        "the same expand as a full read"
    );
    drop(m);
    assert_eq!(e.row_of(&email, "first_name"), vec!["Renamed".to_string()]);
    assert_eq!(
        present(),
        before,
        "nobody left because the listing was partial"
    );
}
