//! Builders for test files.

use sia::internal::dicom::tag::{Encoding, Tag, Vr, tags, ts};
use sia::internal::dicom::write::{DataSetWriter, file_meta};
use sia::internal::dicom::{InstanceRecord, ScanError, Scanned, scan, source::SliceSource};

pub const STUDY: &str = "1.2.3.4";
pub const SERIES: &str = "1.2.3.4.5";
pub const SOP: &str = "1.2.3.4.5.6";
pub const CT: &str = "1.2.840.10008.5.1.4.1.1.2";

/// The identifying attributes every indexable instance needs, up to (0020,000E).
pub fn identity(w: &mut DataSetWriter, sop: &str, patient: &str, name: &str) {
    w.str(tags::SOP_CLASS_UID, Vr::UI, CT)
        .str(tags::SOP_INSTANCE_UID, Vr::UI, sop)
        .str(tags::STUDY_DATE, Vr::DA, "20240102")
        .str(tags::STUDY_TIME, Vr::TM, "101112")
        .str(tags::MODALITY, Vr::CS, "CT")
        .str(tags::PATIENT_NAME, Vr::PN, name)
        .str(tags::PATIENT_ID, Vr::LO, patient)
        .str(tags::STUDY_INSTANCE_UID, Vr::UI, STUDY)
        .str(tags::SERIES_INSTANCE_UID, Vr::UI, SERIES);
}

/// Image attributes (0028,xxxx) for a grey image.
pub fn image(w: &mut DataSetWriter, rows: u16, cols: u16, bits: u16, frames: u32) {
    w.us(tags::SAMPLES_PER_PIXEL, 1)
        .str(tags::PHOTOMETRIC_INTERPRETATION, Vr::CS, "MONOCHROME2");
    if frames != 1 {
        w.str(tags::NUMBER_OF_FRAMES, Vr::IS, &frames.to_string());
    }
    w.us(tags::ROWS, rows)
        .us(tags::COLUMNS, cols)
        .us(tags::BITS_ALLOCATED, bits)
        .us(tags::BITS_STORED, bits)
        .us(tags::PIXEL_REPRESENTATION, 0);
}

/// Preamble + File Meta for `transfer_syntax` + the data set.
pub fn with_meta(transfer_syntax: &str, data_set: &[u8]) -> Vec<u8> {
    let mut out = file_meta(CT, SOP, transfer_syntax);
    out.extend_from_slice(data_set);
    out
}

/// A native 16-bit image of `frames` frames, whose pixel bytes are 0, 1, 2, ...
pub fn native16(enc: Encoding, frames: u32) -> (Vec<u8>, Vec<u8>) {
    let mut w = DataSetWriter::new(enc);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    image(&mut w, 4, 3, 16, frames);
    let pixels: Vec<u8> = (0..4 * 3 * 2 * frames).map(|i| i as u8).collect();
    w.native_pixel_data(Vr::OW, &pixels);
    (w.into_bytes(), pixels)
}

pub fn explicit_le_file(frames: u32) -> (Vec<u8>, Vec<u8>) {
    let (ds, px) = native16(Encoding::EXPLICIT_LE, frames);
    (with_meta(ts::EXPLICIT_VR_LE, &ds), px)
}

pub fn scan_bytes(bytes: &[u8]) -> Result<Scanned, ScanError> {
    scan(&mut SliceSource(bytes))
}

pub fn record(bytes: &[u8]) -> InstanceRecord {
    match scan_bytes(bytes) {
        Ok(Scanned::Instance(r)) => *r,
        other => panic!("expected an instance, got {other:?}"),
    }
}

/// The bytes of each frame, cut from `file` by the record's frame table.
pub fn frames_of(file: &[u8], r: &InstanceRecord) -> Vec<Vec<u8>> {
    use sia::internal::dicom::FrameTable;
    match &r.frames {
        FrameTable::Native {
            offset,
            frame_bits,
            count,
            ..
        } => {
            assert_eq!(frame_bits % 8, 0, "use bit arithmetic for 1-bit frames");
            let n = (*frame_bits / 8) as usize;
            (0..*count as usize)
                .map(|i| file[*offset as usize + i * n..][..n].to_vec())
                .collect()
        }
        FrameTable::Encapsulated {
            fragments,
            frame_starts,
            ..
        } => frame_starts
            .windows(2)
            .map(|w| {
                fragments[w[0] as usize..w[1] as usize]
                    .iter()
                    .flat_map(|f| file[f.offset as usize..][..f.len as usize].to_vec())
                    .collect()
            })
            .collect(),
        other => panic!("no frames to cut: {other:?}"),
    }
}

/// Encapsulated data set with the given fragments, offset table and extra elements.
pub fn encapsulated(
    frames: u32,
    bot: &[u32],
    fragments: &[&[u8]],
    eot: Option<(&[u64], &[u64])>,
) -> Vec<u8> {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    image(&mut w, 8, 8, 8, frames);
    if let Some((offsets, lengths)) = eot {
        let o: Vec<u8> = offsets.iter().flat_map(|v| v.to_le_bytes()).collect();
        let l: Vec<u8> = lengths.iter().flat_map(|v| v.to_le_bytes()).collect();
        w.element(tags::EXTENDED_OFFSET_TABLE, Vr::OV, &o).element(
            tags::EXTENDED_OFFSET_TABLE_LENGTHS,
            Vr::OV,
            &l,
        );
    }
    w.encapsulated_pixel_data(bot, fragments);
    with_meta("1.2.840.10008.1.2.4.50", w.as_bytes())
}

#[allow(dead_code)]
pub fn tag(g: u16, e: u16) -> Tag {
    Tag(g, e)
}

/// An engine over an index of the demo set (in the returned directory).
pub fn demo_engine() -> (tempfile::TempDir, sia::Engine) {
    let dir = tempfile::tempdir().unwrap();
    sia::write_demo(&dir.path().join("data")).unwrap();
    let engine = sia::Engine::open(crate::common::config_in(dir.path()).build()).unwrap();
    engine
        .index(&[dir.path().join("data")], &Default::default())
        .unwrap();
    (dir, engine)
}

/// The index of a test's engine on PostgreSQL: when `SIA_TEST_PG_URL` names a server
/// (scripts/test's second pass, through scripts/pg-throwaway), a URL of a new schema of
/// its own there, so tests run in parallel without seeing each other's rows; else
/// `None`, and the test's index is the SQLite file it names with `db`.
pub fn pg_url() -> Option<String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = std::env::var("SIA_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let schema = format!(
        "t_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut client = postgres::Client::connect(&base, postgres::NoTls)
        .unwrap_or_else(|e| panic!("SIA_TEST_PG_URL={base}: {e}"));
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

/// The configuration of a test's engine in `dir`: its index `dir/i.db`, or a new
/// PostgreSQL schema when the run uses PostgreSQL (see [`pg_url`]).
#[allow(dead_code)]
pub fn config_in(dir: &std::path::Path) -> sia::ConfigBuilder {
    sia::Config::builder()
        .db(dir.join("i.db"))
        .index_url(pg_url())
}

/// Whether this run's engines use PostgreSQL (see [`pg_url`]).
#[allow(dead_code)]
pub fn on_postgres() -> bool {
    std::env::var("SIA_TEST_PG_URL").is_ok_and(|u| !u.is_empty())
}

/// An index in `dir` (SQLite), or in a new PostgreSQL schema (see [`pg_url`]).
#[allow(dead_code)]
pub fn open_index(dir: &std::path::Path) -> sia::internal::index::Index {
    use sia::internal::index::{Index, IndexLocation};
    match pg_url() {
        Some(url) => Index::open_at(&IndexLocation::Postgres {
            url,
            max_connections: 4,
        })
        .unwrap(),
        None => Index::open(dir.join("i.db")).unwrap(),
    }
}

/// The one part of a single-part multipart answer (a frame), checked to end with the
/// boundary its Content-Type names; found without a quadratic search.
#[allow(dead_code)]
pub fn single_part(resp: &sia::Response) -> Vec<u8> {
    let ct = resp.header("Content-Type").unwrap().to_string();
    let boundary = ct.split("boundary=").nth(1).unwrap().trim_matches('"');
    let body = resp.body.to_vec();
    let head_end = body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let tail = format!("\r\n--{boundary}--");
    let tail_at = body.len() - tail.len() - body.ends_with(b"\r\n") as usize * 2;
    assert_eq!(&body[tail_at..tail_at + tail.len()], tail.as_bytes());
    body[head_end..tail_at].to_vec()
}
