//! The typed calls of the engine (issue 17), each exercised without `Engine::handle`,
//! and checked against what `handle` answers the same caller.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};

use sia::DEMO_UID_ROOT as ROOT;
use sia::{
    Access, Config, Credentials, DicomRef, Engine, ErrorKind, Grant, IndexOptions, QidoLevel,
    ResourceKind,
};

use crate::security::{A, fixture, get, token};

fn study(n: u32) -> String {
    format!("{ROOT}.{n}")
}

fn series(st: u32, se: u32) -> String {
    format!("{ROOT}.{st}.{se}")
}

fn sop(st: u32, se: u32, i: u32) -> String {
    format!("{ROOT}.{st}.{se}.{i}")
}

fn bearer(scope: &str, patient: &str) -> Credentials {
    Credentials::bearer(&token(A, scope, patient))
}

const RS: &str = "patient/ImagingStudy.rs";

/// One issuer, `alice` linked to DEMO-001 (studies 1 and 2).
fn linked() -> crate::security::Fx {
    let fx = fixture(&[A], None);
    fx.engine
        .link_patient(A, "alice", "DEMO-001", "SIA_DEMO")
        .unwrap();
    fx
}

#[test]
fn authorize_decides_token_scopes_and_compartment() {
    let fx = linked();
    let e = &fx.engine;
    let none = e
        .authorize(&Credentials::none(), &Access::study(&study(1)))
        .unwrap_err();
    assert_eq!((none.kind(), none.status()), (ErrorKind::Unauthorized, 401));
    assert!(none.challenge().unwrap().starts_with("Bearer realm="));
    let forged = e
        .authorize(&Credentials::bearer("a.b.c"), &Access::study(&study(1)))
        .unwrap_err();
    assert_eq!(forged.kind(), ErrorKind::Unauthorized);
    assert!(forged.challenge().unwrap().contains("invalid_token"));

    let alice = bearer(RS, "alice");
    let g = e.authorize(&alice, &Access::study(&study(1))).unwrap();
    assert_eq!(g.patient(), Some("alice"));
    assert_eq!(g.issuer(), Some(A));
    assert!(!g.is_local());
    // Study 3 is DEMO-002's: the compartment refuses it, without a scope error.
    let other = e.authorize(&alice, &Access::study(&study(3))).unwrap_err();
    assert_eq!(other.kind(), ErrorKind::Forbidden);
    assert_eq!(other.challenge(), None, "403 without a scope error");
    // Bob is linked to nothing.
    let bob = e
        .authorize(&bearer(RS, "bob"), &Access::instance(&study(1), "x", "y"))
        .unwrap_err();
    assert_eq!(bob.kind(), ErrorKind::Forbidden);
    // Read-only scopes do not search.
    let read_only = bearer("patient/ImagingStudy.r", "alice");
    let s = e
        .authorize(&read_only, &Access::search(ResourceKind::ImagingStudy))
        .unwrap_err();
    assert_eq!(s.kind(), ErrorKind::Forbidden);
    assert!(s.challenge().unwrap().contains("insufficient_scope"));
    // The same decisions as handle's.
    let path = format!("/dicom-web/studies/{}/metadata", study(3));
    assert_eq!(
        get(e, &path, Some(&token(A, RS, "alice"))).status,
        other.status()
    );

    // Without issuers, everything is granted.
    let dir = tempfile::tempdir().unwrap();
    let local = Engine::open(crate::common::config_in(dir.path()).build()).unwrap();
    assert!(
        local
            .authorize(&Credentials::none(), &Access::study("1.2"))
            .unwrap()
            .is_local()
    );
}

#[test]
fn frames_carry_bytes_and_what_numpy_needs() {
    let fx = linked();
    let e = &fx.engine;
    let alice = bearer(RS, "alice");
    let g = e.authorize(&alice, &Access::study(&study(1))).unwrap();
    let inst = DicomRef::instance(&study(1), &series(1, 1), &sop(1, 1, 1));
    let frames = e.frames(&inst, &[1], "", &g).unwrap();
    assert_eq!(frames.frame_count(), 1);
    assert!(frames.missing().is_empty());
    let f = &frames.frames()[0];
    assert_eq!(f.number(), 1);
    assert_eq!(f.transfer_syntax(), "1.2.840.10008.1.2.1");
    assert_eq!(
        f.content_type(),
        "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    );
    assert_eq!((f.samples_per_pixel(), f.bits_allocated()), (1, 16));
    assert_eq!(f.pixel_representation(), 0);
    assert_eq!(f.photometric_interpretation(), "MONOCHROME2");
    assert!(f.rows() > 0 && f.columns() > 0);
    assert_eq!(f.bytes().len(), (f.rows() * f.columns() * 2) as usize);
    // The same bytes handle sends as a single part.
    let path = format!(
        "/dicom-web/studies/{}/series/{}/instances/{}/frames/1",
        study(1),
        series(1, 1),
        sop(1, 1, 1)
    );
    let req = sia::Request::get(&path)
        .with_header("Accept", "application/octet-stream")
        .with_header(
            "Authorization",
            &format!("Bearer {}", token(A, RS, "alice")),
        );
    assert_eq!(e.handle(&req).body.to_vec(), f.bytes().as_ref());

    // Frames asked for that do not exist are named; none at all is NotFound.
    let some = e.frames(&inst, &[1, 5], "", &g).unwrap();
    assert_eq!(some.missing(), &[5]);
    assert_eq!(
        e.frames(&inst, &[7], "", &g).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        e.frames(&inst, &[0], "", &g).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        e.frames(&DicomRef::series(&study(1), &series(1, 1)), &[1], "", &g)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        e.frames(&inst, &[1], "image/jpeg", &g).unwrap_err().kind(),
        ErrorKind::NotAcceptable
    );
    // A grant for study 1 does not reach DEMO-002's study 3.
    let theirs = DicomRef::instance(&study(3), &series(3, 1), &sop(3, 1, 1));
    assert_eq!(
        e.frames(&theirs, &[1], "", &g).unwrap_err().kind(),
        ErrorKind::Forbidden
    );

    // RGB: three samples per pixel.
    let rgb = DicomRef::instance(&study(4), &series(4, 2), &sop(4, 2, 1));
    let f = e.frames(&rgb, &[1], "", &Grant::local()).unwrap();
    let f = &f.frames()[0];
    assert_eq!((f.samples_per_pixel(), f.bits_allocated()), (3, 8));
    assert_eq!(f.photometric_interpretation(), "RGB");
    assert_eq!(f.bytes().len(), (f.rows() * f.columns() * 3) as usize);
}

#[test]
fn frames_outlive_the_engine_in_each_read_mode() {
    for mode in [sia::ReadMode::Pread, sia::ReadMode::Mmap] {
        let dir = tempfile::tempdir().unwrap();
        sia::write_demo(&dir.path().join("data")).unwrap();
        let engine =
            Engine::open(crate::common::config_in(dir.path()).read_mode(mode).build()).unwrap();
        engine
            .index(&[dir.path().join("data")], &IndexOptions::default())
            .unwrap();
        let inst = DicomRef::instance(&study(2), &series(2, 1), &sop(2, 1, 1));
        let frames = engine.frames(&inst, &[3, 1], "", &Grant::local()).unwrap();
        let expected: Vec<Vec<u8>> = frames
            .frames()
            .iter()
            .map(|f| f.bytes().into_owned())
            .collect();
        assert_ne!(expected[0], expected[1], "frames 3 and 1 differ");
        drop(engine);
        let kept: Vec<sia::Chunk> = frames
            .into_frames()
            .into_iter()
            .flat_map(|f| f.chunks().to_vec())
            .collect();
        let got: Vec<Vec<u8>> = kept.iter().map(|c| c.as_bytes().to_vec()).collect();
        assert_eq!(got, expected, "{mode:?}");
    }
}

#[test]
fn metadata_qido_and_retrieve_follow_the_grant() {
    let fx = linked();
    let e = &fx.engine;
    let alice = bearer(RS, "alice");
    let g = e.authorize(&alice, &Access::study(&study(1))).unwrap();
    let md = e
        .metadata(&DicomRef::series(&study(1), &series(1, 1)), &g)
        .unwrap();
    let v = md.to_value().unwrap();
    assert_eq!(v.as_array().unwrap().len(), 8);
    assert!(!md.is_partial() && md.warnings().is_empty());
    assert_eq!(v[0]["0020000D"]["Value"][0], study(1).as_str());
    assert_eq!(
        e.metadata(&DicomRef::study(&study(3)), &g)
            .unwrap_err()
            .kind(),
        ErrorKind::Forbidden
    );
    assert_eq!(
        e.metadata(&DicomRef::study("1.2.3.999"), &Grant::local())
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );

    // QIDO: alice's search sees her two studies; the local grant sees all four.
    let search = e
        .authorize(&alice, &Access::search(ResourceKind::ImagingStudy))
        .unwrap();
    let uids = |v: serde_json::Value| -> Vec<String> {
        let mut u: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["0020000D"]["Value"][0].as_str().unwrap().to_string())
            .collect();
        u.sort();
        u
    };
    let q = e
        .qido(QidoLevel::Study, None, None, &[], &search)
        .unwrap()
        .to_value()
        .unwrap();
    assert_eq!(uids(q), vec![study(1), study(2)]);
    let all = e
        .qido(QidoLevel::Study, None, None, &[], &Grant::local())
        .unwrap();
    assert_eq!(uids(all.to_value().unwrap()).len(), 4);
    let by_id = e
        .qido(
            QidoLevel::Study,
            None,
            None,
            &[("PatientID".into(), "DEMO-002".into())],
            &search,
        )
        .unwrap();
    assert_eq!(by_id.to_value().unwrap(), serde_json::json!([]));
    let bad = e
        .qido(
            QidoLevel::Study,
            None,
            None,
            &[("NoSuchAttribute".into(), "x".into())],
            &search,
        )
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
    // A read grant does not search.
    assert_eq!(
        e.qido(QidoLevel::Study, None, None, &[], &g)
            .unwrap_err()
            .kind(),
        ErrorKind::Forbidden
    );
    let limited = e
        .qido(
            QidoLevel::Instance,
            None,
            None,
            &[("includefield".into(), "NoSuchField".into())],
            &Grant::local(),
        )
        .unwrap();
    assert!(limited.warnings()[0].contains("NoSuchField"));

    // Retrieve: one instance, bare, is an application/dicom file.
    let inst = DicomRef::instance(&study(1), &series(1, 1), &sop(1, 1, 2));
    let one = e.retrieve(&inst, "application/dicom", &g).unwrap();
    assert!(
        one.content_type()
            .starts_with("application/dicom; transfer-syntax=")
    );
    assert_eq!(&one.body().to_vec()[128..132], b"DICM");
    assert!(one.content_location().unwrap().ends_with(&sop(1, 1, 2)));
    let many = e
        .retrieve(&DicomRef::series(&study(1), &series(1, 1)), "", &g)
        .unwrap();
    assert!(many.content_type().starts_with("multipart/related"));
    assert_eq!(
        e.retrieve(
            &DicomRef::series(&study(1), &series(1, 1)),
            "application/dicom",
            &g
        )
        .unwrap_err()
        .kind(),
        ErrorKind::NotAcceptable
    );
}

#[test]
fn fhir_search_and_read() {
    let fx = linked();
    let e = &fx.engine;
    let alice = bearer(RS, "alice");
    let g = e
        .authorize(&alice, &Access::search(ResourceKind::ImagingStudy))
        .unwrap();
    let bundle = e.search_imaging_studies(&[], &g).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["total"], 2);
    let other = e
        .search_imaging_studies(&[("patient".into(), "bob".into())], &g)
        .unwrap_err();
    assert_eq!(other.kind(), ErrorKind::Forbidden);
    let bad = e
        .search_imaging_studies(&[("colour".into(), "red".into())], &g)
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
    let fhir = bad.to_fhir_response();
    let outcome: serde_json::Value = serde_json::from_slice(&fhir.body.to_vec()).unwrap();
    assert_eq!(outcome["issue"][0]["code"], "not-supported");

    let read = e.authorize(&alice, &Access::study(&study(2))).unwrap();
    let s = e.read_imaging_study(&study(2), &read).unwrap();
    assert_eq!(s["resourceType"], "ImagingStudy");
    assert_eq!(s["subject"]["reference"], "Patient/alice");
    assert_eq!(
        e.read_imaging_study(&study(3), &read).unwrap_err().kind(),
        ErrorKind::Forbidden
    );
    assert_eq!(
        e.read_imaging_study("1.2.3.999", &Grant::local())
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn link_and_import_patients() {
    let fx = fixture(&[A], None);
    let e = &fx.engine;
    let alice = bearer(RS, "alice");
    assert!(e.authorize(&alice, &Access::study(&study(3))).is_err());
    let patient = serde_json::json!({"resourceType": "Patient", "id": "alice",
        "identifier": [{"system": "urn:oid:2.25.228146457203842916711418316839742735.999", "value": "DEMO-002"}]});
    let report = e.import_patients(A, &patient.to_string()).unwrap();
    assert_eq!(report.links, 1);
    assert!(e.authorize(&alice, &Access::study(&study(3))).is_ok());
    assert_eq!(
        e.import_patients(A, "not json").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        e.link_patient(A, "", "DEMO-001", "SIA_DEMO")
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    e.link_patient(A, "alice", "DEMO-001", "SIA_DEMO").unwrap();
    assert!(e.authorize(&alice, &Access::study(&study(1))).is_ok());
}

#[test]
fn an_index_run_reports_progress_and_can_be_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let files = sia::write_demo(&data).unwrap().len();
    let engine = Engine::open(crate::common::config_in(dir.path()).build()).unwrap();
    // Calls while nothing is written (every progress_interval) repeat a count; what
    // matters is that the run stops at the first Break.
    let (seen, after_break) = (AtomicU64::new(0), AtomicU64::new(0));
    let cancel_after_5 = IndexOptions::default().batch_size(2).progress(|p| {
        if seen.fetch_max(p.files_done, Ordering::Relaxed) >= 5 {
            after_break.fetch_add(1, Ordering::Relaxed);
        }
        if p.files_done >= 5 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    let err = engine.index(&[&data], &cancel_after_5).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(seen.load(Ordering::Relaxed), 5);
    assert_eq!(
        after_break.load(Ordering::Relaxed),
        0,
        "no call after the Break"
    );
    // The committed batches stay (files 1-4); the run after completes the rest.
    let local = Grant::local();
    let studies = |e: &Engine| {
        e.qido(QidoLevel::Instance, None, None, &[], &local)
            .unwrap()
            .to_value()
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    let partial = studies(&engine);
    assert!((4..files).contains(&partial), "{partial} of {files}");
    let report = engine.index(&[&data], &IndexOptions::default()).unwrap();
    assert_eq!(report.indexed as usize + partial, files);
    assert_eq!(studies(&engine), files);
}

#[test]
fn a_walk_that_writes_nothing_still_calls_progress_and_can_be_cancelled() {
    // 3,000 files that are not DICOM: indexed as skipped once, unchanged after, so the
    // second run only walks (no file is written, the per-file callback never comes).
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for d in 0..30 {
        let sub = data.join(format!("d{d:02}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..100 {
            std::fs::write(sub.join(format!("f{f:03}.txt")), b"not DICOM").unwrap();
        }
    }
    let engine = Engine::open(Config::builder().db(dir.path().join("w.db")).build()).unwrap();
    let first = engine.index(&[&data], &IndexOptions::default()).unwrap();
    assert_eq!(first.skipped.len(), 3000);
    let calls = AtomicU64::new(0);
    let count = IndexOptions::default().progress(|_| {
        calls.fetch_add(1, Ordering::Relaxed);
        ControlFlow::Continue(())
    });
    let again = engine.index(&[&data], &count).unwrap();
    assert_eq!(again.unchanged, 3000, "{again:?}");

    // A callback that cancels at its first call: a call during the walk (1 ms interval,
    // far shorter than a walk of 3,000 files), with nothing written and the walk going on.
    let during_walk = std::sync::Mutex::new(None);
    let cancel = IndexOptions::default()
        .progress_interval(std::time::Duration::from_millis(1))
        .progress(|p| {
            during_walk.lock().unwrap().get_or_insert((
                p.files_done,
                p.walk_done,
                p.current.as_os_str().is_empty(),
            ));
            ControlFlow::Break(())
        });
    let err = engine.index(&[&data], &cancel).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    drop(cancel);
    assert_eq!(during_walk.into_inner().unwrap(), Some((0, false, true)));
    // The index is untouched and whole: a run after it finds every file unchanged.
    let after = engine.index(&[&data], &IndexOptions::default()).unwrap();
    assert_eq!(
        (after.unchanged, after.indexed, after.removed),
        (3000, 0, 0)
    );
}

#[test]
fn unknown_kids_are_signalled_once_per_cooldown() {
    use sia::{Authorizer, IssuerPolicy, Keys, PatientPolicy};
    let dir = tempfile::tempdir().unwrap();
    let mut policy = crate::security::policy(A);
    policy.keys = Keys::jwks_json(r#"{"keys":[]}"#).unwrap();
    let _: &IssuerPolicy = &policy;
    let engine = Engine::open(
        crate::common::config_in(dir.path())
            .authorizer(Some(std::sync::Arc::new(Authorizer::new(
                vec![policy],
                PatientPolicy::Links,
            ))))
            .build(),
    )
    .unwrap();
    let b64 = |v: serde_json::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let jwt = format!(
        "{}.{}.c2ln",
        b64(serde_json::json!({"alg": "RS256", "kid": "k9"})),
        b64(serde_json::json!({"iss": A}))
    );
    assert_eq!(engine.unknown_kid(&jwt), Some((A.to_string(), "k9".into())));
    assert_eq!(engine.unknown_kid(&jwt), None, "cooldown");
    assert_eq!(engine.unknown_kid("garbage"), None);
}

#[test]
fn errors_carry_no_server_path() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    sia::write_demo(&data).unwrap();
    let engine = Engine::open(crate::common::config_in(dir.path()).build()).unwrap();
    engine.index(&[&data], &IndexOptions::default()).unwrap();
    let file = data.join("DEMO-001/study1/series1/001.dcm");
    assert!(file.exists());
    std::fs::write(&file, b"truncated").unwrap();
    let inst = DicomRef::instance(&study(1), &series(1, 1), &sop(1, 1, 1));
    let e = engine.frames(&inst, &[1], "", &Grant::local()).unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::Gone, 410));
    let root = dir.path().display().to_string();
    assert!(!e.message().contains(&root));
    assert!(e.detail().unwrap().contains(&root));
    let r = e.to_response();
    assert_eq!(r.status, 410);
    assert!(!String::from_utf8_lossy(&r.body.to_vec()).contains(&root));
}

#[test]
fn a_configuration_from_toml_text_resolves_against_its_base() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[server]\nbase_url = \"http://127.0.0.1:8080\"\ndb = \"i.db\"\n";
    let c = Config::from_toml_str(toml, dir.path()).unwrap();
    assert_eq!(c.db, dir.path().join("i.db"));
    let e = Config::from_toml_str("[server]\nnope = 1\n", dir.path()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    Engine::open(c).unwrap();
}

#[test]
fn a_base_url_that_could_split_or_misdirect_an_answer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        "ftp://h",
        "javascript:alert(1)",
        "http://",
        "https:///path",
        "http://h/\r\nSet-Cookie: a=1",
        "http://h /x",
        "http://h/?q=1",
        "http://h/#f",
        "",
    ] {
        let config = Config::builder()
            .db(dir.path().join("i.db"))
            .base_url(bad)
            .build();
        let e = Engine::open(config).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{bad:?}");
        assert!(!e.message().contains('\r'), "{bad:?}");
    }
    for good in ["http://127.0.0.1:8080", "https://pacs.example/imaging/"] {
        let config = Config::builder()
            .db(dir.path().join("i.db"))
            .base_url(good)
            .build();
        assert!(Engine::open(config).is_ok(), "{good}");
    }
}
