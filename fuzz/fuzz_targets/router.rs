//! `Engine::handle` on arbitrary method, path, query and headers against a small fixed
//! index (the demo set), served twice: open (no `[auth]`, as `sia get` without a config)
//! and secured (SMART tokens, patient links, capability URLs). Never a panic, a status
//! from the documented set, a Content-Length that matches the body — and, secured,
//! nothing of a study the request's credentials do not reach: a 2xx answer names no
//! other study in its path or its body.
#![no_main]

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use sia::Request;
use sia::internal::auth::capability::CapabilityKey;
use sia::internal::auth::{Authorizer, IssuerPolicy, Keys, PatientPolicy};
use sia::{Config, Engine};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const CAP_SECRET: &[u8] = b"capabilities-of-the-fuzzed-server";

/// One way a request can be credentialled, and the studies it reaches.
struct Credential {
    /// `Authorization` value, when there is a token.
    authorization: Option<String>,
    /// A capability: the path prefix that carries it.
    capability: Option<String>,
    /// The secret string that identifies this credential inside a request.
    secret: String,
    studies: BTreeSet<String>,
}

struct Fixture {
    _dir: tempfile::TempDir,
    open: Engine,
    secured: Engine,
    credentials: Vec<Credential>,
    all_studies: BTreeSet<String>,
}

fn study_uids(engine: &Engine, query: &str) -> BTreeSet<String> {
    let resp = engine.handle(&Request::get(&format!("/dicom-web/studies{query}")));
    assert_eq!(resp.status, 200, "demo QIDO {query}");
    let rows: serde_json::Value = serde_json::from_slice(&resp.body.to_vec()).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["0020000D"]["Value"][0].as_str().unwrap().to_string())
        .collect()
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        sia::internal::demo::write_demo(&data).expect("demo");
        let open =
            Engine::open(Config::builder().db(dir.path().join("open.db")).build()).expect("engine");
        open.index(&[data.clone()], &Default::default())
            .expect("index");

        // Two issuers: patient ids are per issuer, so issuer B's "p1" reaches nothing.
        let policy = |iss: &str| {
            IssuerPolicy::new(
                iss,
                &[&format!("{iss}/fhir")],
                &["HS256"],
                Keys::shared_secret(SECRET),
            )
            .expect("policy")
        };
        // Capabilities live as long as the fixture's tokens (ten days).
        let cap_key = CapabilityKey::new(CAP_SECRET.to_vec())
            .expect("capability key")
            .with_max_lifetime(20 * 86_400);
        let secured = Engine::open(
            Config::builder()
                .db(dir.path().join("secured.db"))
                .authorizer(Some(Arc::new(Authorizer::new(
                    vec![policy("https://ehr"), policy("https://ehr-b")],
                    PatientPolicy::Links,
                ))))
                .capabilities(Some(cap_key.clone()))
                .build(),
        )
        .expect("engine");
        secured
            .index(&[data.clone()], &Default::default())
            .expect("index");
        // UID reuse across patients, added later: files of DEMO-002 naming DEMO-001's
        // study, series and SOP Instance UIDs. None may be indexed (issue 18, finding 2).
        let root = sia::internal::demo::DEMO_UID_ROOT;
        collision(
            &data.join("0-study.dcm"),
            &format!("{root}.1"),
            "1.9.1",
            "1.9.1.1",
        );
        collision(
            &data.join("0-series.dcm"),
            "1.9.2",
            &format!("{root}.1.1"),
            "1.9.2.1",
        );
        collision(
            &data.join("0-sop.dcm"),
            "1.9.3",
            "1.9.3.1",
            &format!("{root}.1.1.1"),
        );
        for engine in [&open, &secured] {
            let report = engine
                .index(&[data.clone()], &Default::default())
                .expect("index");
            assert_eq!(report.conflicts.len(), 3, "{report:?}");
        }
        let links = [
            ("p1", "DEMO-001", "SIA_DEMO"),
            (
                "p2",
                "DEMO-002",
                "2.25.228146457203842916711418316839742735.999",
            ),
            ("p3", "DEMO-003", ""),
        ];
        for (fhir, id, issuer) in links {
            secured
                .index_db()
                .link_patient_for("https://ehr", fhir, id, issuer)
                .expect("link");
        }

        let owned = |id: &str| study_uids(&open, &format!("?PatientID={id}"));
        let all_studies = study_uids(&open, "");
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 10 * 86_400;
        let token_of = |iss: &str, scope: &str, patient: &str| {
            let claims = json!({"iss": iss, "aud": format!("{iss}/fhir"), "exp": exp,
                                "scope": scope, "patient": patient});
            let key = EncodingKey::from_secret(SECRET).unwrap();
            encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
        };
        let token = |scope: &str, patient: &str| token_of("https://ehr", scope, patient);
        let bearer_of = |t: String, studies: BTreeSet<String>| Credential {
            authorization: Some(format!("Bearer {t}")),
            capability: None,
            secret: t,
            studies,
        };
        let bearer = |scope: &str, patient: &str, studies: BTreeSet<String>| {
            let t = token(scope, patient);
            Credential {
                authorization: Some(format!("Bearer {t}")),
                capability: None,
                secret: t,
                studies,
            }
        };
        let p1 = owned("DEMO-001");
        let cap_study = p1.iter().next().expect("DEMO-001 has a study").clone();
        let cap = cap_key.issue(&cap_study, "https://ehr", "p1", None, exp as i64);
        assert!(
            all_studies.len() > p1.len(),
            "the demo set has other patients' studies"
        );
        let credentials = vec![
            bearer("patient/*.rs", "p1", p1.clone()),
            bearer("patient/ImagingStudy.rs?modality=CT", "p1", p1),
            bearer(
                "launch/patient patient/ImagingStudy.read",
                "p3",
                owned("DEMO-003"),
            ),
            bearer("user/*.cruds", "p2", owned("DEMO-002")),
            bearer("system/*.rs", "p1", BTreeSet::new()),
            bearer("patient/*.rs", "nobody", BTreeSet::new()),
            bearer_of(
                token_of("https://ehr-b", "patient/*.rs", "p1"),
                BTreeSet::new(),
            ),
            Credential {
                authorization: None,
                capability: Some(format!("/dicom-web/cap/{cap}/")),
                secret: cap,
                studies: [cap_study].into(),
            },
            Credential {
                authorization: None,
                capability: None,
                secret: String::new(),
                studies: BTreeSet::new(),
            },
        ];
        // The oracle below is only as good as these credentials: each must really reach
        // its studies (and only those), else the fuzzer would check nothing.
        for c in &credentials {
            let resp = match (&c.authorization, &c.capability) {
                (Some(auth), _) => secured
                    .handle(&Request::get("/dicom-web/studies").with_header("Authorization", auth)),
                (None, Some(cap)) => secured.handle(&Request::get(&format!(
                    "{cap}studies/{}/metadata",
                    c.studies.first().unwrap()
                ))),
                (None, None) => secured.handle(&Request::get("/dicom-web/studies")),
            };
            if c.studies.is_empty() {
                assert!([200, 401, 403].contains(&resp.status), "{}", resp.status);
                assert!(resp.status != 200 || resp.body.to_vec() == b"[]");
            } else {
                assert_eq!(
                    resp.status,
                    200,
                    "{}",
                    String::from_utf8_lossy(&resp.body.to_vec())
                );
                let body = resp.body.to_vec();
                assert!(c.studies.iter().any(|uid| names(&body, uid)));
            }
        }
        Fixture {
            _dir: dir,
            open,
            secured,
            credentials,
            all_studies,
        }
    })
}

/// A file of DICOM patient DEMO-002 in `study`/`series` with SOP Instance UID `sop`.
fn collision(path: &std::path::Path, study: &str, series: &str, sop: &str) {
    use sia::internal::dicom::tag::{Encoding, Vr, tags, ts};
    use sia::internal::dicom::write::{DataSetWriter, file_meta};
    let ct = "1.2.840.10008.5.1.4.1.1.2";
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    w.str(tags::SOP_CLASS_UID, Vr::UI, ct)
        .str(tags::SOP_INSTANCE_UID, Vr::UI, sop)
        .str(tags::STUDY_DATE, Vr::DA, "20240102")
        .str(tags::STUDY_TIME, Vr::TM, "101112")
        .str(tags::MODALITY, Vr::CS, "CT")
        .str(tags::PATIENT_NAME, Vr::PN, "Smith^John")
        .str(tags::PATIENT_ID, Vr::LO, "DEMO-002")
        .str(
            tags::ISSUER_OF_PATIENT_ID,
            Vr::LO,
            "2.25.228146457203842916711418316839742735.999",
        )
        .str(tags::STUDY_INSTANCE_UID, Vr::UI, study)
        .str(tags::SERIES_INSTANCE_UID, Vr::UI, series);
    let mut bytes = file_meta(ct, sop, ts::EXPLICIT_VR_LE);
    bytes.extend_from_slice(&w.into_bytes());
    std::fs::write(path, bytes).expect("collision file");
}

/// Real UIDs of the demo set, so the fuzzer reaches the frame code without guessing them.
const PREFIXES: &[&str] = &[
    "/dicom-web/studies/2.25.228146457203842916711418316839742735.2/series/2.25.228146457203842916711418316839742735.2.1/instances/2.25.228146457203842916711418316839742735.2.1.1/",
    "/dicom-web/studies/2.25.228146457203842916711418316839742735.4/series/2.25.228146457203842916711418316839742735.4.1/instances/2.25.228146457203842916711418316839742735.4.1.1/",
    "/dicom-web/studies/2.25.228146457203842916711418316839742735.3/series/2.25.228146457203842916711418316839742735.3.2/instances/2.25.228146457203842916711418316839742735.3.2.1/",
    "/dicom-web/",
    "",
];

/// Whether `hay` names the UID `uid` (not merely a longer UID that starts with it).
fn names(hay: &[u8], uid: &str) -> bool {
    let uid = uid.as_bytes();
    hay.windows(uid.len())
        .enumerate()
        .any(|(at, w)| w == uid && !hay.get(at + uid.len()).is_some_and(u8::is_ascii_digit))
}

/// The body with what merely echoes the request removed: a FHIR Bundle's `link`s
/// repeat the search, forbidden UIDs included.
fn answer(body: Vec<u8>) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(mut v) if v["resourceType"] == "Bundle" => {
            v.as_object_mut().unwrap().remove("link");
            serde_json::to_vec(&v).unwrap()
        }
        _ => body,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let text = String::from_utf8_lossy(rest);
    let mut fields = text.split('\n');
    let first = fields.next().unwrap_or("");
    let (method, target) = first.split_once(' ').unwrap_or(("GET", first));
    let prefix = PREFIXES[usize::from(sel) % PREFIXES.len()];
    // Modes: 0 is the open engine; 1.. the secured engine with one credential.
    let mode = usize::from(sel) / PREFIXES.len() % (f.credentials.len() + 1);
    let credential = mode.checked_sub(1).map(|k| &f.credentials[k]);
    let prefix = match credential.and_then(|c| c.capability.as_deref()) {
        Some(cap) if prefix.starts_with("/dicom-web/") => prefix.replacen("/dicom-web/", cap, 1),
        _ => prefix.to_string(),
    };
    let mut req = Request::get(&format!("{prefix}{target}"));
    req.method = method.to_string();
    if let Some(auth) = credential.and_then(|c| c.authorization.as_deref()) {
        req.headers.push(("Authorization".into(), auth.into()));
    }
    for f in fields {
        if let Some((name, value)) = f.split_once(':') {
            req.headers
                .push((name.to_string(), value.trim().to_string()));
        }
    }
    let engine = if credential.is_some() {
        &f.secured
    } else {
        &f.open
    };
    let resp = engine.handle(&req);
    assert!(
        [200, 206, 400, 401, 403, 404, 405, 406, 410, 501].contains(&resp.status),
        "status {}",
        resp.status
    );
    if req.method != "HEAD" {
        assert_eq!(
            resp.header("Content-Length"),
            Some(resp.body.len().to_string().as_str())
        );
    }
    let Some(credential) = credential else {
        return;
    };
    if !(200..300).contains(&resp.status) {
        return;
    }
    // What every credential the request carries reaches (the fuzzer may copy one).
    let mut reached = credential.studies.clone();
    for c in &f.credentials {
        if !c.secret.is_empty() && (req.path.contains(&c.secret) || text.contains(&c.secret)) {
            reached.extend(c.studies.iter().cloned());
        }
    }
    let body = answer(resp.body.to_vec());
    for uid in f.all_studies.difference(&reached) {
        assert!(
            !names(req.path.as_bytes(), uid),
            "{} answered {} for a study out of reach",
            req.path,
            resp.status
        );
        assert!(
            !names(&body, uid),
            "{} answered {} naming a study out of reach",
            req.path,
            resp.status
        );
    }
});
