//! The configuration file (TOML), in exactly this shape:
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"
//! base_url = "http://127.0.0.1:8080"   # FHIR at {base_url}/fhir, DICOMweb at {base_url}/dicom-web
//! db = "sia.db"                        # or the [index] table below
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
//! The index: `[server] db = "sia.db"` (an SQLite file), or an `[index]` table with
//! `db = "sia.db"` or `url = "postgres://user@host:5432/sia"` (a PostgreSQL database
//! several hosts share; `max_connections`, default 16, bounds this host's connections
//! to it). Exactly one of them names the index; a `db` that is a `postgres://` URL is
//! one too.
//!
//! Optional: `[patients] identifier_systems = { "http://hospital.example/mrn" = "HOSP" }`
//! maps FHIR identifier systems to DICOM Issuers of Patient ID for `sia import-patients`.
//! Optional: `[capabilities] enabled = true`, `secret_file = "cap.key"`,
//! `max_lifetime_seconds = 300` (the longest a capability URL lives, whatever its token).
//! Optional: `[storage] read_mode = "pread"` (default) or `"mmap"` (zero-copy; only for
//! storage whose files are never truncated or rewritten in place while indexed).
//! Optional: `[storage.roots] archive = "/mnt/archive"`: named storage roots. A file
//! under a root is indexed as (root name, path relative to the root), and each host
//! finds it under its own folder of that name, so hosts that mount one archive at
//! different paths share one index (see [`crate::index::StorageRoots`]). Names are
//! 1-64 of `A-Z a-z 0-9 _ . -`.
//! Optional per issuer: `require_typ` (e.g. `"at+jwt"`), `patient_claim` (default
//! `patient`), `scope_claim` (default `scope`). Relative paths are relative to the
//! file's folder. With `jwks_url`, the host fetches the keys and hands them over.
//!
//! Optional per issuer, for a host in front of a real EHR (see [`IssuerClient`]):
//! `introspection_url` (RFC 7662; then no key source is needed, and tokens the engine
//! cannot verify are introspected), `introspect_all = true` (every token of the issuer
//! is introspected), `introspection_cache_seconds` (the longest an introspection result
//! is reused, default until the token's `exp`), `client_id` with `client_secret_file`
//! (`client_secret_basic`) or `client_key_file` (`private_key_jwt`, RFC 7523; with
//! `client_key_alg`, default RS384 / ES384, and `client_key_id`), `token_endpoint`
//! (else discovered from `{iss}/.well-known/smart-configuration`), `fhir_base` (where
//! `Patient/{id}` is read, default `iss`) and `resolve_patients = true` (unlinked
//! patients resolved at the EHR with a backend-services token; needs `client_key_file`).
//!
//! Optional: `[[backend_clients]] client_id = "research-pipeline"`, `iss = "..."` (when
//! several issuers), and `patients = ["123", ...]` or `studies = "all"`: SMART Backend
//! Services tokens (`system/ImagingStudy.rs`) of that client reach that much; without a
//! policy for its client, a token's system scopes grant nothing.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::capability::CapabilityKey;
use crate::auth::{
    Authorizer, BackendAccess, BackendClient, IssuerPolicy, JwsAlgorithm, Keys, PatientPolicy,
};
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
    backend_clients: Vec<BackendClientFile>,
    #[serde(default)]
    storage: Storage,
    index: Option<IndexTable>,
}

/// `[index]`: where the index lives (see the module docs).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexTable {
    db: Option<PathBuf>,
    url: Option<String>,
    max_connections: Option<u32>,
}

/// `[[backend_clients]]` (SMART Backend Services): `client_id`, `iss` (optional when one
/// issuer is configured), and `patients = ["FHIR Patient id", ...]` or `studies = "all"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendClientFile {
    iss: Option<String>,
    client_id: String,
    patients: Option<Vec<String>>,
    studies: Option<String>,
}

/// `[storage] read_mode = "pread"` (the default: a file truncated or unreachable while
/// it is read is a 410/500, never a crash) or `"mmap"` (zero-copy, for storage whose
/// files are never truncated in place); see [`crate::storage::ReadMode`].
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Storage {
    read_mode: Option<String>,
    /// `[storage.roots] archive = "/mnt/archive"`: named roots (see
    /// [`crate::index::StorageRoots`]); a relative folder is relative to the file's.
    #[serde(default)]
    roots: std::collections::BTreeMap<String, PathBuf>,
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
    db: Option<PathBuf>,
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
    #[serde(default)]
    algorithms: Vec<String>,
    #[serde(default = "default_leeway")]
    leeway_seconds: u32,
    require_typ: Option<String>,
    patient_claim: Option<String>,
    scope_claim: Option<String>,
    introspection_url: Option<String>,
    #[serde(default)]
    introspect_all: bool,
    introspection_cache_seconds: Option<u32>,
    client_id: Option<String>,
    client_secret_file: Option<PathBuf>,
    client_key_file: Option<PathBuf>,
    client_key_alg: Option<String>,
    client_key_id: Option<String>,
    token_endpoint: Option<String>,
    fhir_base: Option<String>,
    #[serde(default)]
    resolve_patients: bool,
}

/// How a host authenticates itself to an issuer's introspection and token endpoints.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_secret_basic` (RFC 6749 §2.3.1): HTTP Basic with `client_secret_file`.
    SecretBasic {
        /// `client_id`.
        client_id: String,
        /// The secret (the file's content, one trailing newline removed).
        secret: String,
    },
    /// `private_key_jwt` (RFC 7523, SMART Backend Services): a short-lived client
    /// assertion signed with the PEM key of `client_key_file`.
    PrivateKeyJwt {
        /// `client_id`, the assertion's `iss` and `sub`.
        client_id: String,
        /// The PKCS#8 (or PKCS#1 / SEC1) PEM private key.
        key_pem: String,
        /// The signing algorithm (RS384, ES384, ...).
        alg: JwsAlgorithm,
        /// `kid` of the assertion's header, when configured.
        kid: Option<String>,
    },
}

impl ClientAuth {
    /// A client assertion (RFC 7523 §2.2; SMART Backend Services) for the endpoint `aud`:
    /// `iss` = `sub` = the client id, valid five minutes from now, with the caller's `jti`
    /// (unique per assertion: the endpoint refuses a replayed one), signed with the
    /// configured key and algorithm.
    ///
    /// # Errors
    /// `InvalidInput` for a `client_secret_basic` client (it sends no assertion);
    /// `Config` when the key no longer reads as a key for its algorithm.
    pub fn client_assertion(&self, aud: &str, jti: &str) -> Result<String> {
        match self {
            ClientAuth::PrivateKeyJwt {
                client_id,
                key_pem,
                alg,
                kid,
            } => crate::auth::jws::client_assertion(
                client_id,
                key_pem,
                *alg,
                kid.as_deref(),
                aud,
                jti,
            ),
            ClientAuth::SecretBasic { .. } => Err(Error::invalid(
                "a client_secret_basic client sends no client assertion",
            )),
        }
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        match self {
            ClientAuth::SecretBasic { client_id, .. }
            | ClientAuth::PrivateKeyJwt { client_id, .. } => client_id,
        }
    }
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::SecretBasic { client_id, .. } => f
                .debug_struct("SecretBasic")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            ClientAuth::PrivateKeyJwt { client_id, alg, .. } => f
                .debug_struct("PrivateKeyJwt")
                .field("client_id", client_id)
                .field("alg", alg)
                .finish_non_exhaustive(),
        }
    }
}

/// What a host needs to talk to an issuer (an EHR) on the engine's behalf: token
/// introspection (RFC 7662) and patient resolution with a backend-services token. The
/// engine never opens a connection: the host puts the introspection response in
/// `Request::introspection`, and links what it resolved through the index.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuerClient {
    /// The issuer (`iss`).
    pub iss: String,
    /// `fhir_base`: where `Patient/{id}` is read (default `iss`).
    pub fhir_base: String,
    /// `introspection_url`, when the issuer's tokens are introspected.
    pub introspection_url: Option<String>,
    /// `introspect_all`: every token of the issuer, not only those the engine cannot verify.
    pub introspect_all: bool,
    /// `introspection_cache_seconds`: the longest an introspection result is reused
    /// (`None`: until the token's `exp`).
    pub introspection_cache_seconds: Option<u32>,
    /// `token_endpoint` (else discovered from the SMART configuration).
    pub token_endpoint: Option<String>,
    /// `resolve_patients`: unlinked FHIR Patients are read at the EHR and linked by
    /// identifier.
    pub resolve_patients: bool,
    /// How the host authenticates (`client_id` with `client_secret_file` or `client_key_file`).
    pub client: Option<ClientAuth>,
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
    Error::new(crate::ErrorKind::Config, format!("{}: {m}", path.display()))
}

impl Config {
    /// Reads a configuration file (TOML; see the module documentation). Relative paths
    /// in it resolve against the file's folder.
    ///
    /// # Errors
    /// `NotFound`/`Internal` when the file cannot be read, `Config` when it is invalid.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Config::parse_toml(&text, path, path.parent().unwrap_or(Path::new(".")))
    }

    /// A configuration from TOML text (the format of [`Config::from_file`]), for hosts
    /// that keep it elsewhere; relative paths in it resolve against `base_dir`.
    ///
    /// # Errors
    /// `Config` when it is invalid; `NotFound`/`Internal` when a file it names cannot
    /// be read.
    pub fn from_toml_str(toml: &str, base_dir: &Path) -> Result<Config> {
        Config::parse_toml(toml, Path::new("configuration"), base_dir)
    }

    /// Parses `text`; `path` names it in messages, `dir` resolves relative paths.
    fn parse_toml(text: &str, path: &Path, dir: &Path) -> Result<Config> {
        let file: FileConfig = toml::from_str(text).map_err(|e| invalid(path, e))?;
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            }
        };
        let mut issuers = Vec::new();
        let mut jwks_sources = Vec::new();
        let mut issuer_clients = Vec::new();
        for i in file.issuers {
            let client = issuer_client(path, &i, &resolve)?;
            if i.audiences.is_empty() {
                return Err(invalid(
                    path,
                    format!("issuer {}: audiences must not be empty", i.iss),
                ));
            }
            let mut algorithms = Vec::new();
            for a in &i.algorithms {
                let alg: JwsAlgorithm = a
                    .parse()
                    .map_err(|_| invalid(path, format!("unknown algorithm {a}")))?;
                algorithms.push(alg);
            }
            if algorithms.is_empty() && i.introspection_url.is_none() {
                return Err(invalid(
                    path,
                    format!("issuer {}: algorithms must not be empty", i.iss),
                ));
            }
            let hmac = |a: &JwsAlgorithm| a.is_hmac();
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
                    Keys::jwks_json(&text).map_err(|e| invalid(&f, e.message()))?
                }
                (None, Some(_), None) => Keys::empty_jwks(),
                // Introspected only: no token of the issuer verifies offline.
                (None, None, None) if i.introspection_url.is_some() => Keys::empty_jwks(),
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
                    // RFC 7518 §3.2: a key at least as long as the hash output.
                    let need = algorithms
                        .iter()
                        .filter_map(|a| a.min_secret_len())
                        .max()
                        .unwrap_or(32);
                    if secret.len() < need {
                        return Err(invalid(
                            &f,
                            format!(
                                "a shared secret for {} must be at least {need} bytes (RFC 7518 §3.2); it has {}",
                                i.algorithms.join(", "),
                                secret.len()
                            ),
                        ));
                    }
                    Keys::shared_secret(&secret)
                }
                _ => {
                    return Err(invalid(
                        path,
                        format!(
                            "issuer {}: give exactly one of jwks_file, jwks_url, jwks_discovery, hs256_secret_file (or only introspection_url)",
                            i.iss
                        ),
                    ));
                }
            };
            if let Some(c) = client {
                issuer_clients.push(c);
            }
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
        let mut backend_clients = Vec::new();
        for b in file.backend_clients {
            let iss = match (&b.iss, issuers.as_slice()) {
                (Some(iss), _) if issuers.iter().any(|i| &i.iss == iss) => iss.clone(),
                (Some(iss), _) => {
                    return Err(invalid(
                        path,
                        format!(
                            "backend client {}: issuer {iss} is not configured",
                            b.client_id
                        ),
                    ));
                }
                (None, [only]) => only.iss.clone(),
                (None, _) => {
                    return Err(invalid(
                        path,
                        format!(
                            "backend client {}: give iss (there is not exactly one issuer)",
                            b.client_id
                        ),
                    ));
                }
            };
            let access = match (b.patients, b.studies.as_deref()) {
                (Some(p), None) if !p.is_empty() && p.iter().all(|x| !x.is_empty()) => {
                    BackendAccess::Patients(p)
                }
                (None, Some("all")) => BackendAccess::AllStudies,
                _ => {
                    return Err(invalid(
                        path,
                        format!(
                            "backend client {}: give patients = [FHIR Patient ids] or studies = \"all\"",
                            b.client_id
                        ),
                    ));
                }
            };
            if b.client_id.is_empty() {
                return Err(invalid(path, "backend client: client_id is empty"));
            }
            backend_clients.push(BackendClient {
                iss,
                client_id: b.client_id,
                access,
            });
        }
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
        // A `db` that is a postgres:// URL is not a path to resolve.
        let resolve_db = |p: &Path| match crate::index::IndexLocation::from_db(p) {
            crate::index::IndexLocation::Sqlite(_) => resolve(p),
            crate::index::IndexLocation::Postgres { .. } => p.to_path_buf(),
        };
        let (db, index_url, index_max_connections) = match (&file.server.db, file.index) {
            (Some(db), None) => (resolve_db(db), None, None),
            (
                None,
                Some(IndexTable {
                    db: Some(db),
                    url: None,
                    max_connections,
                }),
            ) => (resolve_db(&db), None, max_connections),
            (
                None,
                Some(IndexTable {
                    db: None,
                    url: Some(url),
                    max_connections,
                }),
            ) => (PathBuf::from("sia.db"), Some(url), max_connections),
            _ => {
                return Err(invalid(
                    path,
                    "name the index once: [server] db, or [index] db or url",
                ));
            }
        };
        if index_max_connections == Some(0) {
            return Err(invalid(path, "index.max_connections must be at least 1"));
        }
        let storage_roots: Vec<(String, PathBuf)> = file
            .storage
            .roots
            .iter()
            .map(|(name, folder)| {
                let folder = resolve(folder);
                // A folder relative to a config file named by a relative path.
                (name.clone(), std::path::absolute(&folder).unwrap_or(folder))
            })
            .collect();
        let mut checked = crate::index::StorageRoots::new();
        for (name, folder) in &storage_roots {
            checked
                .add(name, folder)
                .map_err(|e| invalid(path, format!("storage.roots: {}", e.message())))?;
        }
        Ok(Config {
            storage_roots,
            read_mode,
            db,
            index_url,
            index_max_connections: index_max_connections
                .unwrap_or(crate::index::DEFAULT_MAX_CONNECTIONS),
            base_url: file.server.base_url,
            auth: Some(std::sync::Arc::new(
                Authorizer::new(issuers, patients).with_backend_clients(backend_clients),
            )),
            identifier_systems: file.patients.identifier_systems,
            capabilities,
            jwks_sources,
            issuer_clients,
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

/// The [`IssuerClient`] of issuer `i`, when it has introspection or patient resolution.
fn issuer_client(
    path: &Path,
    i: &Issuer,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Option<IssuerClient>> {
    let err = |m: String| Err(invalid(path, format!("issuer {}: {m}", i.iss)));
    let client = match (&i.client_id, &i.client_secret_file, &i.client_key_file) {
        (None, None, None) => None,
        (Some(id), Some(f), None) => {
            let f = resolve(f);
            let secret = std::fs::read_to_string(&f).map_err(|e| Error::io(&f, e))?;
            let secret = secret.strip_suffix('\n').unwrap_or(&secret).to_string();
            if secret.is_empty() {
                return Err(invalid(&f, "the client secret is empty"));
            }
            Some(ClientAuth::SecretBasic {
                client_id: id.clone(),
                secret,
            })
        }
        (Some(id), None, Some(f)) => {
            let f = resolve(f);
            let key_pem = std::fs::read_to_string(&f).map_err(|e| Error::io(&f, e))?;
            let alg = crate::auth::jws::client_key_alg(&key_pem, i.client_key_alg.as_deref())
                .map_err(|m| invalid(&f, m))?;
            Some(ClientAuth::PrivateKeyJwt {
                client_id: id.clone(),
                key_pem,
                alg,
                kid: i.client_key_id.clone(),
            })
        }
        (None, _, _) => return err("client_secret_file and client_key_file need client_id".into()),
        (Some(_), None, None) => {
            return err("client_id needs client_secret_file or client_key_file".into());
        }
        (Some(_), Some(_), Some(_)) => {
            return err("give client_secret_file or client_key_file, not both".into());
        }
    };
    if i.client_key_alg.is_some() && i.client_key_file.is_none() {
        return err("client_key_alg needs client_key_file".into());
    }
    let introspecting = i.introspection_url.is_some();
    if !introspecting && (i.introspect_all || i.introspection_cache_seconds.is_some()) {
        return err("introspect_all and introspection_cache_seconds need introspection_url".into());
    }
    if introspecting && client.is_none() {
        return err(
            "introspection_url needs client authentication: client_id with client_secret_file or client_key_file"
                .into(),
        );
    }
    if i.resolve_patients && !matches!(client, Some(ClientAuth::PrivateKeyJwt { .. })) {
        return err(
            "resolve_patients needs a backend-services client: client_id with client_key_file"
                .into(),
        );
    }
    for (name, url) in [
        ("introspection_url", &i.introspection_url),
        ("token_endpoint", &i.token_endpoint),
        ("fhir_base", &i.fhir_base),
    ] {
        if let Some(u) = url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return err(format!("{name} {u:?} is not an http(s) URL"));
        }
    }
    if !introspecting && !i.resolve_patients {
        if client.is_some() || i.token_endpoint.is_some() || i.fhir_base.is_some() {
            return err(
                "client_id, token_endpoint and fhir_base are used with introspection_url or resolve_patients"
                    .into(),
            );
        }
        return Ok(None);
    }
    Ok(Some(IssuerClient {
        iss: i.iss.clone(),
        fhir_base: i
            .fhir_base
            .clone()
            .unwrap_or_else(|| i.iss.clone())
            .trim_end_matches('/')
            .to_string(),
        introspection_url: i.introspection_url.clone(),
        introspect_all: i.introspect_all,
        introspection_cache_seconds: i.introspection_cache_seconds,
        token_endpoint: i.token_endpoint.clone(),
        resolve_patients: i.resolve_patients,
        client,
    }))
}
