//! The dialect points of the index (issue 15): person-name case folding beyond ASCII,
//! `%` and `_` in values, date ranges, IN-list bounds, paging and ordering. Each query
//! is answered by an SQLite index and checked against the answer written here; when
//! `SIA_TEST_PG_URL` names a PostgreSQL server (scripts/test's second pass), the same
//! files are indexed there too and every answer must be identical, byte for byte for
//! DICOM JSON.

use serde_json::Value;
use sia::internal::dicom::tag::{Encoding, Vr, tags, ts};
use sia::internal::dicom::write::{DataSetWriter, file_meta};
use sia::internal::index::{Index, IndexLocation};
use sia::{Config, Engine, ErrorKind, Request};

use crate::common::{CT, on_postgres, pg_url};

const ROOT: &str = "1.2.826.0.1.3680043.10.1015";

/// One instance per study: (study number, Patient ID, Patient's Name, Study Date,
/// Study Time, Study Description, Referring Physician's Name).
const STUDIES: &[(u32, &str, &str, &str, &str, &str, &str)] = &[
    (
        1,
        "P1",
        "MÜLLER^Jürgen",
        "20240102",
        "101112",
        "CT 50% dose",
        "ÅNGSTRÖM^Eva",
    ),
    (
        2,
        "P2",
        "müller^anna",
        "20231231",
        "235959",
        "CT_HEAD",
        "ångström^eva",
    ),
    (
        3,
        "P3",
        "Doe^Jane",
        "20240229",
        "080000",
        "ct head",
        "Smith^John",
    ),
    (4, "P4", "100%^Sure", "20240229", "080000", "CTXHEAD", ""),
    (5, "P5", "snake_case^X", "", "", "MR brain", ""),
    (6, "P6", "snakeXcase^Z", "20240301", "", "backslash", ""),
    (7, "P7", "ΣΩΚΡΑΤΗΣ^Σοφία", "20240229", "080000", "Greek", ""),
    (8, "P8", "O'Brien^Pat", "20240229", "075959", "quote's", ""),
];

fn study_uid(n: u32) -> String {
    format!("{ROOT}.{n}")
}

fn instance(n: u32) -> Vec<u8> {
    let (_, pid, name, date, time, description, referring) = STUDIES[n as usize - 1];
    let sop = format!("{ROOT}.{n}.1.1");
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    w.str(tags::SPECIFIC_CHARACTER_SET, Vr::CS, "ISO_IR 192")
        .str(tags::SOP_CLASS_UID, Vr::UI, CT)
        .str(tags::SOP_INSTANCE_UID, Vr::UI, &sop)
        .str(tags::STUDY_DATE, Vr::DA, date)
        .str(tags::STUDY_TIME, Vr::TM, time)
        .str(tags::MODALITY, Vr::CS, "CT")
        .str(tags::REFERRING_PHYSICIAN_NAME, Vr::PN, referring)
        .str(tags::STUDY_DESCRIPTION, Vr::LO, description)
        .str(tags::PATIENT_NAME, Vr::PN, name)
        .str(tags::PATIENT_ID, Vr::LO, pid)
        .str(tags::STUDY_INSTANCE_UID, Vr::UI, &study_uid(n))
        .str(tags::SERIES_INSTANCE_UID, Vr::UI, &format!("{ROOT}.{n}.1"));
    let mut out = file_meta(CT, &sop, ts::EXPLICIT_VR_LE);
    out.extend_from_slice(w.as_bytes());
    out
}

/// The engines to compare: SQLite always, PostgreSQL when a server is named. Each
/// indexes the same files (written once in the returned folder).
fn engines() -> (tempfile::TempDir, Vec<(&'static str, Engine)>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for (n, ..) in STUDIES {
        std::fs::write(data.join(format!("{n}.dcm")), instance(*n)).unwrap();
    }
    let mut out = vec![(
        "sqlite",
        Engine::open(Config::builder().db(dir.path().join("i.db")).build()).unwrap(),
    )];
    if let Some(url) = pg_url() {
        out.push((
            "postgres",
            Engine::open(Config::builder().index_url(url).build()).unwrap(),
        ));
    }
    for (name, e) in &out {
        let r = e.index(&[&data], &Default::default()).unwrap();
        assert_eq!(r.indexed, STUDIES.len() as u64, "{name}: {r:?}");
    }
    (dir, out)
}

fn body(engine: &Engine, target: &str) -> (u16, Vec<u8>) {
    let r = engine.handle(&Request::get(target));
    (r.status, r.body.to_vec())
}

/// The Study Instance UIDs' last components of a QIDO answer, in its order.
fn studies_of(json: &[u8]) -> Vec<u32> {
    let v: Value = serde_json::from_slice(json).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let uid = s["0020000D"]["Value"][0].as_str().unwrap();
            uid.rsplit('.').next().unwrap().parse().unwrap()
        })
        .collect()
}

/// Answers `query` (a QIDO studies query string) on every engine: the same status and
/// body on each, and the studies it lists.
fn qido(engines: &[(&str, Engine)], query: &str) -> Vec<u32> {
    let target = format!("/dicom-web/studies?{query}");
    let (status, first) = body(&engines[0].1, &target);
    assert_eq!(status, 200, "{target}: {}", String::from_utf8_lossy(&first));
    for (name, e) in &engines[1..] {
        let (s, b) = body(e, &target);
        assert_eq!(
            (s, String::from_utf8_lossy(&b)),
            (status, String::from_utf8_lossy(&first)),
            "{target} on {name} differs from sqlite"
        );
    }
    studies_of(&first)
}

#[test]
fn person_names_fold_case_beyond_ascii_alike() {
    let (_d, e) = engines();
    assert_eq!(qido(&e, "PatientName=müller*"), [2, 1]);
    assert_eq!(qido(&e, "PatientName=MÜLLER^JÜRGEN"), [1]);
    assert_eq!(qido(&e, "PatientName=σωκρατησ*"), [7]);
    assert_eq!(qido(&e, "ReferringPhysicianName=ÅNGSTRÖM*"), [2, 1]);
    // Fuzzy: any component, from its start.
    assert_eq!(qido(&e, "fuzzymatching=true&PatientName=JÜR"), [1]);
    assert_eq!(qido(&e, "fuzzymatching=true&PatientName=σοφ"), [7]);
    assert_eq!(qido(&e, "PatientName=o'brien*"), [8]);
}

#[test]
fn percent_underscore_and_backslash_in_values_match_themselves() {
    let (_d, e) = engines();
    assert_eq!(qido(&e, "PatientName=100%25*"), [4]);
    assert_eq!(qido(&e, "PatientName=snake_c*"), [5]);
    assert_eq!(qido(&e, "PatientName=snake%3Fcase*"), [5, 6]);
    assert_eq!(qido(&e, "StudyDescription=CT_*"), [2]);
    assert_eq!(qido(&e, "StudyDescription=*50%25*"), [1]);
    assert_eq!(qido(&e, "StudyDescription=back%5C*"), [0u32; 0]);
    assert_eq!(qido(&e, "StudyDescription=back*"), [6]);
    // Wildcard matching of a non-PN attribute is case-sensitive on both.
    assert_eq!(qido(&e, "StudyDescription=ct*"), [3]);
    assert_eq!(qido(&e, "StudyDescription=CT?HEAD"), [2, 4]);
    assert_eq!(qido(&e, "StudyDescription=quote's"), [8]);
}

#[test]
fn date_ranges_and_ordering_agree() {
    let (_d, e) = engines();
    // Unknown dates sort first (''), then by date, time, UID.
    assert_eq!(qido(&e, ""), [5, 2, 1, 8, 3, 4, 7, 6]);
    assert_eq!(qido(&e, "StudyDate=20240101-20240229"), [1, 8, 3, 4, 7]);
    assert_eq!(qido(&e, "StudyDate=-20231231"), [2]);
    assert_eq!(qido(&e, "StudyDate=20240229-"), [8, 3, 4, 7, 6]);
    assert_eq!(qido(&e, "StudyDate=20240229&StudyTime=080000-"), [3, 4, 7]);
    assert_eq!(qido(&e, "StudyTime=-0759"), [8]);
    // FHIR date search on the same column (eq, ge, lt by day, month and year).
    for (query, want) in [
        ("started=2024-02-29", 4),
        ("started=ge2024-02", 5),
        ("started=lt2024", 1),
        ("started=ne2024-02-29", 4),
    ] {
        let target = format!("/fhir/ImagingStudy?{query}");
        let answers: Vec<(u16, Value)> = e
            .iter()
            .map(|(_, e)| {
                let (s, b) = body(e, &target);
                let v: Value = serde_json::from_slice(&b).unwrap();
                (s, v)
            })
            .collect();
        let ids = |v: &Value| -> Vec<String> {
            v["entry"]
                .as_array()
                .map(|a| a.iter().map(|x| x["resource"]["id"].to_string()).collect())
                .unwrap_or_default()
        };
        assert_eq!(answers[0].0, 200, "{target}");
        assert_eq!(answers[0].1["total"], want, "{target}");
        for (name_answer, (s, v)) in e.iter().zip(&answers).skip(1) {
            assert_eq!(*s, answers[0].0, "{target} on {}", name_answer.0);
            assert_eq!(ids(v), ids(&answers[0].1), "{target} on {}", name_answer.0);
        }
    }
}

#[test]
fn pages_hold_the_same_rows_in_the_same_order() {
    let (_d, e) = engines();
    let all = qido(&e, "");
    let mut paged = Vec::new();
    for offset in (0..all.len()).step_by(3) {
        paged.extend(qido(&e, &format!("limit=3&offset={offset}")));
    }
    assert_eq!(paged, all);
    // Ties on date and time (studies 3, 4 and 7) are broken by the UID on both.
    assert_eq!(
        qido(&e, "StudyDate=20240229&StudyTime=080000&limit=2&offset=1"),
        [4, 7]
    );
}

#[test]
fn in_lists_up_to_the_bound_and_no_further() {
    let (_d, e) = engines();
    let mut uids: Vec<String> = (100..1098).map(study_uid).collect();
    uids.push(study_uid(3));
    uids.push(study_uid(1));
    assert_eq!(uids.len(), sia::internal::index::search::MAX_LIST_VALUES);
    assert_eq!(
        qido(&e, &format!("StudyInstanceUID={}", uids.join(","))),
        [1, 3]
    );
    uids.push(study_uid(2));
    let target = format!("/dicom-web/studies?StudyInstanceUID={}", uids.join(","));
    for (name, e) in &e {
        assert_eq!(body(e, &target).0, 400, "{name}");
    }
}

#[test]
fn a_postgresql_schema_newer_than_sia_or_not_sia_is_refused() {
    if !on_postgres() {
        // The SQLite rules are tested in reindex.rs.
        return;
    }
    let url = pg_url().unwrap();
    let at = IndexLocation::Postgres {
        url: url.clone(),
        max_connections: 2,
    };
    drop(Index::open_at(&at).unwrap());
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute("UPDATE sia_schema SET version = 999")
        .unwrap();
    let err = Index::open_at(&at).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("newer"), "{err}");

    let other = pg_url().unwrap();
    let mut c = postgres::Client::connect(&other, postgres::NoTls).unwrap();
    c.batch_execute("CREATE TABLE t (x int)").unwrap();
    let err = Index::open_at(&IndexLocation::Postgres {
        url: other,
        max_connections: 2,
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("not a sia index"), "{err}");
}

#[test]
fn an_unreachable_database_is_unavailable_not_a_crash() {
    // A socket folder with no server in it: connecting fails at once.
    let dir = tempfile::tempdir().unwrap();
    let host: String = dir
        .path()
        .to_str()
        .unwrap()
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect();
    let err = Engine::open(
        Config::builder()
            .index_url(format!("postgresql://sia@{host}:5/sia"))
            .build(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(err.to_response().status, 503);
    let err = Engine::open(
        Config::builder()
            .index_url("postgres://[not a url".to_string())
            .build(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

#[test]
fn the_index_is_named_once_in_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[server]\nbase_url = \"http://127.0.0.1:8080\"\n";
    let parse = |rest: &str| Config::from_toml_str(&format!("{base}{rest}"), dir.path());
    let c = parse("db = \"a.db\"\n").unwrap();
    assert_eq!(
        c.index_location(),
        IndexLocation::Sqlite(dir.path().join("a.db"))
    );
    let c = parse("[index]\ndb = \"b.db\"\n").unwrap();
    assert_eq!(
        c.index_location(),
        IndexLocation::Sqlite(dir.path().join("b.db"))
    );
    let c =
        parse("[index]\nurl = \"postgres://sia@db:5432/imaging\"\nmax_connections = 4\n").unwrap();
    assert_eq!(
        c.index_location(),
        IndexLocation::Postgres {
            url: "postgres://sia@db:5432/imaging".into(),
            max_connections: 4
        }
    );
    // A db that is a URL is one too (as `--db postgres://...`).
    let c = parse("db = \"postgresql://sia@db/imaging\"\n").unwrap();
    assert!(matches!(
        c.index_location(),
        IndexLocation::Postgres {
            max_connections: 16,
            ..
        }
    ));
    for bad in [
        "",
        "db = \"a.db\"\n[index]\nurl = \"postgres://db/x\"\n",
        "[index]\ndb = \"a.db\"\nurl = \"postgres://db/x\"\n",
        "[index]\nurl = \"postgres://db/x\"\nmax_connections = 0\n",
        "[index]\nuri = \"postgres://db/x\"\n",
    ] {
        let err = parse(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{bad}: {err}");
    }
    // The builder: a URL wins over the file.
    let c = Config::builder()
        .db("x.db")
        .index_url("postgres://db/x".to_string())
        .index_max_connections(0)
        .build();
    assert_eq!(
        c.index_location(),
        IndexLocation::Postgres {
            url: "postgres://db/x".into(),
            max_connections: 1
        }
    );
}
