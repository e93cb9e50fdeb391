//! Versioned migrations of the state database. Each migration runs once, in a transaction, in
//! order; `schema_migrations` records which ran. Never edit a released migration: add one.
//!
//! Tables (all timestamps are UTC):
//! - `source_records`: the last complete listing of each source, one row per provider record:
//!   its content hash, the outcome of mapping it (`kept`, `excluded`, `failed`), the mapped
//!   canonical values as text, problems, and the raw JSON.
//! - `source_custom`: custom fields of those records (long form).
//! - `person_values` (a view since v5, over the table `value_history`): field-level history,
//!   long form; the current value of a field has `valid_to IS NULL`. Every change closes one
//!   row and opens another.
//! - `people`: the directory, one row per work email; since v5 also the only place a
//!   person's first values are kept. Since v7 a view over `person_rows` and
//!   `provenance_sets`.
//! - `sync_runs`: one row per sync attempt (applied, unchanged, held, failed).
//! - `data_problems`: the current data-quality problems, brought up to date by each applied sync.
//! - `events` (v2): the outbox; every event ever emitted, with its full data. Written in the
//!   same transaction as the change that causes it; the id is deterministic and unique, so
//!   an occurrence is stored once whatever the restarts.
//! - `deliveries` (v2): one row per (event, endpoint): state `pending`, `delivered` or
//!   `dead`, attempts, the next attempt's time, the last status and error.
//! - `endpoints` (v2): endpoints disabled by a `410 Gone`.
//! - `trigger_state` (v2): when each date trigger was first seen and last evaluated.
//!
//! v3 names the compression of the two big tables' text columns (same columns, rewritten):
//! `source_records.raw` is zstd (JSON records share their keys: 9x smaller than DuckDB's
//! own choice, and the commit of a first sync compresses it in half the time), and
//! `person_values`' text is dict_fsst, what DuckDB picks anyway, without trying the others
//! for every row group first (a quarter less time to append 2.3 M rows).
//!
//! v4 (sync integrity):
//! - `source_records.failed_fields`: the canonical fields of a kept record whose value failed
//!   to convert (comma-separated); the record keeps the previous version's value for them.
//! - `source_problems`: problems of a source's last listing that belong to no single stored
//!   record (a record key listed twice, related records sharing a join key), replaced by
//!   each applied or unchanged run of the source.
//! - `directory_info`: one row, the last run that changed the directory (id, source, time):
//!   published with the directory, so readers see how fresh it is, and compared with the
//!   published copy to republish after a crash between commit and publish.
//! - `sync_runs.error_code`: a stable code for a failed run (`error` is Roster's own words).
//!
//! v5 (no history rows for first values): the table `person_values` becomes `value_history`
//! and holds only what changes wrote: a value that replaced another or an empty one (open
//! while current), and the value it replaced (closed). A person's first values live in
//! `people` alone: a first sync of 100k people wrote 2.3 M history rows, most of its commit.
//! The view `person_values` shows the full history as before: `value_history` plus each
//! current value that no history row has opened (a first value), from `people`, in force since
//! the person's `first_seen`. Existing rows stay valid (every current value has its open row).
//!
//! v6 (incremental reads): `sync_runs.listing` says how a run read its source (`full`, or
//! `incremental` since the cursor in `sync_runs.since`), and `sync_runs.mapping` is the
//! fingerprint of the mapping it used. An incremental read's cursor is the start of the
//! source's last committed run (`applied` or `unchanged`), so it moves only when a run
//! commits; a full read is due when the last committed full read is `full_every` old or used
//! another mapping. Runs before v6 have no `listing`: they were full reads.
//!
//! v7 (provenance kept once per distinct map): `people` becomes a view over the table
//! `person_rows`, whose `provenance_id` points into `provenance_sets` (`id`, `provenance`).
//! A directory has a handful of distinct provenance maps (every field from the one source
//! that has it: 3 at 100k people in the benchmark), but writing the map on every row cost
//! about 0.65 s of a 100k first sync of 6.2 s (0.4 s appending, 0.25 s at the commit): 44
//! strings a person through the C API, DuckDB checking each map's keys, and compressing a
//! 2.2 M-entry list at the commit. The view gives `people`
//! the same columns, in the same order, so `provenance['job_title']` and
//! `map_keys(provenance)` work as before. The merge interns each person's map
//! (`batch::Provenances`) and deletes sets nobody points at any more.

use crate::config::person::{Field, FieldKind};

/// The migrations, in order. The first element is the version.
pub fn migrations() -> Vec<(i32, String)> {
    vec![
        (1, v1()),
        (2, V2.to_string()),
        (3, v3()),
        (4, V4.to_string()),
        (5, v5()),
        (6, V6.to_string()),
        (7, v7()),
    ]
}

/// The canonical columns of `people`, typed, in `Field::ALL` order.
pub fn people_columns() -> String {
    Field::ALL
        .iter()
        .map(|f| {
            let ty = if f.kind() == FieldKind::Date {
                "DATE"
            } else {
                "VARCHAR"
            };
            format!("{} {ty}", f.name())
        })
        .collect::<Vec<_>>()
        .join(",\n  ")
}

/// The canonical fields as text columns (how `source_records` keeps mapped values).
fn text_columns() -> String {
    Field::ALL
        .iter()
        .map(|f| format!("{} VARCHAR", f.name()))
        .collect::<Vec<_>>()
        .join(",\n  ")
}

/// `CREATE TABLE` of `source_records` under `name`, `raw` of type `raw` (v1 and v3).
fn source_records(name: &str, raw: &str) -> String {
    let text_fields = text_columns();
    format!(
        "CREATE TABLE {name} (
  source VARCHAR NOT NULL,
  record_key VARCHAR NOT NULL,
  content_hash BIGINT NOT NULL,
  outcome VARCHAR NOT NULL,
  {text_fields},
  problems VARCHAR,
  raw {raw},
  first_seen TIMESTAMP NOT NULL,
  last_changed TIMESTAMP NOT NULL,
  sync_run BIGINT NOT NULL
);"
    )
}

fn v1() -> String {
    let source_records = source_records("source_records", "VARCHAR NOT NULL");
    let people = people_columns();
    format!(
        r#"
CREATE TABLE meta (
  key VARCHAR NOT NULL,
  value VARCHAR NOT NULL
);

{source_records}

CREATE TABLE source_custom (
  source VARCHAR NOT NULL,
  content_hash BIGINT NOT NULL,
  name VARCHAR NOT NULL,
  value VARCHAR NOT NULL
);

CREATE TABLE person_values (
  work_email VARCHAR NOT NULL,
  field VARCHAR NOT NULL,
  value VARCHAR NOT NULL,
  source VARCHAR NOT NULL,
  valid_from TIMESTAMP NOT NULL,
  valid_to TIMESTAMP,
  sync_run BIGINT NOT NULL
);

CREATE TABLE people (
  {people},
  hris_status VARCHAR,
  custom MAP(VARCHAR, VARCHAR),
  employee_ids MAP(VARCHAR, VARCHAR),
  sources VARCHAR[],
  provenance MAP(VARCHAR, VARCHAR),
  first_seen TIMESTAMP,
  last_changed TIMESTAMP
);

CREATE TABLE sync_runs (
  id BIGINT NOT NULL,
  source VARCHAR NOT NULL,
  started_at TIMESTAMP NOT NULL,
  finished_at TIMESTAMP,
  outcome VARCHAR NOT NULL,
  pages BIGINT,
  records BIGINT,
  kept BIGINT,
  excluded BIGINT,
  failed BIGINT,
  changed_records BIGINT,
  created BIGINT,
  updated BIGINT,
  terminated BIGINT,
  duration_ms BIGINT,
  error VARCHAR,
  held_reason VARCHAR,
  coverage VARCHAR,
  config_version VARCHAR,
  config_commit VARCHAR,
  roster_version VARCHAR
);

CREATE TABLE data_problems (
  source VARCHAR,
  record_key VARCHAR,
  work_email VARCHAR,
  kind VARCHAR NOT NULL,
  field VARCHAR,
  detail VARCHAR NOT NULL,
  sync_run BIGINT
);

CREATE VIEW active_people AS
  SELECT * FROM people WHERE status IN ('active', 'on_leave');

CREATE VIEW org_chart AS
  WITH RECURSIVE chain(work_email, display_name, manager_email, depth, path) AS (
    SELECT p.work_email, coalesce(p.display_name, p.first_name || ' ' || p.last_name), NULL::VARCHAR, 0,
           [p.work_email]
    FROM people p
    WHERE p.status <> 'terminated'
      AND (p.manager_email IS NULL
           OR p.manager_email NOT IN (SELECT work_email FROM people WHERE status <> 'terminated'))
    UNION ALL
    SELECT p.work_email, coalesce(p.display_name, p.first_name || ' ' || p.last_name), p.manager_email,
           c.depth + 1, list_append(c.path, p.work_email)
    FROM people p JOIN chain c ON p.manager_email = c.work_email
    WHERE p.status <> 'terminated' AND NOT list_contains(c.path, p.work_email) AND c.depth < 64
  )
  SELECT work_email, display_name, manager_email, depth, path AS chain FROM chain;

CREATE VIEW upcoming_dates AS
  WITH dates AS (
    SELECT work_email, display_name, status, worker_type, department, 'start_date' AS kind,
           start_date AS date, NULL::INTEGER AS years
      FROM people WHERE start_date IS NOT NULL AND status <> 'terminated'
    UNION ALL
    SELECT work_email, display_name, status, worker_type, department, 'end_date', end_date, NULL
      FROM people WHERE end_date IS NOT NULL
    UNION ALL
    SELECT work_email, display_name, status, worker_type, department, 'probation_end',
           probation_end_date, NULL
      FROM people WHERE probation_end_date IS NOT NULL AND status <> 'terminated'
    UNION ALL
    SELECT work_email, display_name, status, worker_type, department, 'birthday', d, NULL
      FROM (
        SELECT *, CASE WHEN b < (now()::TIMESTAMP::DATE) THEN (birth_date + to_years(y + 1))::DATE ELSE b END AS d
        FROM (SELECT *, year((now()::TIMESTAMP::DATE)) - year(birth_date) AS y,
                     (birth_date + to_years(year((now()::TIMESTAMP::DATE)) - year(birth_date)))::DATE AS b
              FROM people WHERE birth_date IS NOT NULL AND status IN ('active', 'on_leave'))
      )
    UNION ALL
    SELECT work_email, display_name, status, worker_type, department, 'work_anniversary', d,
           year(d) - year(start_date)
      FROM (
        SELECT *, CASE WHEN a < (now()::TIMESTAMP::DATE) THEN (start_date + to_years(y + 1))::DATE ELSE a END AS d
        FROM (SELECT *, year((now()::TIMESTAMP::DATE)) - year(start_date) AS y,
                     (start_date + to_years(year((now()::TIMESTAMP::DATE)) - year(start_date)))::DATE AS a
              FROM people WHERE start_date IS NOT NULL AND status IN ('active', 'on_leave'))
      )
  )
  SELECT * FROM dates WHERE date >= (now()::TIMESTAMP::DATE) ORDER BY date, kind, work_email;

CREATE VIEW raw_records AS
  SELECT source, record_key, outcome, work_email, content_hash, raw, problems, first_seen, last_changed
  FROM source_records;
"#
    )
}

fn v3() -> String {
    let source_records = source_records(
        "source_records_v3",
        "VARCHAR NOT NULL USING COMPRESSION zstd",
    );
    format!(
        r#"
{source_records}
INSERT INTO source_records_v3 SELECT * FROM source_records;
DROP TABLE source_records;
ALTER TABLE source_records_v3 RENAME TO source_records;

CREATE TABLE person_values_v3 (
  work_email VARCHAR NOT NULL USING COMPRESSION dict_fsst,
  field VARCHAR NOT NULL USING COMPRESSION dict_fsst,
  value VARCHAR NOT NULL USING COMPRESSION dict_fsst,
  source VARCHAR NOT NULL USING COMPRESSION dict_fsst,
  valid_from TIMESTAMP NOT NULL,
  valid_to TIMESTAMP,
  sync_run BIGINT NOT NULL
);
INSERT INTO person_values_v3 SELECT * FROM person_values;
DROP TABLE person_values;
ALTER TABLE person_values_v3 RENAME TO person_values;
"#
    )
}

const V4: &str = r#"
ALTER TABLE source_records ADD COLUMN failed_fields VARCHAR;
ALTER TABLE sync_runs ADD COLUMN error_code VARCHAR;

CREATE TABLE source_problems (
  source VARCHAR NOT NULL,
  kind VARCHAR NOT NULL,
  record_key VARCHAR,
  field VARCHAR,
  detail VARCHAR NOT NULL,
  sync_run BIGINT NOT NULL
);

CREATE TABLE directory_info (
  run_id BIGINT NOT NULL,
  source VARCHAR NOT NULL,
  applied_at TIMESTAMP NOT NULL,
  published_at TIMESTAMP,
  roster_version VARCHAR NOT NULL
);
"#;

const V6: &str = r#"
ALTER TABLE sync_runs ADD COLUMN listing VARCHAR;
ALTER TABLE sync_runs ADD COLUMN since VARCHAR;
ALTER TABLE sync_runs ADD COLUMN mapping VARCHAR;
"#;

fn v7() -> String {
    let people = people_columns();
    let view_cols = Field::ALL
        .iter()
        .map(|f| format!("r.{}", f.name()))
        .chain(
            [
                "r.hris_status",
                "r.custom",
                "r.employee_ids",
                "r.sources",
                "s.provenance",
                "r.first_seen",
                "r.last_changed",
            ]
            .map(str::to_string),
        )
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
CREATE TABLE provenance_sets (
  id BIGINT NOT NULL,
  provenance MAP(VARCHAR, VARCHAR) NOT NULL
);
INSERT INTO provenance_sets
  SELECT row_number() OVER (ORDER BY provenance::VARCHAR), provenance
  FROM (SELECT DISTINCT provenance FROM people WHERE provenance IS NOT NULL);
CREATE TABLE person_rows (
  {people},
  hris_status VARCHAR,
  custom MAP(VARCHAR, VARCHAR),
  employee_ids MAP(VARCHAR, VARCHAR),
  sources VARCHAR[],
  provenance_id BIGINT,
  first_seen TIMESTAMP,
  last_changed TIMESTAMP
);
INSERT INTO person_rows
  SELECT p.* REPLACE (s.id AS provenance)
  FROM people p LEFT JOIN provenance_sets s ON s.provenance = p.provenance;
DROP TABLE people;
CREATE VIEW people AS
  SELECT {view_cols}
  FROM person_rows r LEFT JOIN provenance_sets s ON s.id = r.provenance_id;
"#
    )
}

/// The current values of `people` in long form: `(work_email, field, value, source)`, one row
/// per key of `provenance` (every field the person has a value for: canonical, `hris_status`,
/// `custom.NAME`), dates as `YYYY-MM-DD`, and `first_seen`, of the people `filter` (a `WHERE`
/// clause on `people`, or empty) selects. The `person_values` view (v5). The merge reads the
/// same values from the stored rows, a person's provenance set naming the fields
/// (`store::sync`, `read_chunk`).
pub(crate) fn current_values_sql(filter: &str) -> String {
    let value = value_of("field");
    format!(
        "SELECT work_email, field,
           {value} AS value,
           map_extract_value(provenance, field) AS source, first_seen
         FROM (SELECT *, unnest(map_keys(provenance)) AS field FROM people {filter})"
    )
}

/// The value as text of the field named by `field` (canonical, `hris_status` or
/// `custom.NAME`), from the columns of `people`.
fn value_of(field: &str) -> String {
    let cases = Field::ALL
        .iter()
        .map(|f| {
            let name = f.name();
            if f.kind() == FieldKind::Date {
                format!("WHEN '{name}' THEN {name}::VARCHAR")
            } else {
                format!("WHEN '{name}' THEN {name}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "CASE {field} {cases} WHEN 'hris_status' THEN hris_status
             ELSE map_extract_value(custom, substr({field}, 8)) END"
    )
}

fn v5() -> String {
    let current = current_values_sql("");
    format!(
        r#"
ALTER TABLE person_values RENAME TO value_history;
ALTER TABLE value_history ALTER COLUMN sync_run DROP NOT NULL;
CREATE VIEW person_values AS
  SELECT work_email, field, value, source, valid_from, valid_to, sync_run FROM value_history
  UNION ALL
  SELECT c.work_email, c.field, c.value, c.source, c.first_seen, NULL::TIMESTAMP,
         (SELECT max(r.id) FROM sync_runs r WHERE r.started_at = c.first_seen)
  FROM ({current}) c
  WHERE c.value IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM value_history h
                    WHERE h.work_email = c.work_email AND h.field = c.field AND h.valid_to IS NULL);
"#
    )
}

const V2: &str = r#"
CREATE TABLE events (
  id VARCHAR PRIMARY KEY,
  type VARCHAR NOT NULL,
  created_at TIMESTAMP NOT NULL,
  work_email VARCHAR,
  source VARCHAR,
  sync_run BIGINT,
  trigger VARCHAR,
  occurrence DATE,
  scheduled_at TIMESTAMP,
  late BOOLEAN NOT NULL,
  data VARCHAR NOT NULL
);

CREATE TABLE deliveries (
  event_id VARCHAR NOT NULL,
  endpoint VARCHAR NOT NULL,
  state VARCHAR NOT NULL,
  attempts INTEGER NOT NULL,
  next_attempt_at TIMESTAMP,
  last_attempt_at TIMESTAMP,
  last_status INTEGER,
  last_error VARCHAR,
  delivered_at TIMESTAMP,
  PRIMARY KEY (event_id, endpoint)
);

CREATE TABLE endpoints (
  name VARCHAR PRIMARY KEY,
  disabled_at TIMESTAMP,
  disabled_reason VARCHAR
);

CREATE TABLE trigger_state (
  trigger VARCHAR PRIMARY KEY,
  first_seen TIMESTAMP NOT NULL,
  evaluated_until TIMESTAMP NOT NULL
);
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary directory and the state directory inside it.
    fn state_dir() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        (dir, state)
    }

    /// A state database as roster left it at schema `version`.
    fn database_at(state: &std::path::Path, version: i32) -> duckdb::Connection {
        let c = duckdb::Connection::open(state.join(crate::store::STATE_FILE)).unwrap();
        c.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)",
        )
        .unwrap();
        for (v, sql) in migrations().into_iter().filter(|m| m.0 <= version) {
            c.execute_batch(&sql).unwrap();
            c.execute(
                "INSERT INTO schema_migrations VALUES (?, now()::TIMESTAMP)",
                [v],
            )
            .unwrap();
        }
        c
    }

    #[test]
    fn v3_rewrites_a_v2_database_keeping_its_rows_and_naming_the_compression() {
        let (dir, state) = state_dir();
        {
            // A database as roster left it before v3.
            let c = database_at(&state, 2);
            c.execute(
                "INSERT INTO source_records (source, record_key, content_hash, outcome, work_email, raw, first_seen, last_changed, sync_run)
                 VALUES ('hr', '7', 42, 'kept', 'a@x.io', '{\"id\": 7}', TIMESTAMP '2026-01-02 03:04:05', TIMESTAMP '2026-01-02 03:04:05', 1)",
                [],
            )
            .unwrap();
            c.execute(
                "INSERT INTO person_values VALUES ('a@x.io', 'team', 'Core', 'hr', TIMESTAMP '2026-01-02 03:04:05', NULL, 1)",
                [],
            )
            .unwrap();
        }
        let store =
            crate::store::Store::open(&state, &dir.path().join("directory.duckdb")).unwrap();
        let c = &store.conn;
        let version: i32 = c
            .query_row("SELECT max(version) FROM schema_migrations", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(version, migrations().last().unwrap().0);
        let (key, raw, seen): (String, String, String) = c
            .query_row(
                "SELECT record_key, raw, first_seen::VARCHAR FROM raw_records WHERE source = 'hr'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((key.as_str(), raw.as_str()), ("7", "{\"id\": 7}"));
        assert_eq!(seen, "2026-01-02 03:04:05");
        let value: String = c
            .query_row(
                "SELECT value FROM person_values WHERE work_email = 'a@x.io' AND field = 'team' AND valid_to IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(value, "Core");
        let ddl = |table: &str| -> String {
            c.query_row(
                "SELECT sql FROM duckdb_tables() WHERE table_name = $1",
                [table],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert!(
            ddl("source_records").contains("raw VARCHAR USING COMPRESSION ZSTD"),
            "{}",
            ddl("source_records")
        );
        assert!(
            ddl("value_history").contains("\"value\" VARCHAR USING COMPRESSION DICT_FSST"),
            "{}",
            ddl("value_history")
        );
    }

    #[test]
    fn v7_keeps_each_distinct_provenance_once_and_people_reads_as_before() {
        let (dir, state) = state_dir();
        let people = "SELECT work_email, provenance, provenance['job_title'], status
                      FROM people ORDER BY work_email";
        let read = |c: &duckdb::Connection, sql: &str| -> Vec<Vec<String>> {
            let mut stmt = c
                .prepare(&format!("SELECT columns(*)::VARCHAR FROM ({sql})"))
                .unwrap();
            let n = stmt.column_count();
            stmt.query_map([], |r| {
                (0..n)
                    .map(|i| r.get::<_, Option<String>>(i).map(|v| v.unwrap_or_default()))
                    .collect()
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        };
        let before = {
            // A database as roster left it before v7: three people, two provenance maps.
            let c = database_at(&state, 6);
            c.execute_batch(
                "INSERT INTO people (work_email, job_title, status, sources, provenance, first_seen) VALUES
                   ('a@x.io', 'CEO', 'active', ['hr'], MAP {'job_title': 'hr', 'work_email': 'hr'}, TIMESTAMP '2026-01-02 03:04:05'),
                   ('b@x.io', 'CTO', 'active', ['hr'], MAP {'job_title': 'hr', 'work_email': 'hr'}, TIMESTAMP '2026-01-02 03:04:05'),
                   ('c@x.io', 'Dev', 'active', ['hr', 'it'], MAP {'job_title': 'it', 'work_email': 'hr'}, TIMESTAMP '2026-01-02 03:04:05');",
            )
            .unwrap();
            read(&c, people)
        };
        let store =
            crate::store::Store::open(&state, &dir.path().join("directory.duckdb")).unwrap();
        let c = &store.conn;
        assert_eq!(read(c, people), before);
        assert_eq!(
            read(
                c,
                "SELECT count(*), count(DISTINCT provenance) FROM provenance_sets"
            ),
            [["2", "2"]]
        );
        assert_eq!(
            read(c, "SELECT count(DISTINCT provenance_id) FROM person_rows"),
            [["2"]]
        );
        // The views over `people` read through the new view.
        assert_eq!(read(c, "SELECT count(*) FROM active_people"), [["3"]]);
        assert_eq!(
            read(
                c,
                "SELECT value, source FROM person_values WHERE work_email = 'c@x.io' AND field = 'job_title'"
            ),
            [["Dev", "it"]]
        );
        assert_eq!(
            read(
                c,
                "SELECT table_type FROM information_schema.tables WHERE table_name = 'people'"
            ),
            [["VIEW"]]
        );
    }
}
