//! The index at scale (issue 15's figures): for each backend, the ingest rate of a
//! header-only corpus, the index size per instance, and p50 / p99 of the two searches a
//! viewer makes for one patient (QIDO `studies?PatientID=`, FHIR ImagingStudy by patient
//! identifier), each request for a different patient, with the search cache off so
//! every answer comes from the index.
//!
//! ```sh
//! scripts/pg-throwaway -- sh -c 'SIA_BENCH_PG_URL=$SIA_TEST_PG_URL \
//!     cargo bench -p sia --bench index_scale'
//! ```
//!
//! `SIA_BENCH_INSTANCES` (default 1,000,000: 100,000 patients of one study with two
//! series of five instances) sets the corpus, written as real files (about 400 bytes
//! each) through the same writer as `benches/index.rs`, once, into
//! `SIA_BENCH_CORPUS` (default `$TMPDIR/sia-index-scale-<instances>`), and kept for
//! the next run. `SIA_BENCH_REQUESTS` (default 2,000) searches per kind and backend.
//! Without `SIA_BENCH_PG_URL` only SQLite runs. This is a benchmark, not a test: it
//! prints figures and asserts only that every search answers 200 with its patient's
//! study.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sia::{Config, Engine, Request};

mod index_data;
use index_data::{PER_PATIENT, pg_schema, study_uid, write_corpus};

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace([',', '_'], "").parse().ok())
        .unwrap_or(default)
}

/// The corpus folder, written unless a complete one is there (a `complete` marker is
/// written last, so an interrupted run writes it again).
fn corpus(instances: u32) -> PathBuf {
    let dir = std::env::var_os("SIA_BENCH_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("sia-index-scale-{instances}")));
    let marker = dir.join("complete");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let t = Instant::now();
        write_corpus(&dir.join("data"), instances);
        std::fs::write(&marker, b"").unwrap();
        eprintln!(
            "wrote {instances} files in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    dir.join("data")
}

/// Bytes of an SQLite index: the database file and its write-ahead log.
fn sqlite_bytes(db: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(p).ok()
        })
        .map(|m| m.len())
        .sum()
}

/// Bytes of the tables and indexes of the schema a bench URL's `search_path` names.
fn postgres_bytes(url: &str) -> u64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let row = c
        .query_one(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relkind = 'r'",
            &[],
        )
        .unwrap();
    u64::try_from(row.get::<_, i64>(0)).unwrap_or(0)
}

/// p50 and p99 of `samples`.
fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99))
}

/// A patient number from a fixed pseudo-random sequence (the same patients on each
/// backend; SplitMix64).
fn patients(count: u32, n: usize) -> Vec<u32> {
    let mut state = 0x51A_u64;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) % u64::from(count)) as u32
        })
        .collect()
}

/// Times each search of `searches` (path, patient); p50 and p99.
fn time_searches(engine: &Engine, searches: &[(String, u32)]) -> (Duration, Duration) {
    // Warm the connection pool, statement caches and page cache.
    for (p, _) in searches.iter().rev().take(200) {
        let _ = engine.handle(&Request::get(p));
    }
    let mut samples = Vec::with_capacity(searches.len());
    for (p, patient) in searches {
        let request = Request::get(p);
        let t = Instant::now();
        let response = engine.handle(&request);
        samples.push(t.elapsed());
        let body = response.body.to_vec();
        assert_eq!(
            response.status,
            200,
            "{p}: {}",
            String::from_utf8_lossy(&body)
        );
        // The patient's study, its UID ended by the JSON string's quote.
        let uid = format!("{}\"", study_uid(*patient));
        assert!(
            body.windows(uid.len()).any(|w| w == uid.as_bytes()),
            "{p}: not the patient's study"
        );
    }
    percentiles(&mut samples)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not used.
    let instances = env_u32("SIA_BENCH_INSTANCES", 1_000_000);
    let requests = env_u32("SIA_BENCH_REQUESTS", 2_000) as usize;
    let data = corpus(instances);
    let work = tempfile::tempdir().unwrap();
    let pg = std::env::var("SIA_BENCH_PG_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let mut backends = vec!["sqlite"];
    if pg.is_some() {
        backends.push("postgres");
    }
    let patient_count = instances / PER_PATIENT;
    let chosen = patients(patient_count, requests);
    let qido: Vec<(String, u32)> = chosen
        .iter()
        .map(|&p| (format!("/dicom-web/studies?PatientID=P{p:05}"), p))
        .collect();
    let fhir: Vec<(String, u32)> = chosen
        .iter()
        .map(|&p| {
            (
                format!("/fhir/ImagingStudy?patient.identifier=HOSP|P{p:05}"),
                p,
            )
        })
        .collect();
    println!(
        "index at scale: {instances} instances ({patient_count} patients), {requests} searches per kind, search cache off"
    );
    println!(
        "{:<10} {:>14} {:>12} {:>16} {:>16} {:>16} {:>16}",
        "backend", "ingest inst/s", "bytes/inst", "QIDO p50", "QIDO p99", "FHIR p50", "FHIR p99"
    );
    for (n, backend) in backends.into_iter().enumerate() {
        let (builder, url) = match backend {
            "sqlite" => (Config::builder().db(work.path().join("index.db")), None),
            _ => {
                let url = pg_schema(pg.as_deref().unwrap(), n as u32);
                (Config::builder().index_url(url.clone()), Some(url))
            }
        };
        let engine = Engine::open(builder.search_cache_bytes(0).build()).unwrap();
        let t = Instant::now();
        let report = engine.index(&[&data], &Default::default()).unwrap();
        let ingest = t.elapsed();
        assert_eq!(report.indexed, u64::from(instances), "{report:?}");
        let bytes = match &url {
            None => sqlite_bytes(&work.path().join("index.db")),
            Some(url) => postgres_bytes(url),
        };
        let (q50, q99) = time_searches(&engine, &qido);
        let (f50, f99) = time_searches(&engine, &fhir);
        println!(
            "{:<10} {:>14.0} {:>12} {:>16?} {:>16?} {:>16?} {:>16?}",
            backend,
            f64::from(instances) / ingest.as_secs_f64(),
            bytes / u64::from(instances),
            q50,
            q99,
            f50,
            f99
        );
    }
}
