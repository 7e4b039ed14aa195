//! Frames for Python: `Engine.frame`/`frames` as zero-copy memoryviews over the chunks
//! of the engine's `Engine::frames`, and `PixelInfo`, how they are encoded (for NumPy).

use pyo3::prelude::*;
use pyo3::types::PyMemoryView;
use sia::{Chunk, DicomRef, Engine, Frame, Frames, Grant};

use crate::buffer::ChunkBuffer;
use crate::engine::dicom_ref;
use crate::errors::{self, Class, Extra, engine_error};

/// Frames are asked for with an empty `Accept`: the engine's own first choice, which is
/// the stored transfer syntax for compressed frames and Explicit VR Little Endian bytes
/// for native ones (PS3.18 §8.7.3.5).
const ANY: &str = "";

/// Transfer syntaxes whose frames are not compressed (PS3.5 §10), as the engine labels
/// native frames.
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
    /// Frames in the instance.
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

impl PixelInfo {
    fn of(frame: &Frame, count: u32) -> PixelInfo {
        PixelInfo {
            transfer_syntax: frame.transfer_syntax().to_string(),
            encapsulated: !NATIVE.contains(&frame.transfer_syntax()),
            number_of_frames: count,
            rows: frame.rows(),
            columns: frame.columns(),
            samples_per_pixel: frame.samples_per_pixel(),
            bits_allocated: frame.bits_allocated(),
            pixel_representation: frame.pixel_representation(),
            planar_configuration: frame.planar_configuration(),
            photometric_interpretation: frame.photometric_interpretation().to_string(),
        }
    }
}

fn instance(py: Python<'_>, study: &str, series: &str, sop: &str) -> PyResult<DicomRef> {
    dicom_ref(py, study, Some(series), Some(sop))
}

/// Whether frame reads let other Python threads run while the engine works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gil {
    /// Released: each read is a `pread` of the frame (microseconds to milliseconds,
    /// longer on a network file system).
    Release,
    /// Held: in `mmap` read mode a frame in its stored form is a range of a cached
    /// mapping found through the location cache, a few microseconds; handing the GIL
    /// over and taking it back around that costs a noticeable share of it (the
    /// `frame()` overhead budget is 2 µs), and no other thread would get much done in
    /// between. Frames are never decoded here (`ANY` keeps the stored syntax).
    Hold,
}

impl Gil {
    /// The choice for an engine opened with `mode`.
    pub fn for_mode(mode: sia::ReadMode) -> Gil {
        match mode {
            sia::ReadMode::Mmap => Gil::Hold,
            _ => Gil::Release,
        }
    }
}

/// The engine's frames `numbers` of `what`, with the GIL released or held as `gil` says.
fn fetch(
    py: Python<'_>,
    engine: &Engine,
    what: &DicomRef,
    numbers: &[u32],
    gil: Gil,
) -> PyResult<Frames> {
    let read = || engine.frames(what, numbers, ANY, &Grant::local());
    match gil {
        Gil::Release => py.detach(read),
        Gil::Hold => read(),
    }
    .map_err(|e| engine_error(py, &e))
}

/// The view of one frame: its one chunk without copying, or its fragments joined (an
/// encapsulated frame stored in several fragments has no single range to point at).
fn view<'py>(py: Python<'py>, frame: &Frame) -> PyResult<Bound<'py, PyMemoryView>> {
    let chunk = match frame.chunks() {
        [one] => one.clone(),
        many => Chunk::from_vec(many.iter().flat_map(|c| c.as_bytes()).copied().collect()),
    };
    ChunkBuffer::memoryview(py, chunk)
}

/// `NotFound` naming the frames an instance does not have.
fn missing(py: Python<'_>, frames: &Frames) -> PyErr {
    errors::raise(
        py,
        Class::NotFound,
        &format!(
            "the instance has {} frame(s); no frame {:?}",
            frames.frame_count(),
            frames.missing()
        ),
        Extra {
            status: Some(404),
            ..Extra::default()
        },
    )
}

/// Frame `number` of an instance (`Engine.frame`).
pub fn one<'py>(
    py: Python<'py>,
    engine: &Engine,
    gil: Gil,
    study: &str,
    series: &str,
    sop: &str,
    number: u32,
) -> PyResult<Bound<'py, PyMemoryView>> {
    let what = instance(py, study, series, sop)?;
    if number == 0 {
        return Err(errors::invalid(py, "frame numbers start at 1"));
    }
    let frames = fetch(py, engine, &what, &[number], gil)?;
    match frames.frames() {
        [frame] => view(py, frame),
        _ => Err(missing(py, &frames)),
    }
}

/// Frames `numbers` (every frame when None) and how they are encoded.
pub fn many<'py>(
    py: Python<'py>,
    engine: &Engine,
    gil: Gil,
    study: &str,
    series: &str,
    sop: &str,
    numbers: Option<Vec<u32>>,
) -> PyResult<(PixelInfo, Vec<Bound<'py, PyMemoryView>>)> {
    let what = instance(py, study, series, sop)?;
    let frames = match numbers {
        Some(numbers) => {
            if numbers.is_empty() || numbers.contains(&0) {
                return Err(errors::invalid(
                    py,
                    "frame numbers start at 1, and at least one is needed",
                ));
            }
            fetch(py, engine, &what, &numbers, gil)?
        }
        None => {
            // The first frame tells how many there are; then all of them, in one call.
            let first = fetch(py, engine, &what, &[1], gil)?;
            match first.frame_count() {
                0 | 1 => first,
                n => fetch(py, engine, &what, &(1..=n).collect::<Vec<_>>(), gil)?,
            }
        }
    };
    if !frames.missing().is_empty() {
        return Err(missing(py, &frames));
    }
    let Some(first) = frames.frames().first() else {
        return Err(missing(py, &frames));
    };
    let info = PixelInfo::of(first, frames.frame_count());
    let views = frames
        .frames()
        .iter()
        .map(|f| view(py, f))
        .collect::<PyResult<Vec<_>>>()?;
    Ok((info, views))
}

/// Seconds `iterations` calls of `Engine::frames` for frame `number` take, looped in
/// Rust without the GIL: what `Engine.frame` costs before any Python object exists.
pub fn time_calls(
    py: Python<'_>,
    engine: &Engine,
    study: &str,
    series: &str,
    sop: &str,
    number: u32,
    iterations: u32,
) -> PyResult<f64> {
    let what = instance(py, study, series, sop)?;
    fetch(py, engine, &what, &[number], Gil::Release)?;
    Ok(py.detach(|| {
        let grant = Grant::local();
        let start = std::time::Instant::now();
        for _ in 0..iterations {
            let _ = std::hint::black_box(engine.frames(&what, &[number], ANY, &grant));
        }
        start.elapsed().as_secs_f64()
    }))
}
