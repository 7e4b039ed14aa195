//! `sia._sia`: the Python bindings of the sia engine (pyo3, abi3 for CPython >= 3.11).
//! The `sia` package (py/python/sia) re-exports and documents what is defined here;
//! nothing here decides an answer: every call goes to the engine.
#![deny(unsafe_code)]

mod buffer;
mod engine;
mod errors;
mod index;
mod response;

use pyo3::prelude::*;

#[pymodule]
fn _sia(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<engine::PyEngine>()?;
    m.add_class::<response::PyResponse>()?;
    m.add_class::<buffer::ChunkBuffer>()?;
    m.add_class::<index::IndexProgress>()?;
    Ok(())
}
