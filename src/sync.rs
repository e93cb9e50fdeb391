//! A sync of one source: fetch the complete listing (streaming, page by page), hash each raw
//! record, map and stage only new or changed ones, then merge, diff and apply (or hold) in one
//! transaction, and publish the directory for readers.
//!
//! Nothing is applied before the fetch has returned `Ok` (the engine checks completeness at
//! the end); a record that fails to map still counts as present; a run that would remove too
//! many people, or that lists nobody, is held.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::Config;
use crate::config::compile::SourcePlan;
use crate::config::person::Field;
use crate::config::secret::{CredentialValue, ProcessEnv, Secret};
use crate::mapping::{Mapped, Mapper};
use crate::provider::fetch::{FetchError, Observer, SourceClient};
use crate::provider::page::RawPage;
use crate::provider::request::Context;
use crate::provider::tokens::TokenStore;
use crate::store::sync::{
    Applied, ApplyInput, ListingProblem, Outcome, RunRow, StagedBatch, StagedRecord, StagedRows,
    Staging,
};
use crate::store::{Store, StoreError};

/// Why a sync could not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A credential could not be read.
    #[error(
        "source `{source_name}`: credential `{credential}`: cannot read secret: {reason} (help: {help})"
    )]
    Secret {
        /// The source.
        source_name: String,
        /// The credential.
        credential: String,
        /// Why.
        reason: String,
        /// What to do.
        help: String,
    },
    /// The HRIS could not be read completely; nothing was applied.
    #[error("{0}; nothing was applied")]
    Fetch(#[from] FetchError),
    /// The store failed; nothing was applied.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The listing repeated record keys and its distinct keys fall short of the reported
    /// total; nothing was applied.
    #[error(
        "source `{source_name}`: incomplete listing: the API reported {reported} records but only {distinct} distinct record keys arrived ({repeated} records repeated a key already listed); nothing was applied (help: this happens when an API ignores the paging parameter or the data changed while it was paged; run the sync again, and if it repeats check the provider's `pagination:` with `roster fetch {source_name}`)"
    )]
    Repeated {
        /// The source.
        source_name: String,
        /// The API's total.
        reported: u64,
        /// Distinct record keys that arrived.
        distinct: u64,
        /// Records that repeated a key.
        repeated: u64,
    },
    /// A coverage rule with `action: fail` was violated; nothing was applied.
    #[error(
        "source `{source_name}`: {detail}; nothing was applied (help: check the mapping's paths with `roster fetch {source_name} --limit 3`, or relax `coverage:` in the mapping)"
    )]
    Coverage {
        /// The source.
        source_name: String,
        /// The violations.
        detail: String,
    },
}

impl SyncError {
    /// A stable code for `sync_runs.error_code` and `sync.failed` events.
    pub fn code(&self) -> &'static str {
        match self {
            SyncError::Secret { .. } => "secret_unreadable",
            SyncError::Fetch(e) => e.code(),
            SyncError::Store(_) => "store_error",
            SyncError::Repeated { .. } => "listing_incomplete",
            SyncError::Coverage { .. } => "coverage_failed",
        }
    }

    /// Roster's own words for what failed, with no text from the HRIS (no response body, no
    /// URL query): what may leave the process, in `sync_runs` and `sync.failed` events.
    pub fn public_message(&self) -> String {
        match self {
            SyncError::Fetch(e) => format!("{}; nothing was applied", e.public_message()),
            other => other.to_string(),
        }
    }
}

/// Options of a sync.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Apply even when the safety thresholds would hold the run.
    pub allow_removals: bool,
    /// Plan only: compute the changes and roll back.
    pub dry_run: bool,
    /// Return the field-level changes.
    pub want_changes: bool,
    /// Create a missing state database even where an old one left traces (`--rebaseline`;
    /// used where the store is opened for the run).
    pub rebaseline: bool,
    /// Read the whole listing even where the stream reads incrementally (`--full`).
    pub full: bool,
}

/// How a run reads its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// The whole listing: the only kind that can remove people. `why` says why it is due.
    Full {
        /// Why (for logs and `sync`'s summary): `not incremental`, `first read`, ...
        why: &'static str,
    },
    /// Only the records changed since the cursor: updates and creates, never removes.
    Incremental {
        /// The query parameter.
        param: String,
        /// The cursor, as sent.
        since: String,
    },
}

impl Listing {
    /// `full` or `incremental`, as `sync_runs.listing` stores it.
    pub fn kind(&self) -> &'static str {
        match self {
            Listing::Full { .. } => "full",
            Listing::Incremental { .. } => "incremental",
        }
    }

    /// True for a whole listing.
    pub fn is_full(&self) -> bool {
        matches!(self, Listing::Full { .. })
    }

    /// The query parameters it adds to the stream's requests.
    fn query(&self) -> Vec<(String, String)> {
        match self {
            Listing::Full { .. } => Vec::new(),
            Listing::Incremental { param, since } => vec![(param.clone(), since.clone())],
        }
    }
}

/// Chooses a run's listing. An incremental read needs a committed full read with the same
/// mapping (`mapping`, a fingerprint) less than `full_every` ago; its cursor is the last
/// committed run's start minus the lookback, so a run that fails or is held never moves it.
pub fn choose_listing(
    incremental: Option<&crate::config::provider::Incremental>,
    state: &crate::store::sync::ListingState,
    mapping: &str,
    now: jiff::Timestamp,
    force_full: bool,
) -> Listing {
    let Some(inc) = incremental else {
        return Listing::Full {
            why: "not incremental",
        };
    };
    if force_full {
        return Listing::Full { why: "--full" };
    }
    let (Some(last_start), Some((full_at, full_mapping))) = (state.last_start, &state.last_full)
    else {
        return Listing::Full { why: "first read" };
    };
    if full_mapping.as_deref() != Some(mapping) {
        return Listing::Full {
            why: "the mapping changed",
        };
    }
    let due = jiff::SignedDuration::try_from(inc.full_every()).unwrap_or(jiff::SignedDuration::MAX);
    if now.duration_since(*full_at) >= due {
        return Listing::Full {
            why: "full_every reached",
        };
    }
    Listing::Incremental {
        param: inc.param.clone(),
        since: inc.cursor(last_start),
    }
}

/// Progress of a fetch, for a progress bar or log lines.
pub trait Progress {
    /// A page (or other request) came back.
    fn page(&mut self, source: &str, pages: u64, records: u64);
}

/// No progress output.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn page(&mut self, _: &str, _: u64, _: u64) {}
}

/// What a sync did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The source.
    pub source: String,
    /// The run row as written.
    pub run: RunRow,
    /// What the merge and diff found.
    pub applied: Applied,
    /// Coverage problems (warnings).
    pub coverage: Vec<String>,
    /// True when the directory was published.
    pub published: bool,
    /// Records missing from the listing that a confirmation listing found again (they stay).
    pub relisted: u64,
    /// Records whose key the listing had already returned (not staged; a data problem).
    pub duplicates: u64,
}

/// Builds the HTTP client of a source: resolves its secrets and keeps rotated OAuth refresh
/// tokens in the state directory. Shared by `fetch`, `sync`, `plan` and the daemon.
pub fn source_client(cfg: &Config, plan: &SourcePlan) -> Result<SourceClient, SyncError> {
    let spec = &cfg.providers[&plan.provider].spec;
    let source = &cfg.deployment.spec.sources[&plan.name];
    let env = ProcessEnv {
        config_dir: cfg.dir.clone(),
    };
    let mut creds = BTreeMap::new();
    for (name, value) in &source.credentials {
        let secret = match value {
            CredentialValue::Literal(v) => Secret::new(v.clone()),
            CredentialValue::Secret(r) => r.resolve(&env).map_err(|e| SyncError::Secret {
                source_name: plan.name.clone(),
                credential: name.clone(),
                reason: e.to_string(),
                help: e.help().to_string(),
            })?,
        };
        creds.insert(name.clone(), secret);
    }
    let ctx = Context::new(spec, &creds, &source.settings);
    // A source's own `base_url` (a sandbox, a mock) replaces the spec's, with the URLs on its
    // host (`token_url`, a login).
    let rebased = source
        .base_url
        .as_ref()
        .map(|b| crate::provider::request::rebase(spec, &ctx, b.url()));
    let spec = rebased.as_ref().unwrap_or(spec);
    let ctx = Context::new(spec, &creds, &source.settings);
    let client = SourceClient::new(&plan.name, spec, ctx, &cfg.dir)?;
    Ok(client.with_token_store(TokenStore::new(&cfg.state_dir(), &plan.name)))
}

/// The published directory's path.
pub fn directory_path(cfg: &Config) -> PathBuf {
    match &cfg.deployment.spec.store.directory {
        Some(d) => cfg.dir.join(d),
        None => cfg.state_dir().join(crate::store::DIRECTORY_FILE),
    }
}

/// Opens the store of a config, and republishes the directory when the published copy is
/// behind the state (a crash between a commit and its publish): start-up catches up.
pub fn open_store(cfg: &Config) -> Result<Store, StoreError> {
    open_store_with(cfg, false)
}

/// [`open_store`]; with `rebaseline`, a missing state database is created even where an old
/// one left traces (`--rebaseline`: the operator starts over on purpose).
pub fn open_store_with(cfg: &Config, rebaseline: bool) -> Result<Store, StoreError> {
    let (state, directory) = (cfg.state_dir(), directory_path(cfg));
    let mut store = if rebaseline {
        Store::open_rebaseline(&state, &directory)?
    } else {
        Store::open(&state, &directory)?
    };
    configure_store(cfg, &mut store)?;
    store.publish_if_stale()?;
    Ok(store)
}

/// What the config says about an open store: where events go and DuckDB's memory limit (the
/// daemon applies it again with each reloaded config).
pub fn configure_store(cfg: &Config, store: &mut Store) -> Result<(), StoreError> {
    let spec = &cfg.deployment.spec;
    store.set_routing(crate::events::Routing::from_deployment(spec));
    store.set_memory_limit(spec.store.memory_limit.as_ref().map(|m| m.bytes()))
}

/// The precedence table: for every field (`*` = default), each source's rank (0 wins).
/// The default order is `precedence.default`, then the remaining sources in file order; a
/// per-field order lists its sources first, then the others in default order.
pub fn precedence_table(cfg: &Config) -> Vec<(String, String, i32)> {
    let spec = &cfg.deployment.spec;
    let mut default: Vec<String> = spec
        .precedence
        .default
        .iter()
        .map(|n| n.as_str().to_string())
        .collect();
    for name in spec.sources.keys() {
        if !default.contains(name) {
            default.push(name.clone());
        }
    }
    let mut out = Vec::new();
    for (i, s) in default.iter().enumerate() {
        out.push(("*".to_string(), s.clone(), i as i32));
    }
    for (field, order) in &spec.precedence.fields {
        let mut list: Vec<String> = order.iter().map(|n| n.as_str().to_string()).collect();
        for s in &default {
            if !list.contains(s) {
                list.push(s.clone());
            }
        }
        let field = if field == "status" {
            "hris_status".to_string()
        } else {
            field.clone()
        };
        for (i, s) in list.iter().enumerate() {
            out.push((field.clone(), s.clone(), i as i32));
        }
    }
    out
}

/// A fingerprint of the effective configuration (deployment, providers and mappings), for
/// `sync_runs.config_version`.
pub fn config_version(cfg: &Config) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(
        serde_json::to_string(&cfg.deployment.spec)
            .unwrap_or_default()
            .as_bytes(),
    );
    for (name, p) in &cfg.providers {
        h.update(name.as_bytes());
        h.update(
            serde_json::to_string(&p.spec)
                .unwrap_or_default()
                .as_bytes(),
        );
    }
    for (name, m) in &cfg.mappings {
        h.update(name.as_bytes());
        h.update(
            serde_json::to_string(&m.spec)
                .unwrap_or_default()
                .as_bytes(),
        );
    }
    format!("{:016x}", h.digest())
}

/// The commit checked out in the config directory when it is a git work tree (read from
/// `.git` without running git).
pub fn config_commit(dir: &Path) -> Option<String> {
    let mut d = dir.canonicalize().ok()?;
    loop {
        let git = d.join(".git");
        if git.is_dir() {
            return head_commit(&git);
        }
        if git.is_file() {
            // A worktree: `gitdir: <path>`.
            let text = std::fs::read_to_string(&git).ok()?;
            let p = text.strip_prefix("gitdir:")?.trim();
            return head_commit(&d.join(p));
        }
        if !d.pop() {
            return None;
        }
    }
}

fn head_commit(git: &Path) -> Option<String> {
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(r) = head.strip_prefix("ref:") else {
        return Some(head.to_string());
    };
    let r = r.trim();
    if let Ok(c) = std::fs::read_to_string(git.join(r)) {
        return Some(c.trim().to_string());
    }
    // A worktree's refs live in the common dir.
    let common = std::fs::read_to_string(git.join("commondir"))
        .ok()
        .map(|c| git.join(c.trim()))
        .unwrap_or_else(|| git.to_path_buf());
    if let Ok(c) = std::fs::read_to_string(common.join(r)) {
        return Some(c.trim().to_string());
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (sha, name) = l.split_once(' ')?;
        (name == r).then(|| sha.to_string())
    })
}

/// Fingerprint of what the merge depends on besides records (the precedence, Roster's
/// version): when it changes, the next applied sync re-merges everyone.
fn merge_key(precedence: &[(String, String, i32)]) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(format!("{precedence:?}").as_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    format!("{:016x}", h.digest())
}

/// Sources whose records the state database holds but the config no longer names, with
/// their record counts. Their people stay as they were (a renamed or deleted source is not
/// a reason to terminate anyone), but nobody they list can leave either, until the source is
/// forgotten ([`forget_source`]).
pub fn orphan_sources(cfg: &Config, store: &Store) -> Result<Vec<(String, u64)>, StoreError> {
    Ok(store
        .record_sources()?
        .into_iter()
        .filter(|(name, _)| !cfg.deployment.spec.sources.contains_key(name))
        .collect())
}

/// The warning for a source [`orphan_sources`] found.
pub fn orphan_warning(name: &str, records: u64) -> String {
    format!(
        "source `{name}` is no longer configured, but the directory still holds its {records} records: the people they list stay as they are and cannot leave (help: if `{name}` was renamed or removed on purpose, run `roster plan --forget-source {name}` to see what forgetting it does, then `roster sync --forget-source {name}`; if not, put it back in roster.yaml)"
    )
}

/// Why a source cannot be forgotten.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    /// It is still configured.
    #[error(
        "source `{0}` is still configured (help: remove it from `sources:` in roster.yaml first; forgetting a configured source would only last until its next sync)"
    )]
    Configured(String),
    /// There is nothing to forget.
    #[error("the directory holds no records of a source `{0}`; known sources without config: {1}")]
    Unknown(String, String),
    /// The store failed; nothing was applied.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Forgets a source that is no longer configured, in one transaction: its records go, the
/// people only it listed leave (terminated, with their events), the others are merged again
/// without it. With `opts.dry_run`, plans it. Never held: forgetting is the operator's
/// explicit decision.
pub fn forget_source(
    cfg: &Config,
    store: &mut Store,
    name: &str,
    opts: &Options,
) -> Result<Report, ForgetError> {
    if cfg.deployment.spec.sources.contains_key(name) {
        return Err(ForgetError::Configured(name.to_string()));
    }
    let orphans = orphan_sources(cfg, store)?;
    if !orphans.iter().any(|(n, _)| n == name) {
        let names: Vec<&str> = orphans.iter().map(|(n, _)| n.as_str()).collect();
        let names = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        };
        return Err(ForgetError::Unknown(name.to_string(), names));
    }
    let started = Instant::now();
    let start_ts = jiff::Timestamp::now();
    let precedence = precedence_table(cfg);
    let merge_key = merge_key(&precedence);
    let mut run = new_run(cfg, store, name, start_ts)?;
    let gone: Vec<i64> = store
        .known_records(name)?
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    let remerge_all = store.meta("merge_key")?.as_deref() != Some(merge_key.as_str());
    // An empty listing, applied on purpose.
    store
        .begin_staging(name, run.id, start_ts.as_microsecond())?
        .finish()?;
    let input = ApplyInput {
        source: name,
        gone: &gone,
        remerge_all,
        now: run.started_at.clone(),
        now_us: start_ts.as_microsecond(),
        today: start_ts.to_zoned(cfg.time_zone()).date().to_string(),
        precedence: &precedence,
        allow_removals: true,
        max_removals: 1.0,
        min_removals_to_hold: u32::MAX,
        hold_on_empty: false,
        listing_empty: true,
        dry_run: opts.dry_run,
        want_changes: opts.want_changes,
        coverage: &[],
        merge_key: &merge_key,
        source_problems: &[],
    };
    run.finished_at = Some(utc(jiff::Timestamp::now()));
    run.duration_ms = started.elapsed().as_millis() as u64;
    let applied = store.apply(&input, &mut run);
    store.discard_staging().ok();
    let applied = applied?;
    let published = !opts.dry_run && store.publish_if_stale()?;
    Ok(Report {
        source: name.to_string(),
        run,
        applied,
        coverage: Vec::new(),
        published,
        relisted: 0,
        duplicates: 0,
    })
}

/// The run row a sync (or a forget) of `source` starts with.
fn new_run(
    cfg: &Config,
    store: &Store,
    source: &str,
    start_ts: jiff::Timestamp,
) -> Result<RunRow, StoreError> {
    Ok(RunRow {
        id: store.next_run_id()?,
        source: source.to_string(),
        started_at: utc(start_ts),
        config_version: Some(config_version(cfg)),
        config_commit: config_commit(&cfg.dir),
        ..RunRow::default()
    })
}

fn utc(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// A stored record of the source, as the stager knows it: a hash of its record key (the
/// key itself is not kept: 500k strings would cost more memory than the listing's page) and
/// whether this listing had it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Known {
    key: u64,
    seen: bool,
}

/// A record's key: the mapping's (employee id, else work email), else `#<content hash>` for
/// an excluded or failed record whose key could not be read.
pub(crate) fn record_key(mapped: &Mapped, hash: i64) -> String {
    match mapped {
        Mapped::Kept(p) => p.key().to_string(),
        Mapped::Excluded { key, .. } | Mapped::Failed { key, .. } => key
            .clone()
            .unwrap_or_else(|| format!("#{:016x}", hash as u64)),
    }
}

fn key_hash(key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes())
}

/// A record's content hash: its JSON text hashed with the mapping fingerprint as seed.
///
/// The text is the record's bytes as the API sent them where the listing hands records over
/// unparsed (a plain `$.data[*]` selector, see [`crate::provider::page`]); else the parsed
/// record serialized again ([`content_hash`]). So an API that sends a record's members in
/// another order, or spaced otherwise, makes it look changed: it is mapped again, and since
/// its values are the same nothing else happens. The listing and its confirmation hash alike.
fn raw_hash(raw: &[u8], seed: u64) -> i64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(raw, seed) as i64
}

/// [`raw_hash`] of a parsed record: its JSON serialized into `buf` (kept for staging).
fn content_hash(buf: &mut Vec<u8>, record: &serde_json::Value, seed: u64) -> Option<i64> {
    buf.clear();
    serde_json::to_writer(&mut *buf, record).ok()?;
    Some(raw_hash(buf, seed))
}

/// What a record that is valid JSON but cannot be parsed into a tree (nested more than 128
/// levels deep) maps to: a failed record, whose key is unknown.
fn unreadable(e: &serde_json::Error) -> Mapped {
    Mapped::Failed {
        key: None,
        email: None,
        errors: vec![crate::mapping::FieldError {
            field: "record".into(),
            message: format!(
                "the record cannot be read: {e} (help: the HRIS sent a record Roster cannot map; report it to its vendor with the record key from `roster problems`)"
            ),
        }],
    }
}

/// A record key a listing returned more than once.
#[derive(Debug, Clone)]
struct Duplicate {
    /// The key when the mapping gave it (else it is read from the stored record by hash).
    key: Option<String>,
    /// The content hash of the repeated record.
    hash: i64,
}

/// The observer of a listing: it hands the records of each page to the [`Prep`] worker, which
/// hashes, maps and sorts them and builds their rows, and appends the batches the worker
/// returns to `source_records` (the store's connection stays on the sync's thread).
struct Stager<'a, 's> {
    source: &'a str,
    /// The engine's problems of the listing (related records sharing a join key).
    problems: Vec<crate::provider::fetch::SourceProblem>,
    staging: Staging<'s>,
    progress: &'a mut dyn Progress,
    pages: u64,
    records: u64,
    error: Option<StoreError>,
    prep: Prep,
    /// Parsed records not yet handed to the worker (they go a page at a time).
    pending: Vec<serde_json::Value>,
}

/// What the [`Prep`] worker knows of a listing once it has seen every record.
#[derive(Default)]
struct Sorted {
    /// The stored records by content hash, marked seen or not, and the records this listing
    /// staged.
    known: HashMap<i64, Known>,
    /// The listing's distinct record keys (hashed).
    keys: HashSet<u64>,
    /// Records whose key an earlier record of the listing had.
    duplicates: Vec<Duplicate>,
}

/// The worker's side of a listing: each record in listing order is hashed; a stored one is
/// marked seen, a new one mapped and its row built (the first occurrence of a key wins, the
/// others are duplicates).
struct Sorter {
    sorted: Sorted,
    mapper: Mapper,
    rows: StagedRows,
    /// Where full batches of rows go (to the sync's thread).
    out: std::sync::mpsc::Sender<StagedBatch>,
    /// Why the worker stopped before the end of the listing.
    error: Option<StoreError>,
}

impl Sorter {
    /// Sorts one record (`record` when it is parsed already, else `raw` is parsed if it
    /// needs mapping); false (the worker stops) when its row cannot be built or the sync's
    /// thread is gone.
    fn record(&mut self, hash: i64, raw: &[u8], record: Option<&serde_json::Value>) -> bool {
        let sorted = &mut self.sorted;
        if let Some(k) = sorted.known.get_mut(&hash) {
            // A repeat of this record, or of its key (a newer version came first): the first
            // occurrence wins, so this stored version is not marked seen (it is replaced).
            if k.seen || !sorted.keys.insert(k.key) {
                sorted.duplicates.push(Duplicate { key: None, hash });
            } else {
                k.seen = true;
            }
            return true;
        }
        let mapped = match record {
            Some(r) => self.mapper.map_sized(r, raw.len()),
            None => match self.mapper.parse(raw) {
                Ok(r) => self.mapper.map_sized(&r, raw.len()),
                Err(e) => unreadable(&e),
            },
        };
        let key = record_key(&mapped, hash);
        let kh = key_hash(&key);
        if !sorted.keys.insert(kh) {
            // The first occurrence in listing order wins; this one is not staged.
            sorted.duplicates.push(Duplicate {
                key: Some(key),
                hash,
            });
            return true;
        }
        sorted.known.insert(
            hash,
            Known {
                key: kh,
                seen: true,
            },
        );
        // An oversize record is not mapped (a data problem); its raw JSON is not stored
        // either, or one 5 MB record would ride along in every published copy.
        let raw = if raw.len() as u64 > self.mapper.max_record_bytes() {
            OVERSIZE_RAW
        } else {
            std::str::from_utf8(raw).unwrap_or_default()
        };
        let (rows, out) = (&mut self.rows, &self.out);
        let staged = stage_mapped(mapped, &key, hash, raw, |r| {
            if let Some(batch) = rows.push(r)? {
                out.send(batch).map_err(|_| gone())?;
            }
            Ok(())
        });
        match staged {
            Ok(()) => true,
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }
}

/// The error of a staging whose other end stopped.
fn gone() -> StoreError {
    StoreError::Io {
        what: "the mapping thread stopped (a bug; please report it with the log) while staging into",
        path: PathBuf::from("source_records"),
        source: std::io::Error::other("mapping thread gone"),
    }
}

/// The second core's share of a listing: hashing, parsing, mapping and sorting records, and
/// building their rows, on a worker thread ([`Sorter`]) while the sync's own thread fetches
/// the next page and appends the rows the worker returns, in listing order (one worker,
/// FIFO channels: the first occurrence of a key still wins). The input channel is bounded
/// (backpressure on the fetch); the output is drained on every page.
struct Prep {
    input: Option<std::sync::mpsc::SyncSender<Batch>>,
    output: std::sync::mpsc::Receiver<StagedBatch>,
    worker: Option<std::thread::JoinHandle<(Sorted, Option<StoreError>)>>,
}

/// Records handed to the [`Prep`] worker together: a page's, unparsed, or parsed ones; or
/// how many the listing should hold (the API's total, to size the worker's sets once).
enum Batch {
    Raw(RawPage),
    Parsed(Vec<serde_json::Value>),
    Expect(u64),
}

/// The most records a reported total reserves room for: an API's total is not trusted with
/// memory. A million reserves about 70 MB of address space for the two sets, of which their
/// 4 MB of control bytes are written at once and the rest as records arrive. The sets still
/// grow past it if the listing is larger.
const MAX_EXPECTED: u64 = 1_000_000;

/// Batches in flight between the fetch and the worker: 16 pages (about 3 MB of page bytes at
/// 200 records of 925 B). With two, the worker sat idle whenever the sync's thread
/// compressed a row group of `source_records`; 64 gained nothing more at 100k people.
const PREP_QUEUE: usize = 16;

/// Parsed records handed to the worker at a time.
const PREP_BATCH: usize = 200;

impl Prep {
    fn start(
        mapper: &Mapper,
        seed: u64,
        known: HashMap<i64, Known>,
        rows: StagedRows,
    ) -> std::io::Result<Prep> {
        let (input, rx) = std::sync::mpsc::sync_channel::<Batch>(PREP_QUEUE);
        let (out, output) = std::sync::mpsc::channel();
        let mut sorter = Sorter {
            sorted: Sorted {
                // A re-sync lists about as many keys as are stored: sized once, not grown.
                keys: HashSet::with_capacity(known.len()),
                known,
                duplicates: Vec::new(),
            },
            mapper: mapper.clone(),
            rows,
            out,
            error: None,
        };
        let worker = std::thread::Builder::new()
            .name("roster-map".into())
            .spawn(move || {
                // A stored hash is all a record needs: a re-sync's unchanged records are
                // neither parsed nor copied. One buffer serves every parsed record's hash.
                let mut buf = Vec::with_capacity(4096);
                for batch in rx {
                    let sent = match batch {
                        Batch::Raw(page) => page
                            .records()
                            .all(|raw| sorter.record(raw_hash(raw, seed), raw, None)),
                        Batch::Parsed(records) => records.iter().all(|record| {
                            // A record that cannot be serialized is skipped.
                            content_hash(&mut buf, record, seed)
                                .is_none_or(|hash| sorter.record(hash, &buf, Some(record)))
                        }),
                        Batch::Expect(n) => {
                            // Room for every key and every new record's hash: a first sync
                            // of 100k people grew both sets from empty, rehashing each time.
                            let sorted = &mut sorter.sorted;
                            let n = n.min(MAX_EXPECTED) as usize;
                            sorted.keys.reserve(n.saturating_sub(sorted.keys.len()));
                            sorted.known.reserve(n.saturating_sub(sorted.known.len()));
                            true
                        }
                    };
                    if !sent {
                        return (sorter.sorted, sorter.error);
                    }
                }
                let last = sorter.rows.take().and_then(|last| match last {
                    Some(batch) => sorter.out.send(batch).map_err(|_| gone()),
                    None => Ok(()),
                });
                (sorter.sorted, last.err())
            })?;
        Ok(Prep {
            input: Some(input),
            output,
            worker: Some(worker),
        })
    }

    /// Hands records to the worker (waits while the queue is full).
    fn send(&self, batch: Batch) -> bool {
        self.input.as_ref().is_some_and(|i| i.send(batch).is_ok())
    }

    /// Stops taking records; what is in flight is still returned by [`Prep::next`].
    fn close(&mut self) {
        self.input = None;
    }

    /// The next batch of rows: waits for it when `wait` (until the worker has returned
    /// everything after [`Prep::close`]), else only if one is ready.
    fn next(&self, wait: bool) -> Option<StagedBatch> {
        if wait {
            self.output.recv().ok()
        } else {
            self.output.try_recv().ok()
        }
    }

    /// What the worker made of the listing, once it has stopped (after [`Prep::close`]), or
    /// why it stopped early.
    fn finish(mut self) -> Result<Sorted, StoreError> {
        self.input = None;
        while self.output.try_recv().is_ok() {}
        match self.worker.take().map(std::thread::JoinHandle::join) {
            Some(Ok((sorted, None))) => Ok(sorted),
            Some(Ok((_, Some(e)))) => Err(e),
            // It panicked (a bug).
            Some(Err(_)) | None => Err(gone()),
        }
    }
}

impl Drop for Prep {
    fn drop(&mut self) {
        self.input = None;
        // Unblock a worker waiting to send, then wait for it.
        while self.output.try_recv().is_ok() {}
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Stager<'_, '_> {
    /// Hands records to the worker: false (the listing stops) when it is gone.
    fn send(&mut self, batch: Batch) -> bool {
        if self.prep.send(batch) {
            return true;
        }
        // The worker only stops early by panicking (a bug): the listing stops with it.
        self.error = Some(gone());
        false
    }

    /// Hands on the parsed records still held, if any.
    fn flush(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let batch = Batch::Parsed(std::mem::take(&mut self.pending));
        self.send(batch)
    }

    /// The listing is over: hands on what is held and stops the worker's input (what is in
    /// flight is still returned by [`Stager::drain`]).
    fn close(&mut self) {
        self.flush();
        self.prep.close();
    }

    /// Appends the rows the worker has returned: everything (waiting) when `wait`, else
    /// what is ready. False when an append failed (the listing stops).
    fn drain(&mut self, wait: bool) -> bool {
        while let Some(batch) = self.prep.next(wait) {
            if let Err(e) = self.staging.append(batch) {
                self.error = Some(e);
                return false;
            }
        }
        true
    }
}

impl Observer for Stager<'_, '_> {
    fn overlaps(&self) -> bool {
        true
    }

    fn request(&mut self, _described: &str, _status: u16) {
        self.pages += 1;
        self.progress.page(self.source, self.pages, self.records);
    }

    fn problem(&mut self, problem: crate::provider::fetch::SourceProblem) {
        self.problems.push(problem);
    }

    fn takes_raw(&self) -> bool {
        true
    }

    fn expect(&mut self, records: u64) {
        self.send(Batch::Expect(records));
    }

    fn raw_page(&mut self, page: RawPage) -> bool {
        self.records += page.len() as u64;
        self.flush() && self.send(Batch::Raw(page)) && self.drain(false)
    }

    fn record(&mut self, record: serde_json::Value) -> bool {
        self.records += 1;
        self.pending.push(record);
        if self.pending.len() < PREP_BATCH {
            return true;
        }
        self.flush() && self.drain(false)
    }
}

/// What `source_records.raw` holds for a record over `limits.max_record_bytes`.
const OVERSIZE_RAW: &str = r#"{"roster": "not stored: over limits.max_record_bytes"}"#;

/// The observer of a confirmation listing: which of the departure candidates (by record key
/// hash) it lists again.
struct Confirmer<'a> {
    mapper: &'a Mapper,
    seed: u64,
    known: &'a HashMap<i64, Known>,
    candidates: &'a HashSet<u64>,
    listed: HashSet<u64>,
    buf: Vec<u8>,
}

impl Confirmer<'_> {
    /// Notes the record of content hash `hash` as listed; `record` parses it when the hash
    /// is not a stored one (to read its key).
    fn listed(&mut self, hash: i64, record: impl FnOnce() -> Option<serde_json::Value>) {
        let kh = match self.known.get(&hash) {
            Some(k) => k.key,
            None => match record().map(|r| self.mapper.map(&r)) {
                Some(Mapped::Kept(p)) => key_hash(p.key()),
                Some(
                    Mapped::Excluded { key: Some(k), .. } | Mapped::Failed { key: Some(k), .. },
                ) => key_hash(&k),
                _ => return,
            },
        };
        if self.candidates.contains(&kh) {
            self.listed.insert(kh);
        }
    }
}

impl Observer for Confirmer<'_> {
    fn takes_raw(&self) -> bool {
        true
    }

    fn raw_page(&mut self, page: RawPage) -> bool {
        for raw in page.records() {
            self.listed(raw_hash(raw, self.seed), || self.mapper.parse(raw).ok());
        }
        true
    }

    fn record(&mut self, record: serde_json::Value) -> bool {
        if let Some(hash) = content_hash(&mut self.buf, &record, self.seed) {
            self.listed(hash, || Some(record));
        }
        true
    }
}

/// Stages one record as a listing does (`roster plan --offline` too): `mapped` is what the
/// mapping made of `raw`.
pub fn stage_mapped(
    mapped: Mapped,
    key: &str,
    hash: i64,
    raw: &str,
    mut stage: impl FnMut(&StagedRecord<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let empty: Vec<Option<String>> = Vec::new();
    match mapped {
        Mapped::Kept(p) => {
            let custom: Vec<(String, String)> = p
                .custom
                .iter()
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect();
            let problems = (!p.problems.is_empty()).then(|| {
                p.problems
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            // Fields whose value failed to convert keep the previous version's value.
            let failed: Vec<String> = p
                .failed
                .iter()
                .map(|f| f.name().to_string())
                .chain(p.failed_custom.iter().map(|c| format!("custom.{c}")))
                .collect();
            stage(&StagedRecord {
                record_key: key,
                hash,
                outcome: Outcome::Kept,
                values: &p.values,
                custom: &custom,
                problems,
                raw,
                failed_fields: (!failed.is_empty()).then(|| failed.join(",")),
            })
        }
        Mapped::Excluded { reason, .. } => stage(&StagedRecord {
            record_key: key,
            hash,
            outcome: Outcome::Excluded,
            values: &empty,
            custom: &[],
            problems: Some(reason),
            raw,
            failed_fields: None,
        }),
        Mapped::Failed {
            key: id,
            email,
            errors,
        } => {
            let mut values = vec![None; Field::ALL.len()];
            // The key is the employee id, else the email: keep only a real id as employee_id.
            values[Field::employee_id as usize] = id.filter(|k| Some(k) != email.as_ref());
            values[Field::work_email as usize] = email;
            let problems = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("\n");
            stage(&StagedRecord {
                record_key: key,
                hash,
                outcome: Outcome::Failed,
                values: &values,
                custom: &[],
                problems: Some(problems),
                raw,
                failed_fields: None,
            })
        }
    }
}

/// The listing's problems that belong to no single stored record: repeated record keys and
/// the engine's (related records sharing a join key). Messages carry no personal value; the
/// key is in its own column.
fn listing_problems(
    store: &Store,
    source: &str,
    duplicates: &[Duplicate],
    fetch_problems: &[crate::provider::fetch::SourceProblem],
) -> Result<Vec<ListingProblem>, StoreError> {
    let by_hash: Vec<i64> = duplicates
        .iter()
        .filter(|d| d.key.is_none())
        .map(|d| d.hash)
        .collect();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for key in duplicates
        .iter()
        .filter_map(|d| d.key.clone())
        .chain(store.record_keys(source, &by_hash)?)
    {
        *counts.entry(key).or_default() += 1;
    }
    let mut out: Vec<ListingProblem> = counts
        .into_iter()
        .map(|(key, n)| ListingProblem {
            kind: "duplicate_record_key".into(),
            record_key: Some(key),
            field: None,
            detail: format!(
                "the listing returned this record key {} times; the first occurrence in listing order was used (the HRIS changed while it was paged, or its API repeats records)",
                n + 1
            ),
        })
        .collect();
    out.extend(fetch_problems.iter().map(|p| ListingProblem {
        kind: p.kind.into(),
        record_key: Some(p.key.clone()),
        field: Some(p.stream.clone()),
        detail: p.detail.clone(),
    }));
    Ok(out)
}

/// Syncs (or plans) one source: the whole pipeline, one transaction, then publish.
pub async fn sync_source(
    cfg: &Config,
    store: &mut Store,
    plan: &SourcePlan,
    opts: &Options,
    progress: &mut dyn Progress,
) -> Result<Report, SyncError> {
    let client = source_client(cfg, plan)?;
    let mut result = sync_with_client(cfg, store, plan, &client, opts, progress).await;
    // DuckDB's automatic limit fits the source's size, but what a sync needs at once also
    // depends on the data: one that ran out of it runs again with twice the limit (nothing
    // of the failed transaction was applied), at most twice. A configured limit stands.
    while let Err(SyncError::Store(e)) = &result {
        if !e.is_out_of_memory() {
            break;
        }
        let Some(limit) = store.raise_auto_memory() else {
            break;
        };
        tracing::warn!(
            source = %plan.name,
            error = %e,
            limit_mib = limit >> 20,
            "the sync ran out of DuckDB's automatic memory limit; syncing again with twice the limit (set `store.memory_limit` to choose the limit yourself)"
        );
        result = sync_with_client(cfg, store, plan, &client, opts, progress).await;
    }
    result
}

/// [`sync_source`] with a client already built.
pub async fn sync_with_client(
    cfg: &Config,
    store: &mut Store,
    plan: &SourcePlan,
    client: &SourceClient,
    opts: &Options,
    progress: &mut dyn Progress,
) -> Result<Report, SyncError> {
    let started = Instant::now();
    let start_ts = jiff::Timestamp::now();
    let today = start_ts.to_zoned(cfg.time_zone()).date().to_string();
    let mapping = &cfg.mappings[&plan.mapping].spec;
    let mapper = Mapper::new(plan, mapping);
    let precedence = precedence_table(cfg);
    // The merge depends on the precedence; a change to it re-merges even without new records.
    let seed = mapper.fingerprint();
    let mut run = new_run(cfg, store, &plan.name, start_ts)?;
    let mut laps = crate::store::Laps::new("sync");
    let known: HashMap<i64, Known> = store
        .known_records(&plan.name)?
        .into_iter()
        .map(|(hash, key)| (hash, Known { key, seen: false }))
        .collect();
    laps.lap("known_records");
    let fingerprint = format!("{seed:016x}");
    let incremental = cfg.providers[&plan.provider]
        .spec
        .streams
        .get(mapping.stream.as_str())
        .and_then(|s| s.incremental.as_ref());
    // Nothing stored (a source forgotten and configured again): its runs may say a full read
    // is recent, but only a full read can fill the directory again.
    let listing = if incremental.is_some() && known.is_empty() {
        Listing::Full {
            why: "nothing stored for the source",
        }
    } else {
        choose_listing(
            incremental,
            &store.listing_state(&plan.name)?,
            &fingerprint,
            start_ts,
            opts.full,
        )
    };
    match &listing {
        Listing::Incremental { since, .. } => {
            tracing::info!(source = %plan.name, since = %since, "incremental read");
            run.since = Some(since.clone());
        }
        Listing::Full { why } if incremental.is_some() => {
            tracing::info!(source = %plan.name, why, "full read");
        }
        Listing::Full { .. } => {}
    }
    run.listing = Some(listing.kind().into());
    run.mapping = Some(fingerprint);

    // DuckDB's memory fits the source's size (unless `store.memory_limit` is set); raised
    // again below if the listing is larger than what was stored.
    store.fit_memory_to(known.len() as u64)?;
    let rows = StagedRows::new(&plan.name, run.id, start_ts.as_microsecond());
    let prep = Prep::start(&mapper, seed, known, rows).map_err(|source| StoreError::Io {
        what: "cannot start the mapping thread for",
        path: store.state_path().to_path_buf(),
        source,
    })?;
    let staging = store.begin_staging(&plan.name, run.id, start_ts.as_microsecond())?;
    let mut stager = Stager {
        source: &plan.name,
        problems: Vec::new(),
        staging,
        progress,
        pages: 0,
        records: 0,
        error: None,
        prep,
        pending: Vec::new(),
    };
    let result = client
        .fetch_stream_since(mapping.stream.as_str(), &listing.query(), &mut stager)
        .await;
    stager.close();
    if result.is_ok() && stager.error.is_none() {
        stager.drain(true);
    }
    let Stager {
        problems: fetch_problems,
        staging,
        pages,
        records,
        mut error,
        prep,
        ..
    } = stager;
    // The worker's own error comes first: the sync's thread only saw it go.
    let Sorted {
        mut known,
        keys,
        duplicates,
    } = prep.finish().unwrap_or_else(|e| {
        error = Some(e);
        Sorted::default()
    });
    let staged = staging.finish();
    laps.lap("fetch+map+stage");
    let staged = staged.and_then(|n| store.fit_memory_to(records).map(|()| n));
    run.pages = pages;
    run.records = records;
    let mut listed_pages = 0;
    let failure: Option<SyncError> = match (result, error, staged) {
        (Err(e), _, _) => Some(e.into()),
        (_, Some(e), _) | (_, _, Err(e)) => Some(e.into()),
        (Ok(summary), None, Ok(n)) => {
            run.changed_records = n;
            listed_pages = summary.pages;
            // Completeness counts distinct record keys: a repeated record (an API that
            // ignores the offset, a page that shifted) must not stand in for a missing one.
            match summary.reported {
                Some(reported) if (keys.len() as u64) < reported => Some(SyncError::Repeated {
                    source_name: plan.name.clone(),
                    reported,
                    distinct: keys.len() as u64,
                    repeated: duplicates.len() as u64,
                }),
                _ => None,
            }
        }
    };
    if let Some(e) = failure {
        store.discard_staging().ok();
        if !opts.dry_run {
            run.outcome = "failed".into();
            run.error_code = Some(e.code().to_string());
            run.error = Some(e.public_message());
            run.finished_at = Some(utc(jiff::Timestamp::now()));
            run.duration_ms = started.elapsed().as_millis() as u64;
            store.record_run(&run)?;
        }
        return Err(e);
    }

    // Departures are confirmed by a second listing: with offset or page paging, a record
    // removed from an earlier page while the listing was read shifts every later record one
    // slot, so one record is skipped; if a hire arrived meanwhile, the reported total still
    // matches. A record missing from one paged listing therefore leaves only when a second
    // listing does not list it either. A one-page listing is a snapshot and needs none.
    // A partial (incremental) listing has no departures: what it does not list is unchanged.
    let candidates: HashSet<u64> = known
        .values()
        .filter(|k| listing.is_full() && !k.seen && !keys.contains(&k.key))
        .map(|k| k.key)
        .collect();
    let mut relisted = 0u64;
    if !candidates.is_empty() && listed_pages > 1 {
        let mut confirmer = Confirmer {
            mapper: &mapper,
            seed,
            known: &known,
            candidates: &candidates,
            listed: HashSet::new(),
            buf: Vec::with_capacity(4096),
        };
        let confirmed = client
            .fetch_stream(mapping.stream.as_str(), &mut confirmer)
            .await;
        let keep = match confirmed {
            Ok(_) => confirmer.listed,
            Err(e) => {
                // The departures wait for a listing that confirms them; the rest applies.
                tracing::warn!(
                    source = %plan.name,
                    code = e.code(),
                    "could not confirm {} departures with a second listing ({}); they stay until a later sync confirms them",
                    candidates.len(),
                    e.public_message()
                );
                candidates.clone()
            }
        };
        if !keep.is_empty() {
            tracing::warn!(
                source = %plan.name,
                "{} records missing from the listing were listed again by a confirmation read (the HRIS changed while it was paged); they stay",
                keep.len()
            );
        }
        for k in known.values_mut() {
            if !k.seen && keep.contains(&k.key) {
                k.seen = true;
                relisted += 1;
            }
        }
        laps.lap("confirm departures");
    }

    let problems =
        listing_problems(store, &plan.name, &duplicates, &fetch_problems).and_then(|mut p| {
            if !listing.is_full() {
                // A repeated key the partial listing did not list again is still a problem.
                p.extend(
                    store
                        .listing_problems(&plan.name)?
                        .into_iter()
                        .filter(|old| {
                            old.kind == "duplicate_record_key"
                                && old
                                    .record_key
                                    .as_deref()
                                    .is_some_and(|k| !keys.contains(&key_hash(k)))
                        }),
                );
            }
            Ok(p)
        });
    let source_problems = match problems {
        Ok(p) => p,
        Err(e) => {
            store.discard_staging().ok();
            return Err(e.into());
        }
    };
    // Stored versions this run replaces: every one not seen again in a full listing; in a
    // partial one, only the old versions of the records it lists.
    let gone: Vec<i64> = known
        .iter()
        .filter(|(_, k)| !k.seen && (listing.is_full() || keys.contains(&k.key)))
        .map(|(h, _)| *h)
        .collect();
    let all_seen = gone.is_empty();
    let merge_key = merge_key(&precedence);
    let checks = (|| {
        let remerge_all = store.meta("merge_key")?.as_deref() != Some(merge_key.as_str());
        let quiet = run.changed_records == 0
            && all_seen
            && !remerge_all
            && source_problems.is_empty()
            && !store.has_source_problems(&plan.name)?
            && !store.status_due(&today)?;
        Ok::<_, StoreError>((remerge_all, quiet, store.outcome_counts(&plan.name)?))
    })();
    let (remerge_all, quiet, (kept, excluded, failed)) = match checks {
        Ok(v) => v,
        Err(e) => {
            store.discard_staging().ok();
            return Err(e.into());
        }
    };
    if quiet && !opts.want_changes {
        store.discard_staging().ok();
        run.kept = kept;
        run.excluded = excluded;
        run.failed = failed;
        run.outcome = "unchanged".into();
        run.finished_at = Some(utc(jiff::Timestamp::now()));
        run.duration_ms = started.elapsed().as_millis() as u64;
        let mut published = false;
        if !opts.dry_run {
            store.record_run(&run)?;
            // Catch up a directory left behind (a crash between commit and publish).
            published = store.publish_if_stale()?;
        }
        return Ok(Report {
            source: plan.name.clone(),
            run,
            applied: Applied {
                unchanged: true,
                ..Applied::default()
            },
            coverage: Vec::new(),
            published,
            relisted,
            duplicates: duplicates.len() as u64,
        });
    }

    let coverage_rules = mapping.coverage_rules();
    let safety = plan.safety;
    let input = ApplyInput {
        source: &plan.name,
        gone: &gone,
        remerge_all,
        now: run.started_at.clone(),
        now_us: start_ts.as_microsecond(),
        today,
        precedence: &precedence,
        allow_removals: opts.allow_removals,
        max_removals: safety.max_removals,
        min_removals_to_hold: safety.min_removals_to_hold,
        hold_on_empty: safety.hold_on_empty,
        // An empty partial listing only says nothing changed.
        listing_empty: records == 0 && listing.is_full(),
        dry_run: opts.dry_run,
        want_changes: opts.want_changes,
        coverage: &coverage_rules,
        merge_key: &merge_key,
        source_problems: &source_problems,
    };
    run.finished_at = Some(utc(jiff::Timestamp::now()));
    run.duration_ms = started.elapsed().as_millis() as u64;
    let applied = store.apply(&input, &mut run)?;
    store.discard_staging().ok();
    laps.lap("apply");
    let coverage = applied.coverage.clone();
    if let Some(detail) = &applied.coverage_failed {
        return Err(SyncError::Coverage {
            source_name: plan.name.clone(),
            detail: detail.clone(),
        });
    }
    // Every run ends with a directory as fresh as the state: an applied run publishes its
    // change, and any run catches up a directory a crash left behind.
    let published = !opts.dry_run && store.publish_if_stale()?;
    laps.lap("publish");
    Ok(Report {
        source: plan.name.clone(),
        run,
        applied,
        coverage,
        published,
        relisted,
        duplicates: duplicates.len() as u64,
    })
}

// ---------------------------------------------------------------------------------------------
// For `roster plan --offline` (`crate::offline`), which re-maps stored raw records instead of
// fetching: the pieces of a sync it shares. Additive on purpose: the stager above is being
// reworked, and these only wrap it.

/// True for the `raw` of a record that was over `limits.max_record_bytes` when it was read
/// (its JSON was not stored, so it cannot be mapped again).
pub fn raw_not_stored(raw: &str) -> bool {
    raw == OVERSIZE_RAW
}

/// The fingerprint of what the merge depends on besides records (`ApplyInput::merge_key`).
pub fn merge_fingerprint(precedence: &[(String, String, i32)]) -> String {
    merge_key(precedence)
}

/// The run row a sync of `source` starting at `start` begins with.
pub fn start_run(
    cfg: &Config,
    store: &Store,
    source: &str,
    start: jiff::Timestamp,
) -> Result<RunRow, StoreError> {
    new_run(cfg, store, source, start)
}

/// A timestamp as run rows write it (UTC, microseconds).
pub fn run_time(ts: jiff::Timestamp) -> String {
    utc(ts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::provider::{CursorFormat, Incremental};
    use crate::store::sync::ListingState;

    fn inc(yaml: &str) -> Incremental {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_full_read_is_due_first_after_a_mapping_change_and_every_full_every() {
        let i = inc("{param: modified_after, full_every: 6h}");
        let now = ts("2026-12-03T12:00:00Z");
        let state = |last: &str, full: &str, mapping: &str| ListingState {
            last_start: Some(ts(last)),
            last_full: Some((ts(full), Some(mapping.to_string()))),
        };
        let why = |l: Listing| match l {
            Listing::Full { why } => why,
            Listing::Incremental { since, .. } => panic!("incremental since {since}"),
        };
        assert_eq!(
            why(choose_listing(
                None,
                &state("2026-12-03T11:00:00Z", "2026-12-03T10:00:00Z", "m"),
                "m",
                now,
                false
            )),
            "not incremental"
        );
        assert_eq!(
            why(choose_listing(
                Some(&i),
                &ListingState::default(),
                "m",
                now,
                false
            )),
            "first read"
        );
        let fresh = state("2026-12-03T11:00:00Z", "2026-12-03T06:00:01Z", "m");
        assert_eq!(
            why(choose_listing(Some(&i), &fresh, "m", now, true)),
            "--full"
        );
        assert_eq!(
            why(choose_listing(Some(&i), &fresh, "other", now, false)),
            "the mapping changed"
        );
        let stale = state("2026-12-03T11:00:00Z", "2026-12-03T06:00:00Z", "m");
        assert_eq!(
            why(choose_listing(Some(&i), &stale, "m", now, false)),
            "full_every reached"
        );
        // The cursor is the last committed run's start (not the last full read's), 10m back.
        assert_eq!(
            choose_listing(Some(&i), &fresh, "m", now, false),
            Listing::Incremental {
                param: "modified_after".into(),
                since: "2026-12-03T10:50:00Z".into()
            }
        );
    }

    #[test]
    fn cursors_carry_their_zone_or_are_days_or_epoch_seconds() {
        let last = ts("2026-12-03T00:05:30.750Z");
        let i = inc("{param: since}");
        assert_eq!(i.format, CursorFormat::Rfc3339);
        assert_eq!(i.cursor(last), "2026-12-02T23:55:30Z");
        // A date cursor reaches back a whole day by default: the HRIS's day may start earlier.
        assert_eq!(
            inc("{param: since, format: date}").cursor(last),
            "2026-12-02"
        );
        assert_eq!(
            inc("{param: since, format: unix, lookback: 1h}").cursor(last),
            (last.as_second() - 3600).to_string()
        );
        assert_eq!(inc("{param: since}").full_every(), Incremental::FULL_EVERY);
    }
}
