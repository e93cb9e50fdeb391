//! Incremental reads end to end: a fake HRIS on 127.0.0.1:0 whose listing takes
//! `modified_after` the way Merge's does (records Roster should re-read are those the HRIS
//! stamped later than the cursor; a cursor without a time zone is refused with a 400, as a
//! Django API refuses a naive datetime), read through a spec with `incremental:` into a real
//! DuckDB directory.
//!
//! The fake stamps `modified_at` with its own clock, which can run behind this host's (the
//! clock skew a lookback exists for), and can change its data while a listing is being paged
//! (a record changed during a run, after its page went by). The tests are the anchors'
//! well-known incremental bugs: a partial listing that removes people, a cursor that moves on
//! a failed run, a cursor without lookback or without a time zone, and a mapping change that
//! leaves the unlisted records mapped the old way.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::provider_common::Env;
use roster::sync::{NoProgress, Options, Report, SyncError};

const TOKEN: &str = "inc-token-7Hq2Lm9Xc4";

struct Person {
    id: u32,
    email: String,
    title: String,
    modified_at: Timestamp,
}

/// A change the fake makes after serving a page.
type Change = Box<dyn FnOnce(&mut Fake) + Send>;

#[derive(Default)]
struct Fake {
    people: Vec<Person>,
    /// How far the HRIS clock runs behind this host's.
    behind: SignedDuration,
    /// The `modified_after` of each listing (its first page), `None` for a full listing.
    listings: Vec<Option<String>>,
    /// Fail the next request with this status.
    fail_next: Option<u16>,
    /// After the next page served, change the data (the HRIS changes during a run).
    after_page: Option<Change>,
}

impl Fake {
    fn now(&self) -> Timestamp {
        Timestamp::now() - self.behind
    }

    /// Adds or changes a person, stamped with the HRIS clock.
    fn upsert(&mut self, id: u32, email: &str, title: &str) {
        let now = self.now();
        match self.people.iter_mut().find(|p| p.id == id) {
            Some(p) => {
                p.title = title.into();
                p.modified_at = now;
            }
            None => {
                self.people.push(Person {
                    id,
                    email: email.into(),
                    title: title.into(),
                    modified_at: now,
                });
                self.people.sort_by_key(|p| p.id);
            }
        }
    }
}

type Shared = Arc<Mutex<Fake>>;

/// `GET /employees?modified_after=&cursor=&page_size=`: sorted by id, the cursor is the last
/// id served, `next` is null on the last page.
async fn employees(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"detail": "Invalid token."})),
        )
            .into_response();
    }
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut f = s.lock().unwrap();
    if let Some(status) = f.fail_next.take() {
        return (StatusCode::from_u16(status).unwrap(), "upstream trouble").into_response();
    }
    let since = match get("modified_after") {
        None => None,
        Some(text) => match text.parse::<Timestamp>() {
            Ok(t) => Some((text, t)),
            Err(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"modified_after": ["Enter a valid date/time with a time zone."]})),
                )
                    .into_response();
            }
        },
    };
    let after: u32 = get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    if after == 0 {
        f.listings
            .push(since.as_ref().map(|(text, _)| text.clone()));
    }
    let size: usize = get("page_size").and_then(|c| c.parse().ok()).unwrap_or(2);
    let matching: Vec<&Person> = f
        .people
        .iter()
        .filter(|p| p.id > after && since.as_ref().is_none_or(|(_, t)| p.modified_at > *t))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .take(size)
        .map(|p| {
            json!({
                "id": p.id.to_string(), "work_email": p.email, "job_title": p.title,
                "first_name": "P", "last_name": p.id.to_string(),
                "modified_at": p.modified_at.to_string(),
            })
        })
        .collect();
    let next = (matching.len() > size).then(|| page.last().unwrap()["id"].clone());
    if let Some(change) = f.after_page.take() {
        change(&mut f);
    }
    Json(json!({"next": next, "results": page})).into_response()
}

const PROVIDER: &str = r#"
title: Changes API
base_url: http://ADDR
credentials:
  token: {description: API token}
auth:
  kind: bearer
  token: "{credentials.token}"
retry:
  max_attempts: 1
streams:
  employees:
    request:
      path: /employees
    pagination:
      kind: cursor
      cursor: $.next
      param: cursor
      size_param: page_size
      page_size: 2
    records: $.results[*]
    id: $.id
    incremental:
      param: modified_after
"#;

const MAPPING: &str = r#"
provider: hr
stream: employees
fields:
  employee_id: $.id
  work_email: $.work_email
  first_name: $.first_name
  last_name: $.last_name
  job_title: $.job_title
"#;

async fn setup(people: &[(u32, &str, &str)]) -> Env<Shared> {
    let app = axum::Router::new().route("/employees", get(employees));
    let mut fake = Fake::default();
    for (id, email, title) in people {
        fake.upsert(*id, email, title);
    }
    // Last changed long before the first sync (out of reach of the lookback).
    for p in &mut fake.people {
        p.modified_at -= SignedDuration::from_hours(24);
    }
    let (env, addr) = Env::serving(fake, app).await;
    env.write(
        "providers/hr.yaml",
        PROVIDER.replace("ADDR", &addr.to_string()),
    );
    std::fs::create_dir_all(env.config.join("mappings")).unwrap();
    env.write("mappings/hr.yaml", MAPPING);
    env.write_secret("hr", TOKEN);
    env.write_roster(
        "Europe/Berlin",
        "  hr:\n    provider: hr\n    credentials:\n      token: {file: secrets/hr}\n",
    );
    env
}

const ANA: (u32, &str, &str) = (1, "ana@corp.example", "Engineer");
const BO: (u32, &str, &str) = (2, "bo@corp.example", "Engineer");
const CY: (u32, &str, &str) = (3, "cy@corp.example", "Designer");
const DI: (u32, &str, &str) = (4, "di@corp.example", "Analyst");

async fn sync_with(env: &Env<Shared>, opts: Options) -> Result<Report, SyncError> {
    let cfg = env.cfg();
    let mut store = roster::sync::open_store(&cfg).unwrap();
    roster::sync::sync_source(&cfg, &mut store, &cfg.sources[0], &opts, &mut NoProgress).await
}

async fn sync(env: &Env<Shared>) -> Report {
    sync_with(env, Options::default()).await.unwrap()
}

fn status_and_title(env: &Env<Shared>, email: &str) -> (String, String) {
    let row = env.row_of(email, "status, job_title");
    (row[0].clone(), row[1].clone())
}

#[tokio::test]
async fn a_partial_listing_updates_and_creates_but_only_a_full_read_removes() {
    let env = setup(&[ANA, BO, CY]).await;
    let first = sync(&env).await;
    assert_eq!(first.run.listing.as_deref(), Some("full"));
    assert_eq!(first.run.since, None);
    assert_eq!(first.applied.created, 3);

    // Bo is promoted, Di is hired, Cy is deleted from the HRIS outright.
    {
        let mut f = env.fake();
        f.upsert(2, BO.1, "Staff Engineer");
        f.upsert(4, DI.1, DI.2);
        f.people.retain(|p| p.id != 3);
    }
    let second = sync(&env).await;
    assert_eq!(second.run.listing.as_deref(), Some("incremental"));
    assert_eq!(second.run.records, 2, "only the changed records are listed");
    assert_eq!(second.run.changed_records, 2);
    assert_eq!(second.applied.created, 1);
    assert_eq!(second.applied.updated, 1);
    assert_eq!(second.applied.terminated, 0);
    assert_eq!(
        status_and_title(&env, BO.1),
        ("active".into(), "Staff Engineer".into())
    );
    assert_eq!(
        status_and_title(&env, DI.1),
        ("active".into(), "Analyst".into())
    );
    assert_eq!(
        status_and_title(&env, CY.1),
        ("active".into(), "Designer".into()),
        "a record a partial listing does not list is unchanged, not gone"
    );
    let ana = env.row_of(ANA.1, "job_title");
    assert_eq!(ana, vec!["Engineer".to_string()]);
    // The cursor went with an explicit zone (the fake refuses one without).
    let since = env.fake().listings[1]
        .clone()
        .expect("an incremental listing");
    assert!(since.ends_with('Z'), "{since}");
    since.parse::<Timestamp>().unwrap();
    assert_eq!(second.run.since.as_deref(), Some(since.as_str()));

    // Nothing changed since: the lookback re-reads Bo and Di (changed minutes ago) and finds
    // them unchanged; nobody else is listed, and that is no reason to hold.
    let quiet = sync(&env).await;
    assert_eq!(quiet.run.listing.as_deref(), Some("incremental"));
    assert_eq!(quiet.run.records, 2);
    assert_eq!(quiet.run.changed_records, 0);
    assert_eq!(quiet.run.outcome, "unchanged");
    assert_eq!(quiet.applied.held, None);

    // `roster plan` reads as the next sync would (partial: no changes); `plan --full` shows
    // what a reconciliation would do.
    let plan = |full: bool| {
        let config = env.config.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_roster"));
            c.arg("plan");
            if full {
                c.arg("--full");
            }
            c.arg("--config").arg(config).output().unwrap()
        })
    };
    let partial = plan(false).await.unwrap();
    assert!(partial.status.success(), "{partial:?}");
    let said = String::from_utf8_lossy(&partial.stdout);
    assert!(
        said.contains("0 to terminate") && !said.contains("(terminate)"),
        "{said}"
    );
    let whole = plan(true).await.unwrap();
    assert!(whole.status.success(), "{whole:?}");
    assert!(
        String::from_utf8_lossy(&whole.stdout).contains("cy@corp.example (terminate)"),
        "{whole:?}"
    );

    // The reconciliation (`--full`, or `full_every` later) is what removes Cy.
    let full = sync_with(
        &env,
        Options {
            full: true,
            ..Options::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(full.run.listing.as_deref(), Some("full"));
    assert_eq!(full.run.records, 3);
    assert_eq!(full.applied.terminated, 1);
    assert_eq!(status_and_title(&env, CY.1).0, "terminated");
    assert_eq!(env.fake().listings.last().unwrap(), &None);

    // What each run read is in the published directory.
    let runs = env.query("select listing, since is not null from sync_runs order by id");
    let runs: Vec<(String, String)> = runs
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert_eq!(
        runs,
        [
            ("full".into(), "false".into()),
            ("incremental".into(), "true".into()),
            ("incremental".into(), "true".into()),
            ("full".into(), "false".into()),
        ]
    );
}

#[tokio::test]
async fn a_failed_run_does_not_move_the_cursor() {
    let env = setup(&[ANA, BO]).await;
    sync(&env).await;
    env.fake().upsert(1, ANA.1, "Lead");
    let good = sync(&env).await;
    assert_eq!(good.run.listing.as_deref(), Some("incremental"));

    // The next run fails halfway (its second page): nothing commits, the cursor stays.
    {
        let mut f = env.fake();
        f.upsert(3, CY.1, CY.2);
        f.upsert(4, DI.1, DI.2);
        f.upsert(5, "eve@corp.example", "Support");
        f.after_page = Some(Box::new(|f: &mut Fake| f.fail_next = Some(503)));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let failed = sync_with(&env, Options::default()).await.unwrap_err();
    assert!(failed.to_string().contains("503"), "{failed}");
    let retry = sync(&env).await;
    let listings = env.fake().listings.clone();
    let n = listings.len();
    assert_eq!(
        listings[n - 1],
        listings[n - 2],
        "the retry must ask from where the failed run asked: the failed run's records were never applied"
    );
    assert_eq!(retry.run.since, listings[n - 1]);
    assert_eq!(
        retry.applied.created, 3,
        "Cy, Di and Eve all arrive with the retry"
    );
    assert_eq!(
        env.query("select outcome, listing from sync_runs order by id")
            .into_iter()
            .map(|r| format!("{} {}", r[0], r[1]))
            .collect::<Vec<_>>(),
        [
            "applied full",
            "applied incremental",
            "failed incremental",
            "applied incremental"
        ]
    );
}

#[tokio::test]
async fn the_lookback_catches_what_changed_while_the_last_run_read_on_a_clock_that_runs_behind() {
    let env = setup(&[ANA, BO, CY]).await;
    // The HRIS's clock runs 90 s behind this host's: its stamps for a change made during a
    // run are earlier than the run's start as this host measured it.
    env.fake().behind = SignedDuration::from_secs(90);
    sync(&env).await;

    // Ana and Cy change; the incremental read lists both on its one page. After that page
    // went by, Ana changes again: this run has passed her.
    {
        let mut f = env.fake();
        f.upsert(1, ANA.1, "Lead");
        f.upsert(3, CY.1, "Design Lead");
        f.after_page = Some(Box::new(|f: &mut Fake| {
            f.upsert(1, ANA.1, "Director");
        }));
    }
    let during = sync(&env).await;
    assert_eq!(during.run.listing.as_deref(), Some("incremental"));
    assert_eq!(env.row_of(ANA.1, "job_title"), vec!["Lead".to_string()]);
    assert_eq!(
        env.row_of(CY.1, "job_title"),
        vec!["Design Lead".to_string()]
    );
    let stamp = env.fake().people[0].modified_at;
    let started: Timestamp = format!("{}Z", during.run.started_at.replace(' ', "T"))
        .parse()
        .unwrap();
    assert!(
        stamp < started,
        "the HRIS stamped Ana's second change before the run's start on this host's clock ({stamp} < {started}): a cursor at the run's start would miss it"
    );

    let next = sync(&env).await;
    assert_eq!(next.run.listing.as_deref(), Some("incremental"));
    assert_eq!(
        env.row_of(ANA.1, "job_title"),
        vec!["Director".to_string()],
        "the lookback re-reads the change the last run passed"
    );
    let since: Timestamp = next.run.since.as_deref().unwrap().parse().unwrap();
    assert!(since < stamp, "cursor {since} is before the change {stamp}");
    assert!(since <= started - SignedDuration::from_mins(10));
}

#[tokio::test]
async fn a_changed_mapping_reads_everything_again() {
    let env = setup(&[ANA, BO]).await;
    sync(&env).await;
    env.fake().upsert(2, BO.1, "Manager");
    assert_eq!(sync(&env).await.run.listing.as_deref(), Some("incremental"));

    // The mapping now fills `department` from the title: every record must be mapped again,
    // not only the ones that changed in the HRIS.
    env.write(
        "mappings/hr.yaml",
        format!("{MAPPING}  department: $.job_title\n"),
    );
    let remap = sync(&env).await;
    assert_eq!(remap.run.listing.as_deref(), Some("full"));
    assert_eq!(remap.run.records, 2);
    assert_eq!(
        env.row_of(ANA.1, "department"),
        vec!["Engineer".to_string()]
    );
    assert_eq!(env.row_of(BO.1, "department"), vec!["Manager".to_string()]);
    assert_eq!(env.fake().listings.last().unwrap(), &None);
    // And with it on record, the next run is incremental again.
    assert_eq!(sync(&env).await.run.listing.as_deref(), Some("incremental"));
}

#[tokio::test]
async fn a_source_forgotten_and_configured_again_is_read_whole() {
    let env = setup(&[ANA, BO, CY]).await;
    sync(&env).await;
    env.fake().upsert(1, ANA.1, "Lead");
    assert_eq!(sync(&env).await.run.listing.as_deref(), Some("incremental"));

    // `hr` leaves roster.yaml and is forgotten: its records go, its people leave.
    let roster = std::fs::read_to_string(env.config.join("roster.yaml")).unwrap();
    env.write("roster.yaml", roster.replace("  hr:\n", "  other:\n"));
    let cfg = env.cfg();
    let mut store = roster::sync::open_store(&cfg).unwrap();
    let allow = Options {
        allow_removals: true,
        ..Options::default()
    };
    roster::sync::forget_source(&cfg, &mut store, "hr", &allow).unwrap();
    drop(store);
    assert_eq!(status_and_title(&env, ANA.1).0, "terminated");

    // Back in roster.yaml: its last runs say a full read is recent, but nothing is stored,
    // so a partial listing would leave everyone who did not change just now out.
    env.write("roster.yaml", roster);
    let back = sync(&env).await;
    assert_eq!(back.run.listing.as_deref(), Some("full"));
    for who in [ANA.1, BO.1, CY.1] {
        assert_eq!(status_and_title(&env, who).0, "active", "{who}");
    }
}
