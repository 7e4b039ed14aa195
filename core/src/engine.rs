//! The engine: one value that hosts (the CLI, later the server, C and Python) hold.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::fhir::{self, FhirContext};
use std::sync::Arc;

use crate::auth::Authorizer;
use crate::auth::capability::CapabilityKey;
use crate::index::{Index, IndexOptions, IndexReport, InstanceLocation, StudyFilter, StudyRow};
use crate::locations::LocationCache;
use crate::storage::{FileCache, ReadMode};

/// What an engine needs to start: from a TOML file ([`Config::from_file`],
/// [`Config::from_toml_str`]) or built in code ([`Config::builder`]). More settings may
/// be added, so it cannot be built with a struct literal outside sia.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The SQLite index file (or a `postgres://` URL, as [`Config::index_url`]).
    pub db: PathBuf,
    /// The PostgreSQL database of the index (`postgres://user@host:port/db`); when set,
    /// it is the index and `db` is not used.
    pub index_url: Option<String>,
    /// Most connections this engine opens to a PostgreSQL index.
    pub index_max_connections: u32,
    /// Public base URL; FHIR is served at `{base_url}/fhir`, DICOMweb at `{base_url}/dicom-web`.
    pub base_url: String,
    /// How frames are read from files: `Pread` (the default; safe whatever happens to
    /// the files) or `Mmap` (zero-copy, for storage whose files are never truncated in
    /// place; see [`ReadMode`]).
    pub read_mode: ReadMode,
    /// Most memory mappings kept open at once.
    pub mapped_files: usize,
    /// Most bytes of instance metadata (DICOM JSON) kept between requests; 0 disables.
    pub metadata_cache_bytes: usize,
    /// Most bytes of FHIR and QIDO-RS search answers kept while the index is unchanged
    /// (see `search_cache`); 0 disables.
    pub search_cache_bytes: usize,
    /// Token checks; `None` serves everything to the caller (the local administrator,
    /// as `sia get` without `--config`).
    pub auth: Option<Arc<Authorizer>>,
    /// FHIR identifier system -> DICOM Issuer of Patient ID, for Patient imports.
    pub identifier_systems: std::collections::HashMap<String, String>,
    /// Capability URLs in ImagingStudy endpoints (off by default).
    pub capabilities: Option<CapabilityKey>,
    /// Issuers whose keys the host fetches (`jwks_url`, `jwks_discovery`).
    pub jwks_sources: Vec<crate::config::JwksSource>,
    /// Issuers the host introspects tokens at or resolves patients with
    /// (`introspection_url`, `resolve_patients`).
    pub issuer_clients: Vec<crate::config::IssuerClient>,
    /// The `[server]` settings for network hosts (listen address, TLS, CORS).
    pub server: crate::config::ServerSettings,
    /// Named storage roots (`[storage.roots]`): name -> this host's folder of that
    /// storage. Files under a root are indexed relative to it, so hosts that mount one
    /// archive at different folders share an index (see [`crate::index::StorageRoots`];
    /// checked by [`Engine::open`]).
    pub storage_roots: Vec<(String, PathBuf)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            db: PathBuf::from("sia.db"),
            index_url: None,
            index_max_connections: crate::index::DEFAULT_MAX_CONNECTIONS,
            base_url: "http://127.0.0.1:8080".into(),
            read_mode: ReadMode::Pread,
            mapped_files: 1024,
            metadata_cache_bytes: 256 * 1024 * 1024,
            search_cache_bytes: 32 * 1024 * 1024,
            auth: None,
            identifier_systems: Default::default(),
            capabilities: None,
            jwks_sources: Vec::new(),
            issuer_clients: Vec::new(),
            server: Default::default(),
            storage_roots: Vec::new(),
        }
    }
}

impl Config {
    /// Where the index named by this configuration lives.
    pub fn index_location(&self) -> crate::index::IndexLocation {
        match &self.index_url {
            Some(url) => crate::index::IndexLocation::Postgres {
                url: url.clone(),
                max_connections: self.index_max_connections,
            },
            None => match crate::index::IndexLocation::from_db(&self.db) {
                crate::index::IndexLocation::Postgres { url, .. } => {
                    crate::index::IndexLocation::Postgres {
                        url,
                        max_connections: self.index_max_connections,
                    }
                }
                sqlite => sqlite,
            },
        }
    }

    /// The storage roots of [`Config::storage_roots`], checked.
    ///
    /// # Errors
    /// `Config` for a bad name, a relative folder, or a name given twice (see
    /// [`crate::index::StorageRoots::add`]).
    pub fn checked_storage_roots(&self) -> Result<crate::index::StorageRoots> {
        let mut roots = crate::index::StorageRoots::new();
        for (name, folder) in &self.storage_roots {
            roots.add(name, folder)?;
        }
        Ok(roots)
    }

    /// A builder starting from the defaults (index `sia.db`, base URL
    /// `http://127.0.0.1:8080`, read mode `pread`, no issuers: everything is served to
    /// the caller, as to a local administrator).
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder {
            config: Config::default(),
        }
    }

    /// Checks that `url` can be the base URL every address the engine writes starts
    /// with (FHIR `fullUrl`s, DICOMweb `RetrieveURL`s, `BulkDataURI`s): `http://` or
    /// `https://`, a host, and nothing a response could be split or misread by — no
    /// whitespace or control character, no query or fragment. [`Engine::open`] checks
    /// it; a host may check earlier.
    ///
    /// # Errors
    /// `Config`, naming what is wrong.
    pub fn check_base_url(url: &str) -> Result<()> {
        let bad = |why: &str| {
            Err(Error::new(
                crate::ErrorKind::Config,
                format!(
                    "base_url {:?} {why}",
                    crate::http::client_message(url.into())
                ),
            ))
        };
        let Some(rest) = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
        else {
            return bad("is not an http:// or https:// URL");
        };
        if rest.is_empty() || rest.starts_with('/') {
            return bad("has no host");
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return bad("contains whitespace or a control character");
        }
        if url.contains(['?', '#']) {
            return bad("has a query or fragment");
        }
        Ok(())
    }
}

/// Builds a [`Config`] in code, for hosts without a TOML file.
#[derive(Clone, Debug)]
#[must_use]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// The SQLite index file (created when missing); a `postgres://` URL names a
    /// PostgreSQL index as [`ConfigBuilder::index_url`] does.
    pub fn db(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.db = path.into();
        self
    }

    /// The index on PostgreSQL at `url` (`postgres://user@host:port/db`; tables created
    /// and migrated at open); `None` keeps the SQLite file of [`ConfigBuilder::db`].
    pub fn index_url(mut self, url: impl Into<Option<String>>) -> Self {
        self.config.index_url = url.into();
        self
    }

    /// Most connections to a PostgreSQL index (default 16, at least 1).
    pub fn index_max_connections(mut self, n: u32) -> Self {
        self.config.index_max_connections = n.max(1);
        self
    }

    /// The public base URL: FHIR at `{base_url}/fhir`, DICOMweb at `{base_url}/dicom-web`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.config.base_url = url.into();
        self
    }

    /// How frames are read from files (see [`ReadMode`]).
    pub fn read_mode(mut self, mode: ReadMode) -> Self {
        self.config.read_mode = mode;
        self
    }

    /// Storage root `name` at `folder` on this host (`[storage.roots] name = "folder"`):
    /// files under it are indexed as (name, path relative to the folder), and read
    /// through this host's folder, so hosts mounting one archive at different paths
    /// share an index. Checked by [`Engine::open`] (name `[A-Za-z0-9_.-]`, 1-64 bytes;
    /// folder absolute).
    pub fn storage_root(mut self, name: impl Into<String>, folder: impl Into<PathBuf>) -> Self {
        self.config.storage_roots.push((name.into(), folder.into()));
        self
    }

    /// Most memory mappings kept open at once (read mode `mmap`).
    pub fn mapped_files(mut self, n: usize) -> Self {
        self.config.mapped_files = n;
        self
    }

    /// Most bytes of instance metadata kept between requests; 0 disables the cache.
    pub fn metadata_cache_bytes(mut self, bytes: usize) -> Self {
        self.config.metadata_cache_bytes = bytes;
        self
    }

    /// Most bytes of search answers kept while the index is unchanged; 0 disables the
    /// cache (answers are the same either way: it only saves recomputing them).
    pub fn search_cache_bytes(mut self, bytes: usize) -> Self {
        self.config.search_cache_bytes = bytes;
        self
    }

    /// Token checks: every request then needs a token of one of its issuers (`None`:
    /// everything is served, as to a local administrator).
    pub fn authorizer(mut self, auth: impl Into<Option<Arc<Authorizer>>>) -> Self {
        self.config.auth = auth.into();
        self
    }

    /// Capability URLs in ImagingStudy endpoints, signed with `key` (`None`: off).
    pub fn capabilities(mut self, key: impl Into<Option<CapabilityKey>>) -> Self {
        self.config.capabilities = key.into();
        self
    }

    /// FHIR identifier `system` stands for DICOM Issuer of Patient ID `issuer`, for
    /// [`Engine::import_patients`].
    pub fn identifier_system(mut self, system: &str, issuer: &str) -> Self {
        self.config
            .identifier_systems
            .insert(system.to_string(), issuer.to_string());
        self
    }

    /// The configuration.
    pub fn build(self) -> Config {
        self.config
    }
}

/// The engine. `Send + Sync`: reads run concurrently, writes are serialised by SQLite.
#[derive(Debug)]
pub struct Engine {
    pub(crate) index: Index,
    pub(crate) fhir: FhirContext,
    pub(crate) files: FileCache,
    /// Path prefix of DICOMweb requests (`/dicom-web`, or `/x/dicom-web` when the base
    /// URL has a path).
    pub(crate) dicomweb_path: String,
    /// Path of WADO-URI requests (`/wado` under the base URL's path).
    pub(crate) wado_uri_path: String,
    /// Path prefix of FHIR requests (`/fhir` under the base URL's path).
    pub(crate) fhir_path: String,
    /// Recently used instance locations.
    pub(crate) locations: LocationCache,
    /// Instance metadata written from file headers.
    pub(crate) metadata_cache: crate::metadata_cache::MetadataCache,
    /// Search answers of the current index generation.
    pub(crate) search_cache: crate::search_cache::SearchCache,
    /// Studies' patients of the current index generation (compartment checks).
    pub(crate) study_owners: crate::study_owners::StudyOwners,
    /// Token checks, when configured.
    pub(crate) auth: Option<Arc<Authorizer>>,
    /// Signs and checks capability URLs, when enabled.
    pub(crate) capabilities: Option<CapabilityKey>,
    /// FHIR identifier system -> DICOM Issuer of Patient ID, for Patient imports.
    identifier_systems: std::collections::HashMap<String, String>,
    /// Decode slots and the decoded-frame cache (`pixels`).
    pub(crate) pixels: crate::pixels::Pixels,
}

// Hosts share one engine between threads (a server's workers, a PACS's threads).
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Engine>();
};

impl Engine {
    /// Opens (or creates) the index named in `config`.
    pub fn open(config: Config) -> Result<Engine> {
        Config::check_base_url(&config.base_url)?;
        let fhir = FhirContext::for_base_url(&config.base_url);
        let dicomweb_path = url_path(&fhir.dicomweb_base);
        let wado_uri_path = format!("{}/wado", url_path(config.base_url.trim_end_matches('/')));
        let fhir_path = url_path(&fhir.fhir_base);
        let storage_roots = config.checked_storage_roots()?;
        Ok(Engine {
            index: Index::open_at(&config.index_location())?.with_storage_roots(storage_roots),
            fhir,
            files: FileCache::new(config.read_mode, config.mapped_files),
            dicomweb_path,
            wado_uri_path,
            fhir_path,
            locations: LocationCache::new(4096),
            metadata_cache: crate::metadata_cache::MetadataCache::new(config.metadata_cache_bytes),
            search_cache: crate::search_cache::SearchCache::new(config.search_cache_bytes),
            study_owners: Default::default(),
            auth: config.auth,
            capabilities: config.capabilities,
            identifier_systems: config.identifier_systems,
            pixels: crate::pixels::Pixels::new(crate::pixels::DEFAULT_CACHE_BYTES),
        })
    }

    /// The index.
    pub fn index_db(&self) -> &Index {
        &self.index
    }

    /// How FHIR resources are addressed.
    pub fn fhir_context(&self) -> &FhirContext {
        &self.fhir
    }

    /// Indexes files and folders; see [`Index::index`].
    pub fn index(
        &self,
        roots: &[impl AsRef<Path>],
        opts: &IndexOptions<'_>,
    ) -> Result<IndexReport> {
        let report = self.index.index(roots, opts);
        self.locations.clear();
        self.metadata_cache.forget_listings();
        report
    }

    /// Where an instance is, from the cache or the index.
    pub(crate) fn instance_location(&self, sop: &str) -> Result<Option<Arc<InstanceLocation>>> {
        if let Some(l) = self.locations.get(sop) {
            return Ok(Some(l));
        }
        let Some(loc) = self.index.instance_location(sop)? else {
            return Ok(None);
        };
        let loc = Arc::new(loc);
        self.locations.put(sop, loc.clone());
        Ok(Some(loc))
    }

    /// Links FHIR Patient `fhir_patient` of token issuer `fhir_issuer` (the `iss` of its
    /// tokens; `""` for an unassigned link, which serves only while one issuer is
    /// configured) to DICOM patient (`patient_id`, Issuer of Patient ID `issuer`): the
    /// patient compartment of SMART Imaging Access. Takes effect on the next request.
    ///
    /// # Errors
    /// `InvalidInput` (empty FHIR Patient id or Patient ID), `Unavailable` (the index
    /// database cannot be reached; PostgreSQL), `Internal`.
    pub fn link_patient(
        &self,
        fhir_issuer: &str,
        fhir_patient: &str,
        patient_id: &str,
        issuer: &str,
    ) -> Result<()> {
        self.index
            .link_patient_for(fhir_issuer, fhir_patient, patient_id, issuer)
    }

    /// Links FHIR Patients of token issuer `fhir_issuer` to DICOM patients from Patient
    /// resources in `text` (NDJSON, a Bundle, or one resource), mapping identifier
    /// systems to Issuers of Patient ID with the configured `[identifier_systems]` (and
    /// `urn:oid:` systems as they are).
    ///
    /// # Errors
    /// `InvalidInput` (not JSON, not a Patient), `Internal`.
    pub fn import_patients(
        &self,
        fhir_issuer: &str,
        text: &str,
    ) -> Result<crate::index::PatientImport> {
        self.index
            .import_patients_for(fhir_issuer, text, &self.identifier_systems)
    }

    /// Removes the link from FHIR Patient `fhir_patient` of token issuer `fhir_issuer`
    /// ('' for a link made without one) to DICOM patient (`patient_id`, `issuer`);
    /// returns how many links went (0 or 1). Decisions read links from the index on
    /// every request (only verified tokens are cached, never what they reach), so the
    /// next request, and every capability URL that relied on the link, is refused.
    pub fn unlink_patient(
        &self,
        fhir_issuer: &str,
        fhir_patient: &str,
        patient_id: &str,
        issuer: &str,
    ) -> Result<u64> {
        let n = self
            .index
            .unlink_patient(fhir_issuer, fhir_patient, patient_id, issuer)?;
        self.locations.clear();
        Ok(n)
    }

    /// Studies matching `filter`.
    pub fn studies(&self, filter: &StudyFilter) -> Result<Vec<StudyRow>> {
        self.index.studies(filter)
    }

    /// The ImagingStudy resources (FHIR R4 JSON objects, unpaged, endpoints not included)
    /// of the studies matching `filter`, as the local administrator sees them: no token is
    /// checked, so a host that serves other users goes through
    /// [`Engine::search_imaging_studies`] with their [`Grant`](crate::Grant) instead.
    ///
    /// Errors: [`ErrorKind::Unavailable`](crate::ErrorKind) or `Internal` when the index
    /// cannot be read.
    pub fn imaging_studies(&self, filter: &StudyFilter) -> Result<Vec<Value>> {
        let rows = self.index.studies(filter)?;
        Ok(rows
            .iter()
            .map(|r| fhir::imaging_study(r, &self.fhir))
            .collect())
    }

    /// A FHIR searchset Bundle of the ImagingStudy resources matching `filter`, with the
    /// Endpoint included.
    pub fn imaging_study_bundle(&self, filter: &StudyFilter) -> Result<Value> {
        let studies = self.index.studies(filter)?;
        let mut query = Vec::new();
        if let Some(pid) = &filter.patient_id {
            let value = match &filter.issuer {
                Some(issuer) if !issuer.is_empty() => format!("{issuer}|{pid}"),
                _ => pid.clone(),
            };
            query.push(format!("patient.identifier={}", percent_encode(&value)));
        }
        if let Some(uid) = &filter.study_uid {
            query.push(format!("identifier=urn:oid:{uid}"));
        }
        query.push("_include=ImagingStudy:endpoint".into());
        let self_link = format!("{}/ImagingStudy?{}", self.fhir.fhir_base, query.join("&"));
        let page = fhir::Page {
            total: studies.len() as u64,
            self_link,
            ..fhir::Page::default()
        };
        Ok(fhir::searchset(&studies, &page, true, &self.fhir))
    }
}

/// The path of an absolute URL (`http://h:1/a/b` -> `/a/b`).
fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(i) => after_scheme[i..].trim_end_matches('/').to_string(),
        None => String::new(),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
