//! Named storage roots (issue 15, item 4): hosts that mount one archive at different
//! folders share one index. Runs on SQLite, and on PostgreSQL in the suite's second
//! pass (`SIA_TEST_PG_URL`): host B's folder is a copy of host A's (`cp -a` keeps sizes
//! and nanosecond mtimes; inode numbers differ, as between two mounts).

use std::path::{Path, PathBuf};

use sia::internal::index::StorageRoots;
use sia::{Config, Engine, ErrorKind, Request};

use crate::common::pg_url;
use crate::wado_frames::parts;

/// A config on the shared index (`url`, else `dir/i.db`) with root `archive` at `folder`.
fn host(dir: &Path, url: &Option<String>, folder: Option<&Path>) -> Engine {
    let mut b = Config::builder()
        .db(dir.join("i.db"))
        .index_url(url.clone());
    if let Some(f) = folder {
        b = b.storage_root("archive", f);
    }
    Engine::open(b.build()).unwrap()
}

fn copy_tree(from: &Path, to: &Path) {
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -a {} {}", from.display(), to.display());
}

/// Every instance's (study, series, SOP Instance UID) and stored path, in index order.
fn instances(engine: &Engine) -> Vec<(String, String, String, String)> {
    let studies = engine
        .index_db()
        .studies(&Default::default())
        .unwrap()
        .into_iter()
        .map(|s| s.uid)
        .collect::<Vec<_>>();
    let mut out = Vec::new();
    for st in studies {
        for f in engine.index_db().instance_files(&st, None, None).unwrap() {
            out.push((f.study_uid, f.series_uid, f.sop_instance_uid, f.file.path));
        }
    }
    out
}

/// Status and payloads of an instance retrieve (multipart parts, so the random
/// boundary does not enter the comparison).
fn retrieve(engine: &Engine, st: &str, se: &str, sop: &str) -> (u16, Vec<Vec<u8>>, String) {
    let r = engine.handle(&Request::get(&format!(
        "/dicom-web/studies/{st}/series/{se}/instances/{sop}"
    )));
    if r.status == 200 {
        (r.status, parts(&r), String::new())
    } else {
        (
            r.status,
            Vec::new(),
            String::from_utf8_lossy(&r.body.to_vec()).into(),
        )
    }
}

/// The same archive at two mount points, `dir/a/archive` and `dir/b/archive` (a copy),
/// with the demo set in `folder` under it (`""`: at its top).
fn two_mounts(dir: &Path, folder: &str) -> (PathBuf, PathBuf) {
    let (a_root, b_root) = (dir.join("a/archive"), dir.join("b/archive"));
    sia::write_demo(&a_root.join(folder)).unwrap();
    std::fs::create_dir_all(dir.join("b")).unwrap();
    copy_tree(&a_root, &b_root);
    (a_root, b_root)
}

#[test]
fn two_hosts_mounting_one_root_at_different_folders_serve_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let (a_root, b_root) = two_mounts(dir.path(), "demo");
    let url = pg_url();
    let a = host(dir.path(), &url, Some(&a_root));
    let first = a.index(&[&a_root], &Default::default()).unwrap();
    assert!(first.indexed > 0, "{first:?}");
    let b = host(dir.path(), &url, Some(&b_root));

    // B finds every file under its own folder; the index holds one row per file.
    let (ia, ib) = (instances(&a), instances(&b));
    assert_eq!(ia.len() as u64, first.indexed);
    assert_eq!(ia.len(), ib.len());
    for (x, y) in ia.iter().zip(&ib) {
        assert_eq!((&x.0, &x.1, &x.2), (&y.0, &y.1, &y.2));
        let rel = Path::new(&x.3).strip_prefix(&a_root).unwrap();
        assert_eq!(Path::new(&y.3), b_root.join(rel));
    }

    // Searches, metadata and retrieves answer identically on both hosts.
    let study = &ia[0].0;
    for target in [
        "/dicom-web/studies".to_string(),
        format!("/dicom-web/studies/{study}/metadata"),
        "/fhir/ImagingStudy".to_string(),
    ] {
        let (ra, rb) = (
            a.handle(&Request::get(&target)),
            b.handle(&Request::get(&target)),
        );
        assert_eq!(ra.status, 200, "{target}");
        assert_eq!(
            (ra.status, ra.body.to_vec()),
            (rb.status, rb.body.to_vec()),
            "{target}"
        );
    }
    for (st, se, sop, _) in &ia {
        let (ra, rb) = (retrieve(&a, st, se, sop), retrieve(&b, st, se, sop));
        assert_eq!(ra.0, 200, "{sop}: {}", ra.2);
        assert_eq!(ra, rb, "{sop}");
    }

    // Indexing the same files through B's folder changes nothing and adds no row.
    let again = b.index(&[&b_root], &Default::default()).unwrap();
    assert_eq!(
        (again.indexed, again.removed, again.unchanged),
        (0, 0, first.indexed),
        "{again:?}"
    );
    assert_eq!(instances(&a), ia);
    // So does indexing a folder inside the root.
    let sub = b
        .index(&[b_root.join("demo")], &Default::default())
        .unwrap();
    assert_eq!((sub.indexed, sub.removed), (0, 0), "{sub:?}");
    assert_eq!(instances(&a), ia);
}

#[test]
fn a_file_changed_on_one_mount_is_caught_there() {
    let dir = tempfile::tempdir().unwrap();
    let (a_root, b_root) = two_mounts(dir.path(), "");
    let url = pg_url();
    let a = host(dir.path(), &url, Some(&a_root));
    a.index(&[&a_root], &Default::default()).unwrap();
    let b = host(dir.path(), &url, Some(&b_root));
    let (st, se, sop, path) = instances(&a).remove(0);
    let rel = Path::new(&path).strip_prefix(&a_root).unwrap();
    // B's copy gains a byte: its size no longer matches the index.
    let stale = b_root.join(rel);
    let mut bytes = std::fs::read(&stale).unwrap();
    bytes.push(0);
    std::fs::write(&stale, bytes).unwrap();
    let (status, _, message) = retrieve(&b, &st, &se, &sop);
    assert_eq!(status, 410, "{message}");
    assert!(!message.contains(dir.path().to_str().unwrap()), "{message}");
    assert_eq!(retrieve(&a, &st, &se, &sop).0, 200);
    // Same size, another mtime: caught as well.
    let other = instances(&a).remove(1);
    let rel = Path::new(&other.3).strip_prefix(&a_root).unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(b_root.join(rel))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400))
        .unwrap();
    assert_eq!(retrieve(&b, &other.0, &other.1, &other.2).0, 410);
}

#[test]
fn a_root_this_host_does_not_configure_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let a_root = dir.path().join("archive");
    sia::write_demo(&a_root).unwrap();
    let url = pg_url();
    let a = host(dir.path(), &url, Some(&a_root));
    a.index(&[&a_root], &Default::default()).unwrap();
    let (st, se, sop, _) = instances(&a).remove(0);

    let c = host(dir.path(), &url, None);
    // Searches need no file and answer as on A.
    let (qa, qc) = (
        a.handle(&Request::get("/dicom-web/studies")),
        c.handle(&Request::get("/dicom-web/studies")),
    );
    assert_eq!((qc.status, qc.body.to_vec()), (200, qa.body.to_vec()));
    let (status, _, message) = retrieve(&c, &st, &se, &sop);
    assert_eq!(status, 500, "{message}");
    assert!(
        message.contains("storage root this host does not configure"),
        "{message}"
    );
    assert!(!message.contains(dir.path().to_str().unwrap()), "{message}");
    let frames = c.handle(&Request::get(&format!(
        "/dicom-web/studies/{st}/series/{se}/instances/{sop}/frames/1"
    )));
    assert_eq!(frames.status, 500);
    let err = c.index_db().instance_files(&st, None, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.detail().unwrap_or_default().contains("\"archive\""));
}

#[test]
fn rows_indexed_before_a_root_was_configured_move_under_it_on_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let (a_root, b_root) = two_mounts(dir.path(), "");
    let url = pg_url();
    // Indexed with absolute paths, as before schema 5.
    let plain = host(dir.path(), &url, None);
    let first = plain.index(&[&a_root], &Default::default()).unwrap();
    let before = instances(&plain);
    drop(plain);

    let a = host(dir.path(), &url, Some(&a_root));
    assert_eq!(instances(&a), before, "absolute rows are read as before");
    let run = a.index(&[&a_root], &Default::default()).unwrap();
    assert_eq!(
        (run.indexed, run.removed),
        (first.indexed, first.indexed),
        "{run:?}"
    );
    assert_eq!(instances(&a), before);
    // The rows are stored under the root now: B, mounting it elsewhere, serves them.
    let b = host(dir.path(), &url, Some(&b_root));
    for (st, se, sop, _) in instances(&b) {
        assert_eq!(retrieve(&b, &st, &se, &sop).0, 200, "{sop}");
    }
    let again = a.index(&[&a_root], &Default::default()).unwrap();
    assert_eq!((again.indexed, again.removed), (0, 0), "{again:?}");
}

#[test]
fn root_configuration_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (name, folder) in [
        ("bad name", "/mnt/a"),
        ("a/b", "/mnt/a"),
        ("archive", "relative/folder"),
        ("archive", "/mnt/../etc"),
    ] {
        let err = Engine::open(
            Config::builder()
                .db(dir.path().join("i.db"))
                .storage_root(name, folder)
                .build(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{name} {folder}");
    }
    let toml = r#"
        [server]
        listen = "127.0.0.1:0"
        base_url = "http://127.0.0.1:8080"
        db = "i.db"
        [storage.roots]
        archive = "archive"
        ct = "/srv/ct"
    "#;
    let cfg = Config::from_toml_str(toml, dir.path()).unwrap();
    let mut roots = cfg.storage_roots.clone();
    roots.sort();
    assert_eq!(
        roots,
        vec![
            ("archive".to_string(), dir.path().join("archive")),
            ("ct".to_string(), "/srv/ct".into())
        ]
    );
    let mut expected = StorageRoots::new();
    expected.add("archive", dir.path().join("archive")).unwrap();
    expected.add("ct", "/srv/ct").unwrap();
    assert_eq!(cfg.checked_storage_roots().unwrap(), expected);
    let bad = toml.replace("ct = ", "\"c t\" = ");
    let err = Config::from_toml_str(&bad, dir.path()).unwrap_err();
    assert!(err.message().contains("storage.roots"), "{}", err.message());
}

#[test]
fn a_stored_path_that_leaves_its_root_is_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let a_root = dir.path().join("archive");
    sia::write_demo(&a_root).unwrap();
    std::fs::write(dir.path().join("secret.dcm"), b"not for clients").unwrap();
    let url = pg_url();
    let a = host(dir.path(), &url, Some(&a_root));
    a.index(&[&a_root], &Default::default()).unwrap();
    let (st, se, sop, _) = instances(&a).remove(0);
    // Another writer of the shared index (or a hand edit) stores a path with `..`.
    let sql = format!(
        "UPDATE files SET path = '../secret.dcm' WHERE id = (SELECT file FROM instances WHERE sop_instance_uid = '{sop}')"
    );
    match &url {
        Some(u) => {
            let mut c = postgres::Client::connect(u, postgres::NoTls).unwrap();
            assert_eq!(c.execute(sql.as_str(), &[]).unwrap(), 1);
        }
        None => {
            let c = rusqlite::Connection::open(dir.path().join("i.db")).unwrap();
            assert_eq!(c.execute(&sql, []).unwrap(), 1);
        }
    }
    let b = host(dir.path(), &url, Some(&a_root));
    let (status, parts, message) = retrieve(&b, &st, &se, &sop);
    assert_eq!(status, 500, "{message}");
    assert!(parts.is_empty());
    assert!(message.contains("leaves its storage root"), "{message}");
    assert!(!message.contains("secret"), "{message}");
}

#[test]
fn a_root_inside_a_walked_folder_is_walked_on_its_own() {
    // /mnt holds a.dcm-like files before and after the root folder `m-archive` in name
    // order, so rooted and absolute keys would interleave in one walk.
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    sia::write_demo(&mnt.join("m-archive")).unwrap();
    let demo = sia::write_demo(&dir.path().join("source")).unwrap();
    // Outside the root: copies of two files under other names, before and after it
    // (same SOP Instance UIDs: duplicates, resolved by the walk-key rule).
    std::fs::create_dir_all(mnt.join("a-before")).unwrap();
    std::fs::create_dir_all(mnt.join("z-after")).unwrap();
    let first_file = &demo[0];
    std::fs::copy(first_file, mnt.join("a-before/x.dcm")).unwrap();
    std::fs::copy(first_file, mnt.join("z-after/y.dcm")).unwrap();
    std::fs::write(mnt.join("z-after/notes.txt"), b"not DICOM").unwrap();
    let url = pg_url();
    let a = Engine::open(
        Config::builder()
            .db(dir.path().join("i.db"))
            .index_url(url.clone())
            .storage_root("archive", mnt.join("m-archive"))
            .build(),
    )
    .unwrap();
    let first = a.index(&[&mnt], &Default::default()).unwrap();
    assert!(
        first.indexed > 0 && first.duplicates.len() == 2,
        "{first:?}"
    );
    let before = instances(&a);
    for (st, se, sop, _) in &before {
        assert_eq!(retrieve(&a, st, se, sop).0, 200, "{sop}");
    }
    // Twice, and through the root alone: nothing changes.
    for folder in [&mnt, &mnt, &mnt.join("m-archive")] {
        let again = a.index(&[folder], &Default::default()).unwrap();
        assert_eq!(
            (again.indexed, again.removed, again.duplicates.len()),
            (0, 0, 0),
            "{}: {again:?}",
            folder.display()
        );
        assert_eq!(instances(&a), before);
    }
    let total = first.indexed + first.duplicates.len() as u64 + first.skipped.len() as u64;
    let unchanged = a.index(&[&mnt], &Default::default()).unwrap().unchanged;
    assert_eq!(unchanged, total, "every file is unchanged on a re-run");
}
