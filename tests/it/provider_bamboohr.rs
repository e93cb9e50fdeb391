//! BambooHR end to end: a fake BambooHR on 127.0.0.1:0, read through the built-in
//! `providers/bamboohr.yaml` and `mappings/bamboohr.yaml` (only `base_url` changed), synced
//! into a real DuckDB directory.
//!
//! The fake reproduces BambooHR's own OpenAPI description (see
//! ../shared/provider-specs/bamboohr) of `POST /api/v1/reports/custom` under the company's
//! subdomain (here a path segment, `/{company}/api/v1/...`; another company is a 404):
//! - HTTP basic auth with the API key as the user name and any password; a wrong key is 401.
//! - The JSON body is read as JSON only with `Content-Type: application/json` EXACTLY; any
//!   other value (a repeated header included, which HTTP combines into one list) is parsed as
//!   XML and fails with `400 Malformed XML`.
//! - The output format from `format` (case-insensitive), else from an exact `Accept`; anything
//!   else is a 404. At most 400 fields, else 400.
//! - Every employee, Active and Inactive; `id` plus one STRING per requested field; unknown
//!   fields, and fields the key's user may not see, silently left out; empty dates as
//!   `0000-00-00`, other empty values as `""` or null.
//! - `onlyCurrent` (default true): historical tables (job information, employment status)
//!   show the row in effect today, and employees hired in the future are left out, as the
//!   directory endpoint and BambooHR's 2021 changelog describe; `onlyCurrent=false` includes
//!   them and shows future-dated rows.
//! - Rate limiting: 503 (or 429) with `Retry-After` in seconds.
//!
//! Expectations are derived from the reports the fake served, never copied from output.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use jiff::ToSpan as _;
use jiff::civil::Date;
use serde_json::{Map, Value, json};

use crate::provider_common::{self, Directory, assert_fetch_error, assert_mentions, today_in};

const TIME_ZONE: &str = "America/Denver";
const DOMAIN: &str = "acme";
const API_KEY: &str = "bhr-9f3c1a2e7Q2vK9xR4mT8wL1zHc4tY8wE1uB6mA3q";
const ZERO_DATE: &str = "0000-00-00";

/// A row of the job information table, in effect from `from`.
#[derive(Clone)]
struct Job {
    from: Date,
    title: &'static str,
    department: &'static str,
    division: &'static str,
    location: &'static str,
    supervisor: Option<u32>,
}

/// An employee as BambooHR stores them: plain fields and two historical tables.
#[derive(Clone)]
struct Employee {
    id: u32,
    number: String,
    first: &'static str,
    last: &'static str,
    preferred: &'static str,
    work_email: Option<&'static str>,
    /// The account status: `Active` or `Inactive`.
    status: &'static str,
    hire: Option<Date>,
    termination: Option<Date>,
    birth: Option<Date>,
    jobs: Vec<Job>,
    /// The employment status table: (effective date, status).
    employment: Vec<(Date, &'static str)>,
}

/// The row in effect: today's with `only_current`, else the latest, future-dated included.
fn in_effect<T>(
    rows: &[T],
    from: impl Fn(&T) -> Date,
    only_current: bool,
    today: Date,
) -> Option<&T> {
    rows.iter()
        .filter(|r| !only_current || from(r) <= today)
        .max_by_key(|r| from(r))
}

fn date_value(d: Option<Date>) -> Value {
    json!(d.map_or(ZERO_DATE.to_string(), |d| d.to_string()))
}

/// One report value, or None for a field alias BambooHR does not know.
fn report_value(
    e: &Employee,
    all: &[Employee],
    alias: &str,
    only_current: bool,
    today: Date,
) -> Option<Value> {
    let job = in_effect(&e.jobs, |j| j.from, only_current, today);
    let job_field = |f: fn(&Job) -> Value| job.map_or(Value::Null, f);
    Some(match alias {
        "employeeNumber" => json!(e.number),
        "firstName" => json!(e.first),
        "lastName" => json!(e.last),
        "preferredName" => json!(e.preferred),
        "workEmail" => e.work_email.map_or(Value::Null, |m| json!(m)),
        "status" => json!(e.status),
        "hireDate" => date_value(e.hire),
        "terminationDate" => date_value(e.termination),
        "dateOfBirth" => date_value(e.birth),
        "jobTitle" => job_field(|j| json!(j.title)),
        "department" => job_field(|j| json!(j.department)),
        "division" => job_field(|j| json!(j.division)),
        "location" => job_field(|j| json!(j.location)),
        "supervisorEId" => {
            job_field(|j| json!(j.supervisor.map(|s| s.to_string()).unwrap_or_default()))
        }
        "supervisorEmail" => match job {
            None => Value::Null,
            Some(j) => json!(
                j.supervisor
                    .and_then(|s| all.iter().find(|o| o.id == s))
                    .and_then(|o| o.work_email)
                    .unwrap_or_default()
            ),
        },
        "employmentHistoryStatus" => in_effect(&e.employment, |r| r.0, only_current, today)
            .map_or(Value::Null, |r| json!(r.1)),
        _ => return None,
    })
}

/// A request as the fake saw it.
#[derive(Clone, Debug)]
struct Seen {
    at: Instant,
    status: u16,
    only_current: Option<String>,
    fields: Vec<String>,
    content_type: Vec<String>,
    format: Option<String>,
    accept: Option<String>,
    filter_duplicates: Option<String>,
}

struct Bamboo {
    employees: Vec<Employee>,
    today: Date,
    /// Fields the API key's user may not see.
    hidden: HashSet<&'static str>,
    /// Statuses the next requests get instead of an answer, each with `Retry-After: 1`.
    throttle: VecDeque<u16>,
    requests: Vec<Seen>,
    /// The last report served, by `onlyCurrent`.
    served: HashMap<bool, Value>,
}

type Shared = Arc<Mutex<Bamboo>>;

fn answer(b: &mut Bamboo, mut seen: Seen, status: StatusCode, resp: Response) -> Response {
    seen.status = status.as_u16();
    b.requests.push(seen);
    let (mut parts, body) = resp.into_parts();
    parts.status = status;
    Response::from_parts(parts, body)
}

async fn report(
    State(s): State<Shared>,
    Path(company): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut b = s.lock().unwrap();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type: Vec<String> = headers
        .get_all("content-type")
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .collect();
    let parsed: Option<Value> = serde_json::from_str(&body).ok();
    let fields: Vec<String> = parsed
        .as_ref()
        .and_then(|p| p["fields"].as_array())
        .map(|a| {
            a.iter()
                .map(|f| f.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    let seen = Seen {
        at: Instant::now(),
        status: 0,
        only_current: q.get("onlyCurrent").cloned(),
        fields: fields.clone(),
        content_type: content_type.clone(),
        format: q.get("format").cloned(),
        accept: header("accept"),
        filter_duplicates: parsed
            .as_ref()
            .and_then(|p| p["filterDuplicates"].as_str())
            .map(str::to_string),
    };
    if company != DOMAIN {
        return answer(
            &mut b,
            seen,
            StatusCode::NOT_FOUND,
            "Page not found".into_response(),
        );
    }
    let user = header("authorization")
        .and_then(|a| a.strip_prefix("Basic ").map(str::to_string))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|up| up.split_once(':').map(|(u, _)| u.to_string()));
    if user.as_deref() != Some(API_KEY) {
        // Deliberately hostile: echoes the key it was sent, so the test proves Roster masks it.
        let msg = format!("Invalid API key: {}", user.unwrap_or_default());
        let mut resp = msg.clone().into_response();
        resp.headers_mut()
            .insert("x-bamboohr-error-message", msg.parse().unwrap());
        resp.headers_mut().insert(
            "www-authenticate",
            "Basic realm=\"BambooHR\"".parse().unwrap(),
        );
        return answer(&mut b, seen, StatusCode::UNAUTHORIZED, resp);
    }
    if let Some(status) = b.throttle.pop_front() {
        let mut resp = "Service Unavailable".into_response();
        resp.headers_mut()
            .insert("retry-after", "1".parse().unwrap());
        let status = StatusCode::from_u16(status).unwrap();
        return answer(&mut b, seen, status, resp);
    }
    // Anything but exactly `application/json` is read as XML.
    if content_type.join(", ") != "application/json" {
        return answer(
            &mut b,
            seen,
            StatusCode::BAD_REQUEST,
            "Malformed XML".into_response(),
        );
    }
    let json_out = match q.get("format") {
        Some(f) => f.eq_ignore_ascii_case("json"),
        None => header("accept").as_deref() == Some("application/json"),
    };
    if !json_out {
        return answer(
            &mut b,
            seen,
            StatusCode::NOT_FOUND,
            "Report format not found".into_response(),
        );
    }
    if parsed.is_none() || fields.is_empty() || fields.len() > 400 {
        return answer(
            &mut b,
            seen,
            StatusCode::BAD_REQUEST,
            "Bad request".into_response(),
        );
    }
    let only_current = !matches!(
        q.get("onlyCurrent").map(String::as_str),
        Some("false" | "0")
    );
    let today = b.today;
    let visible: Vec<&String> = fields
        .iter()
        .filter(|f| !b.hidden.contains(f.as_str()))
        .filter(|f| report_value(&b.employees[0], &b.employees, f, true, today).is_some())
        .collect();
    let employees: Vec<Value> = b
        .employees
        .iter()
        .filter(|e| !only_current || e.hire.is_none_or(|h| h <= today))
        .map(|e| {
            let mut row = Map::new();
            row.insert("id".into(), json!(e.id.to_string()));
            for f in &visible {
                let v = report_value(e, &b.employees, f, only_current, today).unwrap();
                row.insert(f.to_string(), v);
            }
            Value::Object(row)
        })
        .collect();
    let out = json!({
        "title": parsed.as_ref().map_or(Value::Null, |p| p["title"].clone()),
        "fields": visible.iter().map(|f| json!({"id": f, "type": "text", "name": f})).collect::<Vec<_>>(),
        "employees": employees,
    });
    b.served.insert(only_current, out.clone());
    answer(&mut b, seen, StatusCode::OK, Json(out).into_response())
}

fn job(from: Date, title: &'static str, department: &'static str, supervisor: Option<u32>) -> Job {
    Job {
        from,
        title,
        department,
        division: "Acme Inc",
        location: "Salt Lake City",
        supervisor,
    }
}

fn employee(
    id: u32,
    first: &'static str,
    last: &'static str,
    email: &'static str,
    hire: Date,
    first_job: Job,
) -> Employee {
    Employee {
        id,
        number: format!("E-{id:04}"),
        first,
        last,
        preferred: "",
        work_email: Some(email),
        status: "Active",
        hire: Some(hire),
        termination: None,
        birth: Some(
            Date::new(
                1970 + (id % 30) as i16,
                1 + (id % 12) as i8,
                1 + (id % 28) as i8,
            )
            .unwrap(),
        ),
        jobs: vec![first_job],
        employment: vec![(hire, "Full-Time")],
    }
}

/// A small company: a CEO and a VP, an accountant with a promotion entered for next month,
/// a contractor, a pre-hire, people who left or are leaving, a part-timer on a tenant
/// status, and one without a work email.
fn company(today: Date) -> Vec<Employee> {
    let d = |n: i64| today.checked_add(n.days()).unwrap();
    let mut v = Vec::new();
    v.push(employee(
        1,
        "Dana",
        "Whitfield",
        "Dana.Whitfield@Acme.example",
        d(-2000),
        job(d(-2000), "Chief Executive Officer", "Leadership", None),
    ));
    v.push(employee(
        17,
        "Luis",
        "Moreno",
        "luis.moreno@acme.example",
        d(-1500),
        job(d(-1500), "VP Finance", "Finance", Some(1)),
    ));

    // Stray spaces; a promotion entered ahead of time: today's title is the old one.
    let mut priya = employee(
        104,
        " Priya ",
        "Raman",
        "Priya.Raman@Acme.example",
        d(-700),
        job(d(-700), "Senior Accountant", "Finance", Some(17)),
    );
    priya.jobs.push(Job {
        title: "Finance Manager",
        supervisor: Some(1),
        ..job(d(20), "", "Finance", None)
    });
    v.push(priya);

    // A contractor by employment status, no birth date on file, no division.
    let mut tom = employee(
        311,
        "Tomás",
        "Ortega",
        "tom.ortega@acme.example",
        d(-300),
        Job {
            division: "",
            location: "Remote",
            ..job(d(-300), "Data Engineer", "Engineering", Some(17))
        },
    );
    tom.preferred = "Tom";
    tom.birth = None;
    tom.employment = vec![(d(-300), "Contractor")];
    v.push(tom);

    // A pre-hire: Active, hired next month; job information and employment status are
    // dated on the hire date, so they exist only as future-dated rows.
    v.push(employee(
        420,
        "Sam",
        "Nakamura",
        "sam.nakamura@acme.example",
        d(21),
        job(d(21), "Staff Accountant", "Finance", Some(104)),
    ));

    // Left: Inactive, with a termination date and a Terminated employment status.
    let mut marco = employee(
        58,
        "Marco",
        "Lee",
        "marco.lee@acme.example",
        d(-900),
        job(d(-900), "Support Engineer", "Customer Success", Some(17)),
    );
    marco.status = "Inactive";
    marco.termination = Some(d(-60));
    marco.employment.push((d(-60), "Terminated"));
    v.push(marco);

    // Leaving: still Active, the termination (and its Terminated status row) ahead.
    let mut ana = employee(
        77,
        "Ana",
        "Silva",
        "ana.silva@acme.example",
        d(-900),
        job(d(-900), "Payroll Specialist", "Finance", Some(17)),
    );
    ana.termination = Some(d(10));
    ana.employment = vec![(d(-900), "Part-Time"), (d(10), "Terminated")];
    v.push(ana);

    // A status the tenant defined, and no location.
    let mut kai = employee(
        120,
        "Kai",
        "Berg",
        "kai.berg@acme.example",
        d(-100),
        Job {
            location: "",
            ..job(d(-100), "Warehouse Associate", "Operations", Some(1))
        },
    );
    kai.employment = vec![(d(-100), "Temporary")];
    v.push(kai);

    // No work email: a data problem, never in the directory.
    let mut kim = employee(
        99,
        "Kim",
        "Nomail",
        "",
        d(-50),
        job(d(-50), "Analyst", "Finance", Some(17)),
    );
    kim.work_email = None;
    v.push(kim);
    v
}

/// A config directory reading the fake through the built-in BambooHR spec and mapping.
type Env = provider_common::Env<Shared>;

fn today() -> Date {
    today_in(TIME_ZONE)
}

async fn env(domain: &str, api_key: &str) -> Env {
    let today = today();
    let fake = Bamboo {
        employees: company(today),
        today,
        hidden: HashSet::new(),
        throttle: VecDeque::new(),
        requests: Vec::new(),
        served: HashMap::new(),
    };
    let app = axum::Router::new().route("/{company}/api/v1/reports/custom", post(report));
    let (env, addr) = provider_common::Env::serving(fake, app).await;
    // The subdomain stays a template, so the test sees the setting reach the URL.
    let base = format!("http://{addr}/{{settings.company_domain}}/api/v1");
    env.override_base_url("bamboohr", &base);
    env.write_secret("bamboohr_api_key", api_key);
    env.write_roster(
        TIME_ZONE,
        &format!(
            "  bamboohr:\n    provider: bamboohr\n    credentials:\n      api_key: {{file: secrets/bamboohr_api_key}}\n    settings:\n      company_domain: {domain}\n"
        ),
    );
    env
}

impl Env {
    fn requests(&self) -> Vec<Seen> {
        self.fake().requests.clone()
    }
}

/// A report value as the mapping reads it: trimmed; "", null and the zero date are no value.
fn value(v: &Value) -> Option<String> {
    let s = v.as_str()?.trim();
    (!s.is_empty() && s != ZERO_DATE).then(|| s.to_string())
}

/// The people the served reports must produce: (work email, expected row), in the column
/// order of `PEOPLE_COLUMNS`; and the emails of those who must be absent.
const PEOPLE_COLUMNS: &str = "employee_id, first_name, last_name, preferred_name, display_name,
    job_title, department, sub_company, office, manager_id, manager_email, employment_type,
    worker_type, status, start_date, end_date, birth_date, sources, custom['employee_number']";

fn expected_people(
    served: &HashMap<bool, Value>,
    today: Date,
) -> (Vec<(String, Vec<String>)>, Vec<String>) {
    let full = served[&false]["employees"].as_array().unwrap();
    let current = served[&true]["employees"].as_array().unwrap();
    let kept = |r: &Value| r["status"] == "Active" && value(&r["workEmail"]).is_some();
    let mut people = Vec::new();
    let mut absent = Vec::new();
    for r in full {
        let Some(email) = value(&r["workEmail"]).map(|e| e.to_lowercase()) else {
            continue;
        };
        if r["status"] == "Inactive" {
            absent.push(email);
            continue;
        }
        // Job information and employment status: today's row, else (a pre-hire) the
        // upcoming one.
        let now = current.iter().find(|c| c["id"] == r["id"]);
        let hist = |f: &str| now.and_then(|c| value(&c[f])).or_else(|| value(&r[f]));
        let manager_id = hist("supervisorEId");
        let manager_email = manager_id
            .as_ref()
            .and_then(|m| full.iter().find(|o| o["id"] == json!(m) && kept(o)))
            .and_then(|o| value(&o["workEmail"]))
            .or_else(|| hist("supervisorEmail"))
            .map(|e| e.to_lowercase());
        let employment = hist("employmentHistoryStatus");
        let start = value(&r["hireDate"]);
        let end = value(&r["terminationDate"]);
        let today = today.to_string();
        let status = if start.as_deref().is_some_and(|s| s > today.as_str()) {
            "pre_hire"
        } else if end.as_deref().is_some_and(|e| e < today.as_str()) {
            "terminated"
        } else {
            "active"
        };
        let first = value(&r["firstName"]).unwrap_or_default();
        let last = value(&r["lastName"]).unwrap_or_default();
        let row = vec![
            value(&r["id"]),
            Some(first.clone()),
            Some(last.clone()),
            value(&r["preferredName"]),
            Some(format!("{first} {last}")),
            hist("jobTitle"),
            hist("department"),
            hist("division"),
            hist("location"),
            manager_id,
            manager_email,
            employment.clone(),
            Some(
                if employment.as_deref() == Some("Contractor") {
                    "contractor"
                } else {
                    "employee"
                }
                .into(),
            ),
            Some(status.into()),
            start,
            end,
            value(&r["dateOfBirth"]),
            Some("[bamboohr]".into()),
            value(&r["employeeNumber"]),
        ];
        people.push((
            email,
            row.into_iter().map(Option::unwrap_or_default).collect(),
        ));
    }
    (people, absent)
}

/// Every person the served reports describe is in the directory with every mapped field;
/// Inactive employees are not. Returns the directory for more checks.
fn check_directory(e: &Env) -> Directory {
    let today = today();
    let served = e.fake().served.clone();
    let (people, absent) = expected_people(&served, today);
    let dir = e.directory();
    for (email, expected) in &people {
        let rows = dir.query(&format!(
            "select {PEOPLE_COLUMNS} from people where work_email = '{email}'"
        ));
        assert_eq!(rows.len(), 1, "{email} missing");
        assert_eq!(&rows[0], expected, "{email}");
    }
    for email in &absent {
        assert!(
            dir.query(&format!(
                "select 1 from people where work_email = '{email}'"
            ))
            .is_empty(),
            "{email} is Inactive but listed"
        );
    }
    assert_eq!(
        dir.query("select count(*) from people")[0][0],
        people.len().to_string()
    );
    dir
}

#[tokio::test]
async fn a_sync_lands_every_employee_with_managers_pre_hires_and_contractors() {
    let e = env(DOMAIN, API_KEY).await;
    let r = e.sync().await.unwrap();
    assert!(r.published, "{r:?}");
    // One of the eight has no work email (a data problem): above the built-in 5% warning.
    assert_eq!(
        r.coverage,
        ["`work_email` is empty in 1 of 8 records (12%, allowed 5%)"]
    );

    // What the fake saw: JSON asked for as BambooHR wants it, every field the mapping reads.
    let requests = e.requests();
    assert!(!requests.is_empty());
    for s in &requests {
        assert_eq!(s.status, 200, "{s:?}");
        assert_eq!(
            s.content_type,
            ["application/json"],
            "one exact Content-Type: {s:?}"
        );
        assert_eq!(s.format.as_deref(), Some("json"));
        assert_eq!(s.accept.as_deref(), Some("application/json"));
        assert_eq!(s.filter_duplicates.as_deref(), Some("yes"));
    }
    let full = requests
        .iter()
        .find(|s| s.only_current.as_deref() == Some("false"))
        .expect("a report with onlyCurrent=false, which lists pre-hires");
    for f in [
        "employeeNumber",
        "firstName",
        "lastName",
        "preferredName",
        "workEmail",
        "jobTitle",
        "department",
        "division",
        "location",
        "supervisorEId",
        "supervisorEmail",
        "employmentHistoryStatus",
        "status",
        "hireDate",
        "terminationDate",
        "dateOfBirth",
    ] {
        assert!(full.fields.iter().any(|x| x == f), "{f} not requested");
    }

    let dir = check_directory(&e);

    // The cases the seeds promise, spelled out (each is also covered above).
    let one = |email: &str, col: &str| dir.row_of(email, col).remove(0);
    let today = today();
    // The pre-hire is in, with the role and manager dated on their first day.
    assert_eq!(
        one(
            "sam.nakamura@acme.example",
            "status || '|' || job_title || '|' || department || '|' || manager_email"
        ),
        "pre_hire|Staff Accountant|Finance|priya.raman@acme.example"
    );
    // A promotion entered for next month does not show before it happens.
    assert_eq!(
        one(
            "priya.raman@acme.example",
            "job_title || '|' || manager_email || '|' || first_name"
        ),
        "Senior Accountant|luis.moreno@acme.example|Priya"
    );
    // Contractors are an employment status; a tenant's own status is an employee.
    assert_eq!(
        one(
            "tom.ortega@acme.example",
            "worker_type || '|' || employment_type"
        ),
        "contractor|Contractor"
    );
    assert_eq!(
        one(
            "kai.berg@acme.example",
            "worker_type || '|' || employment_type"
        ),
        "employee|Temporary"
    );
    // Leaving: active until the termination date; the future Terminated row is not shown yet.
    assert_eq!(
        one(
            "ana.silva@acme.example",
            "status || '|' || end_date || '|' || employment_type"
        ),
        format!("active|{}|Part-Time", today.checked_add(10.days()).unwrap())
    );
    assert_eq!(
        one(
            "dana.whitfield@acme.example",
            "coalesce(manager_email, '-')"
        ),
        "-"
    );
    assert_eq!(
        dir.query("select kind, record_key from data_problems where kind = 'missing_work_email'"),
        [["missing_work_email", "99"]]
    );
    assert_eq!(
        dir.query("select depth from org_chart where work_email = 'sam.nakamura@acme.example'"),
        [["3"]]
    );
}

#[tokio::test]
async fn a_wrong_api_key_is_a_clear_error_without_the_key() {
    let wrong = "bhr-WRONG-7d1e3a5c0b9f4c2e8a6d";
    let e = env(DOMAIN, wrong).await;
    assert_fetch_error(
        &e.sync().await.unwrap_err(),
        &[
            "source `bamboohr`",
            "HTTP 401",
            "invalid credentials",
            "`api_key`",
            "update the secrets",
            "nothing was applied",
        ],
        &[wrong],
    );
    // Not retried: BambooHR counts failed logins against its rate limit.
    assert_eq!(e.requests().len(), 1, "{:?}", e.requests());
    assert!(!e.directory_path().exists());
}

#[tokio::test]
async fn a_wrong_company_domain_says_to_check_the_subdomain() {
    let e = env("acne", API_KEY).await;
    let msg = e.sync().await.unwrap_err().to_string();
    assert_mentions(
        &msg,
        &["HTTP 404", "/acne/api/v1/reports/custom", "subdomain"],
    );
}

#[tokio::test]
async fn rate_limiting_by_503_and_429_with_retry_after_is_waited_out() {
    let e = env(DOMAIN, API_KEY).await;
    e.fake().throttle.extend([503, 429]);
    let r = e.sync().await.unwrap();
    assert!(r.published);
    let requests = e.requests();
    let statuses: Vec<u16> = requests.iter().map(|s| s.status).collect();
    assert_eq!(&statuses[..3], [503, 429, 200], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 200), "{statuses:?}");
    // Each retry came once the second the server asked for had passed: not at once, and not
    // after the spec's own backoff either (2s doubling with jitter, so 2-4s before the third).
    for w in requests[..3].windows(2) {
        let waited = w[1].at - w[0].at;
        assert!(
            (Duration::from_millis(950)..Duration::from_millis(1900)).contains(&waited),
            "waited {waited:?}"
        );
    }
    check_directory(&e);
}

#[tokio::test]
async fn fields_the_key_may_not_see_are_left_out_and_coverage_warns() {
    // The key's user may not see hire dates nor supervisor ids: BambooHR leaves them out
    // with a 200. Managers still resolve by supervisor email; the empty start dates warn.
    let e = env(DOMAIN, API_KEY).await;
    e.fake().hidden.extend(["hireDate", "supervisorEId"]);
    let r = e.sync().await.unwrap();
    assert!(r.published);
    assert!(
        r.coverage
            .iter()
            .any(|c| c.contains("`start_date` is empty")),
        "{:?}",
        r.coverage
    );
    let dir = check_directory(&e);
    assert_eq!(
        dir.query(
            "select count(*) from people where start_date is not null or manager_id is not null"
        ),
        [["0"]]
    );
    assert_eq!(
        dir.query("select manager_email from people where work_email = 'priya.raman@acme.example'"),
        [["luis.moreno@acme.example"]]
    );
}
