//! The configuration file's shape (serde, every table `deny_unknown_fields`) and its
//! loading into a [`Config`]: relative paths resolved against the file's folder, keys
//! and secrets read, every combination checked, errors of kind `Config` naming the file.
//! The format itself is documented in the parent module.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ClientAuth, IssuerClient, JwksSource, ServerSettings, TlsFiles};
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
    write_timeout_seconds: Option<u64>,
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

/// A multi-line message (the TOML parser's, which draws the line at fault) on one line:
/// error messages replace control characters, so its line breaks would come out as U+FFFD.
fn one_line(m: &str) -> String {
    m.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
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
        let file: FileConfig =
            toml::from_str(text).map_err(|e| invalid(path, one_line(&e.to_string())))?;
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
                write_timeout_seconds: file.server.write_timeout_seconds,
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
