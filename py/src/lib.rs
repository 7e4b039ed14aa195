//! `sia._sia`: the Python bindings of the sia engine (pyo3, abi3 for CPython >= 3.11).
//! The `sia` package (py/python/sia) re-exports and documents what is defined here;
//! nothing here decides an answer: every call goes to the engine.
#![deny(unsafe_code)]

mod auth;
mod buffer;
mod engine;
mod errors;
mod frames;
mod index;
mod response;

use std::path::PathBuf;

use pyo3::prelude::*;

/// Writes sia's synthetic demo set (3 patients, 4 studies, 40 files: native and RLE,
/// single- and multi-frame, RGB, three transfer syntaxes) into `folder`, created if
/// needed; returns the files written.
#[pyfunction]
fn write_demo(py: Python<'_>, folder: PathBuf) -> PyResult<Vec<PathBuf>> {
    py.detach(|| sia::write_demo(&folder))
        .map_err(|e| errors::engine_error(py, &e))
}

#[pymodule]
fn _sia(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<engine::PyEngine>()?;
    m.add_class::<response::PyResponse>()?;
    m.add_class::<buffer::ChunkBuffer>()?;
    m.add_class::<index::IndexProgress>()?;
    m.add_class::<frames::PixelInfo>()?;
    m.add_class::<auth::Decision>()?;
    m.add_function(wrap_pyfunction!(write_demo, m)?)?;
    Ok(())
}
