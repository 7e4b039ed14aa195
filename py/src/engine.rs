//! `sia._sia.Engine`: one open engine shared by any number of Python threads. Every call
//! that reads files or the index releases the GIL (except frame reads in `mmap` mode,
//! shorter than the hand-off: see [`Gil`]); `close()` drops the engine's handle,
//! while answers already handed out (memoryviews over frames) keep what they point at.
//!
//! The reads (`studies`, `search`, `metadata`, frames) are the engine's typed calls with
//! [`Grant::local`]: a Python program holding the index is its local administrator, as
//! `sia get` without `--config` is. `authorize` decides for a token; `handle` answers a
//! request exactly as `sia serve` would, authorization included.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyMemoryView};
use sia::StudyFilter;
use sia::{Config, DicomRef, Engine, Grant};

use crate::auth::Decision;
use crate::errors::{self, Class, Extra, engine_error};
use crate::frames::{Gil, PixelInfo};
use crate::index::{self, Outcome};
use crate::response::PyResponse;

/// The engine (see `sia.Engine` for the documented Python API).
#[pyclass(module = "sia._sia", name = "Engine", subclass, frozen)]
pub struct PyEngine {
    engine: RwLock<Option<Arc<Engine>>>,
    db: PathBuf,
    base_url: String,
    /// Whether frame reads release the GIL (by the read mode).
    frame_gil: Gil,
}

impl PyEngine {
    /// The open engine, or `EngineClosed`.
    pub fn get(&self, py: Python<'_>) -> PyResult<Arc<Engine>> {
        self.engine
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| errors::closed(py))
    }
}

/// A UID argument, refused unless it is one the engine can index (a DICOM UID, or a safe
/// identifier), with the argument's name in the message.
pub(crate) fn uid<'a>(py: Python<'_>, what: &str, value: &'a str) -> PyResult<&'a str> {
    if sia::is_uid(value) {
        Ok(value)
    } else {
        Err(errors::invalid(
            py,
            &format!("{what} {value:?} is not a valid UID"),
        ))
    }
}

/// The reference of a study, a series or an instance.
pub(crate) fn dicom_ref(
    py: Python<'_>,
    study: &str,
    series: Option<&str>,
    sop: Option<&str>,
) -> PyResult<DicomRef> {
    let study = uid(py, "study", study)?;
    Ok(match (series, sop) {
        (None, None) => DicomRef::study(study),
        (Some(se), None) => DicomRef::series(study, uid(py, "series", se)?),
        (Some(se), Some(i)) => {
            DicomRef::instance(study, uid(py, "series", se)?, uid(py, "sop", i)?)
        }
        (None, Some(_)) => return Err(errors::invalid(py, "an instance needs its series")),
    })
}

/// The JSON value as Python objects (dict, list, str, int, float, bool, None).
fn to_python<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    pythonize::pythonize(py, v).map_err(PyErr::from)
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
            // A file or a postgres:// URL; it wins over the configuration's index.
            (Some(db), _) => {
                cfg.db = db;
                cfg.index_url = None;
            }
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
        let frame_gil = Gil::for_mode(cfg.read_mode);
        let engine = py
            .detach(move || Engine::open(cfg))
            .map_err(|e| engine_error(py, &e))?;
        Ok(PyEngine {
            engine: RwLock::new(Some(Arc::new(engine))),
            db,
            base_url,
            frame_gil,
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
            .detach(|| engine.imaging_studies(&filter))
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
        let engine = self.get(py)?;
        let bundle = py
            .detach(|| engine.search_imaging_studies(&query, &Grant::local()))
            .map_err(|e| engine_error(py, &e))?;
        to_python(py, &bundle)
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
        let what = dicom_ref(py, study, series, sop)?;
        let engine = self.get(py)?;
        let value = py
            .detach(|| {
                engine
                    .metadata(&what, &Grant::local())
                    .and_then(|m| m.to_value())
            })
            .map_err(|e| engine_error(py, &e))?;
        to_python(py, &value)
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
        crate::frames::one(
            py,
            &*self.get(py)?,
            self.frame_gil,
            study,
            series,
            sop,
            number,
        )
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
        Ok(self._described_frames(py, study, series, sop, numbers)?.1)
    }

    /// How the instance's frames are encoded, and the frames (every frame when `numbers`
    /// is None): one engine call for `pixel_array`.
    #[pyo3(signature = (study, series, sop, numbers=None))]
    fn _described_frames<'py>(
        &self,
        py: Python<'py>,
        study: &str,
        series: &str,
        sop: &str,
        numbers: Option<Vec<u32>>,
    ) -> PyResult<(PixelInfo, Bound<'py, PyList>)> {
        let (info, views) = crate::frames::many(
            py,
            &*self.get(py)?,
            self.frame_gil,
            study,
            series,
            sop,
            numbers,
        )?;
        Ok((info, PyList::new(py, views)?))
    }

    /// How the instance's frames are encoded (for NumPy dtype and shape).
    fn pixel_info(
        &self,
        py: Python<'_>,
        study: &str,
        series: &str,
        sop: &str,
    ) -> PyResult<PixelInfo> {
        let (info, _) = crate::frames::many(
            py,
            &*self.get(py)?,
            self.frame_gil,
            study,
            series,
            sop,
            Some(vec![1]),
        )?;
        Ok(info)
    }

    /// Benchmark hook (py/bench/bench.py): seconds `iterations` calls of the engine's
    /// `frames` for frame `number` take, looped in Rust without the GIL.
    fn _time_frames(
        &self,
        py: Python<'_>,
        study: &str,
        series: &str,
        sop: &str,
        number: u32,
        iterations: u32,
    ) -> PyResult<f64> {
        crate::frames::time_calls(py, &*self.get(py)?, study, series, sop, number, iterations)
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
        crate::auth::decide(py, &*self.get(py)?, token, study, series, sop)
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
        py.detach(|| engine.link_patient(fhir_issuer, fhir_patient, patient_id, issuer))
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
        let mut request = sia::Request::new(method, target);
        if let Some(h) = headers {
            request.headers = header_pairs(&h)?;
        }
        let engine = self.get(py)?;
        Ok(py.detach(move || engine.handle(&request)).into())
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

/// A configuration file that cannot be read or is invalid: `ConfigError` whatever the
/// engine's kind (a missing file is a configuration problem to this caller).
fn config_error(py: Python<'_>, e: &sia::Error) -> PyErr {
    errors::raise(
        py,
        Class::ConfigError,
        e.message(),
        Extra {
            status: Some(e.status()),
            challenge: None,
            detail: e.detail(),
        },
    )
}
