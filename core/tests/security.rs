//! Issue 18: capabilities never grant more than their token, links are per issuer,
//! UID reuse never moves data to another patient, and the hardening around them.

use std::path::PathBuf;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use sia::CapabilityKey;
use sia::DEMO_UID_ROOT as ROOT;
use sia::{Authorizer, IssuerPolicy, Keys, PatientPolicy};
use sia::{Config, Engine};
use sia::{Request, Response};

pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
pub const A: &str = "https://a.example";
#[allow(dead_code)]
pub const B: &str = "https://b.example";
#[allow(dead_code)]
pub const DEMO2_ISSUER: &str = "2.25.228146457203842916711418316839742735.999";

#[allow(dead_code)]
pub struct Fx {
    pub dir: tempfile::TempDir,
    pub engine: Engine,
}

#[allow(dead_code)]
impl Fx {
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

pub fn policy(iss: &str) -> IssuerPolicy {
    IssuerPolicy::new(
        iss,
        &[&format!("{iss}/fhir")],
        &["HS256"],
        Keys::shared_secret(SECRET),
    )
    .unwrap()
}

/// The demo set indexed, with these issuers and (optionally) capability URLs.
pub fn fixture(issuers: &[&str], cap: Option<CapabilityKey>) -> Fx {
    let dir = tempfile::tempdir().unwrap();
    sia::write_demo(&dir.path().join("data")).unwrap();
    let auth = Arc::new(Authorizer::new(
        issuers.iter().map(|i| policy(i)).collect(),
        PatientPolicy::Links,
    ));
    let engine = Engine::open(
        Config::builder()
            .db(dir.path().join("i.db"))
            .authorizer(Some(auth))
            .capabilities(cap)
            .build(),
    )
    .unwrap();
    engine
        .index(&[dir.path().join("data")], &Default::default())
        .unwrap();
    Fx { dir, engine }
}

pub fn cap_key() -> CapabilityKey {
    CapabilityKey::new(vec![9; 32]).unwrap()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn token(iss: &str, scope: &str, patient: &str) -> String {
    let claims = json!({"iss": iss, "aud": format!("{iss}/fhir"), "exp": now() + 600,
                        "scope": scope, "patient": patient});
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap()
}

pub fn get(engine: &Engine, path: &str, token: Option<&str>) -> Response {
    let mut req = Request::get(path).with_header("Accept", "*/*");
    if let Some(t) = token {
        req = req.with_header("Authorization", &format!("Bearer {t}"));
    }
    engine.handle(&req)
}

pub fn json_of(r: &Response) -> Value {
    serde_json::from_slice(&r.body.to_vec()).unwrap_or(Value::Null)
}

/// The capability addresses in a searchset (or an ImagingStudy), by study UID.
pub fn capabilities(v: &Value) -> Vec<(String, String)> {
    let studies: Vec<&Value> = match v["resourceType"].as_str() {
        Some("Bundle") => v["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| &e["resource"])
            .filter(|r| r["resourceType"] == "ImagingStudy")
            .collect(),
        _ => vec![v],
    };
    studies
        .into_iter()
        .flat_map(|s| {
            let uid = s["identifier"][0]["value"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches("urn:oid:")
                .to_string();
            s["contained"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |c| c["address"].as_str().map(|a| (uid.clone(), a.to_string())))
        })
        .filter(|(_, a)| a.contains("/cap/"))
        .collect()
}

/// The path of an absolute capability address.
pub fn path_of(address: &str) -> String {
    let after = address.split_once("://").unwrap().1;
    after[after.find('/').unwrap()..].to_string()
}

fn study(n: u32) -> String {
    format!("{ROOT}.{n}")
}

/// Every resource under a capability for demo study 1 (DEMO-001's CT), at each level.
fn cap_paths(base: &str) -> Vec<String> {
    let (st, se, i) = (study(1), format!("{ROOT}.1.1"), format!("{ROOT}.1.1.1"));
    vec![
        format!("{base}/studies/{st}/metadata"),
        format!("{base}/studies/{st}"),
        format!("{base}/studies/{st}/series"),
        format!("{base}/studies/{st}/series/{se}/metadata"),
        format!("{base}/studies/{st}/series/{se}"),
        format!("{base}/studies/{st}/series/{se}/instances"),
        format!("{base}/studies/{st}/series/{se}/instances/{i}/metadata"),
        format!("{base}/studies/{st}/series/{se}/instances/{i}"),
        format!("{base}/studies/{st}/series/{se}/instances/{i}/frames/1"),
    ]
}

#[test]
fn a_search_only_token_gets_no_capability() {
    let fx = fixture(&[A], Some(cap_key()));
    fx.engine
        .index_db()
        .link_patient("alice", "DEMO-001", "SIA_DEMO")
        .unwrap();
    for scope in [
        "patient/ImagingStudy.s",
        "patient/*.s",
        "patient/ImagingStudy.s patient/Observation.r",
    ] {
        let t = token(A, scope, "alice");
        let r = get(&fx.engine, "/fhir/ImagingStudy?patient=alice", Some(&t));
        assert_eq!(r.status, 200, "{scope}");
        let v = json_of(&r);
        assert_eq!(v["total"], 2, "{scope}");
        assert!(capabilities(&v).is_empty(), "{scope}: {v}");
        // The shared Endpoint is still there for clients with a token.
        assert!(String::from_utf8_lossy(&r.body.to_vec()).contains("Endpoint"));
        // Reading directly is refused, as before.
        let direct = format!("/dicom-web/studies/{}/metadata", study(1));
        assert_eq!(get(&fx.engine, &direct, Some(&t)).status, 403, "{scope}");
    }
}

#[test]
fn a_capability_is_restricted_exactly_as_its_token() {
    let fx = fixture(&[A], Some(cap_key()));
    fx.engine
        .index_db()
        .link_patient("alice", "DEMO-001", "SIA_DEMO")
        .unwrap();
    // Search over every study of alice, read only of CT studies.
    for scope in [
        "patient/ImagingStudy.s patient/ImagingStudy.r?modality=CT",
        "patient/ImagingStudy.s patient/ImagingStudy.r?modality=http://dicom.nema.org/resources/ontology/DCM|CT",
        "patient/ImagingStudy.rs?modality=CT patient/ImagingStudy.s",
    ] {
        let t = token(A, scope, "alice");
        let v = json_of(&get(
            &fx.engine,
            "/fhir/ImagingStudy?patient=alice&_include=ImagingStudy:endpoint",
            Some(&t),
        ));
        assert_eq!(v["total"], 2, "{scope}: {v}");
        let caps = capabilities(&v);
        assert_eq!(
            caps.iter().map(|(u, _)| u.clone()).collect::<Vec<_>>(),
            vec![study(1)],
            "{scope}"
        );
        // The study without a capability (US) points at the shared Endpoint, included.
        assert!(
            v["entry"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["resource"]["resourceType"] == "Endpoint"),
            "{scope}"
        );
        // ImagingStudy/{id} follows the same rule.
        let ct = json_of(&get(
            &fx.engine,
            &format!("/fhir/ImagingStudy/{}", study(1)),
            Some(&t),
        ));
        assert_eq!(capabilities(&ct).len(), 1, "{scope}");
        // The capability carries the restriction: were the CT series gone from the
        // study, it would stop working (checked at use, like the link).
        let base = path_of(&caps[0].1);
        let p = format!("{base}/studies/{}/metadata", study(1));
        assert_eq!(get(&fx.engine, &p, None).status, 200, "{scope}");
    }
}

#[test]
fn capabilities_serve_their_study_at_every_level_until_the_link_is_removed() {
    let fx = fixture(&[A], Some(cap_key()));
    let db = fx.engine.index_db();
    db.link_patient("alice", "DEMO-001", "SIA_DEMO").unwrap();
    let t = token(A, "patient/ImagingStudy.rs", "alice");
    let v = json_of(&get(
        &fx.engine,
        &format!("/fhir/ImagingStudy/{}", study(1)),
        Some(&t),
    ));
    let caps = capabilities(&v);
    assert_eq!(caps.len(), 1, "{v}");
    let base = path_of(&caps[0].1);
    for p in cap_paths(&base) {
        let r = get(&fx.engine, &p, None);
        assert!([200, 206].contains(&r.status), "{p}: {}", r.status);
    }
    // Another study under the same capability: refused.
    let other = format!("{base}/studies/{}/metadata", study(2));
    assert_eq!(get(&fx.engine, &other, None).status, 403);
    // The link goes: so does every capability that relied on it.
    assert_eq!(
        db.unlink_patient("", "alice", "DEMO-001", "SIA_DEMO")
            .unwrap(),
        1
    );
    for p in cap_paths(&base) {
        assert_eq!(get(&fx.engine, &p, None).status, 401, "{p}");
    }
    // Linked again: the capability works again (it was never more than the link).
    db.link_patient("alice", "DEMO-001", "SIA_DEMO").unwrap();
    assert_eq!(get(&fx.engine, &cap_paths(&base)[0], None).status, 200);
}

#[test]
fn capabilities_have_a_lifetime_bound_independent_of_the_token() {
    let fx = fixture(&[A], Some(cap_key().with_max_lifetime(1)));
    fx.engine
        .index_db()
        .link_patient("alice", "DEMO-001", "SIA_DEMO")
        .unwrap();
    let t = token(A, "patient/ImagingStudy.rs", "alice"); // lives 10 minutes
    let v = json_of(&get(
        &fx.engine,
        "/fhir/ImagingStudy?patient=alice",
        Some(&t),
    ));
    let caps = capabilities(&v);
    assert_eq!(caps.len(), 2);
    let p = format!("{}/studies/{}/metadata", path_of(&caps[0].1), caps[0].0);
    assert_eq!(get(&fx.engine, &p, None).status, 200);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = get(&fx.engine, &p, None);
    assert_eq!(r.status, 401);
}

#[test]
fn capability_lifetime_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let write = |extra: &str| {
        let p = dir.path().join("sia.toml");
        std::fs::write(dir.path().join("s.key"), [7u8; 40]).unwrap();
        std::fs::write(
            &p,
            format!(
                "[server]\nbase_url = \"http://h\"\ndb = \"i.db\"\n[[issuers]]\niss = \"{A}\"\naudiences = [\"{A}/fhir\"]\nhs256_secret_file = \"s.key\"\nalgorithms = [\"HS256\"]\n[capabilities]\nenabled = true\n{extra}"
            ),
        )
        .unwrap();
        sia::Config::from_file(&p)
    };
    let c = write("").unwrap();
    assert_eq!(
        c.capabilities.unwrap().max_lifetime(),
        sia::internal::auth::capability::DEFAULT_MAX_LIFETIME
    );
    let c = write("max_lifetime_seconds = 60\n").unwrap();
    assert_eq!(c.capabilities.unwrap().max_lifetime(), 60);
    assert!(write("max_lifetime_seconds = 0\n").is_err());
}

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

/// A one-frame CT instance of DICOM patient (`pid`, `issuer`) in `study`/`series`.
fn instance_file(
    path: &std::path::Path,
    (pid, issuer): (&str, &str),
    study: &str,
    series: &str,
    sop: &str,
) {
    use sia::internal::dicom::tag::{Encoding, Vr, tags, ts};
    use sia::internal::dicom::write::{DataSetWriter, file_meta};
    let ct = "1.2.840.10008.5.1.4.1.1.2";
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    w.str(tags::SOP_CLASS_UID, Vr::UI, ct)
        .str(tags::SOP_INSTANCE_UID, Vr::UI, sop)
        .str(tags::STUDY_DATE, Vr::DA, "20240102")
        .str(tags::STUDY_TIME, Vr::TM, "101112")
        .str(tags::MODALITY, Vr::CS, "CT")
        .str(tags::PATIENT_NAME, Vr::PN, "Intruder^Bob")
        .str(tags::PATIENT_ID, Vr::LO, pid)
        .str(tags::ISSUER_OF_PATIENT_ID, Vr::LO, issuer)
        .str(tags::STUDY_INSTANCE_UID, Vr::UI, study)
        .str(tags::SERIES_INSTANCE_UID, Vr::UI, series);
    w.us(tags::SAMPLES_PER_PIXEL, 1)
        .str(tags::PHOTOMETRIC_INTERPRETATION, Vr::CS, "MONOCHROME2")
        .us(tags::ROWS, 2)
        .us(tags::COLUMNS, 2)
        .us(tags::BITS_ALLOCATED, 8)
        .us(tags::BITS_STORED, 8)
        .us(tags::PIXEL_REPRESENTATION, 0);
    w.native_pixel_data(Vr::OW, &[1, 2, 3, 4]);
    let mut bytes = file_meta(ct, sop, ts::EXPLICIT_VR_LE);
    bytes.extend_from_slice(&w.into_bytes());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

const BOB: (&str, &str) = ("DEMO-002", DEMO2_ISSUER);

/// alice (A) -> DEMO-001, bob (A) -> DEMO-002.
fn alice_and_bob() -> (Fx, String, String) {
    let fx = fixture(&[A], None);
    let db = fx.engine.index_db();
    db.link_patient_for(A, "alice", "DEMO-001", "SIA_DEMO")
        .unwrap();
    db.link_patient_for(A, "bob", BOB.0, BOB.1).unwrap();
    (
        fx,
        token(A, "patient/ImagingStudy.rs", "alice"),
        token(A, "patient/ImagingStudy.rs", "bob"),
    )
}

/// The patient IDs named in a metadata answer.
fn patient_ids(r: &Response) -> Vec<String> {
    json_of(r)
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| i["00100020"]["Value"][0].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

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

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

pub fn token_with(iss: &str, extra: Value) -> String {
    let mut claims = json!({"iss": iss, "aud": format!("{iss}/fhir"), "exp": now() + 600,
                            "scope": "patient/ImagingStudy.rs", "patient": "alice"});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap()
}

#[test]
fn routes_not_served_yet_and_rendered_are_authorized_first() {
    let fx = fixture(&[A], Some(cap_key()));
    let db = fx.engine.index_db();
    db.link_patient_for(A, "alice", "DEMO-001", "SIA_DEMO")
        .unwrap();
    db.link_patient_for(A, "bob", BOB.0, BOB.1).unwrap();
    let alice = token(A, "patient/ImagingStudy.rs", "alice");
    let bob = token(A, "patient/ImagingStudy.rs", "bob");
    let search_only = token(A, "patient/ImagingStudy.s", "alice");
    let (st, se, i) = (study(1), format!("{ROOT}.1.1"), format!("{ROOT}.1.1.1"));
    let tails = [
        format!("studies/{st}/rendered"),
        format!("studies/{st}/thumbnail"),
        format!("studies/{st}/pixeldata"),
        format!("studies/{st}/bulkdata/00100010"),
        format!("studies/{st}/series/{se}/rendered"),
        format!("studies/{st}/series/{se}/thumbnail"),
        format!("studies/{st}/series/{se}/pixeldata"),
        format!("studies/{st}/series/{se}/bulkdata"),
        format!("studies/{st}/series/{se}/instances/{i}/rendered"),
        format!("studies/{st}/series/{se}/instances/{i}/thumbnail"),
        format!("studies/{st}/series/{se}/instances/{i}/pixeldata"),
        format!("studies/{st}/series/{se}/instances/{i}/frames/1/rendered"),
        format!("studies/{st}/series/{se}/instances/{i}/frames/1/thumbnail"),
    ];
    let v = json_of(&get(
        &fx.engine,
        &format!("/fhir/ImagingStudy/{st}"),
        Some(&alice),
    ));
    let cap = path_of(&capabilities(&v)[0].1);
    let other_cap = path_of(
        &capabilities(&json_of(&get(
            &fx.engine,
            &format!("/fhir/ImagingStudy/{}", study(2)),
            Some(&alice),
        )))[0]
            .1,
    );
    for t in &tails {
        let p = format!("/dicom-web/{t}");
        assert_eq!(get(&fx.engine, &p, None).status, 401, "{p}");
        assert_eq!(get(&fx.engine, &p, Some("garbage")).status, 401, "{p}");
        assert_eq!(get(&fx.engine, &p, Some(&bob)).status, 403, "{p}");
        assert_eq!(get(&fx.engine, &p, Some(&search_only)).status, 403, "{p}");
        // Rendered and thumbnail resources are served (issue 13); the rest is 501.
        let served = if t.ends_with("/rendered") || t.ends_with("/thumbnail") {
            200
        } else {
            501
        };
        let mine = get(&fx.engine, &p, Some(&alice));
        assert_eq!(mine.status, served, "{p}");
        let through_cap = get(&fx.engine, &format!("{cap}/{t}"), None);
        assert_eq!(through_cap.status, served, "{t}");
        if served == 200 {
            // Every URL under a capability carries it.
            // (In the header for one image, in each part of a multipart answer.)
            let location = match through_cap.header("Content-Location") {
                Some(l) => l.to_string(),
                None => String::from_utf8_lossy(&through_cap.body.to_vec()).into_owned(),
            };
            assert!(location.contains(&format!("{cap}/studies/")), "{t}");
        }
        assert_eq!(
            get(&fx.engine, &format!("{other_cap}/{t}"), None).status,
            403,
            "{t}"
        );
    }
}

#[test]
fn repeated_or_conflicting_compartment_parameters() {
    let (fx, alice, _bob) = alice_and_bob();
    let cases: &[(&str, u16)] = &[
        ("patient=alice", 200),
        ("patient=alice&patient=alice", 200),
        ("patient=alice&subject=Patient/alice", 200),
        ("patient=bob&patient=alice", 400),
        ("patient=alice&patient=bob", 400),
        ("subject=bob&patient=alice", 400),
        ("patient=alice&subject=Patient/bob", 400),
        ("patient=bob", 403),
        ("patient=bob&patient=bob", 403),
        ("patient.identifier=SIA_DEMO|DEMO-001", 200),
        (
            "patient.identifier=urn:oid:SIA_DEMO|DEMO-001&patient=alice",
            200,
        ),
        (
            "patient.identifier=SIA_DEMO|DEMO-001&patient.identifier=urn:oid:2.25.228146457203842916711418316839742735.999|DEMO-002",
            400,
        ),
        (
            "patient.identifier=urn:oid:2.25.228146457203842916711418316839742735.999|DEMO-002&patient.identifier=SIA_DEMO|DEMO-001",
            400,
        ),
        (
            "patient.identifier=urn:oid:2.25.228146457203842916711418316839742735.999|DEMO-002",
            403,
        ),
        (
            "subject.identifier=urn:oid:2.25.228146457203842916711418316839742735.999|DEMO-002&patient=alice",
            403,
        ),
    ];
    for (q, status) in cases {
        let r = get(&fx.engine, &format!("/fhir/ImagingStudy?{q}"), Some(&alice));
        assert_eq!(r.status, *status, "{q}");
        if *status == 200 {
            assert_eq!(json_of(&r)["total"], 2, "{q}");
        }
    }
}

#[test]
fn claim_checks_do_not_overflow() {
    let fx = fixture(&[A], None);
    fx.engine
        .index_db()
        .link_patient_for(A, "alice", "DEMO-001", "SIA_DEMO")
        .unwrap();
    let s1 = format!("/dicom-web/studies/{}/metadata", study(1));
    let cases = [
        (json!({"nbf": i64::MIN}), 200),
        (json!({"iat": i64::MIN}), 200),
        (json!({"nbf": i64::MIN, "iat": i64::MIN + 1}), 200),
        (json!({"exp": i64::MAX}), 200),
        (json!({"exp": i64::MIN}), 401),
        (json!({"exp": i64::MIN + 1}), 401),
        (json!({"nbf": i64::MAX}), 401),
        (json!({"iat": i64::MAX}), 401),
        (json!({"exp": u64::MAX}), 401),
        (json!({"nbf": -1e300}), 401),
        (json!({"exp": 1e300}), 401),
    ];
    for (extra, status) in cases {
        let t = token_with(A, extra.clone());
        assert_eq!(get(&fx.engine, &s1, Some(&t)).status, status, "{extra}");
    }
    // The same through a host's introspection response.
    for (exp, status) in [
        (json!(i64::MAX), 200),
        (json!(i64::MIN), 401),
        (json!(1e300), 401),
    ] {
        let mut req = Request::get(&s1).with_header("Accept", "*/*");
        req.introspection = Some(
            json!({"active": true, "iss": A, "exp": exp, "aud": format!("{A}/fhir"),
            "scope": "patient/ImagingStudy.rs", "patient": "alice"}),
        );
        assert_eq!(fx.engine.handle(&req).status, status, "{exp}");
    }
}

#[test]
fn scopes_are_separated_by_single_spaces_only() {
    let fx = fixture(&[A], None);
    fx.engine
        .index_db()
        .link_patient_for(A, "alice", "DEMO-001", "SIA_DEMO")
        .unwrap();
    let s1 = format!("/dicom-web/studies/{}/metadata", study(1));
    for (scope, status) in [
        ("patient/ImagingStudy.rs", 200),
        ("launch/patient patient/ImagingStudy.rs openid", 200),
        ("launch/patient\tpatient/ImagingStudy.rs", 403),
        ("patient/ImagingStudy.rs\topenid", 403),
        ("patient/ImagingStudy.rs\nopenid", 403),
        ("patient/ImagingStudy.rs\r\nopenid", 403),
        ("openid  patient/ImagingStudy.rs", 403),
        (" patient/ImagingStudy.rs", 403),
        ("patient/ImagingStudy.rs ", 403),
        ("patient/ImagingStudy.rs\u{a0}openid", 403),
        ("patient/ImagingStudy.rs\u{b}openid", 403),
    ] {
        let t = token(A, scope, "alice");
        assert_eq!(get(&fx.engine, &s1, Some(&t)).status, status, "{scope:?}");
    }
}

#[test]
fn attacker_input_is_not_echoed_unbounded() {
    let jwks_issuer = IssuerPolicy::new(
        "https://jwks.example",
        &["https://jwks.example/fhir"],
        &["RS256"],
        Keys::jwks_json(r#"{"keys": []}"#).unwrap(),
    )
    .unwrap();
    let auth = Arc::new(Authorizer::new(
        vec![policy(A), jwks_issuer],
        PatientPolicy::Links,
    ));
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        Config::builder()
            .db(dir.path().join("i.db"))
            .authorizer(Some(auth))
            .build(),
    )
    .unwrap();
    use base64::Engine as _;
    let b64 = |v: Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap())
    };
    let huge = format!("{}\r\nX-Injected: 1\"\\", "k".repeat(60_000));
    let claims = |iss: &str| {
        json!({"iss": iss, "aud": format!("{iss}/fhir"), "exp": now() + 600,
               "scope": "patient/ImagingStudy.rs", "patient": "alice"})
    };
    let tokens = [
        // A 60 kB kid with CR LF and quotes.
        format!(
            "{}.{}.c2ln",
            b64(json!({"alg": "RS256", "kid": huge})),
            b64(claims("https://jwks.example"))
        ),
        // A 60 kB issuer.
        format!(
            "{}.{}.c2ln",
            b64(json!({"alg": "HS256"})),
            b64(claims(&huge))
        ),
        // A 60 kB algorithm.
        format!("{}.{}.c2ln", b64(json!({"alg": huge})), b64(claims(A))),
    ];
    for t in tokens {
        let r = get(&engine, "/fhir/ImagingStudy", Some(&t));
        assert_eq!(r.status, 401);
        let challenge = r
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
            .map(|(_, v)| v.clone())
            .unwrap();
        assert!(challenge.len() < 400, "{} bytes", challenge.len());
        assert!(challenge.contains("kkkk"), "{challenge}");
        assert!(!challenge.chars().any(char::is_control), "{challenge:?}");
        assert!(r.body.to_vec().len() < 2000);
    }
}

#[test]
fn jwks_keys_that_must_not_verify_are_refused() {
    use sia::internal::auth::token::refuse_key;
    let b64 = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    };
    let mut n2048 = vec![0xc5u8; 256];
    n2048[255] |= 1;
    let n1024 = vec![0xc5u8; 128];
    let key = |n: &[u8], e: &[u8], extra: Value| {
        let mut v = json!({"kty": "RSA", "kid": "k", "n": b64(n), "e": b64(e)});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value::<jsonwebtoken::jwk::Jwk>(v).unwrap()
    };
    let e65537 = [1u8, 0, 1];
    let cases = [
        (key(&n2048, &e65537, json!({})), true),
        (key(&n2048, &e65537, json!({"use": "sig"})), true),
        (key(&n2048, &e65537, json!({"key_ops": ["verify"]})), true),
        (key(&n2048, &[0, 1, 0, 1], json!({})), true), // leading zero
        (key(&n2048, &[3], json!({})), false),
        (key(&n2048, &[1, 0, 0, 1], json!({})), true),
        (key(&n2048, &[1, 0, 2], json!({})), false), // even
        (key(&n2048, &[0, 255, 255], json!({})), false), // 65535
        (key(&n1024, &e65537, json!({})), false),
        (key(&n2048, &e65537, json!({"use": "enc"})), false),
        (key(&n2048, &e65537, json!({"key_ops": ["encrypt"]})), false),
        (key(&n2048, &e65537, json!({"key_ops": ["sign"]})), false),
        (key(&n2048, &e65537, json!({"key_ops": []})), false),
    ];
    for (k, ok) in &cases {
        assert_eq!(refuse_key(k).is_none(), *ok, "{k:?}: {:?}", refuse_key(k));
    }
    // Refused keys are not there at all: a token naming them has an unknown kid.
    let set = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
         "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        {"kty": "RSA", "kid": "e3", "n": b64(&n2048), "e": b64(&[3])},
        {"kty": "EC", "crv": "P-256", "kid": "good",
         "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
    ]});
    let mut p = policy("https://jwks.example");
    p.keys = Keys::jwks_json(r#"{"keys": []}"#).unwrap();
    let auth = Authorizer::new(vec![p], PatientPolicy::Links);
    auth.set_jwks("https://jwks.example", &set.to_string())
        .unwrap();
    assert!(!auth.wants_jwks_refresh("https://jwks.example", "good"));
    assert!(auth.wants_jwks_refresh("https://jwks.example", "e3"));
    // Keys from the configuration are screened the same way.
    let mut p = policy("https://jwks.example");
    p.keys = Keys::jwks_json(&set.to_string()).unwrap();
    let auth = Authorizer::new(vec![p], PatientPolicy::Links);
    assert!(!auth.wants_jwks_refresh("https://jwks.example", "good"));
    assert!(auth.wants_jwks_refresh("https://jwks.example", "enc"));
}

#[test]
fn an_index_from_before_the_rule_is_re_read_and_repaired() {
    let (fx, alice, bob) = alice_and_bob();
    let path = fx.dir.path().join("i.db");
    {
        // What the old rule left: a file of bob's in alice's study, and the study moved
        // to bob, alice's instances under it.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "UPDATE studies SET patient = (SELECT id FROM patients WHERE patient_id = 'DEMO-002')
               WHERE study_uid = '{ROOT}.1';
             ALTER TABLE files DROP COLUMN reread;
             PRAGMA user_version = 2;"
        ))
        .unwrap();
    }
    let s1 = format!("/dicom-web/studies/{}/metadata", study(1));
    assert_eq!(get(&fx.engine, &s1, Some(&bob)).status, 200, "the old leak");
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
