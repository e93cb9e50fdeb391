//! What the provider end-to-end tests (`provider_*.rs`) share: a config directory that reads a
//! fake vendor through a built-in spec with only its hosts changed, a sync through
//! `roster::sync::sync_source`, the published directory read back read-only, and the checks
//! every vendor's tests make of the result (people field by field, published cleanly, a
//! credential error that says what to do and shows no secret).
//!
//! Not here: the fakes and the expectations derived from what they serve. Those are each
//! vendor's own and stay in its file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::civil::Date;
use serde_json::Value;

use roster::config::Config;
use roster::config::compile::SourcePlan;
use roster::sync::{NoProgress, Options, Report, SyncError};

/// Serves `app` on 127.0.0.1 at a free port for the rest of the test; returns the address.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The built-in provider spec `name` with each line that starts with one of `replace`'s
/// prefixes replaced by its line. Each prefix must match exactly one line, so a spec that
/// moved or doubled the line fails here rather than silently calling the real vendor.
fn builtin_spec_with(name: &str, replace: &[(&str, String)]) -> String {
    let (_, builtin) = roster::config::builtin_providers()
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap();
    let mut hits = vec![0; replace.len()];
    let mut out = String::new();
    for line in builtin.lines() {
        match replace.iter().position(|(p, _)| line.starts_with(p)) {
            Some(i) => {
                hits[i] += 1;
                out.push_str(&replace[i].1);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    for ((p, _), n) in replace.iter().zip(hits) {
        assert_eq!(
            n, 1,
            "`{p}` matches {n} lines of the built-in `{name}` spec"
        );
    }
    out
}

/// A config directory in a temp dir (with `providers/` and `secrets/`), and the state of the
/// fake vendor it reads (`()` until [`Env::serve`]).
pub struct Env<F = ()> {
    _dir: tempfile::TempDir,
    /// The config directory: `roster.yaml`, `providers/`, `secrets/`, and `state/` once synced.
    pub config: PathBuf,
    fake: F,
}

impl Env {
    /// An empty config directory: `providers/` and `secrets/`, nothing in them yet.
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        for sub in ["providers", "secrets"] {
            std::fs::create_dir_all(config.join(sub)).unwrap();
        }
        Env {
            _dir: dir,
            config,
            fake: (),
        }
    }

    /// A config directory for a built-in provider whose one credential is a secret: the spec
    /// with `base_url` and the lines of `replace` replaced (see [`builtin_spec_with`]), the
    /// built-in mapping, and one source per `(name, secret)` reading `credential` from
    /// `secrets/{name}`.
    pub fn one_secret_sources(
        provider: &str,
        credential: &str,
        base_url: &str,
        replace: &[(&str, String)],
        time_zone: &str,
        sources: &[(&str, &str)],
    ) -> Env {
        let env = Env::new();
        let mut lines = vec![("base_url:", format!("base_url: {base_url}"))];
        lines.extend(replace.iter().cloned());
        env.override_builtin(provider, &lines);
        let mut roster = String::new();
        for (name, secret) in sources {
            env.write_secret(name, secret);
            roster.push_str(&format!(
                "  {name}:\n    provider: {provider}\n    credentials:\n      {credential}: {{file: secrets/{name}}}\n"
            ));
        }
        env.write_roster(time_zone, &roster);
        env
    }

    /// A fake whose state is `fake`, served by `app`, and an empty config directory to point
    /// at it; returns them and the fake's address.
    pub async fn serving<T: Send + 'static>(
        fake: T,
        app: axum::Router<Arc<Mutex<T>>>,
    ) -> (Env<Arc<Mutex<T>>>, SocketAddr) {
        Env::new().serve(fake, app).await
    }

    /// [`Env::serving`] for a fake that needs to know the config directory first.
    pub async fn serve<T: Send + 'static>(
        self,
        fake: T,
        app: axum::Router<Arc<Mutex<T>>>,
    ) -> (Env<Arc<Mutex<T>>>, SocketAddr) {
        let fake = Arc::new(Mutex::new(fake));
        let addr = serve(app.with_state(fake.clone())).await;
        (self.with_fake(fake), addr)
    }
}

impl<T> Env<Arc<Mutex<T>>> {
    /// What the fake serves and has seen (locked until dropped).
    pub fn fake(&self) -> MutexGuard<'_, T> {
        self.fake.lock().unwrap()
    }
}

impl<F> Env<F> {
    /// The same directory, now with the fake it reads.
    fn with_fake<G>(self, fake: G) -> Env<G> {
        Env {
            _dir: self._dir,
            config: self.config,
            fake,
        }
    }

    /// Writes `path` (relative to the config directory) as is.
    pub fn write(&self, path: &str, contents: impl AsRef<[u8]>) {
        std::fs::write(self.config.join(path), contents).unwrap();
    }

    /// Writes `secrets/{name}`: `value` and a newline, as an editor saves it.
    pub fn write_secret(&self, name: &str, value: &str) {
        self.write(&format!("secrets/{name}"), format!("{value}\n"));
    }

    /// Writes `providers/{provider}.yaml`: the built-in spec with only `base_url` replaced.
    pub fn override_base_url(&self, provider: &str, base_url: &str) {
        self.override_builtin(provider, &[("base_url:", format!("base_url: {base_url}"))]);
    }

    /// Writes `providers/{provider}.yaml`: the built-in spec with the lines of `replace`
    /// replaced (see [`builtin_spec_with`]).
    pub fn override_builtin(&self, provider: &str, replace: &[(&str, String)]) {
        self.write(
            &format!("providers/{provider}.yaml"),
            builtin_spec_with(provider, replace),
        );
    }

    /// Writes `roster.yaml`: the time zone, the store in `state/`, and `sources`, the block
    /// under `sources:` (each source indented by two spaces).
    pub fn write_roster(&self, time_zone: &str, sources: &str) {
        self.write(
            "roster.yaml",
            format!("time_zone: {time_zone}\nstore:\n  state_dir: state\nsources:\n{sources}"),
        );
    }

    /// The config, loaded as every command loads it; panics with the diagnostics if invalid.
    pub fn cfg(&self) -> Config {
        crate::load(&self.config).unwrap_or_else(|d| panic!("config invalid:\n{}", d.render()))
    }

    /// Syncs the first source as a fresh process would: config loaded, store opened, client
    /// built.
    pub async fn sync(&self) -> Result<Report, SyncError> {
        let cfg = self.cfg();
        sync_plan(&cfg, &cfg.sources[0]).await
    }

    /// Syncs the source called `name`, like [`Env::sync`].
    pub async fn sync_source(&self, name: &str) -> Result<Report, SyncError> {
        let cfg = self.cfg();
        let plan = cfg.sources.iter().find(|s| s.name == name).unwrap();
        sync_plan(&cfg, plan).await
    }

    /// Where the published directory is (or would be).
    pub fn directory_path(&self) -> PathBuf {
        roster::sync::directory_path(&self.cfg())
    }

    /// The published directory, opened read-only as a user would.
    pub fn directory(&self) -> Directory {
        Directory(roster::store::open_readonly(&self.directory_path()).unwrap())
    }

    /// Runs `sql` on the published directory, opened afresh (so it sees the latest sync).
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        self.directory().query(sql)
    }

    /// [`Directory::row_of`] on the published directory, opened afresh.
    pub fn row_of(&self, email: &str, columns: &str) -> Vec<String> {
        self.directory().row_of(email, columns)
    }

    /// Everyone in the directory: work email → `columns` (SQL, comma-separated) of their row.
    pub fn people_by_email(&self, columns: &str) -> BTreeMap<String, Vec<String>> {
        self.query(&format!("select work_email, {columns} from people"))
            .into_iter()
            .map(|mut row| (row.remove(0), row))
            .collect()
    }
}

async fn sync_plan(cfg: &Config, plan: &SourcePlan) -> Result<Report, SyncError> {
    let mut store = roster::sync::open_store(cfg).unwrap();
    roster::sync::sync_source(cfg, &mut store, plan, &Options::default(), &mut NoProgress).await
}

/// A read-only connection to the published directory.
pub struct Directory(duckdb::Connection);

impl Directory {
    /// Runs `sql`; every value as `roster query` prints it.
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let (_, rows) = roster::cli::query::execute(&self.0, sql).unwrap();
        rows.iter()
            .map(|r| r.iter().map(roster::cli::query::text).collect())
            .collect()
    }

    /// `columns` of the one person with this work email; fails unless there is exactly one.
    pub fn row_of(&self, email: &str, columns: &str) -> Vec<String> {
        let rows = self.query(&format!(
            "select {columns} from people where work_email = '{email}'"
        ));
        assert_eq!(rows.len(), 1, "{email}: {rows:?}");
        rows.into_iter().next().unwrap()
    }
}

/// Asserts the directory holds exactly the people of `want` (work email → row), each field
/// by field; `columns` names the row's columns in the failure message.
pub fn assert_people(
    got: &BTreeMap<String, Vec<String>>,
    want: &BTreeMap<String, Vec<String>>,
    columns: &str,
) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (email, row) in want {
        assert_eq!(&got[email], row, "{email} ({columns})");
    }
}

/// Asserts the sync published the directory and held nothing back.
pub fn assert_published(r: &Report) {
    assert!(r.published, "{r:?}");
    assert!(r.applied.held.is_none(), "{:?}", r.applied.held);
}

/// Asserts `msg` contains each of `parts`.
pub fn assert_mentions(msg: &str, parts: &[&str]) {
    for part in parts {
        assert!(msg.contains(part), "`{part}` not in: {msg}");
    }
}

/// Asserts `err` is a fetch error whose text contains each of `parts` and that shows none of
/// `secrets`, neither in its text nor in its debug form. Returns the text.
pub fn assert_fetch_error(err: &SyncError, parts: &[&str], secrets: &[&str]) -> String {
    assert!(matches!(err, SyncError::Fetch(_)), "{err:?}");
    let msg = err.to_string();
    assert_mentions(&msg, parts);
    for shown in [msg.clone(), format!("{err:?}")] {
        for secret in secrets {
            assert!(!shown.contains(secret), "a secret leaked: {shown}");
        }
    }
    msg
}

/// Today's date in `time_zone` (the deployment's, which decides who has started).
pub fn today_in(time_zone: &str) -> Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get(time_zone).unwrap())
        .date()
}

/// The status the store derives: a past end date terminates, an active person not yet
/// started is a pre-hire, else the HRIS status. Dates as `YYYY-MM-DD`, empty for none.
pub fn derived_status<'a>(hris_status: &'a str, start: &str, end: &str, today: &str) -> &'a str {
    if !end.is_empty() && end < today {
        "terminated"
    } else if hris_status == "active" && start > today {
        "pre_hire"
    } else {
        hris_status
    }
}

/// A JSON value as text: a string as is, null as empty, anything else as JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// [`text`], trimmed.
pub fn trimmed(v: &Value) -> String {
    text(v).trim().to_string()
}

/// The calendar date as written: the first ten characters of a date or date-time.
pub fn date(v: &Value) -> String {
    text(v).chars().take(10).collect()
}
