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

mod file;

use std::path::PathBuf;

use crate::auth::JwsAlgorithm;
use crate::error::{Error, Result};

/// The `[server]` settings a network host (`sia serve`) uses; the engine itself reads
/// only `db` and `base_url` (kept in [`Config`](crate::Config)).
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
    /// `write_timeout_seconds`: how long a response's write may make no progress (a
    /// client that stops reading) before the connection is closed; at least 1.
    pub write_timeout_seconds: Option<u64>,
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
/// host fetches and calls [`Authorizer::set_jwks`](crate::Authorizer::set_jwks)).
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
