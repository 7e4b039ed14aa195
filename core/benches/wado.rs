//! `Engine::handle` latency for the requests viewers make most.
//!
//! `cargo bench -p sia --bench wado`. Builds, in a temporary folder: a 300 MB native
//! multi-frame instance (600 frames of 512x512x16 bit), a 2,000-frame JPEG instance, and
//! a study of 1,000 single-frame instances; indexes them; then times one native frame,
//! one JPEG frame, and the study's metadata. `bench/wado_bench.py` runs pydicom and
//! Orthanc on the same files for comparison.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sia::http::Request;
use sia::{Config, Engine};

mod wado_data;

use wado_data::{STUDY, build};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let engine = Engine::open(Config {
        db: dir.path().join("i.db"),
        ..Config::default()
    })
    .unwrap();
    engine.index(&[dir.path()], &Default::default()).unwrap();

    let native = Request::get(&format!(
        "/dicom-web/studies/{STUDY}/series/{STUDY}.1/instances/{STUDY}.1.1/frames/300"
    ))
    .with_header(
        "Accept",
        "multipart/related; type=\"application/octet-stream\"",
    );
    assert_eq!(engine.handle(&native).status, 200);
    c.bench_function("handle: 1 native 512 KB frame of a 300 MB instance", |b| {
        b.iter(|| black_box(engine.handle(black_box(&native))))
    });
    let jpeg = Request::get(&format!(
        "/dicom-web/studies/{STUDY}/series/{STUDY}.2/instances/{STUDY}.2.1/frames/1000"
    ))
    .with_header(
        "Accept",
        "multipart/related; type=\"image/jpeg\"; transfer-syntax=1.2.840.10008.1.2.4.50",
    );
    assert_eq!(engine.handle(&jpeg).status, 200);
    c.bench_function("handle: 1 JPEG frame of a 2,000-frame instance", |b| {
        b.iter(|| black_box(engine.handle(black_box(&jpeg))))
    });
    let metadata = Request::get(&format!(
        "/dicom-web/studies/{STUDY}/series/{STUDY}.3/metadata"
    ));
    assert_eq!(engine.handle(&metadata).status, 200);
    let mut group = c.benchmark_group("slow");
    group.sample_size(20);
    group.bench_function("handle: metadata of a 1,000-instance series", |b| {
        b.iter(|| black_box(engine.handle(black_box(&metadata))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
