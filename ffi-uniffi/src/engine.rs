//! The engine object the JVM holds, and the calls it exposes: each one authorizes with
//! the engine's own decision (`sia::Engine::authorize`), then makes the typed call.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::bytes::Bytes;
use crate::error::SiaError;
use crate::records::{
    Access, Decision, DicomRef, Frame, Header, HttpRequest, HttpResponse, IndexProgress,
    IndexReport, InstanceRef, QueryParam, clamp,
};

/// Receives index progress; implemented in Kotlin or Java and called back by the engine.
///
/// Called from the engine's writer thread (not the thread that called `index`) after
/// each file is written, and at least every 100 ms while the run writes nothing (a walk
/// over unchanged files), so that a long walk can be cancelled too; keep it short. Return `false` to cancel the run: `index` then
/// fails with `SiaException.Cancelled`, the files written since the last commit are
/// rolled back and committed batches stay, so the index is consistent and running
/// `index` again completes it. An exception thrown by the listener cancels the run the
/// same way, and its text is in the `Cancelled` message.
#[uniffi::export(callback_interface)]
pub trait IndexListener: Send + Sync {
    /// One more file was written; `true` to go on, `false` to cancel.
    fn on_progress(&self, progress: IndexProgress) -> Result<bool, ListenerError>;
}

/// An exception a Kotlin or Java [`IndexListener`] threw (uniffi catches it at the
/// boundary and hands it to Rust as this error, instead of unwinding through the engine).
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum ListenerError {
    /// The listener failed; `reason` is the exception as text.
    #[error("the progress listener failed: {reason}")]
    Failed {
        /// The exception as the JVM printed it.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for ListenerError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> ListenerError {
        ListenerError::Failed { reason: e.reason }
    }
}

/// An open sia engine: one index (an SQLite file, or a PostgreSQL database named by
/// `[index] url` or a `postgres://` db), its files, and the token policy of its
/// configuration.
///
/// Thread-safe: share one instance between every JVM thread. In Kotlin it is
/// `AutoCloseable`; `close()` releases the index once calls already running on other
/// threads have returned (uniffi counts calls in flight: while one runs, a call started
/// after `close()` is served too), and from then on every call throws the generated
/// bindings' `IllegalStateException` ("object has already been destroyed"); `close()`
/// again is a no-op (`jvm/src/test/kotlin/org/sia/CloseTest.kt`).
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
    let files = sia::write_demo(Path::new(&dir))
        .map_err(|e| SiaError::InvalidInput(e.message().to_string()))?;
    Ok(files
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect())
}

#[uniffi::export]
impl Engine {
    /// Opens the engine a TOML configuration file describes (the file `sia serve
    /// --config` reads: `[server] db`, `base_url`, `[[issuers]]`, `[patients]`, ...).
    /// Relative paths in it resolve against the file's folder.
    ///
    /// Errors: `ConfigException` when the file is missing or invalid; `Internal` when the
    /// index cannot be opened.
    #[uniffi::constructor]
    pub fn open_config_file(path: String) -> Result<Arc<Engine>, SiaError> {
        let config = sia::Config::from_file(&path).map_err(SiaError::config)?;
        Engine::open(config)
    }

    /// Opens the engine a TOML configuration text describes (same keys as
    /// [`Engine::open_config_file`]); relative paths resolve against `base_dir`.
    ///
    /// Errors: as [`Engine::open_config_file`].
    #[uniffi::constructor]
    pub fn open_config_toml(toml: String, base_dir: String) -> Result<Arc<Engine>, SiaError> {
        let config =
            sia::Config::from_toml_str(&toml, Path::new(&base_dir)).map_err(SiaError::config)?;
        Engine::open(config)
    }

    /// Opens (or creates) the index at `db` (an SQLite file, or a `postgres://` URL)
    /// without token checks: every call sees
    /// everything, as the local administrator does with `sia get`.
    ///
    /// Errors: `Internal` when the index cannot be opened or is not a sia index.
    #[uniffi::constructor]
    pub fn open_index(db: String) -> Result<Arc<Engine>, SiaError> {
        Engine::open(sia::Config::builder().db(PathBuf::from(db)).build())
    }

    /// Indexes DICOM files and folders (recursively); files already indexed and
    /// unchanged are not read again. `listener`, when given, is called after each file
    /// and may cancel the run (see [`IndexListener`]).
    ///
    /// Errors: `Cancelled` when the listener returned `false`; `NotFound` for a root
    /// that does not exist; `Internal` when the index database fails. Unreadable
    /// or non-DICOM files are not errors: they are listed in `IndexReport.skipped`.
    pub fn index(
        &self,
        roots: Vec<String>,
        listener: Option<Box<dyn IndexListener>>,
    ) -> Result<IndexReport, SiaError> {
        // The first listener failure, reported in place of the engine's plain "cancelled".
        let failure = std::sync::Mutex::new(None::<String>);
        let mut opts = sia::IndexOptions::default();
        if let Some(listener) = &listener {
            opts = opts.progress(|p: &sia::IndexProgress<'_>| {
                let progress = IndexProgress {
                    files_done: clamp(p.files_done),
                    files_found: clamp(p.files_found),
                    walk_done: p.walk_done,
                    bytes_done: clamp(p.bytes_done),
                    current: p.current.to_string_lossy().into_owned(),
                };
                match listener.on_progress(progress) {
                    Ok(true) => ControlFlow::Continue(()),
                    Ok(false) => ControlFlow::Break(()),
                    Err(e) => {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e.to_string());
                        }
                        ControlFlow::Break(())
                    }
                }
            });
        }
        let result = self.inner.index(&roots, &opts);
        drop(opts);
        match result {
            Ok(report) => Ok(report.into()),
            Err(e) if e.kind() == sia::ErrorKind::Cancelled => {
                let failed = failure.into_inner().ok().flatten();
                Err(SiaError::Cancelled(
                    failed.unwrap_or_else(|| e.message().to_string()),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Answers one HTTP request exactly as `sia serve` would (FHIR, DICOMweb, WADO-URI),
    /// token checks included. Never fails: every error is an HTTP status.
    pub fn handle(&self, request: HttpRequest) -> HttpResponse {
        let mut req = sia::Request::get(&request.target);
        req.method = request.method;
        for h in &request.headers {
            req = req.with_header(&h.name, &h.value);
        }
        http_response(self.inner.handle(&req)).unwrap_or_else(|e| {
            // Only a body past 2 GiB (a multipart retrieve of a huge study) gets here:
            // answered as the engine answers a request too costly to serve.
            let refusal = sia::Error::new(sia::ErrorKind::TooCostly, e.to_string());
            http_response(refusal.to_response()).unwrap_or_default()
        })
    }

    /// The FHIR R4 `searchset` Bundle (JSON text) of the ImagingStudy resources matching
    /// `query` (FHIR search parameters: `patient`, `patient.identifier`, `identifier`,
    /// `modality`, `started`, `_count`, ...), with their Endpoints, filtered to what
    /// `token` (a SMART bearer token, or `null` when the engine has no `[[issuers]]`)
    /// may see.
    ///
    /// Errors: `InvalidInput` for an unknown or malformed parameter; `TooCostly` for
    /// too many; `InvalidToken` / `AccessDenied` as [`Engine::authorize`] decides.
    pub fn search_imaging_studies(
        &self,
        query: Vec<QueryParam>,
        token: Option<String>,
    ) -> Result<String, SiaError> {
        let grant = self.grant(
            token.as_deref(),
            &sia::Access::search(sia::ResourceKind::ImagingStudy),
        )?;
        let query: Vec<(String, String)> = query.into_iter().map(|q| (q.name, q.value)).collect();
        let bundle = self.inner.search_imaging_studies(&query, &grant)?;
        Ok(bundle.to_string())
    }

    /// The DICOM JSON metadata (PS3.18 §F.2, a JSON array of instances) of a study,
    /// series or instance, bulk data replaced by `BulkDataURI`s.
    ///
    /// Errors: `InvalidInput` for an instance without its series; `NotFound` when the
    /// reference is not indexed; `Gone` when its files changed or vanished;
    /// `InvalidToken` / `AccessDenied` as [`Engine::authorize`] decides.
    pub fn metadata(&self, reference: DicomRef, token: Option<String>) -> Result<String, SiaError> {
        let what = dicom_ref(&reference)?;
        let grant = self.grant(token.as_deref(), &sia::Access::study(&reference.study))?;
        let json = self.inner.metadata(&what, &grant)?;
        String::from_utf8(json.to_vec())
            .map_err(|_| SiaError::Internal("the engine wrote DICOM JSON that is not UTF-8".into()))
    }

    /// Frames `numbers` (1-based, in the order asked) of an instance: native frames in
    /// Explicit VR Little Endian, compressed frames as stored (`accept` = `null`), or as
    /// `accept` asks (a PS3.18 §8.7 `Accept` value, e.g.
    /// `multipart/related; type="image/jpeg"`).
    ///
    /// Errors: `InvalidInput` for an empty list or a number below 1; `NotFound` for a
    /// frame past the last (or an instance without pixel data); `NotAcceptable` when
    /// `accept` cannot be served; `Gone`; `InvalidToken` / `AccessDenied`.
    pub fn frames(
        &self,
        instance: InstanceRef,
        numbers: Vec<i32>,
        accept: Option<String>,
        token: Option<String>,
    ) -> Result<Vec<Frame>, SiaError> {
        let numbers = numbers
            .into_iter()
            .map(|n| {
                u32::try_from(n).map_err(|_| {
                    SiaError::InvalidInput(format!("frame numbers start at 1, not {n}"))
                })
            })
            .collect::<Result<Vec<u32>, SiaError>>()?;
        let grant = self.grant(token.as_deref(), &sia::Access::study(&instance.study))?;
        let what = sia::DicomRef::instance(&instance.study, &instance.series, &instance.instance);
        let frames = self
            .inner
            .frames(&what, &numbers, accept.as_deref().unwrap_or(""), &grant)?;
        if let Some(n) = frames.missing().first() {
            return Err(SiaError::NotFound(format!(
                "frame {n} is past the last frame ({}) of the instance",
                frames.frame_count()
            )));
        }
        frames.into_frames().iter().map(Frame::try_from).collect()
    }

    /// Decides whether `token` (a SMART bearer token, or `null`) may have `access`:
    /// signature, expiry, audience, scopes and patient compartment, exactly as every
    /// other call decides. Without `[[issuers]]` in the configuration everything is
    /// allowed. A study that is not indexed is allowed (reading it fails `NotFound`).
    ///
    /// Errors: none for a refusal (that is a [`Decision`]); `Internal` when the index
    /// fails.
    pub fn authorize(&self, token: Option<String>, access: Access) -> Result<Decision, SiaError> {
        let access = match &access {
            Access::Study { study } => sia::Access::study(study),
            Access::Series { study, series } => sia::Access::series(study, series),
            Access::Instance {
                study,
                series,
                instance,
            } => sia::Access::instance(study, series, instance),
            Access::SearchImagingStudies => sia::Access::search(sia::ResourceKind::ImagingStudy),
        };
        match self
            .inner
            .authorize(&credentials(token.as_deref()), &access)
        {
            Ok(_) => Ok(Decision {
                allowed: true,
                status: 200,
                reason: String::new(),
                www_authenticate: None,
            }),
            Err(e)
                if matches!(
                    e.kind(),
                    sia::ErrorKind::Unauthorized | sia::ErrorKind::Forbidden
                ) =>
            {
                Ok(Decision {
                    allowed: false,
                    status: i32::from(e.status()),
                    reason: e.message().to_string(),
                    www_authenticate: e.challenge().map(str::to_string),
                })
            }
            Err(e) => Err(e.into()),
        }
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

    /// The engine's grant for `token` and `access`; a refusal is the error.
    fn grant(&self, token: Option<&str>, access: &sia::Access) -> Result<sia::Grant, SiaError> {
        Ok(self.inner.authorize(&credentials(token), access)?)
    }
}

/// The record of an engine response, sharing its body's chunks. Errors: `TooCostly`
/// for a body longer than a `ByteArray` holds.
fn http_response(resp: sia::Response) -> Result<HttpResponse, SiaError> {
    let headers = resp
        .headers
        .iter()
        .map(|(n, v)| Header {
            name: n.clone(),
            value: v.clone(),
        })
        .collect();
    Ok(HttpResponse {
        status: i32::from(resp.status),
        headers,
        body: Bytes::from_chunks(resp.body.into_chunks())?,
    })
}

fn credentials(token: Option<&str>) -> sia::Credentials {
    match token {
        Some(t) => sia::Credentials::bearer(t),
        None => sia::Credentials::none(),
    }
}

fn dicom_ref(r: &DicomRef) -> Result<sia::DicomRef, SiaError> {
    Ok(match (&r.series, &r.instance) {
        (None, None) => sia::DicomRef::study(&r.study),
        (Some(s), None) => sia::DicomRef::series(&r.study, s),
        (Some(s), Some(i)) => sia::DicomRef::instance(&r.study, s, i),
        (None, Some(_)) => {
            return Err(SiaError::InvalidInput(
                "an instance reference needs its series".into(),
            ));
        }
    })
}
