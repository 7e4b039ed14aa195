//! The binding's Rust side, called as the generated Kotlin calls it (minus the
//! serialisation, which `bytes.rs` tests): argument checks, error kinds, records.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::*;

/// A native single-frame instance of the demo set (64x64, 16-bit grey).
const ROOT: &str = "2.25.228146457203842916711418316839742735";

fn native() -> InstanceRef {
    InstanceRef {
        study: format!("{ROOT}.1"),
        series: format!("{ROOT}.1.1"),
        instance: format!("{ROOT}.1.1.1"),
    }
}

/// The demo set indexed into a fresh index: (its folder, the engine, the files written).
fn indexed() -> (tempfile::TempDir, Arc<Engine>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo").to_string_lossy().into_owned();
    let files = write_demo(demo.clone()).unwrap();
    let engine = Engine::open_index(dir.path().join("sia.db").to_string_lossy().into()).unwrap();
    let report = engine.index(vec![demo], None).unwrap();
    assert_eq!(report.indexed, files.len() as i64);
    (dir, engine, files)
}

fn demo_of(dir: &tempfile::TempDir) -> String {
    dir.path().join("demo").to_string_lossy().into_owned()
}

/// A listener that answers `answer(call number)`, counting its calls.
struct Listener<F: Fn(usize) -> Result<bool, ListenerError> + Send + Sync> {
    calls: AtomicUsize,
    answer: F,
}

impl<F: Fn(usize) -> Result<bool, ListenerError> + Send + Sync> IndexListener for Listener<F> {
    fn on_progress(&self, progress: IndexProgress) -> Result<bool, ListenerError> {
        assert!(progress.files_done <= progress.files_found || !progress.walk_done);
        (self.answer)(self.calls.fetch_add(1, Ordering::SeqCst) + 1)
    }
}

#[test]
fn index_reports_and_reruns_unchanged() {
    let (dir, engine, files) = indexed();
    let again = engine.index(vec![demo_of(&dir)], None).unwrap();
    assert_eq!((again.indexed, again.unchanged), (0, files.len() as i64));
    let missing = engine.index(vec![dir.path().join("nope").to_string_lossy().into()], None);
    assert!(matches!(missing, Err(SiaError::NotFound(_))), "{missing:?}");
}

#[test]
fn a_listener_refusing_or_failing_cancels_and_a_rerun_completes() {
    for fails in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let demo = demo_of(&dir);
        let files = write_demo(demo.clone()).unwrap();
        let engine = Engine::open_index(dir.path().join("c.db").to_string_lossy().into()).unwrap();
        let listener = Listener {
            calls: AtomicUsize::new(0),
            answer: move |n| match (n, fails) {
                (3, false) => Ok(false),
                (3, true) => Err(ListenerError::Failed {
                    reason: "the listener gave up".into(),
                }),
                _ => Ok(true),
            },
        };
        let err = engine.index(vec![demo.clone()], Some(Box::new(listener)));
        match (&err, fails) {
            (Err(SiaError::Cancelled(m)), true) => assert!(m.contains("gave up"), "{m}"),
            (Err(SiaError::Cancelled(_)), false) => {}
            _ => panic!("{err:?}"),
        }
        let rerun = engine.index(vec![demo], None).unwrap();
        assert_eq!(rerun.indexed + rerun.unchanged, files.len() as i64);
        assert!(
            rerun.indexed > 0,
            "the cancelled run did not finish the work"
        );
    }
}

#[test]
fn frames_share_the_engines_bytes_and_check_their_numbers() {
    let (_dir, engine, _) = indexed();
    let frames = engine.frames(native(), vec![1], None, None).unwrap();
    let [frame] = frames.as_slice() else {
        panic!("{frames:?}")
    };
    assert_eq!((frame.number, frame.rows, frame.columns), (1, 64, 64));
    assert_eq!((frame.bits_allocated, frame.samples_per_pixel), (16, 1));
    assert_eq!(frame.transfer_syntax, "1.2.840.10008.1.2.1");
    assert_eq!(frame.bytes.len(), 64 * 64 * 2);
    // The same bytes the HTTP answer carries.
    let i = native();
    let target = format!(
        "/dicom-web/studies/{}/series/{}/instances/{}/frames/1",
        i.study, i.series, i.instance
    );
    let resp = engine.handle(HttpRequest {
        method: "GET".into(),
        target,
        headers: vec![Header {
            name: "Accept".into(),
            value: "application/octet-stream".into(),
        }],
    });
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.to_vec(), frame.bytes.to_vec());

    for (numbers, what) in [(vec![0], "zero"), (vec![-1], "negative"), (vec![], "none")] {
        let r = engine.frames(native(), numbers, None, None);
        assert!(matches!(r, Err(SiaError::InvalidInput(_))), "{what}: {r:?}");
    }
    let past = engine.frames(native(), vec![2], None, None);
    assert!(matches!(past, Err(SiaError::NotFound(_))), "{past:?}");
    let mut unknown = native();
    unknown.instance.push_str(".9");
    let r = engine.frames(unknown, vec![1], None, None);
    assert!(matches!(r, Err(SiaError::NotFound(_))), "{r:?}");
    let r = engine.frames(native(), vec![1], Some("image/x-nothing".into()), None);
    assert!(matches!(r, Err(SiaError::NotAcceptable(_))), "{r:?}");
    let r = engine.frames_nanos_in_rust(native(), 1, 0);
    assert!(matches!(r, Err(SiaError::InvalidInput(_))), "{r:?}");
    assert!(engine.frames_nanos_in_rust(native(), 1, 3).unwrap() > 0.0);
}

#[test]
fn metadata_and_search_answer_json_and_refuse_bad_references() {
    let (_dir, engine, _) = indexed();
    let i = native();
    let study = DicomRef {
        study: i.study.clone(),
        series: None,
        instance: None,
    };
    let all: serde_json::Value =
        serde_json::from_str(&engine.metadata(study, None).unwrap()).unwrap();
    let one = DicomRef {
        study: i.study.clone(),
        series: Some(i.series.clone()),
        instance: Some(i.instance.clone()),
    };
    let one: serde_json::Value =
        serde_json::from_str(&engine.metadata(one, None).unwrap()).unwrap();
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert!(all.as_array().unwrap().len() > 1);
    let headless = DicomRef {
        study: i.study,
        series: None,
        instance: Some(i.instance),
    };
    let r = engine.metadata(headless, None);
    assert!(matches!(r, Err(SiaError::InvalidInput(_))), "{r:?}");

    let bundle: serde_json::Value =
        serde_json::from_str(&engine.search_imaging_studies(vec![], None).unwrap()).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    let bad = vec![QueryParam {
        name: "no-such-parameter".into(),
        value: "1".into(),
    }];
    let r = engine.search_imaging_studies(bad, None);
    assert!(matches!(r, Err(SiaError::InvalidInput(_))), "{r:?}");
}

#[test]
fn configuration_errors_and_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_string_lossy().into_owned();
    let r = Engine::open_config_toml("[server\n".into(), base.clone());
    assert!(matches!(r, Err(SiaError::ConfigError(_))), "{:?}", r.err());
    let r = Engine::open_config_file(dir.path().join("none.toml").to_string_lossy().into());
    assert!(matches!(r, Err(SiaError::ConfigError(_))), "{:?}", r.err());

    // Without [[issuers]] everything is allowed; with one, no token is a 401 decision
    // with its challenge, not an error.
    let local = Engine::open_index(dir.path().join("a.db").to_string_lossy().into()).unwrap();
    let allowed = local.authorize(None, Access::SearchImagingStudies).unwrap();
    assert!(allowed.allowed && allowed.status == 200 && allowed.www_authenticate.is_none());
    std::fs::write(dir.path().join("jwks.json"), r#"{"keys":[]}"#).unwrap();
    let toml = r#"
        [server]
        db = "b.db"
        base_url = "http://127.0.0.1:8080"
        [[issuers]]
        iss = "https://ehr.example/fhir"
        audiences = ["http://127.0.0.1:8080/fhir"]
        jwks_file = "jwks.json"
        algorithms = ["RS256"]
    "#;
    let guarded = Engine::open_config_toml(toml.into(), base).unwrap();
    let refused = guarded
        .authorize(
            None,
            Access::Study {
                study: native().study,
            },
        )
        .unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.status, 401);
    assert!(refused.www_authenticate.unwrap().starts_with("Bearer"));
    let forged = guarded.authorize(Some("not.a.jwt".into()), Access::SearchImagingStudies);
    assert_eq!(forged.unwrap().status, 401);
    let r = guarded.frames(native(), vec![1], None, Some("not.a.jwt".into()));
    assert!(matches!(r, Err(SiaError::InvalidToken(_))), "{r:?}");
}

#[test]
fn error_kinds_map_to_their_exceptions() {
    use sia::ErrorKind as K;
    type Is = fn(&SiaError) -> bool;
    let cases: [(K, Is); 6] = [
        (K::NotFound, |e| matches!(e, SiaError::NotFound(_))),
        (K::Gone, |e| matches!(e, SiaError::Gone(_))),
        (K::Unauthorized, |e| matches!(e, SiaError::InvalidToken(_))),
        (K::Forbidden, |e| matches!(e, SiaError::AccessDenied(_))),
        (K::Cancelled, |e| matches!(e, SiaError::Cancelled(_))),
        (K::InvalidDicom, |e| matches!(e, SiaError::InvalidDicom(_))),
    ];
    for (kind, is) in cases {
        let e = SiaError::from(sia::Error::new(kind, "the message").with_detail("/secret/path"));
        assert!(is(&e), "{kind:?} became {e:?}");
        assert_eq!(e.to_string(), "the message", "the detail stays in Rust");
    }
}

#[test]
fn a_removed_file_is_gone() {
    let (_dir, engine, files) = indexed();
    let target = files
        .iter()
        .find(|f| f.ends_with("DEMO-001/study1/series1/001.dcm"))
        .unwrap();
    std::fs::remove_file(target).unwrap();
    let r = engine.frames(native(), vec![1], None, None);
    assert!(matches!(r, Err(SiaError::Gone(_))), "{r:?}");
}
