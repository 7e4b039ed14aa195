//! SMART Backend Services (`system/ImagingStudy.rs`): honoured only under a policy for
//! the token's client, and then exactly as far as the policy reaches.

use std::sync::Arc;

use serde_json::{Value, json};
use sia::Engine;
use sia::Request;
use sia::{Authorizer, BackendAccess, BackendClient, IssuerPolicy, Keys, PatientPolicy};

const ROOT: &str = "2.25.228146457203842916711418316839742735";

fn engine(dir: &std::path::Path) -> Engine {
    sia::write_demo(&dir.join("data")).unwrap();
    let policy = IssuerPolicy::new(
        "https://ehr",
        &["https://ehr/fhir"],
        &["HS256"],
        Keys::shared_secret(b"0123456789abcdef0123456789abcdef"),
    )
    .unwrap();
    let client = |id: &str, access| BackendClient {
        iss: "https://ehr".into(),
        client_id: id.into(),
        access,
    };
    let auth = Authorizer::new(vec![policy], PatientPolicy::Links).with_backend_clients(vec![
        client("research", BackendAccess::AllStudies),
        client("cohort", BackendAccess::Patients(vec!["123".into()])),
    ]);
    let engine = Engine::open(
        crate::common::config_in(dir)
            .authorizer(Some(Arc::new(auth)))
            .build(),
    )
    .unwrap();
    engine
        .index(&[dir.join("data")], &Default::default())
        .unwrap();
    engine
        .index_db()
        .link_patient_for("https://ehr", "123", "DEMO-001", "SIA_DEMO")
        .unwrap();
    engine
}

fn get(engine: &Engine, path: &str, client: &str, scope: &str) -> (u16, Value) {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let (p, q) = path.split_once('?').unwrap_or((path, ""));
    let mut req = Request::get(p);
    req.query = q.to_string();
    req.introspection = Some(
        json!({"active": true, "iss": "https://ehr", "aud": "https://ehr/fhir",
        "exp": exp, "scope": scope, "client_id": client}),
    );
    let resp = engine.handle(&req);
    let body = serde_json::from_slice(&resp.body.to_vec()).unwrap_or(Value::Null);
    (resp.status, body)
}

#[test]
fn system_scopes_reach_what_the_policy_allows_and_nothing_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let sys = "system/ImagingStudy.rs";
    let own = format!("/dicom-web/studies/{ROOT}.1/metadata"); // DEMO-001 (Patient/123)
    let other = format!("/dicom-web/studies/{ROOT}.3/metadata"); // DEMO-002

    // "all": every study, searched and read.
    let (status, bundle) = get(&e, "/fhir/ImagingStudy", "research", sys);
    assert_eq!((status, bundle["total"].as_u64()), (200, Some(4)));
    assert_eq!(get(&e, &other, "research", sys).0, 200);
    assert_eq!(get(&e, &own, "research", sys).0, 200);
    let (status, list) = get(&e, "/dicom-web/studies", "research", sys);
    assert_eq!((status, list.as_array().map(Vec::len)), (200, Some(4)));

    // A named list: those patients' studies only.
    let (status, bundle) = get(&e, "/fhir/ImagingStudy", "cohort", sys);
    assert_eq!((status, bundle["total"].as_u64()), (200, Some(2)));
    assert_eq!(get(&e, &own, "cohort", sys).0, 200);
    assert_eq!(get(&e, &other, "cohort", sys).0, 403);
    let (status, list) = get(&e, "/dicom-web/studies", "cohort", sys);
    assert_eq!((status, list.as_array().map(Vec::len)), (200, Some(2)));
    let (status, bundle) = get(&e, "/fhir/ImagingStudy?patient=123", "cohort", sys);
    assert_eq!((status, bundle["total"].as_u64()), (200, Some(2)));
    assert_eq!(
        get(&e, "/fhir/ImagingStudy?patient=456", "cohort", sys).0,
        403
    );
    assert_eq!(
        get(
            &e,
            "/fhir/ImagingStudy?patient.identifier=SIA_DEMO|DEMO-001",
            "cohort",
            sys
        )
        .0,
        200
    );

    // Scopes still count: search needs s, granular restrictions apply.
    assert_eq!(
        get(
            &e,
            "/fhir/ImagingStudy",
            "research",
            "system/ImagingStudy.r"
        )
        .0,
        403
    );
    assert_eq!(get(&e, &other, "research", "system/ImagingStudy.r").0, 200);
    assert_eq!(
        get(&e, &own, "research", "system/ImagingStudy.rs?modality=MR").0,
        403
    );
    assert_eq!(
        get(&e, &own, "research", "system/ImagingStudy.rs?modality=CT").0,
        200
    );

    // No policy for the client: system scopes grant nothing.
    assert_eq!(get(&e, &own, "someone-else", sys).0, 403);
    assert_eq!(get(&e, "/fhir/ImagingStudy", "someone-else", sys).0, 403);
    // A patient scope is not widened by a policy.
    assert_eq!(get(&e, &own, "research", "patient/ImagingStudy.rs").0, 403);

    // The mode is advertised.
    let (status, conf) = get(&e, "/fhir/.well-known/smart-configuration", "x", sys);
    assert_eq!(status, 200);
    assert!(conf["capabilities"].as_array().unwrap().contains(&json!(
        "http://fhir.org/argonaut/smart-imaging/capabilities/backend-services"
    )));
}

#[test]
fn without_policies_backend_services_are_not_advertised() {
    let dir = tempfile::tempdir().unwrap();
    sia::write_demo(&dir.path().join("data")).unwrap();
    let engine = Engine::open(
        crate::common::config_in(dir.path())
            .authorizer(Some(Arc::new(Authorizer::new(
                vec![],
                PatientPolicy::Links,
            ))))
            .build(),
    )
    .unwrap();
    let resp = engine.handle(&Request::get("/fhir/.well-known/smart-configuration"));
    let conf: Value = serde_json::from_slice(&resp.body.to_vec()).unwrap();
    assert!(!conf.to_string().contains("backend-services"));
}
