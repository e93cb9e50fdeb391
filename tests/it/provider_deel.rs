//! Deel (REST API v2) end to end: a fake Deel on 127.0.0.1:0 that behaves as the vendor's
//! OpenAPI file documents it, read through the built-in spec (only `base_url` changed) and the
//! built-in mapping into a real DuckDB directory, checked field by field against what the
//! fake served.
//!
//! What the fake reproduces (deel-openapi.yaml in ../shared/provider-specs/deel and the notes
//! in providers/deel.yaml):
//! - `Authorization: Bearer <token>` on every request; anything else is a 401 with the
//!   spec's ApiErrorContainer shape (`request` and `errors[].message`; the texts are ours).
//! - `GET /people` pages with `offset` and `limit` (1 to 200), and a `page` object whose
//!   `items_per_page` is at most 99: a `limit=100` request gets 99 records. `total_rows` is
//!   the number of rows on the page (issue 18), not the organization's total. A page past
//!   the end has no rows.
//! - `hiring_statuses` filters (active, inactive, onboarding, offboarding; none = all),
//!   `sort_by` and `sort_order`.
//! - The People record's shape: `emails` with types (two `work` entries in the spec's own
//!   example), `department`, `direct_manager` (with `worker_id` a string, while the person's
//!   own is a number), `employments[]` with `team` and `client_legal_entity`, `hiring_type`,
//!   `hiring_status`, dates as `2023-03-20` or `1990-01-01T00:00:00.000Z`, nulls.
//!
//! Not reproduced: rate limits (none documented), search, the other sort fields.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::provider_common::{
    Env, assert_fetch_error, assert_people, assert_published, date, derived_status, serve, text,
    today_in, trimmed,
};

const TIME_ZONE: &str = "Europe/Berlin";
const TOKEN: &str = "deel-org-token-Qw8eR4tY2uI6oP0aS3dF";
const WRONG_TOKEN: &str = "deel-org-token-REVOKED-zX5cV7bN1m";

/// The most records Deel puts on a page (`page.items_per_page` maximum).
const PAGE_CAP: usize = 99;

// ---------------------------------------------------------------------------------------
// The fake
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Deel {
    people: Vec<Value>,
    /// The query of every request let in.
    requests: Vec<Vec<(String, String)>>,
    refused: usize,
}

type Shared = Arc<Mutex<Deel>>;

fn refuse(d: &mut Deel, message: &str) -> Response {
    d.refused += 1;
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({
            "request": {"method": "GET", "url": "/rest/v2/people", "status": 401, "api_req_id": "00000000-0000-0000-0000-000000000000", "docs": "https://developer.deel.com/reference/getpeoplelist", "source": "auth", "code": 401},
            "errors": [{"message": message}],
        })),
    )
        .into_response()
}

async fn people(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let mut d = s.lock().unwrap();
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => return refuse(&mut d, "Missing authorization header"),
        Some(v) if v == format!("Bearer {TOKEN}") => {}
        Some(_) => return refuse(&mut d, "Invalid token or token expired"),
    }
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let offset: usize = param("offset").map_or(0, |v| v.parse().unwrap());
    let limit: usize = param("limit").map_or(50, |v| v.parse().unwrap());
    if !(1..=200).contains(&limit) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"errors": [{"message": "limit must be between 1 and 200", "path": "limit"}]})),
        )
            .into_response();
    }
    let statuses: Vec<&str> = q
        .iter()
        .filter(|(n, _)| n == "hiring_statuses")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut all: Vec<&Value> = d
        .people
        .iter()
        .filter(|p| statuses.is_empty() || statuses.contains(&p["hiring_status"].as_str().unwrap()))
        .collect();
    if param("sort_by") == Some("id") {
        all.sort_by_key(|p| p["id"].as_str().unwrap().to_string());
        if param("sort_order") == Some("desc") {
            all.reverse();
        }
    }
    let size = limit.min(PAGE_CAP);
    let end = (offset + size).min(all.len());
    let data: Vec<Value> = all[offset.min(end)..end]
        .iter()
        .map(|p| (*p).clone())
        .collect();
    let page = json!({"offset": offset, "items_per_page": size, "total_rows": data.len()});
    d.requests.push(q.clone());
    Json(json!({"data": data, "page": page})).into_response()
}

async fn start(org: Deel) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(org));
    let app = axum::Router::new()
        .route("/rest/v2/people", get(people))
        .with_state(shared.clone());
    let addr = serve(app).await;
    (format!("http://{addr}/rest/v2"), shared)
}

// ---------------------------------------------------------------------------------------
// The organization the fake serves
// ---------------------------------------------------------------------------------------

const DEPARTMENTS: &[&str] = &["Delivery team", "Sales", "People", "Finance"];
const TEAMS: &[&str] = &["Field Ops", "EMEA Sales", "Payroll", "Platform"];
const ENTITIES: &[&str] = &["Acme Inc.", "Acme GmbH", "Acme Ltd"];
const TYPES: &[&str] = &[
    "eor",
    "contractor",
    "direct_employee",
    "hris_direct_employee",
];
const FIRST: &[&str] = &["John", "Amara", "Kenji", "Lucia", "Tomasz", "Nia", "Pedro"];
const LAST: &[&str] = &[
    "Doe", "Okafor", "Sato", "Romero", "Nowak", "Adeyemi", "Costa",
];

fn uid(n: usize) -> String {
    // Not in listing order, so sorting by id matters.
    format!(
        "{:08x}-9d80-4d35-a085-{n:012x}",
        (n * 2_654_435_761) % 0xffff_ffff
    )
}

fn email_of(first: &str, last: &str, n: usize) -> String {
    format!(
        "{}.{}{n}@deel.example",
        first.to_lowercase(),
        last.to_lowercase()
    )
}

/// An active person, shaped like the spec's getPeopleList example.
fn person(n: usize, first: &str, last: &str, manager: Option<&Value>) -> Value {
    let hiring_type = TYPES[n % TYPES.len()];
    let entity = ENTITIES[n % ENTITIES.len()];
    let work = email_of(first, last, n);
    let title = [
        "Access Field Technician",
        "Account Executive",
        "Recruiter",
        "Accountant",
    ][n % 4];
    let office = ["Remote", "Berlin", "Lisbon"][n % 3];
    let direct_manager = manager.map(|m| {
        json!({
            "id": m["id"],
            "worker_id": m["worker_id"].to_string(),
            "first_name": m["first_name"],
            "last_name": m["last_name"],
            "work_email": m["emails"][1]["value"],
        })
    });
    let employments = json!([{
            "id": format!("mzj{n}"),
            "name": format!("{first} {last}"),
            "work_email": work,
            "email": work,
            "is_ended": false,
            "hiring_type": hiring_type,
            "hiring_status": "active",
            "contract_status": "in_progress",
            "job_title": "x",
            "team": {"id": format!("00000000-0000-0000-0002-{:012}", n % 4), "name": TEAMS[n % 4]},
            "client_legal_entity": {"id": "00000000-0000-0000-0001-000000000000", "name": entity},
            "payment": {"rate": 5000, "scale": "monthly", "currency": "EUR", "contract_name": "x"},
    }]);
    let mut r = json!({
        "id": uid(n),
        "worker_id": 100 + n,
        "external_id": format!("E-{n:04}"),
        "first_name": first,
        "last_name": last,
        "preferred_first_name": null,
        "preferred_last_name": last,
        "full_name": format!("{first} {last}"),
        "emails": [
            {"type": "personal", "value": format!("{}.{n}@gmail.example", first.to_lowercase())},
            {"type": "work", "value": work},
        ],
        "country": "DE",
        "timezone": "CET",
        "addresses": [],
        "job_title": title,
        "seniority": "Mid (Individual Contributor Level 2)",
        "department": {"id": format!("00000000-0000-0000-0000-{:012}", n % 4), "name": DEPARTMENTS[n % 4], "parent": "Research and Development"},
        "work_location": office,
        "client_legal_entity": {"id": format!("00000000-0000-0000-0001-{:012}", n % 3), "name": entity},
        "direct_manager": direct_manager,
        "direct_reports": [],
        "direct_reports_count": 0,
        "hiring_type": hiring_type,
        "hiring_status": "active",
        "new_hiring_status": "active",
        "state": "Active",
        "start_date": format!("20{:02}-{:02}-{:02}", 15 + n % 9, 1 + n % 12, 1 + n % 28),
        "birth_date": format!("19{}-{:02}-{:02}T00:00:00.000Z", 70 + n % 30, 1 + n % 12, 1 + n % 28),
        "completion_date": null,
        "direct_employee_termination_last_day": null,
        "created_at": "2023-03-21T10:27:25.95Z",
        "updated_at": "2024-05-24T09:38:46.235Z",
        "nationalities": ["German"],
    });
    r["employments"] = employments;
    r
}

fn organization() -> Deel {
    let mut p = vec![person(0, "Alex", "Bouaziz", None)];
    for n in 1..=4 {
        let ceo = p[0].clone();
        p.push(person(n, FIRST[n], LAST[n], Some(&ceo)));
    }
    for n in 5..240 {
        let lead = p[1 + n % 4].clone();
        p.push(person(n, FIRST[n % 7], LAST[(n / 7) % 7], Some(&lead)));
    }
    let lead = p[2].clone();
    let mut special = |n: usize, edit: &dyn Fn(&mut Value)| {
        let mut r = person(n, FIRST[n % 7], LAST[n % 7], Some(&lead));
        edit(&mut r);
        p.insert(n % 200 + 7, r);
    };
    // Left (inactive), with a last day.
    special(900, &|r| {
        r["hiring_status"] = json!("inactive");
        r["hiring_type"] = json!("direct_employee");
        r["direct_employee_termination_last_day"] = json!("2023-03-21T10:27:25.95Z");
    });
    // Onboarding contractor starting later, with a contract end; the work email only on
    // the employment.
    special(901, &|r| {
        r["hiring_status"] = json!("onboarding");
        r["hiring_type"] = json!("contractor");
        r["start_date"] = json!("2099-02-04");
        r["completion_date"] = json!("2099-08-31T00:00:00.000Z");
        r["emails"] = json!([{"type": "personal", "value": "willa@gmail.example"}]);
    });
    // Offboarding: last day ahead, still working.
    special(902, &|r| {
        r["hiring_status"] = json!("offboarding");
        r["direct_employee_termination_last_day"] = json!("2099-06-30T00:00:00.000Z");
    });
    // Two work emails (as in the spec's example): the first is used.
    special(903, &|r| {
        r["emails"] = json!([
            {"type": "work", "value": " First.Work@Deel.example "},
            {"type": "work", "value": "second.work@deel.example"},
        ]);
    });
    // No department, no team, no manager, no legal entity on the person (the employment's),
    // a preferred name.
    special(904, &|r| {
        r["department"] = Value::Null;
        r["employments"][0]["team"] = Value::Null;
        r["direct_manager"] = Value::Null;
        r["client_legal_entity"] = Value::Null;
        r["preferred_first_name"] = json!("Tom");
    });
    // A manager who is not in the listing: resolved by nobody, email kept.
    special(905, &|r| {
        r["direct_manager"] = json!({"id": "ffffffff-0000-0000-0000-000000000000", "worker_id": "9", "first_name": "Gone", "last_name": "Boss", "work_email": "gone.boss@deel.example"});
    });
    Deel {
        people: p,
        ..Deel::default()
    }
}

// ---------------------------------------------------------------------------------------
// Expectations, from what the fake serves
// ---------------------------------------------------------------------------------------

fn email(r: &Value) -> String {
    let work = r["emails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "work")
        .map(|e| trimmed(&e["value"]))
        .unwrap_or_else(|| trimmed(&r["employments"][0]["work_email"]));
    work.to_lowercase()
}

fn kept(r: &Value) -> bool {
    r["hiring_status"] != "inactive"
}

const COLUMNS: &str = "employee_id, first_name, last_name, preferred_name, display_name,
    job_title, department, team, manager_id, manager_email, office, legal_entity,
    employment_type, worker_type, hris_status, status, start_date, end_date, birth_date,
    custom['worker_id'], custom['external_id'], sources";

fn expected(r: &Value, all: &[Value], today: &str) -> Vec<String> {
    let manager = &r["direct_manager"];
    let manager_id = text(&manager["id"]);
    let manager_email = all
        .iter()
        .find(|o| kept(o) && !manager_id.is_empty() && text(&o["id"]) == manager_id)
        .map(email)
        .unwrap_or_else(|| trimmed(&manager["work_email"]).to_lowercase());
    let legal_entity = match text(&r["client_legal_entity"]["name"]) {
        l if l.is_empty() => text(&r["employments"][0]["client_legal_entity"]["name"]),
        l => l,
    };
    let hiring_type = text(&r["hiring_type"]);
    let worker_type = if hiring_type == "contractor" {
        "contractor"
    } else {
        "employee"
    };
    let hris_status = match r["hiring_status"].as_str() {
        Some("active" | "offboarding") => "active",
        Some("onboarding") => "pre_hire",
        other => panic!("hiring_status {other:?} is not kept"),
    };
    let start = date(&r["start_date"]);
    let end = match date(&r["direct_employee_termination_last_day"]) {
        e if e.is_empty() => date(&r["completion_date"]),
        e => e,
    };
    vec![
        text(&r["id"]),
        trimmed(&r["first_name"]),
        trimmed(&r["last_name"]),
        trimmed(&r["preferred_first_name"]),
        trimmed(&r["full_name"]),
        text(&r["job_title"]),
        text(&r["department"]["name"]),
        text(&r["employments"][0]["team"]["name"]),
        manager_id,
        manager_email,
        text(&r["work_location"]),
        legal_entity,
        hiring_type,
        worker_type.to_string(),
        hris_status.to_string(),
        derived_status(hris_status, &start, &end, today).to_string(),
        start,
        end,
        date(&r["birth_date"]),
        text(&r["worker_id"]),
        text(&r["external_id"]),
        "[deel]".to_string(),
    ]
}

/// The built-in `deel` spec with only `base_url` replaced (and the lines of `replace`), and
/// one source per `(name, token)`.
fn env(base_url: &str, sources: &[(&str, &str)], replace: &[(&str, String)]) -> Env {
    Env::one_secret_sources("deel", "api_token", base_url, replace, TIME_ZONE, sources)
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn deel_people_land_in_the_directory_field_by_field_over_capped_pages() {
    let (base, fake) = start(organization()).await;
    let served = fake.lock().unwrap().people.clone();
    let e = env(&base, &[("deel", TOKEN)], &[]);
    let r = e.sync_source("deel").await.unwrap();
    assert_published(&r);
    // Every person arrived, across pages of 99 whose `total_rows` is 99.
    assert_eq!(r.run.records, served.len() as u64);

    let today = today_in(TIME_ZONE).to_string();
    let want: BTreeMap<String, Vec<String>> = served
        .iter()
        .filter(|p| kept(p))
        .map(|p| (email(p), expected(p, &served, &today)))
        .collect();
    assert_eq!(want.len(), served.len() - 1);
    assert_people(&e.people_by_email(COLUMNS), &want, COLUMNS);

    let one = |email: &str, cols: &str| e.row_of(email, cols);
    let of = |n: usize| email(served.iter().find(|p| p["id"] == uid(n)).unwrap());
    // Onboarding contractor: a pre-hire with a contract end; the employment's email.
    assert_eq!(
        one(&of(901), "status, worker_type, end_date"),
        ["pre_hire", "contractor", "2099-08-31"]
    );
    assert!(of(901).ends_with("901@deel.example"));
    // Offboarding is still active, with the last day ahead.
    assert_eq!(one(&of(902), "status, end_date"), ["active", "2099-06-30"]);
    // The first of two work emails.
    assert_eq!(of(903), "first.work@deel.example");
    // The legal entity from the employment; a preferred name.
    assert_eq!(
        one(
            &of(904),
            "legal_entity, preferred_name, department, team, manager_id"
        ),
        [ENTITIES[904 % 3], "Tom", "", "", ""]
    );
    // A manager outside the listing: unresolved, email kept, flagged.
    assert_eq!(one(&of(905), "manager_email")[0], "gone.boss@deel.example");
    let unresolved = e
        .query("select work_email from data_problems where kind = 'unresolved_manager' order by 1");
    assert_eq!(unresolved, [[of(905)]]);
    // Managers resolve by Deel id: two levels below the CEO.
    assert_eq!(
        e.query(&format!(
            "select depth from org_chart where work_email = '{}'",
            of(10)
        )),
        [["2"]]
    );

    // Paging: limit=100, 99 per page, offsets advance by what arrived, and only an empty page
    // ends the listing; every hiring status asked for, sorted by id.
    let d = fake.lock().unwrap();
    assert_eq!(d.refused, 0);
    let offsets: Vec<usize> = d
        .requests
        .iter()
        .map(|q| {
            q.iter()
                .find(|(k, _)| k == "offset")
                .unwrap()
                .1
                .parse()
                .unwrap()
        })
        .collect();
    let n = served.len();
    assert_eq!(n, 246);
    assert_eq!(offsets, [0, 99, 198, 246]);
    for q in &d.requests {
        let all = |k: &str| -> Vec<&str> {
            q.iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(all("limit"), ["100"]);
        assert_eq!(
            all("hiring_statuses"),
            ["active", "inactive", "onboarding", "offboarding"]
        );
        assert_eq!(
            (all("sort_by"), all("sort_order")),
            (vec!["id"], vec!["asc"])
        );
    }
}

/// Why the built-in spec has no `total:`: Deel's `page.total_rows` counts the page, so a
/// spec that trusted it would stop after the first page and call 99 of 246 people complete.
#[tokio::test]
async fn trusting_deels_total_rows_would_truncate_the_listing_silently() {
    let (base, fake) = start(organization()).await;
    let e = env(
        &base,
        &[("deel", TOKEN)],
        &[(
            "    records: $.data[*]",
            "    records: $.data[*]\n    total: $.page.total_rows".to_string(),
        )],
    );
    let r = e.sync_source("deel").await.unwrap();
    assert_eq!(
        r.run.records, PAGE_CAP as u64,
        "stopped at the page's row count"
    );
    assert_eq!(fake.lock().unwrap().requests.len(), 1);
}

#[tokio::test]
async fn a_wrong_deel_token_is_a_clear_error_without_the_secret() {
    let (base, fake) = start(organization()).await;
    let e = env(&base, &[("deel", WRONG_TOKEN)], &[]);
    assert_fetch_error(
        &e.sync_source("deel").await.unwrap_err(),
        &[
            "source `deel`",
            "/people",
            "HTTP 401",
            "Invalid token or token expired",
            "`api_token`",
            "Create new ones",
            "Developer Center",
            "nothing was applied",
        ],
        &[WRONG_TOKEN, TOKEN],
    );
    let d = fake.lock().unwrap();
    assert_eq!(d.refused, 1);
    assert!(d.requests.is_empty());
    assert!(!e.directory_path().exists());
}
