//! A host that introspects tokens at the EHR hands the response to `handle`.

use std::sync::Arc;

use serde_json::json;
use sia::Engine;
use sia::Request;
use sia::{Authorizer, IssuerPolicy, Keys, PatientPolicy};

#[test]
fn handle_evaluates_a_hosts_introspection_response() {
    let dir = tempfile::tempdir().unwrap();
    sia::write_demo(&dir.path().join("data")).unwrap();
    let policy = IssuerPolicy::new(
        "https://ehr",
        &["https://ehr/fhir"],
        &["HS256"],
        Keys::shared_secret(b"0123456789abcdef0123456789abcdef"),
    )
    .unwrap();
    let auth = Arc::new(Authorizer::new(vec![policy], PatientPolicy::Links));
    let engine = Engine::open(
        crate::common::config_in(dir.path())
            .authorizer(Some(auth))
            .build(),
    )
    .unwrap();
    engine
        .index(&[dir.path().join("data")], &Default::default())
        .unwrap();
    engine
        .index_db()
        .link_patient("123", "DEMO-001", "SIA_DEMO")
        .unwrap();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let mut req = Request::get("/fhir/ImagingStudy");
    req.introspection = Some(
        json!({"active": true, "iss": "https://ehr", "aud": "https://ehr/fhir", "exp": exp, "scope": "patient/ImagingStudy.rs", "patient": "123"}),
    );
    let resp = engine.handle(&req);
    assert_eq!(resp.status, 200);
    let bundle: serde_json::Value = serde_json::from_slice(&resp.body.to_vec()).unwrap();
    assert_eq!(bundle["total"], 2);
    req.introspection = Some(json!({"active": false}));
    assert_eq!(engine.handle(&req).status, 401);
    // Without a response or a header: 401.
    assert_eq!(
        engine.handle(&Request::get("/fhir/ImagingStudy")).status,
        401
    );
}
