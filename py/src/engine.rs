//! `sia._sia.Engine`: one open engine shared by any number of Python threads. Every call
//! that reads files or the index releases the GIL; `close()` drops the engine's handle,
//! while answers already handed out (memoryviews over frames) keep what they point at.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyMemoryView};
use sia::index::StudyFilter;
use sia::{Config, Engine};

use crate::auth::Decision;
use crate::errors::{self, Class, Extra};
use crate::frames::PixelInfo;
use crate::index::{self, Outcome};
use crate::response::PyResponse;

/// The engine (see `sia.Engine` for the documented Python API).
#[pyclass(module = "sia._sia", name = "Engine", subclass, frozen)]
pub struct PyEngine {
    engine: RwLock<Option<Arc<Engine>>>,
    db: PathBuf,
    base_url: String,
    /// Path of DICOMweb requests under the base URL (`/dicom-web`).
    dicomweb_path: String,
}

impl PyEngine {
    /// Path of DICOMweb requests under the base URL (`/dicom-web`).
    pub fn dicomweb_path(&self) -> &str {
        &self.dicomweb_path
    }

    /// The open engine, or `EngineClosed`.
    pub fn get(&self, py: Python<'_>) -> PyResult<Arc<Engine>> {
        self.engine
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| errors::closed(py))
    }

    /// `engine.handle(request)` without the GIL.
    pub fn handle_request(
        &self,
        py: Python<'_>,
        request: sia::http::Request,
    ) -> PyResult<sia::http::Response> {
        let engine = self.get(py)?;
        Ok(py.detach(move || engine.handle(&request)))
    }

    /// A GET of `target` answered with 200, or the exception its status names.
    pub(crate) fn get_ok(
        &self,
        py: Python<'_>,
        target: String,
        headers: &[(&str, &str)],
    ) -> PyResult<sia::http::Response> {
        let mut request = sia::http::Request::get(&target);
        for (n, v) in headers {
            request = request.with_header(n, v);
        }
        let resp = self.handle_request(py, request)?;
        if resp.status == 200 {
            return Ok(resp);
        }
        Err(status_error(py, &resp))
    }
}

/// The exception for an error answer of `Engine::handle`: its class from the status,
/// its message from the body (plain text, or an OperationOutcome's diagnostics).
pub fn status_error(py: Python<'_>, resp: &sia::http::Response) -> PyErr {
    let body = resp.body.to_vec();
    let text = String::from_utf8_lossy(&body);
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["issue"][0]["diagnostics"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.trim().to_string());
    errors::raise(
        py,
        Class::of_status(resp.status),
        &message,
        Extra {
            status: Some(resp.status),
            challenge: resp.header("WWW-Authenticate"),
            detail: resp.detail(),
        },
    )
}

/// The Python exception of an engine error.
pub fn engine_error(py: Python<'_>, e: &sia::Error) -> PyErr {
    let class = match e {
        sia::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Class::NotFound
        }
        sia::Error::Io { .. } | sia::Error::Database(_) => Class::InternalError,
        sia::Error::Schema(_) => Class::ConfigError,
        sia::Error::InvalidInput(_) => Class::InvalidInput,
        _ => Class::InternalError,
    };
    errors::raise(py, class, &e.to_string(), Extra::default())
}

/// A UID argument, refused unless it is one the engine can index (DICOM UID, or a safe
/// identifier), so it can never change the shape of a request path.
pub(crate) fn uid<'a>(py: Python<'_>, what: &str, value: &'a str) -> PyResult<&'a str> {
    if sia::wado::is_uid(value) {
        Ok(value)
    } else {
        Err(errors::raise(
            py,
            Class::InvalidInput,
            &format!("{what} {value:?} is not a valid UID"),
            Extra {
                status: Some(400),
                ..Extra::default()
            },
        ))
    }
}

/// The JSON value as Python objects (dict, list, str, int, float, bool, None).
fn to_python<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    pythonize::pythonize(py, v).map_err(PyErr::from)
}

fn json_body<'py>(py: Python<'py>, resp: &sia::http::Response) -> PyResult<Bound<'py, PyAny>> {
    let v: serde_json::Value = serde_json::from_slice(&resp.body.to_vec()).map_err(|e| {
        errors::raise(
            py,
            Class::InternalError,
            "the engine answered with invalid JSON",
            Extra {
                detail: Some(&e.to_string()),
                ..Extra::default()
            },
        )
    })?;
    to_python(py, &v)
}

/// The path part of an absolute URL (`http://h:1/a/b` -> `/a/b`).
fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(i) => after_scheme[i..].trim_end_matches('/').to_string(),
        None => String::new(),
    }
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (db=None, config=None, *, base_url=None, read_mode=None))]
    fn new(
        py: Python<'_>,
        db: Option<PathBuf>,
        config: Option<PathBuf>,
        base_url: Option<String>,
        read_mode: Option<&str>,
    ) -> PyResult<Self> {
        let mut cfg = match &config {
            Some(path) => {
                let path = path.clone();
                py.detach(move || Config::from_file(&path))
                    .map_err(|e| config_error(py, &e))?
            }
            None => Config::default(),
        };
        match (db, &config) {
            (Some(db), _) => cfg.db = db,
            (None, Some(_)) => {}
            (None, None) => {
                return Err(errors::raise(
                    py,
                    Class::ConfigError,
                    "give the index file (db) or a configuration file naming it",
                    Extra::default(),
                ));
            }
        }
        if let Some(b) = base_url {
            cfg.base_url = b.trim_end_matches('/').to_string();
        }
        if let Some(m) = read_mode {
            cfg.read_mode = m
                .parse()
                .map_err(|e: String| errors::raise(py, Class::ConfigError, &e, Extra::default()))?;
        }
        let db = cfg.db.clone();
        let base_url = cfg.base_url.clone();
        let engine = py
            .detach(move || Engine::open(cfg))
            .map_err(|e| engine_error(py, &e))?;
        let dicomweb_path = url_path(&engine.fhir_context().dicomweb_base);
        Ok(PyEngine {
            engine: RwLock::new(Some(Arc::new(engine))),
            db,
            base_url,
            dicomweb_path,
        })
    }

    /// Releases the engine (the index connections and cached mappings); later calls raise
    /// `EngineClosed`. Memoryviews already returned stay valid. Idempotent.
    fn close(&self, py: Python<'_>) {
        let engine = self
            .engine
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // Dropping closes SQLite connections and unmaps files: no GIL needed for that.
        py.detach(move || drop(engine));
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.engine
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// The index file.
    #[getter]
    fn db(&self) -> PathBuf {
        self.db.clone()
    }

    /// The public base URL resources are addressed under.
    #[getter]
    fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Runs an index of `paths`; see `sia.Engine.index`. Returns the report as a dict.
    #[pyo3(signature = (paths, progress=None, interval=0.1))]
    fn _index<'py>(
        &self,
        py: Python<'py>,
        paths: Vec<PathBuf>,
        progress: Option<Bound<'py, PyAny>>,
        interval: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let engine = self.get(py)?;
        let interval = Duration::try_from_secs_f64(interval.clamp(0.001, 60.0))
            .unwrap_or(Duration::from_millis(100));
        match index::run(py, engine, paths, progress, interval)? {
            Outcome::Done(Ok(report)) => pythonize::pythonize(py, &report).map_err(PyErr::from),
            Outcome::Done(Err(e)) => Err(engine_error(py, &e)),
            Outcome::Interrupted(e) => Err(e),
        }
    }

    /// ImagingStudy resources (dicts) of the studies of DICOM patient `patient_id`
    /// (of Issuer of Patient ID `issuer`; any issuer when `None`), or of every study.
    #[pyo3(signature = (patient_id=None, issuer=None))]
    fn studies<'py>(
        &self,
        py: Python<'py>,
        patient_id: Option<String>,
        issuer: Option<String>,
    ) -> PyResult<Bound<'py, PyList>> {
        let engine = self.get(py)?;
        let filter = StudyFilter {
            patient_id,
            issuer,
            ..StudyFilter::default()
        };
        let resources = py
            .detach(|| {
                engine.studies(&filter).map(|rows| {
                    rows.iter()
                        .map(|r| sia::fhir::imaging_study(r, engine.fhir_context()))
                        .collect::<Vec<_>>()
                })
            })
            .map_err(|e| engine_error(py, &e))?;
        let items = resources
            .iter()
            .map(|v| to_python(py, v))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// FHIR search of ImagingStudy with `query` (name, value) pairs; the searchset Bundle.
    fn _search<'py>(
        &self,
        py: Python<'py>,
        query: Vec<(String, String)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let fhir = url_path(&self.get(py)?.fhir_context().fhir_base);
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let resp = self.get_ok(py, format!("{fhir}/ImagingStudy?{}", q.join("&")), &[])?;
        json_body(py, &resp)
    }

    /// DICOM JSON (PS3.18 §F.2) of every instance of a study, a series or one instance: a
    /// list of dicts keyed by tag (`"0020000D"`).
    #[pyo3(signature = (study, series=None, sop=None))]
    fn metadata<'py>(
        &self,
        py: Python<'py>,
        study: &str,
        series: Option<&str>,
        sop: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut target = format!(
            "{}/studies/{}",
            self.dicomweb_path,
            uid(py, "study", study)?
        );
        match (series, sop) {
            (Some(se), Some(i)) => {
                target += &format!(
                    "/series/{}/instances/{}",
                    uid(py, "series", se)?,
                    uid(py, "sop", i)?
                );
            }
            (Some(se), None) => target += &format!("/series/{}", uid(py, "series", se)?),
            (None, None) => {}
            (None, Some(_)) => {
                return Err(errors::raise(
                    py,
                    Class::InvalidInput,
                    "an instance needs its series",
                    Extra::default(),
                ));
            }
        }
        target += "/metadata";
        let resp = self.get_ok(py, target, &[])?;
        json_body(py, &resp)
    }

    /// Frame `number` (from 1) in its stored transfer syntax: a read-only memoryview of
    /// the engine's buffer (of the file's mapping with read mode `mmap`), no copy.
    #[pyo3(signature = (study, series, sop, number=1))]
    fn frame<'py>(
        &self,
        py: Python<'py>,
        study: &str,
        series: &str,
        sop: &str,
        number: u32,
    ) -> PyResult<Bound<'py, PyMemoryView>> {
        self.frame_view(py, study, series, sop, number)
    }

    /// Several frames (every frame when `numbers` is None), as `frame` gives them.
    #[pyo3(signature = (study, series, sop, numbers=None))]
    fn frames<'py>(
        &self,
        py: Python<'py>,
        study: &str,
        series: &str,
        sop: &str,
        numbers: Option<Vec<u32>>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.frame_views(py, study, series, sop, numbers)
    }

    /// Benchmark hook (py/bench/bench.py): seconds `iterations` frame calls take inside
    /// Rust, for the overhead `frame()` adds.
    fn _time_frames(
        &self,
        py: Python<'_>,
        study: &str,
        series: &str,
        sop: &str,
        number: u32,
        iterations: u32,
    ) -> PyResult<f64> {
        self.time_frame_calls(py, study, series, sop, number, iterations)
    }

    /// How the instance's frames are encoded (for NumPy dtype and shape).
    fn pixel_info(
        &self,
        py: Python<'_>,
        study: &str,
        series: &str,
        sop: &str,
    ) -> PyResult<PixelInfo> {
        self.describe_pixels(py, study, series, sop)
    }

    /// The decision for bearer `token` (None: no token) reading a study (its series and
    /// instances are decided on it), or searching ImagingStudy when `study` is None.
    #[pyo3(signature = (token, study=None, series=None, sop=None))]
    fn authorize(
        &self,
        py: Python<'_>,
        token: Option<&str>,
        study: Option<&str>,
        series: Option<&str>,
        sop: Option<&str>,
    ) -> PyResult<Decision> {
        for (what, v) in [("study", study), ("series", series), ("sop", sop)] {
            if let Some(v) = v {
                uid(py, what, v)?;
            }
        }
        if study.is_none() && (series.is_some() || sop.is_some()) {
            return Err(errors::raise(
                py,
                Class::InvalidInput,
                "a series or instance needs its study",
                Extra::default(),
            ));
        }
        // The FHIR read of the study (or the search) asks the engine for exactly the
        // decision a study-level access takes.
        let fhir = url_path(&self.get(py)?.fhir_context().fhir_base);
        let target = match study {
            Some(s) => format!("{fhir}/ImagingStudy/{s}"),
            None => format!("{fhir}/ImagingStudy?_count=0"),
        };
        let mut request = sia::http::Request::get(&target);
        if let Some(t) = token {
            request = request.with_header("Authorization", &format!("Bearer {t}"));
        }
        let resp = self.handle_request(py, request)?;
        match resp.status {
            200 => Ok(Decision {
                allowed: true,
                status: 200,
                ..Decision::default()
            }),
            401 | 403 => {
                let err = status_error(py, &resp);
                Ok(Decision {
                    allowed: false,
                    status: resp.status,
                    message: err.value(py).str()?.to_string(),
                    challenge: resp.header("WWW-Authenticate").map(str::to_string),
                    ..Decision::default()
                })
            }
            _ => Err(status_error(py, &resp)),
        }
    }

    /// Links FHIR Patient `fhir_patient` (of token issuer `fhir_issuer`; `""` for a link
    /// that serves while one issuer is configured) to DICOM patient `patient_id` of Issuer
    /// of Patient ID `issuer`. Tokens for that FHIR Patient then reach its studies.
    #[pyo3(signature = (fhir_patient, patient_id, issuer="", *, fhir_issuer=""))]
    fn link(
        &self,
        py: Python<'_>,
        fhir_patient: &str,
        patient_id: &str,
        issuer: &str,
        fhir_issuer: &str,
    ) -> PyResult<()> {
        let engine = self.get(py)?;
        py.detach(|| {
            engine
                .index_db()
                .link_patient_for(fhir_issuer, fhir_patient, patient_id, issuer)
        })
        .map_err(|e| engine_error(py, &e))
    }

    /// Removes a link made by `link`; whether there was one.
    #[pyo3(signature = (fhir_patient, patient_id, issuer="", *, fhir_issuer=""))]
    fn unlink(
        &self,
        py: Python<'_>,
        fhir_patient: &str,
        patient_id: &str,
        issuer: &str,
        fhir_issuer: &str,
    ) -> PyResult<bool> {
        let engine = self.get(py)?;
        py.detach(|| engine.unlink_patient(fhir_issuer, fhir_patient, patient_id, issuer))
            .map(|n| n > 0)
            .map_err(|e| engine_error(py, &e))
    }

    /// Answers an HTTP request as `sia serve` would; see `sia.Engine.handle`.
    #[pyo3(signature = (method, target, headers=None))]
    fn handle(
        &self,
        py: Python<'_>,
        method: &str,
        target: &str,
        headers: Option<Bound<'_, PyAny>>,
    ) -> PyResult<PyResponse> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut request = sia::http::Request {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            ..Default::default()
        };
        if let Some(h) = headers {
            request.headers = header_pairs(&h)?;
        }
        Ok(self.handle_request(py, request)?.into())
    }

    fn __repr__(&self) -> String {
        format!(
            "<sia.Engine db={:?}{}>",
            self.db.display().to_string(),
            if self.closed() { " closed" } else { "" }
        )
    }
}

/// Header fields from a mapping or an iterable of `(name, value)` pairs (`str` or
/// `bytes`, as ASGI carries them: bytes are decoded as Latin-1, RFC 9110 §5.5).
fn header_pairs(h: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let items = match h.cast::<PyDict>() {
        Ok(d) => d.items().into_any(),
        Err(_) => h.clone(),
    };
    let mut out = Vec::new();
    for item in items.try_iter()? {
        let (n, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
        out.push((text(&n)?, text(&v)?));
    }
    Ok(out)
}

fn text(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = v.extract::<String>() {
        return Ok(s);
    }
    let b: Vec<u8> = v.extract()?;
    Ok(b.iter().map(|&c| char::from(c)).collect())
}

fn config_error(py: Python<'_>, e: &sia::Error) -> PyErr {
    errors::raise(py, Class::ConfigError, &e.to_string(), Extra::default())
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
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
