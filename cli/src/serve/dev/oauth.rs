//! The development EHR's OAuth 2.0 endpoints: `authorize` (RFC 6749 §4.1 with PKCE S256,
//! RFC 7636, required), `token` (authorization code and refresh token grants, public
//! clients), `introspect` (RFC 7662, HTTP Basic client authentication).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{
    ACCESS_TOKEN_SECONDS, CODE_SECONDS, DevEhr, REFRESH_SECONDS, json_response, make_room, now,
    random_token,
};

/// What an authorization code stands for until it is exchanged (once).
pub struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    scope: String,
    patient: Option<String>,
    code_challenge: String,
    expires: i64,
}

/// What a refresh token stands for.
pub struct RefreshGrant {
    client_id: String,
    scope: String,
    patient: Option<String>,
    expires: i64,
}

type Params = HashMap<String, String>;

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn error_page(status: StatusCode, message: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><title>sia dev EHR</title><h1>Authorization failed</h1><p>{}</p>",
            html_escape(message)
        )),
    )
        .into_response()
}

/// A redirect to the client with `pairs` added to its redirect URI.
fn redirect(redirect_uri: &url::Url, pairs: &[(&str, &str)]) -> Response {
    let mut url = redirect_uri.clone();
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, url.to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response()
}

/// `GET /dev/authorize`: validates the request, lets the user pick a patient when
/// `launch/patient` is asked for (or takes `patient=` from the query, for automation),
/// and redirects back with a code and the client's `state`.
pub async fn authorize(State(ehr): State<Arc<DevEhr>>, Query(p): Query<Params>) -> Response {
    let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
    // Until the redirect URI is known good, errors are shown, never redirected
    // (RFC 6749 §4.1.2.1).
    let Some(client_id) = get("client_id") else {
        return error_page(StatusCode::BAD_REQUEST, "client_id is required");
    };
    let Some(redirect_raw) = get("redirect_uri") else {
        return error_page(StatusCode::BAD_REQUEST, "redirect_uri is required");
    };
    let redirect_uri = match url::Url::parse(redirect_raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.fragment().is_none() => u,
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "redirect_uri must be an absolute http(s) URL without a fragment",
            );
        }
    };
    let state = get("state").unwrap_or("");
    let fail = |error: &str, description: &str| {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if !state.is_empty() {
            pairs.push(("state", state));
        }
        redirect(&redirect_uri, &pairs)
    };
    if get("response_type") != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    let Some(challenge) = get("code_challenge") else {
        return fail(
            "invalid_request",
            "PKCE is required: code_challenge is missing",
        );
    };
    if get("code_challenge_method") != Some("S256") {
        return fail("invalid_request", "PKCE code_challenge_method must be S256");
    }
    if state.is_empty() {
        return fail("invalid_request", "state is required");
    }
    match get("aud") {
        Some(aud)
            if [ehr.fhir_base.as_str(), ehr.imaging_fhir.as_str()]
                .contains(&aud.trim_end_matches('/')) => {}
        Some(_) => return fail("invalid_request", "aud is not this EHR's FHIR base"),
        None => return fail("invalid_request", "aud is required (the FHIR base URL)"),
    }
    let scope = get("scope").unwrap_or("").to_string();
    let wants_patient = scope.split(' ').any(|s| s == "launch/patient");
    let patient = if wants_patient {
        match get("patient") {
            Some(id) => match ehr.engine.index_db().patients_with_id(id, None) {
                Ok(rows) if !rows.is_empty() => Some(id.to_string()),
                Ok(_) => {
                    return error_page(StatusCode::BAD_REQUEST, &format!("no patient {id:?}"));
                }
                Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            },
            None => return patient_picker(&ehr, &p),
        }
    } else {
        None
    };
    let code = match random_token::<32>() {
        Ok(c) => c,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    {
        let mut codes = ehr.codes.lock().unwrap_or_else(|e| e.into_inner());
        if !make_room(&mut codes, |c: &CodeGrant| c.expires) {
            return fail("temporarily_unavailable", "too many outstanding codes");
        }
        codes.insert(
            code.clone(),
            CodeGrant {
                client_id: client_id.to_string(),
                redirect_uri: redirect_raw.to_string(),
                scope,
                patient,
                code_challenge: challenge.to_string(),
                expires: now() + CODE_SECONDS,
            },
        );
    }
    redirect(&redirect_uri, &[("code", &code), ("state", state)])
}

/// The patient picker: the indexed patients, each a link back to `authorize` with
/// `patient=` added.
fn patient_picker(ehr: &DevEhr, p: &Params) -> Response {
    let patients = match ehr.engine.index_db().patients(1000) {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let mut rows = String::new();
    for row in &patients {
        let pt = &row.patient;
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in p {
            if k != "patient" {
                query.append_pair(k, v);
            }
        }
        query.append_pair("patient", &pt.id);
        rows.push_str(&format!(
            "<tr><td><a href=\"{}/authorize?{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            html_escape(&ehr.base),
            html_escape(&query.finish()),
            html_escape(&sia::internal::fhir::person_name_display(&pt.name)),
            html_escape(&pt.id),
            html_escape(&pt.issuer),
            html_escape(&pt.birth_date),
            html_escape(&pt.sex),
            row.studies
        ));
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sia dev EHR: choose a patient</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em 1em;text-align:left}}</style></head>\
         <body><h1>Choose a patient</h1><p>App <code>{}</code> asks for <code>{}</code>.</p>\
         <table><tr><th>Name</th><th>Patient ID</th><th>Issuer</th><th>Birth date</th><th>Sex</th><th>Studies</th></tr>\n{rows}</table></body></html>",
        html_escape(p.get("client_id").map_or("", String::as_str)),
        html_escape(p.get("scope").map_or("", String::as_str)),
    ))
    .into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

/// RFC 7636 §4.1: 43..128 characters of `[A-Za-z0-9-._~]`.
fn verifier_ok(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `POST /dev/token`.
pub async fn token(
    State(ehr): State<Arc<DevEhr>>,
    headers: HeaderMap,
    Form(p): Form<Params>,
) -> Response {
    let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if get("grant_type") == Some("client_credentials") {
        return client_credentials(&ehr, &p);
    }
    // Public clients send client_id in the body; a Basic header's user name counts too.
    let client_id = get("client_id")
        .map(str::to_string)
        .or_else(|| basic_credentials(&headers).map(|(id, _)| id));
    let Some(client_id) = client_id else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id is required",
        );
    };
    let (scope, patient) = match get("grant_type") {
        Some("authorization_code") => {
            let Some(code) = get("code") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "code is required",
                );
            };
            // Taken out at once: a code is good for one exchange, even a failed one.
            let grant = ehr
                .codes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(code);
            let Some(grant) = grant.filter(|g| g.expires > now()) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "unknown or expired code",
                );
            };
            if grant.client_id != client_id {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the code was issued to another client",
                );
            }
            if get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "redirect_uri differs from the authorization request",
                );
            }
            let Some(verifier) = get("code_verifier").filter(|v| verifier_ok(v)) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "code_verifier is missing or malformed",
                );
            };
            if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.code_challenge {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "code_verifier does not match code_challenge",
                );
            }
            (grant.scope, grant.patient)
        }
        Some("refresh_token") => {
            let Some(rt) = get("refresh_token") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is required",
                );
            };
            let grant = ehr
                .refresh
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(rt);
            let Some(grant) = grant.filter(|g| g.expires > now() && g.client_id == client_id)
            else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "unknown or expired refresh token",
                );
            };
            // A narrower scope may be asked for, never a wider one (RFC 6749 §6).
            let scope = match get("scope") {
                None => grant.scope,
                Some(asked) => {
                    let had: Vec<&str> = grant.scope.split(' ').collect();
                    if !asked.split(' ').all(|s| had.contains(&s)) {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_scope",
                            "a refresh cannot widen the scope",
                        );
                    }
                    asked.to_string()
                }
            };
            (scope, grant.patient)
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code, refresh_token or client_credentials",
            );
        }
    };
    let access =
        match ehr.access_token(&client_id, &scope, patient.as_deref(), ACCESS_TOKEN_SECONDS) {
            Ok(t) => t,
            Err(e) => return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e),
        };
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_SECONDS,
        "scope": scope,
    });
    if let Some(p) = &patient {
        body["patient"] = json!(p);
    }
    if scope
        .split(' ')
        .any(|s| s == "offline_access" || s == "online_access")
    {
        let rt = match random_token::<32>() {
            Ok(t) => t,
            Err(e) => return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e),
        };
        let mut refresh = ehr.refresh.lock().unwrap_or_else(|e| e.into_inner());
        if make_room(&mut refresh, |g: &RefreshGrant| g.expires) {
            refresh.insert(
                rt.clone(),
                RefreshGrant {
                    client_id,
                    scope,
                    patient,
                    expires: now() + REFRESH_SECONDS,
                },
            );
            body["refresh_token"] = json!(rt);
        }
    }
    json_response(StatusCode::OK, &body)
}

/// The (client id, secret) of an HTTP Basic `Authorization` header (RFC 7617).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded.
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// `POST /dev/introspect` (RFC 7662): the client must authenticate with HTTP Basic;
/// only this EHR's own tokens can be active.
pub async fn introspect(
    State(ehr): State<Arc<DevEhr>>,
    headers: HeaderMap,
    Form(p): Form<Params>,
) -> Response {
    let (id, secret) = &ehr.introspection_client;
    let by_assertion = p.get("client_assertion").is_some_and(|a| {
        p.get("client_assertion_type").map(String::as_str) == Some(JWT_BEARER)
            && authenticate(&ehr, a).is_ok()
    });
    let authenticated = by_assertion
        || basic_credentials(&headers).is_some_and(|(i, s)| {
            // Compare in constant time: the secret guards token metadata.
            &i == id
                && s.len() == secret.len()
                && s.bytes()
                    .zip(secret.bytes())
                    .fold(0, |a, (x, y)| a | (x ^ y))
                    == 0
        });
    if !authenticated {
        let mut r = oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "introspection needs client authentication (HTTP Basic)",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Basic realm=\"sia dev EHR\""),
        );
        return r;
    }
    let Some(token) = p.get("token").filter(|t| !t.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        );
    };
    if let Some(answer) = ehr.opaque_introspection(token) {
        tracing::info!("dev EHR: introspection: active={}", answer["active"]);
        return json_response(StatusCode::OK, &answer);
    }
    let mut answer = ehr.auth.introspect(token);
    if ehr.is_revoked(token) {
        answer = json!({ "active": false });
    }
    if answer.get("iss").and_then(|v| v.as_str()) != Some(ehr.fhir_base.as_str()) {
        answer = json!({ "active": false });
    } else {
        answer["aud"] = json!([ehr.fhir_base, ehr.imaging_fhir]);
        answer["token_type"] = json!("Bearer");
    }
    tracing::info!("dev EHR: introspection: active={}", answer["active"]);
    json_response(StatusCode::OK, &answer)
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Algorithms a client assertion may use (SMART Backend Services: RS384, ES384).
const ASSERTION_ALGS: [jsonwebtoken::Algorithm; 4] = [
    jsonwebtoken::Algorithm::RS384,
    jsonwebtoken::Algorithm::ES384,
    jsonwebtoken::Algorithm::RS256,
    jsonwebtoken::Algorithm::ES256,
];

/// The registered client a client assertion (RFC 7523 §3) authenticates: signed by one of
/// the client's keys, `iss` = `sub` = the client id, `aud` this EHR's token or
/// introspection endpoint, `exp` ahead by at most five minutes, `jti` not seen before.
pub fn authenticate(ehr: &DevEhr, assertion: &str) -> Result<String, String> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| "not a JWT")?;
    if !ASSERTION_ALGS.contains(&header.alg) {
        return Err(format!("algorithm {:?} is not accepted", header.alg));
    }
    let payload = assertion.split('.').nth(1).ok_or("not a JWT")?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).map_err(|_| "not a JWT")?)
            .map_err(|_| "not a JWT")?;
    let client_id = claims["iss"].as_str().ok_or("no iss")?.to_string();
    let keys = ehr
        .clients
        .get(&client_id)
        .ok_or_else(|| format!("client {client_id:?} is not registered"))?;
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid),
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => None,
    }
    .ok_or("no registered key of the client fits the assertion's kid")?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| format!("client key: {e}"))?;
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_issuer(&[&client_id]);
    v.set_audience(&[
        format!("{}/token", ehr.base),
        format!("{}/introspect", ehr.base),
    ]);
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    v.leeway = 30;
    let data = jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &v)
        .map_err(|e| format!("client assertion: {e}"))?;
    let c = data.claims;
    if c["sub"].as_str() != Some(client_id.as_str()) {
        return Err("sub differs from iss".into());
    }
    let exp = c["exp"].as_i64().ok_or("exp is not a number")?;
    if exp > now() + 300 + 30 {
        return Err("exp is more than five minutes ahead".into());
    }
    let jti = c["jti"]
        .as_str()
        .filter(|j| !j.is_empty())
        .ok_or("no jti")?;
    let mut used = ehr
        .used_assertions
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if !make_room(&mut used, |e: &i64| *e) {
        return Err("too many assertions".into());
    }
    if used
        .insert(format!("{client_id} {jti}"), exp + 30)
        .is_some()
    {
        return Err("the assertion's jti was used before".into());
    }
    Ok(client_id)
}

/// `client_credentials` (SMART Backend Services): a registered client authenticated by
/// `private_key_jwt` gets a short-lived token with the `system/` scopes it asks for.
fn client_credentials(ehr: &DevEhr, p: &Params) -> Response {
    let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if get("client_assertion_type") != Some(JWT_BEARER) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_credentials needs private_key_jwt (client_assertion_type jwt-bearer)",
        );
    }
    let client_id = match get("client_assertion").map(|a| authenticate(ehr, a)) {
        Some(Ok(id)) => id,
        Some(Err(e)) => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", &e),
        None => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client_assertion is required",
            );
        }
    };
    let Some(scope) = get("scope") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "scope is required",
        );
    };
    if !scope.split(' ').all(|s| s.starts_with("system/")) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "a backend service asks for system/ scopes only",
        );
    }
    const SECONDS: i64 = 300;
    match ehr.access_token(&client_id, scope, None, SECONDS) {
        Ok(t) => {
            tracing::info!("dev EHR: client_credentials token for {client_id}: {scope}");
            json_response(
                StatusCode::OK,
                &json!({ "access_token": t, "token_type": "Bearer", "expires_in": SECONDS, "scope": scope }),
            )
        }
        Err(e) => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e),
    }
}

/// `POST /dev/revoke` (RFC 7009): the token is inactive from now on. Development only:
/// anyone may revoke any token (a real EHR authenticates the client first).
pub async fn revoke(State(ehr): State<Arc<DevEhr>>, Form(p): Form<Params>) -> Response {
    let Some(token) = p.get("token").filter(|t| !t.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        );
    };
    let mut revoked = ehr.revoked.lock().unwrap_or_else(|e| e.into_inner());
    if !make_room(&mut revoked, |e: &i64| *e) {
        return oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "too many revoked tokens",
        );
    }
    revoked.insert(token.clone(), now() + super::READY_TOKEN_SECONDS);
    tracing::info!("dev EHR: a token was revoked");
    (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response()
}
