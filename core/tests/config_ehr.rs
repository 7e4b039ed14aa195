//! The configuration keys of a host in front of a real EHR: introspection, client
//! authentication, patient resolution, Backend Services policies.

use sia::BackendAccess;
use sia::{ClientAuth, Config};

/// Throwaway test keys (generated for this test only).
const P384: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDCOTY5B+w6gNdpxbg1f
NGNdKpM6Qyv33V3FMyUxI0kqcsZiTm9/C1X+UJKgdubEt36hZANiAATcouQdKDXW
Olfom/2UBu0AoEO3P32tfw5kmNAAbMqFYlnqzq0PpDe4DchRy8QcsJ9TxktlfhXh
ObzVCuJpGBmwLLxT1EFN7DTXbFhfLYn6/29mJ5lh4dBALUmonzjFO/0=
-----END PRIVATE KEY-----
";
const P256: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVJ4jECHKDlsCsc9H
PWYHNdSIm31YfjDMGo1qEPaXI5OhRANCAASulrBcPOoG5Yk0X2eqw4DPL5742QDd
mD7tBeZO5ixmNm4CyhDRIyZ2Y/XpxNCm+vijGqM9XchbyjldhcmoEKXd
-----END PRIVATE KEY-----
";

fn load(issuer: &str, rest: &str) -> sia::Result<Config> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "s3cret\n").unwrap();
    std::fs::write(dir.path().join("p384.pem"), P384).unwrap();
    std::fs::write(dir.path().join("p256.pem"), P256).unwrap();
    let p = dir.path().join("sia.toml");
    std::fs::write(
        &p,
        format!(
            "[server]\nbase_url = \"http://h\"\ndb = \"i.db\"\n[[issuers]]\niss = \"https://ehr/fhir\"\naudiences = [\"https://ehr/fhir\"]\n{issuer}\n{rest}"
        ),
    )
    .unwrap();
    Config::from_file(&p)
}

#[test]
fn introspection_needs_no_keys_but_a_client() {
    let c = load(
        "introspection_url = \"https://ehr/introspect\"\nclient_id = \"sia\"\nclient_secret_file = \"secret\"",
        "",
    )
    .unwrap();
    let [ic] = c.issuer_clients.as_slice() else {
        panic!("one issuer client")
    };
    assert_eq!(
        ic.introspection_url.as_deref(),
        Some("https://ehr/introspect")
    );
    assert_eq!(ic.fhir_base, "https://ehr/fhir");
    assert!(!ic.introspect_all && !ic.resolve_patients);
    assert!(
        matches!(&ic.client, Some(ClientAuth::SecretBasic { client_id, secret }) if client_id == "sia" && secret == "s3cret")
    );
    // A secret never reaches Debug output.
    assert!(!format!("{c:?}").contains("s3cret"));
    // No client authentication: refused.
    assert!(load("introspection_url = \"https://ehr/introspect\"", "").is_err());
    // Neither keys nor introspection: refused, as before.
    assert!(load("", "").is_err());
    // Keys and introspection together, introspecting everything.
    let c = load(
        "jwks_url = \"https://ehr/jwks\"\nalgorithms = [\"ES256\"]\nintrospection_url = \"https://ehr/introspect\"\nintrospect_all = true\nintrospection_cache_seconds = 60\nclient_id = \"sia\"\nclient_secret_file = \"secret\"",
        "",
    )
    .unwrap();
    assert!(c.issuer_clients[0].introspect_all);
    assert_eq!(c.issuer_clients[0].introspection_cache_seconds, Some(60));
    assert!(
        load(
            "jwks_url = \"https://ehr/jwks\"\nalgorithms = [\"ES256\"]\nintrospect_all = true",
            ""
        )
        .is_err(),
        "introspect_all without introspection_url"
    );
    assert!(
        load(
            "introspection_url = \"ftp://ehr/introspect\"\nclient_id = \"sia\"\nclient_secret_file = \"secret\"",
            ""
        )
        .is_err()
    );
    assert!(load("introspection_url = \"https://ehr/i\"\nclient_id = \"sia\"\nclient_secret_file = \"secret\"\nclient_key_file = \"p384.pem\"", "").is_err());
    assert!(load("introspection_url = \"https://ehr/i\"\nunknown_key = 1", "").is_err());
}

#[test]
fn private_key_jwt_clients_and_patient_resolution() {
    let c = load(
        "introspection_url = \"https://ehr/introspect\"\nclient_id = \"sia\"\nclient_key_file = \"p384.pem\"\nclient_key_id = \"k1\"\nresolve_patients = true\nfhir_base = \"https://ehr/r4/\"\ntoken_endpoint = \"https://ehr/token\"",
        "",
    )
    .unwrap();
    let ic = &c.issuer_clients[0];
    assert!(ic.resolve_patients);
    assert_eq!(ic.fhir_base, "https://ehr/r4");
    assert_eq!(ic.token_endpoint.as_deref(), Some("https://ehr/token"));
    assert!(
        matches!(&ic.client, Some(ClientAuth::PrivateKeyJwt { alg, kid, .. })
        if *alg == sia::JwsAlgorithm::ES384 && kid.as_deref() == Some("k1"))
    );
    // A P-256 key signs ES256 when asked, not the ES384 default.
    assert!(load("introspection_url = \"https://ehr/i\"\nclient_id = \"sia\"\nclient_key_file = \"p256.pem\"\nclient_key_alg = \"ES256\"", "").is_ok());
    assert!(load("introspection_url = \"https://ehr/i\"\nclient_id = \"sia\"\nclient_key_file = \"p256.pem\"\nclient_key_alg = \"HS256\"", "").is_err());
    // Resolution needs private_key_jwt (a backend-services token).
    assert!(load("jwks_url = \"https://ehr/jwks\"\nalgorithms = [\"ES256\"]\nresolve_patients = true\nclient_id = \"sia\"\nclient_secret_file = \"secret\"", "").is_err());
    let c = load(
        "jwks_url = \"https://ehr/jwks\"\nalgorithms = [\"ES256\"]\nresolve_patients = true\nclient_id = \"sia\"\nclient_key_file = \"p384.pem\"",
        "",
    )
    .unwrap();
    assert!(c.issuer_clients[0].introspection_url.is_none());
    // Without introspection or resolution, an issuer has no client.
    let c = load(
        "jwks_url = \"https://ehr/jwks\"\nalgorithms = [\"ES256\"]",
        "",
    )
    .unwrap();
    assert!(c.issuer_clients.is_empty());
}

#[test]
fn backend_client_policies() {
    let issuer = "jwks_url = \"https://ehr/jwks\"\nalgorithms = [\"ES256\"]";
    let c = load(
        issuer,
        "[[backend_clients]]\nclient_id = \"research\"\nstudies = \"all\"\n[[backend_clients]]\nclient_id = \"cohort\"\niss = \"https://ehr/fhir\"\npatients = [\"123\", \"456\"]\n",
    )
    .unwrap();
    let clients = c.auth.as_ref().unwrap().backend_clients().to_vec();
    assert_eq!(clients.len(), 2);
    assert_eq!(clients[0].access, BackendAccess::AllStudies);
    assert_eq!(clients[0].iss, "https://ehr/fhir");
    assert_eq!(
        clients[1].access,
        BackendAccess::Patients(vec!["123".into(), "456".into()])
    );
    for bad in [
        "[[backend_clients]]\nclient_id = \"x\"\n",
        "[[backend_clients]]\nclient_id = \"x\"\nstudies = \"some\"\n",
        "[[backend_clients]]\nclient_id = \"x\"\npatients = []\n",
        "[[backend_clients]]\nclient_id = \"x\"\npatients = [\"1\"]\nstudies = \"all\"\n",
        "[[backend_clients]]\nclient_id = \"x\"\nstudies = \"all\"\niss = \"https://other\"\n",
        "[[backend_clients]]\nclient_id = \"\"\nstudies = \"all\"\n",
    ] {
        assert!(load(issuer, bad).is_err(), "{bad}");
    }
}

/// RFC 7518 §3.2: an HMAC key at least as long as the hash output — 32 bytes for
/// HS256, 48 for HS384, 64 for HS512 — checked when the configuration is read.
#[test]
fn shared_secrets_are_as_long_as_their_algorithms_hash() {
    for (algorithms, len, ok) in [
        ("\"HS256\"", 31, false),
        ("\"HS256\"", 32, true),
        ("\"HS384\"", 47, false),
        ("\"HS384\"", 48, true),
        ("\"HS256\", \"HS512\"", 63, false),
        ("\"HS512\"", 64, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.key"), vec![b'k'; len]).unwrap();
        let p = dir.path().join("sia.toml");
        std::fs::write(
            &p,
            format!(
                "[server]\nbase_url = \"http://h\"\ndb = \"i.db\"\n[[issuers]]\niss = \"https://ehr\"\naudiences = [\"https://ehr/fhir\"]\nhs256_secret_file = \"s.key\"\nalgorithms = [{algorithms}]\n"
            ),
        )
        .unwrap();
        let loaded = Config::from_file(&p);
        assert_eq!(
            loaded.is_ok(),
            ok,
            "{algorithms} with {len} bytes: {loaded:?}"
        );
        if let Err(e) = loaded {
            assert!(e.to_string().contains("RFC 7518"), "{e}");
        }
    }
}

#[test]
fn the_engine_signs_client_assertions_with_the_configured_key() {
    use base64::Engine as _;
    let c = load(
        "introspection_url = \"https://ehr/introspect\"\nclient_id = \"sia\"\nclient_key_file = \"p384.pem\"\nclient_key_id = \"k1\"",
        "",
    )
    .unwrap();
    let client = c.issuer_clients[0].client.clone().unwrap();
    let token = client
        .client_assertion("https://ehr/token", "jti-1")
        .unwrap();
    // The public point is the last 97 bytes of the PKCS#8 DER: 04 || x || y.
    let body: String = P384.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let point = &der[der.len() - 97..];
    assert_eq!(point[0], 4);
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let key =
        jsonwebtoken::DecodingKey::from_ec_components(&b64(&point[1..49]), &b64(&point[49..]))
            .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES384);
    validation.set_audience(&["https://ehr/token"]);
    validation.set_issuer(&["sia"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap();
    assert_eq!(data.header.kid.as_deref(), Some("k1"));
    assert_eq!(data.claims["sub"], "sia");
    assert_eq!(data.claims["jti"], "jti-1");
    let (iat, exp) = (
        data.claims["iat"].as_i64().unwrap(),
        data.claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 300);
    // A client_secret_basic client has no assertion to send.
    let basic = load(
        "introspection_url = \"https://ehr/introspect\"\nclient_id = \"sia\"\nclient_secret_file = \"secret\"",
        "",
    )
    .unwrap();
    let err = basic.issuer_clients[0]
        .client
        .as_ref()
        .unwrap()
        .client_assertion("https://ehr/token", "j")
        .unwrap_err();
    assert_eq!(err.kind(), sia::ErrorKind::InvalidInput);
}

#[test]
fn a_toml_syntax_error_reads_on_one_line_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sia.toml");
    std::fs::write(&p, "[[issuers]]\niss = \"x\"\n").unwrap();
    let e = Config::from_file(&p).unwrap_err();
    let m = e.message();
    assert_eq!(e.kind(), sia::ErrorKind::Config, "{m}");
    // The parser draws the line at fault over several lines; an error message replaces
    // control characters, so those breaks must not reach it.
    assert!(!m.contains('\u{FFFD}') && !m.contains('\n'), "{m}");
    assert!(
        m.contains("line 1")
            && m.contains("[[issuers]]")
            && m.contains("missing field `audiences`"),
        "{m}"
    );
}
