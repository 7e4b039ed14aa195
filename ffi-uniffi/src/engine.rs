//! The engine object the JVM holds, and the calls it exposes.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::SiaError;
use crate::records::{
    Access, Decision, DicomRef, Frame, Header, HttpRequest, HttpResponse, IndexProgress,
    IndexReport, InstanceRef, QueryParam, clamp,
};

/// Receives index progress; implemented in Kotlin or Java and called back by the engine.
///
/// Called from the engine's indexing threads (never the caller's thread alone), after
/// each file is written; keep it short. Return `false` to cancel the run: the call then
/// fails with `SiaException.Cancelled` and the index keeps every committed batch, so
/// running `index` again completes it.
#[uniffi::export(callback_interface)]
pub trait IndexListener: Send + Sync {
    /// One more file was written; `true` to go on, `false` to cancel.
    fn on_progress(&self, progress: IndexProgress) -> bool;
}

/// An open sia engine: one SQLite index, its files, and the token policy of its
/// configuration.
///
/// Thread-safe: share one instance between every JVM thread. In Kotlin it is
/// `AutoCloseable`; `close()` releases the index once calls already running on other
/// threads have returned.
#[derive(uniffi::Object)]
pub struct Engine {
    inner: sia::Engine,
}

/// Writes the demo data set (3 patients, 4 studies, 40 DICOM files in several transfer
/// syntaxes) under `dir`, as `sia demo DIR` does; returns the paths written.
///
/// Errors: `InvalidInput` when `dir` cannot be created or written.
#[uniffi::export]
pub fn write_demo(dir: String) -> Result<Vec<String>, SiaError> {
    let files = sia::demo::write_demo(std::path::Path::new(&dir))
        .map_err(|e| SiaError::InvalidInput(e.to_string()))?;
    Ok(files
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect())
}

#[uniffi::export]
impl Engine {
    /// Opens the engine a TOML configuration file describes (the file `sia serve
    /// --config` reads: `db`, `base_url`, `[[issuers]]`, `[patients]`, ...). Relative
    /// paths in it resolve against the file's folder.
    ///
    /// Errors: `ConfigError` when the file is missing or invalid; `Internal` when the
    /// index cannot be opened.
    #[uniffi::constructor]
    pub fn open_config_file(path: String) -> Result<Arc<Engine>, SiaError> {
        let config =
            sia::Config::from_file(&path).map_err(|e| SiaError::ConfigError(e.to_string()))?;
        Engine::open(config)
    }

    /// Opens (or creates) the index at `db` without token checks: every call sees
    /// everything, as the local administrator does with `sia get`.
    ///
    /// Errors: `Internal` when the index cannot be opened or is not a sia index.
    #[uniffi::constructor]
    pub fn open_index(db: String) -> Result<Arc<Engine>, SiaError> {
        Engine::open(sia::Config {
            db: PathBuf::from(db),
            ..sia::Config::default()
        })
    }

    /// Indexes DICOM files and folders (recursively); files already indexed and
    /// unchanged are not read again. `listener`, when given, is called after each file
    /// and may cancel the run (see [`IndexListener`]).
    ///
    /// Errors: `Cancelled` when the listener returned `false`; `Internal` when the index
    /// database fails. Unreadable or non-DICOM files are not errors: they are listed in
    /// `IndexReport.skipped`.
    pub fn index(
        &self,
        roots: Vec<String>,
        listener: Option<Box<dyn IndexListener>>,
    ) -> Result<IndexReport, SiaError> {
        let callback = |p: &sia::index::Progress<'_>| {
            if let Some(l) = &listener {
                l.on_progress(IndexProgress {
                    files_done: clamp(p.files_done),
                    files_found: clamp(p.files_found),
                    walk_done: p.walk_done,
                    bytes_done: clamp(p.bytes_done),
                    current: p.current.to_string_lossy().into_owned(),
                });
            }
        };
        let opts = sia::index::IndexOptions {
            progress: Some(&callback),
            ..Default::default()
        };
        Ok(self.inner.index(&roots, &opts)?.into())
    }

    /// Answers one HTTP request exactly as `sia serve` would (FHIR, DICOMweb, WADO-URI),
    /// token checks included. Never fails: every error is an HTTP status.
    pub fn handle(&self, request: HttpRequest) -> HttpResponse {
        let (path, query) = request
            .target
            .split_once('?')
            .unwrap_or((request.target.as_str(), ""));
        let req = sia::http::Request {
            method: request.method.clone(),
            path: path.to_string(),
            query: query.to_string(),
            headers: request
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
            introspection: None,
        };
        let resp = self.inner.handle(&req);
        HttpResponse {
            status: i32::from(resp.status),
            headers: resp
                .headers
                .iter()
                .map(|(n, v)| Header {
                    name: n.clone(),
                    value: v.clone(),
                })
                .collect(),
            body: resp.body.to_vec(),
        }
    }

    /// The FHIR R4 `searchset` Bundle (JSON text) of the ImagingStudy resources matching
    /// `query` (FHIR search parameters: `patient`, `patient.identifier`, `identifier`,
    /// `modality`, `started`, ...), with their Endpoints, filtered to what `token` (a
    /// SMART bearer token, or `null` when the engine has no `[[issuers]]`) may see.
    ///
    /// Errors: `InvalidInput` for an unknown or malformed parameter; `InvalidToken` /
    /// `AccessDenied` as [`Engine::authorize`] decides.
    pub fn search_imaging_studies(
        &self,
        query: Vec<QueryParam>,
        token: Option<String>,
    ) -> Result<String, SiaError> {
        let target = format!("{}/ImagingStudy{}", self.fhir_path(), encode_query(&query));
        let resp = self.get(&target, token.as_deref(), None)?;
        text(resp)
    }

    /// The DICOM JSON metadata (PS3.18 §F.2, a JSON array of instances) of a study,
    /// series or instance, bulk data replaced by `BulkDataURI`s.
    ///
    /// Errors: `NotFound` when the reference is not indexed; `Gone` when its files
    /// vanished; `InvalidToken` / `AccessDenied` as [`Engine::authorize`] decides.
    pub fn metadata(&self, reference: DicomRef, token: Option<String>) -> Result<String, SiaError> {
        let target = format!("{}/metadata", self.dicomweb_target(&reference)?);
        let resp = self.get(&target, token.as_deref(), Some("application/dicom+json"))?;
        text(resp)
    }

    /// Frames `numbers` (1-based) of an instance, in the stored transfer syntax
    /// (`accept` = `None`) or as `accept` asks (a PS3.18 §8.7 media type, e.g.
    /// `application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1`).
    ///
    /// Errors: `InvalidInput` for an empty list or frame 0; `NotFound` for a frame past
    /// the last; `NotAcceptable` when `accept` cannot be served; `Gone`;
    /// `InvalidToken` / `AccessDenied`.
    pub fn frames(
        &self,
        instance: InstanceRef,
        numbers: Vec<i32>,
        accept: Option<String>,
        token: Option<String>,
    ) -> Result<Vec<Frame>, SiaError> {
        if numbers.is_empty() {
            return Err(SiaError::InvalidInput("no frame numbers given".into()));
        }
        if let Some(n) = numbers.iter().find(|n| **n < 1) {
            return Err(SiaError::InvalidInput(format!(
                "frame numbers start at 1, not {n}"
            )));
        }
        let base = self.dicomweb_target(&DicomRef {
            study: instance.study,
            series: Some(instance.series),
            instance: Some(instance.instance),
        })?;
        let accept = accept.unwrap_or_else(|| "application/octet-stream; transfer-syntax=*".into());
        numbers
            .into_iter()
            .map(|n| {
                let resp = self.get(
                    &format!("{base}/frames/{n}"),
                    token.as_deref(),
                    Some(&accept),
                )?;
                let content_type = resp.header("Content-Type").unwrap_or("").to_string();
                let transfer_syntax = media_parameter(&content_type, "transfer-syntax")
                    .unwrap_or_else(|| "1.2.840.10008.1.2.1".into());
                Ok(Frame {
                    number: n,
                    bytes: resp.body.to_vec(),
                    transfer_syntax,
                    content_type,
                })
            })
            .collect()
    }

    /// Decides whether `token` (a SMART bearer token, or `null`) may have `access`:
    /// signature, expiry, audience, scopes and patient compartment, as every other call
    /// decides. Without `[[issuers]]` in the configuration, everything is allowed.
    ///
    /// Errors: none for a refusal (that is a [`Decision`]); `InvalidInput` for a
    /// malformed UID.
    pub fn authorize(&self, token: Option<String>, access: Access) -> Result<Decision, SiaError> {
        let target = match &access {
            Access::SearchImagingStudies => format!("{}/ImagingStudy", self.fhir_path()),
            Access::Study { study } => self.dicomweb_target(&DicomRef {
                study: study.clone(),
                series: None,
                instance: None,
            })?,
            Access::Series { study, series } => self.dicomweb_target(&DicomRef {
                study: study.clone(),
                series: Some(series.clone()),
                instance: None,
            })?,
            Access::Instance {
                study,
                series,
                instance,
            } => self.dicomweb_target(&DicomRef {
                study: study.clone(),
                series: Some(series.clone()),
                instance: Some(instance.clone()),
            })?,
        };
        let target = match access {
            Access::SearchImagingStudies => target,
            _ => format!("{target}/metadata"),
        };
        let mut req = sia::http::Request::get(&target);
        req.method = "HEAD".into();
        if let Some(t) = &token {
            req = req.with_header("Authorization", &format!("Bearer {t}"));
        }
        let resp = self.inner.handle(&req);
        let allowed = (200..300).contains(&resp.status);
        Ok(Decision {
            allowed,
            status: i32::from(resp.status),
            reason: if allowed {
                String::new()
            } else {
                resp_message(&self.inner.handle(&sia::http::Request {
                    method: "GET".into(),
                    ..req
                }))
            },
            www_authenticate: resp.header("WWW-Authenticate").map(str::to_string),
        })
    }
}

#[uniffi::export]
impl Engine {
    /// Benchmark support: the mean wall-clock nanoseconds of `iterations` calls of
    /// [`Engine::frames`] for frame `number` of `instance`, timed inside Rust, so a JVM
    /// benchmark can put its own per-call time next to the engine's in the same run.
    ///
    /// Errors: those of [`Engine::frames`]; `InvalidInput` for 0 iterations.
    pub fn frames_nanos_in_rust(
        &self,
        instance: InstanceRef,
        number: i32,
        iterations: i32,
    ) -> Result<f64, SiaError> {
        if iterations < 1 {
            return Err(SiaError::InvalidInput(
                "iterations must be at least 1".into(),
            ));
        }
        let start = std::time::Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(self.frames(instance.clone(), vec![number], None, None)?);
        }
        Ok(start.elapsed().as_nanos() as f64 / f64::from(iterations))
    }
}

impl Engine {
    fn open(config: sia::Config) -> Result<Arc<Engine>, SiaError> {
        Ok(Arc::new(Engine {
            inner: sia::Engine::open(config)?,
        }))
    }

    /// The path of the FHIR base (`/fhir`, or `/x/fhir` under a base URL with a path).
    fn fhir_path(&self) -> String {
        url_path(&self.inner.fhir_context().fhir_base)
    }

    /// `/dicom-web/studies/{study}[/series/{series}[/instances/{instance}]]`.
    fn dicomweb_target(&self, r: &DicomRef) -> Result<String, SiaError> {
        let mut t = format!(
            "{}/studies/{}",
            url_path(&self.inner.fhir_context().dicomweb_base),
            uid(&r.study)?
        );
        match (&r.series, &r.instance) {
            (None, None) => {}
            (Some(s), None) => t.push_str(&format!("/series/{}", uid(s)?)),
            (Some(s), Some(i)) => t.push_str(&format!("/series/{}/instances/{}", uid(s)?, uid(i)?)),
            (None, Some(_)) => {
                return Err(SiaError::InvalidInput(
                    "an instance reference needs its series".into(),
                ));
            }
        }
        Ok(t)
    }

    /// GETs `target`; a non-2xx status becomes the matching error.
    fn get(
        &self,
        target: &str,
        token: Option<&str>,
        accept: Option<&str>,
    ) -> Result<sia::http::Response, SiaError> {
        let mut req = sia::http::Request::get(target);
        if let Some(t) = token {
            req = req.with_header("Authorization", &format!("Bearer {t}"));
        }
        if let Some(a) = accept {
            req = req.with_header("Accept", a);
        }
        let resp = self.inner.handle(&req);
        match SiaError::from_status(resp.status, resp_message(&resp)) {
            Some(e) => Err(e),
            None => Ok(resp),
        }
    }
}

/// The client-safe message of an error response (its text, or a FHIR
/// OperationOutcome's first diagnostics).
fn resp_message(resp: &sia::http::Response) -> String {
    let body = resp.body.to_vec();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
        && let Some(d) = v["issue"][0]["diagnostics"].as_str()
    {
        return d.to_string();
    }
    String::from_utf8_lossy(&body).trim().to_string()
}

fn text(resp: sia::http::Response) -> Result<String, SiaError> {
    String::from_utf8(resp.body.to_vec())
        .map_err(|_| SiaError::Internal("the engine answered text that is not UTF-8".into()))
}

/// A UID as a path segment: DICOM UIDs are digits and dots (PS3.5 §9.1); anything else
/// is refused here rather than spliced into a path.
fn uid(s: &str) -> Result<&str, SiaError> {
    if s.is_empty()
        || s.len() > 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(SiaError::InvalidInput(format!("not a UID: {s:?}")));
    }
    Ok(s)
}

/// The path of an absolute URL (`http://h:1/a/b` -> `/a/b`).
fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(i) => after_scheme[i..].trim_end_matches('/').to_string(),
        None => String::new(),
    }
}

/// `?a=b&c=d` with RFC 3986 percent-encoding, or `` for no parameters.
fn encode_query(query: &[QueryParam]) -> String {
    let enc = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    if query.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = query
        .iter()
        .map(|q| format!("{}={}", enc(&q.name), enc(&q.value)))
        .collect();
    format!("?{}", parts.join("&"))
}

/// A parameter of a media type (`transfer-syntax` of `application/octet-stream;
/// transfer-syntax=1.2.840.10008.1.2.1`), unquoted.
fn media_parameter(media_type: &str, name: &str) -> Option<String> {
    media_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}
