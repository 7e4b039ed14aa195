//! The development SMART EHR under `/dev` (`sia serve --dev`): enough of an EHR for
//! the seed's whole journey on one machine — SMART configuration, authorization code
//! flow with PKCE, tokens and refresh tokens, RFC 7662 introspection, and a FHIR
//! `Patient` server built from the DICOM demographics. Its tokens are ES256 JWTs that
//! the engine trusts as one more issuer. Development only: every client is a public
//! client, every request is granted, and the user is always `dev-user`.

mod keys;
mod oauth;
mod patient;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jsonwebtoken::jwk::JwkSet;
use serde_json::{Value, json};
use sia::Engine;
use sia::{Authorizer, IssuerPolicy, Keys};

pub use keys::random_token;

/// Lifetime of access tokens, seconds.
pub const ACCESS_TOKEN_SECONDS: i64 = 3600;
/// Lifetime of the ready token printed at start, seconds.
pub const READY_TOKEN_SECONDS: i64 = 24 * 3600;
/// Lifetime of authorization codes, seconds (RFC 6749 §4.1.2: short; ten minutes at most).
const CODE_SECONDS: i64 = 60;
/// Lifetime of refresh tokens, seconds.
const REFRESH_SECONDS: i64 = 7 * 24 * 3600;
/// Most outstanding codes and refresh tokens each; past it, the oldest expired go first
/// and then new ones are refused.
const MAX_GRANTS: usize = 10_000;

/// The development EHR.
pub struct DevEhr {
    /// `{base}/dev/fhir`: the EHR's FHIR base, the `iss` of its tokens and the `aud`
    /// apps ask for.
    pub fhir_base: String,
    /// `{base}/dev`.
    pub base: String,
    /// The imaging server's FHIR base, also an audience of every token.
    pub imaging_fhir: String,
    /// Client id and secret the introspection endpoint requires (HTTP Basic).
    pub introspection_client: (String, String),
    key: keys::SigningKey,
    engine: Arc<Engine>,
    auth: Arc<Authorizer>,
    codes: Mutex<HashMap<String, oauth::CodeGrant>>,
    refresh: Mutex<HashMap<String, oauth::RefreshGrant>>,
    /// With `--dev-opaque-tokens`: access token -> its claims (introspection only).
    opaque: Option<Mutex<HashMap<String, Value>>>,
    /// Tokens revoked at `/dev/revoke` (RFC 7009), until they expire.
    revoked: Mutex<HashMap<String, i64>>,
    /// Backend-services clients (`--dev-client ID=JWKS_FILE`): id -> public keys.
    clients: HashMap<String, JwkSet>,
    /// `jti`s of client assertions already used, until they expire (no replay).
    used_assertions: Mutex<HashMap<String, i64>>,
}

/// The files the development EHR keeps beside the index `db`.
pub fn key_path(db: &Path) -> std::path::PathBuf {
    beside(db, "dev-es256.pem")
}

fn beside(db: &Path, suffix: &str) -> std::path::PathBuf {
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sia.db".into());
    db.with_file_name(format!("{name}.{suffix}"))
}

impl DevEhr {
    /// The issuer policy the engine needs to trust the EHR's tokens, with the key kept
    /// beside `db` (created on first use).
    pub fn issuer_policy(
        db: &Path,
        server_base: &str,
        imaging_fhir: &str,
    ) -> Result<IssuerPolicy, String> {
        let key = keys::load_or_create(&key_path(db))?;
        let keys = Keys::jwks_json(&json!({ "keys": [key.jwk] }).to_string())
            .map_err(|e| format!("dev JWKS: {e}"))?;
        let fhir_base = format!("{}/dev/fhir", server_base.trim_end_matches('/'));
        IssuerPolicy::new(&fhir_base, &[imaging_fhir, &fhir_base], &["ES256"], keys)
            .map_err(|e| format!("dev issuer: {e}"))
    }

    /// The EHR for the server at `server_base`, signing with the key beside `db`.
    pub fn new(
        db: &Path,
        server_base: &str,
        engine: Arc<Engine>,
        auth: Arc<Authorizer>,
    ) -> Result<DevEhr, String> {
        let base = format!("{}/dev", server_base.trim_end_matches('/'));
        let secret = keys::load_or_create_secret(&beside(db, "dev-introspect-secret"))?;
        Ok(DevEhr {
            fhir_base: format!("{base}/fhir"),
            imaging_fhir: engine.fhir_context().fhir_base.clone(),
            base,
            introspection_client: ("sia-introspect".into(), secret),
            key: keys::load_or_create(&key_path(db))?,
            engine,
            auth,
            codes: Mutex::new(HashMap::new()),
            refresh: Mutex::new(HashMap::new()),
            opaque: None,
            revoked: Mutex::new(HashMap::new()),
            clients: HashMap::new(),
            used_assertions: Mutex::new(HashMap::new()),
        })
    }

    /// Issue opaque access tokens (known only to this EHR; introspection only).
    pub fn with_opaque_tokens(mut self, opaque: bool) -> DevEhr {
        self.opaque = opaque.then(|| Mutex::new(HashMap::new()));
        self
    }

    /// Registers backend-services clients, each `ID=JWKS_FILE`.
    pub fn with_clients(mut self, specs: &[String]) -> Result<DevEhr, String> {
        for spec in specs {
            let (id, file) = spec
                .split_once('=')
                .filter(|(id, f)| !id.is_empty() && !f.is_empty())
                .ok_or_else(|| format!("--dev-client {spec:?}: give ID=JWKS_FILE"))?;
            let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
            let set: JwkSet =
                serde_json::from_str(&text).map_err(|e| format!("{file}: not a JWKS: {e}"))?;
            self.clients.insert(id.to_string(), set);
        }
        Ok(self)
    }

    /// Whether this EHR issues opaque access tokens (`--dev-opaque-tokens`).
    pub fn issues_opaque_tokens(&self) -> bool {
        self.opaque.is_some()
    }

    /// The RFC 7662 answer for one of this EHR's opaque tokens; `None` when `bearer` is
    /// not one (a JWT, or tokens are not opaque).
    pub fn opaque_introspection(&self, bearer: &str) -> Option<Value> {
        let claims = self
            .opaque
            .as_ref()?
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(bearer)
            .cloned()?;
        let live = claims["exp"].as_i64().is_some_and(|e| e > now()) && !self.is_revoked(bearer);
        Some(if live {
            let mut v = claims;
            v["active"] = json!(true);
            v["token_type"] = json!("Bearer");
            v
        } else {
            json!({ "active": false })
        })
    }

    /// Whether `token` was revoked.
    pub fn is_revoked(&self, token: &str) -> bool {
        self.revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(token)
    }

    /// What one of this EHR's access tokens (JWT or opaque) says, if it is live.
    pub fn verify_token(&self, bearer: &str) -> Result<sia::internal::auth::VerifiedToken, String> {
        if self.is_revoked(bearer) {
            return Err("the token was revoked".into());
        }
        if let Some(answer) = self.opaque_introspection(bearer) {
            if answer["active"] != json!(true) {
                return Err("the token is not active".into());
            }
            let s = |k: &str| answer[k].as_str().map(str::to_string);
            return Ok(sia::internal::auth::VerifiedToken {
                iss: s("iss").unwrap_or_default(),
                sub: s("sub"),
                client_id: s("client_id"),
                scope: s("scope").unwrap_or_default(),
                patient: s("patient"),
                fhir_user: s("fhirUser"),
                exp: answer["exp"].as_i64().unwrap_or(0),
                aud: vec![self.fhir_base.clone()],
            });
        }
        self.auth.verify(bearer).map_err(|d| d.reason)
    }

    /// The routes, to be nested under `/dev`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/authorize", get(oauth::authorize))
            .route("/token", post(oauth::token))
            .route("/introspect", post(oauth::introspect))
            .route("/revoke", post(oauth::revoke))
            .route("/.well-known/jwks.json", get(jwks))
            .route(
                "/fhir/.well-known/smart-configuration",
                get(smart_configuration),
            )
            .route("/fhir/metadata", get(capability_statement))
            .route("/fhir/Patient", get(patient::search))
            .route("/fhir/Patient/{id}", get(patient::read))
            .with_state(self)
    }

    /// The SMART configuration document (SMART App Launch 2.0 §Conformance).
    pub fn smart_configuration(&self) -> Value {
        json!({
            "issuer": self.fhir_base,
            "jwks_uri": format!("{}/.well-known/jwks.json", self.base),
            "authorization_endpoint": format!("{}/authorize", self.base),
            "token_endpoint": format!("{}/token", self.base),
            "introspection_endpoint": format!("{}/introspect", self.base),
            "revocation_endpoint": format!("{}/revoke", self.base),
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384", "RS256", "ES256"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
            "scopes_supported": [
                "launch/patient", "offline_access", "online_access",
                "patient/ImagingStudy.rs", "patient/ImagingStudy.read",
                "patient/Patient.rs", "patient/Patient.read", "patient/*.rs", "patient/*.read",
                "system/ImagingStudy.rs", "system/Patient.rs"
            ],
            "capabilities": [
                "launch-standalone", "client-public", "client-confidential-asymmetric",
                "context-standalone-patient",
                "permission-offline", "permission-online", "permission-patient",
                "permission-v1", "permission-v2"
            ],
            "associated_endpoints": [{
                "url": self.imaging_fhir,
                "capabilities": ["smart-imaging-access"]
            }]
        })
    }

    /// An access token for `patient` with `scope`, valid `seconds`.
    pub fn access_token(
        &self,
        client_id: &str,
        scope: &str,
        patient: Option<&str>,
        seconds: i64,
    ) -> Result<String, String> {
        let now = now();
        let mut claims = json!({
            "iss": self.fhir_base,
            "sub": "dev-user",
            "aud": [self.fhir_base, self.imaging_fhir],
            "client_id": client_id,
            "scope": scope,
            "iat": now,
            "exp": now + seconds,
            "jti": random_token::<16>()?,
        });
        if let Some(p) = patient {
            claims["patient"] = json!(p);
        }
        if let Some(opaque) = &self.opaque {
            let token = random_token::<32>()?;
            let mut map = opaque.lock().unwrap_or_else(|e| e.into_inner());
            if !make_room(&mut map, |c: &Value| c["exp"].as_i64().unwrap_or(0)) {
                return Err("too many outstanding tokens".into());
            }
            map.insert(token.clone(), claims);
            return Ok(token);
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.key.kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, &claims, &self.key.encoding).map_err(|e| e.to_string())
    }

    /// The first indexed patient (by Patient ID), for the ready token.
    pub fn first_patient(&self) -> Option<String> {
        self.engine
            .index_db()
            .patients(1)
            .ok()?
            .into_iter()
            .next()
            .map(|p| p.patient.id)
    }
}

async fn jwks(axum::extract::State(ehr): axum::extract::State<Arc<DevEhr>>) -> Response {
    json_response(StatusCode::OK, &json!({ "keys": [ehr.key.jwk] }))
}

async fn smart_configuration(
    axum::extract::State(ehr): axum::extract::State<Arc<DevEhr>>,
) -> Response {
    json_response(StatusCode::OK, &ehr.smart_configuration())
}

async fn capability_statement(
    axum::extract::State(ehr): axum::extract::State<Arc<DevEhr>>,
) -> Response {
    let statement = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-29",
        "kind": "instance",
        "software": { "name": "sia development EHR", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "sia serve --dev: a development SMART EHR", "url": ehr.fhir_base },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [{
            "mode": "server",
            "security": {
                "service": [{ "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "SMART-on-FHIR"
                }]}],
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [
                        { "url": "authorize", "valueUri": format!("{}/authorize", ehr.base) },
                        { "url": "token", "valueUri": format!("{}/token", ehr.base) },
                        { "url": "introspect", "valueUri": format!("{}/introspect", ehr.base) }
                    ]
                }]
            },
            "resource": [{
                "type": "Patient",
                "interaction": [{ "code": "read" }, { "code": "search-type" }],
                "searchParam": [
                    { "name": "_id", "type": "token" },
                    { "name": "identifier", "type": "token" }
                ]
            }]
        }]
    });
    fhir_response(StatusCode::OK, &statement)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        v.to_string(),
    )
        .into_response()
}

fn fhir_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        v.to_string(),
    )
        .into_response()
}

/// Drops expired entries when `map` is full; false when it is still full.
fn make_room<V>(map: &mut HashMap<String, V>, expires: impl Fn(&V) -> i64) -> bool {
    if map.len() >= MAX_GRANTS {
        let t = now();
        map.retain(|_, v| expires(v) > t);
    }
    map.len() < MAX_GRANTS
}
