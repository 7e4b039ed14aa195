//! A UID reused by another patient never moves data across patients.

use super::*;

#[test]
fn a_reused_uid_never_moves_data_to_another_patient() {
    // (level, study, series, sop) of bob's file, each reusing one of alice's UIDs.
    let cases = [
        (
            "study",
            study(1),
            "1.9.9.1".to_string(),
            "1.9.9.1.1".to_string(),
        ),
        (
            "series",
            "1.9.9.2".to_string(),
            format!("{ROOT}.1.1"),
            "1.9.9.2.1".to_string(),
        ),
        (
            "instance",
            "1.9.9.3".to_string(),
            "1.9.9.3.1".to_string(),
            format!("{ROOT}.1.1.1"),
        ),
        // Every level at once.
        (
            "instance",
            study(1),
            format!("{ROOT}.1.1"),
            format!("{ROOT}.1.1.1"),
        ),
    ];
    for (level, st, se, sop) in cases {
        let (fx, alice, bob) = alice_and_bob();
        // A path that sorts before alice's files: the duplicate rule would prefer it.
        let path = fx.data().join("0000-bob.dcm");
        instance_file(&path, BOB, &st, &se, &sop);
        let report = fx.engine.index(&[fx.data()], &Default::default()).unwrap();
        assert_eq!(report.conflicts.len(), 1, "{level}: {report:?}");
        let c = &report.conflicts[0];
        let uid = match level {
            "study" => &st,
            "series" => &se,
            _ => &sop,
        };
        assert_eq!(
            (c.level, &c.uid, c.path.as_str()),
            (level, uid, path.to_str().unwrap()),
            "{level}"
        );
        assert_eq!(
            (
                c.indexed_patient.patient_id.as_str(),
                c.indexed_patient.issuer.as_str()
            ),
            ("DEMO-001", "SIA_DEMO")
        );
        assert_eq!(
            (
                c.file_patient.patient_id.as_str(),
                c.file_patient.issuer.as_str()
            ),
            BOB
        );
        assert!(report.duplicates.is_empty(), "{level}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["conflicts"][0]["indexed_patient"]["patient_id"],
            "DEMO-001"
        );
        // alice still reads her study, all of it hers; bob does not.
        let s1 = format!("/dicom-web/studies/{}/metadata", study(1));
        let r = get(&fx.engine, &s1, Some(&alice));
        assert_eq!(r.status, 200, "{level}");
        assert!(patient_ids(&r).iter().all(|p| p == "DEMO-001"), "{level}");
        assert_eq!(get(&fx.engine, &s1, Some(&bob)).status, 403, "{level}");
        let frame = format!(
            "/dicom-web/studies/{}/series/{ROOT}.1.1/instances/{ROOT}.1.1.1/frames/1",
            study(1)
        );
        assert_eq!(get(&fx.engine, &frame, Some(&bob)).status, 403, "{level}");
        // bob's searches show none of alice's data.
        let v = json_of(&get(&fx.engine, "/fhir/ImagingStudy", Some(&bob)));
        assert!(!v.to_string().contains("DEMO-001"), "{level}: {v}");
        assert!(!v.to_string().contains(&format!("{ROOT}.1")), "{level}");
        let q = get(&fx.engine, "/dicom-web/instances", Some(&bob));
        let q = String::from_utf8_lossy(&q.body.to_vec()).to_string();
        assert!(!q.contains(&format!("{ROOT}.1.")), "{level}: {q}");
        // The next run reports it again (the file is in quarantine, not forgotten).
        let again = fx.engine.index(&[fx.data()], &Default::default()).unwrap();
        assert_eq!(again.conflicts.len(), 1, "{level}");
    }
}

#[test]
fn a_conflict_resolves_when_the_other_patients_data_is_gone() {
    let (fx, _alice, bob) = alice_and_bob();
    let bob_file = fx.data().join("zz-bob.dcm");
    instance_file(&bob_file, BOB, &study(1), "1.9.9.1", "1.9.9.1.1");
    let report = fx.engine.index(&[fx.data()], &Default::default()).unwrap();
    assert_eq!(report.conflicts.len(), 1);
    // alice's CT files go (study 1): bob's file is indexed on the next run.
    for f in walk(&fx.data()) {
        let bytes = std::fs::read(&f).unwrap();
        if f != bob_file && bytes.windows(6).any(|w| w == b"CT CHE") {
            std::fs::remove_file(&f).unwrap();
        }
    }
    let report = fx.engine.index(&[fx.data()], &Default::default()).unwrap();
    assert!(report.conflicts.is_empty(), "{report:?}");
    let s1 = format!("/dicom-web/studies/{}/metadata", study(1));
    let r = get(&fx.engine, &s1, Some(&bob));
    assert_eq!(r.status, 200);
    assert_eq!(patient_ids(&r), vec!["DEMO-002".to_string()]);
}

#[test]
fn a_file_that_changes_patient_alone_is_re_read_but_never_takes_others_data() {
    let (fx, _alice, bob) = alice_and_bob();
    // A study of one file, first alice's then (the file corrected) bob's: allowed.
    let f = fx.data().join("lone.dcm");
    instance_file(
        &f,
        ("DEMO-001", "SIA_DEMO"),
        "1.9.8",
        "1.9.8.1",
        "1.9.8.1.1",
    );
    fx.engine.index(&[fx.data()], &Default::default()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    instance_file(&f, BOB, "1.9.8", "1.9.8.1", "1.9.8.1.1");
    let report = fx.engine.index(&[fx.data()], &Default::default()).unwrap();
    assert!(report.conflicts.is_empty(), "{report:?}");
    assert_eq!(
        get(&fx.engine, "/dicom-web/studies/1.9.8/metadata", Some(&bob)).status,
        200
    );
    // One of alice's CT files rewritten with bob's Patient ID: the rest of her study
    // stays hers, and that file is not indexed.
    let victim = walk(&fx.data())
        .into_iter()
        .find(|p| std::fs::read(p).unwrap().windows(6).any(|w| w == b"CT CHE"))
        .unwrap();
    instance_file(&victim, BOB, &study(1), &format!("{ROOT}.1.1"), "1.9.8.2");
    let report = fx.engine.index(&[fx.data()], &Default::default()).unwrap();
    assert_eq!(report.conflicts.len(), 1, "{report:?}");
    let s1 = format!("/dicom-web/studies/{}/metadata", study(1));
    assert_eq!(get(&fx.engine, &s1, Some(&bob)).status, 403);
}

#[test]
fn an_index_from_before_the_rule_is_re_read_and_repaired() {
    if crate::common::on_postgres() {
        // An SQLite index of an older schema, built by hand: the SQLite pass covers it
        // (PostgreSQL indexes start at the current schema).
        return;
    }
    let (fx, alice, bob) = alice_and_bob();
    let path = fx.dir.path().join("i.db");
    let s1 = format!("/dicom-web/studies/{}/metadata", study(1));
    {
        // What the old rule left: a file of bob's in alice's study, and the study moved
        // to bob, alice's instances under it.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "UPDATE studies SET patient = (SELECT id FROM patients WHERE patient_id = 'DEMO-002')
               WHERE study_uid = '{ROOT}.1';"
        ))
        .unwrap();
        // Checked before the columns of later schemas go, which the readers use.
        assert_eq!(get(&fx.engine, &s1, Some(&bob)).status, 200, "the old leak");
        conn.execute_batch(
            "ALTER TABLE files DROP COLUMN reread;
             ALTER TABLE patients DROP COLUMN name_key;
             ALTER TABLE studies DROP COLUMN referring_physician_key;
             ALTER TABLE files DROP COLUMN root;
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    instance_file(
        &fx.data().join("zz-bob.dcm"),
        BOB,
        &study(1),
        "1.9.9.1",
        "1.9.9.1.1",
    );
    let auth = Arc::new(Authorizer::new(vec![policy(A)], PatientPolicy::Links));
    let engine = Engine::open(Config::builder().db(path).authorizer(Some(auth)).build()).unwrap();
    let report = engine.index(&[fx.data()], &Default::default()).unwrap();
    assert_eq!(report.unchanged, 0, "every file is read again once");
    assert_eq!(report.conflicts.len(), 1, "{report:?}");
    assert_eq!(report.conflicts[0].file_patient.patient_id, "DEMO-002");
    let r = get(&engine, &s1, Some(&alice));
    assert_eq!(r.status, 200);
    assert!(patient_ids(&r).iter().all(|p| p == "DEMO-001"));
    assert_eq!(get(&engine, &s1, Some(&bob)).status, 403);
    let again = engine.index(&[fx.data()], &Default::default()).unwrap();
    assert!(again.unchanged > 0);
}
