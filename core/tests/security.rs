//! Issue 18: capabilities never grant more than their token, links are per issuer,
//! UID reuse never moves data to another patient, and the hardening around them.

use std::path::PathBuf;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use sia::auth::capability::CapabilityKey;
use sia::auth::{Authorizer, IssuerPolicy, Keys, PatientPolicy};
use sia::demo::DEMO_UID_ROOT as ROOT;
use sia::http::{Request, Response};
use sia::{Config, Engine};

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
    IssuerPolicy {
        iss: iss.into(),
        audiences: vec![format!("{iss}/fhir")],
        algorithms: vec![Algorithm::HS256],
        leeway: 30,
        require_typ: None,
        patient_claim: "patient".into(),
        scope_claim: "scope".into(),
        keys: Keys::Secret(SECRET.to_vec()),
    }
}

/// The demo set indexed, with these issuers and (optionally) capability URLs.
pub fn fixture(issuers: &[&str], cap: Option<CapabilityKey>) -> Fx {
    let dir = tempfile::tempdir().unwrap();
    sia::demo::write_demo(&dir.path().join("data")).unwrap();
    let auth = Arc::new(Authorizer::new(
        issuers.iter().map(|i| policy(i)).collect(),
        PatientPolicy::Links,
    ));
    let engine = Engine::open(Config {
        db: dir.path().join("i.db"),
        auth: Some(auth),
        capabilities: cap,
        ..Config::default()
    })
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
        sia::auth::capability::DEFAULT_MAX_LIFETIME
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
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let auth = Arc::new(Authorizer::new(vec![policy(A)], PatientPolicy::Links));
    let engine = Engine::open(Config {
        db: path.clone(),
        auth: Some(auth),
        ..Config::default()
    })
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
    assert_eq!(v, sia::index::schema::SCHEMA_VERSION);
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
        req.introspection = Some(json!({"active": true, "exp": now() + 300,
            "scope": "patient/ImagingStudy.rs", "patient": "alice"}));
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
