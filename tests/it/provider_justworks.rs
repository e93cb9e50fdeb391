//! Justworks end to end: a fake Justworks Partner API on 127.0.0.1:0, read through the
//! built-in `providers/justworks.yaml` and `mappings/justworks.yaml` (only the hosts and the
//! declared rate changed), synced into a real DuckDB directory.
//!
//! The fake reproduces what the (third-party reconstructed) vendor description says, see
//! ../shared/provider-specs/justworks:
//! - `POST /oauth/token` (form body, `client_id` and `client_secret` in the body) with
//!   `grant_type=refresh_token`; the answer carries `expires_at` (not `expires_in`) and a NEW
//!   refresh token: each refresh invalidates the previous one. A wrong client is
//!   `401 invalid_client`, a dead refresh token `400 invalid_grant`.
//! - `GET /v1/members` with a Bearer token; `limit` 1..=100 (400 otherwise), an opaque
//!   `cursor` from `next_cursor` (null on the last page), optional `status=active|terminated`.
//!   The server may return fewer members than `limit`; it does here, to make paging visible.
//! - Members as the reconstruction shapes them, with empty values left out (not null):
//!   `name{}`, typed `emails[]`, `department{}`, `manager{id}`, `office{}`, `type`, `active`,
//!   `employment_start_date`, `employment_termination_date`, `date_of_birth`.
//!
//! Expectations are derived from the members the fake serves, never copied from output.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use jiff::ToSpan as _;
use jiff::civil::Date;
use serde_json::{Value, json};

use roster::sync::SyncError;

use crate::provider_common::{self, assert_fetch_error, assert_published, text, today_in};

const TIME_ZONE: &str = "America/New_York";
const CLIENT_ID: &str = "jw-client-5e0a7c22";
const CLIENT_SECRET: &str = "jw-secret-Q8v2Lm7Xc4Rt";
/// The refresh token an admin's approval of the app produced: the credential's value.
const INITIAL_REFRESH: &str = "jw-rt-initial-Hk3Pq9Zs";
const COMPANY_ID: &str = "5e0a7c22-91d4-4b8e-a3f6-0d2c8b1e4f70";
/// Members per page, whatever `limit` asks (the API may return fewer than asked).
const PAGE_CAP: usize = 3;
/// Where Roster keeps the rotated refresh token, in the config directory.
const TOKEN_FILE: &str = "state/tokens/justworks.json";

/// The fake's state.
struct Justworks {
    /// The one refresh token that works now.
    refresh_token: String,
    /// Whether a refresh hands out a new refresh token (and kills the old one).
    rotate: bool,
    /// The access token that works now, and how many more requests it is good for.
    access_token: Option<String>,
    access_uses_left: u32,
    /// Requests an access token is good for (Justworks: about a day; tests: a few).
    access_uses: u32,
    /// Tokens issued so far (numbers the next ones).
    issued: u32,
    members: Vec<Value>,
    /// Every token request: its form fields and whether it came with an Authorization header.
    token_requests: Vec<(HashMap<String, String>, bool)>,
    /// Every members request: its query, and the `next_cursor` it answered with.
    member_requests: Vec<(HashMap<String, String>, Value)>,
    /// Where Roster keeps the rotated refresh token, to check it is saved before use.
    token_file: PathBuf,
    /// An access token was used before the refresh token issued with it was on disk.
    used_before_saved: bool,
    /// The refresh token issued together with each access token.
    refresh_of_access: HashMap<String, String>,
}

type Shared = Arc<Mutex<Justworks>>;

fn oauth_error(status: StatusCode, error: &str, description: String) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(State(s): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let mut j = s.lock().unwrap();
    j.token_requests
        .push((form.clone(), headers.contains_key("authorization")));
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type != "application/x-www-form-urlencoded" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected a form body".into(),
        );
    }
    // The spec marks client_id and client_secret as required form fields.
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed.".into(),
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token".into(),
        );
    }
    let presented = form.get("refresh_token").cloned().unwrap_or_default();
    if presented != j.refresh_token {
        // Deliberately hostile: echoes the token it was sent, so the tests prove that Roster
        // masks it in the error it shows.
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            format!("The refresh token {presented} is invalid, expired or revoked."),
        );
    }
    j.issued += 1;
    let n = j.issued;
    if j.rotate {
        j.refresh_token = format!("jw-rt-rotated-{n}-Xw7c");
    }
    let access = format!("jw-at-{n}-Lm2v");
    j.access_token = Some(access.clone());
    j.access_uses_left = j.access_uses;
    let refresh = j.refresh_token.clone();
    j.refresh_of_access.insert(access.clone(), refresh.clone());
    let expires_at = jiff::Timestamp::now() + 24.hours();
    Json(json!({
        "token_type": "bearer",
        "access_token": access,
        "expires_at": expires_at.to_string(),
        "refresh_token": refresh,
        "scope": "member.detail:read member.employment:read member.dob:read",
    }))
    .into_response()
}

fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("members:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("members:")?
        .parse()
        .ok()
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"errors": [{"code": "invalid_parameter", "message": message}]})),
    )
        .into_response()
}

async fn list_members(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut j = s.lock().unwrap();
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let valid = bearer.is_some() && bearer == j.access_token && j.access_uses_left > 0;
    if !valid {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"errors": [{"code": "unauthorized", "message": "Missing or invalid OAuth token"}]})),
        )
            .into_response();
    }
    j.access_uses_left -= 1;
    let bearer = bearer.unwrap_or_default();
    let paired = j
        .refresh_of_access
        .get(&bearer)
        .cloned()
        .unwrap_or_default();
    let saved = std::fs::read_to_string(&j.token_file).unwrap_or_default();
    if j.rotate && !saved.contains(&format!("\"{paired}\"")) {
        j.used_before_saved = true;
    }
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(l)) if (1..=100).contains(&l) => l,
        Some(_) => return bad_request("limit must be between 1 and 100"),
    };
    let offset = match q.get("cursor") {
        None => 0,
        Some(c) => match decode_cursor(c) {
            Some(o) => o,
            None => return bad_request("invalid cursor"),
        },
    };
    let wanted: Vec<&Value> = match q.get("status").map(String::as_str) {
        None => j.members.iter().collect(),
        Some("active") => j.members.iter().filter(|m| m["active"] == true).collect(),
        Some("terminated") => j.members.iter().filter(|m| m["active"] == false).collect(),
        Some(_) => return bad_request("status must be active or terminated"),
    };
    let items: Vec<Value> = wanted
        .iter()
        .skip(offset)
        .take(limit.min(PAGE_CAP))
        .map(|m| (*m).clone())
        .collect();
    let end = offset + items.len();
    let next = if end < wanted.len() {
        json!(encode_cursor(end))
    } else {
        Value::Null
    };
    j.member_requests.push((q, next.clone()));
    Json(json!({"items": items, "next_cursor": next})).into_response()
}

/// A member id (the reconstruction's ids are UUIDs).
fn uuid(n: u32) -> String {
    format!("8c1d6f0e-3b7a-4e52-9a61-{n:012x}")
}

/// A member with every single value present, reporting to `manager` (a member number).
fn member(
    n: u32,
    given: &str,
    family: &str,
    kind: &str,
    manager: Option<u32>,
    start: Date,
) -> Value {
    let mut m = json!({
        "id": uuid(n),
        "company_id": COMPANY_ID,
        "work_id": format!("E-{}", 1000 + n),
        "name": {
            "given_name": given,
            "family_name": family,
            "full_preferred_name": format!("{given} {family}"),
            "additional_names": [],
        },
        "active": true,
        "employment_location_type": "domestic",
        "type": kind,
        "emails": [
            {"type": "PERSONAL", "address": format!("{}.{}@gmail.example", given.to_lowercase(), family.to_lowercase())},
            {"type": "WORK", "address": format!("{given}.{family}@Acme.example")},
        ],
        "phones": [],
        "job_title": "Account Executive",
        "department": {"id": uuid(900 + n), "name": "Sales"},
        "office": {"id": uuid(800), "name": "New York HQ"},
        "employment_start_date": start.to_string(),
        "date_of_birth": format!("19{}-0{}-1{}", 70 + n % 30, 1 + n % 9, n % 10),
        "created_at": "2021-02-20T14:03:11Z",
        "updated_at": "2024-11-02T09:41:27Z",
    });
    if let Some(mgr) = manager {
        m["manager"] = json!({"id": uuid(mgr)});
    }
    m
}

/// A small company: managers, W-2 employees, 1099 and international contractors, an EOR
/// employee, a pre-hire, a leaver with a future last day, people who left, one without a
/// manager and one without a work email.
fn company(today: Date) -> Vec<Value> {
    let long_ago = today.checked_sub(900.days()).unwrap();
    let last_year = today.checked_sub(400.days()).unwrap();
    let mut v = Vec::new();

    let mut ceo = member(1, "Priya", "Raman", "employee", None, long_ago);
    ceo["job_title"] = json!("Chief Executive Officer");
    ceo["department"] = json!({"id": uuid(901), "name": "Leadership"});
    v.push(ceo);

    let mut cfo = member(2, "Dana", "Whitfield", "employee", Some(1), long_ago);
    cfo["job_title"] = json!("Chief Financial Officer");
    cfo["department"] = json!({"id": uuid(902), "name": "Finance"});
    v.push(cfo);

    // A preferred name, Justworks' own display name, a work email typed lowercase and in
    // mixed case, names with stray spaces.
    let mut alex = member(3, "Alexandra", "Okafor", "employee", Some(2), last_year);
    alex["name"] = json!({
        "given_name": " Alexandra ", "family_name": "Okafor ", "preferred_name": "Alex",
        "full_preferred_name": "Alex Okafor", "additional_names": [],
    });
    alex["emails"] = json!([
        {"type": "work", "address": "Alex.Okafor@Acme.example"},
        {"type": "PERSONAL", "address": "alex@gmail.example"},
    ]);
    alex["job_title"] = json!("Senior Accountant");
    alex["department"] = json!({"id": uuid(902), "name": "Finance"});
    v.push(alex);

    // A 1099 contractor: no date of birth (no member.dob:read for contractors here), no office.
    let mut marco = member(4, "Marco", "Bellini", "contractor", Some(2), last_year);
    marco["job_title"] = json!("Brand Designer");
    marco["department"] = json!({"id": uuid(903), "name": "Marketing"});
    let m = marco.as_object_mut().unwrap();
    m.remove("date_of_birth");
    m.remove("office");
    v.push(marco);

    // An international contractor and an employer-of-record employee abroad.
    let mut ines = member(
        5,
        "Inês",
        "Carvalho",
        "international_contractor",
        Some(1),
        last_year,
    );
    ines["employment_location_type"] = json!("international");
    ines["emails"] = json!([{"type": "WORK", "address": "ines.carvalho@acme.example"}]);
    ines["office"] = json!({"id": uuid(801), "name": "Remote - Portugal"});
    v.push(ines);
    let mut kenji = member(6, "Kenji", "Sato", "employee_eor", Some(1), last_year);
    kenji["employment_location_type"] = json!("international");
    kenji["office"] = json!({"id": uuid(802), "name": "Remote - Japan"});
    v.push(kenji);

    // A pre-hire: approved, starts next month.
    let mut sam = member(
        7,
        "Sam",
        "Nakamura",
        "employee",
        Some(2),
        today.checked_add(30.days()).unwrap(),
    );
    sam["job_title"] = json!("Staff Accountant");
    v.push(sam);

    // Gave notice: still active, the last day is ahead.
    let mut lee = member(8, "Jordan", "Lee", "employee", Some(1), long_ago);
    lee["employment_termination_date"] = json!(today.checked_add(14.days()).unwrap().to_string());
    v.push(lee);

    // Left: terminated, with and without a termination date.
    let mut gone = member(9, "Rita", "Gone", "employee", Some(1), long_ago);
    gone["active"] = json!(false);
    gone["employment_termination_date"] = json!(today.checked_sub(60.days()).unwrap().to_string());
    v.push(gone);
    let mut gone2 = member(10, "Omar", "Former", "contractor", Some(2), long_ago);
    gone2["active"] = json!(false);
    v.push(gone2);

    // No manager on the profile.
    v.push(member(11, "Noor", "Solo", "employee", None, last_year));

    // No work email: a data problem, never in the directory.
    let mut nomail = member(12, "Kim", "Nomail", "employee", Some(1), last_year);
    nomail["emails"] = json!([{"type": "PERSONAL", "address": "kim@gmail.example"}]);
    v.push(nomail);
    v
}

/// A config directory reading the fake through the built-in Justworks spec and mapping.
type Env = provider_common::Env<Shared>;

fn today() -> Date {
    today_in(TIME_ZONE)
}

async fn env(members: Vec<Value>) -> Env {
    let env = provider_common::Env::new();
    let fake = Justworks {
        refresh_token: INITIAL_REFRESH.into(),
        rotate: true,
        access_token: None,
        access_uses_left: 0,
        access_uses: 1000,
        issued: 0,
        members,
        token_requests: Vec::new(),
        member_requests: Vec::new(),
        token_file: env.config.join(TOKEN_FILE),
        used_before_saved: false,
        refresh_of_access: HashMap::new(),
    };
    let app = axum::Router::new()
        .route("/oauth/token", post(token))
        .route("/v1/members", get(list_members));
    let (env, a) = env.serve(fake, app).await;
    env.override_builtin(
        "justworks",
        &[
            ("base_url:", format!("base_url: http://{a}")),
            (
                "  token_url:",
                format!("  token_url: http://{a}/oauth/token"),
            ),
            // The declared 60 a minute would space the five requests of a sync a second
            // apart; the pacing itself is tested in tests/it/fetch.rs.
            (
                "  requests_per_minute:",
                "  requests_per_minute: 6000".into(),
            ),
        ],
    );
    env.write_secret("client_secret", CLIENT_SECRET);
    env.write_secret("refresh_token", INITIAL_REFRESH);
    env.write_roster(
        TIME_ZONE,
        &format!(
            "  justworks:\n    provider: justworks\n    credentials:\n      client_id: {CLIENT_ID}\n      client_secret: {{file: secrets/client_secret}}\n      refresh_token: {{file: secrets/refresh_token}}\n"
        ),
    );
    env
}

impl Env {
    fn token_file(&self) -> PathBuf {
        self.config.join(TOKEN_FILE)
    }
}

/// The work email as the mapping reads it: the WORK (or work) typed address, lowercased.
fn work_email(m: &Value) -> Option<String> {
    m["emails"]
        .as_array()?
        .iter()
        .find(|e| e["type"] == "WORK" || e["type"] == "work")
        .map(|e| text(&e["address"]).trim().to_lowercase())
}

/// Employee or contractor, from the member type (the mapping's table, spelled out here).
fn worker_type(kind: &str) -> &'static str {
    match kind.trim().to_lowercase().as_str() {
        "contractor" | "1099" | "international_contractor" => "contractor",
        _ => "employee",
    }
}

#[tokio::test]
async fn a_sync_lands_every_member_with_worker_type_managers_and_lifecycle_dates() {
    let today = today();
    let served = company(today);
    let e = env(served.clone()).await;
    let r = e.sync().await.unwrap();
    assert_published(&r);
    let dir = e.directory();

    // Paging: the first request has no cursor and asks for 100 (the documented maximum),
    // each next one sends back the previous `next_cursor`, the last answered null; no
    // `status` filter, so terminated members (and their dates) are read too.
    let (requests, token_requests) = {
        let j = e.fake();
        (j.member_requests.clone(), j.token_requests.clone())
    };
    // The listing is read twice: once as `managers` (looked up by member id for each
    // member's manager), then as the members themselves.
    let pages = served.len().div_ceil(PAGE_CAP);
    assert_eq!(requests.len(), 2 * pages);
    assert_eq!(r.run.records as usize, served.len());
    for listing in requests.chunks(pages) {
        let mut previous = Value::Null;
        for (q, next) in listing {
            assert_eq!(q.get("limit").map(String::as_str), Some("100"));
            assert_eq!(
                q.get("cursor").map(|c| json!(c)).unwrap_or(Value::Null),
                previous
            );
            assert!(!q.contains_key("status"), "{q:?}");
            previous = next.clone();
        }
        assert_eq!(previous, Value::Null, "the listing ends on a null cursor");
    }
    // The token request: a refresh-token grant with the client in the form body, no basic auth.
    let (form, had_auth_header) = &token_requests[0];
    assert_eq!(form["grant_type"], "refresh_token");
    assert_eq!(form["refresh_token"], INITIAL_REFRESH);
    assert_eq!(form["client_id"], CLIENT_ID);
    assert!(!had_auth_header);

    // `manager{}` has the member id only: the manager's work_id and work email come from
    // the manager's own record.
    let manager_of = |m: &Value| served.iter().find(|o| o["id"] == m["manager"]["id"]);
    let mut expected_people = 0;
    for m in &served {
        let Some(email) = work_email(m) else {
            continue;
        };
        let rows = dir.query(&format!(
            "select employee_id, first_name, last_name, preferred_name, display_name, job_title,
                    department, manager_id, manager_email, office, employment_type, worker_type,
                    status, start_date, end_date, birth_date, sources, custom['member_active'],
                    custom['member_id'], employee_ids['justworks']
             from people where work_email = '{email}'"
        ));
        if m["active"] == false {
            assert!(rows.is_empty(), "{email} left Justworks but is listed");
            continue;
        }
        expected_people += 1;
        assert_eq!(rows.len(), 1, "{email} missing");
        let start = text(&m["employment_start_date"]);
        let end = text(&m["employment_termination_date"]);
        let status = if start.as_str() > today.to_string().as_str() {
            "pre_hire"
        } else if !end.is_empty() && end.as_str() < today.to_string().as_str() {
            "terminated"
        } else {
            "active"
        };
        let kind = text(&m["type"]);
        let expected = vec![
            // The seed's employee ID: the company's work_id, not the member id.
            text(&m["work_id"]),
            text(&m["name"]["given_name"]).trim().to_string(),
            text(&m["name"]["family_name"]).trim().to_string(),
            text(&m["name"]["preferred_name"]).trim().to_string(),
            text(&m["name"]["full_preferred_name"]).trim().to_string(),
            text(&m["job_title"]),
            text(&m["department"]["name"]),
            manager_of(m)
                .map(|b| text(&b["work_id"]))
                .unwrap_or_default(),
            manager_of(m).and_then(work_email).unwrap_or_default(),
            text(&m["office"]["name"]),
            kind.clone(),
            worker_type(&kind).to_string(),
            status.to_string(),
            start,
            end,
            text(&m["date_of_birth"]),
            "[justworks]".to_string(),
            "true".to_string(),
            text(&m["id"]),
            text(&m["work_id"]),
        ];
        assert_eq!(rows[0], expected, "{email}");
    }
    assert_eq!(
        dir.query("select count(*) from people")[0][0],
        expected_people.to_string()
    );

    // The cases the seeds promise, spelled out (each is also covered by the loop above).
    let one = |email: &str, col: &str| dir.row_of(email, col).remove(0);
    assert_eq!(one("sam.nakamura@acme.example", "status"), "pre_hire");
    assert_eq!(
        one(
            "marco.bellini@acme.example",
            "worker_type || '/' || employment_type"
        ),
        "contractor/contractor"
    );
    assert_eq!(
        one(
            "ines.carvalho@acme.example",
            "worker_type || '/' || employment_type"
        ),
        "contractor/international_contractor"
    );
    assert_eq!(
        one(
            "kenji.sato@acme.example",
            "worker_type || '/' || employment_type"
        ),
        "employee/employee_eor"
    );
    assert_eq!(
        one("jordan.lee@acme.example", "status || ' until ' || end_date"),
        format!("active until {}", today.checked_add(14.days()).unwrap())
    );
    assert_eq!(
        one("alex.okafor@acme.example", "manager_email"),
        "dana.whitfield@acme.example"
    );
    assert_eq!(
        one("noor.solo@acme.example", "coalesce(manager_email, '-')"),
        "-"
    );
    // The member without a work email is a data problem, keyed by their employee ID.
    let problems =
        dir.query("select kind, record_key from data_problems where kind = 'missing_work_email'");
    let nomail = served.iter().find(|m| m["id"] == uuid(12)).unwrap();
    assert_eq!(
        problems,
        [["missing_work_email".to_string(), text(&nomail["work_id"])]]
    );
    // Managers resolve by the manager's work_id: nobody's manager is left unresolved.
    assert!(
        dir.query("select 1 from data_problems where kind = 'unresolved_manager'")
            .is_empty()
    );
    // The org chart: the CEO at the top, Alex two levels down.
    assert_eq!(
        dir.query("select depth from org_chart where work_email = 'alex.okafor@acme.example'"),
        [["2"]]
    );
}

#[tokio::test]
async fn the_rotated_refresh_token_is_saved_before_use_and_the_next_sync_uses_it() {
    let e = env(company(today())).await;
    // Access tokens good for two requests: the four pages need a second refresh mid-sync
    // (a 401, then one re-login), which rotates the refresh token again.
    e.fake().access_uses = 2;
    let r = e.sync().await.unwrap();
    assert!(r.published);
    let (issued, current) = {
        let j = e.fake();
        assert!(
            !j.used_before_saved,
            "an access token was used before its refresh token was saved"
        );
        (j.issued, j.refresh_token.clone())
    };
    let pages = company(today()).len().div_ceil(PAGE_CAP) as u32;
    assert_eq!(
        issued,
        (2 * pages).div_ceil(2),
        "one refresh at the start, then one each time the token ran out (the listing is read twice)"
    );
    let saved = std::fs::read_to_string(e.token_file()).unwrap();
    assert!(
        saved.contains(&format!("\"{current}\"")),
        "the latest rotated token is on disk: {saved}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(e.token_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The credential still holds the initial token, which Justworks killed at the first
    // rotation: Roster never writes to the user's secrets.
    assert_eq!(
        std::fs::read_to_string(e.config.join("secrets/refresh_token")).unwrap(),
        format!("{INITIAL_REFRESH}\n")
    );

    // A second sync, as a new process (new config, store and client; same state dir):
    // it refreshes with the saved token, not the dead one in the credential.
    let r = e.sync().await.unwrap();
    assert_eq!(r.run.records as usize, company(today()).len());
    let j = e.fake();
    let presented: Vec<&str> = j
        .token_requests
        .iter()
        .map(|(f, _)| f["refresh_token"].as_str())
        .collect();
    assert_eq!(presented[0], INITIAL_REFRESH);
    assert_eq!(presented[issued as usize], current, "{presented:?}");
    assert!(!presented.iter().skip(1).any(|p| *p == INITIAL_REFRESH));
    assert!(!j.used_before_saved);
    let saved = std::fs::read_to_string(e.token_file()).unwrap();
    assert!(saved.contains(&format!("\"{}\"", j.refresh_token)));
}

/// The failed sync's error text, checked for what every credential error must say.
fn credential_error(err: SyncError, secret: &str) -> String {
    assert_fetch_error(
        &err,
        &[
            "source `justworks`",
            "invalid credentials",
            "update the secrets",
            "nothing was applied",
        ],
        &[secret],
    )
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_clear_error_without_the_secret() {
    let e = env(company(today())).await;
    let wrong = "jw-secret-WRONG-7d1e3a5c";
    e.write_secret("client_secret", wrong);
    let msg = credential_error(e.sync().await.unwrap_err(), wrong);
    assert!(msg.contains("login failed with HTTP 401"), "{msg}");
    assert!(msg.contains("invalid_client"), "{msg}");
    assert!(msg.contains("`client_secret`"), "{msg}");
    let j = e.fake();
    assert_eq!(j.token_requests.len(), 1, "a rejected login is not retried");
    assert!(j.member_requests.is_empty());
    // Nothing was published.
    assert!(!e.directory_path().exists());
}

#[tokio::test]
async fn an_expired_refresh_token_is_a_clear_error_without_the_token() {
    // The admin's approval lapsed (or was revoked): Justworks answers invalid_grant and
    // echoes the token; Roster shows the answer with the token masked.
    let e = env(company(today())).await;
    let dead = "jw-rt-expired-Vb8nQ2";
    e.write_secret("refresh_token", dead);
    let msg = credential_error(e.sync().await.unwrap_err(), dead);
    assert!(msg.contains("login failed with HTTP 400"), "{msg}");
    assert!(msg.contains("invalid_grant"), "{msg}");
    assert!(msg.contains("The refresh token *** is invalid"), "{msg}");
    assert!(msg.contains("`refresh_token`"), "{msg}");
    assert_eq!(e.fake().token_requests.len(), 1);
}

#[tokio::test]
async fn a_new_initial_refresh_token_replaces_a_dead_saved_one() {
    // After a rotation, the admin disconnects the app; Justworks kills every token. An admin
    // approves the app again and the user puts the new initial token into the secret. The
    // next sync must use it, not the dead saved token.
    let e = env(company(today())).await;
    e.sync().await.unwrap();
    assert!(e.token_file().exists());
    let reapproved = "jw-rt-reapproved-Tz5k";
    e.fake().refresh_token = reapproved.into();
    e.write_secret("refresh_token", reapproved);
    let r = e.sync().await.unwrap();
    assert_eq!(r.run.records as usize, company(today()).len());
}
