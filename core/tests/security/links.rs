//! Links from FHIR patients to DICOM patients are per token issuer.

use super::*;

#[test]
fn links_are_per_issuer() {
    let fx = fixture(&[A, B], Some(cap_key()));
    let db = fx.engine.index_db();
    db.link_patient_for(A, "alice", "DEMO-001", "SIA_DEMO")
        .unwrap();
    db.link_patient_for(B, "bob", "DEMO-002", DEMO2_ISSUER)
        .unwrap();
    let a_alice = token(A, "patient/ImagingStudy.rs", "alice");
    let b_alice = token(B, "patient/ImagingStudy.rs", "alice");
    let b_bob = token(B, "patient/ImagingStudy.rs", "bob");
    let a_bob = token(A, "patient/ImagingStudy.rs", "bob");
    let s1 = format!("/dicom-web/studies/{}/metadata", study(1));
    let s3 = format!("/dicom-web/studies/{}/metadata", study(3));
    assert_eq!(get(&fx.engine, &s1, Some(&a_alice)).status, 200);
    assert_eq!(get(&fx.engine, &s1, Some(&b_alice)).status, 403);
    assert_eq!(get(&fx.engine, &s3, Some(&b_bob)).status, 200);
    assert_eq!(get(&fx.engine, &s3, Some(&a_bob)).status, 403);
    // Search (FHIR and QIDO) on the other issuer finds nothing of alice's.
    let total = |t: &str, q: &str| json_of(&get(&fx.engine, q, Some(t)))["total"].clone();
    assert_eq!(total(&a_alice, "/fhir/ImagingStudy?patient=alice"), 2);
    assert_eq!(total(&b_alice, "/fhir/ImagingStudy?patient=alice"), 0);
    assert_eq!(total(&b_alice, "/fhir/ImagingStudy"), 0);
    let qido = get(&fx.engine, "/dicom-web/studies", Some(&b_alice));
    assert_eq!((qido.status, qido.body.to_vec()), (200, b"[]".to_vec()));
    let fhir = format!("/fhir/ImagingStudy/{}", study(1));
    assert_eq!(get(&fx.engine, &fhir, Some(&b_alice)).status, 403);
    // Patient/alice on issuer A's FHIR base is not issuer B's alice.
    let on_a = format!("/fhir/ImagingStudy?patient={A}/fhir/Patient/alice");
    assert_eq!(get(&fx.engine, &on_a, Some(&a_alice)).status, 200);
    assert_eq!(get(&fx.engine, &on_a, Some(&b_alice)).status, 403);
    let on_b = format!("/fhir/ImagingStudy?subject={B}/fhir/Patient/alice");
    assert_eq!(get(&fx.engine, &on_b, Some(&a_alice)).status, 403);
    // Capabilities carry their issuer: issued for A's alice, they serve A's alice only.
    let v = json_of(&get(&fx.engine, &fhir, Some(&a_alice)));
    let cap = path_of(&capabilities(&v)[0].1);
    let p = format!("{cap}/studies/{}/metadata", study(1));
    assert_eq!(get(&fx.engine, &p, None).status, 200);
    // B's alice gets the same DICOM patient: A's capability still names A's link.
    db.link_patient_for(B, "alice", "DEMO-001", "SIA_DEMO")
        .unwrap();
    assert_eq!(get(&fx.engine, &s1, Some(&b_alice)).status, 200);
    assert_eq!(
        fx.engine
            .unlink_patient(A, "alice", "DEMO-001", "SIA_DEMO")
            .unwrap(),
        1
    );
    assert_eq!(get(&fx.engine, &p, None).status, 401);
    assert_eq!(get(&fx.engine, &s1, Some(&a_alice)).status, 403);
    assert_eq!(get(&fx.engine, &s1, Some(&b_alice)).status, 200);
}

#[test]
fn unassigned_links_serve_only_a_single_issuer() {
    // One issuer: a link made without an issuer serves it.
    let one = fixture(&[A], None);
    one.engine
        .index_db()
        .link_patient("alice", "DEMO-001", "SIA_DEMO")
        .unwrap();
    let s1 = format!("/dicom-web/studies/{}/metadata", study(1));
    let t = token(A, "patient/ImagingStudy.rs", "alice");
    assert_eq!(get(&one.engine, &s1, Some(&t)).status, 200);
    // Two issuers: it serves neither.
    let two = fixture(&[A, B], None);
    two.engine
        .index_db()
        .link_patient("alice", "DEMO-001", "SIA_DEMO")
        .unwrap();
    for iss in [A, B] {
        let t = token(iss, "patient/ImagingStudy.rs", "alice");
        assert_eq!(get(&two.engine, &s1, Some(&t)).status, 403, "{iss}");
        let v = json_of(&get(&two.engine, "/fhir/ImagingStudy", Some(&t)));
        assert_eq!(v["total"], 0, "{iss}");
    }
}

#[test]
fn links_of_a_version_1_index_become_unassigned() {
    if crate::common::on_postgres() {
        // An SQLite index of an older schema, built by hand: the SQLite pass covers it
        // (PostgreSQL indexes start at the current schema).
        return;
    }
    let fx = fixture(&[A], None);
    let path = fx.dir.path().join("i.db");
    {
        // Back to the version 1 link table, with one link.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE patient_links;
             CREATE TABLE patient_links (fhir_patient TEXT NOT NULL, patient_id TEXT NOT NULL,
               issuer TEXT NOT NULL, PRIMARY KEY (fhir_patient, patient_id, issuer));
             CREATE INDEX patient_links_dicom ON patient_links(patient_id, issuer);
             INSERT INTO patient_links VALUES ('alice', 'DEMO-001', 'SIA_DEMO');
             ALTER TABLE files DROP COLUMN reread;
             ALTER TABLE patients DROP COLUMN name_key;
             ALTER TABLE studies DROP COLUMN referring_physician_key;
             ALTER TABLE files DROP COLUMN root;
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let auth = Arc::new(Authorizer::new(vec![policy(A)], PatientPolicy::Links));
    let engine = Engine::open(
        Config::builder()
            .db(path.clone())
            .authorizer(Some(auth))
            .build(),
    )
    .unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: Vec<(String, String)> = conn
        .prepare("SELECT fhir_issuer, fhir_patient FROM patient_links")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, vec![(String::new(), "alice".to_string())]);
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, sia::internal::index::schema::SCHEMA_VERSION);
    let t = token(A, "patient/ImagingStudy.rs", "alice");
    let s1 = format!("/dicom-web/studies/{}/metadata", study(1));
    assert_eq!(get(&engine, &s1, Some(&t)).status, 200);
    assert_eq!(
        engine
            .unlink_patient("", "alice", "DEMO-001", "SIA_DEMO")
            .unwrap(),
        1
    );
    assert_eq!(get(&engine, &s1, Some(&t)).status, 403);
}

#[test]
fn introspection_without_iss_needs_a_single_issuer() {
    let resp = |issuers: &[&str]| {
        let fx = fixture(issuers, None);
        fx.engine
            .index_db()
            .link_patient_for(A, "alice", "DEMO-001", "SIA_DEMO")
            .unwrap();
        let mut req = Request::get("/fhir/ImagingStudy");
        req.introspection = Some(
            json!({"active": true, "exp": now() + 300, "aud": format!("{A}/fhir"),
            "scope": "patient/ImagingStudy.rs", "patient": "alice"}),
        );
        let r = fx.engine.handle(&req);
        (r.status, json_of(&r)["total"].clone())
    };
    assert_eq!(resp(&[A]), (200, json!(2)));
    assert_eq!(resp(&[A, B]).0, 401);
}

#[test]
fn the_subject_is_the_patient_asked_for() {
    let fx = fixture(&[A], None);
    let db = fx.engine.index_db();
    db.link_patient_for(A, "alice", "DEMO-001", "SIA_DEMO")
        .unwrap();
    db.link_patient_for(A, "zoe", "DEMO-001", "SIA_DEMO")
        .unwrap();
    for who in ["alice", "zoe"] {
        let t = token(A, "patient/ImagingStudy.rs", who);
        let v = json_of(&get(
            &fx.engine,
            &format!("/fhir/ImagingStudy?patient={who}"),
            Some(&t),
        ));
        assert_eq!(v["total"], 2);
        for e in v["entry"].as_array().unwrap() {
            assert_eq!(
                e["resource"]["subject"]["reference"],
                format!("Patient/{who}"),
                "{who}"
            );
        }
        let one = json_of(&get(
            &fx.engine,
            &format!("/fhir/ImagingStudy/{}", study(1)),
            Some(&t),
        ));
        assert_eq!(one["subject"]["reference"], format!("Patient/{who}"));
    }
}

#[test]
fn cached_searches_follow_links_written_elsewhere() {
    // Search answers are cached per index generation: a link written or removed by
    // another connection (another process, say) shows in the very next search.
    let fx = fixture(&[A], None);
    let alice = token(A, "patient/ImagingStudy.rs", "alice");
    let fhir = || {
        json_of(&get(
            &fx.engine,
            "/fhir/ImagingStudy?patient=alice",
            Some(&alice),
        ))
    };
    let qido = || {
        get(&fx.engine, "/dicom-web/studies", Some(&alice))
            .body
            .to_vec()
    };
    // Another connection to the same index: a second handle on the SQLite file; on
    // PostgreSQL every write already takes another pooled connection.
    let reopened;
    let other = match fx.engine.index_db().path() {
        Some(file) => {
            reopened = sia::internal::index::Index::open(file).unwrap();
            &reopened
        }
        None => fx.engine.index_db(),
    };
    for _ in 0..2 {
        assert_eq!(fhir()["total"], 0);
        assert_eq!(qido(), b"[]");
    }
    other
        .link_patient_for(A, "alice", "DEMO-001", "SIA_DEMO")
        .unwrap();
    for _ in 0..2 {
        assert_eq!(fhir()["total"], 2);
        let studies: Value = serde_json::from_slice(&qido()).unwrap();
        assert_eq!(studies.as_array().map(Vec::len), Some(2));
    }
    other
        .unlink_patient(A, "alice", "DEMO-001", "SIA_DEMO")
        .unwrap();
    for _ in 0..2 {
        assert_eq!(fhir()["total"], 0);
        assert_eq!(qido(), b"[]");
    }
}
