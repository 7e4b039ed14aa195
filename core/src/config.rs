//! The configuration file (TOML), in exactly this shape:
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"
//! base_url = "http://127.0.0.1:8080"   # FHIR at {base_url}/fhir, DICOMweb at {base_url}/dicom-web
//! db = "sia.db"
//! [[issuers]]
//! iss = "https://ehr.example.org"
//! audiences = ["https://ehr.example.org/fhir"]
//! jwks_file = "ehr-jwks.json"          # or jwks_url = "...", or hs256_secret_file = "..."
//! algorithms = ["RS256", "ES256"]
//! leeway_seconds = 30
//! [patients]
//! policy = "links"                     # or "identity" (development only)
//! ```
//!
//! Optional: `[patients] identifier_systems = { "http://hospital.example/mrn" = "HOSP" }`
//! maps FHIR identifier systems to DICOM Issuers of Patient ID for `sia import-patients`.
//! Optional: `[capabilities] enabled = true`, `secret_file = "cap.key"`,
//! `max_lifetime_seconds = 300` (the longest a capability URL lives, whatever its token).
//! Optional: `[storage] read_mode = "pread"` (default) or `"mmap"` (zero-copy; only for
//! storage whose files are never truncated or rewritten in place while indexed).
//! Optional per issuer: `require_typ` (e.g. `"at+jwt"`), `patient_claim` (default
//! `patient`), `scope_claim` (default `scope`). Relative paths are relative to the
//! file's folder. With `jwks_url`, the host fetches the keys and hands them over.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::capability::CapabilityKey;
use crate::auth::{Authorizer, IssuerPolicy, Keys, PatientPolicy};
use crate::engine::Config;
use crate::error::{Error, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server: Server,
    #[serde(default)]
    issuers: Vec<Issuer>,
    #[serde(default)]
    patients: Patients,
    #[serde(default)]
    capabilities: Capabilities,
    #[serde(default)]
    storage: Storage,
}

/// `[storage] read_mode = "pread"` (the default: a file truncated or unreachable while
/// it is read is a 410/500, never a crash) or `"mmap"` (zero-copy, for storage whose
/// files are never truncated in place); see [`crate::storage::ReadMode`].
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Storage {
    read_mode: Option<String>,
}

/// `[capabilities] enabled = true` (off by default); `secret_file` keeps capability URLs
/// valid across restarts (else a random key per process); `max_lifetime_seconds` bounds
/// a capability's life whatever its token's (default 300).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Capabilities {
    #[serde(default)]
    enabled: bool,
    secret_file: Option<PathBuf>,
    max_lifetime_seconds: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Server {
    #[serde(default)]
    listen: Option<String>,
    base_url: String,
    db: PathBuf,
    #[serde(default)]
    cors_origins: Vec<String>,
    tls: Option<Tls>,
    #[serde(default)]
    max_connections: Option<usize>,
    #[serde(default)]
    app_dir: Option<PathBuf>,
    #[serde(default)]
    app_lib_dir: Option<PathBuf>,
    #[serde(default)]
    viewer_dir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tls {
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// The `[server]` settings a network host (`sia serve`) uses; the engine itself reads
/// only `db` and `base_url` (kept in [`Config`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerSettings {
    /// `listen`: the socket address to bind (`127.0.0.1:8080`).
    pub listen: Option<String>,
    /// `cors_origins`: origins allowed to call from a browser (`"*"` for any).
    pub cors_origins: Vec<String>,
    /// `[server.tls]`: PEM certificate chain and private key, when serving HTTPS.
    pub tls: Option<TlsFiles>,
    /// `max_connections`: most connections served at once.
    pub max_connections: Option<usize>,
    /// `app_dir`: the imaging app's static files, served at `/app/`.
    pub app_dir: Option<PathBuf>,
    /// `app_lib_dir`: fhirclient's browser build, served at `/app/lib/`.
    pub app_lib_dir: Option<PathBuf>,
    /// `viewer_dir`: the OHIF viewer's `dist/`, served at `/viewer/`.
    pub viewer_dir: Option<PathBuf>,
}

/// `[server.tls] cert_file`, `key_file` (PEM; resolved against the file's folder).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// Where a host fetches an issuer's keys from, for issuers configured with `jwks_url`
/// or `jwks_discovery = true` (the engine never opens a network connection itself; the
/// host fetches and calls [`Authorizer::set_jwks`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwksSource {
    /// `jwks_url`: the JWKS document itself.
    Url {
        /// The issuer (`iss`).
        iss: String,
        /// The JWKS URL.
        url: String,
    },
    /// `jwks_discovery = true`: `jwks_uri` from `{iss}/.well-known/smart-configuration`
    /// (SMART App Launch 2.0 §Conformance), then the JWKS.
    Discover {
        /// The issuer (`iss`), also the FHIR base the configuration is read under.
        iss: String,
    },
}

impl JwksSource {
    /// The issuer whose keys this source gives.
    pub fn iss(&self) -> &str {
        match self {
            JwksSource::Url { iss, .. } | JwksSource::Discover { iss } => iss,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Issuer {
    iss: String,
    audiences: Vec<String>,
    jwks_file: Option<PathBuf>,
    jwks_url: Option<String>,
    #[serde(default)]
    jwks_discovery: bool,
    hs256_secret_file: Option<PathBuf>,
    algorithms: Vec<String>,
    #[serde(default = "default_leeway")]
    leeway_seconds: u32,
    require_typ: Option<String>,
    patient_claim: Option<String>,
    scope_claim: Option<String>,
}

fn default_leeway() -> u32 {
    30
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Patients {
    #[serde(default)]
    policy: Option<String>,
    /// FHIR identifier system -> DICOM Issuer of Patient ID, for Patient imports.
    #[serde(default)]
    identifier_systems: std::collections::HashMap<String, String>,
}

fn invalid(path: &Path, m: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("{}: {m}", path.display()))
}

impl Config {
    /// Reads a configuration file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let file: FileConfig = toml::from_str(&text).map_err(|e| invalid(path, e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            }
        };
        let mut issuers = Vec::new();
        let mut jwks_sources = Vec::new();
        for i in file.issuers {
            if i.audiences.is_empty() {
                return Err(invalid(
                    path,
                    format!("issuer {}: audiences must not be empty", i.iss),
                ));
            }
            let mut algorithms = Vec::new();
            for a in &i.algorithms {
                let alg: jsonwebtoken::Algorithm = a
                    .parse()
                    .map_err(|_| invalid(path, format!("unknown algorithm {a}")))?;
                algorithms.push(alg);
            }
            if algorithms.is_empty() {
                return Err(invalid(
                    path,
                    format!("issuer {}: algorithms must not be empty", i.iss),
                ));
            }
            let hmac = |a: &jsonwebtoken::Algorithm| {
                matches!(
                    a,
                    jsonwebtoken::Algorithm::HS256
                        | jsonwebtoken::Algorithm::HS384
                        | jsonwebtoken::Algorithm::HS512
                )
            };
            let remote = match (&i.jwks_url, i.jwks_discovery) {
                (Some(url), false) => Some(JwksSource::Url {
                    iss: i.iss.clone(),
                    url: url.clone(),
                }),
                (None, true) => Some(JwksSource::Discover { iss: i.iss.clone() }),
                (None, false) => None,
                (Some(_), true) => {
                    return Err(invalid(
                        path,
                        format!(
                            "issuer {}: give jwks_url or jwks_discovery, not both",
                            i.iss
                        ),
                    ));
                }
            };
            let jwks_url = remote.as_ref().map(|_| ());
            if let Some(r) = remote {
                if algorithms.iter().any(hmac) {
                    return Err(invalid(
                        path,
                        format!("issuer {}: HMAC algorithms need hs256_secret_file", i.iss),
                    ));
                }
                jwks_sources.push(r);
            }
            let keys = match (&i.jwks_file, &jwks_url, &i.hs256_secret_file) {
                (Some(f), None, None) => {
                    if algorithms.iter().any(hmac) {
                        return Err(invalid(
                            path,
                            format!("issuer {}: HMAC algorithms need hs256_secret_file", i.iss),
                        ));
                    }
                    let f = resolve(f);
                    let text = std::fs::read_to_string(&f).map_err(|e| Error::io(&f, e))?;
                    Keys::Jwks(
                        serde_json::from_str(&text)
                            .map_err(|e| invalid(&f, format!("not a JWKS: {e}")))?,
                    )
                }
                (None, Some(_), None) => Keys::Jwks(jsonwebtoken::jwk::JwkSet { keys: Vec::new() }),
                (None, None, Some(f)) => {
                    if !algorithms.iter().all(hmac) {
                        return Err(invalid(
                            path,
                            format!(
                                "issuer {}: a shared secret allows HS256/384/512 only",
                                i.iss
                            ),
                        ));
                    }
                    let f = resolve(f);
                    let secret = std::fs::read(&f).map_err(|e| Error::io(&f, e))?;
                    let secret = secret.strip_suffix(b"\n").unwrap_or(&secret).to_vec();
                    if secret.len() < 32 {
                        return Err(invalid(&f, "a shared secret must be at least 32 bytes"));
                    }
                    Keys::Secret(secret)
                }
                _ => {
                    return Err(invalid(
                        path,
                        format!(
                            "issuer {}: give exactly one of jwks_file, jwks_url, jwks_discovery, hs256_secret_file",
                            i.iss
                        ),
                    ));
                }
            };
            issuers.push(IssuerPolicy {
                iss: i.iss,
                audiences: i.audiences,
                algorithms,
                leeway: i64::from(i.leeway_seconds),
                require_typ: i.require_typ,
                patient_claim: i.patient_claim.unwrap_or_else(|| "patient".into()),
                scope_claim: i.scope_claim.unwrap_or_else(|| "scope".into()),
                keys,
            });
        }
        let patients = match file.patients.policy.as_deref() {
            None | Some("links") => PatientPolicy::Links,
            Some("identity") => PatientPolicy::Identity,
            Some(other) => {
                return Err(invalid(
                    path,
                    format!("patients.policy {other:?} is not links or identity"),
                ));
            }
        };
        let capabilities = match (file.capabilities.enabled, &file.capabilities.secret_file) {
            (false, _) => None,
            (true, None) => {
                Some(CapabilityKey::random().map_err(|e| Error::io("/dev/urandom", e))?)
            }
            (true, Some(f)) => {
                let f = resolve(f);
                let secret = std::fs::read(&f).map_err(|e| Error::io(&f, e))?;
                Some(CapabilityKey::new(secret).map_err(|m| invalid(&f, m))?)
            }
        };
        let capabilities = match (capabilities, file.capabilities.max_lifetime_seconds) {
            (Some(_), Some(0)) => {
                return Err(invalid(
                    path,
                    "capabilities.max_lifetime_seconds must be at least 1",
                ));
            }
            (Some(k), Some(s)) => Some(k.with_max_lifetime(i64::from(s))),
            (k, _) => k,
        };
        let read_mode = match file.storage.read_mode.as_deref() {
            None => crate::storage::ReadMode::default(),
            Some(m) => m
                .parse()
                .map_err(|e| invalid(path, format!("storage: {e}")))?,
        };
        Ok(Config {
            read_mode,
            db: resolve(&file.server.db),
            base_url: file.server.base_url,
            auth: Some(std::sync::Arc::new(Authorizer::new(issuers, patients))),
            identifier_systems: file.patients.identifier_systems,
            capabilities,
            jwks_sources,
            server: ServerSettings {
                listen: file.server.listen,
                cors_origins: file.server.cors_origins,
                tls: file.server.tls.map(|t| TlsFiles {
                    cert_file: resolve(&t.cert_file),
                    key_file: resolve(&t.key_file),
                }),
                max_connections: file.server.max_connections,
                app_dir: file.server.app_dir.as_deref().map(resolve),
                app_lib_dir: file.server.app_lib_dir.as_deref().map(resolve),
                viewer_dir: file.server.viewer_dir.as_deref().map(resolve),
            },
            ..Config::default()
        })
    }
}
