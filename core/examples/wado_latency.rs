//! Times `Engine::handle` in-process on the WADO benchmark data and prints JSON, for
//! `bench/wado_bench.py` to put next to pydicom and Orthanc.
//!
//! `cargo run --release --example wado_latency -- DIR` (writes the data into DIR first
//! if DIR/i.db does not exist).

#[path = "../benches/wado_data.rs"]
mod wado_data;

use std::time::Instant;

use sia::Request;
use sia::{Config, Engine};
use wado_data::STUDY;

fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[(v.len() * 99 / 100).min(v.len() - 1)])
}

fn time(engine: &Engine, req: &Request, n: usize) -> (f64, f64) {
    assert_eq!(engine.handle(req).status, 200);
    let samples = (0..n)
        .map(|_| {
            let t = Instant::now();
            let r = engine.handle(req);
            std::hint::black_box(&r);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    percentiles(samples)
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: wado_latency DIR"));
    let db = dir.join("i.db");
    if !db.exists() {
        wado_data::build(&dir);
    }
    let engine = Engine::open(Config::builder().db(db).build()).expect("open");
    engine.index(&[&dir], &Default::default()).expect("index");
    let native = Request::get(&format!(
        "/dicom-web/studies/{STUDY}/series/{STUDY}.1/instances/{STUDY}.1.1/frames/300"
    ))
    .with_header(
        "Accept",
        "multipart/related; type=\"application/octet-stream\"",
    );
    let jpeg = Request::get(&format!(
        "/dicom-web/studies/{STUDY}/series/{STUDY}.2/instances/{STUDY}.2.1/frames/1000"
    ))
    .with_header(
        "Accept",
        "multipart/related; type=\"image/jpeg\"; transfer-syntax=1.2.840.10008.1.2.4.50",
    );
    let metadata = Request::get(&format!(
        "/dicom-web/studies/{STUDY}/series/{STUDY}.3/metadata"
    ));
    let (n50, n99) = time(&engine, &native, 20_000);
    let (j50, j99) = time(&engine, &jpeg, 20_000);
    let (m50, m99) = time(&engine, &metadata, 50);
    println!(
        "{{\"native_frame_us\": [{n50:.2}, {n99:.2}], \"jpeg_frame_us\": [{j50:.2}, {j99:.2}], \"metadata_1000_us\": [{m50:.0}, {m99:.0}]}}"
    );
}
