//! The SQL of a sync: staging a listing into `source_records` inside the sync's transaction,
//! working out which people it touches, merging and diffing them (`identity`, in Rust, a chunk
//! at a time), holding or applying.
//!
//! Only records whose content hash is new are staged (a no-change re-sync stages nothing and
//! writes nothing). The work of an applied sync grows with what changed, not with the
//! directory: a 1% change at 100k people merges about 1,000 people. The diff is field by field
//! in long form (`value_history`, shown whole by the view `person_values`).

use std::collections::HashMap;

use duckdb::arrow::record_batch::RecordBatch;
use duckdb::params;

use super::batch::{TextLists, Texts, int_at};
use super::{Batched, Store, StoreError};
use crate::config::person::{Field, FieldKind};

/// What became of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Mapped and in the directory.
    Kept,
    /// Dropped by the mapping's filter.
    Excluded,
    /// Could not be mapped; still counts as present.
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Kept => "kept",
            Outcome::Excluded => "excluded",
            Outcome::Failed => "failed",
        }
    }
}

/// One record to stage.
#[derive(Debug)]
pub struct StagedRecord<'a> {
    /// Employee id, else work email, else `#<hash>`.
    pub record_key: &'a str,
    /// Content hash (mapping fingerprint and raw JSON).
    pub hash: i64,
    /// What the mapping made of it.
    pub outcome: Outcome,
    /// Canonical values in `Field::ALL` order (empty for excluded and failed records, except
    /// what could be read).
    pub values: &'a [Option<String>],
    /// Custom fields, as text.
    pub custom: &'a [(String, String)],
    /// Problems, one per line.
    pub problems: Option<String>,
    /// The raw record as JSON.
    pub raw: &'a str,
    /// Canonical fields whose value failed to convert, comma-separated: the record keeps the
    /// previous version's value for them (a bad value never erases a good one).
    pub failed_fields: Option<String>,
}

/// Appends a listing's new and changed records to `source_records` (and their custom fields
/// to `source_custom`) while it is fetched, inside the sync's transaction: a failed fetch
/// rolls them back with everything else. The rows are built as Arrow batches by
/// [`StagedRows`], on the thread that maps the records, or here by [`Staging::stage`].
pub struct Staging<'a> {
    records: duckdb::Appender<'a>,
    custom: duckdb::Appender<'a>,
    rows: StagedRows,
    staged: u64,
}

impl std::fmt::Debug for Staging<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staging")
            .field("staged", &self.staged)
            .finish()
    }
}

impl Staging<'_> {
    /// Stages a new or changed record (appended as Arrow batches of
    /// [`super::APPEND_BATCH`] records).
    pub fn stage(&mut self, r: &StagedRecord<'_>) -> Result<(), StoreError> {
        match self.rows.push(r)? {
            Some(batch) => self.append(batch),
            None => Ok(()),
        }
    }

    /// Appends a batch of staged rows.
    pub fn append(&mut self, batch: StagedBatch) -> Result<(), StoreError> {
        self.staged += batch.rows;
        super::batch::Staged::append(batch.tables, &mut self.records, &mut self.custom)
    }

    /// Appends what is left; the number of records staged.
    pub fn finish(mut self) -> Result<u64, StoreError> {
        if let Some(batch) = self.rows.take()? {
            self.append(batch)?;
        }
        self.records.flush()?;
        self.custom.flush()?;
        Ok(self.staged)
    }
}

/// A listing's staged records as Arrow batches, built without the store: the mapping thread
/// builds them (a fifth of the sync thread's listing in a first sync was this) and the
/// sync's thread appends them ([`Staging::append`]).
pub struct StagedRows {
    rows: super::batch::Staged,
    source: String,
    run: i64,
    now_us: i64,
}

impl std::fmt::Debug for StagedRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedRows")
            .field("pending", &self.rows.rows())
            .finish()
    }
}

/// [`super::APPEND_BATCH`] staged records (or the last of them), ready to append.
pub struct StagedBatch {
    tables: (Option<RecordBatch>, Option<RecordBatch>),
    rows: u64,
}

impl std::fmt::Debug for StagedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedBatch")
            .field("rows", &self.rows)
            .finish()
    }
}

impl StagedRows {
    /// An empty builder of the rows of run `run` of `source`, staged at `now_us`.
    pub fn new(source: &str, run: i64, now_us: i64) -> StagedRows {
        StagedRows {
            rows: super::batch::Staged::new(),
            source: source.to_string(),
            run,
            now_us,
        }
    }

    /// Adds a new or changed record; every [`super::APPEND_BATCH`] records, the batch to
    /// append.
    pub fn push(&mut self, r: &StagedRecord<'_>) -> Result<Option<StagedBatch>, StoreError> {
        self.rows.push(&super::batch::StagedRow {
            source: &self.source,
            key: r.record_key,
            hash: r.hash,
            outcome: r.outcome.as_str(),
            values: r.values,
            custom: r.custom,
            problems: r.problems.as_deref(),
            raw: r.raw,
            now_us: self.now_us,
            run: self.run,
            failed: r.failed_fields.as_deref(),
        });
        if self.rows.rows() >= super::APPEND_BATCH {
            return self.take();
        }
        Ok(None)
    }

    /// The records added since the last batch, if any.
    pub fn take(&mut self) -> Result<Option<StagedBatch>, StoreError> {
        let rows = self.rows.rows() as u64;
        if rows == 0 {
            return Ok(None);
        }
        Ok(Some(StagedBatch {
            tables: self.rows.take()?,
            rows,
        }))
    }
}

/// A problem of a source's listing that is not one stored record's (`source_problems`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingProblem {
    /// `duplicate_record_key`, `duplicate_join_key`.
    pub kind: String,
    /// The record (or join) key.
    pub record_key: Option<String>,
    /// The field, or the related stream.
    pub field: Option<String>,
    /// Roster's words; no personal value.
    pub detail: String,
}

/// What a sync asks the store to do with a staged listing.
#[derive(Debug, Clone)]
pub struct ApplyInput<'a> {
    /// The source.
    pub source: &'a str,
    /// Hashes of stored records of the source not seen again in this listing (changed or
    /// gone).
    pub gone: &'a [i64],
    /// Re-merge every person (what the merge depends on besides records changed).
    pub remerge_all: bool,
    /// The run's start, UTC, `YYYY-MM-DD HH:MM:SS.ffffff`.
    pub now: String,
    /// The same, in microseconds since the epoch.
    pub now_us: i64,
    /// Today in the company time zone, `YYYY-MM-DD`.
    pub today: String,
    /// `(field, source, rank)`; field `*` is the default order.
    pub precedence: &'a [(String, String, i32)],
    /// The listing's own problems (replace the source's in `source_problems`).
    pub source_problems: &'a [ListingProblem],
    /// Apply even if the safety thresholds would hold the run.
    pub allow_removals: bool,
    /// Largest share of a source's people one run may remove.
    pub max_removals: f64,
    /// Never hold for fewer removals than this.
    pub min_removals_to_hold: u32,
    /// Hold an empty listing while the source has people.
    pub hold_on_empty: bool,
    /// The listing had no records at all.
    pub listing_empty: bool,
    /// Plan only: compute everything, return the changes, roll back.
    pub dry_run: bool,
    /// Return the field-level changes (plans, and events later).
    pub want_changes: bool,
    /// Coverage rules: `(field, max_empty, fail)`.
    pub coverage: &'a [(String, f64, bool)],
    /// Fingerprint of what the merge depends on besides records (precedence, version).
    pub merge_key: &'a str,
}

/// One field-level change of one person.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// The person.
    pub work_email: String,
    /// The field (`custom.NAME` for custom fields, `hris_status` for the HRIS's own status).
    pub field: String,
    /// Before (None: empty).
    pub old: Option<String>,
    /// After (None: empty).
    pub new: Option<String>,
    /// The source that set the new value.
    pub source: String,
}

/// A data-quality problem.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The source, when it comes from one.
    pub source: Option<String>,
    /// The record's key in the source.
    pub record_key: Option<String>,
    /// The person.
    pub work_email: Option<String>,
    /// `missing_work_email`, `unmappable_record`, `field_problem`, `duplicate_work_email`,
    /// `unresolved_manager`, `manager_cycle`, `no_manager`.
    pub kind: String,
    /// The field concerned.
    pub field: Option<String>,
    /// What is wrong.
    pub detail: String,
}

/// How a person changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonChange {
    /// New in the directory.
    Created,
    /// Fields changed.
    Updated,
    /// Left (absent from every source, or end date passed).
    Terminated,
    /// Terminated before, present again.
    Reactivated,
}

/// The result of applying (or planning) a listing.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// People created.
    pub created: u64,
    /// People updated (not created, terminated or reactivated).
    pub updated: u64,
    /// People terminated.
    pub terminated: u64,
    /// People reactivated.
    pub reactivated: u64,
    /// People of this source before the run.
    pub source_people_before: u64,
    /// People of this source the run would remove.
    pub removals: u64,
    /// Why the run was held (nothing applied).
    pub held: Option<String>,
    /// Per person, what happened, with the field changes (when asked for).
    pub people: Vec<(String, PersonChange, Vec<Change>)>,
    /// True when nothing at all changed (nothing written but the run row).
    pub unchanged: bool,
    /// Data problems after the run.
    pub problems: u64,
    /// Coverage warnings, one line each.
    pub coverage: Vec<String>,
    /// The data problems (plans only).
    pub problem_list: Vec<Problem>,
    /// Coverage violations with `action: fail` (nothing applied).
    pub coverage_failed: Option<String>,
    /// The change events a plan (or a run that asked for its changes) would write, with their
    /// endpoints. An applied run writes its events to the outbox a chunk at a time and keeps
    /// only their number (`events_written`): 500k snapshots would not fit in memory.
    pub events: Vec<(crate::events::NewEvent, Vec<String>)>,
    /// Change events this run added to the outbox (new ids; one stored before is not counted).
    pub events_written: u64,
    /// People merged again, changed or not (what the run's work grew with).
    pub merged: u64,
}

/// The status a person has: the HRIS's status, corrected by the dates (an `active` or
/// `inactive` person whose start date is ahead is a pre-hire; anyone whose end date has
/// passed has left; `inactive` is a leaver from the start date on), or derived from the dates
/// when the HRIS gives none. `$today` is bound as a string. The SQL twin of
/// `identity::derive_status`: where they disagree, every run re-merges the people concerned.
const DERIVE_STATUS: &str = "CASE
  WHEN en IS NOT NULL AND en < $today AND coalesce(st, '') <> 'terminated' THEN 'terminated'
  WHEN st IS NULL AND sd IS NOT NULL AND sd > $today THEN 'pre_hire'
  WHEN st IN ('active', 'inactive') AND sd IS NOT NULL AND sd > $today THEN 'pre_hire'
  WHEN st = 'inactive' THEN 'terminated'
  WHEN st IS NULL THEN 'active'
  ELSE st END";

/// Which rows of `data_problems` an apply writes again.
#[derive(Debug, Clone, Copy)]
enum ProblemScope<'a> {
    /// Every row: a first sync, or a re-merge of most of the directory.
    All,
    /// The rows an apply of this source can change, the others being as the last apply
    /// left them. Only the source's records changed, and `affected` holds every email the
    /// change named (new and dropped records, reports of a record whose key, email or id
    /// moved, people who joined the directory: nobody leaves it, a leaver stays as
    /// terminated). So, written again: the source's
    /// record-level problems (unmappable records, field problems) and its listing problems,
    /// all of them (two narrow columns to scan); its duplicate emails among `affected`; the
    /// unresolved managers of records (of any source) whose own or manager's email is
    /// affected (an id resolves within its source; an email against the directory); and the
    /// directory-wide kinds (`source` NULL: management cycles, people without a manager,
    /// whose message counts them all). At 500k people, writing every row took 0.5-0.6 s of
    /// a 1%-changed re-sync.
    Touched(&'a str),
}

/// The problems in `scope` (`$1`: the run; `$2`: the source, for [`ProblemScope::Touched`]).
fn problems_sql(scope: ProblemScope<'_>) -> String {
    let (of_source, duplicates, unresolved) = match scope {
        ProblemScope::All => ("TRUE", "TRUE", "TRUE"),
        ProblemScope::Touched(_) => (
            "source = $2",
            "source = $2 AND work_email IN (SELECT work_email FROM affected)",
            "(r.work_email IN (SELECT work_email FROM affected)
              OR r.manager_email IN (SELECT work_email FROM affected))",
        ),
    };
    format!(
        "WITH cycles AS (SELECT start FROM manager_cycles),
          roots AS (
            SELECT work_email FROM person_rows
            WHERE status <> 'terminated' AND manager_email IS NULL)
          SELECT * FROM (
            SELECT source, record_key, work_email,
                   -- A record refused whole (`record: ...`: too large, too deep) may have no
                   -- email read from it; it is not missing one.
                   CASE WHEN work_email IS NULL AND coalesce(problems, '') NOT LIKE 'record: %'
                        THEN 'missing_work_email' ELSE 'unmappable_record' END AS kind,
                   NULL AS field, coalesce(problems, 'could not be mapped') AS detail, sync_run
            FROM source_records WHERE outcome = 'failed' AND {of_source}
            UNION ALL
            SELECT source, record_key, work_email, 'field_problem', failed_fields, problems, sync_run
            FROM source_records WHERE outcome = 'kept' AND problems IS NOT NULL AND {of_source}
            UNION ALL
            SELECT source, record_key, NULL, kind, field, detail, sync_run FROM source_problems
            WHERE {of_source}
            UNION ALL
            SELECT source, min(record_key), work_email, 'duplicate_work_email', 'work_email',
                   count(*) || ' records of ' || source || ' have this work email; the one with the lowest key (' || min(record_key) || ') is used',
                   max(sync_run)
            FROM source_records WHERE outcome = 'kept' AND {duplicates}
            GROUP BY source, work_email HAVING count(*) > 1
            UNION ALL
            SELECT r.source, r.record_key, r.work_email, 'unresolved_manager', 'manager_id',
                   'manager id ' || r.manager_id || ' matches no record of ' || r.source
                     || CASE WHEN r.manager_email IS NULL THEN ' and no manager email is mapped'
                             ELSE ' and the mapped manager email is not in the directory' END,
                   r.sync_run
            FROM source_records r
            WHERE r.outcome = 'kept' AND r.manager_id IS NOT NULL AND {unresolved}
              AND NOT EXISTS (SELECT 1 FROM source_records m WHERE m.source = r.source AND m.outcome = 'kept' AND m.employee_id = r.manager_id)
              AND (r.manager_email IS NULL OR r.manager_email NOT IN (SELECT work_email FROM person_rows))
            UNION ALL
            SELECT NULL, NULL, start, 'manager_cycle', 'manager_email',
                   'the management chain of this person leads back to them', $1
            FROM cycles
            UNION ALL
            SELECT NULL, NULL, work_email, 'no_manager', 'manager_email',
                   'no manager, and ' || (SELECT count(*) FROM roots) || ' people have none (expected only at the top of the organisation)', $1
            FROM roots WHERE (SELECT count(*) FROM roots) > 1)"
    )
}

/// The people whose derived status differs from the one stored, with today bound as `param`.
fn status_due_sql(param: &str) -> String {
    format!(
        "SELECT work_email FROM (
           SELECT work_email, status, hris_status AS st, start_date::VARCHAR AS sd, end_date::VARCHAR AS en
           FROM person_rows WHERE len(coalesce(sources, [])) > 0)
         WHERE status IS DISTINCT FROM ({})",
        DERIVE_STATUS.replace("$today", param)
    )
}

/// `person_rows`' columns that hold field values, qualified by `prefix`, in `Field::ALL`
/// order then `hris_status`: dates as `YYYY-MM-DD` text, as `schema::value_of` reads them.
fn stored_value_columns(prefix: &str) -> String {
    Field::ALL
        .iter()
        .map(|f| match f.kind() {
            FieldKind::Date => format!("{prefix}{0}::VARCHAR AS {0}", f.name()),
            _ => format!("{prefix}{}", f.name()),
        })
        .chain(std::iter::once(format!("{prefix}hris_status")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// People merged per round trip. Each chunk's read scans the affected temp tables once, so
/// the number of chunks multiplies the read's cost (a first sync of 130k people: 15.1 s with
/// 2,000, 65 chunks, before the read and the merge overlapped); the chunk bounds the memory
/// of a merge of the whole directory, and up to three are in memory at once (one read, one
/// merged, one waiting). At 100k with 10% changed, 5,000 peaked at 220-228 MB and 2,500 at
/// 187-195 MB, as fast; a first sync took as long with either (6.8-7.3 s).
const CHUNK: i64 = 2_500;

/// One affected person, as [`ChunkRows::people`] reads them.
#[derive(Debug, Default)]
struct ChunkPerson {
    email: String,
    /// Kept records, one per source.
    records: Vec<crate::identity::SourceRecord>,
    /// The current values (from `people`, before the merge replaces the row).
    current: crate::identity::State,
    /// When the person was first seen and last changed (from `people`), µs since the epoch.
    first_seen: Option<i64>,
    last_changed: Option<i64>,
}

/// One chunk of affected people as [`Store::read_chunk`] reads them: Arrow batches, turned
/// into [`ChunkPerson`]s on the merging thread (the conversion, about 12 ms a chunk of 2,500
/// people with stored rows, would otherwise hold up the next chunk's queries).
struct ChunkRows {
    emails: Vec<RecordBatch>,
    records: Vec<RecordBatch>,
    custom: Vec<RecordBatch>,
    rows: Vec<RecordBatch>,
}

impl ChunkRows {
    /// The people: each one's kept records (the lowest key per source), custom fields,
    /// current values (each field the stored row's provenance set names, one of `sets`) and
    /// times. Read column by column: the row API's conversion per value was most of the read.
    fn people(self, sets: &super::batch::Sets) -> Result<Vec<ChunkPerson>, StoreError> {
        let mut out: Vec<ChunkPerson> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for batch in &self.emails {
            let emails = Texts::of(batch, 0)?;
            for row in 0..batch.num_rows() {
                let email = emails.get(row).unwrap_or_default().to_string();
                index.insert(email.clone(), out.len());
                out.push(ChunkPerson {
                    email,
                    ..ChunkPerson::default()
                });
            }
        }
        // The person a row of `records` or `rows` (columns in `Field::ALL` order) is about.
        let person = |values: &[Texts<'_>], row: usize| {
            let email = values[Field::work_email as usize].get(row)?;
            index.get(email).copied()
        };
        // Per person, beside `records`: each record's (key, content hash).
        let mut picked: Vec<Vec<(String, i64)>> = vec![Vec::new(); out.len()];
        for batch in &self.records {
            let sources = Texts::of(batch, 0)?;
            let hashes = super::batch::ints(batch, 1)?;
            let keys = Texts::of(batch, 2)?;
            let values = (0..Field::ALL.len())
                .map(|k| Texts::of(batch, 3 + k))
                .collect::<Result<Vec<_>, _>>()?;
            for row in 0..batch.num_rows() {
                let Some(i) = person(&values, row) else {
                    continue;
                };
                let source = sources.get(row).unwrap_or_default();
                let id = (keys.get(row).unwrap_or_default(), hashes.value(row));
                // Several records of one source with this email: the lowest key is used.
                let same = out[i].records.iter().position(|x| x.source == source);
                if let Some(j) = same
                    && (picked[i][j].0.as_str(), picked[i][j].1) <= id
                {
                    continue;
                }
                let record = crate::identity::SourceRecord {
                    source: source.to_string(),
                    values: values
                        .iter()
                        .map(|v| v.get(row).map(str::to_string))
                        .collect(),
                    custom: Vec::new(),
                };
                let id = (id.0.to_string(), id.1);
                match same {
                    Some(j) => {
                        out[i].records[j] = record;
                        picked[i][j] = id;
                    }
                    None => {
                        out[i].records.push(record);
                        picked[i].push(id);
                    }
                }
            }
        }
        let mut by_hash: HashMap<(&str, i64), (usize, usize)> = HashMap::new();
        for (i, ids) in picked.iter().enumerate() {
            for (j, (_, hash)) in ids.iter().enumerate() {
                by_hash.insert((out[i].records[j].source.as_str(), *hash), (i, j));
            }
        }
        let mut customs: Vec<(usize, usize, String, String)> = Vec::new();
        for batch in &self.custom {
            let sources = Texts::of(batch, 0)?;
            let hashes = super::batch::ints(batch, 1)?;
            let names = Texts::of(batch, 2)?;
            let values = Texts::of(batch, 3)?;
            for row in 0..batch.num_rows() {
                let key = (sources.get(row).unwrap_or_default(), hashes.value(row));
                if let Some(&(i, j)) = by_hash.get(&key) {
                    let name = names.get(row).unwrap_or_default().to_string();
                    let value = values.get(row).unwrap_or_default().to_string();
                    customs.push((i, j, name, value));
                }
            }
        }
        drop(by_hash);
        for (i, j, name, value) in customs {
            out[i].records[j].custom.push((name, value));
        }
        for p in &mut out {
            for r in &mut p.records {
                r.custom.sort_unstable();
            }
        }
        // A stored row's value of each field its provenance set names, as the view
        // `person_values` gives it (`schema::value_of`): empty values are not current.
        let n = Field::ALL.len();
        for batch in &self.rows {
            let values = (0..=n)
                .map(|k| Texts::of(batch, k))
                .collect::<Result<Vec<_>, _>>()?;
            let custom_names = TextLists::of(batch, n + 1)?;
            let custom_values = TextLists::of(batch, n + 2)?;
            let set_ids = super::batch::ints(batch, n + 3)?;
            let first_seen = super::batch::ints(batch, n + 4)?;
            let last_changed = super::batch::ints(batch, n + 5)?;
            for row in 0..batch.num_rows() {
                let Some(i) = person(&values, row) else {
                    continue;
                };
                let p = &mut out[i];
                p.first_seen = int_at(first_seen, row);
                p.last_changed = int_at(last_changed, row);
                let Some(set) = int_at(set_ids, row).and_then(|id| sets.get(&id)) else {
                    continue;
                };
                for (field, source) in set {
                    let value = if let Some(f) = Field::from_name(field) {
                        values[f as usize].get(row)
                    } else if field == "hris_status" {
                        values[n].get(row)
                    } else if let Some(name) = field.strip_prefix("custom.") {
                        custom_names
                            .get(row)
                            .zip(custom_values.get(row))
                            .find(|(k, _)| *k == Some(name))
                            .and_then(|(_, v)| v)
                    } else {
                        None
                    };
                    if let Some(value) = value {
                        p.current
                            .insert(field.clone(), (value.to_string(), source.clone()));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// What the merge of one chunk needs besides its people.
struct MergeContext<'a> {
    precedence: &'a crate::identity::Precedence,
    today: &'a str,
    now_us: i64,
    run: i64,
    /// Keep who changed, and how (events, plans).
    want_people: bool,
    /// Keep the field-level changes too.
    want_changes: bool,
    /// The distinct provenance maps, stored and new (one merging thread at a time).
    provenance: std::sync::Mutex<super::batch::Provenances>,
    /// The stored provenance sets, by id (what the stored rows read point at).
    stored_sets: &'a super::batch::Sets,
}

/// One chunk merged: its rows, ready to append, and what it changed.
struct MergedChunk {
    people: Option<duckdb::arrow::record_batch::RecordBatch>,
    history: Option<duckdb::arrow::record_batch::RecordBatch>,
    /// Values replaced: (person, field, old value, its source, the person's first sight).
    closes: Vec<(String, String, String, String, i64)>,
    by_person: Vec<(String, PersonChange, Vec<Change>)>,
    /// Created, updated, terminated, reactivated.
    counts: [u64; 4],
    /// Field-level changes.
    changes: u64,
    took: std::time::Duration,
}

/// The merged chunk the merging thread sends next; its end without one is an error.
fn recv_merged(
    merged: &std::sync::mpsc::Receiver<Result<MergedChunk, StoreError>>,
) -> Result<Result<MergedChunk, StoreError>, StoreError> {
    merged.recv().map_err(|_| StoreError::Io {
        what: "the merging thread stopped while merging",
        path: std::path::PathBuf::from("people"),
        source: std::io::Error::other("merge thread ended"),
    })
}

/// Merges and diffs one chunk of affected people (pure: no SQL), building their `people` and
/// `value_history` rows. Runs on its own thread while the next chunk is read.
fn merge_chunk(batch: ChunkRows, cx: &MergeContext<'_>) -> Result<MergedChunk, StoreError> {
    let t = std::time::Instant::now();
    let batch = batch.people(cx.stored_sets)?;
    let mut history_rows = super::batch::History::new();
    let mut people_rows = super::batch::People::new();
    let mut provenance = cx
        .provenance
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out = MergedChunk {
        people: None,
        history: None,
        closes: Vec::new(),
        by_person: Vec::new(),
        counts: [0; 4],
        changes: 0,
        took: std::time::Duration::ZERO,
    };
    for person in batch {
        let next = if person.records.is_empty() {
            crate::identity::departed(&person.current)
        } else {
            crate::identity::merge(&person.records, cx.precedence, cx.today)
        };
        let diffs = crate::identity::diff(&person.current, &next);
        let email = person.email;
        if !diffs.is_empty() {
            out.changes += diffs.len() as u64;
            let status = |st: &crate::identity::State| {
                st.get("status").map(|v| v.0.as_str()) == Some("terminated")
            };
            let kind = if person.current.is_empty() {
                PersonChange::Created
            } else if status(&next) && !status(&person.current) {
                PersonChange::Terminated
            } else if status(&person.current) && !status(&next) {
                PersonChange::Reactivated
            } else {
                PersonChange::Updated
            };
            out.counts[match kind {
                PersonChange::Created => 0,
                PersonChange::Updated => 1,
                PersonChange::Terminated => 2,
                PersonChange::Reactivated => 3,
            }] += 1;
            // A person's first values are kept in `people` alone (schema v5); a change opens a
            // history row for the new value and closes the old one's (written now, closed, if
            // it was a first value).
            let created = person.current.is_empty();
            let first_seen = person.first_seen.unwrap_or(cx.now_us);
            for &(field, old, new, source) in &diffs {
                if let Some(old) = old {
                    let old_source = person.current.get(field).map_or("", |v| v.1.as_str());
                    out.closes.push((
                        email.clone(),
                        field.to_string(),
                        old.to_string(),
                        old_source.to_string(),
                        first_seen,
                    ));
                }
                if let (Some(v), false) = (new, created) {
                    history_rows.push(&email, field, v, source, cx.now_us, cx.run);
                }
            }
            if cx.want_people {
                let changes = if cx.want_changes {
                    diffs
                        .iter()
                        .map(|&(field, old, new, source)| Change {
                            work_email: email.clone(),
                            field: field.to_string(),
                            old: old.map(str::to_string),
                            new: new.map(str::to_string),
                            source: source.to_string(),
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                out.by_person.push((email.clone(), kind, changes));
            }
        }
        let any_change = !diffs.is_empty();
        let state = crate::identity::apply(&person.current, next);
        if state.is_empty() {
            continue;
        }
        let last_changed = if !any_change {
            person.last_changed.unwrap_or(cx.now_us)
        } else {
            cx.now_us
        };
        people_rows.push(
            &state,
            &person.records,
            person.first_seen.unwrap_or(cx.now_us),
            last_changed,
            provenance.id(&state),
        )?;
    }
    out.people = people_rows.take()?;
    out.history = history_rows.take()?;
    out.took = t.elapsed();
    Ok(out)
}

impl Store {
    /// The stored records of a source: each content hash with the xxh3 hash of its record
    /// key (the keys themselves are not kept in memory).
    pub fn known_records(&self, source: &str) -> Result<Vec<(i64, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT content_hash, record_key FROM source_records WHERE source = ?")?;
        let mut rows = stmt.query([source])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let key: String = r.get(1)?;
            out.push((r.get(0)?, xxhash_rust::xxh3::xxh3_64(key.as_bytes())));
        }
        Ok(out)
    }

    /// The record keys of a source's stored records with these content hashes.
    pub fn record_keys(&self, source: &str, hashes: &[i64]) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT record_key FROM source_records WHERE source = ? AND content_hash = ?",
        )?;
        let mut out = Vec::new();
        for h in hashes {
            let mut rows = stmt.query(params![source, h])?;
            if let Some(r) = rows.next()? {
                out.push(r.get(0)?);
            }
        }
        Ok(out)
    }

    /// True when the source's last listing left problems of its own (`source_problems`).
    pub fn has_source_problems(&self, source: &str) -> Result<bool, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM source_problems WHERE source = ?",
            [source],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Every source with stored records, and how many.
    pub fn record_sources(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT source, count(*) FROM source_records GROUP BY source ORDER BY source",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// True when some person's derived status would change today although no record did
    /// (a start date reached, an end date passed).
    pub fn status_due(&self, today: &str) -> Result<bool, StoreError> {
        let n: i64 = self.conn.query_row(
            &format!("SELECT count(*) FROM ({})", status_due_sql("$1")),
            [today],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Opens the sync's transaction and returns appenders into `source_records` and
    /// `source_custom` for the records of `source` that the run `run` finds new or changed.
    /// `now_us` is the run's start (microseconds since the epoch, UTC).
    pub fn begin_staging(
        &self,
        source: &str,
        run: i64,
        now_us: i64,
    ) -> Result<Staging<'_>, StoreError> {
        // A transaction some earlier error path left open must not carry into this run.
        self.discard_staging()?;
        // The listing's parsing and mapping threads have the cores (see `DUCKDB_THREADS`).
        self.set_duckdb_threads(1)?;
        self.conn.execute_batch("BEGIN TRANSACTION")?;
        let records = self.conn.appender("source_records");
        let custom = self.conn.appender("source_custom");
        let (records, custom) = match (records, custom) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                self.conn.execute_batch("ROLLBACK").ok();
                return Err(e.into());
            }
        };
        Ok(Staging {
            records,
            custom,
            rows: StagedRows::new(source, run, now_us),
            staged: 0,
        })
    }

    /// The runs that decide `source`'s next listing (see [`ListingState`]). Runs from before
    /// schema v6 have no `listing`: they were full reads.
    pub fn listing_state(&self, source: &str) -> Result<ListingState, StoreError> {
        let micros = |v: Option<i64>| v.and_then(|us| jiff::Timestamp::from_microsecond(us).ok());
        let (last, full, mapping): (Option<i64>, Option<i64>, Option<String>) =
            self.conn.query_row(
                "SELECT epoch_us(max(started_at)),
                    epoch_us(max(started_at) FILTER (WHERE coalesce(listing, 'full') = 'full')),
                    arg_max(mapping, started_at) FILTER (WHERE coalesce(listing, 'full') = 'full')
             FROM sync_runs WHERE source = $1 AND outcome IN ('applied', 'unchanged')",
                [source],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
        Ok(ListingState {
            last_start: micros(last),
            last_full: micros(full).map(|t| (t, mapping)),
        })
    }

    /// The next sync run id.
    pub fn next_run_id(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT coalesce(max(id), 0) + 1 FROM sync_runs", [], |r| {
                r.get(0)
            })?)
    }

    /// Records a sync run, with its `sync.*` event, in a transaction of its own.
    pub fn record_run(&self, run: &RunRow) -> Result<(), StoreError> {
        self.in_tx(|s| s.insert_run(run))
    }

    /// Records a sync run and its `sync.*` event in the current transaction.
    fn insert_run(&self, run: &RunRow) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO sync_runs VALUES (?, ?, ?::TIMESTAMP, ?::TIMESTAMP, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                run.id,
                run.source,
                run.started_at,
                run.finished_at,
                run.outcome,
                run.pages as i64,
                run.records as i64,
                run.kept as i64,
                run.excluded as i64,
                run.failed as i64,
                run.changed_records as i64,
                run.created as i64,
                run.updated as i64,
                run.terminated as i64,
                run.duration_ms as i64,
                run.error,
                run.held_reason,
                run.coverage,
                run.config_version,
                run.config_commit,
                env!("CARGO_PKG_VERSION"),
                run.error_code,
                run.listing,
                run.since,
                run.mapping,
            ],
        )?;
        if let Some(routing) = &self.routing {
            let ev = crate::events::sync_event(crate::events::SyncData {
                source: run.source.clone(),
                sync_run: run.id,
                outcome: run.outcome.clone(),
                records: run.records,
                created: run.created,
                updated: run.updated,
                terminated: run.terminated,
                reason: run.error.clone().or_else(|| run.held_reason.clone()),
                error_code: run.error_code.clone(),
            });
            let endpoints = routing.route(&ev);
            if !endpoints.is_empty() {
                let now = run.finished_at.as_deref().unwrap_or(&run.started_at);
                super::events::write_events(&self.conn, &[(ev, endpoints)], now)?;
            }
        }
        Ok(())
    }

    /// Merges, diffs and applies (or plans) a staged listing in ONE transaction, with the run
    /// row. On a hold or a dry run nothing is applied.
    /// The transaction is the one [`Store::begin_staging`] opened.
    pub fn apply(&self, input: &ApplyInput<'_>, run: &mut RunRow) -> Result<Applied, StoreError> {
        let applied = self.apply_in_tx(input, run);
        // Ended (rolled back or committed) before DuckDB gets its threads back: a statement
        // that failed has aborted the transaction, and any other statement in it, this `SET`
        // included, fails with "Current transaction is aborted". Set first, that error
        // replaced the one that said what went wrong, and the transaction stayed open.
        let ended = self.end_apply(applied, input, run);
        let threads = self.set_duckdb_threads(super::DUCKDB_THREADS);
        let applied = ended?;
        threads?;
        Ok(applied)
    }

    /// Commits an applied run, or rolls back a failed, held or planned one (recording the
    /// failed or held run).
    fn end_apply(
        &self,
        applied: Result<Applied, StoreError>,
        input: &ApplyInput<'_>,
        run: &mut RunRow,
    ) -> Result<Applied, StoreError> {
        match applied {
            Ok(applied) if applied.coverage_failed.is_some() => {
                self.conn.execute_batch("ROLLBACK")?;
                if !input.dry_run {
                    run.outcome = "failed".into();
                    run.error = applied.coverage_failed.clone();
                    self.record_run(run)?;
                }
                Ok(applied)
            }
            Ok(applied) => {
                if input.dry_run || applied.held.is_some() {
                    self.conn.execute_batch("ROLLBACK")?;
                    if applied.held.is_some() && !input.dry_run {
                        run.outcome = "held".into();
                        run.held_reason = applied.held.clone();
                        self.record_run(run)?;
                    }
                } else {
                    self.conn.execute_batch("COMMIT")?;
                }
                Ok(applied)
            }
            Err(e) => {
                self.conn.execute_batch("ROLLBACK").ok();
                Err(e)
            }
        }
    }

    fn apply_in_tx(&self, input: &ApplyInput<'_>, run: &mut RunRow) -> Result<Applied, StoreError> {
        let c = &self.conn;
        let s = input.source;
        let now = input.now.as_str();
        let mut laps = super::Laps::new("apply");
        self.set_duckdb_threads(super::DUCKDB_THREADS)?;
        // This run's records are the staged ones (`sync_run = run.id`) plus the stored ones
        // seen again. `dropped`: stored records not seen again, except the last good version of
        // a record that now fails to map (it still counts as present, with its old values).
        c.execute_batch("CREATE OR REPLACE TEMP TABLE gone (hash BIGINT)")?;
        {
            let mut app = Batched::temp(c, "gone")?;
            for h in input.gone {
                app.append_row([*h])?;
            }
            app.finish()?;
        }
        c.execute(
            "CREATE OR REPLACE TEMP TABLE dropped AS
             WITH staged AS (SELECT record_key, outcome FROM source_records WHERE source = $1 AND sync_run = $2)
             SELECT o.content_hash AS hash, o.record_key, o.outcome, o.work_email, o.employee_id
             FROM source_records o
             WHERE o.source = $1 AND o.sync_run <> $2 AND o.content_hash IN (SELECT hash FROM gone)
               AND NOT (o.outcome = 'kept'
                 AND o.record_key NOT IN (SELECT record_key FROM staged WHERE outcome = 'kept')
                 AND (o.record_key IN (SELECT record_key FROM staged WHERE outcome = 'failed')
                      OR EXISTS (SELECT 1 FROM staged WHERE outcome = 'failed' AND record_key LIKE '#%')))",
            params![s, run.id],
        )?;
        laps.lap("dropped");
        self.keep_last_good_values(s, run.id)?;

        let mut applied = Applied::default();
        let (kept, excluded, failed): (i64, i64, i64) = c.query_row(
            "SELECT count(*) FILTER (WHERE outcome = 'kept'), count(*) FILTER (WHERE outcome = 'excluded'),
                    count(*) FILTER (WHERE outcome = 'failed')
             FROM source_records WHERE source = $1 AND content_hash NOT IN (SELECT hash FROM dropped)",
            [s],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        run.kept = kept as u64;
        run.excluded = excluded as u64;
        run.failed = failed as u64;
        self.check_coverage(input, (kept as u64, failed as u64), &mut applied)?;
        if applied.coverage_failed.is_some() {
            return Ok(applied);
        }
        if !applied.coverage.is_empty() {
            run.coverage = Some(applied.coverage.join("\n"));
        }
        // A removal is a person of the source who leaves: their records are gone or
        // excluded, or a record of theirs now says they left (status `terminated`, or
        // `inactive` from the start date on) where its previous version did not. A run that
        // marks half the company inactive is as suspect as one that lists half of it.
        let leaving = |r: &str| {
            format!(
                "({r}.status = 'terminated' OR ({r}.status = 'inactive' AND ({r}.start_date IS NULL OR {r}.start_date <= $3)))"
            )
        };
        let (before, removals): (i64, i64) = c.query_row(
            &format!(
                "WITH o AS (SELECT DISTINCT work_email FROM source_records WHERE source = $1 AND sync_run <> $2 AND outcome = 'kept'),
                      n AS (SELECT DISTINCT work_email FROM source_records WHERE source = $1 AND outcome = 'kept'
                            AND content_hash NOT IN (SELECT hash FROM dropped)),
                      t AS (SELECT DISTINCT nr.work_email FROM source_records nr
                            JOIN source_records orr ON orr.source = nr.source AND orr.record_key = nr.record_key
                            WHERE nr.source = $1 AND nr.sync_run = $2 AND nr.outcome = 'kept'
                              AND orr.sync_run <> $2 AND orr.outcome = 'kept'
                              AND orr.content_hash IN (SELECT hash FROM dropped)
                              AND {} AND NOT {})
                 SELECT (SELECT count(*) FROM o),
                        (SELECT count(*) FROM o WHERE work_email NOT IN (SELECT work_email FROM n)
                            OR work_email IN (SELECT work_email FROM t))",
                leaving("nr"),
                leaving("orr")
            ),
            params![s, run.id, input.today],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        applied.source_people_before = before as u64;
        applied.removals = removals as u64;
        if !input.allow_removals && before > 0 {
            if input.listing_empty && input.hold_on_empty {
                applied.held = Some(format!(
                    "the listing of `{s}` is empty while the directory has {before} people from it; nothing was applied (help: if everyone really left, run `roster sync --source {s} --allow-removals`; otherwise check the credentials' permissions and the provider)"
                ));
            } else if removals as f64 > input.max_removals * before as f64
                && removals >= i64::from(input.min_removals_to_hold)
            {
                applied.held = Some(format!(
                    "{removals} of {before} people of `{s}` ({:.0}%) would leave (gone from the listing, or marked as left), more than the {:.0}% allowed; nothing was applied (help: check with `roster plan --source {s}`; if the removals are real, run `roster sync --source {s} --allow-removals`)",
                    removals as f64 * 100.0 / before as f64,
                    input.max_removals * 100.0
                ));
            }
        }
        if applied.held.is_some() && !input.dry_run {
            return Ok(applied);
        }
        laps.lap("coverage+removals");

        // A source's first applied sync is a baseline: no change events (see `events`).
        let baseline: i64 = c.query_row(
            "SELECT count(*) FROM sync_runs WHERE source = $1 AND outcome IN ('applied', 'unchanged')",
            [s],
            |r| r.get(0),
        )?;
        let baseline = baseline == 0;
        // A first sync writes person events only when an endpoint asked for `person.created`
        // on the first sync (the baseline rule): otherwise no person is collected for events.
        let routing = self
            .routing
            .clone()
            .filter(|r| !baseline || r.created_on_first_sync);
        let want_changes = input.want_changes || (routing.is_some() && !baseline);
        let want_people = want_changes || routing.is_some();

        // The people to merge again: whoever a new, changed or dropped record names, whose
        // manager's record changed (ids resolve within a source), whose status the calendar
        // changes today, or everyone when the precedence (or Roster) changed.
        let everyone = if input.remerge_all {
            "UNION SELECT work_email FROM person_rows
             UNION SELECT work_email FROM source_records WHERE outcome = 'kept' AND work_email IS NOT NULL"
        } else {
            ""
        };
        // A person's manager id resolves to the email of the record that carries the id (see
        // `manager_ids`): their reports are merged again only when a kept record that could
        // decide it appeared, left, or changed its key, email or id. A new version that keeps
        // all three (a new job title, say) resolves them as before; re-merging every report
        // of each manager whose record changed doubled a 10%-changed re-sync's merge. The ids
        // of the other records with a moved record's email count too: which of a person's
        // records comes first decides which id is theirs.
        c.execute(
            &format!(
                "CREATE OR REPLACE TEMP TABLE affected AS
                 WITH touched AS (
                   SELECT record_key, work_email, employee_id, true AS new FROM source_records
                   WHERE source = $1 AND sync_run = $2 AND outcome = 'kept'
                   UNION ALL SELECT record_key, work_email, employee_id, false FROM dropped
                   WHERE outcome = 'kept'),
                 moved AS (
                   SELECT record_key, work_email, employee_id FROM touched
                   GROUP BY record_key, work_email, employee_id
                   HAVING count(*) FILTER (WHERE new) <> count(*) FILTER (WHERE NOT new)),
                 moved_ids AS (
                   SELECT employee_id FROM moved WHERE employee_id IS NOT NULL
                   UNION SELECT r.employee_id FROM source_records r
                     WHERE r.source = $1 AND r.outcome = 'kept' AND r.employee_id IS NOT NULL
                       AND r.work_email IN (SELECT work_email FROM moved)),
                 emails AS (
                   SELECT work_email FROM touched WHERE work_email IS NOT NULL
                   UNION SELECT r.work_email FROM source_records r
                     WHERE r.source = $1 AND r.outcome = 'kept' AND r.work_email IS NOT NULL
                       AND r.manager_id IN (SELECT employee_id FROM moved_ids)
                   UNION SELECT work_email FROM ({due})
                   {everyone})
                 SELECT work_email, ((row_number() OVER (ORDER BY work_email)) - 1) // {CHUNK} AS chunk,
                        work_email IN (SELECT work_email FROM person_rows) AS known
                 FROM emails",
                due = status_due_sql("$3")
            ),
            params![s, run.id, input.today],
        )?;
        // First seen is inherited from the record's previous versions.
        c.execute(
            "UPDATE source_records SET first_seen = o.first_seen
             FROM (SELECT record_key, min(first_seen) AS first_seen FROM source_records
                   WHERE source = $1 AND sync_run <> $2
                     AND record_key IN (SELECT record_key FROM source_records WHERE source = $1 AND sync_run = $2)
                   GROUP BY record_key) o
             WHERE source_records.source = $1 AND source_records.sync_run = $2
               AND source_records.record_key = o.record_key",
            params![s, run.id],
        )?;
        let mut dead = c.execute(
            "DELETE FROM source_records WHERE source = $1 AND sync_run <> $2
               AND content_hash IN (SELECT hash FROM dropped)",
            params![s, run.id],
        )?;
        dead += c.execute(
            "DELETE FROM source_custom WHERE source = $1
               AND content_hash IN (SELECT hash FROM dropped)",
            [s],
        )?;
        // The stored rows of the affected people the directory has, read before they are
        // replaced: since v5 a first value is kept nowhere else. One row a person, as stored;
        // `ChunkRows::people` turns it into field values through the person's provenance set.
        c.execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE affected_rows AS
             SELECT a.chunk, {stored}, map_keys(p.custom) AS custom_names,
                    map_values(p.custom) AS custom_values, p.provenance_id,
                    epoch_us(p.first_seen) AS first_seen, epoch_us(p.last_changed) AS last_changed
             FROM person_rows p JOIN affected a ON a.work_email = p.work_email
             ORDER BY a.chunk;",
            stored = stored_value_columns("p.")
        ))?;
        // Provider manager ids, resolved within their source (duplicates: the lowest key): an
        // id names the lowest-keyed of the records that are each the first (lowest key) of
        // their person in the source. Only the ids the affected records name are resolved,
        // with every record of the people who carry them (what the ranking needs): ranking
        // all of a 100k source took 45-60 ms of a 1%-changed re-sync.
        c.execute_batch(
            "CREATE OR REPLACE TEMP TABLE manager_ids AS
             WITH wanted AS (
               SELECT DISTINCT r.source, r.manager_id AS employee_id FROM source_records r
               SEMI JOIN affected a ON a.work_email = r.work_email
               WHERE r.outcome = 'kept' AND r.manager_id IS NOT NULL),
             carriers AS (
               SELECT DISTINCT r.source, r.work_email FROM source_records r
               SEMI JOIN wanted w ON w.source = r.source AND w.employee_id = r.employee_id
               WHERE r.outcome = 'kept' AND r.work_email IS NOT NULL)
             SELECT source, employee_id, work_email FROM (
               SELECT r.source, r.record_key, r.employee_id, r.work_email FROM source_records r
               SEMI JOIN carriers p ON p.source = r.source AND p.work_email = r.work_email
               WHERE r.outcome = 'kept'
               QUALIFY row_number() OVER (PARTITION BY r.source, r.work_email ORDER BY r.record_key, r.content_hash) = 1)
             WHERE employee_id IS NOT NULL
             QUALIFY row_number() OVER (PARTITION BY source, employee_id ORDER BY record_key) = 1;
             CREATE OR REPLACE TEMP TABLE closes (work_email VARCHAR, field VARCHAR, value VARCHAR, source VARCHAR, first_seen BIGINT);",
        )?;
        dead += c.execute(
            "DELETE FROM person_rows WHERE work_email IN (SELECT work_email FROM affected)",
            [],
        )?;
        // The rows a publish's vacuum would reclaim (`store::VACUUM_AT`).
        let before = self.dead_rows()?;
        self.set_meta("dead_rows", &(before + dead as u64).to_string())?;
        // The kept records of the affected people, managers resolved, read once (each chunk
        // then reads its slice, not the whole of source_records).
        let cols = Field::ALL
            .iter()
            .map(|f| match f {
                Field::manager_email => {
                    "coalesce(m.work_email, r.manager_email) AS manager_email".to_string()
                }
                f => format!("r.{}", f.name()),
            })
            .collect::<Vec<_>>()
            .join(", ");
        c.execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE affected_records AS
             SELECT a.chunk, r.source, r.record_key, r.content_hash, {cols}
             FROM source_records r JOIN affected a ON a.work_email = r.work_email
             LEFT JOIN manager_ids m ON m.source = r.source AND m.employee_id = r.manager_id
             WHERE r.outcome = 'kept';
             CREATE OR REPLACE TEMP TABLE affected_custom AS
             SELECT k.chunk, cu.source, cu.content_hash, cu.name, cu.value
             FROM source_custom cu
             JOIN (SELECT DISTINCT chunk, source, content_hash FROM affected_records) k
               ON k.source = cu.source AND k.content_hash = cu.content_hash
             ORDER BY k.chunk;"
        ))?;
        laps.lap("affected");

        let (chunks, merged): (i64, i64) = c.query_row(
            "SELECT coalesce(max(chunk) + 1, 0), count(*) FROM affected",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        applied.merged = merged as u64;
        let precedence = crate::identity::Precedence::new(input.precedence);
        let stored_sets = {
            let mut stmt = c.prepare(
                "SELECT id, unnest(map_keys(provenance)), unnest(map_values(provenance))
                 FROM provenance_sets",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            super::batch::sets(rows.collect::<Result<Vec<_>, _>>()?)
        };
        let cx = MergeContext {
            precedence: &precedence,
            today: &input.today,
            now_us: input.now_us,
            run: run.id,
            want_people,
            want_changes,
            provenance: std::sync::Mutex::new(super::batch::Provenances::new(&stored_sets)),
            stored_sets: &stored_sets,
        };
        let mut by_person: Vec<(String, PersonChange, Vec<Change>)> = Vec::new();
        let mut n_changes = 0u64;
        // The merging thread has the second core (see `DUCKDB_THREADS`).
        self.set_duckdb_threads(1)?;
        {
            let mut history = c.appender("value_history")?;
            let mut people = c.appender("person_rows")?;
            let mut closes = Batched::temp(c, "closes")?;
            // Where the merge's time goes: reading (this thread), merging in Rust (a second
            // thread, overlapping the next chunk's read), appending (this thread).
            let mut split = [std::time::Duration::ZERO; 3];
            let mut take = |out: MergedChunk,
                            split: &mut [std::time::Duration; 3]|
             -> Result<(), StoreError> {
                split[1] += out.took;
                let t = std::time::Instant::now();
                super::batch::append(&mut people, out.people)?;
                super::batch::append(&mut history, out.history)?;
                for (email, field, old, old_source, first_seen) in &out.closes {
                    closes.append_row(params![email, field, old, old_source, first_seen])?;
                }
                split[2] += t.elapsed();
                applied.created += out.counts[0];
                applied.updated += out.counts[1];
                applied.terminated += out.counts[2];
                applied.reactivated += out.counts[3];
                n_changes += out.changes;
                by_person.extend(out.by_person);
                Ok(())
            };
            std::thread::scope(|scope| -> Result<(), StoreError> {
                // At most one chunk waits while another is merged: memory stays at a few
                // chunks whatever the directory's size.
                let (to_merge, todo) = std::sync::mpsc::sync_channel::<ChunkRows>(1);
                let (done, merged) =
                    std::sync::mpsc::sync_channel::<Result<MergedChunk, StoreError>>(1);
                let cx = &cx;
                scope.spawn(move || {
                    for batch in todo {
                        if done.send(merge_chunk(batch, cx)).is_err() {
                            return;
                        }
                    }
                });
                let mut in_flight = 0usize;
                for chunk in 0..chunks {
                    let t0 = std::time::Instant::now();
                    let batch = self.read_chunk(chunk)?;
                    split[0] += t0.elapsed();
                    if to_merge.send(batch).is_err() {
                        break;
                    }
                    in_flight += 1;
                    if in_flight == 2 {
                        take(recv_merged(&merged)??, &mut split)?;
                        in_flight -= 1;
                    }
                }
                drop(to_merge);
                for _ in 0..in_flight {
                    take(recv_merged(&merged)??, &mut split)?;
                }
                Ok(())
            })?;
            let t2 = std::time::Instant::now();
            history.flush()?;
            people.flush()?;
            closes.finish()?;
            let fresh = cx
                .provenance
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take_fresh()?;
            if fresh.is_some() {
                super::batch::append(&mut c.appender("provenance_sets")?, fresh)?;
            }
            if chunks > 0 {
                c.execute(
                    "DELETE FROM provenance_sets
                     WHERE id NOT IN (SELECT provenance_id FROM person_rows WHERE provenance_id IS NOT NULL)",
                    [],
                )?;
            }
            split[2] += t2.elapsed();
            for (phase, d) in [
                ("merge.read", split[0]),
                ("merge.identity", split[1]),
                ("merge.append", split[2]),
            ] {
                laps.part(phase, d);
            }
        }
        self.set_duckdb_threads(super::DUCKDB_THREADS)?;
        by_person.sort_by(|a, b| a.0.cmp(&b.0));
        laps.lap("merge");
        applied.unchanged = n_changes == 0 && run.changed_records == 0;
        // History: close the values that changed (the new ones were appended above). A first
        // value has no row yet: it is written closed, in force since the person's first sight.
        c.execute(
            "INSERT INTO value_history
             SELECT ch.work_email, ch.field, ch.value, ch.source, make_timestamp(ch.first_seen),
                    $1::TIMESTAMP,
                    (SELECT max(r.id) FROM sync_runs r WHERE r.started_at = make_timestamp(ch.first_seen))
             FROM closes ch
             WHERE NOT EXISTS (SELECT 1 FROM value_history h
                               WHERE h.work_email = ch.work_email AND h.field = ch.field
                                 AND h.valid_to IS NULL AND h.sync_run <> $2)",
            params![now, run.id],
        )?;
        c.execute(
            "UPDATE value_history SET valid_to = $1::TIMESTAMP FROM closes ch
             WHERE value_history.work_email = ch.work_email AND value_history.field = ch.field
               AND value_history.valid_to IS NULL AND value_history.sync_run <> $2",
            params![now, run.id],
        )?;
        laps.lap("history");
        if let Some(routing) = &routing {
            let cx = crate::events::ChangeContext {
                source: s,
                sync_run: run.id,
                baseline,
                created_on_first_sync: routing.created_on_first_sync,
            };
            let empty = serde_json::Map::new();
            // A chunk of people at a time: their snapshots and events are built, written and
            // dropped (a run that changes 500k people holds 2,000 snapshots, not 500k). Only
            // a plan keeps the events, to print them.
            let keep = input.dry_run || input.want_changes;
            for part in by_person.chunks(CHUNK as usize) {
                c.execute_batch("CREATE OR REPLACE TEMP TABLE snapshot_of (work_email VARCHAR)")?;
                {
                    let mut app = Batched::temp(c, "snapshot_of")?;
                    for (email, _, _) in part {
                        app.append_row([email.as_str()])?;
                    }
                    app.finish()?;
                }
                let people = super::events::people_snapshots(
                    &self.conn,
                    "SELECT work_email FROM snapshot_of",
                )?;
                let mut events = Vec::new();
                for (email, kind, changes) in part {
                    let person = people.get(email).unwrap_or(&empty);
                    for ev in crate::events::person_events(&cx, email, *kind, changes, person) {
                        let endpoints = routing.route(&ev);
                        if !endpoints.is_empty() {
                            events.push((ev, endpoints));
                        }
                    }
                }
                if !input.dry_run {
                    applied.events_written +=
                        super::events::write_events(&self.conn, &events, now)?;
                }
                if keep {
                    applied.events.extend(events);
                }
            }
            laps.lap("events");
        }
        if input.want_changes {
            applied.people = by_person;
        }
        c.execute("DELETE FROM source_problems WHERE source = $1", [s])?;
        {
            let mut app = Batched::new(c, "source_problems")?;
            for p in input.source_problems {
                app.append_row(params![s, p.kind, p.record_key, p.field, p.detail, run.id])?;
            }
            app.finish()?;
        }
        // On one DuckDB thread: each thread of a hash join or aggregate over every record and
        // person holds memory of its own, and the transaction holds much of the limit by now.
        // A 1%-changed re-sync of 100k people ran out of memory here under 56 MB with two
        // threads (and now and then under the automatic 68 MB), and passes under 48 MB with
        // one. The statements take 70-90 ms instead of 50-60.
        self.set_duckdb_threads(1)?;
        applied.problems = self.recompute_problems(run.id, s, input.remerge_all, merged)?;
        self.set_duckdb_threads(super::DUCKDB_THREADS)?;
        laps.lap("problems");
        if input.dry_run {
            // Inside the transaction that is rolled back: list them for the plan.
            let mut stmt = self.conn.prepare(
                "SELECT source, record_key, work_email, kind, field, detail FROM data_problems
                 ORDER BY kind, source, work_email, record_key",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Problem {
                    source: r.get(0)?,
                    record_key: r.get(1)?,
                    work_email: r.get(2)?,
                    kind: r.get(3)?,
                    field: r.get(4)?,
                    detail: r.get(5)?,
                })
            })?;
            for p in rows {
                applied.problem_list.push(p?);
            }
            return Ok(applied);
        }
        self.set_meta("merge_key", input.merge_key)?;
        // What the published directory reflects (compared with the published copy to catch up
        // after a crash between this commit and the publish).
        c.execute_batch("DELETE FROM directory_info")?;
        c.execute(
            "INSERT INTO directory_info VALUES ($1, $2, now()::TIMESTAMP, NULL, $3)",
            params![run.id, s, env!("CARGO_PKG_VERSION")],
        )?;
        run.created = applied.created;
        run.updated = applied.updated + applied.reactivated;
        run.terminated = applied.terminated;
        run.outcome = if applied.unchanged {
            "unchanged".into()
        } else {
            "applied".into()
        };
        self.insert_run(run)?;
        Ok(applied)
    }

    /// The affected people of one chunk, as DuckDB hands them over: their emails, kept records
    /// (managers resolved), custom fields and stored rows. [`ChunkRows::people`] reads them,
    /// on the merging thread.
    fn read_chunk(&self, chunk: i64) -> Result<ChunkRows, StoreError> {
        let c = &self.conn;
        let cols: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
        let read = |sql: &str| -> Result<Vec<RecordBatch>, StoreError> {
            Ok(c.prepare_cached(sql)?.query_arrow([chunk])?.collect())
        };
        let emails =
            read("SELECT work_email, known FROM affected WHERE chunk = $1 ORDER BY work_email")?;
        // Unordered within the chunk: sorting 2,500 wide rows in SQL was a third of each
        // chunk's read; the lowest key per source is picked when read.
        let records = read(&format!(
            "SELECT source, content_hash, record_key, {} FROM affected_records WHERE chunk = $1",
            cols.join(", ")
        ))?;
        let custom =
            read("SELECT source, content_hash, name, value FROM affected_custom WHERE chunk = $1")?;
        // Only people the directory had before have stored rows (a first sync reads none; the
        // history this run appends is never read back).
        let mut known = false;
        for batch in &emails {
            use duckdb::arrow::array::AsArray;
            known |= batch
                .column(1)
                .as_boolean_opt()
                .ok_or_else(|| super::batch::unexpected(batch, 1, "BOOLEAN"))?
                .true_count()
                > 0;
        }
        let rows = if known {
            read("SELECT * EXCLUDE (chunk) FROM affected_rows WHERE chunk = $1")?
        } else {
            Vec::new()
        };
        Ok(ChunkRows {
            emails,
            records,
            custom,
            rows,
        })
    }

    /// A value that failed to convert never erases a good one: a staged record's failed fields
    /// take the value of the record's previous version (same source and key), which is still
    /// stored until the apply deletes it. The problem stays in `data_problems`.
    fn keep_last_good_values(&self, source: &str, run: i64) -> Result<(), StoreError> {
        let sets = Field::ALL
            .iter()
            .map(|f| {
                let f = f.name();
                format!(
                    "{f} = CASE WHEN list_contains(string_split(source_records.failed_fields, ','), '{f}') THEN o.{f} ELSE source_records.{f} END"
                )
            })
            .collect::<Vec<_>>()
            .join(",\n ");
        self.conn.execute(
            &format!(
                "UPDATE source_records SET {sets}
                 FROM (SELECT * FROM source_records
                       WHERE source = $1 AND sync_run <> $2 AND outcome = 'kept'
                         AND record_key IN (SELECT record_key FROM source_records
                           WHERE source = $1 AND sync_run = $2 AND failed_fields IS NOT NULL)
                       QUALIFY row_number() OVER (PARTITION BY record_key ORDER BY last_changed DESC) = 1) o
                 WHERE source_records.source = $1 AND source_records.sync_run = $2
                   AND source_records.failed_fields IS NOT NULL
                   AND source_records.record_key = o.record_key"
            ),
            params![source, run],
        )?;
        // Custom fields too (`custom.NAME` in the list): the previous version's rows.
        self.conn.execute(
            "INSERT INTO source_custom
             SELECT n.source, n.content_hash, cu.name, cu.value
             FROM source_records n
             JOIN (SELECT record_key, content_hash FROM source_records
                   WHERE source = $1 AND sync_run <> $2 AND outcome = 'kept'
                     AND record_key IN (SELECT record_key FROM source_records
                       WHERE source = $1 AND sync_run = $2 AND failed_fields IS NOT NULL)
                   QUALIFY row_number() OVER (PARTITION BY record_key ORDER BY last_changed DESC) = 1) o
               ON o.record_key = n.record_key
             JOIN source_custom cu ON cu.source = $1 AND cu.content_hash = o.content_hash
             WHERE n.source = $1 AND n.sync_run = $2 AND n.failed_fields IS NOT NULL
               AND list_contains(string_split(n.failed_fields, ','), 'custom.' || cu.name)",
            params![source, run],
        )?;
        Ok(())
    }

    /// Brings `data_problems` up to date after an apply of `source` that merged `merged`
    /// people again. Returns how many problems there are. The management cycles are found
    /// again only when a link may have changed (`remerge_all`: every person was merged again,
    /// perhaps by another Roster version); the rows are written again only where the apply's
    /// changes can reach them (see [`ProblemScope`]), or all of them when it merged most of
    /// the directory.
    fn recompute_problems(
        &self,
        run: i64,
        source: &str,
        remerge_all: bool,
        merged: i64,
    ) -> Result<u64, StoreError> {
        self.conn
            .execute_batch("CREATE OR REPLACE TEMP TABLE manager_cycles (start VARCHAR);")?;
        if remerge_all || self.links_changed()? {
            self.find_cycles()?;
        } else {
            // Nobody's manager, presence or standing changed: the cycles stored with the
            // directory still hold (finding them took 40-60 ms at 100k people).
            self.conn.execute_batch(
                "INSERT INTO manager_cycles
                 SELECT work_email FROM data_problems WHERE kind = 'manager_cycle'",
            )?;
        }
        let people: i64 = self
            .conn
            .query_row("SELECT count(*) FROM person_rows", [], |r| r.get(0))?;
        let scope = if remerge_all || merged * 2 >= people {
            ProblemScope::All
        } else {
            ProblemScope::Touched(source)
        };
        self.problems(run, scope)
    }

    /// Whether a management link differs from those the stored `data_problems` were found
    /// with: an affected person (only their rows were replaced) who appeared or disappeared,
    /// or whose manager, or whether they count as current, changed. `affected_rows` holds
    /// their rows from before the merge.
    fn links_changed(&self) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (
               SELECT 1 FROM affected a
               LEFT JOIN affected_rows o ON o.work_email = a.work_email
               LEFT JOIN person_rows n ON n.work_email = a.work_email
               WHERE (o.work_email IS NULL) <> (n.work_email IS NULL)
                  OR o.manager_email IS DISTINCT FROM n.manager_email
                  OR (o.status IS DISTINCT FROM 'terminated') <> (n.status IS DISTINCT FROM 'terminated'))",
            [],
            |r| r.get(0),
        )?)
    }

    /// Finds the management cycles into `manager_cycles`.
    fn find_cycles(&self) -> Result<(), StoreError> {
        // Management cycles, found in Rust (a recursive SQL walk carrying each chain as a list
        // took 0.2-0.4 s at 100k people, on every applied sync). DuckDB numbers the people and
        // resolves each manager to a number, so Rust holds 8 bytes a person, not two emails
        // (at 500k people the emails peaked 100 MB above the rest of the sync).
        self.conn.execute_batch(
            "CREATE OR REPLACE TEMP TABLE people_ids AS
             SELECT work_email, manager_email, status IS DISTINCT FROM 'terminated' AS current,
                    (row_number() OVER ()) - 1 AS id
             FROM person_rows;
             CREATE OR REPLACE TEMP TABLE cycle_ids (id BIGINT);",
        )?;
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM people_ids", [], |r| r.get(0))?;
        let mut next: Vec<Option<u32>> = vec![None; n as usize];
        let mut current = vec![false; n as usize];
        {
            let mut stmt = self.conn.prepare(
                "SELECT p.id, m.id, p.current FROM people_ids p
                 LEFT JOIN people_ids m ON m.work_email = p.manager_email",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(0)?;
                let Some(i) = usize::try_from(id).ok().filter(|&i| i < next.len()) else {
                    continue;
                };
                next[i] = r
                    .get::<_, Option<i64>>(1)?
                    .and_then(|m| u32::try_from(m).ok());
                current[i] = r.get(2)?;
            }
        }
        {
            let mut app = Batched::temp(&self.conn, "cycle_ids")?;
            for id in crate::identity::cycles_by_index(&next, &current) {
                app.append_row([id as i64])?;
            }
            app.finish()?;
        }
        self.conn.execute_batch(
            "INSERT INTO manager_cycles
             SELECT work_email FROM people_ids WHERE id IN (SELECT id FROM cycle_ids);
             DROP TABLE people_ids;
             DROP TABLE cycle_ids;",
        )?;
        Ok(())
    }

    /// Writes the rows of `data_problems` in `scope` again (the cycles taken from
    /// `manager_cycles`); returns how many problems there are.
    fn problems(&self, run: i64, scope: ProblemScope<'_>) -> Result<u64, StoreError> {
        let sql = problems_sql(scope);
        let c = &self.conn;
        match scope {
            ProblemScope::All => {
                c.execute("DELETE FROM data_problems", [])?;
                c.execute(
                    &format!("INSERT INTO data_problems SELECT * FROM ({sql})"),
                    params![run],
                )?;
            }
            ProblemScope::Touched(source) => {
                c.execute(
                    "DELETE FROM data_problems
                     WHERE source IS NULL
                        OR (source = $1 AND kind NOT IN ('duplicate_work_email', 'unresolved_manager'))
                        OR (kind = 'duplicate_work_email' AND source = $1
                            AND work_email IN (SELECT work_email FROM affected))
                        OR (kind = 'unresolved_manager'
                            AND (work_email IN (SELECT work_email FROM affected)
                                 OR EXISTS (SELECT 1 FROM source_records r
                                            WHERE r.source = data_problems.source
                                              AND r.record_key = data_problems.record_key
                                              AND r.manager_email IN (SELECT work_email FROM affected))))",
                    [source],
                )?;
                c.execute(
                    &format!("INSERT INTO data_problems SELECT * FROM ({sql})"),
                    params![run, source],
                )?;
            }
        }
        Ok(c.query_row("SELECT count(*) FROM data_problems", [], |r| r.get(0))?)
    }

    /// Checks the mapping's coverage rules on the new listing. `work_email` counts every
    /// record the filter did not exclude, also those that could not be mapped (a missing work
    /// email is why most records fail, so 100% missing emails is 100%); the other fields count
    /// the records that could be mapped (a record that failed gave no values to judge).
    fn check_coverage(
        &self,
        input: &ApplyInput<'_>,
        (kept, failed): (u64, u64),
        applied: &mut Applied,
    ) -> Result<(), StoreError> {
        let mut fails = Vec::new();
        for (field, max_empty, fail) in input.coverage {
            let (outcomes, total) = if field == "work_email" {
                ("('kept', 'failed')", kept + failed)
            } else {
                ("('kept')", kept)
            };
            if total == 0 {
                continue;
            }
            let empty: i64 = if let Some(name) = field.strip_prefix("custom.") {
                self.conn.query_row(
                    "SELECT count(*) FROM source_records n
                     WHERE n.source = $1 AND n.outcome = 'kept'
                       AND n.content_hash NOT IN (SELECT hash FROM dropped)
                       AND NOT EXISTS (SELECT 1 FROM source_custom cu
                         WHERE cu.source = $1 AND cu.content_hash = n.content_hash AND cu.name = $2)",
                    params![input.source, name],
                    |r| r.get(0),
                )?
            } else if Field::from_name(field).is_some() {
                self.conn.query_row(
                    &format!(
                        "SELECT count(*) FROM source_records WHERE source = $1 AND outcome IN {outcomes}
                           AND content_hash NOT IN (SELECT hash FROM dropped) AND {field} IS NULL"
                    ),
                    [input.source],
                    |r| r.get(0),
                )?
            } else {
                continue;
            };
            let share = empty as f64 / total as f64;
            if share > *max_empty {
                let line = format!(
                    "`{field}` is empty in {empty} of {total} records ({:.0}%, allowed {:.0}%)",
                    share * 100.0,
                    max_empty * 100.0
                );
                if *fail {
                    fails.push(line.clone());
                }
                applied.coverage.push(line);
            }
        }
        if !fails.is_empty() {
            applied.coverage_failed = Some(format!("coverage: {}", fails.join("; ")));
        }
        Ok(())
    }

    /// A value of the `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT value FROM meta WHERE key = ?")?;
        let mut rows = stmt.query([key])?;
        Ok(match rows.next()? {
            Some(r) => Some(r.get(0)?),
            None => None,
        })
    }

    /// Rows the syncs deleted since the last vacuum (`meta.dead_rows`; see `store::VACUUM_AT`).
    pub(crate) fn dead_rows(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta("dead_rows")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM meta WHERE key = ?", [key])?;
        self.conn
            .execute("INSERT INTO meta VALUES (?, ?)", [key, value])?;
        Ok(())
    }

    /// Where `data_problems` differs from what writing every row again would give: each row
    /// one of them has and the other has not, as `missing: ...` (only a full recomputation
    /// has it) or `extra: ...`. Empty when the upkeep of [`ProblemScope::Touched`] kept the
    /// table whole. The directory-wide rows (management cycles, people without a manager)
    /// are compared without their run, which is the last apply's. For the test suite and
    /// for diagnosis; it writes nothing but temporary tables.
    pub fn problems_drift(&self) -> Result<Vec<String>, StoreError> {
        let c = &self.conn;
        c.execute_batch(
            "CREATE OR REPLACE TEMP TABLE manager_cycles AS
             SELECT work_email AS start FROM data_problems WHERE kind = 'manager_cycle'",
        )?;
        c.execute(
            &format!(
                "CREATE OR REPLACE TEMP TABLE problems_full AS SELECT * FROM ({})",
                problems_sql(ProblemScope::All)
            ),
            [0i64],
        )?;
        let row = "concat_ws(' | ', source, record_key, work_email, kind, field, detail,
                             CASE WHEN source IS NULL THEN NULL ELSE sync_run END)";
        let mut stmt = c.prepare(&format!(
            "SELECT 'missing: ' || r FROM (SELECT {row} AS r FROM problems_full
                                          EXCEPT ALL SELECT {row} FROM data_problems)
             UNION ALL
             SELECT 'extra: ' || r FROM (SELECT {row} AS r FROM data_problems
                                        EXCEPT ALL SELECT {row} FROM problems_full)
             ORDER BY 1"
        ))?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// `(kept, excluded, failed)` records of a source.
    pub fn outcome_counts(&self, source: &str) -> Result<(u64, u64, u64), StoreError> {
        let (k, e, f): (i64, i64, i64) = self.conn.query_row(
            "SELECT count(*) FILTER (WHERE outcome = 'kept'), count(*) FILTER (WHERE outcome = 'excluded'),
                    count(*) FILTER (WHERE outcome = 'failed') FROM source_records WHERE source = ?",
            [source],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok((k as u64, e as u64, f as u64))
    }

    /// Rolls back the sync's transaction, staged records and all (after a failed or
    /// abandoned fetch, or a listing with nothing new). Harmless when none is open.
    pub fn discard_staging(&self) -> Result<(), StoreError> {
        match self.conn.execute_batch("ROLLBACK") {
            Err(e) if !e.to_string().contains("no transaction is active") => Err(e.into()),
            _ => self.set_duckdb_threads(super::DUCKDB_THREADS),
        }
    }

    /// Sets DuckDB's threads (a setting of the database, not of the connection): one while
    /// Roster's own threads work beside it, [`super::DUCKDB_THREADS`] otherwise.
    fn set_duckdb_threads(&self, n: usize) -> Result<(), StoreError> {
        self.conn.execute_batch(&format!("SET threads = {n}"))?;
        Ok(())
    }
}

/// A `sync_runs` row.
#[derive(Debug, Clone, Default)]
pub struct RunRow {
    /// Run id.
    pub id: i64,
    /// Source.
    pub source: String,
    /// Start, UTC.
    pub started_at: String,
    /// End, UTC.
    pub finished_at: Option<String>,
    /// applied | unchanged | held | failed.
    pub outcome: String,
    /// HTTP requests made: pages, logins, retries and sub-requests alike.
    pub pages: u64,
    /// Records fetched.
    pub records: u64,
    /// Records kept.
    pub kept: u64,
    /// Records excluded by the filter.
    pub excluded: u64,
    /// Records that failed to map.
    pub failed: u64,
    /// Records new or changed since the last listing.
    pub changed_records: u64,
    /// People created.
    pub created: u64,
    /// People updated.
    pub updated: u64,
    /// People terminated.
    pub terminated: u64,
    /// Duration.
    pub duration_ms: u64,
    /// The error of a failed run: Roster's own words, never text from the HRIS.
    pub error: Option<String>,
    /// A stable code for the error of a failed run.
    pub error_code: Option<String>,
    /// Why a run was held.
    pub held_reason: Option<String>,
    /// Coverage warnings.
    pub coverage: Option<String>,
    /// Hash of the effective config.
    pub config_version: Option<String>,
    /// Git commit of the config directory.
    pub config_commit: Option<String>,
    /// How the run read its source: `full` or `incremental` (`None` for a run that read
    /// nothing, such as a forget).
    pub listing: Option<String>,
    /// The cursor an incremental read sent, as sent.
    pub since: Option<String>,
    /// The fingerprint of the mapping the run used (a full read is due when it changes).
    pub mapping: Option<String>,
}

/// What decides a source's next listing: its last committed runs (`applied` or `unchanged`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListingState {
    /// Start of the last committed run of any kind: an incremental read's cursor.
    pub last_start: Option<jiff::Timestamp>,
    /// Start and mapping fingerprint of the last committed full read.
    pub last_full: Option<(jiff::Timestamp, Option<String>)>,
}
