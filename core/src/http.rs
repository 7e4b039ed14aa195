//! Transport-neutral HTTP: the [`Request`] a host hands to [`crate::Engine::handle`] and
//! the [`Response`] it gets back. Every HTTP detail (status, headers, multipart
//! boundaries, 406) is decided here once, for the server, the C ABI and Python alike.

use std::sync::Arc;

use crate::storage::MappedFile;

/// An HTTP request as the host received it.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The path as sent (still percent-encoded), without the query.
    pub path: String,
    /// The query string without the `?`.
    pub query: String,
    /// Header fields in order; names compare case-insensitively.
    pub headers: Vec<(String, String)>,
    /// An RFC 7662 introspection response for the request's token, for hosts that
    /// introspect at the EHR instead of letting sia verify the JWT; when set, it is
    /// evaluated instead of the `Authorization` header.
    pub introspection: Option<serde_json::Value>,
}

impl Request {
    /// A `GET` of `target` (`/path?query`) with no headers.
    pub fn get(target: &str) -> Request {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Request {
            method: "GET".into(),
            path: path.into(),
            query: query.into(),
            headers: Vec::new(),
            introspection: None,
        }
    }

    /// Adds a header field.
    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Every value of header `name`.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A piece of a response body: owned bytes, or a range of a memory-mapped file that the
/// host can write without copying.
#[derive(Clone, Debug)]
pub enum Chunk {
    /// Bytes made for this response (headers of multipart parts, swapped frames).
    Owned(Vec<u8>),
    /// Bytes known at compile time.
    Static(&'static [u8]),
    /// Bytes shared with a cache (instance metadata), handed out without copying.
    Shared(Arc<[u8]>),
    /// A range of a mapped file; the `Arc` keeps the mapping alive while the host writes.
    Mapped {
        /// The mapping.
        file: Arc<MappedFile>,
        /// First byte.
        start: usize,
        /// Length.
        len: usize,
    },
}

impl Chunk {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Static(s) => s,
            Chunk::Shared(s) => s,
            Chunk::Mapped { file, start, len } => &file.bytes()[*start..*start + *len],
        }
    }
}

/// A response body as a list of chunks.
#[derive(Clone, Debug, Default)]
pub struct Body {
    chunks: Vec<Chunk>,
}

impl Body {
    /// An empty body.
    pub fn new() -> Body {
        Body::default()
    }
    /// A body of one owned chunk.
    pub fn from_vec(v: Vec<u8>) -> Body {
        Body {
            chunks: vec![Chunk::Owned(v)],
        }
    }
    /// Appends a chunk (empty ones are dropped).
    pub fn push(&mut self, c: Chunk) {
        if !c.as_bytes().is_empty() {
            self.chunks.push(c);
        }
    }
    /// The chunks, in order.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }
    /// The chunks, in order, by value (a host that writes them out without copying).
    pub fn into_chunks(self) -> Vec<Chunk> {
        self.chunks
    }
    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.as_bytes().len()).sum()
    }
    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
    /// The body as one buffer (copies; for tests and small bodies).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for c in &self.chunks {
            out.extend_from_slice(c.as_bytes());
        }
        out
    }
}

/// An HTTP response.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields (`Content-Length` included).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
    /// What went wrong, for the host's log only: see [`Response::detail`].
    detail: Option<String>,
}

/// The body of a 500: what went wrong stays in [`Response::detail`].
pub(crate) const INTERNAL_ERROR: &str = "internal error while answering this request";

impl Response {
    /// A response with `body` and its `Content-Type` and `Content-Length`.
    pub fn with_body(status: u16, content_type: &str, body: Body) -> Response {
        let headers = vec![
            ("Content-Type".into(), content_type.into()),
            ("Content-Length".into(), body.len().to_string()),
        ];
        Response {
            status,
            headers,
            body,
            detail: None,
        }
    }

    /// What went wrong, for the host's log, when the engine knows more than it tells the
    /// client (a file path, an index error): client-visible bodies never name a server
    /// path, SQL or an internal identifier, so a host that logs errors logs this.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// Attaches the detail for the host's log.
    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> Response {
        self.detail = Some(detail.into());
        self
    }

    /// A 500 whose cause goes to [`Response::detail`], not to the client.
    pub(crate) fn internal(detail: impl std::fmt::Display) -> Response {
        Response::error(500, INTERNAL_ERROR).with_detail(detail.to_string())
    }

    /// A plain-text error (DICOMweb errors carry a human-readable reason).
    pub fn error(status: u16, message: &str) -> Response {
        Response::with_body(
            status,
            "text/plain; charset=utf-8",
            Body::from_vec(format!("{message}\n").into_bytes()),
        )
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The standard reason phrase of the status.
    pub fn reason(&self) -> &'static str {
        match self.status {
            200 => "OK",
            206 => "Partial Content",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            406 => "Not Acceptable",
            410 => "Gone",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            _ => "",
        }
    }
}
