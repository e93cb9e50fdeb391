//! The SQL of a sync: staging a listing, merging every source by work email with per-field
//! precedence, diffing against the directory, holding or applying, all set-based.
//!
//! Only records whose content hash is new are staged (a no-change re-sync stages nothing and
//! writes nothing). When anything changed, the directory is recomputed from every source's
//! records in SQL, which keeps memory flat as the directory grows (DuckDB spills to disk past
//! its memory limit), and the diff is field by field in long form (`person_values`).

use std::collections::HashMap;

use duckdb::types::Value;
use duckdb::{Appender, appender_params_from_iter, params};

use super::{Store, StoreError};
use crate::config::person::Field;

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
}

/// Collects a listing into temporary tables while it is fetched.
pub struct Staging<'a> {
    stage: Appender<'a>,
    custom: Appender<'a>,
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
    /// Stages a new or changed record.
    pub fn stage(&mut self, r: &StagedRecord<'_>) -> Result<(), StoreError> {
        let mut row: Vec<Value> = Vec::with_capacity(Field::ALL.len() + 5);
        row.push(Value::Text(r.record_key.to_string()));
        row.push(Value::BigInt(r.hash));
        row.push(Value::Text(r.outcome.as_str().to_string()));
        for i in 0..Field::ALL.len() {
            row.push(match r.values.get(i) {
                Some(Some(v)) => Value::Text(v.clone()),
                _ => Value::Null,
            });
        }
        row.push(r.problems.clone().map_or(Value::Null, Value::Text));
        row.push(Value::Text(r.raw.to_string()));
        self.stage.append_row(appender_params_from_iter(row))?;
        for (name, value) in r.custom {
            self.custom
                .append_row(params![r.hash, name.as_str(), value.as_str()])?;
        }
        self.staged += 1;
        Ok(())
    }

    /// Records staged so far.
    pub fn staged(&self) -> u64 {
        self.staged
    }

    /// Flushes the appenders.
    pub fn finish(mut self) -> Result<u64, StoreError> {
        self.stage.flush()?;
        self.custom.flush()?;
        Ok(self.staged)
    }
}

/// What a sync asks the store to do with a staged listing.
#[derive(Debug, Clone)]
pub struct ApplyInput<'a> {
    /// The source.
    pub source: &'a str,
    /// Hashes of stored records seen again in this listing.
    pub seen: &'a [i64],
    /// The run's start, UTC, `YYYY-MM-DD HH:MM:SS.ffffff`.
    pub now: String,
    /// Today in the company time zone, `YYYY-MM-DD`.
    pub today: String,
    /// `(field, source, rank)`; field `*` is the default order.
    pub precedence: &'a [(String, String, i32)],
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
    /// The change events written (or, planned, that would be), with their endpoints.
    pub events: Vec<(crate::events::NewEvent, Vec<String>)>,
}

/// The status a person has: the HRIS's status, corrected by the dates (an `active` person
/// whose start date is ahead is a pre-hire; anyone whose end date has passed has left), or
/// derived from the dates when the HRIS gives none. `$today` is bound as a string.
const DERIVE_STATUS: &str = "CASE
  WHEN en IS NOT NULL AND en < $today AND coalesce(st, '') <> 'terminated' THEN 'terminated'
  WHEN st IS NULL AND sd IS NOT NULL AND sd > $today THEN 'pre_hire'
  WHEN st = 'active' AND sd IS NOT NULL AND sd > $today THEN 'pre_hire'
  WHEN st IS NULL THEN 'active'
  ELSE st END";

impl Store {
    /// The content hashes of a source's stored records.
    pub fn known_hashes(&self, source: &str) -> Result<HashMap<i64, bool>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT content_hash FROM source_records WHERE source = ?")?;
        let rows = stmt.query_map([source], |r| r.get::<_, i64>(0))?;
        let mut out = HashMap::new();
        for h in rows {
            out.insert(h?, false);
        }
        Ok(out)
    }

    /// Number of a source's stored records.
    pub fn record_count(&self, source: &str) -> Result<u64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM source_records WHERE source = ?",
            [source],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// True when some person's derived status would change today although no record did
    /// (a start date reached, an end date passed).
    pub fn status_due(&self, today: &str) -> Result<bool, StoreError> {
        let sql = format!(
            "SELECT count(*) FROM (
               SELECT status, hris_status AS st, start_date::VARCHAR AS sd, end_date::VARCHAR AS en
               FROM people WHERE len(coalesce(sources, [])) > 0)
             WHERE status IS DISTINCT FROM ({})",
            DERIVE_STATUS.replace("$today", "$1")
        );
        let n: i64 = self.conn.query_row(&sql, [today], |r| r.get(0))?;
        Ok(n > 0)
    }

    /// Creates the temporary staging tables and returns appenders into them.
    pub fn begin_staging(&self) -> Result<Staging<'_>, StoreError> {
        let text_fields = Field::ALL
            .iter()
            .map(|f| format!("{} VARCHAR", f.name()))
            .collect::<Vec<_>>()
            .join(", ");
        self.conn.execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE stage (record_key VARCHAR, content_hash BIGINT, outcome VARCHAR, {text_fields}, problems VARCHAR, raw VARCHAR);
             CREATE OR REPLACE TEMP TABLE stage_custom (content_hash BIGINT, name VARCHAR, value VARCHAR);
             CREATE OR REPLACE TEMP TABLE seen (hash BIGINT);"
        ))?;
        Ok(Staging {
            stage: self
                .conn
                .appender_to_catalog_and_db("stage", "temp", "main")?,
            custom: self
                .conn
                .appender_to_catalog_and_db("stage_custom", "temp", "main")?,
            staged: 0,
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
            "INSERT INTO sync_runs VALUES (?, ?, ?::TIMESTAMP, ?::TIMESTAMP, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    pub fn apply(&self, input: &ApplyInput<'_>, run: &mut RunRow) -> Result<Applied, StoreError> {
        self.conn.execute_batch("BEGIN TRANSACTION")?;
        match self.apply_in_tx(input, run) {
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
        {
            let mut app = c.appender_to_catalog_and_db("seen", "temp", "main")?;
            for h in input.seen {
                app.append_row([*h])?;
            }
            app.flush()?;
        }
        c.execute_batch(
            "CREATE OR REPLACE TEMP TABLE precedence (field VARCHAR, source VARCHAR, rank INTEGER)",
        )?;
        {
            let mut app = c.appender_to_catalog_and_db("precedence", "temp", "main")?;
            for (f, src, rank) in input.precedence {
                app.append_row(params![f.as_str(), src.as_str(), *rank])?;
            }
            app.flush()?;
        }

        // The source's new listing: unchanged stored rows, staged rows (first seen inherited
        // by key), and stored rows carried over for records that failed to map.
        c.execute(
            "CREATE OR REPLACE TEMP TABLE new_s AS
             SELECT * FROM source_records WHERE source = $1 AND content_hash IN (SELECT hash FROM seen)
             UNION ALL BY NAME
             SELECT st.*, $1 AS source, coalesce(o.first_seen, $2::TIMESTAMP) AS first_seen,
                    $2::TIMESTAMP AS last_changed, $3::BIGINT AS sync_run
             FROM stage st LEFT JOIN (
               SELECT record_key, min(first_seen) AS first_seen FROM source_records
               WHERE source = $1 GROUP BY record_key) o USING (record_key)",
            params![s, now, run.id],
        )?;
        c.execute(
            "INSERT INTO new_s BY NAME
             SELECT o.* FROM source_records o
             WHERE o.source = $1 AND o.outcome = 'kept'
               AND o.content_hash NOT IN (SELECT hash FROM seen)
               AND o.record_key NOT IN (SELECT record_key FROM new_s WHERE outcome = 'kept')
               AND (o.record_key IN (SELECT record_key FROM new_s WHERE outcome = 'failed')
                    OR EXISTS (SELECT 1 FROM new_s WHERE outcome = 'failed' AND record_key LIKE '#%'))",
            [s],
        )?;

        let mut applied = Applied::default();
        let (kept, excluded, failed): (i64, i64, i64) = c.query_row(
            "SELECT count(*) FILTER (WHERE outcome = 'kept'), count(*) FILTER (WHERE outcome = 'excluded'),
                    count(*) FILTER (WHERE outcome = 'failed') FROM new_s",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        run.kept = kept as u64;
        run.excluded = excluded as u64;
        run.failed = failed as u64;
        self.check_coverage(input, kept as u64, &mut applied)?;
        if applied.coverage_failed.is_some() {
            return Ok(applied);
        }
        if !applied.coverage.is_empty() {
            run.coverage = Some(applied.coverage.join("\n"));
        }
        let c = &self.conn;
        let (before, removals): (i64, i64) = c.query_row(
            "WITH o AS (SELECT DISTINCT work_email FROM source_records WHERE source = $1 AND outcome = 'kept'),
                  n AS (SELECT DISTINCT work_email FROM new_s WHERE outcome = 'kept')
             SELECT (SELECT count(*) FROM o), (SELECT count(*) FROM o WHERE work_email NOT IN (SELECT work_email FROM n))",
            [s],
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
                    "{removals} of {before} people of `{s}` ({:.0}%) would be removed, more than the {:.0}% allowed; nothing was applied (help: check with `roster plan --source {s}`; if the removals are real, run `roster sync --source {s} --allow-removals`)",
                    removals as f64 * 100.0 / before as f64,
                    input.max_removals * 100.0
                ));
            }
        }
        if applied.held.is_some() && !input.dry_run {
            return Ok(applied);
        }

        // A source's first applied sync is a baseline: no change events (see `events`).
        let baseline: i64 = c.query_row(
            "SELECT count(*) FROM sync_runs WHERE source = $1 AND outcome IN ('applied', 'unchanged')",
            [s],
            |r| r.get(0),
        )?;
        let baseline = baseline == 0;
        let routing = self.routing.clone();
        let want_changes = input.want_changes || (routing.is_some() && !baseline);
        let want_people = want_changes || routing.is_some();

        self.merge(input, run)?;
        let c = &self.conn;

        // Counts per person.
        let mut stmt = c.prepare(
            "WITH cur AS (SELECT DISTINCT work_email FROM person_values WHERE valid_to IS NULL)
             SELECT ch.work_email,
                    CASE WHEN ch.work_email NOT IN (SELECT work_email FROM cur) THEN 'created'
                         WHEN bool_or(ch.field = 'status' AND ch.new_value = 'terminated') THEN 'terminated'
                         WHEN bool_or(ch.field = 'status' AND ch.old_value = 'terminated') THEN 'reactivated'
                         ELSE 'updated' END
             FROM changes ch GROUP BY ch.work_email ORDER BY ch.work_email",
        )?;
        let kinds = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut by_person: Vec<(String, PersonChange, Vec<Change>)> = Vec::new();
        for k in kinds {
            let (email, kind) = k?;
            let kind = match kind.as_str() {
                "created" => PersonChange::Created,
                "terminated" => PersonChange::Terminated,
                "reactivated" => PersonChange::Reactivated,
                _ => PersonChange::Updated,
            };
            match kind {
                PersonChange::Created => applied.created += 1,
                PersonChange::Updated => applied.updated += 1,
                PersonChange::Terminated => applied.terminated += 1,
                PersonChange::Reactivated => applied.reactivated += 1,
            }
            if want_people {
                by_person.push((email, kind, Vec::new()));
            }
        }
        if want_changes && !by_person.is_empty() {
            let index: HashMap<String, usize> = by_person
                .iter()
                .enumerate()
                .map(|(i, p)| (p.0.clone(), i))
                .collect();
            let mut stmt = c.prepare(
                "SELECT work_email, field, old_value, new_value, source FROM changes ORDER BY work_email, field",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Change {
                    work_email: r.get(0)?,
                    field: r.get(1)?,
                    old: r.get(2)?,
                    new: r.get(3)?,
                    source: r.get(4)?,
                })
            })?;
            for ch in rows {
                let ch = ch?;
                if let Some(&i) = index.get(&ch.work_email) {
                    by_person[i].2.push(ch);
                }
            }
        }
        let n_changes: i64 = c.query_row("SELECT count(*) FROM changes", [], |r| r.get(0))?;
        applied.unchanged = n_changes == 0 && run.changed_records == 0;

        // History: close changed values, open new ones (a dry run with events goes this far
        // too, inside the transaction it rolls back, to describe the people after the change).
        if !input.dry_run || routing.is_some() {
            c.execute(
                "UPDATE person_values SET valid_to = $1::TIMESTAMP FROM changes ch
                 WHERE person_values.work_email = ch.work_email AND person_values.field = ch.field
                   AND person_values.valid_to IS NULL AND ch.old_value IS NOT NULL",
                [now],
            )?;
            c.execute(
                "INSERT INTO person_values
                 SELECT work_email, field, new_value, source, $1::TIMESTAMP, NULL, $2 FROM changes
                 WHERE new_value IS NOT NULL",
                params![now, run.id],
            )?;
        }
        if let Some(routing) = &routing {
            if n_changes > 0 {
                // The people table as the change leaves it (rolled back with a dry run).
                self.rebuild_people()?;
            }
            let people = super::events::people_snapshots(
                &self.conn,
                "SELECT DISTINCT work_email FROM changes",
            )?;
            let cx = crate::events::ChangeContext {
                source: s,
                sync_run: run.id,
                baseline,
                created_on_first_sync: routing.created_on_first_sync,
            };
            let empty = serde_json::Map::new();
            for (email, kind, changes) in &by_person {
                let person = people.get(email).unwrap_or(&empty);
                for ev in crate::events::person_events(&cx, email, *kind, changes, person) {
                    let endpoints = routing.route(&ev);
                    if !endpoints.is_empty() {
                        applied.events.push((ev, endpoints));
                    }
                }
            }
            if !input.dry_run {
                super::events::write_events(&self.conn, &applied.events, now)?;
            }
        }
        if input.want_changes {
            applied.people = by_person;
        }
        if input.dry_run {
            // Inside the transaction that is rolled back: list them for the plan.
            applied.problems = self.recompute_problems(run.id)?;
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

        // Apply: the source's records, the people table, data problems, the run.
        c.execute(
            "DELETE FROM source_records WHERE source = $1
               AND content_hash NOT IN (SELECT content_hash FROM new_s)",
            [s],
        )?;
        c.execute(
            "DELETE FROM source_custom WHERE source = $1
               AND content_hash NOT IN (SELECT content_hash FROM new_s)",
            [s],
        )?;
        c.execute(
            "INSERT INTO source_records BY NAME
             SELECT * FROM new_s WHERE content_hash IN (SELECT content_hash FROM stage)",
            [],
        )?;
        c.execute(
            "INSERT INTO source_custom SELECT $1, content_hash, name, value FROM stage_custom",
            [s],
        )?;
        if n_changes > 0 && routing.is_none() {
            self.rebuild_people()?;
        }
        self.set_meta("merge_key", input.merge_key)?;
        applied.problems = self.recompute_problems(run.id)?;
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

    /// Computes `merged` (every person's fields by precedence) and `changes` (against the
    /// current values) as temporary tables.
    fn merge(&self, input: &ApplyInput<'_>, _run: &RunRow) -> Result<(), StoreError> {
        let c = &self.conn;
        let s = input.source;
        c.execute(
            "CREATE OR REPLACE TEMP TABLE recs AS
             SELECT * FROM (
               SELECT * FROM source_records WHERE source <> $1 AND outcome = 'kept'
               UNION ALL BY NAME SELECT * FROM new_s WHERE outcome = 'kept')
             WHERE work_email IS NOT NULL
             QUALIFY row_number() OVER (PARTITION BY source, work_email ORDER BY record_key, content_hash) = 1",
            [s],
        )?;
        let unpivot_cols: Vec<&str> = Field::ALL
            .iter()
            .map(|f| f.name())
            .filter(|n| *n != "work_email")
            .collect();
        let sql = format!(
            "CREATE OR REPLACE TEMP TABLE merged AS
             WITH ids AS (
               SELECT source, employee_id, work_email FROM recs WHERE employee_id IS NOT NULL
               QUALIFY row_number() OVER (PARTITION BY source, employee_id ORDER BY record_key) = 1),
             resolved AS (
               SELECT r.* REPLACE (coalesce(m.work_email, r.manager_email) AS manager_email)
               FROM recs r LEFT JOIN ids m ON m.source = r.source AND m.employee_id = r.manager_id),
             custom AS (
               SELECT source, content_hash, name, value FROM source_custom WHERE source <> $1
               UNION ALL SELECT source, content_hash, name, value FROM source_custom WHERE source = $1
               UNION ALL SELECT $1, content_hash, name, value FROM stage_custom),
             long AS (
               SELECT source, work_email, field, value FROM (
                 UNPIVOT (SELECT source, work_email, {cols} FROM resolved)
                 ON {cols} INTO NAME field VALUE value)
               UNION ALL SELECT source, work_email, 'work_email', work_email FROM resolved
               UNION ALL SELECT r.source, r.work_email, 'custom.' || cu.name, cu.value
                 FROM resolved r JOIN custom cu ON cu.source = r.source AND cu.content_hash = r.content_hash)
             SELECT l.work_email, l.field,
                    arg_min(l.value, coalesce(pf.rank, pd.rank, 1000000)) AS value,
                    arg_min(l.source, coalesce(pf.rank, pd.rank, 1000000)) AS source
             FROM long l
             LEFT JOIN precedence pf ON pf.field = l.field AND pf.source = l.source
             LEFT JOIN precedence pd ON pd.field = '*' AND pd.source = l.source
             WHERE l.value IS NOT NULL
             GROUP BY l.work_email, l.field",
            cols = unpivot_cols.join(", ")
        );
        c.execute(&sql, [s])?;
        // The HRIS's status is kept as `hris_status`; `status` is derived with the dates.
        c.execute_batch("UPDATE merged SET field = 'hris_status' WHERE field = 'status'")?;
        c.execute(
            &format!(
                "INSERT INTO merged
                 SELECT work_email, 'status', {}, src FROM (
                   SELECT work_email,
                          max(value) FILTER (WHERE field = 'hris_status') AS st,
                          max(value) FILTER (WHERE field = 'start_date') AS sd,
                          max(value) FILTER (WHERE field = 'end_date') AS en,
                          coalesce(max(source) FILTER (WHERE field = 'hris_status'), 'roster') AS src
                   FROM merged GROUP BY work_email)",
                DERIVE_STATUS.replace("$today", "$1")
            ),
            [input.today.as_str()],
        )?;
        // People no source lists any more have left; their last values stay.
        c.execute_batch(
            "INSERT INTO merged
             SELECT work_email, field,
                    CASE WHEN field = 'status' THEN 'terminated' ELSE value END,
                    CASE WHEN field = 'status' THEN 'roster' ELSE source END
             FROM person_values
             WHERE valid_to IS NULL AND work_email NOT IN (SELECT work_email FROM merged);
             CREATE OR REPLACE TEMP TABLE changes AS
             SELECT coalesce(n.work_email, o.work_email) AS work_email,
                    coalesce(n.field, o.field) AS field,
                    o.value AS old_value, n.value AS new_value,
                    coalesce(n.source, o.source) AS source
             FROM merged n FULL OUTER JOIN
                  (SELECT work_email, field, value, source FROM person_values WHERE valid_to IS NULL) o
               ON n.work_email = o.work_email AND n.field = o.field
             WHERE n.value IS DISTINCT FROM o.value;",
        )?;
        Ok(())
    }

    /// Rebuilds `people` from the current values.
    fn rebuild_people(&self) -> Result<(), StoreError> {
        let cols = Field::ALL
            .iter()
            .map(|f| {
                let cast = if f.kind() == crate::config::person::FieldKind::Date {
                    "::DATE"
                } else {
                    ""
                };
                format!(
                    "max(value) FILTER (WHERE field = '{n}'){cast} AS {n}",
                    n = f.name()
                )
            })
            .collect::<Vec<_>>()
            .join(",\n ");
        let sql = format!(
            "DELETE FROM people;
             INSERT INTO people BY NAME SELECT * FROM (
             WITH cur AS (SELECT * FROM person_values WHERE valid_to IS NULL),
             times AS (SELECT work_email, min(valid_from) AS first_seen,
                              max(greatest(valid_from, coalesce(valid_to, valid_from))) AS last_changed
                       FROM person_values GROUP BY work_email),
             src AS (SELECT work_email, list(DISTINCT source ORDER BY source) AS sources,
                            map_from_entries(list((source, employee_id)) FILTER (WHERE employee_id IS NOT NULL)) AS employee_ids
                     FROM recs GROUP BY work_email),
             wide AS (
               SELECT work_email AS email_key, {cols},
                 max(value) FILTER (WHERE field = 'hris_status') AS hris_status,
                 map_from_entries(list((substr(field, 8), value) ORDER BY field) FILTER (WHERE field LIKE 'custom.%')) AS custom,
                 map_from_entries(list((field, source) ORDER BY field)) AS provenance
               FROM cur GROUP BY work_email)
             SELECT w.* EXCLUDE (email_key), coalesce(s.sources, []) AS sources, s.employee_ids,
                    t.first_seen, t.last_changed
             FROM wide w JOIN times t ON t.work_email = w.email_key
             LEFT JOIN src s ON s.work_email = w.email_key);"
        );
        self.conn.execute_batch(&sql)?;
        Ok(())
    }

    /// Recomputes `data_problems`. Returns how many there are.
    fn recompute_problems(&self, run: i64) -> Result<u64, StoreError> {
        let sql = "
          WITH recs_all AS (
            SELECT * FROM source_records WHERE source NOT IN (SELECT DISTINCT source FROM new_s)
            UNION ALL BY NAME SELECT * FROM new_s),
          cycles AS (
            WITH RECURSIVE walk(start, cur, depth, path) AS (
              SELECT work_email, manager_email, 1, [work_email] FROM people
              WHERE manager_email IS NOT NULL AND status <> 'terminated'
              UNION ALL
              SELECT w.start, p.manager_email, w.depth + 1, list_append(w.path, w.cur)
              FROM walk w JOIN people p ON p.work_email = w.cur
              WHERE p.manager_email IS NOT NULL AND NOT list_contains(w.path, w.cur) AND w.depth < 64)
            SELECT DISTINCT start FROM walk WHERE cur = start),
          roots AS (
            SELECT work_email FROM people
            WHERE status <> 'terminated' AND manager_email IS NULL)
          SELECT * FROM (
            SELECT source, record_key, work_email,
                   CASE WHEN work_email IS NULL THEN 'missing_work_email' ELSE 'unmappable_record' END AS kind,
                   NULL AS field, coalesce(problems, 'could not be mapped') AS detail, sync_run
            FROM recs_all WHERE outcome = 'failed'
            UNION ALL
            SELECT source, record_key, work_email, 'field_problem', NULL, problems, sync_run
            FROM recs_all WHERE outcome = 'kept' AND problems IS NOT NULL
            UNION ALL
            SELECT source, min(record_key), work_email, 'duplicate_work_email', 'work_email',
                   count(*) || ' records of ' || source || ' have this work email; the one with the lowest key (' || min(record_key) || ') is used',
                   max(sync_run)
            FROM recs_all WHERE outcome = 'kept' GROUP BY source, work_email HAVING count(*) > 1
            UNION ALL
            SELECT r.source, r.record_key, r.work_email, 'unresolved_manager', 'manager_id',
                   'manager id ' || r.manager_id || ' matches no record of ' || r.source
                     || CASE WHEN r.manager_email IS NULL THEN ' and no manager email is mapped'
                             ELSE ' and manager email ' || r.manager_email || ' is not in the directory' END,
                   r.sync_run
            FROM recs_all r
            WHERE r.outcome = 'kept' AND r.manager_id IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM recs_all m WHERE m.source = r.source AND m.outcome = 'kept' AND m.employee_id = r.manager_id)
              AND (r.manager_email IS NULL OR r.manager_email NOT IN (SELECT work_email FROM people))
            UNION ALL
            SELECT NULL, NULL, start, 'manager_cycle', 'manager_email',
                   'the management chain of ' || start || ' leads back to them', $1
            FROM cycles
            UNION ALL
            SELECT NULL, NULL, work_email, 'no_manager', 'manager_email',
                   'no manager, and ' || (SELECT count(*) FROM roots) || ' people have none (expected only at the top of the organisation)', $1
            FROM roots WHERE (SELECT count(*) FROM roots) > 1)";
        self.conn.execute("DELETE FROM data_problems", [])?;
        let n = self.conn.execute(
            &format!("INSERT INTO data_problems SELECT * FROM ({sql})"),
            [run],
        )?;
        Ok(n as u64)
    }

    /// Checks the mapping's coverage rules on the kept records of the new listing.
    fn check_coverage(
        &self,
        input: &ApplyInput<'_>,
        kept: u64,
        applied: &mut Applied,
    ) -> Result<(), StoreError> {
        if kept == 0 {
            return Ok(());
        }
        let mut fails = Vec::new();
        for (field, max_empty, fail) in input.coverage {
            let empty: i64 = if let Some(name) = field.strip_prefix("custom.") {
                self.conn.query_row(
                    "SELECT count(*) FROM new_s n WHERE n.outcome = 'kept' AND NOT EXISTS (
                       SELECT 1 FROM (SELECT content_hash, name FROM stage_custom
                                      UNION ALL SELECT content_hash, name FROM source_custom WHERE source = $1) cu
                       WHERE cu.content_hash = n.content_hash AND cu.name = $2)",
                    params![input.source, name],
                    |r| r.get(0),
                )?
            } else if Field::from_name(field).is_some() {
                self.conn.query_row(
                    &format!(
                        "SELECT count(*) FROM new_s WHERE outcome = 'kept' AND {field} IS NULL"
                    ),
                    [],
                    |r| r.get(0),
                )?
            } else {
                continue;
            };
            let share = empty as f64 / kept as f64;
            if share > *max_empty {
                let line = format!(
                    "`{field}` is empty in {empty} of {kept} records ({:.0}%, allowed {:.0}%)",
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

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM meta WHERE key = ?", [key])?;
        self.conn
            .execute("INSERT INTO meta VALUES (?, ?)", [key, value])?;
        Ok(())
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

    /// Drops the staging tables (after a failed fetch).
    pub fn discard_staging(&self) -> Result<(), StoreError> {
        self.conn.execute_batch(
            "DROP TABLE IF EXISTS temp.stage; DROP TABLE IF EXISTS temp.stage_custom; DROP TABLE IF EXISTS temp.seen;",
        )?;
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
    /// The error of a failed run.
    pub error: Option<String>,
    /// Why a run was held.
    pub held_reason: Option<String>,
    /// Coverage warnings.
    pub coverage: Option<String>,
    /// Hash of the effective config.
    pub config_version: Option<String>,
    /// Git commit of the config directory.
    pub config_commit: Option<String>,
}
