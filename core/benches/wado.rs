//! `Engine::handle` latency for the requests viewers make most.
//!
//! `cargo bench -p sia --bench wado`. Builds, in a temporary folder: a 300 MB native
//! multi-frame instance (600 frames of 512x512x16 bit), a 2,000-frame JPEG instance, and
//! a study of 1,000 single-frame instances; indexes them; then times one native frame,
//! one JPEG frame, and the study's metadata, in each read mode (`pread`, the default, and
//! `mmap`) in the same run. `bench/wado_bench.py` runs pydicom and Orthanc on the same
//! files for comparison.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sia::ReadMode;
use sia::Request;
use sia::{Config, Engine};

mod wado_data;

use wado_data::{STUDY, build};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    for mode in [ReadMode::Pread, ReadMode::Mmap] {
        let engine = Engine::open(
            Config::builder()
                .db(dir.path().join("i.db"))
                .read_mode(mode)
                .build(),
        )
        .unwrap();
        engine.index(&[dir.path()], &Default::default()).unwrap();
        let m = match mode {
            ReadMode::Pread => "pread",
            ReadMode::Mmap => "mmap",
        };
        requests(c, &engine, m);
    }
}

fn requests(c: &mut Criterion, engine: &Engine, mode: &str) {
    let native = Request::get(&format!(
        "/dicom-web/studies/{STUDY}/series/{STUDY}.1/instances/{STUDY}.1.1/frames/300"
    ))
    .with_header(
        "Accept",
        "multipart/related; type=\"application/octet-stream\"",
    );
    assert_eq!(engine.handle(&native).status, 200);
    c.bench_function(
        &format!("handle: 1 native 512 KB frame of a 300 MB instance [{mode}]"),
        |b| b.iter(|| black_box(engine.handle(black_box(&native)))),
    );
    // What `sia serve` runs on its async workers for a frame: the same answer, refused
    // only when it would decode (none here), so it must cost what `handle` costs.
    assert_eq!(engine.handle_without_decoding(&native).unwrap().status, 200);
    c.bench_function(
        &format!("handle_without_decoding: 1 native 512 KB frame of a 300 MB instance [{mode}]"),
        |b| b.iter(|| black_box(engine.handle_without_decoding(black_box(&native)))),
    );
    let jpeg = Request::get(&format!(
        "/dicom-web/studies/{STUDY}/series/{STUDY}.2/instances/{STUDY}.2.1/frames/1000"
    ))
    .with_header(
        "Accept",
        "multipart/related; type=\"image/jpeg\"; transfer-syntax=1.2.840.10008.1.2.4.50",
    );
    assert_eq!(engine.handle(&jpeg).status, 200);
    c.bench_function(
        &format!("handle: 1 JPEG frame of a 2,000-frame instance [{mode}]"),
        |b| b.iter(|| black_box(engine.handle(black_box(&jpeg)))),
    );
    let metadata = Request::get(&format!(
        "/dicom-web/studies/{STUDY}/series/{STUDY}.3/metadata"
    ));
    assert_eq!(engine.handle(&metadata).status, 200);
    let mut group = c.benchmark_group("slow");
    group.sample_size(20);
    group.bench_function(
        format!("handle: metadata of a 1,000-instance series [{mode}]"),
        |b| b.iter(|| black_box(engine.handle(black_box(&metadata)))),
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
