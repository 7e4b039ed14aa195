//! What only a shared PostgreSQL index has to get right (issue 15): calls made on an
//! async runtime's thread, two index runs at once converging on what one run makes,
//! connections the server ended replaced without an error, and the database stopped and
//! started again (Unavailable, promptly, then the same answers). Run when
//! `SIA_TEST_PG_URL` names a server (scripts/test's second pass); without one there is
//! nothing to test, and each test says so and returns.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sia::{Config, Engine, ErrorKind, Request, StudyFilter};

use crate::common::pg_url;

/// An engine on a new schema (and that schema's URL), or `None` without a server.
fn pg_engine(extra: &str) -> Option<(Engine, String)> {
    let Some(url) = pg_url() else {
        eprintln!("SIA_TEST_PG_URL is not set: PostgreSQL operations not tested here");
        return None;
    };
    let url = format!("{url}{extra}");
    let engine = Engine::open(Config::builder().index_url(url.clone()).build()).unwrap();
    Some((engine, url))
}

fn get(engine: &Engine, target: &str) -> (u16, Vec<u8>) {
    let r = engine.handle(&Request::get(target));
    (r.status, r.body.to_vec())
}

#[test]
fn calls_on_an_async_runtime_thread_are_answered_not_panicked() {
    let Some((engine, _)) = pg_engine("") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    sia::write_demo(&dir.path().join("data")).unwrap();
    for runtime in [
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap(),
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap(),
    ] {
        // The sync client would start its own runtime inside this one and panic; the
        // engine moves such calls to a plain thread.
        let report = runtime
            .block_on(async { engine.index(&[dir.path().join("data")], &Default::default()) })
            .unwrap();
        assert_eq!(report.indexed + report.unchanged, 40, "{report:?}");
        let (status, body) = runtime.block_on(async { get(&engine, "/dicom-web/studies") });
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn two_index_runs_at_once_converge_on_what_one_run_makes() {
    let Some((first, url)) = pg_engine("") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    sia::write_demo(&data).unwrap();
    // Duplicates, so the rule (the smallest path keeps the instance) is exercised by
    // both runs: a copy sorting before its original and one sorting after.
    let original = data.join("DEMO-001/study1/series1/001.dcm");
    std::fs::copy(&original, data.join("DEMO-001/study1/series1/000.dcm")).unwrap();
    std::fs::copy(&original, data.join("DEMO-001/zz.dcm")).unwrap();
    // A second engine on the same schema: its own pool, as another host's would be.
    let second = Engine::open(Config::builder().index_url(url.clone()).build()).unwrap();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| first.index(&[&data], &Default::default()));
        let b = s.spawn(|| second.index(&[data.join("DEMO-001")], &Default::default()));
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert_eq!(a.indexed + b.indexed, 40, "{a:?} {b:?}");

    let (reference, _) = pg_engine("").unwrap();
    let once = reference.index(&[&data], &Default::default()).unwrap();
    assert_eq!(once.indexed, 40, "{once:?}");
    assert_eq!(once.duplicates.len(), 2, "{once:?}");
    for target in [
        "/dicom-web/studies",
        "/dicom-web/series",
        "/dicom-web/instances?includefield=all",
    ] {
        assert_eq!(get(&first, target), get(&reference, target), "{target}");
        assert_eq!(get(&second, target), get(&reference, target), "{target}");
    }
    let ids = |e: &Engine| -> Vec<String> {
        let (_, body) = get(e, "/fhir/ImagingStudy");
        let v: Value = serde_json::from_slice(&body).unwrap();
        v["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["resource"]["id"].to_string())
            .collect()
    };
    assert_eq!(ids(&first), ids(&reference));

    // No duplicate rows, and one row per file: what the constraints promise, counted.
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM files), (SELECT count(*) FROM instances),
                    (SELECT count(DISTINCT sop_instance_uid) FROM instances),
                    (SELECT count(*) FROM files WHERE state = 1)",
            &[],
        )
        .unwrap();
    let counts: (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(counts, (42, 40, 40, 2));
    // The kept file is the smallest path.
    let kept: String = c
        .query_one(
            "SELECT f.path FROM instances i JOIN files f ON f.id = i.file
             WHERE i.sop_instance_uid = (SELECT sop_instance_uid FROM files WHERE path LIKE '%/zz.dcm')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(kept.ends_with("series1/000.dcm"), "{kept}");
}

#[test]
fn connections_the_server_ended_while_idle_are_replaced_without_an_error() {
    let app = format!("sia_loss_{}", std::process::id());
    let Some((engine, url)) = pg_engine(&format!("&application_name={app}")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    sia::write_demo(&dir.path().join("data")).unwrap();
    engine
        .index(&[dir.path().join("data")], &Default::default())
        .unwrap();
    // Several requests at once, so the pool holds several idle connections.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| assert_eq!(get(&engine, "/dicom-web/studies").0, 200));
        }
    });

    // The server ends this engine's connections (as a restart, a failover or an
    // idle-session timeout would).
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let ended = c
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&app],
        )
        .unwrap()
        .len();
    assert!(ended >= 1, "the engine kept no connection open");
    // Wait until the server has ended them, so that each is dead when lent out.
    while c
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&app],
        )
        .unwrap()
        .get::<_, i64>(0)
        > 0
    {
        std::thread::sleep(Duration::from_millis(10));
    }

    // A dead connection fails at its first statement; the read runs again on another,
    // so no request sees the loss, reads and writes alike.
    for target in [
        "/dicom-web/studies",
        "/fhir/ImagingStudy",
        "/dicom-web/series",
    ] {
        let (status, body) = get(&engine, target);
        assert_eq!(status, 200, "{target}: {}", String::from_utf8_lossy(&body));
    }
    engine.link_patient("", "p1", "DEMO-001", "").unwrap();
    let again = engine
        .index(&[dir.path().join("data")], &Default::default())
        .unwrap();
    assert_eq!(again.unchanged, 40, "{again:?}");
}

/// A throwaway PostgreSQL cluster of this test's own (scripts/pg-throwaway), which it
/// may stop and start; removed when dropped.
struct Cluster {
    url: String,
    folder: String,
}

impl Cluster {
    fn script() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-throwaway")
    }

    fn start() -> Cluster {
        let out = Command::new(Self::script()).arg("start").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = String::from_utf8(out.stdout).unwrap();
        let value = |key: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {out}"))
                .to_string()
        };
        Cluster {
            url: value("SIA_TEST_PG_URL="),
            folder: value("SIA_TEST_PG_DIR="),
        }
    }

    /// `scripts/pg-throwaway COMMAND FOLDER ARGS...`.
    fn run(&self, command: &str, args: &[&str]) {
        let out = Command::new(Self::script())
            .arg(command)
            .arg(&self.folder)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{command} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .args(["stop", &self.folder])
            .status();
    }
}

#[test]
fn the_database_stopped_is_unavailable_promptly_and_answers_again_once_started() {
    // Needs PostgreSQL's server binaries, which the suite's PostgreSQL pass has.
    if pg_url().is_none() {
        eprintln!("SIA_TEST_PG_URL is not set: a database outage is not tested here");
        return;
    }
    let cluster = Cluster::start();
    let engine = Engine::open(Config::builder().index_url(cluster.url.clone()).build()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    sia::write_demo(&dir.path().join("data")).unwrap();
    engine
        .index(&[dir.path().join("data")], &Default::default())
        .unwrap();
    let all = StudyFilter::default();
    let before = engine.studies(&all).unwrap();
    assert_eq!(before.len(), 4);

    for mode in ["fast", "immediate"] {
        // `immediate` is a crash without a shutdown checkpoint: the server recovers from
        // its WAL when started again.
        cluster.run("server-stop", &[mode]);
        // Every call, typed or over HTTP, is Unavailable, each well within the connect
        // timeout (5 s): with the server gone, a connection attempt fails at once, and
        // no call waits for a connection that cannot come.
        for _ in 0..3 {
            let t = Instant::now();
            let err = engine.studies(&all).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{mode}: {err}");
            assert_eq!(err.retry_after(), Some(1));
            let r = engine.handle(&Request::get("/fhir/ImagingStudy"));
            assert_eq!(r.status, 503, "{mode}");
            let err = engine.link_patient("", "p2", "DEMO-002", "").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{mode}: {err}");
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{mode}: {:?}",
                t.elapsed()
            );
        }

        cluster.run("server-start", &[]);
        let t = Instant::now();
        let after = loop {
            match engine.studies(&all) {
                Ok(rows) => break rows,
                Err(e) if e.kind() == ErrorKind::Unavailable => {
                    assert!(
                        t.elapsed() < Duration::from_secs(10),
                        "{mode}: not back: {e}"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("{mode}: {e}"),
            }
        };
        assert_eq!(after, before, "{mode}");
        assert_eq!(get(&engine, "/dicom-web/studies").0, 200, "{mode}");
        let again = engine
            .index(&[dir.path().join("data")], &Default::default())
            .unwrap();
        assert_eq!(again.unchanged, 40, "{mode}: {again:?}");
    }
}

#[test]
fn a_run_cut_off_mid_way_leaves_a_consistent_index_that_a_rerun_completes() {
    let app = format!("sia_cut_{}", std::process::id());
    let Some((engine, url)) = pg_engine(&format!("&application_name={app}")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    sia::write_demo(&data).unwrap();
    // After 12 files (two batches of 5 committed), the server ends the run's sessions,
    // as a kill -9 of the indexer or a lost network would.
    let killer = std::sync::Mutex::new(postgres::Client::connect(&url, postgres::NoTls).unwrap());
    let opts = sia::IndexOptions::default().batch_size(5).progress(|p| {
        if p.files_done == 12 {
            killer
                .lock()
                .unwrap()
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = $1 AND pid <> pg_backend_pid()",
                    &[&app],
                )
                .unwrap();
        }
        std::ops::ControlFlow::Continue(())
    });
    let err = engine.index(&[&data], &opts).unwrap_err();
    assert_eq!(err.kind(), sia::ErrorKind::Unavailable, "{err}");
    drop(opts);

    let counts = |c: &mut postgres::Client| -> (i64, i64, i64) {
        let r = c
            .query_one(
                "SELECT (SELECT count(*) FROM files), (SELECT count(*) FROM instances),
                        (SELECT count(*) FROM files f WHERE f.state = 0
                           AND EXISTS (SELECT 1 FROM instances i WHERE i.file = f.id))",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    let mut c = killer.into_inner().unwrap();
    let (files, instances, indexed_with_instance) = counts(&mut c);
    // Only whole batches were kept, and every file row tells the truth.
    assert_eq!(files % 5, 0, "{files}");
    assert!((10..40).contains(&files), "{files}");
    assert_eq!((instances, indexed_with_instance), (files, files));

    // The run's advisory lock ended with its session: a new run starts at once and
    // completes the work.
    // A connection that died with the others and is still in the pool is replaced.
    let again = engine.index(&[&data], &Default::default()).unwrap();
    assert_eq!(again.indexed as i64, 40 - files, "{again:?}");
    assert_eq!(again.unchanged as i64, files, "{again:?}");
    assert_eq!(counts(&mut c), (40, 40, 40));
}

/// A run that wrote rows leaves PostgreSQL statistics for the planner: without them
/// (autovacuum analyzes only some time after a bulk load) a patient search over a fresh
/// archive ran as sequential scans, 114 ms instead of under 1 ms at 50,000 instances.
#[test]
fn an_index_run_that_wrote_rows_leaves_planner_statistics() {
    let Some((engine, url)) = pg_engine("") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    sia::write_demo(&dir.path().join("data")).unwrap();
    let analyzed = || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.query(
            "SELECT relname FROM pg_stat_user_tables
             WHERE schemaname = current_schema() AND last_analyze IS NOT NULL
             ORDER BY relname",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
    };
    assert!(
        analyzed().is_empty(),
        "a new schema starts without statistics"
    );
    let report = engine
        .index(&[dir.path().join("data")], &Default::default())
        .unwrap();
    assert_eq!(report.indexed, 40, "{report:?}");
    assert_eq!(
        analyzed(),
        [
            "files",
            "instances",
            "patient_links",
            "patients",
            "series",
            "studies"
        ]
    );
}
