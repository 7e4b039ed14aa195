//! Incremental re-index: unchanged, modified, added, deleted, duplicates.

use std::path::Path;

use sia::internal::dicom::tag::{Encoding, ts};
use sia::internal::dicom::write::DataSetWriter;
use sia::internal::index::{Index, StudyFilter};

use crate::common::*;

fn instance_file(sop: &str, series: &str, patient: &str) -> Vec<u8> {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    use sia::internal::dicom::tag::{Vr, tags};
    w.str(tags::SOP_CLASS_UID, Vr::UI, CT)
        .str(tags::SOP_INSTANCE_UID, Vr::UI, sop)
        .str(tags::MODALITY, Vr::CS, "CT")
        .str(tags::PATIENT_NAME, Vr::PN, "Doe^Jane")
        .str(tags::PATIENT_ID, Vr::LO, patient)
        .str(tags::STUDY_INSTANCE_UID, Vr::UI, STUDY)
        .str(tags::SERIES_INSTANCE_UID, Vr::UI, series);
    with_meta(ts::EXPLICIT_VR_LE, w.as_bytes())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn counts(index: &Index) -> (usize, i64, i64) {
    let studies = index.studies(&StudyFilter::default()).unwrap();
    let s = studies.first();
    (
        studies.len(),
        s.map_or(0, |s| s.num_series),
        s.map_or(0, |s| s.num_instances),
    )
}

#[test]
fn add_modify_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write(&data, "a.dcm", &instance_file("1.1", "9.1", "P1"));
    write(&data, "b.dcm", &instance_file("1.2", "9.1", "P1"));
    write(&data, "c.dcm", &instance_file("1.3", "9.2", "P1"));
    let index = crate::common::open_index(tmp.path());
    let r = index.index(&[&data], &Default::default()).unwrap();
    assert_eq!((r.indexed, r.unchanged, r.removed), (3, 0, 0));
    assert_eq!(counts(&index), (1, 2, 3));

    let r = index.index(&[&data], &Default::default()).unwrap();
    assert_eq!((r.indexed, r.unchanged, r.removed), (0, 3, 0));

    // Modify: same path, new content (different SOP and series).
    write(&data, "b.dcm", &instance_file("1.22", "9.3", "P1"));
    // Add.
    write(&data, "d.dcm", &instance_file("1.4", "9.3", "P1"));
    // Delete the only instance of series 9.2.
    std::fs::remove_file(data.join("c.dcm")).unwrap();
    let r = index.index(&[&data], &Default::default()).unwrap();
    assert_eq!((r.indexed, r.unchanged, r.removed), (2, 1, 1));
    let studies = index.studies(&StudyFilter::default()).unwrap();
    let uids: Vec<Vec<&str>> = studies[0]
        .series
        .iter()
        .map(|s| s.instances.iter().map(|i| i.uid.as_str()).collect())
        .collect();
    assert_eq!(uids, vec![vec!["1.1"], vec!["1.22", "1.4"]]);
    assert_eq!(counts(&index), (1, 2, 3));

    // Delete everything: the study and the patient go too.
    for f in ["a.dcm", "b.dcm", "d.dcm"] {
        std::fs::remove_file(data.join(f)).unwrap();
    }
    let r = index.index(&[&data], &Default::default()).unwrap();
    assert_eq!(r.removed, 3);
    assert_eq!(counts(&index), (0, 0, 0));
}

#[test]
fn a_file_turned_bad_is_skipped_and_its_instance_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write(&data, "a.dcm", &instance_file("1.1", "9.1", "P1"));
    let index = crate::common::open_index(tmp.path());
    index.index(&[&data], &Default::default()).unwrap();
    let good = instance_file("1.1", "9.1", "P1");
    write(&data, "a.dcm", &good[..good.len() - 5]);
    let r = index.index(&[&data], &Default::default()).unwrap();
    assert_eq!(r.skipped.len(), 1, "{r:?}");
    assert_eq!(counts(&index), (0, 0, 0));
}

#[test]
fn duplicates_keep_the_smallest_path_and_promote_on_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let bytes = instance_file("1.1", "9.1", "P1");
    for name in ["m.dcm", "z.dcm", "a.dcm"] {
        write(&data, name, &bytes);
    }
    let index = crate::common::open_index(tmp.path());
    let r = index.index(&[&data], &Default::default()).unwrap();
    assert_eq!(r.indexed, 1);
    let dups: Vec<String> = r
        .duplicates
        .iter()
        .map(|d| {
            Path::new(&d.path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into()
        })
        .collect();
    assert_eq!(dups, ["m.dcm", "z.dcm"]);

    // Deleting the kept file promotes the next one in the same run.
    std::fs::remove_file(data.join("a.dcm")).unwrap();
    let r = index.index(&[&data], &Default::default()).unwrap();
    assert_eq!((r.removed, r.indexed), (1, 1), "{r:?}");
    assert_eq!(counts(&index), (1, 1, 1));
    let r = index.index(&[&data], &Default::default()).unwrap();
    assert_eq!((r.indexed, r.unchanged), (0, 2));
}

#[test]
fn index_of_a_newer_schema_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("i.db");
    Index::open(&db).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let err = Index::open(&db).unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
fn a_foreign_sqlite_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("other.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = Index::open(&db).unwrap_err();
    assert!(err.to_string().contains("not a sia index"), "{err}");
}

#[test]
fn the_index_file_inside_the_indexed_folder_is_not_scanned() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "a.dcm", &instance_file("1.1", "9.1", "P1"));
    let index = Index::open(tmp.path().join("sia.db")).unwrap();
    let r = index.index(&[tmp.path()], &Default::default()).unwrap();
    assert_eq!((r.indexed, r.skipped.len()), (1, 0), "{r:?}");
}

#[test]
fn walk_order_merge_with_names_that_sort_around_the_separator() {
    // '/' sorts after '-', ' ' and '.', so a plain path order would disagree with the
    // walk's order; the merge must still pair every file with its row.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let names = [
        "x/1.dcm",
        "x/y/2.dcm",
        "x.dcm",
        "x-y/3.dcm",
        "x y.dcm",
        "x0.dcm",
        "x/z.dcm",
        "w.dcm",
    ];
    for (i, name) in names.iter().enumerate() {
        let path = data.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, instance_file(&format!("1.{i}"), "9.1", "P1")).unwrap();
    }
    let index = crate::common::open_index(tmp.path());
    let r = index.index(&[&data], &Default::default()).unwrap();
    assert_eq!(r.indexed, names.len() as u64);
    let r = index.index(&[&data], &Default::default()).unwrap();
    assert_eq!(
        (r.indexed, r.unchanged, r.removed),
        (0, names.len() as u64, 0),
        "{r:?}"
    );
    std::fs::remove_file(data.join("x/y/2.dcm")).unwrap();
    std::fs::remove_file(data.join("x0.dcm")).unwrap();
    let r = index.index(&[&data], &Default::default()).unwrap();
    assert_eq!(
        (r.indexed, r.unchanged, r.removed),
        (0, names.len() as u64 - 2, 2),
        "{r:?}"
    );
    assert_eq!(counts(&index), (1, 1, names.len() as i64 - 2));
}

#[test]
fn indexing_a_subfolder_does_not_remove_its_siblings() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for (i, name) in ["a/1.dcm", "b/2.dcm"].iter().enumerate() {
        let path = data.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, instance_file(&format!("1.{i}"), "9.1", "P1")).unwrap();
    }
    let index = crate::common::open_index(tmp.path());
    index.index(&[&data], &Default::default()).unwrap();
    let r = index
        .index(&[data.join("a"), data.join("a/1.dcm")], &Default::default())
        .unwrap();
    assert_eq!((r.unchanged, r.removed), (1, 0), "{r:?}");
    assert_eq!(counts(&index), (1, 1, 2));
}

#[test]
fn cached_search_answers_follow_another_processes_reindex() {
    // Two engines on one index file stand for a server and a `sia index` run elsewhere:
    // the server's cached search answers must not outlive the other's commit.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write(&data, "a.dcm", &instance_file("1.1", "9.1", "P1"));
    let open =
        || sia::Engine::open(sia::Config::builder().db(tmp.path().join("i.db")).build()).unwrap();
    let (server, other) = (open(), open());
    other.index(&[&data], &Default::default()).unwrap();
    let qido = || {
        let r = server.handle(&sia::Request::get("/dicom-web/studies?PatientID=P1"));
        let v: serde_json::Value = serde_json::from_slice(&r.body().to_vec()).unwrap();
        v[0]["00201208"]["Value"][0].as_i64()
    };
    let fhir = || {
        let r = server.handle(&sia::Request::get("/fhir/ImagingStudy"));
        let v: serde_json::Value = serde_json::from_slice(&r.body().to_vec()).unwrap();
        v["entry"][0]["resource"]["numberOfInstances"].as_i64()
    };
    for _ in 0..2 {
        assert_eq!((qido(), fhir()), (Some(1), Some(1)));
    }
    write(&data, "b.dcm", &instance_file("1.2", "9.1", "P1"));
    other.index(&[&data], &Default::default()).unwrap();
    for _ in 0..2 {
        assert_eq!((qido(), fhir()), (Some(2), Some(2)));
    }
    std::fs::remove_file(data.join("a.dcm")).unwrap();
    std::fs::remove_file(data.join("b.dcm")).unwrap();
    other.index(&[&data], &Default::default()).unwrap();
    assert_eq!(
        server
            .handle(&sia::Request::get("/dicom-web/studies"))
            .body()
            .to_vec(),
        b"[]"
    );
    assert_eq!(fhir(), None);
}

/// The rules see the files written earlier in the same transaction: a duplicate (one
/// path sorting before the instance's file, one after) and a file naming the same study
/// for another patient give the same index and report whether all files share one
/// batch or each is a batch of its own. (The writer holds instance rows back to write
/// them several to a statement, `index::pending`; a rule that read the index without
/// them would miss both.)
#[test]
fn one_batch_or_one_file_per_batch_make_the_same_index() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for i in 0..40 {
        let sop = format!("1.2.826.0.1.3680043.10.1015.9.{i}");
        write(
            &data,
            &format!("a{i:03}.dcm"),
            &instance_file(&sop, "1.2.826.0.1.3680043.10.1015.9.100", "P1"),
        );
    }
    write(
        &data,
        "0dup.dcm",
        &instance_file(
            "1.2.826.0.1.3680043.10.1015.9.5",
            "1.2.826.0.1.3680043.10.1015.9.100",
            "P1",
        ),
    );
    write(
        &data,
        "zdup.dcm",
        &instance_file(
            "1.2.826.0.1.3680043.10.1015.9.7",
            "1.2.826.0.1.3680043.10.1015.9.100",
            "P1",
        ),
    );
    // Walked last, so P1's instances come first: its study is P1's.
    write(
        &data,
        "zz-other.dcm",
        &instance_file(
            "1.2.826.0.1.3680043.10.1015.9.900",
            "1.2.826.0.1.3680043.10.1015.9.200",
            "P2",
        ),
    );
    let outcome = |batch: usize| {
        let dir = tempfile::tempdir().unwrap();
        let index = open_index(dir.path());
        let opts = sia::IndexOptions::default()
            .batch_size(batch)
            .commit_interval(std::time::Duration::from_secs(3600));
        let report = index.index(&[&data], &opts).unwrap();
        let name = |p: &str| {
            Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string()
        };
        let duplicates: Vec<String> = report.duplicates.iter().map(|d| name(&d.path)).collect();
        let conflicts: Vec<(String, &str)> = report
            .conflicts
            .iter()
            .map(|c| (name(&c.path), c.level))
            .collect();
        let studies: Vec<(String, i64, i64)> = index
            .studies(&StudyFilter::default())
            .unwrap()
            .into_iter()
            .map(|s| (s.patient.id, s.num_series, s.num_instances))
            .collect();
        (
            report.indexed,
            duplicates,
            conflicts,
            studies,
            counts(&index),
        )
    };
    let together = outcome(usize::MAX);
    assert_eq!(together.1, ["a005.dcm", "zdup.dcm"], "{together:?}");
    assert_eq!(
        together.2,
        [("zz-other.dcm".to_string(), "study")],
        "{together:?}"
    );
    assert_eq!(together.3, [("P1".to_string(), 1, 40)], "{together:?}");
    assert_eq!(outcome(1), together);
}
