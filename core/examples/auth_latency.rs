//! Times token verification, a cached decision and a FHIR search in-process and prints
//! JSON medians, for `bench/auth_bench.py` to put next to PyJWT.

#[path = "../benches/auth_data.rs"]
mod auth_data;

use std::path::Path;
use std::time::Instant;

use jsonwebtoken::Algorithm;
use sia::Request;
use sia::internal::auth::token::verify;
use sia::internal::auth::{Authorizer, Interaction, PatientPolicy};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(n: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect(),
    )
}

fn main() {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures");
    let policies = vec![auth_data::policy(&keys)];
    let rs = auth_data::token(&keys, Algorithm::RS256);
    let ps = auth_data::token(&keys, Algorithm::PS256);
    let es = auth_data::token(&keys, Algorithm::ES256);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let rs_us = time(2000, || assert!(verify(&rs, &policies, now).is_ok()));
    let ps_us = time(2000, || assert!(verify(&ps, &policies, now).is_ok()));
    let es_us = time(2000, || assert!(verify(&es, &policies, now).is_ok()));
    let auth = Authorizer::new(policies.clone(), PatientPolicy::Links);
    let req =
        Request::get("/fhir/ImagingStudy").with_header("Authorization", &format!("Bearer {rs}"));
    auth.authorize(&req, Interaction::Search).unwrap();
    let n = 1_000_000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            auth.authorize(std::hint::black_box(&req), Interaction::Search)
                .is_ok(),
        );
    }
    let per_second = n as f64 / t.elapsed().as_secs_f64();
    let work = tempfile::tempdir().unwrap();
    let engine = auth_data::engine(work.path(), &keys);
    let search = Request::get("/fhir/ImagingStudy?patient=123")
        .with_header("Authorization", &format!("Bearer {rs}"));
    let search_us = time(5000, || assert_eq!(engine.handle(&search).status, 200));
    println!(
        "{{\"rs256_us\": {rs_us:.1}, \"ps256_us\": {ps_us:.1}, \"es256_us\": {es_us:.1}, \"cached_per_s\": {per_second:.0}, \"search_us\": {search_us:.1}}}"
    );
}
