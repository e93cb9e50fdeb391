//! Rippling (Platform API) end to end: a fake Rippling on 127.0.0.1:0 that behaves as the
//! vendor's 2021 OpenAPI file documents it, read through the built-in spec (only `base_url`
//! changed) and the built-in mapping into a real DuckDB directory, checked field by field
//! against what the fake served.
//!
//! What the fake reproduces (RipplingOpenAPI.v1.yaml in ../shared/provider-specs/rippling and
//! the notes in providers/rippling.yaml):
//! - `Authorization: Bearer <API key>` on every request; anything else is a 401 (the body's
//!   wording is ours: the spec documents no error shape).
//! - `GET /employees/include_terminated` and `GET /work_locations` page with `limit` and
//!   `offset` and answer with a bare JSON array: no total, no next link. A page past the end
//!   is `[]`.
//! - The Employee shape of the spec's examples: `roleState` INIT | HIRED | ACCEPTED | ACTIVE |
//!   TERMINATED, `employmentType` (CONTRACTOR, SALARIED_FT, ... TEMP), `manager` as the
//!   manager's Rippling id (null for the top), `workLocation` an Address and `workLocationId`
//!   the WorkLocation's id, `employeeNumber` an integer, `endDate` null until someone leaves,
//!   `workEmail` null for a terminated employee (as in the include_terminated example).
//!
//! Not reproduced: scopes (a key without `company:workLocations` would get a 403 on the
//! lookup), the EIN filter, rate limiting (none documented).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::provider_common::{
    Env, assert_fetch_error, assert_people, assert_published, derived_status, serve, text,
    today_in, trimmed,
};

const TIME_ZONE: &str = "America/Los_Angeles";
const API_KEY: &str = "rippling-key-9fQ2mZ7xK4pL8sV1nB6c";
const WRONG_KEY: &str = "rippling-key-REVOKED-u3Yt6Re9Wq2E";

// ---------------------------------------------------------------------------------------
// The fake
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Rippling {
    employees: Vec<Value>,
    work_locations: Vec<Value>,
    /// `(path, offset, limit)` of every request let in.
    requests: Vec<(String, String, String)>,
    /// How many requests were refused.
    refused: usize,
}

type Shared = Arc<Mutex<Rippling>>;

/// One page of `all` for `limit`/`offset`, as Rippling pages: a bare array, `[]` past the end.
fn page(
    s: &Shared,
    path: &str,
    headers: &HeaderMap,
    q: &[(String, String)],
    all: impl Fn(&Rippling) -> &Vec<Value>,
) -> Response {
    let mut r = s.lock().unwrap();
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {API_KEY}")) {
        r.refused += 1;
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"detail": "Invalid API key or access token."})),
        )
            .into_response();
    }
    let param = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (offset, limit) = (param("offset"), param("limit"));
    let from: usize = offset.parse().unwrap_or(0);
    let size: usize = limit.parse().unwrap_or(100);
    let items = all(&r);
    let end = (from + size).min(items.len());
    let body: Vec<Value> = items[from.min(end)..end].to_vec();
    r.requests.push((path.to_string(), offset, limit));
    Json(body).into_response()
}

async fn employees(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    page(&s, "employees", &headers, &q, |r| &r.employees)
}

async fn work_locations(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    page(&s, "work_locations", &headers, &q, |r| &r.work_locations)
}

async fn start(company: Rippling) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(company));
    let app = axum::Router::new()
        .route("/platform/api/employees/include_terminated", get(employees))
        .route("/platform/api/work_locations", get(work_locations))
        .with_state(shared.clone());
    let addr = serve(app).await;
    (format!("http://{addr}/platform/api"), shared)
}

// ---------------------------------------------------------------------------------------
// The company the fake serves
// ---------------------------------------------------------------------------------------

const DEPARTMENTS: &[&str] = &["Engineering", "Sales", "Marketing", "Finance"];
const TITLES: &[&str] = &["Software Engineer", "SDR", "Designer", "Accountant"];
const TYPES: &[&str] = &[
    "SALARIED_FT",
    "SALARIED_PT",
    "HOURLY_FT",
    "HOURLY_PT",
    "TEMP",
];
const FIRST: &[&str] = &["Triveni", "Thumb", "Ana", "Jonas", "Mei", "Omar", "Lea"];
const LAST: &[&str] = &["Mahata", "Man", "Silva", "Berg", "Chen", "Haddad", "Roth"];

fn rid(n: usize) -> String {
    format!("5c8f7f06c5929{n:011x}")
}

fn location_id(n: usize) -> String {
    format!("5ec5595cfa9c4e17281{n:05x}")
}

/// An ACTIVE salaried employee, shaped like the spec's examples.
fn employee(n: usize, first: &str, last: &str, manager: Option<usize>) -> Value {
    let loc = n % 3;
    let city = ["Salem", "Cypress", "Chicago"][loc];
    json!({
        "id": rid(n),
        "name": format!("{first} {last}"),
        "preferredFirstName": first,
        "firstName": first,
        "lastName": last,
        "employmentType": TYPES[n % TYPES.len()],
        "phone": null,
        "dob": format!("19{}-{:02}-{:02}", 70 + n % 30, 1 + n % 12, 1 + n % 28),
        "ssn": null,
        "title": TITLES[n % TITLES.len()],
        "department": DEPARTMENTS[n % DEPARTMENTS.len()],
        "workLocation": {"city": city, "zip": "97317", "streetLine1": "4000 Mission Street Southeast", "country": "US", "state": "OR"},
        "workLocationId": location_id(loc),
        "address": null,
        "flsaStatus": "exempt",
        "personalEmail": format!("{}.{}@gmail.example", first.to_lowercase(), n),
        "spokeId": null,
        "customFields": {},
        "ein": if n % 5 == 0 { "987654321" } else { "123121111" },
        "endDate": null,
        "updatedAt": "2020-08-11T21:59:23+0000",
        "createdAt": "2019-03-18T11:20:38+0000",
        "startDate": format!("20{:02}-{:02}-{:02}", 10 + n % 14, 1 + n % 12, 1 + n % 28),
        "employeeNumber": 1000 + n,
        "roleState": "ACTIVE",
        "workEmail": format!("{}.{}{n}@rippling.example", first.to_lowercase(), last.to_lowercase()),
        "offerAcceptedDate": "2019-03-18",
        "manager": manager.map(rid),
    })
}

fn company() -> Rippling {
    let mut e = Vec::new();
    e.push(employee(0, "Parker", "Conrad", None));
    for n in 1..=4 {
        e.push(employee(n, FIRST[n], LAST[n], Some(0)));
    }
    for n in 5..225 {
        e.push(employee(
            n,
            FIRST[n % 7],
            LAST[(n / 7) % 7],
            Some(1 + n % 4),
        ));
    }
    let mut special = |n: usize, edit: &dyn Fn(&mut Value)| {
        let mut r = employee(n, FIRST[n % 7], LAST[n % 7], Some(1 + n % 4));
        edit(&mut r);
        e.insert(n % 200 + 3, r);
    };
    // Terminated without a work email (as the spec's include_terminated example): dropped.
    special(900, &|r| {
        r["roleState"] = json!("TERMINATED");
        r["endDate"] = json!("2018-07-18");
        r["workEmail"] = Value::Null;
    });
    // Terminated, and the manager of someone still here.
    special(901, &|r| {
        r["roleState"] = json!("TERMINATED");
        r["endDate"] = json!("2020-04-23");
        r["firstName"] = json!("Leah");
        r["lastName"] = json!("Ving");
        r["workEmail"] = json!("leah.ving@rippling.example");
    });
    special(902, &|r| r["manager"] = json!(rid(901)));
    // A contractor who accepted an offer and starts later; another offered, not accepted.
    special(903, &|r| {
        r["roleState"] = json!("ACCEPTED");
        r["employmentType"] = json!("CONTRACTOR");
        r["startDate"] = json!("2099-02-04");
    });
    special(904, &|r| {
        r["roleState"] = json!("HIRED");
        r["startDate"] = json!("2099-03-01");
    });
    // A draft hire: not in the directory.
    special(905, &|r| r["roleState"] = json!("INIT"));
    // An active contractor.
    special(906, &|r| r["employmentType"] = json!("CONTRACTOR"));
    // No work location id (the office falls back to the address's city), no title, no
    // department, no preferred name, no date of birth.
    special(907, &|r| {
        r.as_object_mut().unwrap().remove("workLocationId");
        r["title"] = Value::Null;
        r["department"] = Value::Null;
        r["preferredFirstName"] = Value::Null;
        r["dob"] = Value::Null;
    });
    // Goes by another name; leaving later (end date ahead, still ACTIVE).
    special(908, &|r| {
        r["firstName"] = json!("William");
        r["preferredFirstName"] = json!("Bill");
        r["name"] = json!("Bill Okafor");
        r["endDate"] = json!("2099-06-30");
    });
    // A work email with stray spaces and capitals.
    special(909, &|r| {
        r["workEmail"] = json!("  Grace.Hopper@RIPPLING.example ")
    });
    let work_locations = ["Salem HQ", "Cypress Office", "Chicago Loop"]
        .iter()
        .enumerate()
        .map(|(i, name)| json!({"id": location_id(i), "nickname": name, "address": {"city": "x", "country": "US"}}))
        .collect();
    Rippling {
        employees: e,
        work_locations,
        ..Rippling::default()
    }
}

// ---------------------------------------------------------------------------------------
// Expectations, from what the fake serves
// ---------------------------------------------------------------------------------------

fn email(r: &Value) -> String {
    trimmed(&r["workEmail"]).to_lowercase()
}

fn kept(r: &Value) -> bool {
    !matches!(r["roleState"].as_str(), Some("TERMINATED" | "INIT")) && !email(r).is_empty()
}

const COLUMNS: &str = "employee_id, first_name, last_name, preferred_name, display_name,
    job_title, department, manager_id, manager_email, office, employment_type, worker_type,
    hris_status, status, start_date, end_date, birth_date, custom['employee_number'],
    custom['ein'], sources";

fn expected(r: &Value, all: &[Value], locations: &[Value], today: &str) -> Vec<String> {
    let manager_id = text(&r["manager"]);
    let manager_email = all
        .iter()
        .find(|o| kept(o) && !manager_id.is_empty() && text(&o["id"]) == manager_id)
        .map(email)
        .unwrap_or_default();
    let office = locations
        .iter()
        .find(|l| l["id"] == r["workLocationId"])
        .map(|l| text(&l["nickname"]))
        .unwrap_or_else(|| text(&r["workLocation"]["city"]));
    let employment_type = text(&r["employmentType"]);
    let worker_type = if employment_type == "CONTRACTOR" {
        "contractor"
    } else {
        "employee"
    };
    let hris_status = match r["roleState"].as_str() {
        Some("ACTIVE") => "active",
        Some("HIRED" | "ACCEPTED") => "pre_hire",
        other => panic!("roleState {other:?} is not kept"),
    };
    let (start, end) = (text(&r["startDate"]), text(&r["endDate"]));
    vec![
        text(&r["id"]),
        trimmed(&r["firstName"]),
        trimmed(&r["lastName"]),
        trimmed(&r["preferredFirstName"]),
        trimmed(&r["name"]),
        text(&r["title"]),
        text(&r["department"]),
        manager_id,
        manager_email,
        office,
        employment_type,
        worker_type.to_string(),
        hris_status.to_string(),
        derived_status(hris_status, &start, &end, today).to_string(),
        start,
        end,
        text(&r["dob"]),
        text(&r["employeeNumber"]),
        text(&r["ein"]),
        "[rippling]".to_string(),
    ]
}

/// The built-in `rippling` spec with only `base_url` replaced, and one source per
/// `(name, api key)`.
fn env(base_url: &str, sources: &[(&str, &str)]) -> Env {
    Env::one_secret_sources("rippling", "api_key", base_url, &[], TIME_ZONE, sources)
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rippling_employees_land_in_the_directory_field_by_field() {
    let (base, fake) = start(company()).await;
    let (served, locations) = {
        let f = fake.lock().unwrap();
        (f.employees.clone(), f.work_locations.clone())
    };
    let e = env(&base, &[("rippling", API_KEY)]);
    let r = e.sync_source("rippling").await.unwrap();
    assert_published(&r);
    // Terminated (one without an email) and the draft hire are not applied.
    assert_eq!(
        (r.run.records, r.run.excluded, r.run.failed),
        (served.len() as u64, 3, 0),
        "the leaver without a work email is left out by status, not reported as a failure"
    );

    let today = today_in(TIME_ZONE).to_string();
    let want: BTreeMap<String, Vec<String>> = served
        .iter()
        .filter(|p| kept(p))
        .map(|p| (email(p), expected(p, &served, &locations, &today)))
        .collect();
    assert_eq!(want.len(), served.len() - 3);
    assert_people(&e.people_by_email(COLUMNS), &want, COLUMNS);

    // The quirks, spelled out.
    let one = |email: &str, cols: &str| e.row_of(email, cols);
    let by_number = |n: usize| {
        email(
            served
                .iter()
                .find(|r| r["employeeNumber"] == json!(1000 + n))
                .unwrap(),
        )
    };
    // Offer accepted or sent: pre-hires; the contractor is a contractor.
    assert_eq!(
        one(&by_number(903), "status, worker_type, start_date"),
        ["pre_hire", "contractor", "2099-02-04"]
    );
    assert_eq!(one(&by_number(904), "status")[0], "pre_hire");
    assert_eq!(
        one(&by_number(906), "status, worker_type"),
        ["active", "contractor"]
    );
    // Terminated and draft hires are out.
    assert!(
        e.query("select 1 from people where work_email = 'leah.ving@rippling.example'")
            .is_empty()
    );
    assert!(
        e.query(&format!(
            "select 1 from people where work_email = '{}'",
            by_number(905)
        ))
        .is_empty()
    );
    // The office is the looked-up nickname, or the address's city without an id.
    assert_eq!(one(&by_number(10), "office")[0], "Cypress Office");
    assert_eq!(one(&by_number(907), "office")[0], "Cypress");
    // Managers by Rippling id: a lead two levels below the CEO; a manager who left is
    // unresolved and flagged.
    assert_eq!(
        e.query(&format!(
            "select depth from org_chart where work_email = '{}'",
            by_number(10)
        )),
        [["2"]]
    );
    let unresolved = e
        .query("select work_email from data_problems where kind = 'unresolved_manager' order by 1");
    assert_eq!(unresolved, [[by_number(902)]]);
    // Preferred name and trimmed, lowercased email.
    assert_eq!(
        one(&by_number(908), "first_name, preferred_name, display_name"),
        ["William", "Bill", "Bill Okafor"]
    );
    assert_eq!(
        one("grace.hopper@rippling.example", "employee_id")[0],
        rid(909)
    );

    // Offset paging with the spec's page size until an empty page: the 3rd page is short
    // (a listing of 235), and only the empty 4th ends it.
    let f = fake.lock().unwrap();
    assert_eq!(f.refused, 0);
    let employees: Vec<(String, String)> = f
        .requests
        .iter()
        .filter(|(p, ..)| p == "employees")
        .map(|(_, o, l)| (o.clone(), l.clone()))
        .collect();
    let n = served.len();
    assert_eq!(n, 235);
    assert_eq!(
        employees,
        [("0", "100"), ("100", "100"), ("200", "100"), ("235", "100")]
            .map(|(o, l)| (o.to_string(), l.to_string()))
    );
    assert_eq!(
        f.requests
            .iter()
            .filter(|(p, ..)| p == "work_locations")
            .count(),
        2,
        "3 locations: one short page, one empty"
    );
}

#[tokio::test]
async fn a_wrong_rippling_key_is_a_clear_error_without_the_secret() {
    let (base, fake) = start(company()).await;
    let e = env(&base, &[("rippling", WRONG_KEY)]);
    assert_fetch_error(
        &e.sync_source("rippling").await.unwrap_err(),
        &[
            "source `rippling`",
            "HTTP 401",
            "Invalid API key or access token.",
            "`api_key`",
            "Create new ones",
            "API Tokens",
            "nothing was applied",
        ],
        &[WRONG_KEY, API_KEY],
    );
    // A 401 is not retried, and nothing is published.
    let f = fake.lock().unwrap();
    assert_eq!(f.refused, 1);
    assert!(f.requests.is_empty());
    assert!(!e.directory_path().exists());
}
