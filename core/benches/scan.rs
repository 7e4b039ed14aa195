//! Header scan and frame-table benchmarks.
//!
//! `cargo bench -p sia --bench scan`. The whole-process index benchmark, with the
//! pydicom comparison, is `bench/index_bench.py`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sia::internal::dicom::source::SliceSource;
use sia::internal::dicom::tag::{Encoding, Vr, tags, ts};
use sia::internal::dicom::write::{DataSetWriter, basic_offsets, file_meta};
use sia::internal::dicom::{FrameTable, Scanned, scan, scan_file};

fn header(w: &mut DataSetWriter, frames: u32) {
    w.str(tags::SPECIFIC_CHARACTER_SET, Vr::CS, "ISO_IR 100")
        .str(tags::SOP_CLASS_UID, Vr::UI, "1.2.840.10008.5.1.4.1.1.2")
        .str(tags::SOP_INSTANCE_UID, Vr::UI, "1.2.3.4.5.6.7")
        .str(tags::STUDY_DATE, Vr::DA, "20240101")
        .str(tags::MODALITY, Vr::CS, "CT")
        .str(tags::PATIENT_NAME, Vr::PN, "Doe^Jane")
        .str(tags::PATIENT_ID, Vr::LO, "PID1")
        .str(tags::STUDY_INSTANCE_UID, Vr::UI, "1.2.3.4")
        .str(tags::SERIES_INSTANCE_UID, Vr::UI, "1.2.3.4.5")
        .us(tags::SAMPLES_PER_PIXEL, 1)
        .str(tags::NUMBER_OF_FRAMES, Vr::IS, &frames.to_string())
        .us(tags::ROWS, 140)
        .us(tags::COLUMNS, 140)
        .us(tags::BITS_ALLOCATED, 16);
}

fn ct_file() -> Vec<u8> {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    header(&mut w, 1);
    w.native_pixel_data(Vr::OW, &vec![0u8; 140 * 140 * 2]);
    let mut f = file_meta(
        "1.2.840.10008.5.1.4.1.1.2",
        "1.2.3.4.5.6.7",
        ts::EXPLICIT_VR_LE,
    );
    f.extend_from_slice(w.as_bytes());
    f
}

fn jpeg_2000_frames() -> Vec<u8> {
    let frame = vec![0xFFu8, 0xD8, 1, 2, 3, 4, 5, 6];
    let per: Vec<Vec<&[u8]>> = (0..2000).map(|_| vec![frame.as_slice()]).collect();
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    header(&mut w, 2000);
    let flat: Vec<&[u8]> = per.iter().map(|f| f[0]).collect();
    w.encapsulated_pixel_data(&basic_offsets(&per), &flat);
    let mut f = file_meta(
        "1.2.840.10008.5.1.4.1.1.2",
        "1.2.3.4.5.6.7",
        ts::JPEG_BASELINE,
    );
    f.extend_from_slice(w.as_bytes());
    f
}

fn bench(c: &mut Criterion) {
    let ct = ct_file();
    c.bench_function("scan 40 KB CT from memory", |b| {
        b.iter(|| scan(&mut SliceSource(black_box(&ct))).unwrap())
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ct.dcm");
    std::fs::write(&path, &ct).unwrap();
    c.bench_function("scan 40 KB CT file (open + pread)", |b| {
        b.iter(|| scan_file(black_box(&path)).unwrap())
    });
    let mf = jpeg_2000_frames();
    c.bench_function("scan 2,000-frame encapsulated (BOT)", |b| {
        b.iter(|| scan(&mut SliceSource(black_box(&mf))).unwrap())
    });
    let Scanned::Instance(rec) = scan(&mut SliceSource(&mf)).unwrap() else {
        panic!("not an instance")
    };
    let blob = rec.frames.to_bytes();
    c.bench_function("frame table from index blob (2,000 frames)", |b| {
        b.iter(|| FrameTable::from_bytes(black_box(&blob)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
