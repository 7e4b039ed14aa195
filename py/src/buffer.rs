//! Response bytes handed to Python without copying: a [`ChunkBuffer`] owns an engine
//! [`Chunk`] (an `Arc` of a memory mapping, a shared cache entry or a buffer read for
//! this answer) and exports it through the buffer protocol (PEP 3118), read-only. A
//! `memoryview` over it keeps the `ChunkBuffer`, hence the chunk, alive: it stays valid
//! after the response, and after `Engine.close()`.
#![allow(unsafe_code)]

use std::os::raw::{c_int, c_void};

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyMemoryView;
use sia::Chunk;

/// Bytes owned by the engine, exported read-only (use `memoryview(x)`).
#[pyclass(module = "sia._sia", name = "Bytes", frozen)]
pub struct ChunkBuffer {
    chunk: Chunk,
}

impl ChunkBuffer {
    /// A read-only `memoryview` over `chunk`, which it keeps alive.
    pub fn memoryview(py: Python<'_>, chunk: Chunk) -> PyResult<Bound<'_, PyMemoryView>> {
        let owner = Bound::new(py, ChunkBuffer { chunk })?;
        PyMemoryView::from(owner.as_any())
    }
}

#[pymethods]
impl ChunkBuffer {
    /// Exports the chunk's bytes: one dimension of unsigned bytes (format `B`), read-only;
    /// a writable request fails with `BufferError`.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("no buffer view to fill"));
        }
        let bytes = slf.get().chunk.as_bytes();
        let len = isize::try_from(bytes.len())
            .map_err(|_| PyBufferError::new_err("chunk longer than isize::MAX"))?;
        // SAFETY: `view` is the non-null Py_buffer CPython passes to bf_getbuffer.
        // PyBuffer_FillInfo takes a new reference to `slf` in `view.obj`, so the chunk (and
        // the mapping or buffer it owns) lives until the last consumer releases the view;
        // the pointer is never written through because the view is read-only (readonly=1
        // makes PyBuffer_FillInfo refuse PyBUF_WRITABLE with a BufferError).
        let rc = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                bytes.as_ptr() as *mut c_void,
                len,
                1,
                flags,
            )
        };
        if rc == -1 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }

    /// Nothing to release: the chunk is freed with this object, after the last view.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}

    fn __len__(&self) -> usize {
        self.chunk.as_bytes().len()
    }
}
