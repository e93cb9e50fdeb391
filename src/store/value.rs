//! Query results as Rust values: `roster query`'s tables, CSV and JSON, and the event
//! payloads' person snapshots, read through one conversion.

use duckdb::types::{TimeUnit, Value};

/// Runs SQL and returns the column names and rows.
pub fn execute(
    conn: &duckdb::Connection,
    sql: &str,
) -> Result<(Vec<String>, Vec<Vec<Value>>), duckdb::Error> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    let mut columns: Vec<String> = Vec::new();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        if columns.is_empty() {
            columns = row.as_ref().column_names();
        }
        let n = row.as_ref().column_count();
        let mut vals = Vec::with_capacity(n);
        for i in 0..n {
            vals.push(row.get::<_, Value>(i)?);
        }
        out.push(vals);
    }
    if columns.is_empty() {
        columns = rows.as_ref().map(|s| s.column_names()).unwrap_or_default();
    }
    Ok((columns, out))
}

fn date(days: i32) -> String {
    jiff::civil::date(1970, 1, 1)
        .checked_add(jiff::Span::new().days(i64::from(days)))
        .map(|d| d.to_string())
        .unwrap_or_else(|_| days.to_string())
}

fn timestamp(unit: TimeUnit, v: i64) -> String {
    let micros = match unit {
        TimeUnit::Second => v.saturating_mul(1_000_000),
        TimeUnit::Millisecond => v.saturating_mul(1_000),
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v / 1_000,
    };
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| v.to_string())
}

/// A value as text (tables and CSV).
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Text(s) | Value::Enum(s) => s.clone(),
        Value::Date32(d) => date(*d),
        Value::Timestamp(u, t) => timestamp(*u, *t),
        Value::List(items) | Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(text).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Map(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}={}", text(k), text(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        other => match json(other) {
            serde_json::Value::String(s) => s,
            j => j.to_string(),
        },
    }
}

/// A value as JSON.
pub fn json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::TinyInt(i) => J::from(*i),
        Value::SmallInt(i) => J::from(*i),
        Value::Int(i) => J::from(*i),
        Value::BigInt(i) => J::from(*i),
        Value::UTinyInt(i) => J::from(*i),
        Value::USmallInt(i) => J::from(*i),
        Value::UInt(i) => J::from(*i),
        Value::UBigInt(i) => J::from(*i),
        Value::HugeInt(i) => J::String(i.to_string()),
        Value::UHugeInt(i) => J::String(i.to_string()),
        Value::Float(f) => J::from(f64::from(*f)),
        Value::Double(f) => J::from(*f),
        Value::Text(s) | Value::Enum(s) => J::String(s.clone()),
        Value::Date32(d) => J::String(date(*d)),
        Value::Timestamp(u, t) => J::String(timestamp(*u, *t)),
        Value::List(items) | Value::Array(items) => J::Array(items.iter().map(json).collect()),
        Value::Map(m) => J::Object(m.iter().map(|(k, v)| (text(k), json(v))).collect()),
        Value::Struct(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), json(v))).collect()),
        other => J::String(format!("{other:?}")),
    }
}
