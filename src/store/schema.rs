//! Versioned migrations of the state database. Each migration runs once, in a transaction, in
//! order; `schema_migrations` records which ran. Never edit a released migration: add one.
//!
//! Tables (all timestamps are UTC):
//! - `source_records`: the last complete listing of each source, one row per provider record:
//!   its content hash, the outcome of mapping it (`kept`, `excluded`, `failed`), the mapped
//!   canonical values as text, problems, and the raw JSON.
//! - `source_custom`: custom fields of those records (long form).
//! - `person_values`: field-level history, long form; the current value of a field has
//!   `valid_to IS NULL`. Every change closes one row and opens another.
//! - `people`: the directory, one row per work email, rebuilt from `person_values`.
//! - `sync_runs`: one row per sync attempt (applied, unchanged, held, failed).
//! - `data_problems`: the current data-quality problems, recomputed after each applied sync.
//! - `events` (v2): the outbox; every event ever emitted, with its full data. Written in the
//!   same transaction as the change that causes it; the id is deterministic and unique, so
//!   an occurrence is stored once whatever the restarts.
//! - `deliveries` (v2): one row per (event, endpoint): state `pending`, `delivered` or
//!   `dead`, attempts, the next attempt's time, the last status and error.
//! - `endpoints` (v2): endpoints disabled by a `410 Gone`.
//! - `trigger_state` (v2): when each date trigger was first seen and last evaluated.

use crate::config::person::{Field, FieldKind};

/// The migrations, in order. The first element is the version.
pub fn migrations() -> Vec<(i32, String)> {
    vec![(1, v1()), (2, V2.to_string())]
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

fn v1() -> String {
    let text_fields = Field::ALL
        .iter()
        .map(|f| format!("{} VARCHAR", f.name()))
        .collect::<Vec<_>>()
        .join(",\n  ");
    let people = people_columns();
    format!(
        r#"
CREATE TABLE meta (
  key VARCHAR NOT NULL,
  value VARCHAR NOT NULL
);

CREATE TABLE source_records (
  source VARCHAR NOT NULL,
  record_key VARCHAR NOT NULL,
  content_hash BIGINT NOT NULL,
  outcome VARCHAR NOT NULL,
  {text_fields},
  problems VARCHAR,
  raw VARCHAR NOT NULL,
  first_seen TIMESTAMP NOT NULL,
  last_changed TIMESTAMP NOT NULL,
  sync_run BIGINT NOT NULL
);

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
