//! Frames for Python: `Engine.frame`/`frames` as zero-copy memoryviews over the
//! engine's chunks, and `Engine.pixel_info`, how they are encoded (for NumPy).

use pyo3::prelude::*;
use pyo3::types::{PyList, PyMemoryView};

use crate::buffer::ChunkBuffer;
use crate::engine::{PyEngine, status_error, uid};
use crate::errors::{self, Class, Extra};

/// What frames of one instance are requested with: their stored transfer syntax, one
/// frame per answer, so the body is the frame's bytes alone.
const STORED: &str = "application/octet-stream; transfer-syntax=*";

/// Transfer syntaxes whose frames are not compressed (PS3.5 §10): the engine returns
/// their frames as Explicit VR Little Endian bytes.
const NATIVE: [&str; 4] = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
];

/// How an instance's frames are encoded (PS3.3 C.7.6.3 Image Pixel Module).
#[pyclass(module = "sia._sia", name = "PixelInfo", frozen, get_all)]
#[derive(Clone, Debug)]
pub struct PixelInfo {
    /// The Transfer Syntax UID frames are returned in.
    pub transfer_syntax: String,
    /// Number of Frames (1 for single-frame images).
    pub number_of_frames: u32,
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub columns: u32,
    /// Samples per Pixel.
    pub samples_per_pixel: u32,
    /// Bits Allocated.
    pub bits_allocated: u32,
    /// Pixel Representation (0 unsigned, 1 two's complement).
    pub pixel_representation: u32,
    /// Planar Configuration (0 by pixel, 1 by plane).
    pub planar_configuration: u32,
    /// Photometric Interpretation.
    pub photometric_interpretation: String,
    /// Whether the frames are compressed.
    pub encapsulated: bool,
}

#[pymethods]
impl PixelInfo {
    fn __repr__(&self) -> String {
        format!("{self:?}")
    }
}

impl PyEngine {
    fn instance_path(
        &self,
        py: Python<'_>,
        study: &str,
        series: &str,
        sop: &str,
    ) -> PyResult<String> {
        Ok(format!(
            "{}/studies/{}/series/{}/instances/{}",
            self.dicomweb_path(),
            uid(py, "study", study)?,
            uid(py, "series", series)?,
            uid(py, "sop", sop)?
        ))
    }

    /// Frame `number` in its stored syntax: the answer's chunks, and its transfer syntax.
    fn frame_response(
        &self,
        py: Python<'_>,
        instance: &str,
        number: u32,
    ) -> PyResult<sia::http::Response> {
        if number == 0 {
            return Err(errors::raise(
                py,
                Class::InvalidInput,
                "frame numbers start at 1",
                Extra {
                    status: Some(400),
                    ..Extra::default()
                },
            ));
        }
        let request = sia::http::Request::get(&format!("{instance}/frames/{number}"))
            .with_header("Accept", STORED);
        let resp = self.handle_request(py, request)?;
        if resp.status != 200 {
            return Err(status_error(py, &resp));
        }
        Ok(resp)
    }
}

/// The view of a single-frame answer: its one chunk without copying, or its fragments
/// joined (an encapsulated frame stored in several fragments).
fn frame_view<'py>(
    py: Python<'py>,
    resp: sia::http::Response,
) -> PyResult<Bound<'py, PyMemoryView>> {
    let mut chunks = resp.body.into_chunks();
    if chunks.len() == 1 {
        let chunk = chunks.pop().expect("one chunk");
        return ChunkBuffer::memoryview(py, chunk);
    }
    let joined: Vec<u8> = chunks.iter().flat_map(|c| c.as_bytes()).copied().collect();
    ChunkBuffer::memoryview(py, sia::http::Chunk::Owned(joined))
}

fn number_of(v: &serde_json::Value, tag: &str) -> Option<u32> {
    let value = &v[tag]["Value"][0];
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
        .and_then(|n| u32::try_from(n).ok())
}

impl PyEngine {
    /// Frame `number` (from 1) of an instance in its stored transfer syntax, as a
    /// read-only memoryview of the engine's buffer; see `sia.Engine.frame`.
    pub(crate) fn frame_view<'py>(
        &self,
        py: Python<'py>,
        study: &str,
        series: &str,
        sop: &str,
        number: u32,
    ) -> PyResult<Bound<'py, PyMemoryView>> {
        let instance = self.instance_path(py, study, series, sop)?;
        frame_view(py, self.frame_response(py, &instance, number)?)
    }

    /// Seconds `iterations` engine calls for frame `number` take, looped in Rust without
    /// the GIL: what `Engine.frame` costs before any Python object exists (the benchmark's
    /// baseline for the binding's overhead).
    pub(crate) fn time_frame_calls(
        &self,
        py: Python<'_>,
        study: &str,
        series: &str,
        sop: &str,
        number: u32,
        iterations: u32,
    ) -> PyResult<f64> {
        let instance = self.instance_path(py, study, series, sop)?;
        self.frame_response(py, &instance, number)?;
        let engine = self.get(py)?;
        let target = format!("{instance}/frames/{number}");
        Ok(py.detach(move || {
            let start = std::time::Instant::now();
            for _ in 0..iterations {
                let request = sia::http::Request::get(&target).with_header("Accept", STORED);
                std::hint::black_box(engine.handle(&request));
            }
            start.elapsed().as_secs_f64()
        }))
    }

    /// Several frames (every frame when `numbers` is None); see `sia.Engine.frames`.
    pub(crate) fn frame_views<'py>(
        &self,
        py: Python<'py>,
        study: &str,
        series: &str,
        sop: &str,
        numbers: Option<Vec<u32>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let instance = self.instance_path(py, study, series, sop)?;
        let numbers = match numbers {
            Some(n) => n,
            None => (1..=self
                .describe_pixels(py, study, series, sop)?
                .number_of_frames)
                .collect(),
        };
        let views = numbers
            .into_iter()
            .map(|n| frame_view(py, self.frame_response(py, &instance, n)?))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, views)
    }

    /// How the instance's frames are encoded; see `sia.Engine.pixel_info`.
    pub(crate) fn describe_pixels(
        &self,
        py: Python<'_>,
        study: &str,
        series: &str,
        sop: &str,
    ) -> PyResult<PixelInfo> {
        let instance = self.instance_path(py, study, series, sop)?;
        let resp = self.get_ok(py, format!("{instance}/metadata"), &[])?;
        let json: serde_json::Value = serde_json::from_slice(&resp.body.to_vec()).map_err(|e| {
            errors::raise(py, Class::InternalError, &e.to_string(), Extra::default())
        })?;
        let m = &json[0];
        let first = self.frame_response(py, &instance, 1)?;
        let transfer_syntax = first
            .header("Content-Type")
            .and_then(|ct| {
                ct.split(';')
                    .find_map(|p| p.trim().strip_prefix("transfer-syntax="))
            })
            .map(|ts| ts.trim_matches('"').to_string())
            .unwrap_or_default();
        let required = |tag: &str, name: &str| {
            number_of(m, tag).ok_or_else(|| {
                errors::raise(
                    py,
                    Class::InvalidDicom,
                    &format!("the instance has no {name} ({tag})"),
                    Extra::default(),
                )
            })
        };
        Ok(PixelInfo {
            encapsulated: !NATIVE.contains(&transfer_syntax.as_str()),
            transfer_syntax,
            number_of_frames: number_of(m, "00280008").unwrap_or(1).max(1),
            rows: required("00280010", "Rows")?,
            columns: required("00280011", "Columns")?,
            samples_per_pixel: number_of(m, "00280002").unwrap_or(1),
            bits_allocated: required("00280100", "Bits Allocated")?,
            pixel_representation: number_of(m, "00280103").unwrap_or(0),
            planar_configuration: number_of(m, "00280006").unwrap_or(0),
            photometric_interpretation: m["00280004"]["Value"][0]
                .as_str()
                .unwrap_or("")
                .to_string(),
        })
    }
}
