//! No filesystem path, SQL text or internal identifier in a client-visible message
//! (issue 17): every route kind is requested — before and after the files and the index
//! are damaged behind the engine's back — and no body or header value may contain the
//! absolute path of the data folder or of the index. What the engine knows about a
//! failure goes to `Response::detail`, for the host's log.

use std::os::unix::fs::FileExt;

use serde_json::Value;
use sia::ReadMode;
use sia::{Config, Engine};
use sia::{Request, Response};

/// Study, series and instance UIDs of every instance, through QIDO.
fn uids(engine: &Engine) -> Vec<(String, String, String)> {
    let get = |t: &str| -> Vec<Value> {
        let r = engine.handle(&Request::get(t));
        assert_eq!(r.status, 200, "{t}");
        serde_json::from_slice(&r.body.to_vec()).unwrap()
    };
    let uid = |v: &Value, tag: &str| v[tag]["Value"][0].as_str().unwrap().to_string();
    let mut out = Vec::new();
    for st in get("/dicom-web/studies") {
        let s = uid(&st, "0020000D");
        for se in get(&format!("/dicom-web/studies/{s}/series")) {
            let se = uid(&se, "0020000E");
            for i in get(&format!("/dicom-web/studies/{s}/series/{se}/instances")) {
                out.push((s.clone(), se.clone(), uid(&i, "00080018")));
            }
        }
    }
    out
}

/// Requests of every route kind for these instances, valid and not.
fn requests(all: &[(String, String, String)]) -> Vec<Request> {
    let dicom = "multipart/related; type=\"application/dicom\"";
    let mut v = vec![
        Request::get("/fhir/metadata"),
        Request::get("/fhir/.well-known/smart-configuration"),
        Request::get("/fhir/ImagingStudy"),
        Request::get("/fhir/ImagingStudy?patient=Patient/DEMO-001"),
        Request::get("/fhir/ImagingStudy?identifier=urn:oid:1.2.3"),
        Request::get("/fhir/ImagingStudy?started=ge2000&_count=1"),
        Request::get("/fhir/ImagingStudy?started=notadate"),
        Request::get("/fhir/ImagingStudy/nope"),
        Request::get("/fhir/Patient/1"),
        Request::get("/dicom-web/studies"),
        Request::get("/dicom-web/studies?PatientID=DEMO-001&includefield=all"),
        Request::get("/dicom-web/studies?00100010=*"),
        Request::get("/dicom-web/studies/1.2.3/metadata"),
        Request::get("/dicom-web/studies/1.2.3"),
        Request::get("/dicom-web/studies/../../etc/passwd"),
        Request::get("/dicom-web/studies/1.2%2F..%2F..%2Fetc/series"),
        Request::get("/dicom-web/studies/1.2/series/3.4/instances/5.6/frames/1"),
        Request::get("/dicom-web/nothing"),
        Request::get("/wado?requestType=WADO&studyUID=1&seriesUID=2&objectUID=3"),
        Request::get("/elsewhere"),
    ];
    for (s, se, i) in all {
        let inst = format!("/dicom-web/studies/{s}/series/{se}/instances/{i}");
        v.extend([
            Request::get(&format!("/fhir/ImagingStudy/{s}")),
            Request::get(&format!("/fhir/ImagingStudy?identifier=urn:dicom:uid|{s}")),
            Request::get(&format!("/dicom-web/studies/{s}")).with_header("Accept", dicom),
            Request::get(&format!("/dicom-web/studies/{s}/metadata")),
            Request::get(&format!("/dicom-web/studies/{s}/series/{se}")).with_header("Accept", dicom),
            Request::get(&format!("/dicom-web/studies/{s}/series/{se}/metadata")),
            Request::get(&inst).with_header("Accept", dicom),
            Request::get(&inst).with_header("Accept", "application/dicom"),
            Request::get(&inst).with_header("Accept", "image/png"),
            Request::get(&format!("{inst}/metadata")),
            Request::get(&format!("{inst}/frames/1")),
            Request::get(&format!("{inst}/frames/1,2")),
            Request::get(&format!("{inst}/frames/999999")),
            Request::get(&format!("{inst}/frames/x")),
            Request::get(&format!("{inst}/bulkdata/7FE00010")),
            Request::get(&format!("{inst}/bulkdata/00100010")),
            Request::get(&format!(
                "/wado?requestType=WADO&studyUID={s}&seriesUID={se}&objectUID={i}&contentType=application/dicom"
            )),
        ]);
    }
    v
}

struct Scan<'a> {
    secrets: Vec<String>,
    statuses: std::collections::BTreeSet<u16>,
    details: Vec<String>,
    engine: &'a Engine,
}

impl Scan<'_> {
    fn run(&mut self, reqs: &[Request]) {
        for req in reqs {
            let r: Response = self.engine.handle(req);
            let body = String::from_utf8_lossy(&r.body.to_vec()).into_owned();
            for secret in &self.secrets {
                assert!(
                    !body.contains(secret.as_str()),
                    "{} {}?{} -> {}: the body names {secret}:\n{body}",
                    r.status,
                    req.path,
                    req.query,
                    r.status
                );
                for (n, v) in &r.headers {
                    assert!(
                        !v.contains(secret.as_str()),
                        "{}: header {n}: {v}",
                        req.path
                    );
                }
            }
            if r.status == 500 {
                assert!(r.detail().is_some(), "a 500 without detail: {}", req.path);
            }
            self.statuses.insert(r.status);
            self.details.extend(r.detail().map(str::to_string));
        }
    }
}

fn scan(mode: ReadMode) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let files = sia::write_demo(&data).unwrap();
    let db = dir.path().join("index.db");
    let engine = Engine::open(Config::builder().db(db.clone()).read_mode(mode).build()).unwrap();
    engine.index(&[&data], &Default::default()).unwrap();
    let all = uids(&engine);
    assert!(all.len() >= 10);
    let reqs = requests(&all);
    // The canonical form too (the temporary folder may sit behind a symbolic link).
    let mut secrets = vec![dir.path().display().to_string(), data.display().to_string()];
    secrets.push(db.display().to_string());
    secrets.push(dir.path().canonicalize().unwrap().display().to_string());
    let mut s = Scan {
        secrets,
        statuses: Default::default(),
        details: Vec::new(),
        engine: &engine,
    };
    s.run(&reqs);

    // Damage the files behind the engine's back: removed, truncated, rewritten with the
    // same size and mtime but a broken header, and a loop of symbolic links (an I/O
    // error other than "not found").
    let mut files = files;
    files.sort();
    std::fs::remove_file(&files[0]).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&files[1])
        .unwrap();
    f.set_len(100).unwrap();
    drop(f);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&files[2])
        .unwrap();
    let mtime = f.metadata().unwrap().modified().unwrap();
    f.write_all_at(&[0xFF; 64], 132).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    std::fs::remove_file(&files[3]).unwrap();
    std::os::unix::fs::symlink(&files[3], &files[3]).unwrap();
    for f in &files[4..] {
        std::fs::write(f, b"not DICOM any more").unwrap();
    }
    s.run(&reqs);

    // Damage the index: its tables gone under an open engine (SQLite's messages name them).
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF; DROP TABLE instances; DROP TABLE series;")
        .unwrap();
    drop(conn);
    s.run(&reqs);

    for status in [200, 400, 404, 410, 500] {
        assert!(
            s.statuses.contains(&status),
            "no {status} seen: {:?}",
            s.statuses
        );
    }
    // The detail the clients did not get is there for the host's log.
    assert!(
        s.details
            .iter()
            .any(|d| d.contains(&*data.display().to_string())),
        "no detail names the file: {:?}",
        s.details
    );
    assert!(
        s.details.iter().any(|d| d.contains("index:")),
        "{:?}",
        s.details
    );
}

#[test]
fn no_response_names_a_server_path_pread() {
    scan(ReadMode::Pread);
}

#[test]
fn no_response_names_a_server_path_mmap() {
    scan(ReadMode::Mmap);
}

#[test]
fn detail_is_empty_for_answers_that_need_none() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(crate::common::config_in(dir.path()).build()).unwrap();
    let r = engine.handle(&Request::get("/fhir/metadata"));
    assert_eq!((r.status, r.detail()), (200, None));
}
