//! Issue 18: capabilities never grant more than their token, links are per issuer,
//! UID reuse never moves data to another patient, and the hardening around them.
//! This module holds the shared fixtures; the cases are in its submodules.

mod capabilities;
mod hardening;
mod held_grants;
mod links;
mod uid_reuse;

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
        crate::common::config_in(dir.path())
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
