//! The index on each backend: ingest rate of header-only files, and the two searches a
//! viewer makes for one patient (QIDO `studies?PatientID=`, FHIR ImagingStudy by
//! patient identifier). SQLite always; PostgreSQL too when `SIA_BENCH_PG_URL` names a
//! database; each run uses a new schema in it. With a throwaway cluster:
//! `scripts/pg-throwaway -- sh -c 'SIA_BENCH_PG_URL=$SIA_TEST_PG_URL cargo bench -p sia
//! --bench index'` (pg-throwaway names its cluster in `SIA_TEST_PG_URL`).
//!
//! `SIA_BENCH_INSTANCES` sets the corpus (default 20,000 instances: 2,000 patients of
//! one study with two series of five instances). The files are written once, header
//! only (no pixel data): what an index run reads of a file is its header.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sia::{Config, Engine, Request};

mod index_data;
use index_data::{PER_PATIENT, pg_schema, write_corpus};

fn bench(c: &mut Criterion) {
    let instances: u32 = std::env::var("SIA_BENCH_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_corpus(&data, instances);
    let pg = std::env::var("SIA_BENCH_PG_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let mut runs = 0;
    let mut open = |backend: &str| -> Engine {
        runs += 1;
        let config = match backend {
            "sqlite" => Config::builder().db(dir.path().join(format!("i{runs}.db"))),
            _ => Config::builder().index_url(pg_schema(pg.as_deref().unwrap(), runs)),
        };
        Engine::open(config.build()).unwrap()
    };
    let backends: Vec<&str> = if pg.is_some() {
        vec!["sqlite", "postgres"]
    } else {
        vec!["sqlite"]
    };
    for backend in backends {
        let mut group = c.benchmark_group(format!("index [{backend}]"));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(1));
        group.bench_function(format!("ingest {instances} header-only files"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let engine = open(backend);
                    let t = Instant::now();
                    let r = engine.index(&[&data], &Default::default()).unwrap();
                    total += t.elapsed();
                    assert_eq!(r.indexed, u64::from(instances));
                }
                total
            })
        });
        group.finish();

        let engine = open(backend);
        engine.index(&[&data], &Default::default()).unwrap();
        let patient = instances / PER_PATIENT / 2;
        let qido = Request::get(&format!("/dicom-web/studies?PatientID=P{patient:05}"));
        let fhir = Request::get(&format!(
            "/fhir/ImagingStudy?patient.identifier=HOSP|P{patient:05}"
        ));
        for r in [&qido, &fhir] {
            let resp = engine.handle(r);
            assert_eq!(
                resp.status,
                200,
                "{}",
                String::from_utf8_lossy(&resp.body.to_vec())
            );
        }
        let mut group = c.benchmark_group(format!("search [{backend}]"));
        group.bench_function(format!("QIDO studies?PatientID= of {instances}"), |b| {
            b.iter(|| black_box(engine.handle(black_box(&qido))))
        });
        group.bench_function(
            format!("FHIR ImagingStudy?patient.identifier= of {instances}"),
            |b| b.iter(|| black_box(engine.handle(black_box(&fhir)))),
        );
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
