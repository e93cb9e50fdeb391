//! The HTTP engine against fake HRIS servers on 127.0.0.1:0 (axum): auth kinds, pagination
//! kinds, 429 with Retry-After, persistent 500s, truncated listings, schema drift, and the
//! promise that no secret appears in an error or a request description.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use roster::config::provider::ProviderSpec;
use roster::config::secret::Secret;
use roster::provider::fetch::{FetchError, Observer, SourceClient, SourceProblem};
use roster::provider::request::Context;
use serde_json::{Value, json};

/// A request as the fake saw it.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    query: HashMap<String, String>,
    headers: HashMap<String, String>,
    body: String,
}

/// A response: status, headers, JSON body.
type Resp = (u16, Vec<(&'static str, String)>, Value);

/// Starts a fake HRIS; `handle` sees every request. Returns the base URL and the request log.
async fn fake(
    handle: impl Fn(&Req) -> Resp + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Req>>>) {
    let log: Arc<Mutex<Vec<Req>>> = Arc::default();
    let handle = Arc::new(handle);
    let log2 = log.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
            let handle = handle.clone();
            let log = log2.clone();
            async move {
                let req = Req {
                    method: method.to_string(),
                    path: uri.path().to_string(),
                    query: url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                        .into_owned()
                        .collect(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| {
                            (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                        })
                        .collect(),
                    body,
                };
                let (status, extra, body) = handle(&req);
                log.lock().unwrap().push(req);
                let mut h = HeaderMap::new();
                for (k, v) in extra {
                    h.insert(k, v.parse().unwrap());
                }
                (StatusCode::from_u16(status).unwrap(), h, body.to_string())
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), log)
}

/// A provider spec on `base` (3 attempts, 10 ms backoff) with `body` (auth, streams).
pub(crate) fn spec(base: &str, body: &str) -> ProviderSpec {
    let yaml = format!(
        "base_url: {base}\nretry: {{max_attempts: 3, initial_backoff: 10ms, max_backoff: 5s}}\n{body}"
    );
    serde_yaml::with::singleton_map_recursive::deserialize(serde_yaml::Deserializer::from_str(
        &yaml,
    ))
    .unwrap()
}

/// A client for source `hr` with these credentials.
pub(crate) fn client(spec: &ProviderSpec, creds: &[(&str, &str)]) -> SourceClient {
    let creds: BTreeMap<String, Secret> = creds
        .iter()
        .map(|(k, v)| (k.to_string(), Secret::new(*v)))
        .collect();
    let ctx = Context::new(spec, &creds, &BTreeMap::new());
    SourceClient::new("hr", spec, ctx, std::path::Path::new(".")).unwrap()
}

/// Everything a fetch reported.
#[derive(Default)]
pub(crate) struct Collect {
    pub(crate) records: Vec<Value>,
    pub(crate) requests: Vec<(String, u16)>,
    pub(crate) problems: Vec<SourceProblem>,
}

impl Observer for Collect {
    fn request(&mut self, described: &str, status: u16) {
        self.requests.push((described.to_string(), status));
    }
    fn record(&mut self, record: Value) -> bool {
        self.records.push(record);
        true
    }
    fn problem(&mut self, problem: SourceProblem) {
        self.problems.push(problem);
    }
}

/// Reads `stream` with `c`.
pub(crate) async fn fetch(
    c: &SourceClient,
    stream: &str,
) -> (
    Collect,
    Result<roster::provider::paginate::Summary, FetchError>,
) {
    let mut obs = Collect::default();
    let r = c.fetch_stream(stream, &mut obs).await;
    (obs, r)
}

fn people(from: usize, to: usize) -> Vec<Value> {
    (from..to)
        .map(|i| json!({"id": i, "email": format!("p{i}@example.com")}))
        .collect()
}

fn q(r: &Req, k: &str) -> usize {
    r.query.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
}

const BEARER_OFFSET: &str = "credentials:\n  api_key: {}\nauth: {kind: bearer, token: '{credentials.api_key}'}\nstreams:\n  people:\n    request: {path: /people}\n    pagination: {kind: offset, page_size: 100}\n    records: $.data[*]\n    total: $.meta.total\n";

#[tokio::test]
async fn bearer_auth_with_offset_paging_reads_every_record_once() {
    let (base, log) = fake(|r| {
        if r.headers.get("authorization").map(String::as_str) != Some("Bearer key-CANARY") {
            return (401, vec![], json!({"error": "unauthorized"}));
        }
        let off = q(r, "offset");
        let end = (off + q(r, "limit")).min(250);
        (
            200,
            vec![],
            json!({"data": people(off, end), "meta": {"total": 250}}),
        )
    })
    .await;
    let s = spec(&base, BEARER_OFFSET);
    let (obs, r) = fetch(&client(&s, &[("api_key", "key-CANARY")]), "people").await;
    let summary = r.unwrap();
    assert_eq!(
        (summary.pages, summary.records, summary.reported),
        (3, 250, Some(250))
    );
    let ids: Vec<u64> = obs
        .records
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (0..250).collect::<Vec<_>>());
    let offsets: Vec<usize> = log.lock().unwrap().iter().map(|r| q(r, "offset")).collect();
    assert_eq!(offsets, [0, 100, 200]);
    assert_eq!(
        obs.requests[1],
        ("GET /v1/people?offset=100&limit=100".to_string(), 200)
    );
}

#[tokio::test]
async fn a_total_above_what_arrives_fails_naming_both_numbers() {
    let (base, _) = fake(|r| {
        let off = q(r, "offset");
        let data = if off == 0 { people(0, 50) } else { vec![] };
        (200, vec![], json!({"data": data, "meta": {"total": 500}}))
    })
    .await;
    let s = spec(&base, BEARER_OFFSET);
    let (_, r) = fetch(&client(&s, &[("api_key", "key-1234")]), "people").await;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("source `hr`: stream `people`: incomplete listing: the API reported 500 records but 50 arrived"), "{e}");
}

#[tokio::test]
async fn wrong_credentials_say_what_to_do_and_never_print_the_secret() {
    let (base, _) = fake(|r| {
        let sent = r.headers.get("authorization").cloned().unwrap_or_default();
        (
            401,
            vec![],
            json!({"error": format!("token {sent} is revoked")}),
        )
    })
    .await;
    let s = spec(&base, BEARER_OFFSET);
    let (_, r) = fetch(&client(&s, &[("api_key", "key-CANARY")]), "people").await;
    let e = r.unwrap_err().to_string();
    assert!(
        e.starts_with("source `hr`: GET /v1/people?offset=0&limit=100: HTTP 401"),
        "{e}"
    );
    assert!(e.contains("invalid credentials"), "{e}");
    assert!(
        e.contains("token Bearer *** is revoked"),
        "the echoed secret is masked: {e}"
    );
    assert!(!e.contains("CANARY"), "{e}");
}

#[tokio::test]
async fn retry_after_on_pages_two_and_three_waits_then_reads_each_page_once() {
    let seen: Arc<Mutex<HashMap<usize, u32>>> = Arc::default();
    let seen2 = seen.clone();
    let (base, log) = fake(move |r| {
        let off = q(r, "offset");
        let n = {
            let mut m = seen2.lock().unwrap();
            let n = m.entry(off).or_insert(0);
            *n += 1;
            *n
        };
        if (off == 100 || off == 200) && n == 1 {
            return (
                429,
                vec![("retry-after", "1".into())],
                json!({"error": "slow down"}),
            );
        }
        (
            200,
            vec![],
            json!({"data": people(off, (off + 100).min(250)), "meta": {"total": 250}}),
        )
    })
    .await;
    let s = spec(&base, BEARER_OFFSET);
    let started = std::time::Instant::now();
    let (obs, r) = fetch(&client(&s, &[("api_key", "key-1234")]), "people").await;
    assert_eq!(r.unwrap().records, 250);
    assert_eq!(obs.records.len(), 250, "each page handed on once");
    assert_eq!(
        log.lock().unwrap().len(),
        5,
        "3 pages + 2 rate-limited attempts"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "Retry-After was honoured"
    );
}

#[tokio::test]
async fn a_page_that_keeps_failing_fails_the_fetch_with_the_request_named() {
    let (base, log) = fake(|r| {
        if q(r, "offset") == 0 {
            (
                200,
                vec![],
                json!({"data": people(0, 100), "meta": {"total": 250}}),
            )
        } else {
            (500, vec![], json!({"error": "internal"}))
        }
    })
    .await;
    let s = spec(&base, BEARER_OFFSET);
    let (_, r) = fetch(&client(&s, &[("api_key", "key-1234")]), "people").await;
    let e = r.unwrap_err().to_string();
    assert!(
        e.starts_with("source `hr`: GET /v1/people?offset=100&limit=100: HTTP 500"),
        "{e}"
    );
    assert!(e.contains("nothing was applied"), "{e}");
    assert_eq!(
        log.lock().unwrap().len(),
        4,
        "1 good page + 3 attempts at the failing one"
    );
}

#[tokio::test]
async fn cursor_paging() {
    let (base, _) = fake(|r| match r.query.get("cursor").map(String::as_str) {
        None => (200, vec![], json!({"results": people(0, 2), "next": "c2"})),
        Some("c2") => (200, vec![], json!({"results": people(2, 4), "next": "c3"})),
        _ => (200, vec![], json!({"results": people(4, 5), "next": null})),
    })
    .await;
    let s = spec(
        &base,
        "auth: {kind: none}\nstreams:\n  people:\n    request: {path: /employees}\n    pagination: {kind: cursor, cursor: $.next, param: cursor}\n    records: $.results[*]\n",
    );
    let (obs, r) = fetch(&client(&s, &[]), "people").await;
    assert_eq!(r.unwrap().pages, 3);
    assert_eq!(obs.records.len(), 5);
}

#[tokio::test]
async fn link_header_and_next_url_paging() {
    let (base, _) = fake(|r| {
        let page = q(r, "page").max(1);
        let mut headers = vec![];
        if page < 3 {
            headers.push((
                "link",
                format!("</v1/people?page={}>; rel=\"next\"", page + 1),
            ));
        }
        (200, headers, json!(people(page * 10, page * 10 + 10)))
    })
    .await;
    let s = spec(
        &base,
        "auth: {kind: none}\nstreams:\n  people:\n    request: {path: /people}\n    pagination: {kind: link_header}\n    records: $[*]\n",
    );
    let (obs, r) = fetch(&client(&s, &[]), "people").await;
    assert_eq!(r.unwrap().pages, 3);
    assert_eq!(obs.records.len(), 30);

    let (base, _) = fake(|r| {
        let page = q(r, "page").max(1);
        let next = if page < 2 {
            json!(format!("/v1/people?page={}", page + 1))
        } else {
            Value::Null
        };
        (
            200,
            vec![],
            json!({"data": people(page, page + 1), "links": {"next": next}}),
        )
    })
    .await;
    let s = spec(
        &base,
        "auth: {kind: none}\nstreams:\n  people:\n    request: {path: /people}\n    pagination: {kind: next_url, next: $.links.next}\n    records: $.data[*]\n",
    );
    let (obs, r) = fetch(&client(&s, &[]), "people").await;
    assert_eq!(r.unwrap().pages, 2);
    assert_eq!(obs.records.len(), 2);
}

#[tokio::test]
async fn page_number_paging_from_zero_with_basic_auth() {
    let (base, log) = fake(|r| {
        let page = q(r, "page");
        (
            200,
            vec![],
            json!({"items": if page < 2 { people(page * 2, page * 2 + 2) } else { vec![] }}),
        )
    })
    .await;
    let s = spec(
        &base,
        "credentials:\n  api_key: {}\nauth: {kind: basic, username: '{credentials.api_key}', password: x}\nstreams:\n  people:\n    request: {path: /people}\n    pagination: {kind: page, page_size: 2, first_page: 0, size_param: per_page}\n    records: $.items[*]\n",
    );
    let (obs, r) = fetch(&client(&s, &[("api_key", "bamboo-key")]), "people").await;
    assert!(r.is_ok());
    assert_eq!(obs.records.len(), 4);
    let first = log.lock().unwrap()[0].clone();
    assert_eq!(first.query.get("page").map(String::as_str), Some("0"));
    use base64::Engine as _;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("bamboo-key:x")
    );
    assert_eq!(first.headers.get("authorization"), Some(&expected));
}

/// BambooHR's "Get Data from Dataset (v2)": `POST /api/v2/datasets/{name}/data` pages through
/// the JSON body (`page`, 1-based, and `pageSize`) and reports `meta.totalItems`. The fake
/// refuses paging in the query and a body without `fields`, as the API does (422).
#[tokio::test]
async fn page_numbers_in_a_json_body_like_bamboohr_datasets() {
    let (base, log) = fake(|r| {
        let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        if r.method != "POST"
            || r.path != "/v1/api/v2/datasets/employee/data"
            || !r.query.is_empty()
            || !body["fields"].is_array()
            || !body["page"].is_u64()
            || !body["pageSize"].is_u64()
        {
            return (
                422,
                vec![],
                json!({"title": "Validation failed", "detail": "page and pageSize go in the body"}),
            );
        }
        let (page, size) = (
            body["page"].as_u64().unwrap() as usize,
            body["pageSize"].as_u64().unwrap() as usize,
        );
        let from = ((page - 1) * size).min(7);
        let to = (from + size).min(7);
        let data: Vec<Value> = (from..to)
            .map(|i| json!({"fields": {"employeeNumber": i.to_string(), "workEmail": format!("p{i}@example.com")}}))
            .collect();
        let next = (to < 7).then(|| format!("/api/v2/datasets/employee/data?page={}", page + 1));
        (
            200,
            vec![],
            json!({"data": data, "links": {"next": next}, "meta": {"page": page, "pageSize": size, "totalPages": 3, "totalItems": 7}}),
        )
    })
    .await;
    let s = spec(
        &base,
        "credentials:\n  api_key: {}\nauth: {kind: basic, username: '{credentials.api_key}', password: x}\nstreams:\n  employees:\n    request:\n      method: POST\n      path: /api/v2/datasets/employee/data\n      body:\n        json: {fields: [employeeNumber, workEmail], filter: \"status eq 'Active'\"}\n    pagination: {kind: page, in: body, page_param: page, size_param: pageSize, page_size: 3}\n    records: $.data[*].fields\n    total: $.meta.totalItems\n",
    );
    let (obs, r) = fetch(&client(&s, &[("api_key", "bamboo-CANARY")]), "employees").await;
    let summary = r.unwrap();
    assert_eq!(
        (summary.pages, summary.records, summary.reported),
        (3, 7, Some(7))
    );
    let ids: Vec<&str> = obs
        .records
        .iter()
        .map(|r| r["employeeNumber"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["0", "1", "2", "3", "4", "5", "6"]);
    let log = log.lock().unwrap();
    for (i, req) in log.iter().enumerate() {
        let body: Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(
            body,
            json!({"fields": ["employeeNumber", "workEmail"], "filter": "status eq 'Active'", "page": i + 1, "pageSize": 3}),
            "the declared body is kept, the page set in it"
        );
        assert!(req.query.is_empty(), "{:?}", req.query);
    }
    // The request description shows the method and path (the body is not logged).
    assert_eq!(obs.requests[1].0, "POST /v1/api/v2/datasets/employee/data");
}

#[tokio::test]
async fn api_key_in_the_query_is_masked_in_request_descriptions() {
    let (base, _) = fake(|_| (200, vec![], json!({"data": people(0, 1)}))).await;
    let s = spec(
        &base,
        "credentials:\n  api_key: {}\nauth: {kind: api_key, in: query, name: api_key, value: '{credentials.api_key}'}\nstreams:\n  people:\n    request: {path: /people}\n    records: $.data[*]\n",
    );
    let (obs, r) = fetch(&client(&s, &[("api_key", "q-CANARY")]), "people").await;
    assert!(r.is_ok());
    assert_eq!(obs.requests[0].0, "GET /v1/people?api_key=***");
}

#[tokio::test]
async fn token_exchange_with_a_bearer_prefixed_token_and_rotation() {
    // Kenjo's login returns a token that already starts with "Bearer "; Personio rotates the
    // token in a response header on every call. The fake demands the latest token each time.
    let current = Arc::new(Mutex::new(String::new()));
    let cur = current.clone();
    let (base, log) = fake(move |r| {
        if r.path == "/v1/auth/login" {
            assert_eq!(r.method, "POST");
            let body: Value = serde_json::from_str(&r.body).unwrap();
            if body["apiKey"] != "kenjo-CANARY" {
                return (401, vec![], json!({"error": "bad key"}));
            }
            *cur.lock().unwrap() = "jwt-1".into();
            return (200, vec![], json!({"token": "Bearer jwt-1"}));
        }
        let want = format!("Bearer {}", cur.lock().unwrap());
        if r.headers.get("authorization") != Some(&want) {
            return (401, vec![], json!({"error": "expired"}));
        }
        let page = q(r, "page").max(1);
        let next = format!("jwt-{}", page + 1);
        *cur.lock().unwrap() = next.clone();
        let data = if page <= 2 {
            people(page, page + 1)
        } else {
            vec![]
        };
        (
            200,
            vec![("authorization", format!("Bearer {next}"))],
            json!({"data": data}),
        )
    })
    .await;
    let s = spec(
        &base,
        "credentials:\n  api_key: {}\nauth:\n  kind: token_exchange\n  request: {method: POST, path: /auth/login, body: {json: {apiKey: '{credentials.api_key}'}}}\n  token: $.token\n  rotate_header: authorization\nstreams:\n  people:\n    request: {path: /people}\n    pagination: {kind: page, page_size: 1}\n    records: $.data[*]\n",
    );
    let c = client(&s, &[("api_key", "kenjo-CANARY")]);
    let (obs, r) = fetch(&c, "people").await;
    r.unwrap();
    assert_eq!(obs.records.len(), 2);
    let log = log.lock().unwrap();
    assert_eq!(
        log.iter().filter(|r| r.path == "/v1/auth/login").count(),
        1,
        "one login"
    );
    assert_eq!(
        log[1].headers.get("authorization").map(String::as_str),
        Some("Bearer jwt-1"),
        "prefix not doubled"
    );
    assert_eq!(
        log[2].headers.get("authorization").map(String::as_str),
        Some("Bearer jwt-2"),
        "rotated token used"
    );
    assert!(obs.requests.iter().all(|(d, _)| !d.contains("CANARY")));
}

#[tokio::test]
async fn a_401_after_login_logs_in_again_once() {
    let logins = Arc::new(Mutex::new(0));
    let l2 = logins.clone();
    let (base, _) = fake(move |r| {
        if r.path == "/v1/auth" {
            *l2.lock().unwrap() += 1;
            let n = *l2.lock().unwrap();
            return (200, vec![], json!({"data": {"token": format!("t{n}")}}));
        }
        // The first token is already expired when used.
        if r.headers.get("authorization").map(String::as_str) == Some("Bearer t1") {
            return (401, vec![], json!({}));
        }
        (200, vec![], json!({"data": people(0, 3)}))
    })
    .await;
    let s = spec(
        &base,
        "credentials:\n  client_id: {secret: false}\n  client_secret: {}\nauth:\n  kind: token_exchange\n  request: {method: POST, path: /auth, body: {json: {client_id: '{credentials.client_id}', client_secret: '{credentials.client_secret}'}}}\n  token: $.data.token\nstreams:\n  people:\n    request: {path: /company/employees}\n    records: $.data[*]\n",
    );
    let (obs, r) = fetch(
        &client(&s, &[("client_id", "id"), ("client_secret", "s3cret")]),
        "people",
    )
    .await;
    r.unwrap();
    assert_eq!(obs.records.len(), 3);
    assert_eq!(*logins.lock().unwrap(), 2);
}

#[tokio::test]
async fn login_with_wrong_credentials_is_a_clear_error() {
    let (base, _) = fake(|_| (401, vec![], json!({"error": "invalid_client"}))).await;
    let s = spec(
        &base,
        "credentials:\n  client_id: {secret: false}\n  client_secret: {}\nauth:\n  kind: oauth2_client_credentials\n  token_url: BASE/oauth/token\n  client_id: '{credentials.client_id}'\n  client_secret: '{credentials.client_secret}'\nstreams:\n  people:\n    request: {path: /people}\n    records: $.data[*]\n"
            .replace("BASE", &base)
            .as_str(),
    );
    let (_, r) = fetch(
        &client(
            &s,
            &[("client_id", "id"), ("client_secret", "oauth-CANARY")],
        ),
        "people",
    )
    .await;
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("POST /v1/oauth/token: login failed with HTTP 401"),
        "{e}"
    );
    assert!(e.contains("invalid credentials"), "{e}");
    assert!(!e.contains("CANARY"), "{e}");
}

#[tokio::test]
async fn oauth2_client_credentials_gets_and_uses_a_token() {
    let (base, log) = fake(|r| {
        if r.path == "/v1/oauth/token" {
            let form: HashMap<String, String> = url::form_urlencoded::parse(r.body.as_bytes())
                .into_owned()
                .collect();
            assert_eq!(
                form.get("grant_type").map(String::as_str),
                Some("client_credentials")
            );
            assert_eq!(form.get("client_secret").map(String::as_str), Some("sec"));
            return (
                200,
                vec![],
                json!({"access_token": "at-1", "expires_in": 3600}),
            );
        }
        assert_eq!(
            r.headers.get("authorization").map(String::as_str),
            Some("Bearer at-1")
        );
        (200, vec![], json!({"data": people(0, 2)}))
    })
    .await;
    let s = spec(
        &base,
        &"credentials:\n  client_id: {secret: false}\n  client_secret: {}\nauth:\n  kind: oauth2_client_credentials\n  token_url: BASE/oauth/token\n  client_id: '{credentials.client_id}'\n  client_secret: '{credentials.client_secret}'\nstreams:\n  people:\n    request: {path: /people}\n    records: $.data[*]\n"
            .replace("BASE", &base),
    );
    let (obs, r) = fetch(
        &client(&s, &[("client_id", "id"), ("client_secret", "sec")]),
        "people",
    )
    .await;
    r.unwrap();
    assert_eq!(obs.records.len(), 2);
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_selector_that_matches_nothing_in_a_full_body_is_schema_drift() {
    let (base, _) = fake(|_| (200, vec![], json!({"results": people(0, 3)}))).await;
    let s = spec(
        &base,
        "auth: {kind: none}\nstreams:\n  people:\n    request: {path: /people}\n    records: $.data[*]\n",
    );
    let (_, r) = fetch(&client(&s, &[]), "people").await;
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("page 1 has content but `$.data[*]` selects no records"),
        "{e}"
    );
    assert!(e.contains("response shape may have changed"), "{e}");
}

#[tokio::test]
async fn an_unreachable_host_names_the_host() {
    // A port nothing listens on, held for the whole test.
    let refusing = crate::ports::RefusingPort::new();
    let port = refusing.port();
    let s = spec(
        &format!("http://127.0.0.1:{port}/v1"),
        "auth: {kind: none}\nstreams:\n  people:\n    request: {path: /people}\n    records: $.data[*]\n",
    );
    let (_, r) = fetch(&client(&s, &[]), "people").await;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("cannot connect to 127.0.0.1"), "{e}");
}

/// `roster fetch`, the real binary, against a fake: records on stdout as JSON lines, requests
/// on stderr with the API key masked, `--limit` honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_fetch_prints_records_and_masked_requests() {
    let (base, _) = fake(|r| {
        let off = q(r, "offset");
        (
            200,
            vec![],
            json!({"data": people(off, (off + 2).min(5)), "meta": {"total": 5}}),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("providers")).unwrap();
    std::fs::create_dir_all(dir.path().join("mappings")).unwrap();
    std::fs::write(
        dir.path().join("roster.yaml"),
        "time_zone: UTC\nsources:\n  hr:\n    provider: fakehr\n    credentials:\n      api_key: {env: FAKEHR_KEY}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("providers/fakehr.yaml"),
        format!("base_url: {base}\ncredentials:\n  api_key: {{}}\nauth: {{kind: api_key, in: query, name: key, value: '{{credentials.api_key}}'}}\nstreams:\n  people:\n    request: {{path: /people}}\n    pagination: {{kind: offset, page_size: 2}}\n    records: $.data[*]\n    total: $.meta.total\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("mappings/fakehr.yaml"),
        "provider: fakehr\nstream: people\nfields:\n  employee_id: $.id\n  work_email: $.email\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "fetch",
            "hr",
            "--show-requests",
            "--config",
            dir.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(&args)
            .env("FAKEHR_KEY", "fetch-CANARY")
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    assert_eq!(
        serde_json::from_str::<Value>(stdout.lines().next().unwrap()).unwrap()["id"],
        0
    );
    assert!(
        stderr.contains("-> GET /v1/people?offset=2&limit=2&key=*** 200"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "fetched 5 records from stream `people` of source `hr` in 3 pages (the API reports 5)"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("CANARY") && !stdout.contains("CANARY"));

    let out = run(&["--limit", "3"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 3);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["fetch", "hr", "--config", dir.path().to_str().unwrap()])
        .env_remove("FAKEHR_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(
            "credential `api_key`: cannot read secret: environment variable `FAKEHR_KEY` is not set"
        ),
        "{stderr}"
    );
}

/// Kenjo's shape: accounts, personals and works are separate endpoints joined on `_id`;
/// departments come from a lookup by id. The built-in spec relies on this.
#[tokio::test]
async fn joins_and_lookups_assemble_one_record_per_person() {
    let (base, log) = fake(|r| match r.path.as_str() {
        "/v1/employees/accounts" => (200, vec![], json!({"data": [{"_id": "a1", "email": "ada@example.com"}, {"_id": "a2", "email": "bob@example.com"}]})),
        "/v1/employees/personals" => (200, vec![], json!({"data": [{"_id": "a2", "firstName": "Bob"}, {"_id": "a1", "firstName": "Ada"}]})),
        "/v1/employees/works" => (200, vec![], json!({"data": [{"_id": "a1", "departmentId": 7}, {"_id": "a2", "departmentId": "9"}]})),
        "/v1/departments" => (200, vec![], json!([{"_id": "7", "name": "Engineering"}, {"_id": 9, "name": "Finance"}])),
        _ => (404, vec![], json!({})),
    })
    .await;
    let s = spec(
        &base,
        "auth: {kind: none}\nstreams:\n  accounts:\n    request: {path: /employees/accounts}\n    records: $.data[*]\n    id: $._id\n    join:\n      - {stream: personals, on: $._id, into: personal}\n      - {stream: works, on: $._id, into: work}\n    lookups:\n      - {stream: departments, key: $.work.departmentId, into: department}\n  personals:\n    request: {path: /employees/personals}\n    records: $.data[*]\n    id: $._id\n  works:\n    request: {path: /employees/works}\n    records: $.data[*]\n    id: $._id\n  departments:\n    request: {path: /departments}\n    records: $[*]\n    id: $._id\n",
    );
    let (obs, r) = fetch(&client(&s, &[]), "accounts").await;
    assert_eq!(r.unwrap().records, 2);
    assert_eq!(obs.records[0]["personal"]["firstName"], "Ada");
    assert_eq!(obs.records[1]["personal"]["firstName"], "Bob");
    // Lookups run after joins, so they can key on joined data; "9" and 9 match.
    assert_eq!(obs.records[0]["department"]["name"], "Engineering");
    assert_eq!(obs.records[1]["department"]["name"], "Finance");
    assert_eq!(log.lock().unwrap().len(), 4, "each stream read once");
}

/// Per-record sub-requests (employments per person), at most `concurrency` in flight.
#[tokio::test]
async fn sub_requests_run_per_record_within_the_concurrency_cap() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let (f, m) = (in_flight.clone(), max_seen.clone());
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let (f, m) = (f.clone(), m.clone());
        async move {
            let path = uri.path().to_string();
            if path == "/v1/people" {
                return (StatusCode::OK, json!({"data": people(0, 6)}).to_string());
            }
            let now = f.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            f.fetch_sub(1, Ordering::SeqCst);
            let id: usize = path.split('/').nth(3).unwrap().parse().unwrap();
            if id == 5 {
                return (StatusCode::INTERNAL_SERVER_ERROR, "{}".to_string());
            }
            (
                StatusCode::OK,
                json!([{"person": id, "title": format!("Role {id}")}]).to_string(),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let body = |optional: bool| {
        format!(
            "auth: {{kind: none}}\nstreams:\n  people:\n    request: {{path: /people}}\n    records: $.data[*]\n    subrequests:\n      - into: employments\n        vars: {{id: $.id}}\n        request: {{path: '/people/{{var.id}}/employments'}}\n        records: $[*]\n        concurrency: 2\n        optional: {optional}\n"
        )
    };
    let s = spec(&base, &body(true));
    let (obs, r) = fetch(&client(&s, &[]), "people").await;
    assert_eq!(r.unwrap().records, 6);
    assert_eq!(obs.records[2]["employments"][0]["title"], "Role 2");
    assert_eq!(
        obs.records[5]["employments"],
        Value::Null,
        "an optional sub-request that failed leaves null"
    );
    assert_eq!(
        max_seen.load(Ordering::SeqCst),
        2,
        "two at a time, never more"
    );
    assert!(
        obs.requests
            .iter()
            .any(|(d, _)| d == "GET /v1/people/3/employments")
    );

    let s = spec(&base, &body(false));
    let (_, r) = fetch(&client(&s, &[]), "people").await;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("GET /v1/people/5/employments: HTTP 500"), "{e}");
}

#[tokio::test]
async fn the_declared_rate_limit_paces_requests() {
    let (base, log) = fake(|r| {
        let off = q(r, "offset");
        (
            200,
            vec![],
            json!({"data": people(off, (off + 100).min(350)), "meta": {"total": 350}}),
        )
    })
    .await;
    let s = spec(
        &base,
        &format!("rate_limit: {{requests_per_minute: 600, burst: 1}}\n{BEARER_OFFSET}"),
    );
    let started = std::time::Instant::now();
    let (_, r) = fetch(&client(&s, &[("api_key", "key-1234")]), "people").await;
    assert_eq!(r.unwrap().pages, 4);
    assert_eq!(log.lock().unwrap().len(), 4);
    // Ten per second with no burst: the 2nd, 3rd and 4th request each wait 100 ms.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(290),
        "{:?}",
        started.elapsed()
    );
}

/// A server that accepts the request and never answers.
async fn hanging() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        "never"
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn an_upstream_that_hangs_times_out() {
    let base = hanging().await;
    let s = spec(
        &base,
        "timeouts: {read: 200ms}\nauth: {kind: none}\nstreams:\n  people:\n    request: {path: /people}\n    records: $.data[*]\n",
    );
    let (obs, r) = fetch(&client(&s, &[]), "people").await;
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("GET /v1/people: no answer from 127.0.0.1 in time"),
        "{e}"
    );
    assert_eq!(
        obs.requests.len(),
        3,
        "retried up to max_attempts: {:?}",
        obs.requests
    );

    let s = spec(
        &base,
        "timeouts: {read: 10s, fetch: 300ms}\nauth: {kind: none}\nstreams:\n  people:\n    request: {path: /people}\n    records: $.data[*]\n",
    );
    let (_, r) = fetch(&client(&s, &[]), "people").await;
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("reading stream `people` took longer than 300ms"),
        "{e}"
    );
}

/// An HTTPS server on 127.0.0.1 with a fresh self-signed certificate for `localhost`; it
/// answers every request with one JSON page. Returns the base URL and the certificate PEM.
async fn self_signed() -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = cert.cert.pem();
    let key =
        tokio_rustls::rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
            .unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let body = r#"{"data":[{"id":1}]}"#;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (format!("https://localhost:{port}/v1"), pem)
}

#[tokio::test]
async fn a_self_signed_certificate_fails_naming_the_host_and_works_with_the_ca_file() {
    let (base, pem) = self_signed().await;
    let streams = "auth: {kind: none}\nstreams:\n  people:\n    request: {path: /people}\n    records: $.data[*]\n";
    let s = spec(&base, streams);
    let (_, r) = fetch(&client(&s, &[]), "people").await;
    let err = r.unwrap_err();
    let e = err.to_string();
    assert!(e.contains("cannot connect to localhost"), "{e}");
    assert!(e.contains("tls.ca_file"), "the help points at the fix: {e}");
    assert!(
        e.contains("presented a certificate this machine does not trust"),
        "{e}"
    );
    assert!(
        !e.contains("/v1/people: error sending request for url"),
        "no second URL: {e}"
    );
    assert_eq!(err.code(), "hris_tls", "{e}");
    assert!(
        err.public_message().starts_with(
            "source `hr`: the TLS handshake with `localhost` failed on page 1 of stream `people`"
        ),
        "{}",
        err.public_message()
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hris-ca.pem"), pem).unwrap();
    let s = spec(&base, &format!("tls: {{ca_file: hris-ca.pem}}\n{streams}"));
    let ctx = Context::new(&s, &BTreeMap::new(), &BTreeMap::new());
    let c = SourceClient::new("hr", &s, ctx, dir.path()).unwrap();
    let (obs, r) = fetch(&c, "people").await;
    r.unwrap();
    assert_eq!(obs.records.len(), 1);
}

/// An OAuth server that rotates refresh tokens (each refresh invalidates the previous one)
/// and whose access tokens work for `uses` requests. Counts refreshes.
struct OAuthFake {
    refresh: String,
    access: String,
    uses_left: u32,
    refreshes: u32,
}

async fn oauth_fake(uses: u32, pages: usize) -> (String, Arc<Mutex<OAuthFake>>) {
    let state = Arc::new(Mutex::new(OAuthFake {
        refresh: "rt-0".into(),
        access: String::new(),
        uses_left: 0,
        refreshes: 0,
    }));
    let st = state.clone();
    let (base, _) = fake(move |r| {
        let mut s = st.lock().unwrap();
        if r.path == "/v1/oauth/token" {
            let form: HashMap<String, String> = url::form_urlencoded::parse(r.body.as_bytes())
                .into_owned()
                .collect();
            if form.get("grant_type").map(String::as_str) != Some("refresh_token")
                || form.get("refresh_token") != Some(&s.refresh)
            {
                return (400, vec![], json!({"error": "invalid_grant"}));
            }
            s.refreshes += 1;
            s.refresh = format!("rt-{}", s.refreshes);
            s.access = format!("at-{}", s.refreshes);
            s.uses_left = uses;
            return (
                200,
                vec![],
                json!({"access_token": s.access, "refresh_token": s.refresh, "expires_in": 3600}),
            );
        }
        if r.headers.get("authorization") != Some(&format!("Bearer {}", s.access))
            || s.uses_left == 0
        {
            return (401, vec![], json!({"error": "expired"}));
        }
        s.uses_left -= 1;
        let off = q(r, "offset");
        (
            200,
            vec![],
            json!({"data": people(off, (off + 1).min(pages)), "meta": {"total": pages}}),
        )
    })
    .await;
    (base, state)
}

fn refresh_spec(base: &str) -> ProviderSpec {
    spec(
        base,
        &"credentials:\n  client_id: {secret: false}\n  client_secret: {}\n  refresh_token: {}\nauth:\n  kind: oauth2_refresh_token\n  token_url: BASE/oauth/token\n  client_id: '{credentials.client_id}'\n  client_secret: '{credentials.client_secret}'\n  refresh_token: '{credentials.refresh_token}'\nstreams:\n  members:\n    request: {path: /members}\n    pagination: {kind: offset, page_size: 1}\n    records: $.data[*]\n    total: $.meta.total\n"
            .replace("BASE", base),
    )
}

fn refresh_client(s: &ProviderSpec, state_dir: &std::path::Path) -> SourceClient {
    client(
        s,
        &[
            ("client_id", "id"),
            ("client_secret", "sec"),
            ("refresh_token", "rt-0"),
        ],
    )
    .with_token_store(roster::provider::tokens::TokenStore::new(
        state_dir,
        "justworks",
    ))
}

#[tokio::test]
async fn a_rotated_refresh_token_is_persisted_before_use_and_survives_a_restart() {
    // Access tokens last two requests, so four pages need a refresh in the middle.
    let (base, state) = oauth_fake(2, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let s = refresh_spec(&base);
    let (obs, r) = fetch(&refresh_client(&s, dir.path()), "members").await;
    assert_eq!(r.unwrap().records, 4);
    assert_eq!(obs.records.len(), 4);
    assert_eq!(
        state.lock().unwrap().refreshes,
        2,
        "one refresh at the start, one when the token expired"
    );
    let saved = std::fs::read_to_string(dir.path().join("tokens/justworks.json")).unwrap();
    assert!(
        saved.contains("\"rt-2\""),
        "the latest rotated token is on disk: {saved}"
    );
    assert!(
        obs.requests.iter().all(|(d, _)| !d.contains("rt-")),
        "{:?}",
        obs.requests
    );

    // A new process (the old one killed after refreshing): the credential still says rt-0,
    // which the server has invalidated, but the saved token works.
    let (obs, r) = fetch(&refresh_client(&s, dir.path()), "members").await;
    assert_eq!(r.unwrap().records, 4);
    assert_eq!(obs.records.len(), 4);
    assert!(
        std::fs::read_to_string(dir.path().join("tokens/justworks.json"))
            .unwrap()
            .contains("\"rt-4\"")
    );
}

#[tokio::test]
async fn concurrent_reads_trigger_exactly_one_refresh() {
    let (base, state) = oauth_fake(100, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let s = refresh_spec(&base);
    let c = refresh_client(&s, dir.path());
    let (a, b, cc, d) = tokio::join!(
        fetch(&c, "members"),
        fetch(&c, "members"),
        fetch(&c, "members"),
        fetch(&c, "members")
    );
    for (_, r) in [a, b, cc, d] {
        assert_eq!(r.unwrap().records, 1);
    }
    assert_eq!(state.lock().unwrap().refreshes, 1);
}

#[tokio::test]
async fn refresh_token_auth_without_a_state_directory_is_refused() {
    let (base, _) = oauth_fake(1, 1).await;
    let s = refresh_spec(&base);
    let c = client(
        &s,
        &[
            ("client_id", "id"),
            ("client_secret", "sec"),
            ("refresh_token", "rt-0"),
        ],
    );
    let (_, r) = fetch(&c, "members").await;
    assert!(
        r.unwrap_err()
            .to_string()
            .contains("needs a state directory")
    );
}

#[tokio::test]
async fn api_key_in_a_header_and_static_headers() {
    let (base, log) = fake(|_| (200, vec![], json!({"data": people(0, 1)}))).await;
    let s = spec(
        &base,
        "credentials:\n  api_key: {}\nauth: {kind: api_key, in: header, name: X-API-Key, value: '{credentials.api_key}'}\nstreams:\n  people:\n    request: {path: /people}\n    records: $.data[*]\n",
    );
    let (_, r) = fetch(&client(&s, &[("api_key", "hdr-key")]), "people").await;
    r.unwrap();
    assert_eq!(
        log.lock().unwrap()[0]
            .headers
            .get("x-api-key")
            .map(String::as_str),
        Some("hdr-key")
    );

    // The Merge style: a bearer key plus a per-account token, as two static headers.
    let (base, log) = fake(|_| (200, vec![], json!({"results": people(0, 1), "next": null}))).await;
    let s = spec(
        &base,
        "credentials:\n  api_key: {}\n  account_token: {}\nauth: {kind: headers, headers: {Authorization: 'Bearer {credentials.api_key}', X-Account-Token: '{credentials.account_token}'}}\nstreams:\n  employees:\n    request: {path: /employees}\n    pagination: {kind: cursor, cursor: $.next, param: cursor}\n    records: $.results[*]\n",
    );
    let (_, r) = fetch(
        &client(&s, &[("api_key", "mk"), ("account_token", "acct")]),
        "employees",
    )
    .await;
    r.unwrap();
    let req = log.lock().unwrap()[0].clone();
    assert_eq!(
        req.headers.get("authorization").map(String::as_str),
        Some("Bearer mk")
    );
    assert_eq!(
        req.headers.get("x-account-token").map(String::as_str),
        Some("acct")
    );
}

#[tokio::test]
async fn token_exchange_with_a_form_body_and_a_plain_token() {
    let (base, log) = fake(|r| {
        if r.path == "/v1/login" {
            assert_eq!(
                r.headers.get("content-type").map(String::as_str),
                Some("application/x-www-form-urlencoded")
            );
            let form: HashMap<String, String> = url::form_urlencoded::parse(r.body.as_bytes())
                .into_owned()
                .collect();
            assert_eq!(form.get("user").map(String::as_str), Some("svc"));
            return (
                200,
                vec![],
                json!({"session": {"token": "plain-1", "ttl": 3600}}),
            );
        }
        (200, vec![], json!({"data": people(0, 2)}))
    })
    .await;
    let s = spec(
        &base,
        "credentials:\n  user: {secret: false}\n  password: {}\nauth:\n  kind: token_exchange\n  request: {method: POST, path: /login, body: {form: {user: '{credentials.user}', password: '{credentials.password}'}}}\n  token: $.session.token\n  expires_in: $.session.ttl\n  header: X-Session\n  prefix: ''\nstreams:\n  people:\n    request: {path: /people}\n    records: $.data[*]\n",
    );
    let (obs, r) = fetch(
        &client(&s, &[("user", "svc"), ("password", "pw-secret")]),
        "people",
    )
    .await;
    r.unwrap();
    assert_eq!(obs.records.len(), 2);
    assert_eq!(
        log.lock().unwrap()[1]
            .headers
            .get("x-session")
            .map(String::as_str),
        Some("plain-1")
    );
}

/// How a raw server answers one connection.
#[derive(Debug, Clone)]
enum Raw {
    /// Closes at once, without a response.
    Reset,
    /// A whole response with this JSON body.
    Full(String),
    /// Headers announcing `announced` bytes, then these bytes, then close.
    Cut { announced: usize, sent: String },
    /// A chunked body: these bytes as one chunk, then close without the last chunk.
    ChunkedAborted(String),
    /// 200 with an empty body.
    Empty,
}

/// A raw TCP server (axum always sends whole bodies): `answer` picks the response from the
/// connection number and the request line. Every full response closes its connection, so
/// connections count requests. Returns the base URL and the connection count.
async fn raw_server(
    answer: impl Fn(usize, &str) -> Raw + Send + Sync + 'static,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = conns.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let n = c.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let read = sock.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..read]);
            let line = request.lines().next().unwrap_or("").to_string();
            let head = |len: usize| {
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
                )
            };
            let out = match answer(n, &line) {
                Raw::Reset => String::new(),
                Raw::Full(body) => format!("{}{body}", head(body.len())),
                Raw::Cut { announced, sent } => format!("{}{sent}", head(announced)),
                Raw::ChunkedAborted(part) => format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{part}\r\n",
                    part.len()
                ),
                Raw::Empty => head(0),
            };
            let _ = sock.write_all(out.as_bytes()).await;
            let _ = sock.flush().await;
            drop(sock);
        }
    });
    (format!("http://{addr}/v1"), conns)
}

/// One stream `people`, no auth, records at `$.data[*]`.
pub(crate) const PLAIN: &str = "auth: {kind: none}\nstreams:\n  people:\n    request: {path: /people}\n    records: $.data[*]\n";

fn conns(c: &std::sync::atomic::AtomicUsize) -> usize {
    c.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test]
async fn a_connection_reset_and_a_truncated_body_are_retried() {
    let body = r#"{"data":[{"id":1},{"id":2}]}"#;
    let (base, c) = raw_server(move |n, _| match n {
        0 => Raw::Reset,
        1 => Raw::Cut {
            announced: body.len(),
            sent: body[..10].to_string(),
        },
        _ => Raw::Full(body.to_string()),
    })
    .await;
    let s = spec(&base, PLAIN);
    let (obs, r) = fetch(&client(&s, &[]), "people").await;
    r.unwrap();
    assert_eq!(obs.records.len(), 2);
    assert_eq!(conns(&c), 3, "reset, truncated, then good");
}

/// Issue 14.10: a page cut mid-transfer, an empty page and a page whose JSON stops halfway
/// are each retried like a reset connection; the listing completes with every record.
#[tokio::test]
async fn cut_empty_and_half_json_pages_are_retried_and_every_record_arrives() {
    let page =
        |from: usize| json!({"data": people(from, from + 2), "meta": {"total": 6}}).to_string();
    // Page 1 is whole; page 2 is cut mid-transfer, then empty, then whole; page 3 is half a
    // JSON document (whole by HTTP's account), then chunked and aborted, then whole.
    let (base, c) = raw_server(move |n, _| match n {
        0 => Raw::Full(page(0)),
        1 => Raw::Cut {
            announced: 1000,
            sent: page(2)[..30].to_string(),
        },
        2 => Raw::Empty,
        3 => Raw::Full(page(2)),
        4 => Raw::Full(page(4)[..25].to_string()),
        5 => Raw::ChunkedAborted(page(4)[..20].to_string()),
        _ => Raw::Full(page(4)),
    })
    .await;
    let s = spec(
        &base,
        "auth: {kind: none}\nstreams:\n  people:\n    request: {path: /people}\n    pagination: {kind: offset, page_size: 2}\n    records: $.data[*]\n    total: $.meta.total\n",
    );
    let (obs, r) = fetch(&client(&s, &[]), "people").await;
    let summary = r.unwrap();
    assert_eq!((summary.pages, summary.records), (3, 6));
    let ids: Vec<u64> = obs
        .records
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [0, 1, 2, 3, 4, 5], "each record once, in order");
    assert_eq!(conns(&c), 7);
}

/// Issue 14.10: a body that is always cut is reported as what it is, with its page and byte
/// count, never as a DNS or TLS problem.
#[tokio::test]
async fn a_body_always_cut_mid_transfer_names_the_truncation() {
    let (base, c) = raw_server(|_, _| Raw::Cut {
        announced: 1000,
        sent: "x".repeat(100),
    })
    .await;
    let s = spec(&base, PLAIN);
    let (_, r) = fetch(&client(&s, &[]), "people").await;
    let e = r.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("GET /v1/people: the connection closed after 100 bytes of page 1 (of 1000 announced); the response was cut mid-transfer"),
        "{text}"
    );
    assert!(
        text.contains("closed the response early on every attempt"),
        "{text}"
    );
    for wrong in ["DNS", "cannot connect", "tls.ca_file", "certificate"] {
        assert!(!text.contains(wrong), "{wrong}: {text}");
    }
    assert_eq!(e.code(), "truncated_body");
    assert_eq!(
        e.public_message().split(" (help:").next().unwrap(),
        "source `hr`: the connection closed after 100 bytes of the response on page 1 of stream `people`; it was cut mid-transfer"
    );
    assert_eq!(conns(&c), 3, "retried with the same budget as a reset");
}

#[tokio::test]
async fn an_aborted_chunked_body_empty_pages_and_half_json_name_what_happened() {
    let cases = [
        (
            Raw::ChunkedAborted("{\"data\": [".into()),
            "the connection closed after 10 bytes of page 1; the response was cut mid-transfer",
        ),
        (
            Raw::Empty,
            "page 1 arrived empty: a success status with no body",
        ),
        (
            Raw::Full("{\"data\": [{\"id\": 1}, {\"id\"".into()),
            "page 1 ended after 26 bytes, before its JSON was complete; the response was cut short",
        ),
    ];
    for (raw, expect) in cases {
        let (base, c) = raw_server(move |_, _| raw.clone()).await;
        let s = spec(&base, PLAIN);
        let (_, r) = fetch(&client(&s, &[]), "people").await;
        let e = r.unwrap_err();
        let text = e.to_string();
        assert!(text.contains(expect), "{text}");
        assert!(!text.contains("DNS"), "{text}");
        assert_eq!(e.code(), "truncated_body", "{text}");
        assert_eq!(conns(&c), 3, "{text}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_fails_at_once_naming_its_page() {
    let (base, c) = raw_server(|_, _| Raw::Full("<html>maintenance</html>".into())).await;
    let s = spec(&base, PLAIN);
    let (_, r) = fetch(&client(&s, &[]), "people").await;
    let e = r.unwrap_err();
    assert!(
        e.to_string()
            .contains("GET /v1/people: page 1 is not valid JSON: expected value"),
        "{e}"
    );
    assert_eq!(e.code(), "invalid_json");
    assert_eq!(conns(&c), 1, "a page that is not JSON is not a glitch");
}

/// Issue 14.3: several related records on one join key are a data problem naming the stream
/// and the key, reported once per (stream, key); the first in listing order is attached.
#[tokio::test]
async fn duplicate_join_keys_are_reported_once_and_the_first_record_is_joined() {
    let (base, _) = fake(|r| match r.path.as_str() {
        "/v1/accounts" => (
            200,
            vec![],
            json!({"data": [{"_id": "a1"}, {"_id": "a2"}, {"_id": 42}]}),
        ),
        // An HRIS that answered every section under one key: three share 42, two share a1.
        "/v1/personals" => (
            200,
            vec![],
            json!({"data": [
                {"_id": 42, "firstName": "First"},
                {"_id": "a1", "firstName": "Ada"},
                {"_id": "42", "firstName": "Second"},
                {"_id": "a2", "firstName": "Bob"},
                {"_id": 42, "firstName": "Third"},
                {"_id": "a1", "firstName": "Other"},
            ]}),
        ),
        _ => (404, vec![], json!({})),
    })
    .await;
    // The same related stream twice (a join and a lookup): still one report per key.
    let s = spec(
        &base,
        "auth: {kind: none}\nstreams:\n  accounts:\n    request: {path: /accounts}\n    records: $.data[*]\n    id: $._id\n    join:\n      - {stream: personals, on: $._id, into: personal}\n    lookups:\n      - {stream: personals, key: $._id, into: again}\n  personals:\n    request: {path: /personals}\n    records: $.data[*]\n    id: $._id\n",
    );
    let (obs, r) = fetch(&client(&s, &[]), "accounts").await;
    assert_eq!(r.unwrap().records, 3);
    let first: Vec<&str> = obs
        .records
        .iter()
        .map(|r| r["personal"]["firstName"].as_str().unwrap())
        .collect();
    assert_eq!(first, ["Ada", "Bob", "First"], "the first in listing order");
    assert_eq!(
        obs.problems,
        [
            SourceProblem {
                kind: "duplicate_join_key",
                stream: "personals".into(),
                key: "42".into(),
                detail: "3 records of stream `personals` share key `42`; the first in listing order was joined".into(),
            },
            SourceProblem {
                kind: "duplicate_join_key",
                stream: "personals".into(),
                key: "a1".into(),
                detail: "2 records of stream `personals` share key `a1`; the first in listing order was joined".into(),
            },
        ]
    );
    for p in &obs.problems {
        for value in ["First", "Second", "Third", "Ada", "Other"] {
            assert!(
                !p.detail.contains(value),
                "no personal values: {}",
                p.detail
            );
        }
    }
}

/// https:// to a port that serves plain HTTP: one attempt (the answer is the same every time),
/// and the error says what is wrong instead of naming DNS and CA files (issue 18).
#[tokio::test]
async fn https_to_a_plain_http_port_fails_at_once_naming_the_scheme() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 1024];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    let base = format!("https://127.0.0.1:{port}/v1");
    let streams = "auth: {kind: none}\nstreams:\n  people:\n    request: {path: /people}\n    records: $.data[*]\n";
    let s = spec(&base, streams);
    let (_, r) = fetch(&client(&s, &[]), "people").await;
    let err = r.unwrap_err();
    let e = err.to_string();
    assert!(e.contains("plain HTTP"), "{e}");
    assert!(e.contains("use `http://` in `base_url`"), "{e}");
    assert!(!e.contains("DNS"), "not a DNS problem: {e}");
    assert_eq!(err.code(), "hris_tls", "{e}");
    assert!(
        err.public_message()
            .contains("the port answered in plain HTTP"),
        "{}",
        err.public_message()
    );
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a deterministic failure is not retried"
    );
}

/// An observer that takes every record, so its work on a page overlaps the next page's
/// request; at the last record of each page it notes how many requests the fake has seen.
struct Overlapping {
    all: Collect,
    log: Arc<Mutex<Vec<Req>>>,
    seen_at_page_end: Vec<usize>,
}

impl Observer for Overlapping {
    fn overlaps(&self) -> bool {
        true
    }
    fn request(&mut self, described: &str, status: u16) {
        self.all.request(described, status);
    }
    fn record(&mut self, record: Value) -> bool {
        if record["id"].as_u64().is_some_and(|id| id % 100 == 99) {
            self.seen_at_page_end.push(self.log.lock().unwrap().len());
        }
        self.all.record(record)
    }
}

/// Notes, at each request report, how many requests the fake had answered by then.
struct Live {
    log: Arc<Mutex<Vec<Req>>>,
    seen_at_report: Vec<(u16, usize)>,
}

impl Observer for Live {
    fn request(&mut self, _described: &str, status: u16) {
        self.seen_at_report
            .push((status, self.log.lock().unwrap().len()));
    }
    fn record(&mut self, _record: Value) -> bool {
        true
    }
}

#[tokio::test]
async fn a_reader_that_takes_records_as_they_come_hears_of_each_retry_when_it_happens() {
    // `roster fetch --show-requests` prints each answer as it arrives: during a 503 storm
    // the user sees the retries, not a burst once the page finally came.
    let tries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t = tries.clone();
    let (base, log) = fake(move |r| {
        if t.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            return (503, vec![], json!({"error": "busy"}));
        }
        let off = q(r, "offset");
        let data: Vec<Value> = (off..(off + 100).min(150))
            .map(|i| json!({"id": i}))
            .collect();
        (200, vec![], json!({"data": data, "meta": {"total": 150}}))
    })
    .await;
    let s = spec(&base, BEARER_OFFSET);
    let c = client(&s, &[("api_key", "k")]);
    let mut obs = Live {
        log: log.clone(),
        seen_at_report: Vec::new(),
    };
    c.fetch_stream("people", &mut obs).await.unwrap();
    assert_eq!(
        obs.seen_at_report,
        [(503, 1), (503, 2), (200, 3), (200, 4)],
        "each answer reported before the next request"
    );
}

/// A paged fake that answers after `delay`, serving `total` records of which at most `cap`
/// per page (an API that caps the page size below ours), failing (500) the page at offset
/// `fail_at`, and notes the offsets asked for and the most requests it ever had in flight.
async fn slow_paged_fake(
    total: usize,
    cap: usize,
    fail_at: Option<usize>,
    delay: std::time::Duration,
) -> (
    String,
    Arc<Mutex<Vec<usize>>>,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let offsets: Arc<Mutex<Vec<usize>>> = Arc::default();
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (offsets2, most2) = (offsets.clone(), most.clone());
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let (offsets, now, most) = (offsets2.clone(), now.clone(), most2.clone());
        async move {
            let query: HashMap<String, String> =
                url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                    .into_owned()
                    .collect();
            let off: usize = query["offset"].parse().unwrap();
            let limit: usize = query["limit"].parse().unwrap();
            offsets.lock().unwrap().push(off);
            let in_flight = now.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(in_flight, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            now.fetch_sub(1, Ordering::SeqCst);
            if fail_at == Some(off) {
                return (StatusCode::INTERNAL_SERVER_ERROR, "{}".to_string());
            }
            let data: Vec<Value> = (off..(off + limit.min(cap)).min(total))
                .map(|i| json!({"id": i, "pad": "x".repeat(100)}))
                .collect();
            (
                StatusCode::OK,
                json!({"data": data, "meta": {"total": total}}).to_string(),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), offsets, most)
}

/// What one overlapping listing of [`slow_paged_fake`] read: the ids in the order handed
/// on, how the listing ended, the request reports, the offsets the fake was asked for
/// (sorted) and the most requests it had in flight at once.
struct SlowRead {
    ids: Vec<u64>,
    result: Result<roster::provider::paginate::Summary, FetchError>,
    reports: Vec<(String, u16)>,
    asked: Vec<usize>,
    most: usize,
}

/// Reads a listing of `total` records served at most `cap` a page, 20 ms a request, the
/// page at offset `fail_at` failing, with the provider spec `body`, as a sync does (an
/// observer that takes every record).
async fn slow_read(total: usize, cap: usize, fail_at: Option<usize>, body: &str) -> SlowRead {
    let (base, offsets, most) =
        slow_paged_fake(total, cap, fail_at, std::time::Duration::from_millis(20)).await;
    let s = spec(&base, body);
    let c = client(&s, &[("api_key", "k")]);
    let mut obs = Overlapping {
        all: Collect::default(),
        log: Arc::default(),
        seen_at_page_end: Vec::new(),
    };
    let result = c.fetch_stream("people", &mut obs).await;
    if let Ok(summary) = &result {
        assert_eq!(summary.records, total as u64);
    }
    let mut asked = offsets.lock().unwrap().clone();
    asked.sort_unstable();
    SlowRead {
        ids: obs
            .all
            .records
            .iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect(),
        result,
        reports: obs.all.requests,
        asked,
        most: most.load(std::sync::atomic::Ordering::SeqCst),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_with_a_reported_total_asks_for_the_next_page_while_one_is_read_and_a_wrong_guess_stops_it()
 {
    // Once the first page reported the total, the page after the next is asked for while
    // the next is read: two requests in flight, never more, and none in vain.
    let r = slow_read(1000, 100, None, BEARER_OFFSET).await;
    assert_eq!(r.ids, (0..1000).collect::<Vec<_>>(), "each once, in order");
    assert_eq!(r.result.unwrap().pages, 10);
    assert_eq!(r.asked, (0..10).map(|p| p * 100).collect::<Vec<_>>());
    assert_eq!(r.most, 2, "the next page and the one after");
    assert_eq!(r.reports.len(), 10, "every request reported once");

    // An API that sends 50 records a page where we asked for 100: the guess (offset 150
    // after the page at 50) is read in vain, and the listing goes on one page at a time.
    let r = slow_read(300, 50, None, BEARER_OFFSET).await;
    assert_eq!(r.ids, (0..300).collect::<Vec<_>>(), "each once, in order");
    assert_eq!(r.result.unwrap().pages, 6);
    assert_eq!(
        r.asked,
        [0, 50, 100, 150, 150, 200, 250],
        "one request in vain"
    );
    assert_eq!(r.most, 2);
    assert_eq!(r.reports.len(), 7);

    // A listing without a total cannot be guessed: one request at a time.
    let no_total = BEARER_OFFSET.replace("    total: $.meta.total\n", "");
    let r = slow_read(300, 100, None, &no_total).await;
    assert_eq!(r.ids, (0..300).collect::<Vec<_>>());
    assert_eq!(r.most, 1);

    // The page at 300 keeps failing while the guess for 400 is in flight: the error comes
    // once the guess has finished (its report is passed on), not by cancelling it.
    let r = slow_read(1000, 100, Some(300), BEARER_OFFSET).await;
    let e = r.result.unwrap_err();
    assert!(e.to_string().contains("500"), "{e}");
    assert_eq!(r.ids.len(), 300, "the pages before it");
    assert!(r.asked.contains(&400));
    assert!(
        r.reports
            .iter()
            .any(|(d, status)| d.contains("offset=400") && *status == 200),
        "{:?}",
        r.reports
    );
}

#[tokio::test]
async fn an_observer_that_takes_every_record_gets_them_in_order_while_the_next_page_loads() {
    // Pages of about 30 KB: parsed on the listing's parser thread while the page before is
    // handed on.
    let padded = |from: usize, to: usize| -> Vec<Value> {
        (from..to)
            .map(|i| json!({"id": i, "pad": "x".repeat(300)}))
            .collect()
    };
    let (base, log) = fake(move |r| {
        let off = q(r, "offset");
        let end = (off + q(r, "limit")).min(1000);
        (
            200,
            vec![],
            json!({"data": padded(off, end), "meta": {"total": 1000}}),
        )
    })
    .await;
    let s = spec(&base, BEARER_OFFSET);
    let c = client(&s, &[("api_key", "k")]);
    let mut obs = Overlapping {
        all: Collect::default(),
        log: log.clone(),
        seen_at_page_end: Vec::new(),
    };
    let summary = c.fetch_stream("people", &mut obs).await.unwrap();
    assert_eq!((summary.pages, summary.records), (10, 1000));
    let ids: Vec<u64> = obs
        .all
        .records
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        (0..1000).collect::<Vec<_>>(),
        "every record once, in order"
    );
    let offsets: Vec<usize> = obs
        .all
        .requests
        .iter()
        .map(|(d, status)| {
            assert_eq!(*status, 200);
            d.split("offset=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(offsets, (0..10).map(|p| p * 100).collect::<Vec<_>>());
    // Page k was still being handed on when page k + 1 had been requested.
    assert!(
        obs.seen_at_page_end
            .iter()
            .enumerate()
            .any(|(k, &seen)| seen > k + 1),
        "requests seen at each page's end: {:?}",
        obs.seen_at_page_end
    );

    // A later page that keeps failing: the pages before it are all handed on, then the error.
    let (base, _) = fake(move |r| {
        let off = q(r, "offset");
        if off >= 200 {
            return (500, vec![], json!({"error": "internal"}));
        }
        (
            200,
            vec![],
            json!({"data": padded(off, off + 100), "meta": {"total": 1000}}),
        )
    })
    .await;
    let s = spec(&base, BEARER_OFFSET);
    let c = client(&s, &[("api_key", "k")]);
    let mut obs = Overlapping {
        all: Collect::default(),
        log,
        seen_at_page_end: Vec::new(),
    };
    let e = c
        .fetch_stream("people", &mut obs)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("offset=200") && e.contains("HTTP 500"), "{e}");
    assert_eq!(obs.all.records.len(), 200);
}
