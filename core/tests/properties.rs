//! Property tests of the parsers that take request input.

use proptest::prelude::*;
use sia::internal::wado::{AcceptHeader, parse_frame_list};

proptest! {
    #[test]
    fn accept_parser_never_panics(s in "\\PC{0,200}") {
        let _ = AcceptHeader::parse(&s);
    }

    #[test]
    fn accept_parser_reads_back_what_was_written(
        ranges in proptest::collection::vec(
            ("[a-z]{1,8}", "[a-z0-9.+-]{1,12}", proptest::option::of("[0-9.]{1,20}"), 0u16..=1000), 1..5)
    ) {
        let text: Vec<String> = ranges.iter().map(|(k, s, ts, q)| {
            let mut r = format!("multipart/related; type=\"{k}/{s}\"");
            if let Some(ts) = ts { r.push_str(&format!("; transfer-syntax={ts}")); }
            r.push_str(&format!(";q={}.{:03}", q / 1000, q % 1000));
            r
        }).collect();
        let parsed = AcceptHeader::parse(&text.join(" , ")).unwrap();
        prop_assert_eq!(parsed.ranges.len(), ranges.len());
        for (got, (k, s, ts, q)) in parsed.ranges.iter().zip(&ranges) {
            let want = format!("{k}/{s}");
            prop_assert_eq!(got.param("type"), Some(want.as_str()));
            prop_assert_eq!(got.param("transfer-syntax"), ts.as_deref());
            prop_assert_eq!(got.q, *q);
        }
    }

    #[test]
    fn frame_lists_round_trip(frames in proptest::collection::hash_set(1u32..1_000_000, 1..50)) {
        let frames: Vec<u32> = frames.into_iter().collect();
        let text = frames.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        prop_assert_eq!(parse_frame_list(&text).unwrap(), frames.clone());
        prop_assert_eq!(parse_frame_list(&text.replace(',', "%2C")).unwrap(), frames);
    }

    #[test]
    fn frame_lists_with_zero_or_duplicates_are_400(frames in proptest::collection::vec(0u32..20, 2..10)) {
        let text = frames.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let mut seen = std::collections::HashSet::new();
        let valid = frames.iter().all(|&f| f > 0 && seen.insert(f));
        prop_assert_eq!(parse_frame_list(&text).is_ok(), valid);
    }

    #[test]
    fn frame_list_parser_never_panics(s in "\\PC{0,60}") {
        if let Err(e) = parse_frame_list(&s) { prop_assert_eq!(e.status, 400); }
    }
}

mod scopes {
    use proptest::prelude::*;
    use sia::internal::auth::Interaction;
    use sia::internal::auth::scope::{Permission, ScopeSet, evaluate};

    /// The rules written the plainest way: a scope allows `interaction` on ImagingStudy
    /// when its level is patient or user, its type is ImagingStudy or `*`, and its
    /// permissions (v1 read/write/* or an in-order cruds subset) include the letter; a
    /// scope with a `?` allows it only when every parameter is `modality`.
    fn reference(scopes: &str, interaction: Interaction) -> (bool, bool) {
        let letter = if interaction == Interaction::Read {
            'r'
        } else {
            's'
        };
        let mut any = false;
        let mut unrestricted = false;
        for s in scopes.split_ascii_whitespace() {
            let (head, query) = match s.split_once('?') {
                Some((h, q)) => (h, Some(q)),
                None => (s, None),
            };
            let Some((level, rest)) = head.split_once('/') else {
                continue;
            };
            if level != "patient" && level != "user" {
                continue;
            }
            let Some((ty, perms)) = rest.split_once('.') else {
                continue;
            };
            if ty != "ImagingStudy" && ty != "*" {
                continue;
            }
            let letters: String = match perms {
                "read" if query.is_none() => "rs".into(),
                "*" if query.is_none() => "cruds".into(),
                "write" | "read" | "*" => continue,
                p if !p.is_empty() && in_order_subset_of_cruds(p) => p.into(),
                _ => continue,
            };
            if !letters.contains(letter) {
                continue;
            }
            match query {
                None => {
                    any = true;
                    unrestricted = true;
                }
                Some(q) => {
                    let all_modality = q.split('&').all(|kv| {
                        kv.split_once('=').is_some_and(|(k, v)| {
                            k == "modality"
                                && !v.is_empty()
                                && (!v.contains('|')
                                    || v.starts_with(
                                        "http://dicom.nema.org/resources/ontology/DCM|",
                                    )
                                    || v.starts_with('|'))
                                && !v.ends_with('|')
                        })
                    });
                    any |= all_modality;
                }
            }
        }
        (any, unrestricted)
    }

    /// Whether `p` is "cruds" with some letters left out: walk "cruds", taking each
    /// letter from the front of `p` when it is there.
    fn in_order_subset_of_cruds(p: &str) -> bool {
        let mut rest = p;
        for l in ["c", "r", "u", "d", "s"] {
            if let Some(r) = rest.strip_prefix(l) {
                rest = r;
            }
        }
        rest.is_empty()
    }

    fn scope_strategy() -> impl Strategy<Value = String> {
        let level = prop_oneof!["patient", "user", "system", "Patient", "x"];
        let ty = prop_oneof!["ImagingStudy", "\\*", "Observation", "imagingstudy"];
        let perms = prop_oneof!["read", "write", "\\*", "[cruds]{0,5}", "[a-z]{1,3}"];
        let query = prop_oneof![
            Just(String::new()),
            Just("?modality=CT".to_string()),
            Just("?started=gt2020".to_string()),
            Just("?modality=http://dicom.nema.org/resources/ontology/DCM|MR".to_string()),
            Just("?modality=".to_string())
        ];
        (level, ty, perms, query).prop_map(|(l, t, p, q)| format!("{l}/{t}.{p}{q}"))
    }

    proptest! {
        #[test]
        fn evaluation_never_allows_what_the_reference_denies(scopes in proptest::collection::vec(scope_strategy(), 0..5)) {
            let text = scopes.join(" ");
            for interaction in [Interaction::Read, Interaction::Search] {
                let (allowed, unrestricted) = reference(&text, interaction);
                match evaluate(&ScopeSet::parse(&text), interaction) {
                    Permission::Denied => prop_assert!(!allowed, "{text:?} denied but the reference allows"),
                    Permission::Patient(None) => prop_assert!(unrestricted, "{text:?} unrestricted but the reference is not"),
                    Permission::Patient(Some(_)) => prop_assert!(allowed && !unrestricted, "{text:?} restricted but the reference says {allowed}/{unrestricted}"),
                }
            }
        }
    }
}

mod claims {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use sia::internal::auth::token::{IssuerPolicy, Keys, verify};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const ISS: &str = "https://ehr.example";
    const AUD: &str = "https://ehr.example/fhir";
    const NOW: i64 = 1_800_000_000;

    fn policy() -> IssuerPolicy {
        IssuerPolicy::new(ISS, &[AUD], &["HS256"], Keys::shared_secret(SECRET)).unwrap()
    }

    /// The claim rules, written plainly.
    fn reference(c: &serde_json::Map<String, Value>) -> bool {
        let num = |v: &Value| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64));
        let exp_ok = c.get("exp").and_then(num).is_some_and(|e| e + 30 > NOW);
        let time_ok = |k: &str| {
            c.get(k)
                .is_none_or(|v| num(v).is_some_and(|t| t - 30 <= NOW))
        };
        let iss_ok = c.get("iss") == Some(&json!(ISS));
        let aud_ok = match c.get("aud") {
            Some(Value::String(a)) => a == AUD,
            Some(Value::Array(l)) => l.iter().all(Value::is_string) && l.iter().any(|a| a == AUD),
            _ => false,
        };
        // A string, or an array of strings (joined with spaces), as some servers send it.
        let scope_ok = match c.get("scope") {
            Some(Value::String(_)) => true,
            Some(Value::Array(l)) => l.iter().all(Value::is_string),
            _ => false,
        };
        let strings_ok = ["sub", "client_id", "patient", "fhirUser"]
            .iter()
            .all(|k| matches!(c.get(*k), None | Some(Value::String(_)) | Some(Value::Null)));
        exp_ok && time_ok("nbf") && time_ok("iat") && iss_ok && aud_ok && scope_ok && strings_ok
    }

    fn value() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            (NOW - 200..NOW + 200).prop_map(|t| Some(json!(t))),
            // The boundaries of a 30-second leeway, exactly.
            prop_oneof![
                Just(NOW - 31),
                Just(NOW - 30),
                Just(NOW + 30),
                Just(NOW + 31)
            ]
            .prop_map(|t| Some(json!(t))),
            (NOW - 200..NOW + 200).prop_map(|t| Some(json!(t.to_string()))),
            Just(Some(json!(null))),
            Just(Some(json!(ISS))),
            Just(Some(json!(AUD))),
            Just(Some(json!([AUD, "x"]))),
            Just(Some(json!(["x", 1]))),
            Just(Some(json!("patient/ImagingStudy.rs"))),
            Just(Some(json!(12.5))),
        ]
    }

    proptest! {
        #[test]
        fn random_claim_sets_are_accepted_only_when_the_rules_hold(
            exp in value(), nbf in value(), iat in value(), iss in value(), aud in value(), scope in value(), patient in value()
        ) {
            let mut c = serde_json::Map::new();
            for (k, v) in [("exp", exp), ("nbf", nbf), ("iat", iat), ("iss", iss), ("aud", aud), ("scope", scope), ("patient", patient)] {
                if let Some(v) = v { c.insert(k.into(), v); }
            }
            let token = encode(&Header::new(Algorithm::HS256), &Value::Object(c.clone()), &EncodingKey::from_secret(SECRET).unwrap()).unwrap();
            let got = verify(&token, &[policy()], NOW);
            // The issuer is how keys are chosen: without a string iss equal to ISS nothing verifies.
            prop_assert_eq!(got.is_ok(), reference(&c), "{:?} -> {:?}", c, got);
        }
    }
}

/// Issue 18: no capability grants what its token could not. Random scope strings,
/// patients and issuers against the demo set with capability URLs on: every capability
/// a token obtains (from a search or a read) names a study the token itself reads, and
/// reaches no other study.
mod capabilities {
    use std::sync::OnceLock;

    use proptest::prelude::*;

    use crate::security::{A, B, Fx, cap_key, capabilities, fixture, get, json_of, path_of, token};

    const ROOT: &str = sia::DEMO_UID_ROOT;

    fn fx() -> &'static Fx {
        static FX: OnceLock<Fx> = OnceLock::new();
        FX.get_or_init(|| {
            let fx = fixture(&[A, B], Some(cap_key()));
            let db = fx.engine.index_db();
            db.link_patient_for(A, "alice", "DEMO-001", "SIA_DEMO")
                .unwrap();
            db.link_patient_for(A, "carol", "DEMO-003", "").unwrap();
            db.link_patient_for(B, "alice", "DEMO-002", crate::security::DEMO2_ISSUER)
                .unwrap();
            // Unassigned: serves no one with two issuers.
            db.link_patient("bob", "DEMO-002", crate::security::DEMO2_ISSUER)
                .unwrap();
            // The property is only as good as the capabilities it sees.
            let t = token(A, "patient/ImagingStudy.rs", "alice");
            let v = json_of(&get(&fx.engine, "/fhir/ImagingStudy", Some(&t)));
            assert_eq!(capabilities(&v).len(), 2, "{v}");
            fx
        })
    }

    fn scope() -> impl Strategy<Value = String> {
        let level = prop_oneof![Just("patient"), Just("user"), Just("system")];
        let ty = prop_oneof![Just("ImagingStudy"), Just("*"), Just("Observation")];
        let perms = prop_oneof![
            Just("read"),
            Just("*"),
            Just("r"),
            Just("s"),
            Just("rs"),
            Just("cruds"),
            Just("c")
        ];
        let query = prop_oneof![
            Just(""),
            Just("?modality=CT"),
            Just("?modality=US"),
            Just("?modality=MR"),
            Just("?modality=http://dicom.nema.org/resources/ontology/DCM|XA"),
            Just("?started=gt2020"),
        ];
        (level, ty, perms, query).prop_map(|(l, t, p, q)| format!("{l}/{t}.{p}{q}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn no_capability_grants_what_its_token_could_not(
            scopes in proptest::collection::vec(scope(), 1..4),
            patient in prop_oneof![Just("alice"), Just("bob"), Just("carol")],
            iss in prop_oneof![Just(A), Just(B)],
        ) {
            let fx = fx();
            let t = token(iss, &scopes.join(" "), patient);
            let studies: Vec<String> = (1..=4).map(|n| format!("{ROOT}.{n}")).collect();
            let mut caps = capabilities(&json_of(&get(&fx.engine, "/fhir/ImagingStudy", Some(&t))));
            for s in &studies {
                caps.extend(capabilities(&json_of(&get(&fx.engine, &format!("/fhir/ImagingStudy/{s}"), Some(&t)))));
            }
            for (uid, address) in caps {
                let direct = get(&fx.engine, &format!("/dicom-web/studies/{uid}/metadata"), Some(&t)).status;
                prop_assert_eq!(direct, 200, "{} {:?} got a capability for {} it cannot read", iss, scopes, uid);
                let base = path_of(&address);
                for other in studies.iter().filter(|o| **o != uid) {
                    let status = get(&fx.engine, &format!("{base}/studies/{other}/metadata"), None).status;
                    prop_assert!(status >= 400, "{}'s capability reached {}", uid, other);
                }
                prop_assert_eq!(get(&fx.engine, &format!("{base}/studies/{uid}/metadata"), None).status, 200);
            }
        }
    }
}
