//! Token verification, scope parsing and the authorization decision on arbitrary input:
//! never a panic, and nothing is granted without a valid signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sia::Request;
use sia::internal::auth::scope::{ScopeSet, evaluate};
use sia::internal::auth::token::{IssuerPolicy, Keys, verify};
use sia::internal::auth::{Authorizer, Interaction, PatientPolicy};

fn policies() -> Vec<IssuerPolicy> {
    let jwks = Keys::jwks_json(
        r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"ec1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#,
    )
    .expect("fixed JWKS");
    let base = |iss: &str, keys: Keys, algorithms: &[&str]| {
        IssuerPolicy::new(iss, &["https://ehr/fhir"], algorithms, keys).expect("policy")
    };
    vec![
        base(
            "https://hs",
            Keys::shared_secret(b"0123456789abcdef0123456789abcdef"),
            &["HS256"],
        ),
        base("https://ec", jwks, &["ES256"]),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (token, scopes) = text.split_once('\n').unwrap_or((text, text));
    // Nothing the fuzzer writes can carry a valid signature for these keys.
    assert!(verify(token, &policies(), 1_800_000_000).is_err());
    let set = ScopeSet::parse(scopes);
    let _ = evaluate(&set, Interaction::Read);
    let _ = evaluate(&set, Interaction::Search);
    let auth = Authorizer::new(policies(), PatientPolicy::Links);
    let req =
        Request::get("/fhir/ImagingStudy").with_header("Authorization", &format!("Bearer {token}"));
    assert!(auth.authorize(&req, Interaction::Search).is_err());
});
