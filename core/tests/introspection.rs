//! A host that introspects tokens at the EHR hands the response to `handle`.

use std::sync::Arc;

use serde_json::json;
use sia::auth::{Authorizer, IssuerPolicy, Keys, PatientPolicy};
use sia::http::Request;
use sia::{Config, Engine};

#[test]
fn handle_evaluates_a_hosts_introspection_response() {
    let dir = tempfile::tempdir().unwrap();
    sia::demo::write_demo(&dir.path().join("data")).unwrap();
    let policy = IssuerPolicy {
        iss: "https://ehr".into(),
        audiences: vec!["https://ehr/fhir".into()],
        algorithms: vec![jsonwebtoken::Algorithm::HS256],
        leeway: 30,
        require_typ: None,
        patient_claim: "patient".into(),
        scope_claim: "scope".into(),
        keys: Keys::Secret(b"0123456789abcdef0123456789abcdef".to_vec()),
    };
    let auth = Arc::new(Authorizer::new(vec![policy], PatientPolicy::Links));
    let engine = Engine::open(Config {
        db: dir.path().join("i.db"),
        auth: Some(auth),
        ..Config::default()
    })
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
