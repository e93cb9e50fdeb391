//! The outbox: events, their deliveries per endpoint, disabled endpoints, trigger state.
//!
//! Events are written by the same transaction as the change that causes them (`write_events`
//! is called inside `apply`). Delivery workers each own an `Outbox` handle (their own
//! connection to the same database), so one endpoint's bookkeeping never waits for another's.
//!
//! Events are stored under `events::scoped_id(installation, key)`: the installation id is
//! random, made once per state database and kept in `meta`, so a rebuilt state or another
//! deployment never reuses the id of a different change.

use std::collections::{HashMap, HashSet};

use duckdb::{Connection, params};
use serde_json::{Map, Value};

use super::{Batched, Store, StoreError};
use crate::events::{NewEvent, scoped_id};

/// The `meta` key of the installation id.
const INSTALLATION_KEY: &str = "installation_id";

/// This state database's installation id, made on first use (32 random hex digits) and
/// kept in `meta`. Inside a transaction that rolls back, a new one is made next time, which
/// is fine: nothing that used it was kept.
pub(crate) fn installation_id(conn: &Connection) -> Result<String, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT value FROM meta WHERE key = ?")?;
    let mut rows = stmt.query([INSTALLATION_KEY])?;
    if let Some(r) = rows.next()? {
        return Ok(r.get(0)?);
    }
    let id = format!("{:032x}", random_u128());
    conn.execute("INSERT INTO meta VALUES (?, ?)", [INSTALLATION_KEY, &id])?;
    Ok(id)
}

/// 128 random bits from the kernel; `fastrand` (seeded from the OS by std) should
/// `/dev/urandom` be missing. The id only has to differ between installations, it guards
/// nothing.
fn random_u128() -> u128 {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)) {
        Ok(()) => u128::from_le_bytes(bytes),
        Err(_) => fastrand::u128(..),
    }
}

/// A delivery that is due.
#[derive(Debug, Clone)]
pub struct Due {
    /// The event id (`webhook-id`).
    pub event_id: String,
    /// The event type.
    pub kind: String,
    /// When the event was recorded (RFC 3339): the payload's `timestamp`.
    pub created_at: String,
    /// The full data (JSON).
    pub data: String,
    /// Attempts made so far.
    pub attempts: u32,
}

/// What one attempt did, to record.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// The event.
    pub event_id: String,
    /// `delivered`, `pending` (retry at `next_attempt_at`) or `dead`.
    pub state: &'static str,
    /// When the attempt was made (UTC, `YYYY-MM-DD HH:MM:SS.ffffff`).
    pub at: String,
    /// When to try again (pending only).
    pub next_attempt_at: Option<String>,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// What went wrong (never a secret, never the body sent).
    pub error: Option<String>,
}

/// One event with its deliveries, for `roster events`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventRow {
    /// Id.
    pub id: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Recorded at (UTC).
    pub created_at: String,
    /// The person.
    pub work_email: Option<String>,
    /// The trigger.
    pub trigger: Option<String>,
    /// The day a lifecycle event is about.
    pub occurrence: Option<String>,
    /// Caught up after downtime.
    pub late: bool,
    /// Per endpoint.
    pub deliveries: Vec<DeliveryRow>,
    /// The full data (only in `show`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// One delivery of an event.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryRow {
    /// Endpoint name.
    pub endpoint: String,
    /// `pending`, `delivered`, `dead`.
    pub state: String,
    /// Attempts made.
    pub attempts: i32,
    /// Next attempt (pending).
    pub next_attempt_at: Option<String>,
    /// Last HTTP status.
    pub last_status: Option<i32>,
    /// Last error.
    pub last_error: Option<String>,
    /// When it was delivered.
    pub delivered_at: Option<String>,
}

/// Counts per endpoint and state.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EndpointCounts {
    /// Waiting for an attempt or a retry.
    pub pending: u64,
    /// Delivered.
    pub delivered: u64,
    /// Dead-lettered.
    pub dead: u64,
    /// Disabled by a 410, with the reason.
    pub disabled: Option<String>,
}

/// Filters for `roster events list`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only deliveries in this state.
    pub state: Option<String>,
    /// Only this endpoint.
    pub endpoint: Option<String>,
    /// Only types matching this pattern (`person.*`).
    pub kind: Option<String>,
    /// Only this person.
    pub work_email: Option<String>,
    /// At most this many, newest first.
    pub limit: usize,
}

const TS: &str = "strftime(%s, '%Y-%m-%dT%H:%M:%SZ')";

fn ts(col: &str) -> String {
    TS.replace("%s", col)
}

/// Writes events and their deliveries in the current transaction, each under
/// `scoped_id(installation, key)`. An event already stored is skipped with its deliveries,
/// except deliveries to endpoints it has none for yet. "Already stored" includes an event
/// stored by a version before installation ids under its bare key (a date trigger's key did
/// not change): re-evaluating the catch-up window after an upgrade sends nothing twice.
/// Returns how many events were new.
pub(crate) fn write_events(
    conn: &Connection,
    events: &[(NewEvent, Vec<String>)],
    now: &str,
) -> Result<u64, StoreError> {
    if events.is_empty() {
        return Ok(0);
    }
    let installation = installation_id(conn)?;
    conn.execute_batch(
        "CREATE OR REPLACE TEMP TABLE ev_stage (id VARCHAR, key VARCHAR, type VARCHAR, work_email VARCHAR,
           source VARCHAR, sync_run BIGINT, trigger VARCHAR, occurrence VARCHAR,
           scheduled_at VARCHAR, late BOOLEAN, data VARCHAR);
         CREATE OR REPLACE TEMP TABLE dl_stage (event_id VARCHAR, endpoint VARCHAR);",
    )?;
    {
        // Duplicates are dropped here, not by a DISTINCT ON in SQL: that aggregate holds every
        // event's data and ran out of DuckDB's memory at 100k events.
        let ids: Vec<String> = events
            .iter()
            .map(|(e, _)| scoped_id(&installation, &e.id))
            .collect();
        let mut seen: HashSet<&str> = HashSet::with_capacity(events.len());
        let mut app = Batched::temp(conn, "ev_stage")?;
        for ((e, _), id) in events.iter().zip(&ids) {
            if !seen.insert(id.as_str()) {
                continue;
            }
            app.append_row(params![
                id,
                e.id,
                e.kind,
                e.work_email,
                e.source,
                e.sync_run,
                e.trigger,
                e.occurrence,
                e.scheduled_at,
                e.late,
                e.data.to_string(),
            ])?;
        }
        app.finish()?;
        let mut app = Batched::temp(conn, "dl_stage")?;
        let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(events.len());
        for ((_, endpoints), id) in events.iter().zip(&ids) {
            for ep in endpoints {
                if seen.insert((id.as_str(), ep.as_str())) {
                    app.append_row(params![id, ep])?;
                }
            }
        }
        app.finish()?;
    }
    // Events stored before installation ids keep their bare key as their id.
    conn.execute_batch(
        "UPDATE dl_stage SET event_id = s.key FROM ev_stage s
         WHERE dl_stage.event_id = s.id AND s.key IN (SELECT id FROM events);
         UPDATE ev_stage SET id = key WHERE key IN (SELECT id FROM events);",
    )?;
    let new = conn.execute(
        "INSERT INTO events
         SELECT id, type, $1::TIMESTAMP, work_email, source, sync_run, trigger,
                occurrence::DATE, scheduled_at::TIMESTAMPTZ::TIMESTAMP, late, data
         FROM ev_stage WHERE id NOT IN (SELECT id FROM events)",
        [now],
    )?;
    conn.execute(
        "INSERT INTO deliveries
         SELECT event_id, endpoint, 'pending', 0, $1::TIMESTAMP, NULL, NULL, NULL, NULL
         FROM dl_stage d
         WHERE NOT EXISTS (SELECT 1 FROM deliveries x WHERE x.event_id = d.event_id AND x.endpoint = d.endpoint)",
        [now],
    )?;
    Ok(new as u64)
}

/// The people rows of `emails` as JSON objects (empty fields left out), for event payloads.
pub(crate) fn people_snapshots(
    conn: &Connection,
    from_sql: &str,
) -> Result<HashMap<String, Map<String, Value>>, StoreError> {
    let (cols, rows) = super::value::execute(
        conn,
        &format!("SELECT * FROM people WHERE work_email IN ({from_sql})"),
    )?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let mut obj = Map::new();
        for (c, v) in cols.iter().zip(&row) {
            let j = super::value::json(v);
            let empty = match &j {
                Value::Null => true,
                Value::Object(m) => m.is_empty(),
                _ => false,
            };
            if !empty {
                obj.insert(c.clone(), j);
            }
        }
        if let Some(Value::String(email)) = obj.get("work_email") {
            out.insert(email.clone(), obj);
        }
    }
    Ok(out)
}

/// Every person with the given columns (as text), for date triggers: `custom.NAME` reads a
/// custom field. The state database's and the published directory's readers share it.
pub(crate) fn trigger_rows(
    conn: &Connection,
    columns: &[String],
) -> Result<Vec<Vec<Option<String>>>, StoreError> {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| match c.strip_prefix("custom.") {
            Some(name) => format!("custom['{}']::VARCHAR", name.replace('\'', "''")),
            None => format!("\"{}\"::VARCHAR", c.replace('"', "")),
        })
        .collect();
    let mut stmt = conn.prepare(&format!("SELECT {} FROM people", cols.join(", ")))?;
    let n = columns.len();
    let rows = stmt.query_map([], |r| {
        (0..n)
            .map(|i| r.get::<_, Option<String>>(i))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The people rows of these emails as JSON objects (a temporary table holds the emails, so
/// it works on a read-only connection too).
pub(crate) fn people_json(
    conn: &Connection,
    emails: &[String],
) -> Result<HashMap<String, Map<String, Value>>, StoreError> {
    if emails.is_empty() {
        return Ok(HashMap::new());
    }
    conn.execute_batch("CREATE OR REPLACE TEMP TABLE wanted (e VARCHAR)")?;
    {
        let mut app = Batched::temp(conn, "wanted")?;
        for e in emails {
            app.append_row([e])?;
        }
        app.finish()?;
    }
    people_snapshots(conn, "SELECT e FROM wanted")
}

impl Store {
    /// This state database's installation id (made on first use, kept in `meta`); event ids
    /// are scoped to it (`events::scoped_id`).
    pub fn installation_id(&self) -> Result<String, StoreError> {
        installation_id(&self.conn)
    }

    /// Writes events (e.g. fired date triggers) in their own transaction; returns how many
    /// were new.
    pub fn write_events(
        &self,
        events: &[(NewEvent, Vec<String>)],
        now: &str,
    ) -> Result<u64, StoreError> {
        self.in_tx(|s| write_events(&s.conn, events, now))
    }

    /// Runs `f` in a transaction: committed when it returns Ok, rolled back otherwise.
    pub(crate) fn in_tx<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.execute_batch("BEGIN TRANSACTION")?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                self.conn.execute_batch("ROLLBACK").ok();
                Err(e)
            }
        }
    }

    /// A handle on the outbox with its own connection, for a delivery worker.
    pub fn outbox(&self) -> Result<Outbox, StoreError> {
        Ok(Outbox {
            conn: super::clone_connection(&self.conn)?,
        })
    }

    /// Every person with the given columns (as text), for date triggers.
    pub fn trigger_rows(&self, columns: &[String]) -> Result<Vec<Vec<Option<String>>>, StoreError> {
        trigger_rows(&self.conn, columns)
    }

    /// The people rows of these emails as JSON objects.
    pub fn people_json(
        &self,
        emails: &[String],
    ) -> Result<HashMap<String, Map<String, Value>>, StoreError> {
        people_json(&self.conn, emails)
    }

    /// A trigger's state: (first seen, evaluated until), RFC 3339.
    pub fn trigger_state(&self, trigger: &str) -> Result<Option<(String, String)>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {}, {} FROM trigger_state WHERE trigger = ?",
            ts("first_seen"),
            ts("evaluated_until")
        ))?;
        let mut rows = stmt.query_map([trigger], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.next().transpose()?)
    }

    /// Records fired events and the trigger's new state in one transaction.
    pub fn record_trigger_run(
        &self,
        trigger: &str,
        first_seen: &str,
        evaluated_until: &str,
        events: &[(NewEvent, Vec<String>)],
        now: &str,
    ) -> Result<u64, StoreError> {
        self.in_tx(|s| {
            let n = write_events(&s.conn, events, now)?;
            s.conn.execute(
                "INSERT OR REPLACE INTO trigger_state VALUES (?, ?::TIMESTAMPTZ::TIMESTAMP, ?::TIMESTAMPTZ::TIMESTAMP)",
                params![trigger, first_seen, evaluated_until],
            )?;
            Ok(n)
        })
    }
}

/// The columns `event_row` reads, then one more: the data (JSON) or NULL.
fn event_columns() -> String {
    format!(
        "e.id, e.type, {}, e.work_email, e.trigger, e.occurrence::VARCHAR, e.late",
        ts("e.created_at")
    )
}

/// An event row of `list` and `show`, without its deliveries.
fn event_row(r: &duckdb::Row<'_>) -> duckdb::Result<EventRow> {
    Ok(EventRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        created_at: r.get(2)?,
        work_email: r.get(3)?,
        trigger: r.get(4)?,
        occurrence: r.get(5)?,
        late: r.get(6)?,
        deliveries: Vec::new(),
        data: r
            .get::<_, Option<String>>(7)?
            .and_then(|d| serde_json::from_str(&d).ok()),
    })
}

/// The outbox, seen by one delivery worker or `roster events`.
pub struct Outbox {
    conn: Connection,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbox")
    }
}

impl Outbox {
    /// The outbox of a published directory, read-only (`roster events list|show` while the
    /// daemon holds the state database).
    pub fn published(path: &std::path::Path) -> Result<Outbox, StoreError> {
        Ok(Outbox {
            conn: super::open_readonly(path)?,
        })
    }

    /// Another handle on the same database (its own connection), for another worker.
    pub fn try_clone(&self) -> Result<Outbox, StoreError> {
        Ok(Outbox {
            conn: super::clone_connection(&self.conn)?,
        })
    }

    /// Up to `limit` deliveries of `endpoint` due at `now`, oldest first.
    ///
    /// Two steps: pick the deliveries by their small columns, then read only those events'
    /// bodies by id. As one join, the body of every pending delivery's event went through
    /// the join and the top-N on each call (DuckDB 1.2 does not defer a wide column past a
    /// top-N), so draining a backlog of N read O(N²) bytes; an `IN` list of constants is a
    /// table filter, checked before `data` is read.
    pub fn due(&self, endpoint: &str, now: &str, limit: usize) -> Result<Vec<Due>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.event_id, d.attempts
             FROM deliveries d JOIN events e ON e.id = d.event_id
             WHERE d.endpoint = ? AND d.state = 'pending' AND d.next_attempt_at <= ?::TIMESTAMP
             ORDER BY d.next_attempt_at, e.created_at, d.event_id LIMIT ?",
        )?;
        let picked: Vec<(String, i32)> = stmt
            .query_map(params![endpoint, now, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        if picked.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; picked.len()].join(", ");
        let mut stmt = self.conn.prepare(&format!(
            "SELECT id, type, {}, data FROM events WHERE id IN ({marks})",
            ts("created_at")
        ))?;
        let mut events: HashMap<String, (String, String, String)> = stmt
            .query_map(duckdb::params_from_iter(picked.iter().map(|p| &p.0)), |r| {
                Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
            })?
            .collect::<Result<_, _>>()?;
        Ok(picked
            .into_iter()
            .filter_map(|(event_id, attempts)| {
                let (kind, created_at, data) = events.remove(&event_id)?;
                Some(Due {
                    event_id,
                    kind,
                    created_at,
                    data,
                    attempts: attempts.max(0) as u32,
                })
            })
            .collect())
    }

    /// The earliest pending attempt of `endpoint` (UTC `YYYY-MM-DD HH:MM:SS`), if any.
    pub fn next_due(&self, endpoint: &str) -> Result<Option<String>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT strftime(min(next_attempt_at), '%Y-%m-%d %H:%M:%S.%f') FROM deliveries
             WHERE endpoint = ? AND state = 'pending'",
            [endpoint],
            |r| r.get(0),
        )?)
    }

    /// Records attempts of `endpoint`, in one transaction: appended to a temporary table,
    /// then one set-based update (row-by-row updates are slow in a column store).
    pub fn record(&self, endpoint: &str, attempts: &[AttemptRecord]) -> Result<(), StoreError> {
        if attempts.is_empty() {
            return Ok(());
        }
        self.conn.execute_batch(
            "CREATE OR REPLACE TEMP TABLE attempt_stage (event_id VARCHAR, state VARCHAR,
               at_time VARCHAR, next_at VARCHAR, status INTEGER, error VARCHAR)",
        )?;
        {
            let mut app = Batched::temp(&self.conn, "attempt_stage")?;
            for a in attempts {
                app.append_row(params![
                    a.event_id,
                    a.state,
                    a.at,
                    a.next_attempt_at,
                    a.status.map(i32::from),
                    a.error
                ])?;
            }
            app.finish()?;
        }
        self.conn.execute(
            "UPDATE deliveries d SET state = s.state, attempts = d.attempts + 1,
               last_attempt_at = s.at_time::TIMESTAMP, next_attempt_at = s.next_at::TIMESTAMP,
               last_status = s.status, last_error = s.error,
               delivered_at = CASE WHEN s.state = 'delivered' THEN s.at_time::TIMESTAMP ELSE d.delivered_at END
             FROM attempt_stage s WHERE d.event_id = s.event_id AND d.endpoint = ?",
            [endpoint],
        )?;
        Ok(())
    }

    /// Removes what receivers answered from errors recorded by versions that quoted it
    /// (`the receiver answered HTTP 500 …: <their answer>`): an answer can echo the event's
    /// personal data, and `last_error` is published to every reader. Returns the rows
    /// changed; after the first run there are none, and the scan is of one column.
    pub fn forget_receiver_answers(&self) -> Result<u64, StoreError> {
        Ok(self.conn.execute(
            "UPDATE deliveries SET last_error = split_part(last_error, ': ', 1)
               || ' (the receiver''s answer, quoted by an older version, was removed: it can echo personal data)'
             WHERE last_error LIKE 'the receiver answered HTTP %: %'
               AND last_error NOT LIKE '%its answer is not recorded%'
               AND last_error NOT LIKE '%was removed: it can echo personal data)'",
            [],
        )? as u64)
    }

    /// Disables an endpoint (a `410 Gone`): nothing more is attempted until
    /// `roster events retry --endpoint NAME`.
    pub fn disable(&self, endpoint: &str, reason: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO endpoints VALUES (?, now()::TIMESTAMP, ?)",
            params![endpoint, reason],
        )?;
        Ok(())
    }

    /// Why an endpoint is disabled, if it is.
    pub fn disabled(&self, endpoint: &str) -> Result<Option<String>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT disabled_reason FROM endpoints WHERE name = ? AND disabled_at IS NOT NULL",
        )?;
        let mut rows = stmt.query_map([endpoint], |r| r.get::<_, Option<String>>(0))?;
        Ok(rows.next().transpose()?.map(|r| r.unwrap_or_default()))
    }

    /// People in the directory, and of them active or on leave (for metrics).
    pub fn people_counts(&self) -> Result<(u64, u64), StoreError> {
        Ok(self.conn.query_row(
            "SELECT count(*), count(*) FILTER (WHERE status IN ('active', 'on_leave')) FROM people",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?)
    }

    /// The start of each source's last sync run (RFC 3339), for schedules.
    pub fn last_runs(&self) -> Result<HashMap<String, String>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT source, {} FROM (SELECT source, max(started_at) AS started_at FROM sync_runs GROUP BY source)",
            ts("started_at")
        ))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Counts per endpoint.
    pub fn counts(&self) -> Result<Vec<(String, EndpointCounts)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT d.endpoint, count(*) FILTER (WHERE state = 'pending'),
                    count(*) FILTER (WHERE state = 'delivered'), count(*) FILTER (WHERE state = 'dead'),
                    any_value(x.disabled_reason)
             FROM deliveries d LEFT JOIN endpoints x ON x.name = d.endpoint
             GROUP BY d.endpoint ORDER BY d.endpoint",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                EndpointCounts {
                    pending: r.get::<_, i64>(1)? as u64,
                    delivered: r.get::<_, i64>(2)? as u64,
                    dead: r.get::<_, i64>(3)? as u64,
                    disabled: r.get(4)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Events, newest first, with their deliveries.
    pub fn list(&self, f: &ListFilter) -> Result<Vec<EventRow>, StoreError> {
        let mut sql = format!(
            "SELECT {}, NULL::VARCHAR FROM events e WHERE true",
            event_columns()
        );
        let mut args: Vec<String> = Vec::new();
        if let Some(k) = &f.kind {
            sql.push_str(" AND e.type LIKE ?");
            args.push(if k == "*" {
                "%".into()
            } else {
                k.replace('*', "%")
            });
        }
        if let Some(w) = &f.work_email {
            sql.push_str(" AND e.work_email = lower(?)");
            args.push(w.clone());
        }
        if f.state.is_some() || f.endpoint.is_some() {
            sql.push_str(" AND EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id");
            if let Some(s) = &f.state {
                sql.push_str(" AND d.state = ?");
                args.push(s.clone());
            }
            if let Some(ep) = &f.endpoint {
                sql.push_str(" AND d.endpoint = ?");
                args.push(ep.clone());
            }
            sql.push(')');
        }
        sql.push_str(&format!(
            " ORDER BY e.created_at DESC, e.id LIMIT {}",
            f.limit.max(1)
        ));
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(duckdb::params_from_iter(args.iter()), event_row)?;
        let mut out: Vec<EventRow> = rows.collect::<Result<_, _>>()?;
        for e in &mut out {
            e.deliveries = self.deliveries(&e.id)?;
        }
        Ok(out)
    }

    /// One event with its data and deliveries.
    pub fn show(&self, id: &str) -> Result<Option<EventRow>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {}, e.data FROM events e WHERE e.id = ?",
            event_columns()
        ))?;
        let mut rows = stmt.query_map([id], event_row)?;
        let Some(mut e) = rows.next().transpose()? else {
            return Ok(None);
        };
        e.deliveries = self.deliveries(&e.id)?;
        Ok(Some(e))
    }

    fn deliveries(&self, id: &str) -> Result<Vec<DeliveryRow>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT endpoint, state, attempts, {}, last_status, last_error, {}
             FROM deliveries WHERE event_id = ? ORDER BY endpoint",
            ts("next_attempt_at"),
            ts("delivered_at")
        ))?;
        let rows = stmt.query_map([id], |r| {
            Ok(DeliveryRow {
                endpoint: r.get(0)?,
                state: r.get(1)?,
                attempts: r.get(2)?,
                next_attempt_at: r.get(3)?,
                last_status: r.get(4)?,
                last_error: r.get(5)?,
                delivered_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sends an event again to one or every endpoint that has it (any state), keeping its id.
    /// Returns the deliveries queued.
    pub fn replay(&self, id: &str, endpoint: Option<&str>) -> Result<u64, StoreError> {
        Ok(self.conn.execute(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = now()::TIMESTAMP,
               last_error = NULL, last_status = NULL
             WHERE event_id = ? AND (? IS NULL OR endpoint = ?)",
            params![id, endpoint, endpoint],
        )? as u64)
    }

    /// Makes dead-lettered deliveries due again (of one endpoint or all) and re-enables the
    /// endpoint(s). Returns the deliveries queued.
    pub fn retry(&self, endpoint: Option<&str>) -> Result<u64, StoreError> {
        self.conn.execute(
            "DELETE FROM endpoints WHERE (? IS NULL OR name = ?)",
            params![endpoint, endpoint],
        )?;
        Ok(self.conn.execute(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = now()::TIMESTAMP
             WHERE state = 'dead' AND (? IS NULL OR endpoint = ?)",
            params![endpoint, endpoint],
        )? as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &std::path::Path) -> Store {
        Store::open(&dir.join("state"), &dir.join("directory.duckdb")).unwrap()
    }

    fn event(key: &str) -> (NewEvent, Vec<String>) {
        let ev = NewEvent {
            id: key.to_owned(),
            kind: "lifecycle.start_date".into(),
            work_email: Some("ada@corp.example".into()),
            source: None,
            sync_run: None,
            trigger: Some("welcome".into()),
            occurrence: Some("2026-03-02".into()),
            scheduled_at: Some("2026-03-02T08:00:00Z".into()),
            late: false,
            data: serde_json::json!({"work_email": "ada@corp.example"}),
        };
        (ev, vec!["hook".into()])
    }

    fn ids(s: &Store) -> Vec<String> {
        let mut stmt = s.conn.prepare("SELECT id FROM events ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    const NOW: &str = "2026-03-02 08:00:00";

    #[test]
    fn the_installation_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = store(dir.path()).installation_id().unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(store(dir.path()).installation_id().unwrap(), first);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(store(other.path()).installation_id().unwrap(), first);
    }

    #[test]
    fn the_same_key_is_one_event_per_installation_and_different_across_installations() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (sa, sb) = (store(a.path()), store(b.path()));
        let key =
            crate::events::event_id(&["lifecycle", "welcome", "ada@corp.example", "2026-03-02"]);
        assert_eq!(sa.write_events(&[event(&key)], NOW).unwrap(), 1);
        // Evaluated again: nothing new, the same id.
        assert_eq!(sa.write_events(&[event(&key)], NOW).unwrap(), 0);
        assert_eq!(sb.write_events(&[event(&key)], NOW).unwrap(), 1);
        let (ia, ib) = (ids(&sa), ids(&sb));
        assert_eq!(ia.len(), 1);
        assert_ne!(ia, ib, "two state directories, the same occurrence key");
        assert_eq!(ia[0], scoped_id(&sa.installation_id().unwrap(), &key));
        assert_eq!(
            sa.outbox()
                .unwrap()
                .due("hook", "2100-01-01 00:00:00", 10)
                .unwrap()[0]
                .event_id,
            ia[0]
        );
    }

    #[test]
    fn an_event_stored_under_its_bare_key_before_the_upgrade_is_not_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let key =
            crate::events::event_id(&["lifecycle", "welcome", "ada@corp.example", "2026-03-02"]);
        // As an older version stored it: the key is the id, delivered to `hook`.
        s.conn
            .execute(
                "INSERT INTO events (id, type, created_at, late, data) VALUES (?, 'lifecycle.start_date', now()::TIMESTAMP, false, '{}')",
                [&key],
            )
            .unwrap();
        s.conn
            .execute(
                "INSERT INTO deliveries (event_id, endpoint, state, attempts, next_attempt_at) VALUES (?, 'hook', 'delivered', 1, now()::TIMESTAMP)",
                [&key],
            )
            .unwrap();
        let (ev, _) = event(&key);
        let n = s
            .write_events(&[(ev, vec!["hook".into(), "new-hook".into()])], NOW)
            .unwrap();
        assert_eq!(n, 0);
        assert_eq!(ids(&s), vec![key.clone()]);
        // A newly subscribed endpoint gets the old event, under its old id.
        let due = s
            .outbox()
            .unwrap()
            .due("new-hook", "2100-01-01 00:00:00", 10)
            .unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].event_id, key);
        assert!(
            s.outbox()
                .unwrap()
                .due("hook", "2100-01-01 00:00:00", 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn receiver_answers_quoted_by_older_versions_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let key = crate::events::event_id(&["x"]);
        s.write_events(&[event(&key)], NOW).unwrap();
        let old = "the receiver answered HTTP 500 Internal Server Error: error processing {\"first_name\":\"Zqxcanaryfirst\"}";
        s.conn
            .execute("UPDATE deliveries SET last_error = ?", [old])
            .unwrap();
        let ob = s.outbox().unwrap();
        assert_eq!(ob.forget_receiver_answers().unwrap(), 1);
        assert_eq!(ob.forget_receiver_answers().unwrap(), 0, "once");
        let e: String = s
            .conn
            .query_row("SELECT last_error FROM deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            e,
            "the receiver answered HTTP 500 Internal Server Error (the receiver's answer, quoted by an older version, was removed: it can echo personal data)"
        );
        // Errors of this version are left alone.
        let new = "the receiver answered HTTP 500 Internal Server Error: the receiver failed on its side (its answer is not recorded, as it can echo personal data; the receiver's own logs say more)";
        s.conn
            .execute("UPDATE deliveries SET last_error = ?", [new])
            .unwrap();
        assert_eq!(ob.forget_receiver_answers().unwrap(), 0);
    }
}
