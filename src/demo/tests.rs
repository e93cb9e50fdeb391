//! The demo end to end: the dataset's composition, the written config through the one
//! pipeline, both sources through the real HTTP engine, and the built-in mappings.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::civil::{Date, date};
use serde_json::Value;

use super::*;
use crate::config::secret::{CredentialValue, ProcessEnv, Secret};
use crate::config::{Config, LoadOptions};
use crate::provider::fetch::{Observer, SourceClient};
use crate::provider::paginate::Summary;
use crate::provider::request::Context;

/// A Friday two weeks before the spring DST change, so pre-hires straddle it.
const TODAY: Date = date(2025, 3, 14);

#[derive(Default)]
struct Collect {
    records: Vec<Value>,
    requests: Vec<(String, u16)>,
}

impl Observer for Collect {
    fn request(&mut self, described: &str, status: u16) {
        self.requests.push((described.to_string(), status));
    }
    fn record(&mut self, record: Value) -> bool {
        self.records.push(record);
        true
    }
}

/// A client for `source` built the way `roster fetch` builds it, secrets from their files.
fn client(cfg: &Config, source: &str) -> SourceClient {
    let plan = cfg.sources.iter().find(|s| s.name == source).unwrap();
    let spec = &cfg.providers[&plan.provider].spec;
    let src = &cfg.deployment.spec.sources[&plan.name];
    let env = ProcessEnv {
        config_dir: cfg.dir.clone(),
    };
    let creds: BTreeMap<String, Secret> = src
        .credentials
        .iter()
        .map(|(k, v)| {
            let s = match v {
                CredentialValue::Literal(l) => Secret::new(l.clone()),
                CredentialValue::Secret(r) => r.resolve(&env).unwrap(),
            };
            (k.clone(), s)
        })
        .collect();
    let ctx = Context::new(spec, &creds, &src.settings);
    SourceClient::new(&plan.name, spec, ctx, &cfg.dir).unwrap()
}

async fn fetch(cfg: &Config, source: &str) -> (Collect, Result<Summary, String>) {
    let c = client(cfg, source);
    let mut obs = Collect::default();
    let r = c
        .fetch_stream("employees", &mut obs)
        .await
        .map_err(|e| e.to_string());
    (obs, r)
}

fn load(dir: &std::path::Path) -> Config {
    match crate::config::load(dir, &LoadOptions::default()) {
        Ok(c) => c,
        Err(d) => panic!("the demo config is invalid:\n{}", d.render()),
    }
}

fn attr<'a>(r: &'a Value, name: &str) -> &'a Value {
    &r["attributes"][name]["value"]
}

fn count(records: &[Value], f: impl Fn(&Value) -> bool) -> usize {
    records.iter().filter(|r| f(r)).count()
}

#[test]
fn generate_is_deterministic() {
    let a = Dataset::generate(7, 250, TODAY);
    assert_eq!(a, Dataset::generate(7, 250, TODAY));
    assert_eq!(
        serde_json::to_string(&a.personio).unwrap(),
        serde_json::to_string(&Dataset::generate(7, 250, TODAY).personio).unwrap()
    );
    assert_ne!(a, Dataset::generate(8, 250, TODAY));
    assert_ne!(a, Dataset::generate(7, 250, date(2025, 3, 15)));
    assert_eq!(Dataset::generate(7, 0, TODAY), Dataset::default());
    for n in [1, 2, 5, 9, 10, 39, 40, 41, 100, 1000] {
        let d = Dataset::generate(3, n, TODAY);
        assert_eq!(d.personio.len(), n, "people = {n}");
        assert_eq!(d.merge.len(), (n + 2) / 5, "people = {n}");
        let ids: HashSet<u64> = d.personio.iter().filter_map(personio_id).collect();
        assert_eq!(ids.len(), n, "ids are unique");
        let mids: HashSet<&str> = d.merge.iter().filter_map(|r| r["id"].as_str()).collect();
        assert_eq!(mids.len(), d.merge.len());
        // Every supervisor but the deliberate ghost is in the listing.
        let dangling = count(&d.personio, |r| {
            attr(r, "supervisor")["attributes"]["id"]["value"]
                .as_u64()
                .is_some_and(|s| !ids.contains(&s))
        });
        assert_eq!(dangling, usize::from(n >= 40), "people = {n}");
    }
}

#[test]
fn the_compact_dataset_holds_the_same_records_as_text() {
    for (seed, n) in [(1, 0), (2, 7), (3, 250), (4, 1200)] {
        let values = Dataset::generate(seed, n, TODAY);
        let compact = CompactDataset::generate(seed, n, TODAY);
        // Byte for byte: the wire structs list their fields in the order a Value prints them.
        assert_eq!(compact, CompactDataset::from(&values), "seed {seed}");
        assert_eq!(compact.to_dataset(), values);
        assert_eq!(
            (compact.personio_len(), compact.merge_len()),
            (n, (n + 2) / 5)
        );
    }
    // The birthday attribute's name in the wire struct is the documented one.
    let d = Dataset::generate(1, 3, TODAY);
    assert!(d.personio[0]["attributes"][PERSONIO_BIRTHDAY_ATTRIBUTE]["value"].is_string());
}

#[test]
fn the_personio_side_has_the_documented_composition() {
    let d = Dataset::generate(42, 250, TODAY);
    let p = &d.personio;
    let status = |s: &str| count(p, |r| attr(r, "status") == s);
    assert_eq!(status("inactive"), 12);
    assert_eq!(status("onboarding"), 8);
    assert_eq!(status("leave"), 5);
    assert_eq!(status("active"), 250 - 12 - 8 - 5);
    // 15 contractors, the external pre-hire, the converted contractor's old record.
    assert_eq!(count(p, |r| attr(r, "employment_type") == "external"), 17);

    // One CEO without supervisor; everyone else has one.
    let roots: Vec<&Value> = p
        .iter()
        .filter(|r| attr(r, "supervisor").is_null())
        .collect();
    assert_eq!(roots.len(), 1);
    assert_eq!(attr(roots[0], "position"), "CEO & Co-Founder");

    // A tree 4-5 levels deep (CEO, head, director, lead, member).
    let sup: HashMap<u64, u64> = p
        .iter()
        .filter_map(|r| {
            Some((
                personio_id(r)?,
                attr(r, "supervisor")["attributes"]["id"]["value"].as_u64()?,
            ))
        })
        .collect();
    let depth = |mut id: u64| {
        let mut n = 1;
        while let Some(&s) = sup.get(&id) {
            id = s;
            n += 1;
            assert!(n < 10, "a supervisor cycle");
        }
        n
    };
    let max = p.iter().filter_map(personio_id).map(depth).max().unwrap();
    assert_eq!(max, 5);

    // Pre-hires start in the next three weeks, with DST-correct offsets.
    for r in p.iter().filter(|r| attr(r, "status") == "onboarding") {
        let hire = attr(r, "hire_date").as_str().unwrap();
        let day: Date = hire[..10].parse().unwrap();
        assert!(day > TODAY && day <= TODAY.checked_add(jiff::Span::new().days(21)).unwrap());
        let offset = if day >= date(2025, 3, 30) {
            "+02:00"
        } else {
            "+01:00"
        };
        assert_eq!(&hire[10..], &format!("T00:00:00{offset}"), "{hire}");
    }
    // Every date attribute is local midnight with the offset of its day.
    let tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    for r in p {
        for a in [
            "hire_date",
            "termination_date",
            "contract_end_date",
            "probation_period_end",
        ] {
            if let Some(v) = attr(r, a).as_str() {
                let day: Date = v[..10].parse().unwrap();
                let z = day.to_zoned(tz.clone()).unwrap();
                assert_eq!(v, z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string());
            }
        }
        let birth = attr(r, PERSONIO_BIRTHDAY_ATTRIBUTE).as_str().unwrap();
        assert!(birth.parse::<Date>().is_ok(), "{birth}");
    }
    // Leavers left in the past year; probation ends six months after a recent start.
    for r in p.iter().filter(|r| attr(r, "status") == "inactive") {
        let t: Date = attr(r, "termination_date").as_str().unwrap()[..10]
            .parse()
            .unwrap();
        assert!(t < TODAY && t >= TODAY.checked_sub(jiff::Span::new().days(366)).unwrap());
    }
    let probation = count(p, |r| !attr(r, "probation_period_end").is_null());
    assert!(probation > 20, "{probation}");

    // The data problems: 2 without email, 1 dangling supervisor, 1 duplicate email.
    assert_eq!(count(p, |r| attr(r, "email").is_null()), 1);
    assert_eq!(count(p, |r| attr(r, "email") == ""), 1);
    let mut emails: HashMap<&str, usize> = HashMap::new();
    for r in p {
        if let Some(e) = attr(r, "email").as_str().filter(|e| !e.is_empty()) {
            *emails.entry(e).or_default() += 1;
        }
    }
    let dups: Vec<_> = emails.iter().filter(|(_, n)| **n > 1).collect();
    assert_eq!(dups.len(), 1, "{dups:?}");
    assert_eq!(*dups[0].1, 2);
    let offices: HashSet<&str> = p
        .iter()
        .filter_map(|r| attr(r, "office")["attributes"]["name"].as_str())
        .collect();
    assert_eq!(offices.len(), 3);
}

#[test]
fn the_merge_side_has_the_documented_composition() {
    let d = Dataset::generate(42, 250, TODAY);
    let m = &d.merge;
    assert_eq!(m.len(), 50);
    let status = |s: &str| count(m, |r| r["employment_status"] == s);
    assert_eq!(status("PENDING"), 3);
    assert_eq!(status("INACTIVE"), 4);
    assert_eq!(status("ACTIVE"), 43);
    let ty = |t: &str| count(m, |r| r["employments"][0]["employment_type"] == t);
    assert_eq!(
        (
            ty("CONTRACTOR"),
            ty("FREELANCE"),
            ty("PART_TIME"),
            ty("INTERN")
        ),
        (3, 1, 2, 1)
    );

    // Ten people are in both systems; their addresses differ only in case and whitespace.
    let personio: HashSet<String> = d
        .personio
        .iter()
        .filter_map(|r| attr(r, "email").as_str())
        .map(str::to_string)
        .collect();
    let both: Vec<&Value> = m
        .iter()
        .filter(|r| personio.contains(&r["work_email"].as_str().unwrap().trim().to_lowercase()))
        .collect();
    assert_eq!(both.len(), 10);
    assert!(
        count(m, |r| r["work_email"].as_str().unwrap().trim()
            != r["work_email"])
            >= 2
    );
    assert!(
        both.iter()
            .filter(|r| {
                let e = r["work_email"].as_str().unwrap();
                e != e.trim().to_lowercase()
            })
            .count()
            >= 6
    );
    // Some of them have another title here.
    let titles: HashMap<String, &str> = d
        .personio
        .iter()
        .filter_map(|r| {
            Some((
                attr(r, "email").as_str()?.to_string(),
                attr(r, "position").as_str()?,
            ))
        })
        .collect();
    let differ = both
        .iter()
        .filter(|r| {
            let e = r["work_email"].as_str().unwrap().trim().to_lowercase();
            r["employments"][0]["job_title"].as_str() != Some(titles[&e])
        })
        .count();
    assert_eq!(differ, 5);

    // One manager outside the listing; one record deleted in the HRIS.
    let ids: HashSet<&str> = m.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(
        count(m, |r| r["manager"]["id"]
            .as_str()
            .is_some_and(|id| !ids.contains(id))),
        1
    );
    assert_eq!(count(m, |r| r["manager"].is_null()), 1, "only the GM");
    assert_eq!(count(m, |r| r["remote_was_deleted"] == true), 1);
    // Expanded as the spec asks, dates as Merge writes them.
    for r in m {
        assert!(r["company"].is_object());
        assert!(r["team"].is_object() || (r["team"].is_null() && r["manager"].is_null()));
        assert!(r["work_location"].is_object() && r["employments"][0].is_object());
        assert!(r["groups"][0]["type"] == "DEPARTMENT");
        let start = r["start_date"].as_str().unwrap();
        assert!(start.ends_with("T00:00:00Z"), "{start}");
    }
}

#[test]
fn the_written_config_loads_without_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let addr: std::net::SocketAddr = "127.0.0.1:40123".parse().unwrap();
    write_config(dir.path(), addr).unwrap();
    let cfg = load(dir.path());
    assert_eq!(cfg.warnings.render(), "");
    let names: Vec<&str> = cfg.sources.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["personio", "merge"]);
    assert!(cfg.sources[0].fields.birth_date.is_some());
    assert_eq!(cfg.state_dir(), dir.path().join("state"));
    assert_eq!(
        cfg.providers["personio"].spec.base_url.as_str(),
        "http://127.0.0.1:40123/personio/v1"
    );
    for (name, builtin) in crate::config::builtin_providers()
        .iter()
        .filter(|(n, _)| ["personio", "merge"].contains(n))
    {
        let text =
            std::fs::read_to_string(dir.path().join(format!("providers/{name}.yaml"))).unwrap();
        assert!(text.starts_with("# Written by `roster demo`"));
        // Only the base_url line differs from the built-in.
        let ours: Vec<&str> = text.lines().skip(3).collect();
        let theirs: Vec<&str> = builtin.lines().collect();
        assert_eq!(ours.len(), theirs.len());
        let differ: Vec<_> = ours.iter().zip(&theirs).filter(|(a, b)| a != b).collect();
        assert_eq!(differ.len(), 1, "{differ:?}");
        assert!(differ[0].0.starts_with("base_url: http://127.0.0.1:40123/"));
    }
    let roster = std::fs::read_to_string(dir.path().join("roster.yaml")).unwrap();
    assert!(roster.starts_with("# Written by `roster demo`"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("secrets/merge_api_key")).unwrap(),
        format!("{MERGE_API_KEY}\n")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("secrets/personio_client_secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Writing again (a second `roster demo` in the same directory) replaces the files.
    write_config(dir.path(), "127.0.0.1:40124".parse().unwrap()).unwrap();
    let cfg = load(dir.path());
    assert_eq!(
        cfg.providers["merge"].spec.base_url.as_str(),
        "http://127.0.0.1:40124/merge/api/hris/v1"
    );
}

#[tokio::test]
async fn both_sources_read_every_record_through_the_engine() {
    // 600 people: Personio in 6 pages of 100, Merge (120) in 2 cursor pages.
    let data = Dataset::generate(5, 600, TODAY);
    let fake = FakeHris::start(data.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), fake.addr()).unwrap();
    let cfg = load(dir.path());

    let (p, r) = fetch(&cfg, "personio").await;
    let summary = r.unwrap();
    assert_eq!(
        (summary.pages, summary.records, summary.reported),
        (6, 600, Some(600))
    );
    assert_eq!(p.records, data.personio);
    let described: Vec<&str> = p.requests.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(described[0], "POST /personio/v1/auth");
    assert_eq!(
        described[2],
        "GET /personio/v1/company/employees?offset=100&limit=100"
    );
    assert!(p.requests.iter().all(|(_, s)| *s == 200));

    let (m, r) = fetch(&cfg, "merge").await;
    let summary = r.unwrap();
    assert_eq!((summary.pages, summary.records), (2, 120));
    assert_eq!(m.records, data.merge);
    assert!(
        m.requests[0].0.contains("expand=manager%2Cteam")
            || m.requests[0].0.contains("expand=manager,team"),
        "{:?}",
        m.requests
    );
    assert!(m.requests[1].0.contains("cursor="));

    // 1 login + 6 pages, 2 pages.
    assert_eq!(fake.requests(), 9);

    // What a sync sees after the HRIS changes: a new title, people gone, nobody left.
    let id = personio_id(&data.personio[3]).unwrap();
    fake.update(|d| {
        assert!(d.set_personio_attribute(id, "position", "Chief Coffee Officer".into()));
        d.merge.truncate(10);
    });
    let (p, _) = fetch(&cfg, "personio").await;
    assert_eq!(attr(&p.records[3], "position"), "Chief Coffee Officer");
    let (m, r) = fetch(&cfg, "merge").await;
    assert_eq!((m.records.len(), r.unwrap().pages), (10, 1));
    fake.set_data(Dataset::default());
    let (p, r) = fetch(&cfg, "personio").await;
    assert_eq!((p.records.len(), r.unwrap().reported), (0, Some(0)));
}

#[tokio::test]
async fn a_wrong_secret_is_a_clear_auth_error() {
    let fake = FakeHris::start(Dataset::generate(1, 50, TODAY))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), fake.addr()).unwrap();
    std::fs::write(
        dir.path().join("secrets/personio_client_secret"),
        "WRONG-CANARY\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("secrets/merge_api_key"),
        "WRONG-KEY-CANARY\n",
    )
    .unwrap();
    let cfg = load(dir.path());

    let (p, r) = fetch(&cfg, "personio").await;
    let e = r.unwrap_err();
    assert!(p.records.is_empty());
    assert!(
        e.starts_with("source `personio`: POST /personio/v1/auth: login failed with HTTP 401"),
        "{e}"
    );
    assert!(e.contains("Wrong credentials"), "{e}");
    assert!(e.contains("invalid credentials"), "{e}");
    assert!(!e.contains("CANARY"), "{e}");

    let (_, r) = fetch(&cfg, "merge").await;
    let e = r.unwrap_err();
    assert!(
        e.contains("HTTP 401: {\"detail\":\"Invalid token.\"}"),
        "{e}"
    );
    assert!(e.contains("invalid credentials"), "{e}");
    assert!(!e.contains("CANARY"), "{e}");

    // A wrong account token is refused too.
    write_config(dir.path(), fake.addr()).unwrap();
    std::fs::write(
        dir.path().join("secrets/merge_account_token"),
        "other-account\n",
    )
    .unwrap();
    let (_, r) = fetch(&load(dir.path()), "merge").await;
    assert!(r.unwrap_err().contains("HTTP 401"));
}

#[tokio::test]
async fn a_failing_page_fails_the_whole_fetch() {
    let data = Dataset::generate(9, 250, TODAY);
    let fake = FakeHris::start(data.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), fake.addr()).unwrap();
    let cfg = load(dir.path());

    fake.fail_personio_page(Some((2, 503)));
    let (p, r) = fetch(&cfg, "personio").await;
    let e = r.unwrap_err();
    assert!(
        e.contains("GET /personio/v1/company/employees?offset=100&limit=100: HTTP 503"),
        "{e}"
    );
    // The first page arrived before the failure; nothing after it. Retries hit the same page.
    assert_eq!(p.records.len(), 100);
    let failed = p.requests.iter().filter(|(_, s)| *s == 503).count();
    assert_eq!(
        failed, 5,
        "every attempt of the spec's retry policy: {:?}",
        p.requests
    );

    fake.fail_personio_page(Some((3, 400)));
    let (_, r) = fetch(&cfg, "personio").await;
    assert!(r.unwrap_err().contains("offset=200&limit=100: HTTP 400"));

    fake.fail_personio_page(None);
    let (p, r) = fetch(&cfg, "personio").await;
    assert_eq!(r.unwrap().records, 250);
    assert_eq!(p.records, data.personio);
}

#[tokio::test]
async fn personio_tokens_rotate_and_work_once() {
    let fake = FakeHris::start(Dataset::generate(1, 120, TODAY))
        .await
        .unwrap();
    let base = fake.personio_base_url();
    let http = reqwest::Client::new();
    let login = |id: &str, secret: &str| {
        http.post(format!("{base}/auth"))
            .header("content-type", "application/json")
            .body(serde_json::json!({"client_id": id, "client_secret": secret}).to_string())
            .send()
    };
    let resp = login(PERSONIO_CLIENT_ID, "nope").await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(body["success"], false);
    assert!(body["error"]["message"].is_string());

    let body: Value = serde_json::from_str(
        &login(PERSONIO_CLIENT_ID, PERSONIO_CLIENT_SECRET)
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["data"]["expires_in"], 86400);
    let t0 = body["data"]["token"].as_str().unwrap().to_string();
    let get = |token: String, query: &'static str| {
        http.get(format!("{base}/company/employees{query}"))
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    let resp = get(t0.clone(), "").await.unwrap();
    assert_eq!(resp.status(), 200);
    let t1 = resp.headers()["authorization"]
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_string();
    assert_ne!(t0, t1);
    let page: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    // The live API's default page size, and its metadata.
    assert_eq!(page["data"].as_array().unwrap().len(), 50);
    assert_eq!(page["metadata"]["total_elements"], 120);
    assert_eq!(page["metadata"]["total_pages"], 3);
    assert_eq!(page["limit"], 50);
    // The used token is dead; the rotated one works, once.
    assert_eq!(get(t0, "").await.unwrap().status(), 401);
    let resp = get(t1, "?limit=500&offset=100").await.unwrap();
    assert_eq!(resp.status(), 200);
    let page: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(page["limit"], 100, "capped like the live API");
    assert_eq!(page["data"].as_array().unwrap().len(), 20);
    let resp = http
        .get(format!("{base}/company/employees"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        serde_json::from_str::<Value>(&resp.text().await.unwrap()).unwrap(),
        serde_json::json!({"success": false, "error": {"code": 401, "message": "Authorization is not provided"}})
    );
}

#[tokio::test]
async fn merge_honours_expand_page_size_and_filters() {
    let data = Dataset::generate(2, 250, TODAY);
    let fake = FakeHris::start(data.clone()).await.unwrap();
    let base = fake.merge_base_url();
    let http = reqwest::Client::new();
    let get = |query: String| {
        http.get(format!("{base}/employees{query}"))
            .header("authorization", format!("Bearer {MERGE_API_KEY}"))
            .header("x-account-token", MERGE_ACCOUNT_TOKEN)
            .send()
    };
    let page = |resp: reqwest::Response| async move {
        assert_eq!(resp.status(), 200);
        serde_json::from_str::<Value>(&resp.text().await.unwrap()).unwrap()
    };
    // Without expand, related objects are UUIDs.
    let p = page(get("?page_size=7".into()).await.unwrap()).await;
    let results = p["results"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    assert!(results.iter().all(|r| r["company"].is_string()));
    assert!(results.iter().all(|r| r["employments"][0].is_string()));
    assert!(p["previous"].is_null());
    let next = p["next"].as_str().unwrap().to_string();
    // A cursor page continues where the first stopped, and keeps what `expand` names.
    let p = page(
        get(format!("?page_size=7&expand=team,manager&cursor={next}"))
            .await
            .unwrap(),
    )
    .await;
    let second = p["results"].as_array().unwrap();
    assert_eq!(second[0]["id"], data.merge[7]["id"]);
    assert!(second[0]["team"].is_object() && second[0]["company"].is_string());
    assert!(p["previous"].is_string());
    // Everything in one page at most 100; the last page has no next.
    let p = page(get("?page_size=1000".into()).await.unwrap()).await;
    assert_eq!(p["results"].as_array().unwrap().len(), 50);
    assert!(p["next"].is_null());
    // modified_after compares with modified_at.
    let cut = "2025-01-01T00:00:00Z";
    let expect: Vec<&Value> = data
        .merge
        .iter()
        .filter(|r| r["modified_at"].as_str().unwrap() > cut)
        .map(|r| &r["id"])
        .collect();
    assert!(!expect.is_empty() && expect.len() < data.merge.len());
    let mut got = Vec::new();
    let mut cursor = String::new();
    loop {
        let p = page(
            get(format!("?page_size=5&modified_after={cut}{cursor}"))
                .await
                .unwrap(),
        )
        .await;
        for r in p["results"].as_array().unwrap() {
            got.push(r["id"].clone());
        }
        match p["next"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(got.iter().collect::<Vec<_>>(), expect);
    let p = page(get("?employment_status=PENDING".into()).await.unwrap()).await;
    assert_eq!(p["results"].as_array().unwrap().len(), 3);
    // Errors in Merge's shape.
    assert_eq!(get("?cursor=bogus".into()).await.unwrap().status(), 404);
    assert_eq!(
        get("?modified_after=yesterday".into())
            .await
            .unwrap()
            .status(),
        400
    );
    let resp = http.get(format!("{base}/employees")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"detail":"Authentication credentials were not provided."}"#
    );
    let resp = http.get(format!("{base}/nothing")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[test]
fn the_server_also_runs_on_its_own_thread() {
    let fake = FakeHris::start_in_thread(Dataset::generate(1, 10, TODAY)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        reqwest::get(format!("{}/employees", fake.merge_base_url()))
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 401);
    assert_eq!(fake.requests(), 1);
    drop(fake);
}

#[test]
fn the_built_in_mappings_map_the_records() {
    use crate::mapping::{Mapped, Mapper};
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "127.0.0.1:40123".parse().unwrap()).unwrap();
    let cfg = load(dir.path());
    let data = Dataset::generate(42, 250, TODAY);
    let mapper = |source: &str| {
        let plan = cfg.sources.iter().find(|s| s.name == source).unwrap();
        Mapper::new(plan, &cfg.mappings[&plan.mapping].spec)
    };
    let tally = |m: &Mapper, records: &[Value]| {
        let (mut kept, mut excluded, mut failed) = (Vec::new(), 0, Vec::new());
        for r in records {
            match m.map(r) {
                Mapped::Kept(p) => kept.push(p),
                Mapped::Excluded { .. } => excluded += 1,
                Mapped::Failed { errors, .. } => failed.push(errors),
            }
        }
        (kept, excluded, failed)
    };
    use crate::config::person::Field;

    let (kept, excluded, failed) = tally(&mapper("personio"), &data.personio);
    // The leavers are left out; the two records without email are data problems.
    assert_eq!(excluded, 12);
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed.iter().all(|e| e[0].field == "work_email"),
        "{failed:?}"
    );
    assert_eq!(kept.len(), 250 - 12 - 2);
    for p in &kept {
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert!(p.get(Field::birth_date).is_some());
        assert!(p.get(Field::start_date).is_some());
        assert!(p.get(Field::department).is_some());
    }
    let pre = kept
        .iter()
        .filter(|p| p.get(Field::status) == Some("pre_hire"))
        .count();
    assert_eq!(pre, 7);
    let contractors = kept
        .iter()
        .filter(|p| p.get(Field::worker_type) == Some("contractor"))
        .count();
    assert_eq!(contractors, 17);
    assert_eq!(
        kept.iter()
            .filter(|p| p.get(Field::status) == Some("on_leave"))
            .count(),
        5
    );

    let (kept, excluded, failed) = tally(&mapper("merge"), &data.merge);
    // INACTIVE leavers and the record deleted in the HRIS are left out.
    assert_eq!(excluded, 5);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(kept.len(), 45);
    for p in &kept {
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.work_email(), p.work_email().trim().to_lowercase());
        assert!(p.get(Field::department).is_some() && p.get(Field::legal_entity).is_some());
    }
}
