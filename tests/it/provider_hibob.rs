//! HiBob end to end: a fake Bob API on 127.0.0.1:0, the built-in `hibob` spec (only
//! `base_url` changed) and mapping, a real DuckDB directory read back read-only. Every
//! expectation is derived from the employees the fake holds.
//!
//! What the fake reproduces (from ../shared/provider-specs/hibob/hibob-openapi.yaml and
//! HiBob's "Rate limiting", "Error handling" and "How to work with lists" pages):
//! - Service-user auth: HTTP basic, the service user's id as the user name and its token as
//!   the password. Anything else is a 401 `{key, error}`.
//! - `POST /v1/people/search` with a JSON body `{fields, filters, showInactive,
//!   humanReadable}`: at most 400 fields and one filter (a 400 otherwise); no paging, every
//!   matching employee in one `{"employees": [...]}`.
//! - Only the requested fields come back, each twice as in HiBob's "How to work with lists"
//!   example: under its slash-notation key (`"/work/site": {"value": ...}`) and nested
//!   (`root.x` at the top, the others by category). HiBob's "People read API contract" makes
//!   the nested copy optional, so the fake can leave it out. A field the spec forgets to ask
//!   for is simply absent. Categories the service user's
//!   permission group may not view are silently left out, and so are people in lifecycle
//!   statuses it may not see.
//! - `showInactive` defaults to false, which hides people whose `internal.status` is Inactive.
//! - List fields hold list-item ids; `humanReadable: APPEND` adds a `humanReadable` node with
//!   the item names, and dates in the display format (dd/mm/yyyy).
//! - 50 requests a minute: beyond that a 429 with `X-RateLimit-Limit`, `-Remaining` and
//!   `-Reset` (Unix time). HiBob's pages document the 429 and "rate limit headers"; the spec
//!   file documents neither, nor a `Retry-After`, so the fake sends none.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use jiff::ToSpan as _;
use jiff::civil::{Date, date};
use serde_json::{Value, json};

use crate::provider_common::{
    self, assert_fetch_error, assert_people, assert_published, text, today_in, trimmed,
};

/// The deployment's time zone (roster.yaml `time_zone`).
const TIME_ZONE: &str = "UTC";

/// The service user (its id is not a secret).
const SERVICE_USER_ID: &str = "SERVICE-24017";
const SERVICE_USER_TOKEN: &str = "Qm9iU2VydmljZVVzZXJUb2tlbi1hY21lLTI0MDE3";
/// A token that was renewed since; it must never show up in an error.
const OLD_TOKEN: &str = "hibob-renewed-CANARY-3f1a9c0e77d2";

const PEOPLE: usize = 30;
/// Hired, starts in two weeks.
const PRE_HIRE: usize = 3;
/// On leave.
const ON_LEAVE: usize = 4;
/// Terminated last year (internal.status Inactive).
const LEAVER: usize = 5;
/// Employed, termination scheduled for next month.
const NOTICE: usize = 8;

const FIRST: &[&str] = &[
    "Ava", "Sam", "Noa", "Lena", "Marco", "Priya", "Tom", "Yuki", "Omar", "Ines", "Kofi",
];
const LAST: &[&str] = &[
    "Nguyen", "Park", "Cohen", "Smith", "Lee", "Shah", "Brown", "Tanaka", "Haddad", "Silva",
    "Mensah", "Levi", "Dubois",
];
/// Employment types, and whether the tenant means a contractor by it.
const EMPLOYMENT_TYPES: &[(&str, bool)] = &[
    ("Permanent", false),
    ("Contractor", true),
    ("Fixed term", false),
    ("Intern", false),
    ("Working student", false),
    ("Freelance", true),
];

/// The list fields, and the items of each (id, name).
fn lists() -> BTreeMap<&'static str, Vec<(String, String)>> {
    let items = |base: u64, names: &[&str]| -> Vec<(String, String)> {
        names
            .iter()
            .enumerate()
            .map(|(n, name)| ((base + n as u64).to_string(), name.to_string()))
            .collect()
    };
    let types: Vec<&str> = EMPLOYMENT_TYPES.iter().map(|(n, _)| *n).collect();
    BTreeMap::from([
        (
            "work.title",
            items(
                224_631_900,
                &[
                    "Engineering Manager",
                    "QA Analyst",
                    "Support Engineer",
                    "Designer",
                    " Data Scientist ",
                ],
            ),
        ),
        (
            "work.department",
            items(
                209_192_160,
                &["Engineering", "Quality", "Customer Success", "Finance"],
            ),
        ),
        (
            "work.site",
            items(2_156_010, &["London", "Manchester", "Tel Aviv"]),
        ),
        ("payroll.employment.type", items(220_840, &types)),
        (
            "payroll.employment.contract",
            items(220_850, &["Full time", "Part time"]),
        ),
    ])
}

/// Lifecycle statuses: machine value and display name.
const LIFECYCLE: &[(&str, &str)] = &[
    ("hired", "Hired"),
    ("employed", "Employed"),
    ("leave", "Leave"),
    ("terminated", "Terminated"),
];

/// One request as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    method: String,
    path: String,
    authorization: String,
    body: Value,
    status: u16,
}

/// The fake's tenant and what it has seen.
#[derive(Default)]
struct Bob {
    employees: Vec<Value>,
    lists: BTreeMap<&'static str, Vec<(String, String)>>,
    /// Categories the service user's permission group may not view.
    hidden_categories: Vec<&'static str>,
    /// Lifecycle statuses (machine values) the permission group may not see.
    hidden_lifecycle: Vec<&'static str>,
    /// Answer with slash-notation keys only, without the nested copies.
    slash_only: bool,
    /// Accepted requests of the last minute.
    window: VecDeque<Instant>,
    /// When the first request arrives, someone else has used up the minute's 50 requests,
    /// the oldest of which leaves the window after this long.
    busy_for: Option<Duration>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Bob>>;

fn manager_of(i: usize) -> Option<usize> {
    (i > 0).then(|| (i - 1) / 4)
}

fn bob_id(i: usize) -> String {
    format!("33328838840177{i:05}")
}

fn name(i: usize) -> (&'static str, &'static str) {
    (FIRST[i % FIRST.len()], LAST[(i * 5) % LAST.len()])
}

fn email(i: usize) -> String {
    let (first, last) = name(i);
    format!("{first}.{last}{i}@Acme.example")
}

impl Bob {
    fn tenant() -> Bob {
        let today = today_in(TIME_ZONE);
        let lists = lists();
        let item = |field: &str, n: usize| {
            let l = &lists[field];
            json!(l[n % l.len()].0)
        };
        let mut employees = Vec::new();
        for i in 0..PEOPLE {
            let (first, last) = name(i);
            let start = if i == PRE_HIRE {
                today.checked_add(14.days()).unwrap()
            } else {
                date(
                    2013 + (i % 10) as i16,
                    1 + (i % 12) as i8,
                    1 + (i * 2 % 28) as i8,
                )
            };
            let lifecycle = match i {
                PRE_HIRE => "hired",
                ON_LEAVE => "leave",
                LEAVER => "terminated",
                _ => "employed",
            };
            let termination = match i {
                LEAVER => json!(today.checked_sub(200.days()).unwrap().to_string()),
                NOTICE => json!(today.checked_add(30.days()).unwrap().to_string()),
                _ => Value::Null,
            };
            let manager = manager_of(i);
            employees.push(json!({
                "id": bob_id(i),
                "companyId": 638_191,
                "firstName": if i % 6 == 0 { format!("{first} ") } else { first.to_string() },
                "surname": last,
                "displayName": format!("{first} {last}"),
                "email": email(i),
                "work": {
                    "title": item("work.title", i),
                    "department": item("work.department", i),
                    "site": item("work.site", i),
                    "startDate": start.to_string(),
                    "employeeIdInCompany": 1000 + i,
                    "manager": manager.map(bob_id),
                    "reportsTo": manager.map(|m| {
                        let (f, l) = name(m);
                        json!({"id": bob_id(m), "firstName": f, "surname": l,
                               "displayName": format!("{f} {l}"), "email": email(m)})
                    }),
                },
                "internal": {
                    "status": if i == LEAVER { "Inactive" } else { "Active" },
                    "lifecycleStatus": lifecycle,
                    "terminationDate": termination,
                    "probationEndDate": if i % 3 == 0 {
                        json!(start.checked_add(3.months()).unwrap().to_string())
                    } else {
                        Value::Null
                    },
                },
                "employee": {
                    "lastDayOfWork": if i == LEAVER {
                        json!(today.checked_sub(210.days()).unwrap().to_string())
                    } else {
                        Value::Null
                    },
                },
                "personal": {
                    "honorific": "",
                    "birthDate": if i % 9 == 4 {
                        Value::Null
                    } else {
                        json!(date(1965 + (i % 35) as i16, 1 + (i * 7 % 12) as i8, 1 + (i % 28) as i8).to_string())
                    },
                },
                "payroll": {
                    "employment": {
                        "type": item("payroll.employment.type", i),
                        "contract": item("payroll.employment.contract", i / 2),
                    },
                },
                "about": {"hobbies": ["climbing"]},
            }));
        }
        Bob {
            employees,
            lists,
            ..Bob::default()
        }
    }

    fn answer(
        &mut self,
        method: &Method,
        path: &str,
        authorization: &str,
        body: &Value,
    ) -> (u16, Vec<(&'static str, String)>, Value) {
        let error = |status: u16, key: &str, error: &str| {
            (status, vec![], json!({"key": key, "error": error}))
        };
        if (method, path) != (&Method::POST, "/v1/people/search") {
            return error(404, "notFound", "Not found");
        }
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{SERVICE_USER_ID}:{SERVICE_USER_TOKEN}"));
        if authorization != format!("Basic {basic}") {
            return error(401, "unauthorized", "Unauthorized");
        }
        // 50 requests a minute.
        let now = Instant::now();
        if let Some(busy) = self.busy_for.take() {
            let oldest = now - (Duration::from_secs(60) - busy);
            self.window = std::iter::repeat_n(oldest, 50).collect();
        }
        while self
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.window.pop_front();
        }
        let unix = |at: Instant| {
            let ahead = at.saturating_duration_since(now).as_secs_f64();
            (jiff::Timestamp::now().as_millisecond() as f64 / 1000.0 + ahead).ceil() as i64
        };
        if self.window.len() >= 50 {
            let reset = unix(self.window[0] + Duration::from_secs(60));
            return (
                429,
                vec![
                    ("x-ratelimit-limit", "50".into()),
                    ("x-ratelimit-remaining", "0".into()),
                    ("x-ratelimit-reset", reset.to_string()),
                ],
                json!({"key": "tooManyRequests", "error": "Too many requests"}),
            );
        }
        self.window.push_back(now);
        let headers = vec![
            ("x-ratelimit-limit", "50".to_string()),
            (
                "x-ratelimit-remaining",
                (50 - self.window.len()).to_string(),
            ),
            (
                "x-ratelimit-reset",
                unix(self.window[0] + Duration::from_secs(60)).to_string(),
            ),
        ];

        let Some(fields) = body["fields"]
            .as_array()
            .and_then(|f| f.iter().map(|v| v.as_str()).collect::<Option<Vec<_>>>())
        else {
            return error(400, "badRequest", "`fields` must be a list of field paths");
        };
        if fields.len() > 400 {
            return error(400, "badRequest", "at most 400 fields");
        }
        if body["filters"].as_array().is_some_and(|f| f.len() > 1) {
            return error(400, "badRequest", "only one filter is supported");
        }
        let human = match &body["humanReadable"] {
            Value::Null => None,
            Value::String(s) if s == "APPEND" || s == "REPLACE" => Some(s.as_str()),
            _ => return error(400, "badRequest", "humanReadable is APPEND or REPLACE"),
        };
        let show_inactive = body["showInactive"].as_bool().unwrap_or(false);
        let employees: Vec<Value> = self
            .employees
            .iter()
            .filter(|e| show_inactive || e["internal"]["status"] == "Active")
            .filter(|e| {
                !self
                    .hidden_lifecycle
                    .iter()
                    .any(|s| e["internal"]["lifecycleStatus"] == *s)
            })
            .map(|e| self.project(e, &fields, human))
            .collect();
        (200, headers, json!({ "employees": employees }))
    }

    /// The requested fields of one employee, the way `/people/search` returns them.
    fn project(&self, full: &Value, fields: &[&str], human: Option<&str>) -> Value {
        let mut out = json!({});
        let mut readable = json!({});
        for field in fields {
            let mut parts: Vec<&str> = field.split('.').collect();
            if parts[0] == "root" {
                parts.remove(0);
            } else if self.hidden_categories.iter().any(|c| *c == parts[0]) {
                continue; // not viewable: silently left out
            }
            let Some(value) = parts.iter().try_fold(full, |v, p| v.get(*p)) else {
                continue; // unknown field id: silently left out
            };
            let display = self.display(field, value);
            let machine = if human == Some("REPLACE") {
                display.clone()
            } else {
                value.clone()
            };
            out[format!("/{}", field.replace('.', "/"))] = json!({ "value": machine });
            if !self.slash_only {
                put(&mut out, &parts, machine);
            }
            if human == Some("APPEND") && field.split('.').next() != Some("root") {
                put(&mut readable, &parts, display);
            }
        }
        if human == Some("APPEND") {
            out["humanReadable"] = readable;
        }
        out
    }

    /// A value as Bob displays it: list items by name, dates as dd/mm/yyyy.
    fn display(&self, field: &str, value: &Value) -> Value {
        if let Some(items) = self.lists.get(field) {
            let id = value.as_str().unwrap_or_default();
            return items
                .iter()
                .find(|(i, _)| i == id)
                .map_or(Value::Null, |(_, n)| json!(n));
        }
        if field == "internal.lifecycleStatus" {
            return LIFECYCLE
                .iter()
                .find(|(m, _)| value == *m)
                .map_or(Value::Null, |(_, d)| json!(d));
        }
        if field == "work.reportsTo" {
            return value["displayName"].clone();
        }
        match value.as_str().map(|s| s.parse::<Date>()) {
            Some(Ok(d)) => json!(d.strftime("%d/%m/%Y").to_string()),
            _ => value.clone(),
        }
    }
}

/// Sets `value` at the nested `path` of `obj`.
fn put(obj: &mut Value, path: &[&str], value: Value) {
    let (last, parents) = path.split_last().unwrap();
    let mut cur = obj;
    for p in parents {
        cur = cur
            .as_object_mut()
            .unwrap()
            .entry(p.to_string())
            .or_insert_with(|| json!({}));
    }
    cur[*last] = value;
}

async fn api(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let json_body = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let parsed: Value = if json_body {
        serde_json::from_slice(&body).unwrap_or_default()
    } else {
        Value::Null
    };
    let mut b = s.lock().unwrap();
    let (status, extra, reply) = b.answer(&method, uri.path(), &authorization, &parsed);
    b.seen.push(Seen {
        at: Instant::now(),
        method: method.to_string(),
        path: uri.path().to_string(),
        authorization,
        body: parsed,
        status,
    });
    let mut response = (StatusCode::from_u16(status).unwrap(), axum::Json(reply)).into_response();
    for (name, value) in extra {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// A config directory reading the fake through the built-in spec and mapping.
type Env = provider_common::Env<Shared>;

impl Env {
    async fn start(bob: Bob) -> Env {
        let (env, addr) =
            provider_common::Env::serving(bob, axum::Router::new().fallback(api)).await;
        env.override_base_url("hibob", &format!("http://{addr}/v1"));
        env.write_roster(
            TIME_ZONE,
            &format!(
                "  hibob:\n    provider: hibob\n    credentials:\n      service_user_id: {SERVICE_USER_ID}\n      service_user_token: {{file: secrets/hibob}}\n"
            ),
        );
        env.set_token(SERVICE_USER_TOKEN);
        env
    }

    fn set_token(&self, token: &str) {
        self.write_secret("hibob", token);
    }
}

const COLUMNS: &str =
    "employee_id, first_name, last_name, preferred_name, display_name, work_email,
    job_title, department, team, sub_company, manager_id, manager_email, office, legal_entity,
    employment_type, worker_type, status, hris_status, start_date, end_date, probation_end_date,
    birth_date, custom['employee_number'], custom['employment_contract'],
    custom['last_day_of_work'], sources, employee_ids['hibob']";

/// Positions in a row of [`COLUMNS`].
const MANAGER_EMAIL: usize = 11;
const EMPLOYMENT_TYPE: usize = 14;
const WORKER_TYPE: usize = 15;
const STATUS: usize = 16;
const END_DATE: usize = 19;
const BIRTH_DATE: usize = 21;

/// What the directory must hold for every employee the service user may see and who has not
/// left, keyed by work email: every mapped field from the fake's machine values, list fields
/// by item name. Categories in `hidden` read as empty.
fn expected_people(b: &Bob) -> BTreeMap<String, Vec<String>> {
    let today = today_in(TIME_ZONE).to_string();
    let item = |field: &str, id: &Value| {
        b.lists[field]
            .iter()
            .find(|(i, _)| *i == text(id))
            .map(|(_, n)| n.trim().to_string())
            .unwrap_or_default()
    };
    let mut out = BTreeMap::new();
    for e in &b.employees {
        let lifecycle = text(&e["internal"]["lifecycleStatus"]);
        if lifecycle == "terminated" || b.hidden_lifecycle.iter().any(|l| *l == lifecycle) {
            continue;
        }
        let none = Value::Null;
        let visible = |category: &'static str| {
            if b.hidden_categories.contains(&category) {
                &none
            } else {
                &e[category]
            }
        };
        let (work, internal, payroll) = (visible("work"), visible("internal"), visible("payroll"));
        let employment_type = item("payroll.employment.type", &payroll["employment"]["type"]);
        let contractor = EMPLOYMENT_TYPES
            .iter()
            .any(|(n, c)| *c && *n == employment_type);
        let start = text(&work["startDate"]);
        let status = match lifecycle.as_str() {
            "hired" => "pre_hire",
            "leave" => "on_leave",
            _ => "active",
        };
        let email = trimmed(&e["email"]).to_lowercase();
        out.insert(
            email.clone(),
            vec![
                text(&e["id"]),
                trimmed(&e["firstName"]),
                trimmed(&e["surname"]),
                String::new(), // preferred_name: not mapped
                trimmed(&e["displayName"]),
                email,
                item("work.title", &work["title"]),
                item("work.department", &work["department"]),
                String::new(), // team: not mapped
                String::new(), // sub_company: not mapped
                text(&work["reportsTo"]["id"]),
                trimmed(&work["reportsTo"]["email"]).to_lowercase(),
                item("work.site", &work["site"]),
                String::new(), // legal_entity: not mapped
                employment_type,
                if contractor { "contractor" } else { "employee" }.into(),
                if status == "active" && start > today {
                    "pre_hire".into()
                } else {
                    status.into()
                },
                status.into(),
                start,
                text(&internal["terminationDate"]),
                text(&internal["probationEndDate"]),
                text(&visible("personal")["birthDate"]),
                text(&work["employeeIdInCompany"]),
                item(
                    "payroll.employment.contract",
                    &payroll["employment"]["contract"],
                ),
                text(&visible("employee")["lastDayOfWork"]),
                "[hibob]".into(),
                text(&e["id"]),
            ],
        );
    }
    out
}

#[tokio::test]
async fn a_hibob_sync_reads_everyone_in_one_search_and_maps_every_field() {
    let env = Env::start(Bob::tenant()).await;
    let r = env.sync().await.unwrap();
    assert_published(&r);

    let b = env.fake();
    // Leavers are read (showInactive) and left out by the mapping's filter.
    assert_eq!(
        (r.run.records, r.run.kept, r.run.excluded, r.run.failed),
        (PEOPLE as u64, PEOPLE as u64 - 1, 1, 0)
    );
    let expected = expected_people(&b);
    let actual = env.people_by_email(COLUMNS);
    assert_people(&actual, &expected, COLUMNS);

    // The special cases are in the data and landed as they should.
    let row = |i: usize| actual.get(&email(i).to_lowercase());
    assert_eq!(row(PRE_HIRE).unwrap()[STATUS], "pre_hire");
    assert_eq!(row(ON_LEAVE).unwrap()[STATUS], "on_leave");
    assert!(row(LEAVER).is_none(), "a terminated employee is left out");
    assert_eq!(row(NOTICE).unwrap()[STATUS], "active");
    assert_ne!(
        row(NOTICE).unwrap()[END_DATE],
        "",
        "a scheduled termination date"
    );
    assert_eq!(row(0).unwrap()[MANAGER_EMAIL], "", "the top has no manager");
    assert_eq!(row(1).unwrap()[MANAGER_EMAIL], email(0).to_lowercase());
    let contractors = actual
        .values()
        .filter(|r| r[WORKER_TYPE] == "contractor")
        .count();
    assert!(contractors >= 5, "{contractors} contractors");
    // The leaver's reports keep the manager's email from `reportsTo`, though nobody in the
    // directory has it: a data problem says so.
    let orphan = bob_id(LEAVER * 4 + 1);
    assert_eq!(
        env.query(&format!(
            "select count(*) from data_problems where kind = 'unresolved_manager' and record_key = '{orphan}'"
        )),
        [["1"]]
    );

    // One request: POST /people/search as the service user, leavers included, the machine
    // values plus the humanReadable copy.
    assert_eq!(b.seen.len(), 1, "{:?}", b.seen);
    let s = &b.seen[0];
    assert_eq!(
        (s.method.as_str(), s.path.as_str(), s.status),
        ("POST", "/v1/people/search", 200)
    );
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{SERVICE_USER_ID}:{SERVICE_USER_TOKEN}"));
    assert_eq!(s.authorization, format!("Basic {basic}"));
    assert_eq!(s.body["showInactive"], true);
    assert_eq!(s.body["humanReadable"], "APPEND");
    assert!(s.body.get("filters").is_none());
}

#[tokio::test]
async fn a_renewed_service_user_token_fails_once_with_what_to_do() {
    let env = Env::start(Bob::tenant()).await;
    env.sync().await.unwrap();
    let before = env.people_by_email(COLUMNS);

    env.set_token(OLD_TOKEN);
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{SERVICE_USER_ID}:{OLD_TOKEN}"));
    assert_fetch_error(
        &env.sync().await.unwrap_err(),
        &[
            "source `hibob`",
            "POST /v1/people/search",
            "HTTP 401",
            "invalid credentials",
            "`service_user_token`",
            "revoked, regenerated or mistyped",
            "update the secrets this source references",
            "nothing was applied",
        ],
        &[OLD_TOKEN, "CANARY", &basic],
    );
    // Asked once: HiBob's firewall blocks callers that repeat rejected credentials.
    let b = env.fake();
    assert_eq!(b.seen.iter().filter(|s| s.status == 401).count(), 1);
    assert_eq!(b.seen.len(), 2);
    drop(b);
    assert_eq!(env.people_by_email(COLUMNS), before, "nothing was applied");
}

#[tokio::test]
async fn a_429_waits_for_the_rate_limit_window_to_reset() {
    let mut bob = Bob::tenant();
    // Another integration of the same company has just used the minute's 50 requests; the
    // oldest leaves the window 1.5s after our first request.
    let busy = Duration::from_millis(1500);
    bob.busy_for = Some(busy);
    let env = Env::start(bob).await;
    let r = env.sync().await.unwrap();
    assert_eq!(r.run.records, PEOPLE as u64);
    let b = env.fake();
    let statuses: Vec<u16> = b.seen.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [429, 200],
        "waited for the reset instead of hammering"
    );
    // (The reset header is whole Unix seconds on the wall clock; `at` is monotonic: allow
    // a little skew between the two.)
    assert!(
        b.seen[1].at + Duration::from_millis(100) >= b.seen[0].at + busy,
        "retried before the window reset"
    );
    let expected = expected_people(&b);
    drop(b);
    assert_eq!(env.people_by_email(COLUMNS), expected);
}

#[tokio::test]
async fn fields_and_people_the_service_user_may_not_see_are_silently_missing() {
    let mut bob = Bob::tenant();
    // A permission group without the Personal and Payroll categories, and without the Hired
    // lifecycle status.
    bob.hidden_categories = vec!["personal", "payroll"];
    bob.hidden_lifecycle = vec!["hired"];
    let env = Env::start(bob).await;
    let r = env.sync().await.unwrap();
    assert!(r.applied.held.is_none());
    let b = env.fake();
    let expected = expected_people(&b);
    let actual = env.people_by_email(COLUMNS);
    assert_eq!(actual, expected);
    // What that looks like: pre-hires missing, no birth dates, no employment type, and
    // contractors labelled employees.
    assert!(!actual.contains_key(&email(PRE_HIRE).to_lowercase()));
    assert!(
        actual
            .values()
            .all(|r| r[BIRTH_DATE].is_empty() && r[EMPLOYMENT_TYPE].is_empty())
    );
    assert!(actual.values().all(|r| r[WORKER_TYPE] == "employee"));
    let hidden_contractor = b.employees.iter().any(|e| {
        let t = text(&e["payroll"]["employment"]["type"]);
        b.lists["payroll.employment.type"]
            .iter()
            .any(|(id, n)| *id == t && (n == "Contractor" || n == "Freelance"))
    });
    assert!(hidden_contractor);
    assert_eq!(b.seen.len(), 1, "no error, nothing to retry");
}

#[tokio::test]
async fn a_response_with_slash_notation_keys_only_lands_the_same_people() {
    let mut bob = Bob::tenant();
    bob.slash_only = true;
    let env = Env::start(bob).await;
    let r = env.sync().await.unwrap();
    assert_eq!((r.run.kept, r.run.failed), (PEOPLE as u64 - 1, 0));
    let b = env.fake();
    let expected = expected_people(&b);
    drop(b);
    assert_eq!(env.people_by_email(COLUMNS), expected);
}
