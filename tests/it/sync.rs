//! End-to-end syncs: a fake HRIS on 127.0.0.1:0 serving two sources of different shapes, a
//! config directory in a temp dir loaded through the one pipeline, a real DuckDB state file,
//! and the published directory read back read-only, as a user's `duckdb -readonly` would.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use roster::config::LoadOptions;
use roster::sync::{NoProgress, Options, SyncError};

/// A change the fake HRIS makes to its listing.
type Change = fn(&mut Vec<Value>);

#[derive(Default)]
pub struct Hris {
    /// Source `core`: offset paging, attributes nested.
    pub core: Vec<Value>,
    /// Source `side`: one page, flat records.
    pub side: Vec<Value>,
    /// Fail this page (1-based) of `core` with this status.
    fail_core_page: Option<(usize, u16)>,
    /// Requests of `core` served.
    pub core_pages: usize,
    /// Every request either source received (refused ones too).
    pub requests: usize,
    /// Serve every page of `core` from offset 0 (an API that ignores the offset).
    ignore_offset: bool,
    /// After serving this request of `core` (1-based), change the listing (the HRIS changes
    /// while it is paged).
    after_core_page: Option<(usize, Change)>,
    /// On this request of `core`, append a copy of the record at this index to the page.
    repeat_on_core_page: Option<(usize, usize)>,
    /// Serve `core` pretty-printed (the same records in other bytes).
    pretty: bool,
}

pub type Shared = Arc<Mutex<Hris>>;

async fn core(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    s.lock().unwrap().requests += 1;
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != "Bearer core-token" {
        // Like a PHP HRIS: the rejected token echoed back, `/` escaped as `\/`, and again as
        // `\u002F` and URL-encoded.
        let token = auth.trim_start_matches("Bearer ");
        let body = format!(
            r#"{{"error": "invalid token {}", "hint": "{}", "url": "/auth?t={}"}}"#,
            token.replace('/', "\\/"),
            token.replace('/', "\\u002F"),
            token
                .replace('/', "%2F")
                .replace('+', "%2B")
                .replace('=', "%3D"),
        );
        return (StatusCode::UNAUTHORIZED, body).into_response();
    }
    let get = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let (offset, limit) = (get("offset").unwrap_or(0), get("limit").unwrap_or(100));
    let mut h = s.lock().unwrap();
    h.core_pages += 1;
    if let Some((page, status)) = h.fail_core_page {
        if h.core_pages == page {
            return (StatusCode::from_u16(status).unwrap(), "upstream trouble").into_response();
        }
    }
    let total = h.core.len();
    let offset = if h.ignore_offset { 0 } else { offset };
    let mut data: Vec<Value> = h.core.iter().skip(offset).take(limit).cloned().collect();
    let page = h.core_pages;
    if let Some((p, i)) = h.repeat_on_core_page {
        if p == page {
            data.push(h.core[i].clone());
        }
    }
    if let Some((p, change)) = h.after_core_page {
        if p == page {
            change(&mut h.core);
        }
    }
    let body = json!({"data": data, "meta": {"total": total}});
    if h.pretty {
        let text = serde_json::to_string_pretty(&body).unwrap();
        return ([("content-type", "application/json")], text).into_response();
    }
    Json(body).into_response()
}

async fn side(State(s): State<Shared>, headers: HeaderMap) -> Response {
    s.lock().unwrap().requests += 1;
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some("side-key") {
        return (StatusCode::FORBIDDEN, "forbidden").into_response();
    }
    let h = s.lock().unwrap();
    Json(json!({"staff": h.side})).into_response()
}

use axum::Json;

pub struct Env {
    _dir: tempfile::TempDir,
    pub config: PathBuf,
    pub hris: Shared,
}

const CORE_PROVIDER: &str = r#"
title: Core HR
base_url: http://ADDR/core
credentials:
  token: {description: API token}
auth:
  kind: bearer
  token: "{credentials.token}"
retry:
  max_attempts: 1
streams:
  people:
    request:
      path: /people
    pagination:
      kind: offset
      limit_param: limit
      offset_param: offset
      page_size: 3
    records: $.data[*]
    total: $.meta.total
"#;

const CORE_MAPPING: &str = r#"
provider: core
stream: people
fields:
  employee_id: $.id
  first_name: {path: $.attrs.first, transform: [trim]}
  last_name: $.attrs.last
  display_name: {template: "{first_name} {last_name}"}
  work_email: $.attrs.email
  job_title: $.attrs.title
  department: $.attrs.dept
  manager_id: $.attrs.manager
  worker_type:
    path: $.attrs.kind
    values: {internal: employee, external: contractor}
  status:
    path: $.attrs.status
    values: {active: active, onboarding: pre_hire, leave: on_leave, inactive: terminated}
  start_date: $.attrs.hired
  end_date: $.attrs.left
  birth_date: {path: $.attrs.born, date_format: "%d.%m.%Y"}
custom:
  cost_center: $.attrs.cc
"#;

const SIDE_PROVIDER: &str = r#"
title: Side HR
base_url: http://ADDR/side
credentials:
  key: {description: API key}
auth:
  kind: api_key
  in: header
  name: X-Api-Key
  value: "{credentials.key}"
streams:
  staff:
    request:
      path: /staff
    records: $.staff[*]
"#;

const SIDE_MAPPING: &str = r#"
provider: side
stream: staff
fields:
  employee_id: $.number
  work_email: $.mail
  first_name: $.given
  last_name: $.family
  job_title: $.role
  office: $.site
  manager_email: $.boss
"#;

const DEPLOYMENT: &str = r#"
time_zone: Europe/Berlin
store:
  state_dir: state
sources:
  core:
    provider: core
    credentials:
      token: {file: secrets/core}
  side:
    provider: side
    credentials:
      key: {file: secrets/side}
precedence:
  default: [core, side]
  fields:
    job_title: [side, core]
"#;

fn person(id: u32, first: &str, last: &str, email: &str, manager: Option<u32>) -> Value {
    json!({
        "id": id,
        "attrs": {
            "first": format!(" {first} "), "last": last, "email": email,
            "title": "Engineer", "dept": "R&D", "manager": manager,
            "kind": "internal", "status": "active", "hired": "2020-03-01T00:00:00+01:00",
            "left": null, "born": "09.11.1990", "cc": "CC-1"
        }
    })
}

fn base_people() -> Vec<Value> {
    let mut v = vec![
        person(1, "Ada", "Boss", "ada@corp.example", None),
        person(2, "Ben", "Lead", "Ben@Corp.example", Some(1)),
        person(3, "Cy", "Dev", "cy@corp.example", Some(2)),
        person(4, "Di", "Dev", "di@corp.example", Some(2)),
        person(5, "Ed", "Ops", "ed@corp.example", Some(1)),
        person(6, "Flo", "Ops", "flo@corp.example", Some(5)),
        person(7, "Gus", "Ops", "gus@corp.example", Some(5)),
    ];
    // A pre-hire: onboarding, starts in the future.
    let mut h = person(8, "Hal", "New", "hal@corp.example", Some(2));
    h["attrs"]["status"] = json!("onboarding");
    h["attrs"]["hired"] = json!("2099-01-04T00:00:00+01:00");
    v.push(h);
    // A contractor.
    let mut i = person(9, "Ivy", "Temp", "ivy@corp.example", Some(5));
    i["attrs"]["kind"] = json!("external");
    v.push(i);
    // Left: filtered out by the default filter.
    let mut j = person(10, "Jo", "Gone", "jo@corp.example", Some(1));
    j["attrs"]["status"] = json!("inactive");
    j["attrs"]["left"] = json!("2021-06-30T00:00:00+02:00");
    v.push(j);
    // No work email: a data problem, never in the directory.
    let mut k = person(11, "Kim", "Nomail", "", Some(1));
    k["attrs"]["email"] = Value::Null;
    v.push(k);
    // A manager id that does not exist.
    v.push(person(12, "Lu", "Orphan", "lu@corp.example", Some(999)));
    v
}

fn side_people() -> Vec<Value> {
    vec![
        // Same person as core #2 (email differs in case): side wins job_title, core the rest.
        json!({"number": "S-1", "mail": "ben@corp.example ", "given": "Benjamin", "family": "Lead",
               "role": "Engineering Manager", "site": "Berlin", "boss": "ada@corp.example"}),
        // Only in side: manager by email.
        json!({"number": "S-2", "mail": "mo@corp.example", "given": "Mo", "family": "Side",
               "role": "Designer", "site": "Lisbon", "boss": "ben@corp.example"}),
    ]
}

/// Two sources (`core`, `side`) on a fake HRIS, a config directory in a temp dir.
pub async fn env() -> Env {
    let hris: Shared = Arc::new(Mutex::new(Hris {
        core: base_people(),
        side: side_people(),
        ..Hris::default()
    }));
    let app = axum::Router::new()
        .route("/core/people", get(core))
        .route("/side/staff", get(side))
        .with_state(hris.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    for sub in ["providers", "mappings", "secrets"] {
        std::fs::create_dir_all(config.join(sub)).unwrap();
    }
    let a = addr.to_string();
    std::fs::write(
        config.join("providers/core.yaml"),
        CORE_PROVIDER.replace("ADDR", &a),
    )
    .unwrap();
    std::fs::write(
        config.join("providers/side.yaml"),
        SIDE_PROVIDER.replace("ADDR", &a),
    )
    .unwrap();
    std::fs::write(config.join("mappings/core.yaml"), CORE_MAPPING).unwrap();
    std::fs::write(config.join("mappings/side.yaml"), SIDE_MAPPING).unwrap();
    std::fs::write(config.join("secrets/core"), "core-token\n").unwrap();
    std::fs::write(config.join("secrets/side"), "side-key").unwrap();
    std::fs::write(config.join("roster.yaml"), DEPLOYMENT).unwrap();
    Env {
        _dir: dir,
        config,
        hris,
    }
}

impl Env {
    pub fn cfg(&self) -> roster::config::Config {
        match roster::config::load(&self.config, &LoadOptions::default()) {
            Ok(c) => c,
            Err(d) => panic!("config invalid:\n{}", d.render()),
        }
    }

    pub async fn sync(
        &self,
        source: &str,
        opts: Options,
    ) -> Result<roster::sync::Report, SyncError> {
        let (cfg, mut store, plan) = self.open(source);
        let report =
            roster::sync::sync_source(&cfg, &mut store, &plan, &opts, &mut NoProgress).await;
        // Every sync of the suite checks the upkeep of `data_problems` (written again only
        // where a change reaches) against a full recount.
        if report.is_ok() {
            let drift = store.problems_drift().unwrap();
            assert!(drift.is_empty(), "data_problems drifted: {drift:#?}");
        }
        report
    }

    /// The config, a store opened on it and the plan of `source`, as a sync takes them.
    pub fn open(
        &self,
        source: &str,
    ) -> (
        roster::config::Config,
        roster::store::Store,
        roster::config::compile::SourcePlan,
    ) {
        let cfg = self.cfg();
        let store = roster::sync::open_store(&cfg).unwrap();
        let plan = cfg
            .sources
            .iter()
            .find(|s| s.name == source)
            .unwrap()
            .clone();
        (cfg, store, plan)
    }

    /// Adds two webhook endpoints to roster.yaml: `all` takes every person event, the one
    /// named `name` only those about people whose department is `department`.
    pub fn add_webhooks(&self, name: &str, department: &str) {
        let endpoint = |name: &str, extra: &str| {
            format!(
                "  {name}:\n    url: http://127.0.0.1:9/hook\n    secret: {{file: secrets/hook}}\n    allow_private_network: true\n    events: ['person.*']\n{extra}"
            )
        };
        let deployment = std::fs::read_to_string(self.config.join("roster.yaml")).unwrap();
        let yaml = format!(
            "{deployment}webhooks:\n{}{}",
            endpoint("all", ""),
            endpoint(name, &format!("    when: {{department: {department}}}\n"))
        );
        std::fs::write(self.config.join("roster.yaml"), yaml).unwrap();
        std::fs::write(
            self.config.join("secrets/hook"),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .unwrap();
    }

    pub fn directory(&self) -> PathBuf {
        roster::sync::directory_path(&self.cfg())
    }

    /// Query the published directory read-only, like a user.
    fn query(&self, sql: &str) -> Vec<Vec<String>> {
        query_file(&self.directory(), sql)
    }
}

pub fn query_file(path: &Path, sql: &str) -> Vec<Vec<String>> {
    let conn = roster::store::open_readonly(path).unwrap();
    let (_, rows) = roster::cli::query::execute(&conn, sql).unwrap();
    rows.iter()
        .map(|r| r.iter().map(roster::cli::query::text).collect())
        .collect()
}

fn one(rows: &[Vec<String>]) -> &[String] {
    assert_eq!(rows.len(), 1, "{rows:?}");
    &rows[0]
}

#[tokio::test]
async fn a_sync_maps_every_field_and_publishes_the_directory() {
    let e = env().await;
    let r = e.sync("core", Options::default()).await.unwrap();
    assert!(r.published);
    // 12 records: 10 kept (incl. orphan), 1 excluded (inactive), 1 failed (no email).
    assert_eq!(
        (r.run.records, r.run.kept, r.run.excluded, r.run.failed),
        (12, 10, 1, 1)
    );
    assert_eq!(r.applied.created, 10);
    assert_eq!(r.run.pages, 4, "12 records at 3 per page");

    let row = e.query(
        "select employee_id, first_name, last_name, display_name, work_email, job_title, department,
                manager_id, manager_email, worker_type, status, hris_status, start_date, end_date, birth_date,
                custom['cost_center'], sources, employee_ids['core'], provenance['first_name']
         from people where work_email = 'cy@corp.example'",
    );
    assert_eq!(
        one(&row),
        [
            "3",
            "Cy",
            "Dev",
            "Cy Dev",
            "cy@corp.example",
            "Engineer",
            "R&D",
            "2",
            "ben@corp.example",
            "employee",
            "active",
            "active",
            "2020-03-01",
            "",
            "1990-11-09",
            "CC-1",
            "[core]",
            "3",
            "core"
        ]
    );
    // The email was normalised; the date-time kept its calendar date.
    assert_eq!(
        one(&e.query("select start_date from people where work_email = 'ben@corp.example'"))[0],
        "2020-03-01"
    );
    // The pre-hire is in, as pre_hire; the contractor is a contractor; the leaver is out.
    assert_eq!(
        one(&e.query("select status from people where work_email = 'hal@corp.example'"))[0],
        "pre_hire"
    );
    assert_eq!(
        one(&e.query("select worker_type from people where work_email = 'ivy@corp.example'"))[0],
        "contractor"
    );
    assert!(
        e.query("select 1 from people where work_email = 'jo@corp.example'")
            .is_empty()
    );
    // Data problems: missing email, unresolved manager.
    let problems = e.query("select kind, record_key from data_problems order by kind");
    assert!(
        problems.contains(&vec!["missing_work_email".to_string(), "11".to_string()]),
        "{problems:?}"
    );
    assert!(
        problems.contains(&vec!["unresolved_manager".to_string(), "12".to_string()]),
        "{problems:?}"
    );
    // The org chart: Ada at the top, Cy three levels down.
    assert_eq!(
        one(&e.query("select depth from org_chart where work_email = 'cy@corp.example'"))[0],
        "2"
    );
    // The run is recorded.
    let run = e.query("select outcome, records, kept, created from sync_runs");
    assert_eq!(one(&run), ["applied", "12", "10", "10"]);
}

#[tokio::test]
async fn two_sources_merge_by_email_with_per_field_precedence() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    let r = e.sync("side", Options::default()).await.unwrap();
    assert_eq!(r.applied.created, 1, "mo is new; ben is merged");
    let ben = e.query(
        "select first_name, job_title, office, provenance['job_title'], provenance['first_name'], sources
         from people where work_email = 'ben@corp.example'",
    );
    // job_title: side wins (per-field order); first_name: core wins (default order); office only in side.
    assert_eq!(
        one(&ben),
        [
            "Ben",
            "Engineering Manager",
            "Berlin",
            "side",
            "core",
            "[core, side]"
        ]
    );
    // A manager given by email resolves too.
    assert_eq!(
        one(&e.query("select manager_email from people where work_email = 'mo@corp.example'"))[0],
        "ben@corp.example"
    );
}

#[tokio::test]
async fn a_change_writes_history_and_a_resync_of_the_same_snapshot_writes_nothing() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    let before: i64 = e.query("select count(*) from person_values")[0][0]
        .parse()
        .unwrap();
    let again = e.sync("core", Options::default()).await.unwrap();
    assert!(again.applied.unchanged);
    assert!(!again.published);
    assert_eq!(again.run.changed_records, 0);
    e.hris.lock().unwrap().core[2]["attrs"]["title"] = json!("Senior Engineer");
    let r = e.sync("core", Options::default()).await.unwrap();
    assert_eq!(
        (r.applied.created, r.applied.updated, r.run.changed_records),
        (0, 1, 1)
    );
    let history = e.query(
        "select value, valid_to is null from person_values
         where work_email = 'cy@corp.example' and field = 'job_title' order by valid_from",
    );
    assert_eq!(
        history,
        [
            vec!["Engineer".to_string(), "false".into()],
            vec!["Senior Engineer".into(), "true".into()]
        ]
    );
    let after: i64 = e.query("select count(*) from person_values")[0][0]
        .parse()
        .unwrap();
    assert_eq!(after, before + 1);
}

/// Schema v5: a first sync writes no history rows (first values live in `people`), and the
/// view `person_values` still shows the whole history: the first value of a field, closed
/// from the person's first sight when a change replaces it, then the new value, open (read,
/// like every query here, from the published directory).
#[tokio::test]
async fn first_values_are_kept_in_people_and_the_history_view_shows_them() {
    let e = env().await;
    let first = e.sync("core", Options::default()).await.unwrap();
    assert!(first.applied.created > 0);
    assert_eq!(
        e.query("select count(*) from value_history")[0][0],
        "0",
        "a first sync writes no history rows"
    );
    // The view has every current value of every person, from people, since first_seen.
    let mismatches = e.query(
        "select p.work_email, v.field from person_values v join people p using (work_email)
         where v.valid_to is null and (v.valid_from <> p.first_seen
           or v.sync_run is distinct from (select max(id) from sync_runs where outcome = 'applied')
           or v.value is distinct from (case v.field when 'job_title' then p.job_title
               when 'start_date' then p.start_date::varchar when 'status' then p.status
               else v.value end))",
    );
    assert!(mismatches.is_empty(), "{mismatches:?}");
    let fields: i64 = e.query(
        "select count(*) from person_values where work_email = 'cy@corp.example' and valid_to is null",
    )[0][0]
        .parse()
        .unwrap();
    assert!(fields >= 10, "{fields} current values for cy");

    e.hris.lock().unwrap().core[2]["attrs"]["title"] = json!("Senior Engineer");
    e.sync("core", Options::default()).await.unwrap();
    // The change wrote two rows: the first value, closed, and the new one, open.
    assert_eq!(e.query("select count(*) from value_history")[0][0], "2");
    let history = e.query(
        "select value, valid_from = (select first_seen from people where work_email = 'cy@corp.example'),
                valid_to is null, sync_run
         from person_values where work_email = 'cy@corp.example' and field = 'job_title'
         order by valid_from",
    );
    let first_run = first.run.id.to_string();
    assert_eq!(
        history,
        [
            vec![
                "Engineer".to_string(),
                "true".into(),
                "false".into(),
                first_run
            ],
            vec![
                "Senior Engineer".into(),
                "false".into(),
                "true".into(),
                (first.run.id + 1).to_string()
            ]
        ]
    );
    // A second change closes the open row; the first value is not written again.
    e.hris.lock().unwrap().core[2]["attrs"]["title"] = json!("Staff Engineer");
    e.sync("core", Options::default()).await.unwrap();
    let titles = e.query(
        "select value, valid_to is null from person_values
         where work_email = 'cy@corp.example' and field = 'job_title' order by valid_from",
    );
    assert_eq!(
        titles,
        [
            vec!["Engineer".to_string(), "false".into()],
            vec!["Senior Engineer".into(), "false".into()],
            vec!["Staff Engineer".into(), "true".into()]
        ]
    );
}

#[tokio::test]
async fn a_failed_fetch_applies_nothing() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    {
        let mut h = e.hris.lock().unwrap();
        h.core[0]["attrs"]["title"] = json!("CEO");
        h.core_pages = 0;
        h.fail_core_page = Some((3, 500));
    }
    let err = e.sync("core", Options::default()).await.unwrap_err();
    assert!(matches!(err, SyncError::Fetch(_)), "{err}");
    assert!(err.to_string().contains("nothing was applied"), "{err}");
    assert_eq!(
        one(&e.query("select job_title from people where work_email = 'ada@corp.example'"))[0],
        "Engineer"
    );
    // The failure is on record in the state database with a code and Roster's own words:
    // the HRIS's answer ("upstream trouble") stays in the local log (issue 15.2).
    let state = e.cfg().state_dir().join("state.duckdb");
    let failed = query_file(
        &state,
        "select error_code, error from sync_runs where outcome = 'failed'",
    );
    let row = one(&failed);
    assert_eq!(row[0], "hris_server_error");
    assert!(
        row[1].contains("HTTP 500") && row[1].contains("nothing was applied"),
        "{row:?}"
    );
    assert!(!row[1].contains("upstream trouble"), "{row:?}");
    assert!(
        err.to_string().contains("upstream trouble"),
        "the log keeps the excerpt: {err}"
    );
}

#[tokio::test]
async fn mass_disappearance_and_an_empty_listing_are_held_until_allowed() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    e.hris.lock().unwrap().core.truncate(5);
    let r = e.sync("core", Options::default()).await.unwrap();
    let reason = r.applied.held.clone().expect("held");
    assert!(reason.contains("--allow-removals"), "{reason}");
    assert_eq!(
        e.query("select count(*) from people where status <> 'terminated'")[0][0],
        "10"
    );

    e.hris.lock().unwrap().core.clear();
    let r = e.sync("core", Options::default()).await.unwrap();
    assert!(
        r.applied.held.as_deref().unwrap().contains("empty"),
        "{:?}",
        r.applied.held
    );

    // Released: the people who disappeared are terminated, their data kept.
    e.hris.lock().unwrap().core = base_people().into_iter().take(5).collect();
    let r = e
        .sync(
            "core",
            Options {
                allow_removals: true,
                ..Options::default()
            },
        )
        .await
        .unwrap();
    assert!(r.applied.held.is_none());
    assert_eq!(r.applied.terminated, 5);
    let gone =
        e.query("select status, job_title from people where work_email = 'gus@corp.example'");
    assert_eq!(one(&gone), ["terminated", "Engineer"]);
}

#[tokio::test]
async fn a_record_that_fails_to_map_is_still_present() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    // Di's email becomes invalid: the record fails to map, but Di is not a leaver.
    e.hris.lock().unwrap().core[3]["attrs"]["email"] = json!("not-an-email");
    let r = e.sync("core", Options::default()).await.unwrap();
    assert_eq!(r.applied.terminated, 0, "{:?}", r.applied);
    assert_eq!(
        one(&e.query("select status from people where work_email = 'di@corp.example'"))[0],
        "active"
    );
}

#[tokio::test]
async fn plan_shows_the_changes_and_writes_nothing() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    e.hris.lock().unwrap().core[2]["attrs"]["title"] = json!("Staff Engineer");
    let r = e
        .sync(
            "core",
            Options {
                dry_run: true,
                want_changes: true,
                ..Options::default()
            },
        )
        .await
        .unwrap();
    let (email, _, fields) = &r.applied.people[0];
    assert_eq!(email, "cy@corp.example");
    assert_eq!(fields[0].field, "job_title");
    assert_eq!(fields[0].old.as_deref(), Some("Engineer"));
    assert_eq!(fields[0].new.as_deref(), Some("Staff Engineer"));
    assert!(
        r.applied
            .problem_list
            .iter()
            .any(|p| p.kind == "missing_work_email")
    );
    assert_eq!(
        one(&e.query("select job_title from people where work_email = 'cy@corp.example'"))[0],
        "Engineer"
    );
    assert_eq!(
        e.query("select count(*) from sync_runs")[0][0],
        "1",
        "a plan records no run"
    );
}

#[tokio::test]
async fn a_second_writer_is_refused_with_a_clear_error() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    let cfg = e.cfg();
    let held = roster::sync::open_store(&cfg).unwrap();
    // Publishing must not drop the lock (closing any descriptor of a locked file releases a
    // process's POSIX locks on it, so the state file is never opened outside DuckDB).
    held.publish().unwrap();
    // Another process: the real binary.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["sync", "--config"])
        .arg(&e.config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("in use by another process (PID"), "{err}");
}

#[tokio::test]
async fn a_corrupt_state_file_is_refused_not_recreated() {
    let e = env().await;
    let cfg = e.cfg();
    let state = cfg.state_dir().join("state.duckdb");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    std::fs::write(
        &state,
        b"this is not a database, but someone's data".repeat(200),
    )
    .unwrap();
    let err = roster::sync::open_store(&cfg).unwrap_err().to_string();
    assert!(err.contains("is not a readable DuckDB database"), "{err}");
    assert!(err.contains("move it aside"), "{err}");
    assert!(
        std::fs::read(&state)
            .unwrap()
            .starts_with(b"this is not a database")
    );
}

#[tokio::test]
async fn readers_polling_the_directory_never_see_a_partial_sync() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    let path = e.directory();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let path = path.clone();
        std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Every title in one snapshot is the same: a sync changes all of them at once.
                let rows = query_file(
                    &path,
                    "select distinct job_title from people where status <> 'terminated' and work_email like '%@corp.example'",
                );
                assert_eq!(rows.len(), 1, "a half-applied sync: {rows:?}");
                seen.insert(rows[0][0].clone());
                reads += 1;
            }
            (reads, seen)
        })
    };
    for i in 0..6 {
        {
            let mut h = e.hris.lock().unwrap();
            for p in h.core.iter_mut() {
                p["attrs"]["title"] = json!(format!("Title {i}"));
            }
        }
        e.sync("core", Options::default()).await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, seen) = reader.join().unwrap();
    assert!(reads > 5, "the reader ran {reads} times");
    assert!(
        seen.len() >= 2,
        "the reader saw the directory change: {seen:?}"
    );
}

#[tokio::test]
async fn coverage_rules_warn_or_fail_on_the_whole_listing() {
    let e = env().await;
    let mapping = e.config.join("mappings/core.yaml");
    let base = std::fs::read_to_string(&mapping).unwrap();
    // Nobody has an end date but the leaver (excluded): 100% empty among kept records.
    std::fs::write(
        &mapping,
        format!("{base}coverage:\n  end_date: {{max_empty: 50%}}\n"),
    )
    .unwrap();
    let r = e.sync("core", Options::default()).await.unwrap();
    assert_eq!(
        r.coverage,
        ["`end_date` is empty in 10 of 10 records (100%, allowed 50%)"]
    );
    assert_eq!(
        e.query("select coverage from sync_runs")[0][0],
        r.coverage[0]
    );
    // As a failure: nothing applied, and the unchanged records count too.
    std::fs::write(
        &mapping,
        format!("{base}coverage:\n  end_date: {{max_empty: 50%, action: fail}}\n"),
    )
    .unwrap();
    e.hris.lock().unwrap().core[0]["attrs"]["title"] = json!("CEO");
    let err = e.sync("core", Options::default()).await.unwrap_err();
    assert!(matches!(err, SyncError::Coverage { .. }), "{err}");
    assert!(err.to_string().contains("nothing was applied"), "{err}");
    assert_eq!(
        one(&e.query("select job_title from people where work_email = 'ada@corp.example'"))[0],
        "Engineer"
    );
}

#[tokio::test]
async fn a_managers_new_title_merges_only_them_and_a_new_email_their_reports_too() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    // Ed (id 5) manages Flo, Gus and Ivy. His new title resolves their manager as before.
    e.hris.lock().unwrap().core[4]["attrs"]["title"] = json!("Head of Ops");
    let r = e.sync("core", Options::default()).await.unwrap();
    assert_eq!((r.applied.updated, r.applied.merged), (1, 1));
    // His new email moves them: Ed (leaving), Edward, and his three reports.
    e.hris.lock().unwrap().core[4]["attrs"]["email"] = json!("edward@corp.example");
    let r = e.sync("core", Options::default()).await.unwrap();
    assert_eq!((r.applied.updated, r.applied.merged), (3, 5));
    let managers = e.query(
        "select manager_email, count(*) from people
         where work_email in ('flo@corp.example', 'gus@corp.example', 'ivy@corp.example') group by 1",
    );
    assert_eq!(managers, [["edward@corp.example", "3"]]);
}

#[tokio::test]
async fn a_changed_manager_record_re_resolves_the_subordinates_and_leaves_others_alone() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    let times = "select work_email, first_seen, last_changed from people
                 where work_email in ('ada@corp.example', 'cy@corp.example') order by 1";
    let before = e.query(times);
    // Ed (id 5) gets a new work email: the people whose manager id is 5 follow.
    e.hris.lock().unwrap().core[4]["attrs"]["email"] = json!("edward@corp.example");
    let r = e
        .sync(
            "core",
            Options {
                want_changes: true,
                ..Options::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (r.applied.created, r.applied.terminated, r.applied.updated),
        (1, 1, 3),
        "{:?}",
        r.applied.people
    );
    let managers = e.query(
        "select work_email, manager_email from people
         where work_email in ('flo@corp.example', 'gus@corp.example', 'ivy@corp.example') order by 1",
    );
    assert!(
        managers.iter().all(|m| m[1] == "edward@corp.example"),
        "{managers:?}"
    );
    let changes: Vec<(String, String)> = r
        .applied
        .people
        .iter()
        .filter(|p| p.1 == roster::store::sync::PersonChange::Updated)
        .flat_map(|p| p.2.iter().map(|c| (c.work_email.clone(), c.field.clone())))
        .collect();
    assert_eq!(
        changes,
        [
            ("flo@corp.example".to_string(), "manager_email".to_string()),
            ("gus@corp.example".into(), "manager_email".into()),
            ("ivy@corp.example".into(), "manager_email".into()),
        ]
    );
    assert_eq!(
        one(&e.query("select status from people where work_email = 'ed@corp.example'"))[0],
        "terminated"
    );
    // People the run did not touch keep their row as it was, times included.
    assert_eq!(e.query(times), before);
    // The people table agrees with the open history rows, field by field.
    let mismatches = e.query(
        "select p.work_email, v.field from person_values v join people p using (work_email)
         where v.valid_to is null and v.field in ('manager_email', 'job_title', 'status', 'first_name')
           and v.value is distinct from (case v.field when 'manager_email' then p.manager_email
               when 'job_title' then p.job_title when 'status' then p.status else p.first_name end)",
    );
    assert!(mismatches.is_empty(), "{mismatches:?}");
}

/// `people.provenance` is stored once per distinct map (schema v7): every person points at a
/// stored map, no two stored maps are equal, and none is left that nobody points at.
fn provenance_sets_are_exact(e: &Env) {
    let counts = e.query(
        "select (select count(*) from provenance_sets),
                (select count(distinct provenance) from provenance_sets),
                (select count(distinct provenance_id) from person_rows),
                (select count(*) from person_rows r left join provenance_sets s on s.id = r.provenance_id
                 where s.id is null)",
    );
    let n = &counts[0];
    assert_eq!(
        (n[0].as_str(), n[1].as_str(), n[2].as_str(), n[3].as_str()),
        (n[0].as_str(), n[0].as_str(), n[0].as_str(), "0"),
        "sets, distinct sets, sets in use, people without one: {n:?}"
    );
}

#[tokio::test]
async fn a_precedence_change_re_merges_everyone_without_new_records() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    e.sync("side", Options::default()).await.unwrap();
    let title = "select job_title, provenance['job_title'] from people where work_email = 'ben@corp.example'";
    assert_eq!(one(&e.query(title)), ["Engineering Manager", "side"]);
    let path = e.config.join("roster.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    assert!(yaml.contains("job_title: [side, core]"));
    std::fs::write(
        &path,
        yaml.replace("job_title: [side, core]", "job_title: [core, side]"),
    )
    .unwrap();
    provenance_sets_are_exact(&e);
    let last_set = "select max(id) from provenance_sets";
    let before = e.query(last_set);
    let r = e.sync("side", Options::default()).await.unwrap();
    assert_eq!(r.run.changed_records, 0, "no record changed");
    assert_eq!((r.applied.updated, r.applied.created), (1, 0));
    assert_eq!(one(&e.query(title)), ["Engineer", "core"]);
    // Everyone was merged again, and only Ben's provenance changed: the stored maps were
    // reused (at most Ben's is new), and the one nobody has any more is gone.
    let after = e.query(last_set);
    assert!(
        after[0][0].parse::<i64>().unwrap() <= before[0][0].parse::<i64>().unwrap() + 1,
        "{before:?} -> {after:?}"
    );
    provenance_sets_are_exact(&e);
    // And once applied, the same listing is quiet again.
    let again = e.sync("side", Options::default()).await.unwrap();
    assert!(again.applied.unchanged && !again.published);
}

#[tokio::test]
async fn a_source_removed_from_the_config_is_kept_until_forgotten() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    e.sync("side", Options::default()).await.unwrap();
    // `side` leaves roster.yaml (and the precedence that named it).
    let path = e.config.join("roster.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    let without = yaml.split("  side:\n").next().unwrap().to_string();
    std::fs::write(&path, &without).unwrap();
    let cfg = e.cfg();
    let mut store = roster::sync::open_store(&cfg).unwrap();
    assert_eq!(
        roster::sync::orphan_sources(&cfg, &store).unwrap(),
        [("side".to_string(), 2)]
    );
    let warning = roster::sync::orphan_warning("side", 2);
    assert!(
        warning.contains("roster sync --forget-source side"),
        "{warning}"
    );
    // Nothing changes on its own: mo (only in side) is still there.
    let mo = "select status from people where work_email = 'mo@corp.example'";
    assert_eq!(one(&e.query(mo))[0], "active");

    let refused = roster::sync::forget_source(&cfg, &mut store, "core", &Options::default());
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("still configured"),
        "a configured source is never forgotten"
    );
    let plan = roster::sync::forget_source(
        &cfg,
        &mut store,
        "side",
        &Options {
            dry_run: true,
            want_changes: true,
            ..Options::default()
        },
    )
    .unwrap();
    assert_eq!((plan.applied.terminated, plan.applied.updated), (1, 1));
    assert!(!plan.published);
    assert_eq!(one(&e.query(mo))[0], "active", "a plan writes nothing");

    let r = roster::sync::forget_source(&cfg, &mut store, "side", &Options::default()).unwrap();
    assert_eq!((r.applied.terminated, r.applied.updated), (1, 1));
    assert!(r.published);
    drop(store);
    assert_eq!(one(&e.query(mo))[0], "terminated");
    // Ben loses what only side gave him; core's values are in force again.
    assert_eq!(
        one(&e.query(
            "select job_title, office, sources from people where work_email = 'ben@corp.example'"
        )),
        ["Engineer", "", "[core]"]
    );
    assert!(
        e.query("select 1 from source_records where source = 'side'")
            .is_empty()
    );
    let cfg = e.cfg();
    let mut store = roster::sync::open_store(&cfg).unwrap();
    assert!(
        roster::sync::orphan_sources(&cfg, &store)
            .unwrap()
            .is_empty()
    );
    let again = roster::sync::forget_source(&cfg, &mut store, "side", &Options::default());
    assert!(again.unwrap_err().to_string().contains("no records"));
}

#[tokio::test]
async fn roster_plan_and_sync_forget_source_on_the_command_line() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    e.sync("side", Options::default()).await.unwrap();
    let path = e.config.join("roster.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, yaml.split("  side:\n").next().unwrap()).unwrap();
    let config = e.config.to_str().unwrap();

    let (code, out, err) =
        crate::cli::roster(&["plan", "--config", config, "--forget-source", "side"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("- mo@corp.example (terminate)"), "{out}");
    assert!(out.contains("~ ben@corp.example (update)"), "{out}");
    let (code, _, err) =
        crate::cli::roster(&["sync", "--config", config, "--forget-source", "core"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("`core` is still configured"), "{err}");
    let (code, out, err) =
        crate::cli::roster(&["sync", "--config", config, "--forget-source", "side"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("side: forgotten; people: 1 updated, 1 terminated; directory published"),
        "{out}"
    );
    let (code, _, err) =
        crate::cli::roster(&["plan", "--config", config, "--forget-source", "side"]);
    assert_eq!(code, 64);
    assert!(err.contains("no records of a source `side`"), "{err}");
}

#[tokio::test]
async fn deleted_rows_are_counted_until_a_publish_vacuums_them() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    let dead = "select value from meta where key = 'dead_rows'";
    assert_eq!(e.query(dead), [["0"]], "a first sync deletes nothing");
    // One new title: the old version of the record, its custom field and the person's row.
    e.hris.lock().unwrap().core[2]["attrs"]["title"] = json!("Staff Engineer");
    let r = e.sync("core", Options::default()).await.unwrap();
    assert!(r.published);
    assert_eq!(e.query(dead), [["3"]]);
    // Half the records change: the deleted rows reach half the live ones, and the publish
    // vacuums (the count starts again).
    let live: usize = e
        .query("select (select count(*) from source_records) + (select count(*) from source_custom) + (select count(*) from person_rows)")[0][0]
        .parse()
        .unwrap();
    let n = e.hris.lock().unwrap().core.len();
    for p in e.hris.lock().unwrap().core.iter_mut().take(n / 2 + 1) {
        p["attrs"]["dept"] = json!("Platform");
    }
    e.sync("core", Options::default()).await.unwrap();
    assert!(
        3 * (n / 2 + 1) + 3 >= live / 2,
        "{n} records, {live} live rows"
    );
    assert!(e.query(dead).is_empty(), "{:?}", e.query(dead));
}

#[tokio::test]
async fn a_management_cycle_is_a_data_problem_for_everyone_on_it() {
    let e = env().await;
    // Ed (5) now reports to Flo (6), who reports to Ed.
    e.hris.lock().unwrap().core[4]["attrs"]["manager"] = json!(6);
    e.sync("core", Options::default()).await.unwrap();
    let cycle = e.query(
        "select work_email, detail from data_problems where kind = 'manager_cycle' order by 1",
    );
    assert_eq!(
        cycle,
        [
            vec![
                "ed@corp.example".to_string(),
                "the management chain of this person leads back to them".into()
            ],
            vec![
                "flo@corp.example".into(),
                "the management chain of this person leads back to them".into()
            ],
        ]
    );
    // Gus reports into the loop but is not on it.
    assert!(e
        .query("select 1 from data_problems where kind = 'manager_cycle' and work_email = 'gus@corp.example'")
        .is_empty());
    let on_cycles =
        "select work_email, sync_run from data_problems where kind = 'manager_cycle' order by 1";
    // A change that moves no management link keeps the cycle (found by the last run, dated
    // by this one).
    e.hris.lock().unwrap().core[4]["attrs"]["title"] = json!("Staff Engineer");
    let r = e.sync("core", Options::default()).await.unwrap();
    assert_eq!(r.applied.updated, 1);
    let run = r.run.id.to_string();
    assert_eq!(
        e.query(on_cycles),
        [
            vec!["ed@corp.example".to_string(), run.clone()],
            vec!["flo@corp.example".to_string(), run]
        ]
    );
    // Gus joins the loop: Flo now reports to him, and he still reports to Ed.
    e.hris.lock().unwrap().core[5]["attrs"]["manager"] = json!(7);
    e.sync("core", Options::default()).await.unwrap();
    let emails =
        |rows: Vec<Vec<String>>| rows.into_iter().map(|r| r[0].clone()).collect::<Vec<_>>();
    assert_eq!(
        emails(e.query(on_cycles)),
        ["ed@corp.example", "flo@corp.example", "gus@corp.example"]
    );
    // Ed reports to nobody in the loop any more: it is broken.
    e.hris.lock().unwrap().core[4]["attrs"]["manager"] = json!(1);
    e.sync("core", Options::default()).await.unwrap();
    assert!(e.query(on_cycles).is_empty(), "{:?}", e.query(on_cycles));
}

// ---- Sync integrity (issue 14) ----

fn stamp(e: &Env) -> Vec<String> {
    one(&e.query("select run_id, source, applied_at is not null, published_at is not null from directory_info")).to_vec()
}

#[tokio::test]
async fn a_leaver_removed_while_paging_plus_a_hire_terminates_nobody_who_is_still_listed() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    {
        let mut h = e.hris.lock().unwrap();
        h.core_pages = 0;
        // After page 1 ([1, 2, 3]) Cy (id 3, already read) leaves and a hire arrives: page 2
        // at offset 3 now starts at Ed, so Di (id 4) is skipped, and the total still matches.
        h.after_core_page = Some((1, |core| {
            core.remove(2);
            core.push(person(13, "Nia", "Hire", "nia@corp.example", Some(1)));
        }));
    }
    let r = e.sync("core", Options::default()).await.unwrap();
    assert_eq!(r.applied.terminated, 0, "{:?}", r.applied);
    assert_eq!(
        r.relisted, 1,
        "Di was found again by the confirmation listing"
    );
    assert_eq!(r.applied.created, 1, "the hire");
    assert_eq!(
        one(&e.query("select status from people where work_email = 'di@corp.example'"))[0],
        "active"
    );
    // Cy really left: the next listing (which cannot skip) confirms it.
    e.hris.lock().unwrap().after_core_page = None;
    let r = e.sync("core", Options::default()).await.unwrap();
    assert_eq!(
        (r.applied.terminated, r.relisted),
        (1, 0),
        "{:?}",
        r.applied
    );
    assert_eq!(
        one(&e.query("select status from people where work_email = 'cy@corp.example'"))[0],
        "terminated"
    );
    assert_eq!(
        one(&e.query("select status from people where work_email = 'di@corp.example'"))[0],
        "active"
    );
}

#[tokio::test]
async fn a_real_leaver_is_confirmed_by_the_second_listing_and_leaves_in_the_same_run() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    let pages_before = {
        let mut h = e.hris.lock().unwrap();
        h.core.remove(3); // Di leaves
        h.core_pages = 0;
        0
    };
    let r = e.sync("core", Options::default()).await.unwrap();
    assert_eq!((r.applied.terminated, r.relisted), (1, 0));
    // 11 records at 3 per page, twice: the departure was confirmed by a second listing.
    assert_eq!(e.hris.lock().unwrap().core_pages - pages_before, 8);
}

#[tokio::test]
async fn an_api_that_ignores_the_offset_fails_as_an_incomplete_listing() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    e.hris.lock().unwrap().ignore_offset = true;
    let err = e.sync("core", Options::default()).await.unwrap_err();
    assert!(matches!(err, SyncError::Repeated { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("reported 12 records but only 3 distinct record keys arrived"),
        "{text}"
    );
    assert!(text.contains("nothing was applied"), "{text}");
    assert_eq!(
        e.query("select count(*) from people where status = 'terminated'")[0][0],
        "0"
    );
    // The failed run is on record in the state database, with a code.
    let state = e.cfg().state_dir().join("state.duckdb");
    let failed = query_file(
        &state,
        "select outcome, error_code from sync_runs order by id desc limit 1",
    );
    assert_eq!(one(&failed), ["failed", "listing_incomplete"]);
}

#[tokio::test]
async fn a_repeated_record_is_a_data_problem_and_the_first_occurrence_wins() {
    let e = env().await;
    {
        let mut h = e.hris.lock().unwrap();
        // The last page carries a copy of Ed (index 4) again; the total stays 12. (On an
        // earlier page the extra record would move the next offset past one record: the
        // listing would then be incomplete, which the next test covers.)
        h.repeat_on_core_page = Some((4, 4));
    }
    let r = e.sync("core", Options::default()).await.unwrap();
    assert_eq!(r.duplicates, 1);
    assert_eq!(r.run.records, 13);
    let problems = e.query(
        "select source, record_key, kind, detail from data_problems where kind = 'duplicate_record_key'",
    );
    let p = one(&problems);
    assert_eq!(&p[..3], ["core", "5", "duplicate_record_key"]);
    assert!(p[3].contains("2 times"), "{p:?}");
    // Resolved by a clean listing.
    e.hris.lock().unwrap().repeat_on_core_page = None;
    e.sync("core", Options::default()).await.unwrap();
    assert_eq!(
        e.query("select count(*) from data_problems where kind = 'duplicate_record_key'")[0][0],
        "0"
    );
}

#[tokio::test]
async fn a_value_that_fails_to_convert_keeps_the_last_good_one() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    {
        let mut h = e.hris.lock().unwrap();
        h.core[2]["attrs"]["hired"] = json!("2023-02-30");
        h.core[2]["attrs"]["kind"] = json!("freelance");
        h.core[2]["attrs"]["title"] = json!("Staff Engineer");
        // Di: a 20 kB title and cost center, over `limits.max_field_bytes` (8 KiB).
        h.core[3]["attrs"]["title"] = json!("x".repeat(20_000));
        h.core[3]["attrs"]["cc"] = json!("y".repeat(20_000));
    }
    let r = e.sync("core", Options::default()).await.unwrap();
    assert_eq!(
        r.applied.updated, 1,
        "only Cy's title changed: {:?}",
        r.applied
    );
    let di = e.query(
        "select job_title, custom['cost_center'] from people where work_email = 'di@corp.example'",
    );
    assert_eq!(one(&di), ["Engineer", "CC-1"]);
    let di_problem = e.query(
        "select field, length(detail) < 1000 from data_problems where kind = 'field_problem' and record_key = '4'",
    );
    assert_eq!(one(&di_problem), ["job_title,custom.cost_center", "true"]);
    let cy = e.query(
        "select start_date, worker_type, job_title from people where work_email = 'cy@corp.example'",
    );
    assert_eq!(one(&cy), ["2020-03-01", "employee", "Staff Engineer"]);
    // No history row closed for the fields that failed.
    assert_eq!(
        e.query(
            "select count(*) from person_values where work_email = 'cy@corp.example'
             and field in ('start_date', 'worker_type') and valid_to is not null"
        )[0][0],
        "0"
    );
    let problems = e.query(
        "select record_key, field, detail from data_problems
         where kind = 'field_problem' and record_key = '3'",
    );
    let p = one(&problems);
    let mut fields: Vec<&str> = p[1].split(',').collect();
    fields.sort();
    assert_eq!(fields, ["start_date", "worker_type"], "{p:?}");
    // And the good value stays through later syncs of the same bad record.
    let again = e.sync("core", Options::default()).await.unwrap();
    assert!(again.applied.unchanged);
    assert_eq!(
        one(&e.query("select start_date from people where work_email = 'cy@corp.example'"))[0],
        "2020-03-01"
    );
}

#[tokio::test]
async fn a_crash_between_commit_and_publish_is_caught_up_by_the_next_start_and_run() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    let first = stamp(&e);
    assert_eq!(first[1], "core");
    let old = std::fs::read(e.directory()).unwrap();
    e.hris.lock().unwrap().core[0]["attrs"]["title"] = json!("CEO");
    e.sync("core", Options::default()).await.unwrap();
    // The published copy as a crash before the rename leaves it: the previous run's.
    std::fs::write(e.directory(), &old).unwrap();
    assert_eq!(stamp(&e), first);
    // Start-up catches up.
    drop(roster::sync::open_store(&e.cfg()).unwrap());
    assert_ne!(stamp(&e), first);
    assert_eq!(
        one(&e.query("select job_title from people where work_email = 'ada@corp.example'"))[0],
        "CEO"
    );
    // So does a run that changes nothing, in a process that was already running.
    let cfg = e.cfg();
    let mut store = roster::sync::open_store(&cfg).unwrap();
    std::fs::write(e.directory(), &old).unwrap();
    let plan = cfg.sources.iter().find(|s| s.name == "core").unwrap();
    let r = roster::sync::sync_source(&cfg, &mut store, plan, &Options::default(), &mut NoProgress)
        .await
        .unwrap();
    drop(store);
    assert!(r.applied.unchanged && r.published, "{r:?}");
    assert_eq!(
        one(&e.query("select job_title from people where work_email = 'ada@corp.example'"))[0],
        "CEO"
    );
    // A fresh directory is not published again.
    let r = e.sync("core", Options::default()).await.unwrap();
    assert!(!r.published);
}

#[tokio::test]
async fn temporary_copies_left_by_a_crashed_publish_are_removed() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    let dir = e.directory().parent().unwrap().to_path_buf();
    let leaks = [
        ".directory.duckdb.4242.tmp",
        ".directory.duckdb.4242.tmp.wal",
    ];
    for f in leaks {
        std::fs::write(dir.join(f), "personal data").unwrap();
    }
    let unrelated = dir.join(".other.duckdb.4242.tmp");
    std::fs::write(&unrelated, "not ours").unwrap();
    drop(roster::sync::open_store(&e.cfg()).unwrap());
    for f in leaks {
        assert!(!dir.join(f).exists(), "{f} was left behind");
    }
    assert!(unrelated.exists());
}

#[tokio::test]
async fn an_empty_first_listing_publishes_an_empty_directory() {
    let e = env().await;
    e.hris.lock().unwrap().core.clear();
    let r = e.sync("core", Options::default()).await.unwrap();
    assert!(r.published, "{r:?}");
    assert_eq!(e.query("select count(*) from people")[0][0], "0");
}

#[tokio::test]
async fn a_missing_state_database_is_refused_when_a_directory_shows_there_was_one() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    let cfg = e.cfg();
    std::fs::remove_file(cfg.state_dir().join("state.duckdb")).unwrap();
    let err = roster::sync::open_store(&cfg).unwrap_err().to_string();
    assert!(err.contains("is missing"), "{err}");
    assert!(err.contains("the published directory"), "{err}");
    assert!(err.contains("--rebaseline"), "{err}");
    assert!(!cfg.state_dir().join("state.duckdb").exists());
    // Starting over on purpose works, and the first sync is a baseline.
    drop(roster::sync::open_store_with(&cfg, true).unwrap());
    let r = e.sync("core", Options::default()).await.unwrap();
    assert_eq!(r.applied.created, 10);
}

#[tokio::test]
async fn coverage_of_the_work_email_counts_records_that_could_not_be_mapped() {
    let e = env().await;
    let mapping = e.config.join("mappings/core.yaml");
    let base = std::fs::read_to_string(&mapping).unwrap();
    std::fs::write(
        &mapping,
        format!("{base}coverage:\n  work_email: {{max_empty: 5%}}\n"),
    )
    .unwrap();
    {
        let mut h = e.hris.lock().unwrap();
        for p in h.core.iter_mut().skip(1) {
            p["attrs"]["email"] = Value::Null;
        }
    }
    let r = e.sync("core", Options::default()).await.unwrap();
    assert_eq!(
        r.coverage,
        ["`work_email` is empty in 10 of 11 records (91%, allowed 5%)"]
    );
}

#[tokio::test]
async fn a_token_the_hris_echoes_escaped_never_reaches_the_state_events_or_the_directory() {
    let e = env().await;
    // A webhook, so a failed run writes a `sync.failed` event to the outbox.
    let roster_yaml = e.config.join("roster.yaml");
    let base = std::fs::read_to_string(&roster_yaml).unwrap();
    std::fs::write(
        &roster_yaml,
        format!(
            "{base}webhooks:\n  ops:\n    url: http://127.0.0.1:9/hook\n    allow_private_network: true\n    secret: {{file: secrets/hook}}\n    events: [\"*\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        e.config.join("secrets/hook"),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    .unwrap();
    e.sync("core", Options::default()).await.unwrap();
    // Now the credential is rotated to one the HRIS rejects and echoes.
    let canary = "CANARY/zq+8x/Tok=";
    std::fs::write(e.config.join("secrets/core"), canary).unwrap();
    let err = e.sync("core", Options::default()).await.unwrap_err();
    let forms = [
        canary.to_string(),
        canary.replace('/', "\\/"),
        canary.replace('/', "\\u002F"),
        canary
            .replace('/', "%2F")
            .replace('+', "%2B")
            .replace('=', "%3D"),
        "zq+8x".to_string(),
    ];
    let text = format!("{err} {err:?}");
    for f in &forms {
        assert!(!text.contains(f.as_str()), "{f} in the error: {text}");
    }
    let state = e.cfg().state_dir().join("state.duckdb");
    let dumps = [
        query_file(
            &state,
            "select coalesce(error, '') || error_code from sync_runs where outcome = 'failed'",
        ),
        query_file(&state, "select data from events where type = 'sync.failed'"),
    ];
    assert_eq!(dumps[1].len(), 1, "{dumps:?}");
    assert!(dumps[1][0][0].contains("hris_auth_rejected"), "{dumps:?}");
    for rows in &dumps {
        for f in &forms {
            assert!(
                !format!("{rows:?}").contains(f.as_str()),
                "{f} stored: {rows:?}"
            );
        }
    }
}

#[tokio::test]
async fn people_marked_as_left_in_bulk_are_held_like_people_gone_from_the_listing() {
    // A mapping that keeps `inactive` people (as Kenjo's does: a deactivated account is a
    // leaver or a pre-hire not yet activated) instead of excluding them.
    let e = env().await;
    let mapping = e.config.join("mappings/core.yaml");
    let text = std::fs::read_to_string(&mapping).unwrap();
    std::fs::write(
        &mapping,
        text.replace("inactive: terminated", "inactive: inactive"),
    )
    .unwrap();
    e.sync("core", Options::default()).await.unwrap();
    let active =
        |e: &Env| e.query("select count(*) from people where status <> 'terminated'")[0][0].clone();
    let before = active(&e);

    // Half the company deactivated at once: they are still listed, so nobody is "removed",
    // but every one of them would be offboarded.
    for p in e.hris.lock().unwrap().core.iter_mut().take(6) {
        p["attrs"]["status"] = json!("inactive");
    }
    let r = e.sync("core", Options::default()).await.unwrap();
    let reason = r.applied.held.clone().expect("held");
    assert!(reason.contains("marked as left"), "{reason}");
    assert_eq!(active(&e), before, "nothing applied while held");

    let r = e
        .sync(
            "core",
            Options {
                allow_removals: true,
                ..Options::default()
            },
        )
        .await
        .unwrap();
    assert!(r.applied.held.is_none());
    assert!(r.applied.terminated >= 5, "{:?}", r.applied);
    assert_eq!(
        one(&e.query("select status from people where work_email = 'ada@corp.example'")),
        ["terminated"]
    );
    // The store's SQL twin of the status rule agrees with the merge on `inactive`: no status
    // is "due" to change, so the next run with nothing new is quiet instead of re-merging
    // every leaver.
    let cfg = e.cfg();
    let today = jiff::Zoned::now()
        .with_time_zone(cfg.time_zone())
        .date()
        .to_string();
    let store = roster::sync::open_store(&cfg).unwrap();
    assert!(!store.status_due(&today).unwrap());
}

/// The merge reads, merges and appends the affected people a chunk of 5,000 at a time, the
/// merging on a second thread while the next chunk is read. Across three chunks every person
/// arrives once, changes land on the right people, and a leaver in the last chunk leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_several_merge_chunks_is_merged_whole() {
    let e = env().await;
    let provider = e.config.join("providers/core.yaml");
    let yaml = std::fs::read_to_string(&provider).unwrap();
    std::fs::write(&provider, yaml.replace("page_size: 3", "page_size: 500")).unwrap();
    let n = 12_345u32;
    e.hris.lock().unwrap().core = (1..=n)
        .map(|i| {
            let email = format!("p{i:05}@corp.example");
            person(
                i,
                "First",
                &format!("Last{i}"),
                &email,
                (i > 1).then_some(i / 8 + 1),
            )
        })
        .collect();
    let first = e.sync("core", Options::default()).await.unwrap();
    assert_eq!(first.applied.created, u64::from(n));
    let rows = e.query(
        "select count(*), count(distinct work_email), count(manager_email), min(last_name), max(last_name)
         from people",
    );
    assert_eq!(
        one(&rows),
        [
            n.to_string(),
            n.to_string(),
            (n - 1).to_string(),
            "Last1".to_string(),
            "Last9999".to_string()
        ]
    );
    // One title changed in each chunk (emails sort by number), one person gone from the last.
    {
        let mut h = e.hris.lock().unwrap();
        for i in [10usize, 5_010, 10_010] {
            h.core[i - 1]["attrs"]["title"] = json!(format!("Title {i}"));
        }
        h.core.retain(|p| p["id"] != json!(12_300));
    }
    let second = e.sync("core", Options::default()).await.unwrap();
    assert_eq!(
        (
            second.applied.created,
            second.applied.updated,
            second.applied.terminated
        ),
        (0, 3, 1)
    );
    let changed = e.query(
        "select work_email, job_title from people where job_title <> 'Engineer' order by work_email",
    );
    assert_eq!(
        changed,
        [
            vec!["p00010@corp.example".to_string(), "Title 10".into()],
            vec!["p05010@corp.example".into(), "Title 5010".into()],
            vec!["p10010@corp.example".into(), "Title 10010".into()],
        ]
    );
    assert_eq!(
        e.query("select work_email from people where status = 'terminated'"),
        [vec!["p12300@corp.example".to_string()]]
    );
    assert_eq!(
        e.query("select count(*) from people")[0][0],
        n.to_string(),
        "a leaver stays in the directory, terminated"
    );
    let history = e.query(
        "select count(*) from person_values where field = 'job_title' and valid_to is null and value like 'Title%'",
    );
    assert_eq!(history[0][0], "3");
}

/// Two records of one source with the same work email: the one with the lowest record key
/// (compared as text, as `data_problems` says) gives the person's values, wherever each stands
/// in the listing, and one `duplicate_work_email` problem names the key that is used.
#[tokio::test]
async fn of_two_records_with_one_email_the_lowest_key_wins_wherever_it_is_listed() {
    let e = env().await;
    {
        let mut h = e.hris.lock().unwrap();
        // Key "20" sorts before "3" as text: listed after Cy (3), it still wins.
        let mut dup = person(20, "Cyrus", "Dup", "cy@corp.example", Some(1));
        dup["attrs"]["title"] = json!("Duplicate Title");
        dup["attrs"]["cc"] = json!("CC-20");
        h.core.push(dup);
    }
    e.sync("core", Options::default()).await.unwrap();
    assert_eq!(
        e.query(
            "select last_name, job_title, employee_id, manager_email, custom['cost_center']
             from people where work_email = 'cy@corp.example'"
        ),
        [vec![
            "Dup".to_string(),
            "Duplicate Title".into(),
            "20".into(),
            "ada@corp.example".into(),
            "CC-20".into()
        ]]
    );
    let problem =
        e.query("select record_key, detail from data_problems where kind = 'duplicate_work_email'");
    assert_eq!(problem.len(), 1, "{problem:?}");
    assert_eq!(problem[0][0], "20");
    // Listed first instead, with the other record changed: the same record still wins.
    {
        let mut h = e.hris.lock().unwrap();
        let dup = h.core.pop().unwrap();
        h.core.insert(0, dup);
        let cy = h.core.iter_mut().find(|p| p["id"] == 3).unwrap();
        cy["attrs"]["title"] = json!("Cy's New Title");
    }
    e.sync("core", Options::default()).await.unwrap();
    // The changed record was staged (so the person was merged again) and still lost.
    assert_eq!(
        e.query(
            "select count(*) from raw_records
             where source = 'core' and record_key = '3' and raw like '%Cy''s New Title%'"
        ),
        [vec!["1".to_string()]]
    );
    assert_eq!(
        e.query("select job_title from people where work_email = 'cy@corp.example'"),
        [vec!["Duplicate Title".to_string()]]
    );
}

/// A sync compares records by their bytes (as the API sent them): the same records sent in
/// other bytes are all mapped again, and since their values are the same, nobody changes, no
/// history is written, and the stored JSON is what the API sent.
#[tokio::test]
async fn the_same_records_in_other_bytes_are_mapped_again_and_change_nobody() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    let history = "select count(*) from person_values";
    let before = e.query(history);
    e.hris.lock().unwrap().pretty = true;
    let r = e.sync("core", Options::default()).await.unwrap();
    let listed = e.hris.lock().unwrap().core.len() as u64;
    assert_eq!(r.run.changed_records, listed);
    assert_eq!(
        (r.applied.created, r.applied.updated, r.applied.terminated),
        (0, 0, 0),
        "{:?}",
        r.applied
    );
    assert_eq!(e.query(history), before);
    let raw = e.query("select raw from source_records where source = 'core' and record_key = '3'");
    assert!(one(&raw)[0].starts_with("{\n  "), "{raw:?}");
    // Sent the same way again, they are unchanged.
    let r = e.sync("core", Options::default()).await.unwrap();
    assert_eq!(r.run.changed_records, 0);
    assert!(r.applied.unchanged);
}

/// A record nested deeper than a JSON tree may be (128 levels) where the mapping reads is
/// valid JSON the sync cannot map: it is a failed record, a data problem, and since its key
/// is unknown nobody leaves on its account. The other records are applied. (Before records
/// were compared by their bytes, the whole page failed to parse and the sync with it.) The
/// same depth in a member the mapping does not read is skipped, not built: that record maps.
#[tokio::test]
async fn a_record_too_deep_to_read_is_a_data_problem_and_nobody_leaves() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    let mut deep = json!("bottom");
    for _ in 0..200 {
        deep = json!([deep]);
    }
    {
        let mut h = e.hris.lock().unwrap();
        // `job_title` reads `attrs.title`; nothing reads `attrs.unread`.
        h.core[3]["attrs"]["title"] = deep.clone();
        h.core[1]["attrs"]["unread"] = deep;
        h.core[2]["attrs"]["title"] = json!("Senior Engineer");
    }
    let r = e.sync("core", Options::default()).await.unwrap();
    assert_eq!(r.applied.terminated, 0, "{:?}", r.applied);
    assert_eq!(r.applied.updated, 1, "{:?}", r.applied);
    assert_eq!(
        e.query(
            "select work_email, status, job_title from people
             where work_email in ('ben@corp.example', 'cy@corp.example', 'di@corp.example') order by 1"
        ),
        [
            vec!["ben@corp.example".to_string(), "active".into(), "Engineer".into()],
            vec!["cy@corp.example".into(), "active".into(), "Senior Engineer".into()],
            vec!["di@corp.example".into(), "active".into(), "Engineer".into()]
        ]
    );
    let problems = e.query(
        "select kind, detail, record_key from data_problems where detail like '%cannot be read%'",
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0][0], "unmappable_record");
    assert!(problems[0][1].contains("recursion limit"), "{problems:?}");
    // Its key is unknown: the record goes by its content hash.
    assert!(problems[0][2].starts_with('#'), "{problems:?}");
    // Ben's record, deep where nothing reads, is stored as sent and mapped.
    assert_eq!(
        e.query(
            "select outcome, length(raw) > 400 from raw_records where work_email = 'ben@corp.example'"
        ),
        [vec!["kept".to_string(), "true".into()]]
    );
}

/// A statement that fails inside a sync's transaction aborts it in DuckDB: every statement
/// after it fails with "Current transaction is aborted". The sync must report the statement's
/// own error, roll back, and leave the store usable (it once set DuckDB's threads first, in
/// the aborted transaction: that error replaced the real one and the transaction stayed
/// open, so the publish after it failed the same way).
#[tokio::test]
async fn a_statement_failing_inside_the_apply_is_reported_and_rolled_back() {
    let e = env().await;
    e.sync("core", Options::default()).await.unwrap();
    let state = e.cfg().state_dir().join("state.duckdb");
    {
        let c = duckdb::Connection::open(&state).unwrap();
        c.execute_batch("DROP TABLE data_problems").unwrap();
    }
    e.hris.lock().unwrap().core[2]["attrs"]["title"] = json!("Senior Engineer");
    let (cfg, mut store, plan) = e.open("core");
    let err = roster::sync::sync_source(
        &cfg,
        &mut store,
        &plan,
        &Options::default(),
        &mut NoProgress,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("data_problems"), "{err}");
    assert!(!err.contains("aborted"), "{err}");
    // Rolled back: the store answers, and nothing of the run was applied.
    assert!(!store.publish_if_stale().unwrap());
    assert_eq!(
        one(&e.query("select job_title from people where work_email = 'cy@corp.example'"))[0],
        "Engineer"
    );
}

/// The daemon keeps one store across syncs, and the merge's reads are prepared once per
/// connection while the tables they read are made again by every sync: a second and a third
/// sync on the same store read what their own run staged, not what the first one did.
#[tokio::test]
async fn syncs_on_one_store_each_merge_their_own_changes() {
    let e = env().await;
    let (cfg, mut store, plan) = e.open("core");
    let opts = Options {
        want_changes: true,
        ..Options::default()
    };
    let first = roster::sync::sync_source(&cfg, &mut store, &plan, &opts, &mut NoProgress)
        .await
        .unwrap();
    assert!(first.applied.created > 0);
    for title in ["Staff Engineer", "Principal Engineer"] {
        e.hris.lock().unwrap().core[0]["attrs"]["title"] = json!(title);
        let r = roster::sync::sync_source(&cfg, &mut store, &plan, &opts, &mut NoProgress)
            .await
            .unwrap();
        let changes: Vec<(String, Option<String>)> = r
            .applied
            .people
            .iter()
            .flat_map(|p| p.2.iter().map(|c| (c.field.clone(), c.new.clone())))
            .collect();
        assert_eq!(
            changes,
            [("job_title".to_string(), Some(title.to_string()))]
        );
    }
    drop(store);
    let email = e.hris.lock().unwrap().core[0]["attrs"]["email"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        one(&e.query(&format!(
            "select job_title from people where work_email = '{email}'"
        )))[0],
        "Principal Engineer"
    );
}

/// After an apply that changed a few people, `data_problems` is written again only where
/// the change can reach (see `ProblemScope::Touched` in the store); the rest stays as the
/// apply before left it. Each step below moves a problem in or out, one of them through a
/// record the sync did not touch (another source's record whose mapped manager email
/// joins the directory), and after each the table must be what writing every row again
/// gives.
#[tokio::test]
async fn problems_kept_up_where_a_change_reaches_match_a_full_recount() {
    let e = env().await;
    // Side records carry a manager id too (it resolves within side only). Mo's resolves
    // nowhere, and his mapped manager email is nobody's yet.
    let side = SIDE_MAPPING.to_string() + "  manager_id: $.mgr\n";
    std::fs::write(e.config.join("mappings/side.yaml"), side).unwrap();
    {
        let mut h = e.hris.lock().unwrap();
        h.side[1]["mgr"] = json!("S-404");
        h.side[1]["boss"] = json!("nat@corp.example");
    }
    let removals = Options {
        allow_removals: true,
        ..Options::default()
    };
    let drift = |when: &str| {
        let (_, store, _) = e.open("core");
        let drift = store.problems_drift().unwrap();
        assert!(drift.is_empty(), "{when}: {drift:#?}");
    };
    let has = |kind: &str, who: &str| {
        e.query("select kind, coalesce(work_email, record_key) from data_problems")
            .contains(&vec![kind.to_string(), who.to_string()])
    };
    let step = |f: &dyn Fn(&mut Hris)| f(&mut e.hris.lock().unwrap());
    e.sync("core", Options::default()).await.unwrap();
    e.sync("side", Options::default()).await.unwrap();
    drift("first syncs");
    assert!(has("unresolved_manager", "lu@corp.example"));
    assert!(has("unresolved_manager", "mo@corp.example"));
    assert!(has("missing_work_email", "11"));

    // Two core records with one email; Kim gets one; Cy's birth date cannot be read.
    step(&|h| {
        h.core[3]["attrs"]["email"] = json!("cy@corp.example");
        h.core[10]["attrs"]["email"] = json!("kim@corp.example");
        h.core[2]["attrs"]["born"] = json!("31.02.1990");
    });
    e.sync("core", removals.clone()).await.unwrap();
    drift("a duplicate email, a fixed record, a field problem");
    assert!(has("duplicate_work_email", "cy@corp.example"));
    assert!(!has("missing_work_email", "11"));
    assert!(has("field_problem", "cy@corp.example"));

    // Nat joins through core: Mo's manager email is now someone's, though Mo's record is
    // unchanged and side was not synced.
    step(&|h| {
        h.core
            .push(person(13, "Nat", "New", "nat@corp.example", Some(1)))
    });
    e.sync("core", removals.clone()).await.unwrap();
    drift("Nat joins");
    assert!(!has("unresolved_manager", "mo@corp.example"));

    // Ben's core record goes: the ids of Cy and Hal (2) resolve no more.
    step(&|h| {
        h.core.remove(1);
    });
    e.sync("core", removals.clone()).await.unwrap();
    drift("core without Ben");
    assert!(has("unresolved_manager", "hal@corp.example"));
    step(&|h| {
        h.core
            .insert(1, person(2, "Ben", "Lead", "ben@corp.example", Some(1)))
    });
    e.sync("core", removals.clone()).await.unwrap();
    drift("Ben back in core");
    assert!(!has("unresolved_manager", "hal@corp.example"));

    // Everything back: the duplicate, the field problem and Lu's orphan id go; Kim's
    // missing email returns.
    step(&|h| {
        h.core[3]["attrs"]["email"] = json!("di@corp.example");
        h.core[10]["attrs"]["email"] = Value::Null;
        h.core[2]["attrs"]["born"] = json!("09.11.1990");
        h.core[11]["attrs"]["manager"] = json!(1);
    });
    e.sync("core", removals).await.unwrap();
    drift("core as it was, Lu's manager found");
    assert!(!has("duplicate_work_email", "cy@corp.example"));
    assert!(!has("field_problem", "cy@corp.example"));
    assert!(!has("unresolved_manager", "lu@corp.example"));
    assert!(has("missing_work_email", "11"));
}
