//! Instance rows of an index run's batch that are written several to a statement.
//!
//! Each statement is a round trip on PostgreSQL, and a new file used to cost three
//! (the lookup of its UIDs, its file row, its instance row). The instance row is the
//! one no later statement of the same file needs, so the writer keeps it here and
//! writes up to [`FLUSH_AT`] of them with multi-row `INSERT`s (the same SQL on both
//! backends). The rows are written before anything could read them: before a lookup
//! whose answer they would change ([`PendingInstances::affects`]), before a file's
//! instance is deleted or looked up by SOP Instance UID, before a batch's counts are
//! settled, and before it commits, so every statement sees the index it saw when
//! each row went out at once, and a transaction holds the same rows as before.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use super::db::{Db, Param};
use crate::dicom::InstanceRecord;
use crate::error::Result;

/// Rows kept before they are written anyway (bounds memory: a row holds its record).
const FLUSH_AT: usize = 256;

/// Rows per statement, largest first: a few fixed shapes, so each is prepared once
/// per connection, whatever the count.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// Columns of an instance row, in the order of [`instance_params`].
const COLUMNS: usize = 17;

/// Instance rows of the current transaction not yet written.
#[derive(Default)]
pub(super) struct PendingInstances {
    rows: Vec<(Box<InstanceRecord>, i64, i64)>,
    sops: HashSet<String>,
    files: HashSet<i64>,
    /// Series and study UIDs of the rows, with their DICOM patient (ID, issuer).
    series: HashMap<String, (String, String)>,
    studies: HashMap<String, (String, String)>,
}

impl PendingInstances {
    /// Keeps the instance row of `record` in series row `series_id`, file row
    /// `file_id`; writes the rows kept when there are [`FLUSH_AT`] of them.
    pub(super) fn push(
        &mut self,
        tx: &mut Db,
        record: Box<InstanceRecord>,
        series_id: i64,
        file_id: i64,
    ) -> Result<()> {
        let patient = (record.patient.id.clone(), record.patient.issuer.clone());
        self.sops.insert(record.sop_instance_uid.clone());
        self.files.insert(file_id);
        self.series
            .insert(record.series.uid.clone(), patient.clone());
        self.studies.insert(record.study.uid.clone(), patient);
        self.rows.push((record, series_id, file_id));
        if self.rows.len() >= FLUSH_AT {
            self.flush(tx)?;
        }
        Ok(())
    }

    /// Whether the lookup of `record`'s UIDs (the duplicates rule, and conflicts: a
    /// series or study held with instances for another patient) could answer
    /// differently once the kept rows are written.
    pub(super) fn affects(&self, record: &InstanceRecord) -> bool {
        let other = |owner: Option<&(String, String)>| {
            owner.is_some_and(|(id, issuer)| {
                *id != record.patient.id || *issuer != record.patient.issuer
            })
        };
        self.sops.contains(&record.sop_instance_uid)
            || other(self.series.get(&record.series.uid))
            || other(self.studies.get(&record.study.uid))
    }

    /// Whether a row kept here belongs to file row `file_id`.
    pub(super) fn holds_file(&self, file_id: i64) -> bool {
        self.files.contains(&file_id)
    }

    /// Whether a row kept here has SOP Instance UID `sop`.
    pub(super) fn holds_sop(&self, sop: &str) -> bool {
        self.sops.contains(sop)
    }

    /// Writes every kept row, in the order they were kept.
    pub(super) fn flush(&mut self, tx: &mut Db) -> Result<()> {
        let mut rest = &self.rows[..];
        while !rest.is_empty() {
            let n = CHUNKS.into_iter().find(|&c| c <= rest.len()).unwrap_or(1);
            let (chunk, tail) = rest.split_at(n);
            let frames: Vec<Vec<u8>> = chunk.iter().map(|(r, _, _)| r.frames.to_bytes()).collect();
            let mut params = Vec::with_capacity(n * COLUMNS);
            for ((record, series, file), frames) in chunk.iter().zip(&frames) {
                params.extend(instance_params(record, *series, *file, frames));
            }
            tx.execute(&insert_sql(n), &params)?;
            rest = tail;
        }
        self.rows.clear();
        self.sops.clear();
        self.files.clear();
        self.series.clear();
        self.studies.clear();
        Ok(())
    }
}

/// `INSERT INTO instances (...) VALUES (?1, ..., ?17), (?18, ...)` for `rows` rows. The
/// text for each of [`CHUNKS`] is built once per process (the statement caches of both
/// backends are keyed by it, so a flush only looks it up); another count is built anew.
fn insert_sql(rows: usize) -> Cow<'static, str> {
    static TEXTS: [OnceLock<String>; CHUNKS.len()] = [const { OnceLock::new() }; CHUNKS.len()];
    match CHUNKS.iter().position(|&c| c == rows) {
        Some(slot) => Cow::Borrowed(TEXTS[slot].get_or_init(|| build_insert_sql(rows))),
        None => Cow::Owned(build_insert_sql(rows)),
    }
}

fn build_insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO instances (sop_instance_uid, series, file, sop_class_uid, transfer_syntax, number, title,
           rows, columns, samples_per_pixel, bits_allocated, bits_stored, pixel_representation, photometric,
           planar_configuration, number_of_frames, frame_table) VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..COLUMNS {
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("?{}", row * COLUMNS + col + 1));
        }
        sql.push(')');
    }
    sql
}

/// The values of one instance row, in the order of [`insert_sql`]'s columns.
fn instance_params<'a>(
    record: &'a InstanceRecord,
    series_id: i64,
    file_id: i64,
    frames: &'a Vec<u8>,
) -> [Param<'a>; COLUMNS] {
    let image = record.image.as_ref();
    [
        Param::from(&record.sop_instance_uid),
        Param::from(series_id),
        Param::from(file_id),
        Param::from(&record.sop_class_uid),
        Param::from(&record.transfer_syntax),
        Param::from(record.instance_number),
        Param::from(&record.title),
        Param::from(image.map(|i| i.rows)),
        Param::from(image.map(|i| i.columns)),
        Param::from(image.map(|i| i.samples_per_pixel)),
        Param::from(image.map(|i| i.bits_allocated)),
        Param::from(image.map(|i| i.bits_stored)),
        Param::from(image.map(|i| i.pixel_representation)),
        Param::from(image.map(|i| i.photometric.as_str())),
        Param::from(image.map(|i| i.planar_configuration)),
        Param::from(record.frames.count()),
        Param::from(frames),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_numbers_every_value_of_every_row() {
        let sql = insert_sql(2);
        assert!(sql.ends_with(&format!(
            "VALUES ({}), ({})",
            (1..=17).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", "),
            (18..=34).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
        )));
    }

    #[test]
    fn a_chunk_size_text_is_built_once_and_every_text_counts_its_rows() {
        for &rows in &CHUNKS {
            let (a, b) = (insert_sql(rows), insert_sql(rows));
            assert!(matches!(a, Cow::Borrowed(_)), "{rows} rows built anew");
            assert!(
                std::ptr::eq(a.as_ptr(), b.as_ptr()),
                "{rows} rows built twice"
            );
            assert_eq!(a.matches('(').count(), rows + 1, "{rows} rows");
            assert!(a.ends_with(&format!("?{})", rows * COLUMNS)));
        }
        assert_eq!(insert_sql(3), build_insert_sql(3));
    }
}
