//! The hardening around decisions: routes authorized first, compartment parameters,
//! claim arithmetic, scope syntax, echoed input, refused JWKS keys.

use super::*;

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
        crate::common::config_in(dir.path())
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

/// Whether every header value of `r` is visible ASCII, space or tab (RFC 9110 §5.5).
fn headers_are_safe(r: &Response) -> bool {
    r.headers
        .iter()
        .all(|(_, v)| v.bytes().all(|b| b == b'\t' || (0x20..0x7F).contains(&b)))
}

#[test]
fn request_text_echoed_in_an_answer_cannot_split_it_or_grow_it() {
    let dir = tempfile::tempdir().unwrap();
    sia::write_demo(&dir.path().join("data")).unwrap();
    let engine = Engine::open(Config::builder().db(dir.path().join("i.db")).build()).unwrap();
    engine
        .index(&[dir.path().join("data")], &Default::default())
        .unwrap();
    let inject = "%0D%0ASet-Cookie:%20sid%3D1%0D%0A%0D%0A%3Chtml%3E%22%5C%C3%BC%00";
    let long = "x".repeat(100_000);
    // An unsupported includefield comes back in a Warning (PS3.18 §8.3.5.1.x).
    for field in [inject.to_string(), format!("{inject}{long}")] {
        let r = engine.handle(&Request::get(&format!(
            "/dicom-web/studies?includefield={field}"
        )));
        assert_eq!(r.status, 200);
        assert!(headers_are_safe(&r), "{:?}", r.headers);
        let warning = r
            .header("Warning")
            .expect("a Warning for the unknown field");
        assert!(warning.starts_with("299 sia \"") && warning.ends_with('"'));
        assert!(
            warning.contains("Set-Cookie"),
            "the text is kept: {warning}"
        );
        assert!(
            warning.contains("\\\"") && warning.contains("\\\\"),
            "{warning}"
        );
        assert!(warning.len() < 2_000, "{} bytes", warning.len());
    }
    // Errors that quote a parameter, the method, the path or the Accept value.
    let base = format!(
        "/dicom-web/studies/{root}.1/series/{root}.1.1/instances/{root}.1.1.1",
        root = sia::DEMO_UID_ROOT
    );
    let cases = [
        Request::get(&format!(
            "/wado?requestType=WADO&contentType={inject}{long}"
        )),
        Request::get(&format!("{base}/frames/1{inject}")),
        Request::get(&format!("{base}/rendered?window={inject}")),
        Request::get(&format!("/dicom-web/studies?{inject}{long}=1")),
        Request::get(&format!("{base}/frames/1")).with_header("Accept", &format!("\r\nX: 1{long}")),
        Request::new("GE\r\nT", &format!("/dicom-web/studies{inject}")),
        Request::get(&format!("/no/{inject}{long}")),
    ];
    for req in cases {
        let r = engine.handle(&req);
        assert!(r.status >= 400, "{} {}", req.method, r.status);
        assert!(headers_are_safe(&r));
        let body = String::from_utf8(r.body.to_vec()).unwrap();
        assert!(body.len() < 4_500, "{} bytes echoed", body.len());
        assert!(
            !body.trim_end_matches('\n').chars().any(char::is_control),
            "{body:?}"
        );
    }
    let e = sia::Error::new(sia::ErrorKind::InvalidInput, "a\r\nb\u{0}c\u{85}d");
    assert_eq!(e.message(), "a\u{FFFD}\u{FFFD}b\u{FFFD}c\u{FFFD}d");
}
