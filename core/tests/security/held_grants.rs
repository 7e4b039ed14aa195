//! A grant a host keeps (authorize once, read many times from many threads) is checked
//! again where it is used: it never outlives its token, an unlinked patient, or a study
//! indexed after it was made under a UID it asked for (found by attacking the C ABI's
//! `sia_decision`).

use super::*;
use sia::{Access, Credentials, DicomRef, ErrorKind, Grant, IndexOptions, QidoLevel};

fn read_grant(engine: &Engine, token: &str, study_uid: &str) -> Grant {
    engine
        .authorize(&Credentials::bearer(token), &Access::study(study_uid))
        .unwrap()
}

#[test]
fn a_held_grant_ends_with_its_token() {
    let dir = tempfile::tempdir().unwrap();
    sia::write_demo(&dir.path().join("data")).unwrap();
    let mut strict = policy(A);
    strict.leeway = 0;
    let auth = Arc::new(Authorizer::new(vec![strict], PatientPolicy::Links));
    let engine = Engine::open(
        Config::builder()
            .db(dir.path().join("i.db"))
            .authorizer(Some(auth))
            .build(),
    )
    .unwrap();
    engine
        .index(&[dir.path().join("data")], &IndexOptions::default())
        .unwrap();
    engine
        .index_db()
        .link_patient_for(A, "alice", "DEMO-001", "SIA_DEMO")
        .unwrap();
    let exp = now() + 2;
    let short = token_with(A, json!({"exp": exp}));
    let read = read_grant(&engine, &short, &study(1));
    let search = engine
        .authorize(
            &Credentials::bearer(&short),
            &Access::search(sia::ResourceKind::ImagingStudy),
        )
        .unwrap();
    let inst = DicomRef::study(&study(1));
    assert!(engine.metadata(&inst, &read).is_ok());
    assert!(
        engine
            .qido(QidoLevel::Study, None, None, &[], &search)
            .is_ok()
    );
    while now() < exp {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let e = engine.metadata(&inst, &read).unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::Unauthorized, 401));
    assert!(e.challenge().unwrap().contains("invalid_token"));
    let e = engine
        .qido(QidoLevel::Study, None, None, &[], &search)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    let e = engine
        .search_imaging_studies(&[("patient".to_string(), "alice".to_string())], &search)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
}

#[test]
fn a_held_grant_ends_when_its_patient_is_unlinked() {
    let (fx, alice, _) = alice_and_bob();
    let grant = read_grant(&fx.engine, &alice, &study(1));
    let inst = DicomRef::study(&study(1));
    assert!(fx.engine.metadata(&inst, &grant).is_ok());
    fx.engine
        .unlink_patient(A, "alice", "DEMO-001", "SIA_DEMO")
        .unwrap();
    std::thread::sleep(sia::GRANT_RECHECK_AFTER + std::time::Duration::from_millis(50));
    let e = fx.engine.metadata(&inst, &grant).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    assert!(
        fx.engine
            .frames(
                &DicomRef::instance(&study(1), &format!("{ROOT}.1.1"), &format!("{ROOT}.1.1.1")),
                &[1],
                "",
                &grant
            )
            .is_err()
    );
}

#[test]
fn a_grant_for_a_study_not_yet_indexed_does_not_reach_it_once_another_patient_has_it() {
    let (fx, alice, _) = alice_and_bob();
    let uid = "1.9.9.77";
    // Not in the index: the decision passes (its read answers 404).
    let grant = read_grant(&fx.engine, &alice, uid);
    let e = fx
        .engine
        .metadata(&DicomRef::study(uid), &grant)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    // Bob's study arrives under that UID; alice's held grant must not read it, at once.
    instance_file(
        &fx.data().join("bob-late.dcm"),
        BOB,
        uid,
        "1.9.9.77.1",
        "1.9.9.77.1.1",
    );
    fx.engine
        .index(&[fx.data()], &IndexOptions::default())
        .unwrap();
    let e = fx
        .engine
        .metadata(&DicomRef::study(uid), &grant)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    let e = fx
        .engine
        .frames(
            &DicomRef::instance(uid, "1.9.9.77.1", "1.9.9.77.1.1"),
            &[1],
            "",
            &grant,
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
}
