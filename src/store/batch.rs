//! Arrow batches of `people` and `value_history` rows, appended column by column (one FFI
//! call per 2,048 rows instead of one per value), and typed views of the columns of a query's
//! Arrow batches (read without a conversion per value).

use std::collections::HashMap;
use std::sync::Arc;

use duckdb::arrow::array::{
    Array, ArrayRef, AsArray, Date32Builder, Int64Array, Int64Builder, LargeStringArray, ListArray,
    ListBuilder, MapBuilder, StringArray, StringBuilder, StringViewArray,
    TimestampMicrosecondBuilder,
};
use duckdb::arrow::datatypes::Int64Type;
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{Appender, arrow::error::ArrowError};

use super::StoreError;
use crate::config::person::{Field, FieldKind};
use crate::identity::{SourceRecord, State};

/// Finishes a text column and leaves its builder with the room this batch took, so the next
/// batch (about the same size) writes into one allocation instead of growing its buffers
/// from nothing again, each regrowth a copy into freshly faulted pages.
fn finish_sized(b: &mut StringBuilder) -> ArrayRef {
    let (items, bytes) = (
        b.offsets_slice().len().saturating_sub(1),
        b.values_slice().len(),
    );
    let array = b.finish();
    *b = StringBuilder::with_capacity(items + items / 4, bytes + bytes / 4);
    Arc::new(array)
}

fn finish(cols: Vec<ArrayRef>) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_from_iter(
        cols.into_iter()
            .enumerate()
            .map(|(i, c)| (format!("c{i}"), c)),
    )
}

fn arrow_err(e: ArrowError) -> StoreError {
    StoreError::Sql(duckdb::Error::ToSqlConversionFailure(Box::new(e)))
}

/// A text column of a query's Arrow batch (DuckDB hands VARCHAR over as UTF-8 with 32-bit
/// offsets; the other layouts are read too).
pub(crate) enum Texts<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Texts<'a> {
    /// Column `i` of `batch`.
    pub(crate) fn of(batch: &'a RecordBatch, i: usize) -> Result<Texts<'a>, StoreError> {
        Texts::array(batch.column(i).as_ref()).ok_or_else(|| unexpected(batch, i, "text"))
    }

    fn array(a: &'a dyn Array) -> Option<Texts<'a>> {
        a.as_string_opt::<i32>()
            .map(Texts::Utf8)
            .or_else(|| a.as_string_opt::<i64>().map(Texts::Large))
            .or_else(|| a.as_string_view_opt().map(Texts::View))
    }

    /// The value of `row`; `None` for NULL.
    pub(crate) fn get(&self, row: usize) -> Option<&'a str> {
        match self {
            Texts::Utf8(a) => (!a.is_null(row)).then(|| a.value(row)),
            Texts::Large(a) => (!a.is_null(row)).then(|| a.value(row)),
            Texts::View(a) => (!a.is_null(row)).then(|| a.value(row)),
        }
    }
}

/// A `BIGINT` column of a query's Arrow batch.
pub(crate) fn ints(batch: &RecordBatch, i: usize) -> Result<&Int64Array, StoreError> {
    batch
        .column(i)
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| unexpected(batch, i, "BIGINT"))
}

/// The value of `row` of a `BIGINT` column; `None` for NULL.
pub(crate) fn int_at(a: &Int64Array, row: usize) -> Option<i64> {
    (!a.is_null(row)).then(|| a.value(row))
}

/// A `VARCHAR[]` column of a query's Arrow batch.
pub(crate) struct TextLists<'a> {
    lists: &'a ListArray,
    items: Texts<'a>,
}

impl<'a> TextLists<'a> {
    /// Column `i` of `batch`.
    pub(crate) fn of(batch: &'a RecordBatch, i: usize) -> Result<TextLists<'a>, StoreError> {
        let lists = batch
            .column(i)
            .as_list_opt::<i32>()
            .ok_or_else(|| unexpected(batch, i, "a list"))?;
        let items =
            Texts::array(lists.values().as_ref()).ok_or_else(|| unexpected(batch, i, "texts"))?;
        Ok(TextLists { lists, items })
    }

    /// The items of `row`'s list (none for NULL).
    pub(crate) fn get(&self, row: usize) -> impl Iterator<Item = Option<&'a str>> + '_ {
        let range = if self.lists.is_null(row) {
            0..0
        } else {
            let offsets = self.lists.value_offsets();
            offsets[row] as usize..offsets[row + 1] as usize
        };
        range.map(|k| self.items.get(k))
    }
}

pub(crate) fn unexpected(batch: &RecordBatch, i: usize, what: &str) -> StoreError {
    let field = batch.schema_ref().field(i).clone();
    arrow_err(ArrowError::SchemaError(format!(
        "column {} is {}, not {what}",
        field.name(),
        field.data_type()
    )))
}

/// `value_history` rows opened by one run.
pub(crate) struct History {
    email: StringBuilder,
    field: StringBuilder,
    value: StringBuilder,
    source: StringBuilder,
    from: TimestampMicrosecondBuilder,
    to: TimestampMicrosecondBuilder,
    run: Int64Builder,
    rows: usize,
}

impl History {
    pub(crate) fn new() -> History {
        History {
            email: StringBuilder::new(),
            field: StringBuilder::new(),
            value: StringBuilder::new(),
            source: StringBuilder::new(),
            from: TimestampMicrosecondBuilder::new(),
            to: TimestampMicrosecondBuilder::new(),
            run: Int64Builder::new(),
            rows: 0,
        }
    }

    /// A value in force from `now_us` on.
    pub(crate) fn push(
        &mut self,
        email: &str,
        field: &str,
        value: &str,
        source: &str,
        now_us: i64,
        run: i64,
    ) {
        self.email.append_value(email);
        self.field.append_value(field);
        self.value.append_value(value);
        self.source.append_value(source);
        self.from.append_value(now_us);
        self.to.append_null();
        self.run.append_value(run);
        self.rows += 1;
    }

    /// The rows collected so far, as one batch (`None` when there are none).
    pub(crate) fn take(&mut self) -> Result<Option<RecordBatch>, StoreError> {
        if self.rows == 0 {
            return Ok(None);
        }
        self.rows = 0;
        let batch = finish(vec![
            Arc::new(self.email.finish()),
            Arc::new(self.field.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.from.finish()),
            Arc::new(self.to.finish()),
            Arc::new(self.run.finish()),
        ])
        .map_err(arrow_err)?;
        Ok(Some(batch))
    }
}

/// Hands a batch to DuckDB. The appender buffers what it is given in memory DuckDB's limit
/// does not cover (a 100k first sync held 120 MB there); flushed, the rows go to the
/// transaction's storage, which spills.
pub(crate) fn append(app: &mut Appender<'_>, batch: Option<RecordBatch>) -> Result<(), StoreError> {
    if let Some(batch) = batch {
        app.append_record_batch(batch)?;
        app.flush()?;
    }
    Ok(())
}

enum Column {
    Text(StringBuilder),
    Date(Date32Builder),
}

/// The distinct provenance maps (field -> source) of `people` (schema v7: `person_rows`
/// points into `provenance_sets`): those stored, and those a merge finds new. A directory has
/// a handful, however many people it holds.
pub(crate) struct Provenances {
    /// A map's pairs, each part length-prefixed, sorted by field -> its id.
    ids: HashMap<Vec<u8>, i64>,
    next: i64,
    /// Maps not stored yet: their ids and pairs.
    fresh: Vec<(i64, Vec<(String, String)>)>,
    key: Vec<u8>,
}

/// The stored provenance sets by id, each a map's `(field, source)` pairs sorted by field.
pub(crate) type Sets = HashMap<i64, Vec<(String, String)>>;

/// Groups `(id, field, source)` rows, in any order, into [`Sets`].
pub(crate) fn sets(rows: Vec<(i64, String, String)>) -> Sets {
    let mut sets: Sets = HashMap::new();
    for (id, field, source) in rows {
        sets.entry(id).or_default().push((field, source));
    }
    for pairs in sets.values_mut() {
        pairs.sort();
    }
    sets
}

impl Provenances {
    /// The stored sets.
    pub(crate) fn new(sets: &Sets) -> Provenances {
        let mut p = Provenances {
            ids: HashMap::new(),
            next: sets.keys().max().map_or(1, |m| m + 1),
            fresh: Vec::new(),
            key: Vec::new(),
        };
        for (&id, pairs) in sets {
            p.encode(pairs.iter().map(|(f, s)| (f.as_str(), s.as_str())));
            p.ids.insert(p.key.clone(), id);
        }
        p
    }

    fn encode<'a>(&mut self, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
        self.key.clear();
        for (field, source) in pairs {
            for part in [field, source] {
                self.key
                    .extend_from_slice(&(part.len() as u32).to_le_bytes());
                self.key.extend_from_slice(part.as_bytes());
            }
        }
    }

    /// The id of `state`'s provenance map, a new one if no one has had it before.
    pub(crate) fn id(&mut self, state: &State) -> i64 {
        // A `State` is ordered by field, as the stored sets are once sorted.
        self.encode(state.iter().map(|(k, (_, src))| (k.as_str(), src.as_str())));
        if let Some(&id) = self.ids.get(self.key.as_slice()) {
            return id;
        }
        let id = self.next;
        self.next += 1;
        self.ids.insert(self.key.clone(), id);
        self.fresh.push((
            id,
            state
                .iter()
                .map(|(k, (_, src))| (k.clone(), src.clone()))
                .collect(),
        ));
        id
    }

    /// The maps found new since the last call, as `provenance_sets` rows.
    pub(crate) fn take_fresh(&mut self) -> Result<Option<RecordBatch>, StoreError> {
        if self.fresh.is_empty() {
            return Ok(None);
        }
        let mut ids = Int64Builder::new();
        let mut maps = map_builder();
        for (id, pairs) in self.fresh.drain(..) {
            ids.append_value(id);
            for (field, source) in &pairs {
                maps.keys().append_value(field);
                maps.values().append_value(source);
            }
            maps.append(true).map_err(arrow_err)?;
        }
        let batch = finish(vec![Arc::new(ids.finish()), Arc::new(maps.finish())]);
        Ok(Some(batch.map_err(arrow_err)?))
    }
}

/// `people` rows, for the table `person_rows` (see `schema::v1` for the column order; v7
/// puts `provenance_id` in `provenance`'s place).
pub(crate) struct People {
    fields: Vec<Column>,
    hris_status: StringBuilder,
    custom: MapBuilder<StringBuilder, StringBuilder>,
    employee_ids: MapBuilder<StringBuilder, StringBuilder>,
    sources: ListBuilder<StringBuilder>,
    provenance: Int64Builder,
    first_seen: TimestampMicrosecondBuilder,
    last_changed: TimestampMicrosecondBuilder,
    rows: usize,
}

fn map_builder() -> MapBuilder<StringBuilder, StringBuilder> {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (the mapping only ever produces such dates).
fn days(v: &str) -> Option<i32> {
    let d = v.parse::<jiff::civil::Date>().ok()?;
    Some((d.duration_since(jiff::civil::date(1970, 1, 1)).as_secs() / 86_400) as i32)
}

impl People {
    pub(crate) fn new() -> People {
        People {
            fields: Field::ALL
                .iter()
                .map(|f| match f.kind() {
                    FieldKind::Date => Column::Date(Date32Builder::new()),
                    _ => Column::Text(StringBuilder::new()),
                })
                .collect(),
            hris_status: StringBuilder::new(),
            custom: map_builder(),
            employee_ids: map_builder(),
            sources: ListBuilder::new(StringBuilder::new()),
            provenance: Int64Builder::new(),
            first_seen: TimestampMicrosecondBuilder::new(),
            last_changed: TimestampMicrosecondBuilder::new(),
            rows: 0,
        }
    }

    /// One person: the state in force, their records (for sources and employee ids), the
    /// first and last change (µs since the epoch), and the id of their provenance map
    /// ([`Provenances::id`]).
    pub(crate) fn push(
        &mut self,
        state: &State,
        records: &[SourceRecord],
        first_seen_us: i64,
        last_changed_us: i64,
        provenance_id: i64,
    ) -> Result<(), StoreError> {
        for (f, col) in Field::ALL.iter().zip(&mut self.fields) {
            // `status` is the derived status; the HRIS's own is `hris_status`.
            let v = state.get(f.name()).map(|v| v.0.as_str());
            match col {
                Column::Text(b) => b.append_option(v),
                Column::Date(b) => b.append_option(v.and_then(days)),
            }
        }
        self.hris_status
            .append_option(state.get("hris_status").map(|v| v.0.as_str()));
        let mut any = false;
        for (k, (v, _)) in state {
            if let Some(name) = k.strip_prefix("custom.") {
                self.custom.keys().append_value(name);
                self.custom.values().append_value(v);
                any = true;
            }
        }
        self.custom.append(any).map_err(arrow_err)?;
        let mut sorted: Vec<&SourceRecord> = records.iter().collect();
        sorted.sort_by(|a, b| a.source.cmp(&b.source));
        let mut any = false;
        for r in &sorted {
            if let Some(id) = &r.values[Field::employee_id as usize] {
                self.employee_ids.keys().append_value(&r.source);
                self.employee_ids.values().append_value(id);
                any = true;
            }
        }
        self.employee_ids.append(any).map_err(arrow_err)?;
        for r in &sorted {
            self.sources.values().append_value(&r.source);
        }
        self.sources.append(true);
        self.provenance.append_value(provenance_id);
        self.first_seen.append_value(first_seen_us);
        self.last_changed.append_value(last_changed_us);
        self.rows += 1;
        Ok(())
    }

    /// The rows collected so far, as one batch (`None` when there are none).
    pub(crate) fn take(&mut self) -> Result<Option<RecordBatch>, StoreError> {
        if self.rows == 0 {
            return Ok(None);
        }
        self.rows = 0;
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(Field::ALL.len() + 7);
        for c in &mut self.fields {
            cols.push(match c {
                Column::Text(b) => Arc::new(b.finish()),
                Column::Date(b) => Arc::new(b.finish()),
            });
        }
        cols.push(Arc::new(self.hris_status.finish()));
        cols.push(Arc::new(self.custom.finish()));
        cols.push(Arc::new(self.employee_ids.finish()));
        cols.push(Arc::new(self.sources.finish()));
        cols.push(Arc::new(self.provenance.finish()));
        cols.push(Arc::new(self.first_seen.finish()));
        cols.push(Arc::new(self.last_changed.finish()));
        Ok(Some(finish(cols).map_err(arrow_err)?))
    }
}

/// `source_records` rows staged by a listing (see `schema`: v1's columns, then v4's
/// `failed_fields`), and their `source_custom` rows, as Arrow batches: a staged record is one
/// value per column, 36 FFI calls per record row by row.
pub(crate) struct Staged {
    source: StringBuilder,
    key: StringBuilder,
    hash: Int64Builder,
    outcome: StringBuilder,
    fields: Vec<StringBuilder>,
    problems: StringBuilder,
    raw: StringBuilder,
    first_seen: TimestampMicrosecondBuilder,
    last_changed: TimestampMicrosecondBuilder,
    run: Int64Builder,
    failed: StringBuilder,
    rows: usize,
    c_source: StringBuilder,
    c_hash: Int64Builder,
    c_name: StringBuilder,
    c_value: StringBuilder,
    c_rows: usize,
}

/// One staged record's columns, borrowed.
pub(crate) struct StagedRow<'a> {
    pub source: &'a str,
    pub key: &'a str,
    pub hash: i64,
    pub outcome: &'a str,
    pub values: &'a [Option<String>],
    pub custom: &'a [(String, String)],
    pub problems: Option<&'a str>,
    pub raw: &'a str,
    pub now_us: i64,
    pub run: i64,
    pub failed: Option<&'a str>,
}

impl Staged {
    pub(crate) fn new() -> Staged {
        Staged {
            source: StringBuilder::new(),
            key: StringBuilder::new(),
            hash: Int64Builder::new(),
            outcome: StringBuilder::new(),
            fields: Field::ALL.iter().map(|_| StringBuilder::new()).collect(),
            problems: StringBuilder::new(),
            raw: StringBuilder::new(),
            first_seen: TimestampMicrosecondBuilder::new(),
            last_changed: TimestampMicrosecondBuilder::new(),
            run: Int64Builder::new(),
            failed: StringBuilder::new(),
            rows: 0,
            c_source: StringBuilder::new(),
            c_hash: Int64Builder::new(),
            c_name: StringBuilder::new(),
            c_value: StringBuilder::new(),
            c_rows: 0,
        }
    }

    /// Rows collected and not yet appended.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    pub(crate) fn push(&mut self, r: &StagedRow<'_>) {
        self.source.append_value(r.source);
        self.key.append_value(r.key);
        self.hash.append_value(r.hash);
        self.outcome.append_value(r.outcome);
        for (i, b) in self.fields.iter_mut().enumerate() {
            b.append_option(r.values.get(i).and_then(Option::as_deref));
        }
        self.problems.append_option(r.problems);
        self.raw.append_value(r.raw);
        self.first_seen.append_value(r.now_us);
        self.last_changed.append_value(r.now_us);
        self.run.append_value(r.run);
        self.failed.append_option(r.failed);
        self.rows += 1;
        for (name, value) in r.custom {
            self.c_source.append_value(r.source);
            self.c_hash.append_value(r.hash);
            self.c_name.append_value(name);
            self.c_value.append_value(value);
            self.c_rows += 1;
        }
    }

    /// The rows collected so far, as a `source_records` batch and a `source_custom` one
    /// (`None` where there are none): built wherever the records are mapped, appended by the
    /// sync's thread ([`Staged::append`]).
    pub(crate) fn take(
        &mut self,
    ) -> Result<(Option<RecordBatch>, Option<RecordBatch>), StoreError> {
        let mut out = (None, None);
        if self.rows > 0 {
            self.rows = 0;
            let mut cols: Vec<ArrayRef> = vec![
                finish_sized(&mut self.source),
                finish_sized(&mut self.key),
                Arc::new(self.hash.finish()),
                finish_sized(&mut self.outcome),
            ];
            for b in &mut self.fields {
                cols.push(finish_sized(b));
            }
            cols.push(finish_sized(&mut self.problems));
            cols.push(finish_sized(&mut self.raw));
            cols.push(Arc::new(self.first_seen.finish()));
            cols.push(Arc::new(self.last_changed.finish()));
            cols.push(Arc::new(self.run.finish()));
            cols.push(Arc::new(self.failed.finish()));
            out.0 = Some(finish(cols).map_err(arrow_err)?);
        }
        if self.c_rows > 0 {
            self.c_rows = 0;
            let cols: Vec<ArrayRef> = vec![
                finish_sized(&mut self.c_source),
                Arc::new(self.c_hash.finish()),
                finish_sized(&mut self.c_name),
                finish_sized(&mut self.c_value),
            ];
            out.1 = Some(finish(cols).map_err(arrow_err)?);
        }
        Ok(out)
    }

    /// Appends batches [`Staged::take`] made to `source_records` (`records`) and
    /// `source_custom` (`custom`), and hands them to DuckDB (whose storage spills; the
    /// appender's own buffer does not).
    pub(crate) fn append(
        batches: (Option<RecordBatch>, Option<RecordBatch>),
        records: &mut Appender<'_>,
        custom: &mut Appender<'_>,
    ) -> Result<(), StoreError> {
        if let Some(b) = batches.0 {
            records.append_record_batch(b)?;
            records.flush()?;
        }
        if let Some(b) = batches.1 {
            custom.append_record_batch(b)?;
            custom.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pairs: &[(&str, &str)]) -> State {
        pairs
            .iter()
            .map(|(f, s)| (f.to_string(), ("v".to_string(), s.to_string())))
            .collect()
    }

    #[test]
    fn a_provenance_map_gets_one_id_and_a_stored_one_is_not_stored_again() {
        // Stored: id 4 = {job_title: hr, work_email: hr}, rows in any order.
        let mut p = Provenances::new(&sets(vec![
            (4, "work_email".into(), "hr".into()),
            (4, "job_title".into(), "hr".into()),
        ]));
        let stored = state(&[("job_title", "hr"), ("work_email", "hr")]);
        assert_eq!(p.id(&stored), 4);
        let other = state(&[("job_title", "it"), ("work_email", "hr")]);
        let id = p.id(&other);
        assert_eq!(id, 5, "new ids follow the stored ones");
        assert_eq!(p.id(&other), id);
        // Pairs that concatenate alike are still different maps.
        let a = p.id(&state(&[("ab", "c")]));
        let b = p.id(&state(&[("a", "bc")]));
        assert_ne!(a, b);
        let fresh = p.take_fresh().unwrap().expect("three new maps");
        assert_eq!(fresh.num_rows(), 3);
        assert!(
            p.take_fresh().unwrap().is_none(),
            "each new map is stored once"
        );
    }
}
