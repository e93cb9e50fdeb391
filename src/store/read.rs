//! Reading the published directory, read-only: what `roster events upcoming`, `roster
//! org-chart` and `roster explain` show. They open the published copy (like `roster query`),
//! so they work beside a running daemon, which holds the state database, and need no more
//! than read access to the directory file.
//!
//! Nothing here writes; temporary tables (a list of emails to read) live in the read-only
//! connection's own memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use duckdb::Connection;
use serde_json::{Map, Value};

use super::StoreError;

/// The published directory, open read-only.
pub struct Directory {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("path", &self.path)
            .finish()
    }
}

impl Directory {
    /// Opens a published directory (or any copy of the state database) read-only.
    pub fn open(path: &Path) -> Result<Directory, StoreError> {
        Ok(Directory {
            conn: super::open_readonly(path)?,
            path: path.to_path_buf(),
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every person with the given columns (as text), for date triggers.
    pub fn trigger_rows(&self, columns: &[String]) -> Result<Vec<Vec<Option<String>>>, StoreError> {
        super::events::trigger_rows(&self.conn, columns)
    }

    /// The people rows of these emails as JSON objects (empty fields left out).
    pub fn people_json(
        &self,
        emails: &[String],
    ) -> Result<HashMap<String, Map<String, Value>>, StoreError> {
        super::events::people_json(&self.conn, emails)
    }

    /// Everyone who has not left, as the org chart draws them.
    pub fn org_people(&self) -> Result<Vec<crate::org_chart::OrgPerson>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT work_email,
                    coalesce(nullif(display_name, ''),
                             nullif(trim(concat_ws(' ', first_name, last_name)), ''), work_email),
                    job_title, department, manager_email, coalesce(status, 'active'), worker_type,
                    start_date::VARCHAR
             FROM people WHERE coalesce(status, '') <> 'terminated'",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(crate::org_chart::OrgPerson {
                work_email: r.get(0)?,
                name: r.get(1)?,
                title: r.get(2)?,
                department: r.get(3)?,
                manager_email: r.get(4)?,
                status: r.get(5)?,
                worker_type: r.get(6)?,
                start_date: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The stored records that name `email` (any case): kept and failed records by their
    /// mapped work email, and excluded or failed ones whose raw JSON contains it (an excluded
    /// record is stored unmapped).
    pub fn records_of(&self, email: &str) -> Result<Vec<RecordRow>, StoreError> {
        let fields = crate::config::person::Field::ALL
            .iter()
            .map(|f| format!("{}::VARCHAR", f.name()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = self.conn.prepare(&format!(
            "SELECT source, record_key, outcome, problems, failed_fields, {fields}
             FROM source_records
             WHERE lower(work_email) = lower($1)
                OR (outcome <> 'kept' AND contains(lower(raw), lower($1)))
             ORDER BY source, record_key"
        ))?;
        let n = crate::config::person::Field::ALL.len();
        let rows = stmt.query_map([email], |r| {
            Ok(RecordRow {
                source: r.get(0)?,
                record_key: r.get(1)?,
                outcome: r.get(2)?,
                problems: r.get(3)?,
                failed_fields: r.get(4)?,
                values: (0..n)
                    .map(|i| r.get::<_, Option<String>>(5 + i))
                    .collect::<Result<_, _>>()?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The kept record of `source` whose employee id is `id` (a manager id resolves within its
    /// source; with duplicates, the lowest key): its record key and work email.
    pub fn record_by_employee_id(
        &self,
        source: &str,
        id: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT record_key, work_email FROM source_records
             WHERE source = ? AND employee_id = ? AND outcome = 'kept'
             ORDER BY record_key LIMIT 1",
        )?;
        let mut rows = stmt.query([source, id])?;
        Ok(match rows.next()? {
            Some(r) => Some((r.get(0)?, r.get(1)?)),
            None => None,
        })
    }

    /// A person's field history, oldest first: (field, value, source, from, to, sync run).
    pub fn history(&self, email: &str) -> Result<Vec<HistoryRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT field, value, source, strftime(valid_from, '%Y-%m-%d %H:%M:%S'),
                    strftime(valid_to, '%Y-%m-%d %H:%M:%S'), sync_run
             FROM person_values WHERE work_email = ? ORDER BY valid_from, field",
        )?;
        let rows = stmt.query_map([email], |r| {
            Ok(HistoryRow {
                field: r.get(0)?,
                value: r.get(1)?,
                source: r.get(2)?,
                valid_from: r.get(3)?,
                valid_to: r.get(4)?,
                sync_run: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The data problems about a person or one of these records: (kind, source, record key,
    /// field, detail).
    pub fn problems_of(
        &self,
        email: &str,
        records: &[(String, String)],
    ) -> Result<Vec<[Option<String>; 5]>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT kind, source, record_key, field, detail FROM data_problems
             WHERE lower(work_email) = lower(?) OR (source = ? AND record_key = ?)
             ORDER BY kind, source, record_key",
        )?;
        let mut out: Vec<[Option<String>; 5]> = Vec::new();
        let none = (String::new(), String::new());
        for (source, key) in records.iter().chain(records.is_empty().then_some(&none)) {
            let rows = stmt.query_map([email, source, key], |r| {
                Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?])
            })?;
            for row in rows {
                let row = row?;
                if !out.contains(&row) {
                    out.push(row);
                }
            }
        }
        Ok(out)
    }

    /// Each source's baseline run (its first applied sync: no person events), by source.
    pub fn baseline_runs(&self) -> Result<HashMap<String, i64>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT source, min(id) FROM sync_runs WHERE outcome IN ('applied', 'unchanged')
             GROUP BY source",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// One stored record, as `roster explain` shows it.
#[derive(Debug, Clone)]
pub struct RecordRow {
    /// The source.
    pub source: String,
    /// Its key (employee id, else work email, else `#hash`).
    pub record_key: String,
    /// `kept`, `excluded`, `failed`.
    pub outcome: String,
    /// Problems or the filter's reason, one per line.
    pub problems: Option<String>,
    /// Fields whose value failed to convert (the previous version's value stands).
    pub failed_fields: Option<String>,
    /// Mapped values as text, in `Field::ALL` order.
    pub values: Vec<Option<String>>,
}

/// One row of a person's history.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    /// The field.
    pub field: String,
    /// Its value.
    pub value: String,
    /// The source that set it.
    pub source: String,
    /// From (UTC).
    pub valid_from: String,
    /// Until (UTC; None: current).
    pub valid_to: Option<String>,
    /// The run that set it.
    pub sync_run: i64,
}

/// What `roster plan --offline` reads from its copy of the state (`crate::offline`).
impl super::Store {
    /// The stored records of a source: record key, content hash and raw JSON, in key order.
    pub fn raw_records(&self, source: &str) -> Result<Vec<(String, i64, String)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT record_key, content_hash, raw FROM source_records WHERE source = ?
             ORDER BY first_seen, record_key",
        )?;
        let rows = stmt.query_map([source], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The problems of a source's last listing (`source_problems`), to carry them through a
    /// re-mapping that has no listing of its own.
    pub fn listing_problems(
        &self,
        source: &str,
    ) -> Result<Vec<super::sync::ListingProblem>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT kind, record_key, field, detail FROM source_problems WHERE source = ?",
        )?;
        let rows = stmt.query_map([source], |r| {
            Ok(super::sync::ListingProblem {
                kind: r.get(0)?,
                record_key: r.get(1)?,
                field: r.get(2)?,
                detail: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every current data problem, as one line each (kind, who, detail), sorted.
    pub fn problem_lines(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT kind || ': ' || coalesce(source || ' ', '')
                    || coalesce(work_email, 'record ' || record_key, '') || ': '
                    || coalesce(field || ': ', '') || detail
             FROM data_problems ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
