//! Kenjo end to end: a fake Kenjo API v1 on 127.0.0.1:0, the built-in `kenjo` spec (only
//! `base_url` changed) and mapping, a real DuckDB directory read back read-only. Every
//! expectation is derived from the JSON the fake served.
//!
//! What the fake reproduces (from ../shared/provider-specs/kenjo/kenjo-openapi.yaml):
//! - `POST /auth/login` with `{"apiKey": ...}` answers `{"token": "Bearer <jwt>",
//!   "X-Expires-After": <timestamp>}`: the token already carries its `Bearer ` prefix, and every
//!   other endpoint wants exactly `Authorization: Bearer <jwt>` (a doubled prefix is a 401,
//!   like an unknown or expired token; Kenjo documents that 401 without a body). A wrong key is
//!   a 401, a body without `apiKey` a 400 `{code, message}`.
//! - Employees come as three sections, each `{"data": [...]}` and without paging: accounts
//!   (email, externalId, language and the `isActive` boolean), personals and works, in
//!   different orders, to be joined on `_id`. Not every employee has a works section.
//! - Companies, offices, departments and teams are bare JSON arrays.
//! - `GET /compensation/contracts`: `offset` is a 1-based PAGE number, `limit` only 25, 50 or
//!   100 (anything else is a 400), `{data, metadata: {count, offset, limit, total}}`.
//!   `GET /compensation/contract-types`: `{data, metadata}`, no paging parameters.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use jiff::civil::{Date, date};
use jiff::{Span, ToSpan as _};
use serde_json::{Value, json};

use crate::provider_common::{
    self, assert_fetch_error, assert_people, assert_published, date as day, text, today_in, trimmed,
};

/// The deployment's time zone (roster.yaml `time_zone`).
const TIME_ZONE: &str = "UTC";

/// The key the fake accepts.
const API_KEY: &str = "5b8555a77b62b223d27593bcd15e172c2936590391fe4dea8e31f9b9";
/// A revoked key; it must never show up in an error.
const REVOKED_KEY: &str = "kenjo-revoked-CANARY-7d1e0c55a2b94f1e";

/// More than 100 employees: the contracts list then takes two pages at Kenjo's largest limit.
const PEOPLE: usize = 130;
/// Activated, starting in three weeks: a pre-hire.
const PRE_HIRE: usize = 3;
/// Created but not activated yet, starting in six weeks (Kenjo creates employees inactive).
const NOT_ACTIVATED: usize = 4;
/// Deactivated: has left.
const LEAVER: usize = 6;
/// No office and no department on the works section.
const NO_ORG_UNITS: usize = 8;
/// No employment contract.
const NO_CONTRACT: usize = 9;
/// No works section at all.
const NO_WORK: usize = 10;

const FIRST: &[&str] = &[
    "John", "Anna", "Joaquin", "Elvira", "Lukas", "Marta", "Sven", "Chloe", "Mehmet", "Ines",
    "Piotr",
];
const LAST: &[&str] = &[
    "Doe",
    "Kalevnikova",
    "Padrazo",
    "Dos Pasos",
    "Becker",
    "Garcia",
    "Olsen",
    "Martin",
    "Yilmaz",
    "Rossi",
    "Nowak",
    "Sato",
    "Ferreira",
];
const TITLES: &[&str] = &[
    "Backend Engineer",
    "Director",
    "Account Executive",
    "Payroll Specialist",
    " Office Manager ",
    "",
    "Designer",
];

/// One request as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// The path under `/api/v1`.
    path: String,
    query: String,
    authorization: String,
    status: u16,
}

/// The fake's tenant and what it has seen.
#[derive(Default)]
struct Kenjo {
    api_key: String,
    accounts: Vec<Value>,
    personals: Vec<Value>,
    works: Vec<Value>,
    companies: Vec<Value>,
    offices: Vec<Value>,
    departments: Vec<Value>,
    teams: Vec<Value>,
    contracts: Vec<Value>,
    contract_types: Vec<Value>,
    /// Tokens that work (without their `Bearer ` prefix).
    live: HashSet<String>,
    /// A token stops working after this many requests: Kenjo's expiry, compressed.
    token_uses: Option<usize>,
    uses: HashMap<String, usize>,
    /// The `apiKey` of every login attempt.
    logins: Vec<String>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Kenjo>>;

fn kenjo_date(d: Date) -> String {
    format!("{d}T00:00:00.000Z")
}

fn plus(d: Date, span: Span) -> Date {
    d.checked_add(span).unwrap()
}

fn manager_of(i: usize) -> Option<usize> {
    (i > 0).then(|| (i - 1) / 5)
}

fn employee_id(i: usize) -> String {
    format!("10a2db290da29e126a{i:06x}")
}

impl Kenjo {
    /// A tenant of [`PEOPLE`] employees in two companies, three offices and five departments.
    fn tenant() -> Kenjo {
        let today = today_in(TIME_ZONE);
        let companies = vec![
            json!({"_id": "40a2db290da29e126a18789a", "name": "ACME GmbH", "city": "Berlin", "country": "DE"}),
            json!({"_id": "40a2db290da29e126a18789b", "name": "ACME SA", "city": "Madrid", "country": "ES"}),
        ];
        let offices = vec![
            json!({"_id": "50a2db290da29e126a18789a", "name": "ACME Berlin", "companyId": "40a2db290da29e126a18789a",
                   "calendarId": "5b8555a97b62b223d275a176", "street": "Urbanstr. 71", "postalCode": 10967, "city": "Berlin", "country": "DE"}),
            json!({"_id": "50a2db290da29e126a18789b", "name": "ACME Munich", "companyId": "40a2db290da29e126a18789a",
                   "calendarId": "5b8555a97b62b223d275a176", "street": "Leopoldstr. 1", "postalCode": 80802, "city": "Munich", "country": "DE"}),
            json!({"_id": "50a2db290da29e126a18789c", "name": "ACME Madrid", "companyId": "40a2db290da29e126a18789b",
                   "calendarId": "5b8555a97b62b223d275a177", "street": "Manuel Ferrero, 19", "postalCode": 28096, "city": "Madrid", "country": "ES"}),
        ];
        let departments: Vec<Value> = ["Sales", "Marketing", "Tech", "Finance", "Customer Success"]
            .iter()
            .enumerate()
            .map(|(n, name)| json!({"_id": format!("60a2db290da29e126a1878{n:02x}"), "name": name}))
            .collect();
        let teams = vec![
            json!({"_id": "65a2db290da29e126a18789a", "name": "Tech backend"}),
            json!({"_id": "65a2db290da29e126a18789b", "name": "Tech devOps"}),
        ];
        let contract_types: Vec<Value> = [
            ("Permanent", true),
            ("Junior", true),
            ("Senior", true),
            ("External", false),
        ]
        .iter()
        .enumerate()
        .map(|(n, (name, active))| {
            json!({"_id": format!("80a2db290da29e126a1878{n:02x}"), "name": name, "isActive": active})
        })
        .collect();

        let (mut accounts, mut personals, mut works, mut contracts) =
            (vec![], vec![], vec![], vec![]);
        for i in 0..PEOPLE {
            let id = employee_id(i);
            let (first, last) = (FIRST[i % FIRST.len()], LAST[(i * 7) % LAST.len()]);
            let start = match i {
                PRE_HIRE => plus(today, 20.days()),
                NOT_ACTIVATED => plus(today, 40.days()),
                _ => date(
                    2012 + (i % 11) as i16,
                    1 + (i % 12) as i8,
                    1 + (i % 28) as i8,
                ),
            };
            accounts.push(json!({
                "_id": id,
                "email": format!("{first}.{}{i}@Acme.example", last.replace(' ', "")),
                "externalId": if i % 11 == 0 { String::new() } else { format!("E-{i:06}") },
                "language": (["en", "de", "es"][i % 3]),
                "isActive": !matches!(i, NOT_ACTIVATED | LEAVER),
            }));
            personals.push(json!({
                "_id": id,
                "firstName": if i % 7 == 0 { format!(" {first} ") } else { first.to_string() },
                "lastName": last,
                "displayName": format!("{first} {last}"),
                "gender": (["Male", "Female", "Other"][i % 3]),
                "birthdate": kenjo_date(date(1960 + (i % 40) as i16, 1 + (i * 5 % 12) as i8, 1 + (i * 3 % 28) as i8)),
            }));
            let office = &offices[i % offices.len()];
            if i != NO_WORK {
                let mut work = json!({
                    "_id": id,
                    "companyId": office["companyId"],
                    "officeId": office["_id"],
                    "departmentId": departments[i % departments.len()]["_id"],
                    "startDate": kenjo_date(start),
                    "jobTitle": TITLES[i % TITLES.len()],
                    "workPhone": format!("+49 30 {i:07}"),
                    "workMobile": format!("+49 170 {i:07}"),
                    "isAssistant": i % 13 == 0,
                    "reportsToId": manager_of(i).map(employee_id),
                });
                if i % 3 == 0 {
                    work["probationPeriodEnd"] = json!(kenjo_date(plus(start, 6.months())));
                }
                // The tenant keeps teams and last days in custom work fields (API names
                // `c_` + label), which the built-in mapping does not read.
                if i % 4 == 1 {
                    work["c_Team"] = teams[i % teams.len()]["name"].clone();
                }
                if i == LEAVER {
                    work["c_Enddate"] = json!(kenjo_date(plus(today, (-30).days())));
                }
                if i == 7 {
                    work["c_Enddate"] = json!(kenjo_date(plus(today, 45.days())));
                }
                let w = work.as_object_mut().unwrap();
                if i == 0 {
                    w.remove("reportsToId");
                }
                if i == NO_ORG_UNITS {
                    w.remove("officeId");
                    w.remove("departmentId");
                }
                works.push(work);
            }
            if i != NO_CONTRACT {
                contracts.push(json!({
                    "_id": format!("70a2db290da29e126a{i:06x}"),
                    "_userId": id,
                    "_companyId": office["companyId"],
                    // Zone-less, unlike the employee sections.
                    "startDate": format!("{start}T00:00:00"),
                    "contractTypeId": contract_types[i % contract_types.len()]["_id"],
                }));
            }
        }
        // The sections come in different orders: only `_id` ties them together.
        personals.reverse();
        works.rotate_left(17);
        contracts.reverse();
        Kenjo {
            api_key: API_KEY.into(),
            accounts,
            personals,
            works,
            companies,
            offices,
            departments,
            teams,
            contracts,
            contract_types,
            ..Kenjo::default()
        }
    }

    fn answer(
        &mut self,
        method: &Method,
        path: &str,
        query: &str,
        authorization: &str,
        body: &[u8],
    ) -> (u16, Option<Value>) {
        if path == "/auth/login" && method == Method::POST {
            return self.login(body);
        }
        if method != Method::GET {
            return (404, Some(json!({"code": 404, "message": "Not found"})));
        }
        // Exactly the token the login returned, with its one `Bearer `.
        let Some(jwt) = authorization
            .strip_prefix("Bearer ")
            .filter(|t| self.live.contains(*t))
            .map(str::to_string)
        else {
            return (401, None);
        };
        if let Some(max) = self.token_uses {
            let n = self.uses.entry(jwt.clone()).or_default();
            *n += 1;
            if *n > max {
                self.live.remove(&jwt);
                return (401, None);
            }
        }
        let q: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let wrapped = |v: &[Value]| Some(json!({ "data": v }));
        let bare = |v: &[Value]| Some(Value::Array(v.to_vec()));
        match path {
            "/employees/accounts" => (200, wrapped(&self.accounts)),
            "/employees/personals" => (200, wrapped(&self.personals)),
            "/employees/works" => (200, wrapped(&self.works)),
            "/companies" => (200, bare(&self.companies)),
            "/offices" => (200, bare(&self.offices)),
            "/departments" => (200, bare(&self.departments)),
            "/teams" => (200, bare(&self.teams)),
            "/compensation/contracts" => self.contracts_page(&q),
            "/compensation/contract-types" => {
                let n = self.contract_types.len();
                (
                    200,
                    Some(json!({
                        "data": self.contract_types,
                        "metadata": {"count": n, "offset": 1, "limit": 50, "total": n}
                    })),
                )
            }
            _ => (404, Some(json!({"code": 404, "message": "Not found"}))),
        }
    }

    fn login(&mut self, body: &[u8]) -> (u16, Option<Value>) {
        let key = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|b| b["apiKey"].as_str().map(str::to_string));
        let Some(key) = key else {
            return (
                400,
                Some(json!({"code": 400, "message": "The param 'apiKey' is not valid."})),
            );
        };
        self.logins.push(key.clone());
        if key != self.api_key {
            // Echoes the refused key: the engine must mask a secret the server repeats.
            return (
                401,
                Some(json!({"code": 401, "message": format!("The API key {key} is not valid.")})),
            );
        }
        let jwt = format!(
            "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJhY2Nlc3NUeXBlIjoiQXBpQWNjZXNzIn0.c2lnLTA{}",
            self.logins.len()
        );
        self.live.insert(jwt.clone());
        let expires = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_hours(48))
            .unwrap();
        (
            200,
            Some(json!({"token": format!("Bearer {jwt}"), "X-Expires-After": expires.to_string()})),
        )
    }

    /// `offset` is a page number from 1, `limit` one of 25, 50 and 100 (default 50).
    fn contracts_page(&self, q: &HashMap<String, String>) -> (u16, Option<Value>) {
        let bad = |param: &str| {
            (
                400,
                Some(json!({"code": 400, "message": format!("The param '{param}' is not valid.")})),
            )
        };
        let Ok(page) = q.get("offset").map_or(Ok(1), |v| v.parse::<usize>()) else {
            return bad("offset");
        };
        let limit = q.get("limit").map_or(Ok(50), |v| v.parse::<usize>());
        let Ok(limit @ (25 | 50 | 100)) = limit else {
            return bad("limit");
        };
        if page == 0 {
            return bad("offset");
        }
        let data: Vec<Value> = self
            .contracts
            .iter()
            .skip((page - 1) * limit)
            .take(limit)
            .cloned()
            .collect();
        (
            200,
            Some(json!({
                "data": data,
                "metadata": {"count": data.len(), "offset": page, "limit": limit, "total": self.contracts.len()}
            })),
        )
    }
}

async fn api(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path()
        .strip_prefix("/api/v1")
        .unwrap_or(uri.path())
        .to_string();
    let query = uri.query().unwrap_or_default().to_string();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut k = s.lock().unwrap();
    let (status, reply) = k.answer(&method, &path, &query, &authorization, &body);
    k.seen.push(Seen {
        method: method.to_string(),
        path,
        query,
        authorization,
        status,
    });
    let status = StatusCode::from_u16(status).unwrap();
    match reply {
        Some(v) => (status, axum::Json(v)).into_response(),
        None => status.into_response(),
    }
}

/// A config directory reading the fake through the built-in spec and mapping.
type Env = provider_common::Env<Shared>;

impl Env {
    /// A fake Kenjo serving `kenjo`, and a config directory reading it with the built-in spec
    /// and mapping; `source_extra` is appended to the source's block in roster.yaml.
    async fn start(kenjo: Kenjo, source_extra: &str) -> Env {
        let (env, addr) =
            provider_common::Env::serving(kenjo, axum::Router::new().fallback(api)).await;
        env.override_base_url("kenjo", &format!("http://{addr}/api/v1"));
        env.write_roster(
            TIME_ZONE,
            &format!(
                "  kenjo:\n    provider: kenjo\n    credentials:\n      api_key: {{file: secrets/kenjo}}\n{source_extra}"
            ),
        );
        env.set_api_key(API_KEY);
        env
    }

    fn set_api_key(&self, key: &str) {
        self.write_secret("kenjo", key);
    }
}

fn find<'a>(list: &'a [Value], key: &str, id: &Value) -> Option<&'a Value> {
    list.iter().find(|r| &r[key] == id)
}

const COLUMNS: &str =
    "employee_id, first_name, last_name, preferred_name, display_name, work_email,
    job_title, department, team, sub_company, manager_id, manager_email, office, legal_entity,
    employment_type, worker_type, status, hris_status, start_date, end_date, probation_end_date,
    birth_date, custom['external_id'], sources, employee_ids['kenjo']";

/// Positions in a row of [`COLUMNS`].
const DEPARTMENT: usize = 7;
const MANAGER_EMAIL: usize = 11;
const OFFICE: usize = 12;
const LEGAL_ENTITY: usize = 13;
const EMPLOYMENT_TYPE: usize = 14;
const STATUS: usize = 16;
const START_DATE: usize = 18;

/// The worker type the built-in mapping reads from a contract type's name.
fn worker_type_of(contract_type: &str) -> &'static str {
    match contract_type.trim().to_lowercase().as_str() {
        "external" | "freelance" | "freelancer" | "contractor" | "consultant" => "contractor",
        _ => "employee",
    }
}

/// What the directory must hold for each account the fake serves, activated or not (an
/// account not activated is a pre-hire before its start date and a leaver after it): every
/// mapped field from the joined sections and looked-up org units. Keyed by work email.
fn expected_people(k: &Kenjo) -> BTreeMap<String, Vec<String>> {
    let today = today_in(TIME_ZONE).to_string();
    let listed = |id: &Value| find(&k.accounts, "_id", id).is_some();
    let mut out = BTreeMap::new();
    for a in &k.accounts {
        let id = &a["_id"];
        let none = Value::Null;
        let personal = find(&k.personals, "_id", id).unwrap_or(&none);
        let work = find(&k.works, "_id", id).unwrap_or(&none);
        let contract = find(&k.contracts, "_userId", id).unwrap_or(&none);
        let name = |list: &[Value], key: &Value| {
            find(list, "_id", key)
                .map(|r| text(&r["name"]))
                .unwrap_or_default()
        };
        let manager = &work["reportsToId"];
        let manager_email = if listed(manager) {
            trimmed(&find(&k.accounts, "_id", manager).unwrap()["email"]).to_lowercase()
        } else {
            String::new()
        };
        let start = day(&work["startDate"]);
        let email = trimmed(&a["email"]).to_lowercase();
        let activated = a["isActive"] == true;
        let started = start.is_empty() || start <= today;
        let contract_type = name(&k.contract_types, &contract["contractTypeId"]);
        out.insert(
            email.clone(),
            vec![
                text(id),
                trimmed(&personal["firstName"]),
                trimmed(&personal["lastName"]),
                String::new(), // preferred_name: Kenjo has none
                trimmed(&personal["displayName"]),
                email,
                trimmed(&work["jobTitle"]),
                name(&k.departments, &work["departmentId"]),
                String::new(), // team: no employee section carries a team id
                String::new(), // sub_company: none in Kenjo
                text(manager),
                manager_email,
                name(&k.offices, &work["officeId"]),
                name(&k.companies, &work["companyId"]),
                contract_type.clone(),
                worker_type_of(&contract_type).into(),
                match (activated, started) {
                    (_, false) => "pre_hire",
                    (true, true) => "active",
                    (false, true) => "terminated",
                }
                .into(),
                if activated { "active" } else { "inactive" }.into(),
                start,
                String::new(), // end_date: Kenjo has none
                day(&work["probationPeriodEnd"]),
                day(&personal["birthdate"]),
                trimmed(&a["externalId"]),
                "[kenjo]".into(),
                text(id),
            ],
        );
    }
    out
}

#[tokio::test]
async fn a_kenjo_sync_assembles_every_employee_from_its_sections_field_by_field() {
    let env = Env::start(Kenjo::tenant(), "").await;
    let r = env.sync().await.unwrap();
    assert_published(&r);

    let k = env.fake();
    // Every account is kept: an inactive one is a pre-hire or a leaver by its start date,
    // which only the directory (knowing today) decides.
    assert_eq!(
        (r.run.records, r.run.kept, r.run.excluded, r.run.failed),
        (PEOPLE as u64, PEOPLE as u64, 0, 0)
    );

    // Every activated employee, every mapped field as the fake served it.
    let expected = expected_people(&k);
    let actual = env.people_by_email(COLUMNS);
    assert_people(&actual, &expected, COLUMNS);

    // The special cases are really in the data, and landed as they should.
    let email_of = |i: usize| {
        trimmed(&find(&k.accounts, "_id", &json!(employee_id(i))).unwrap()["email"]).to_lowercase()
    };
    let status = |i: usize| actual.get(&email_of(i)).map(|r| r[STATUS].clone());
    assert_eq!(status(PRE_HIRE).as_deref(), Some("pre_hire"));
    assert_eq!(
        status(LEAVER).as_deref(),
        Some("terminated"),
        "a deactivated account that has started is a leaver"
    );
    assert_eq!(
        status(NOT_ACTIVATED).as_deref(),
        Some("pre_hire"),
        "a future hire Kenjo has not activated yet is a pre-hire (the seed's pre-hires)"
    );
    assert_eq!(
        env.query("select count(*) from active_people")[0][0],
        (PEOPLE - 3).to_string(),
        "the leaver and both pre-hires are not active"
    );
    let person = |i: usize| &actual[&email_of(i)];
    assert_eq!(person(NO_ORG_UNITS)[DEPARTMENT], "", "no department");
    assert_eq!(person(NO_ORG_UNITS)[OFFICE], "", "no office");
    assert_ne!(
        person(NO_ORG_UNITS)[LEGAL_ENTITY],
        "",
        "the company still resolves"
    );
    assert_eq!(
        person(NO_CONTRACT)[EMPLOYMENT_TYPE],
        "",
        "no contract, no contract type"
    );
    assert_eq!(
        person(NO_WORK)[START_DATE],
        "",
        "no works section, no start date"
    );
    assert_eq!(
        person(0)[MANAGER_EMAIL],
        "",
        "the top of the organisation has no manager"
    );
    assert_eq!(
        person(1)[MANAGER_EMAIL],
        email_of(0),
        "a manager resolves by Kenjo `_id`"
    );

    // A manager who was deactivated is still the manager Kenjo names (their reports point at
    // a leaver until Kenjo's "reports to" changes); every manager id resolves.
    assert_eq!(person(LEAVER * 5 + 1)[MANAGER_EMAIL], email_of(LEAVER));
    let unresolved =
        env.query("select record_key from data_problems where kind = 'unresolved_manager'");
    assert!(unresolved.is_empty(), "{unresolved:?}");

    // One login; each list read once, with the token exactly as Kenjo returned it (one
    // `Bearer `); contracts paged by page NUMBER at the largest allowed limit.
    assert_eq!(k.logins, vec![API_KEY.to_string()]);
    let reads: Vec<(&str, &str)> = k
        .seen
        .iter()
        .filter(|s| s.path != "/auth/login")
        .map(|s| (s.path.as_str(), s.query.as_str()))
        .collect();
    let mut sorted = reads.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            ("/companies", ""),
            ("/compensation/contract-types", ""),
            ("/compensation/contracts", "offset=1&limit=100"),
            ("/compensation/contracts", "offset=2&limit=100"),
            ("/departments", ""),
            ("/employees/accounts", ""),
            ("/employees/personals", ""),
            ("/employees/works", ""),
            ("/offices", ""),
        ]
    );
    let login = k.seen.iter().find(|s| s.path == "/auth/login").unwrap();
    assert_eq!((login.method.as_str(), login.status), ("POST", 200));
    assert!(
        k.seen
            .iter()
            .filter(|s| s.path != "/auth/login")
            .all(|s| s.status == 200
                && s.authorization.starts_with("Bearer eyJ")
                && k.live.contains(&s.authorization["Bearer ".len()..])),
        "{:?}",
        k.seen
    );
}

#[tokio::test]
async fn a_revoked_api_key_fails_the_sync_says_what_to_do_and_changes_nothing() {
    let env = Env::start(Kenjo::tenant(), "").await;
    env.sync().await.unwrap();
    let before = env.query(&format!(
        "select {COLUMNS} from people order by employee_id"
    ));

    env.set_api_key(REVOKED_KEY);
    assert_fetch_error(
        &env.sync().await.unwrap_err(),
        &[
            "source `kenjo`",
            "POST /api/v1/auth/login",
            "login failed with HTTP 401",
            "invalid credentials",
            "`api_key`",
            "revoked, regenerated or mistyped",
            "update the secrets this source references",
            "nothing was applied",
        ],
        &[REVOKED_KEY, "CANARY"],
    );

    // The rejected key was tried once (no retries of a rejected credential), no list was read
    // with it, and the directory still holds the last good sync.
    let k = env.fake();
    assert_eq!(k.logins.iter().filter(|l| *l == REVOKED_KEY).count(), 1);
    let last_login = k
        .seen
        .iter()
        .rposition(|s| s.path == "/auth/login")
        .unwrap();
    assert_eq!(
        k.seen.len(),
        last_login + 1,
        "nothing after the failed login"
    );
    drop(k);
    assert_eq!(
        env.query(&format!(
            "select {COLUMNS} from people order by employee_id"
        )),
        before
    );
}

#[tokio::test]
async fn an_expired_token_is_renewed_by_one_new_login_mid_sync() {
    let mut kenjo = Kenjo::tenant();
    // The first token dies after five requests; the sync needs nine.
    kenjo.token_uses = Some(5);
    let env = Env::start(kenjo, "").await;
    let r = env.sync().await.unwrap();
    let k = env.fake();
    assert_eq!(r.run.records, PEOPLE as u64);
    assert_eq!(k.logins.len(), 2, "one new login after the 401");
    let rejected: Vec<&Seen> = k.seen.iter().filter(|s| s.status == 401).collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    // The request that was refused is sent again with the new token.
    let refused = k.seen.iter().position(|s| s.status == 401).unwrap();
    assert_eq!(k.seen[refused + 1].path, "/auth/login");
    assert_eq!(k.seen[refused + 2].path, k.seen[refused].path);
    assert_eq!(k.seen[refused + 2].status, 200);
    assert_ne!(
        k.seen[refused + 2].authorization,
        k.seen[refused].authorization
    );
    let expected = expected_people(&k);
    drop(k);
    assert_eq!(
        env.query("select count(*) from people")[0][0],
        expected.len().to_string()
    );
}

#[tokio::test]
async fn a_tenant_maps_its_own_contract_type_names_to_worker_types() {
    // Kenjo has no contractor flag; contract type names are the tenant's. The built-in
    // mapping knows the usual contractor names (External, Freelance, ...); a tenant whose
    // "Junior" contracts are contractors overrides worker_type in roster.yaml, which
    // replaces the built-in field (so External is an employee here).
    let env = Env::start(
        Kenjo::tenant(),
        "    fields:\n      worker_type:\n        path: $.contract_type.name\n        values: {Junior: contractor, Permanent: employee}\n        unmapped: default\n        default: employee\n",
    )
    .await;
    env.sync().await.unwrap();
    let actual = env.people_by_email("worker_type, employment_type");
    let k = env.fake();
    let mut expected = BTreeMap::new();
    for a in &k.accounts {
        let type_name = find(&k.contracts, "_userId", &a["_id"])
            .and_then(|c| find(&k.contract_types, "_id", &c["contractTypeId"]))
            .map(|t| text(&t["name"]));
        let worker_type = if type_name.as_deref() == Some("Junior") {
            "contractor"
        } else {
            "employee"
        };
        expected.insert(
            trimmed(&a["email"]).to_lowercase(),
            vec![worker_type.to_string(), type_name.unwrap_or_default()],
        );
    }
    assert_eq!(actual, expected);
    let contractors = expected.values().filter(|r| r[0] == "contractor").count();
    assert!(contractors > 10, "{contractors} contractors");
}

#[tokio::test]
async fn team_and_end_date_come_from_custom_work_fields_mapped_in_roster_yaml() {
    // Kenjo's API has no team membership and no end date: the README's way out is a custom
    // work field, mapped per source.
    let env = Env::start(
        Kenjo::tenant(),
        "    fields:\n      team: $.work.c_Team\n      end_date: $.work.c_Enddate\n",
    )
    .await;
    assert_published(&env.sync().await.unwrap());
    let actual = env.people_by_email("team, end_date, status");
    let k = env.fake();
    let today = today_in(TIME_ZONE).to_string();
    let mut with_team = 0;
    for a in &k.accounts {
        let work = find(&k.works, "_id", &a["_id"])
            .cloned()
            .unwrap_or(Value::Null);
        let row = &actual[&trimmed(&a["email"]).to_lowercase()];
        assert_eq!(row[0], text(&work["c_Team"]), "{a}");
        assert_eq!(row[1], day(&work["c_Enddate"]), "{a}");
        with_team += usize::from(!row[0].is_empty());
        if row[1].as_str() > today.as_str() {
            assert_eq!(row[2], "active", "leaving later, still active: {a}");
        }
    }
    assert!(with_team > 20, "{with_team}");
    // The leaver's last day is in the past; the one leaving in 45 days is still active.
    let email_of = |i: usize| {
        trimmed(&find(&k.accounts, "_id", &json!(employee_id(i))).unwrap()["email"]).to_lowercase()
    };
    assert_eq!(actual[&email_of(LEAVER)][2], "terminated");
    assert_eq!(actual[&email_of(7)][2], "active");
}
