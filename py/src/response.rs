//! `Engine.handle`'s answer: status, header fields and the body as the engine's chunks,
//! each readable as a zero-copy `memoryview` (what `sia.asgi.App` streams).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use sia::{Chunk, Response};

use crate::buffer::ChunkBuffer;

/// An HTTP answer of the engine (`Engine.handle`).
#[pyclass(module = "sia._sia", name = "Response", frozen)]
pub struct PyResponse {
    status: u16,
    reason: &'static str,
    headers: Vec<(String, String)>,
    chunks: Vec<Chunk>,
    detail: Option<String>,
}

impl From<Response> for PyResponse {
    fn from(r: Response) -> Self {
        PyResponse {
            status: r.status,
            reason: r.reason(),
            detail: r.detail().map(str::to_string),
            headers: r.headers,
            chunks: r.body.into_chunks(),
        }
    }
}

impl PyResponse {
    /// The whole body in one buffer.
    pub fn body_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.chunks.iter().map(|c| c.as_bytes().len()).sum());
        for c in &self.chunks {
            out.extend_from_slice(c.as_bytes());
        }
        out
    }

    /// The status code.
    pub fn status_code(&self) -> u16 {
        self.status
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The log detail.
    pub fn detail_text(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

#[pymethods]
impl PyResponse {
    /// The HTTP status code (200, 404, ...).
    #[getter]
    fn status(&self) -> u16 {
        self.status
    }

    /// The standard reason phrase of the status (`"Not Found"`), or `""`.
    #[getter]
    fn reason(&self) -> &'static str {
        self.reason
    }

    /// Header fields in order, as `(name, value)` pairs; `Content-Length` included.
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .headers
            .iter()
            .map(|(n, v)| PyTuple::new(py, [n.as_str(), v.as_str()]))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// The first value of header `name` (compared case-insensitively), or `None`.
    fn header(&self, name: &str) -> Option<&str> {
        self.header_value(name)
    }

    /// The body as read-only `memoryview`s over the engine's chunks, in order, without
    /// copying: frames are ranges of the file's mapping (read mode `mmap`) or of the buffer
    /// read for this answer. Each view keeps its bytes alive, also after `Engine.close()`.
    #[getter]
    fn chunks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let views = self
            .chunks
            .iter()
            .map(|c| ChunkBuffer::memoryview(py, c.clone()))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, views)
    }

    /// The whole body as `bytes` (one copy).
    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let len = self.chunks.iter().map(|c| c.as_bytes().len()).sum();
        PyBytes::new_with(py, len, |buf| {
            let mut at = 0;
            for c in &self.chunks {
                let b = c.as_bytes();
                buf[at..at + b.len()].copy_from_slice(b);
                at += b.len();
            }
            Ok(())
        })
    }

    /// The body's length in bytes.
    #[getter]
    fn content_length(&self) -> usize {
        self.chunks.iter().map(|c| c.as_bytes().len()).sum()
    }

    /// What went wrong beyond what the client reads (it may name a file), for the host's
    /// log; `None` when the engine has nothing more to say.
    #[getter]
    fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    fn __repr__(&self) -> String {
        format!(
            "<sia.Response {} {} {} B>",
            self.status,
            self.reason,
            self.content_length()
        )
    }
}
