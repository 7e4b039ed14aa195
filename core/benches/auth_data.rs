//! Setup shared by `benches/auth.rs` and `examples/auth_latency.rs`: an issuer with a
//! JWKS, signed tokens, and an index where Patient/123 has 10 studies.

use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use sia::internal::dicom::tag::{Encoding, Vr, tags, ts};
use sia::internal::dicom::write::{DataSetWriter, file_meta};
use sia::{Authorizer, IssuerPolicy, Keys, PatientPolicy};
use sia::{Config, Engine};

pub const ISS: &str = "https://ehr.example.org";
pub const AUD: &str = "https://ehr.example.org/fhir";

/// The issuer policy for the keys in `dir` (`bench-jwks.json`).
pub fn policy(dir: &Path) -> IssuerPolicy {
    let jwks = std::fs::read_to_string(dir.join("bench-jwks.json")).unwrap();
    IssuerPolicy::new(
        ISS,
        &[AUD],
        &["RS256", "PS256", "ES256"],
        Keys::jwks_json(&jwks).unwrap(),
    )
    .unwrap()
}

/// A token for Patient/123 signed with the RSA key in `dir` (`RS256`, `PS256`) or its EC
/// key (`ES256`).
pub fn token(dir: &Path, alg: Algorithm) -> String {
    let (file, kid) = match alg {
        Algorithm::RS256 => ("bench-rsa.pem", "rsa1"),
        Algorithm::PS256 => ("bench-rsa.pem", "rsa2"),
        _ => ("bench-ec.pem", "ec1"),
    };
    let pem = std::fs::read(dir.join(file)).unwrap();
    let key = if alg == Algorithm::ES256 {
        EncodingKey::from_ec_pem(&pem)
    } else {
        EncodingKey::from_rsa_pem(&pem)
    }
    .unwrap();
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": ISS, "aud": AUD, "exp": now + 3600, "iat": now, "sub": "u", "client_id": "app",
                        "scope": "patient/ImagingStudy.rs", "patient": "123"});
    encode(&header, &claims, &key).unwrap()
}

/// An engine over an index where Patient/123 (DICOM P123) has 10 studies.
pub fn engine(work: &Path, keys: &Path) -> Engine {
    engine_with(work, keys, Config::default().search_cache_bytes)
}

/// [`engine`] with a search answer cache of `search_cache_bytes` (0: off).
pub fn engine_with(work: &Path, keys: &Path, search_cache_bytes: usize) -> Engine {
    let data = work.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for s in 1..=10u32 {
        let study = format!("1.2.826.0.1.3680043.10.9.{s}");
        for i in 1..=3u32 {
            let sop = format!("{study}.1.{i}");
            let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
            w.str(tags::SOP_CLASS_UID, Vr::UI, "1.2.840.10008.5.1.4.1.1.2")
                .str(tags::SOP_INSTANCE_UID, Vr::UI, &sop)
                .str(tags::STUDY_DATE, Vr::DA, &format!("2024{:02}01", s.min(12)))
                .str(tags::MODALITY, Vr::CS, "CT")
                .str(tags::PATIENT_NAME, Vr::PN, "Bench^Patient")
                .str(tags::PATIENT_ID, Vr::LO, "P123")
                .str(tags::STUDY_INSTANCE_UID, Vr::UI, &study)
                .str(tags::SERIES_INSTANCE_UID, Vr::UI, &format!("{study}.1"))
                .str(tags::INSTANCE_NUMBER, Vr::IS, &i.to_string());
            let mut f = file_meta("1.2.840.10008.5.1.4.1.1.2", &sop, ts::EXPLICIT_VR_LE);
            f.extend_from_slice(w.as_bytes());
            std::fs::write(data.join(format!("{s}-{i}.dcm")), f).unwrap();
        }
    }
    let auth = Arc::new(Authorizer::new(vec![policy(keys)], PatientPolicy::Links));
    let engine = Engine::open(
        Config::builder()
            .db(work.join("i.db"))
            .authorizer(Some(auth))
            .search_cache_bytes(search_cache_bytes)
            .build(),
    )
    .unwrap();
    engine.index(&[&data], &Default::default()).unwrap();
    engine.index_db().link_patient("123", "P123", "").unwrap();
    engine
}
