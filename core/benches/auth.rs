//! Authorization costs: a cached decision, an uncached RS256/ES256 verification plus
//! decision, and FHIR and QIDO-RS searches for a patient with 10 studies through
//! `handle`, with the search answer cache on and off.
//!
//! `cargo bench -p sia --bench auth`; `bench/auth_bench.py` puts PyJWT next to it.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::Algorithm;
use sia::Request;
use sia::internal::auth::token::verify;
use sia::internal::auth::{Authorizer, Interaction, PatientPolicy};

mod auth_data;

fn bench(c: &mut Criterion) {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures");
    let policies = vec![auth_data::policy(&keys)];
    let rs = auth_data::token(&keys, Algorithm::RS256);
    let es = auth_data::token(&keys, Algorithm::ES256);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(verify(&rs, &policies, now).is_ok() && verify(&es, &policies, now).is_ok());
    c.bench_function("verify RS256 + claims (uncached)", |b| {
        b.iter(|| verify(black_box(&rs), &policies, now).unwrap())
    });
    c.bench_function("verify ES256 + claims (uncached)", |b| {
        b.iter(|| verify(black_box(&es), &policies, now).unwrap())
    });
    let auth = Authorizer::new(policies.clone(), PatientPolicy::Links);
    let req =
        Request::get("/fhir/ImagingStudy").with_header("Authorization", &format!("Bearer {rs}"));
    auth.authorize(&req, Interaction::Search).unwrap();
    c.bench_function("authorize, token cached", |b| {
        b.iter(|| {
            auth.authorize(black_box(&req), Interaction::Search)
                .unwrap()
        })
    });

    // Searches with the answer cache on (the default: the same answer while the index
    // is unchanged) and off (the SQL and JSON of every answer).
    let search = Request::get("/fhir/ImagingStudy?patient=123")
        .with_header("Authorization", &format!("Bearer {rs}"));
    let qido = Request::get("/dicom-web/studies?PatientID=P123")
        .with_header("Authorization", &format!("Bearer {rs}"));
    let (on, off) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let engines = [
        ("answer cached", auth_data::engine(on.path(), &keys)),
        (
            "search cache off",
            auth_data::engine_with(off.path(), &keys, 0),
        ),
    ];
    for (cache, engine) in &engines {
        assert_eq!(engine.handle(&search).status, 200);
        assert_eq!(engine.handle(&qido).status, 200);
        c.bench_function(
            &format!("handle: ImagingStudy?patient=123 (10 studies), token cached, {cache}"),
            |b| b.iter(|| engine.handle(black_box(&search))),
        );
        c.bench_function(
            &format!("handle: QIDO studies?PatientID= (10 studies), token cached, {cache}"),
            |b| b.iter(|| engine.handle(black_box(&qido))),
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
