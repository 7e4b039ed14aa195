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
        Request::new("GET", target)
    }

    /// A request of `method` for `target` (`/path?query`, still percent-encoded) with
    /// no headers.
    pub fn new(method: &str, target: &str) -> Request {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Request {
            method: method.into(),
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

/// A piece of a response body: owning what it points at (a buffer, shared bytes, or a
/// range of a memory mapping kept alive by an `Arc`), so a host may keep a chunk after
/// the [`Response`] and even the [`crate::Engine`] are gone.
///
/// Cloning never copies the bytes, whatever the kind: a frame read with `pread` is a
/// 512 KiB buffer, and a host that clones the chunk it hands out (a memoryview's
/// owner, a response body) must not pay for a second one.
///
/// A chunk of a mapping is made only by the engine, from a range it checked against the
/// mapping's length: a host cannot build one that points outside it.
#[derive(Clone)]
pub struct Chunk(Repr);

#[derive(Clone)]
enum Repr {
    /// Bytes made for this response (headers of multipart parts, swapped frames, frames
    /// read with `pread`), shared by the chunk's clones.
    Owned(Arc<Vec<u8>>),
    /// Bytes known at compile time.
    Static(&'static [u8]),
    /// Bytes shared with a cache (instance metadata), handed out without copying.
    Shared(Arc<[u8]>),
    /// A checked range of a mapped file; the `Arc` keeps the mapping alive.
    Mapped {
        file: Arc<MappedFile>,
        start: usize,
        len: usize,
    },
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0 {
            Repr::Owned(_) => "owned",
            Repr::Static(_) => "static",
            Repr::Shared(_) => "shared",
            Repr::Mapped { .. } => "mapped",
        };
        f.debug_struct("Chunk")
            .field("kind", &kind)
            .field("len", &self.len())
            .finish()
    }
}

impl Chunk {
    /// A chunk owning `bytes`.
    pub fn from_vec(bytes: Vec<u8>) -> Chunk {
        Chunk(Repr::Owned(Arc::new(bytes)))
    }

    /// A chunk of bytes known at compile time.
    pub fn from_static(bytes: &'static [u8]) -> Chunk {
        Chunk(Repr::Static(bytes))
    }

    /// A chunk sharing `bytes` (no copy).
    pub fn from_shared(bytes: Arc<[u8]>) -> Chunk {
        Chunk(Repr::Shared(bytes))
    }

    /// `len` bytes at `start` of a mapping; `None` when the range is not inside it.
    pub(crate) fn mapped(file: Arc<MappedFile>, start: u64, len: u64) -> Option<Chunk> {
        let end = start.checked_add(len)?;
        if end > file.bytes().len() as u64 {
            return None;
        }
        Some(Chunk(Repr::Mapped {
            file,
            start: start as usize,
            len: len as usize,
        }))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Owned(v) => v,
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
            // In range: checked when the chunk was made, and a mapping never shrinks.
            Repr::Mapped { file, start, len } => &file.bytes()[*start..*start + *len],
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Mapped { len, .. } => *len,
            _ => self.as_bytes().len(),
        }
    }

    /// Whether the chunk is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes as a `Vec`: moved out when the chunk owns a buffer no clone shares,
    /// else copied.
    pub fn into_vec(self) -> Vec<u8> {
        self.try_into_vec()
            .unwrap_or_else(|chunk| chunk.as_bytes().to_vec())
    }

    /// The owned buffer, when the chunk is one and no clone of it is alive (a host
    /// hands it over without copying); else the chunk back.
    pub fn try_into_vec(self) -> Result<Vec<u8>, Chunk> {
        match self.0 {
            Repr::Owned(v) => Arc::try_unwrap(v).map_err(|v| Chunk(Repr::Owned(v))),
            other => Err(Chunk(other)),
        }
    }

    /// The bytes, when they are known at compile time.
    pub fn as_static(&self) -> Option<&'static [u8]> {
        match self.0 {
            Repr::Static(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the bytes are a range of a memory mapping (read mode `mmap`).
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Repr::Mapped { .. })
    }
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
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
            chunks: vec![Chunk::from_vec(v)],
        }
    }
    /// A body of one chunk (a shared or mapped buffer handed out without copying).
    pub fn from_chunk(c: Chunk) -> Body {
        let mut body = Body::new();
        body.push(c);
        body
    }
    /// Appends a chunk (empty ones are dropped).
    pub fn push(&mut self, c: Chunk) {
        if !c.is_empty() {
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
        self.chunks.iter().map(Chunk::len).sum()
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

/// Most characters of a client-visible message: an error body, a `Warning` text.
pub(crate) const MAX_MESSAGE_CHARS: usize = 1024;

/// `text` made safe to send back to a client: every control character (CR, LF, NUL, DEL,
/// the C1 range) replaced by U+FFFD and at most [`MAX_MESSAGE_CHARS`] characters kept
/// (`...` marks a cut). Messages echo what a request named (a path, a parameter, an
/// `Accept` value); this way request text can neither split a header or a multipart body
/// nor come back at the size it was sent. Text that needs neither comes back unchanged,
/// without copying.
pub(crate) fn client_message(text: String) -> String {
    let long = text.len() > MAX_MESSAGE_CHARS && text.chars().nth(MAX_MESSAGE_CHARS).is_some();
    if !long && !text.chars().any(char::is_control) {
        return text;
    }
    let mut out: String = text
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if long {
        out.push_str("...");
    }
    out
}

/// Whether `v` may go out as a header field value on every host: visible ASCII, space
/// and horizontal tab only. RFC 9110 §5.5 forbids CR, LF and NUL outright; other bytes
/// (obs-text) are legal but refused by hyper and h11, so a host would drop the field or
/// the whole answer.
pub(crate) fn is_safe_header_value(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (0x20..0x7F).contains(&b))
}

/// `v` with every byte [`is_safe_header_value`] refuses replaced by `?`, and at most
/// [`MAX_MESSAGE_CHARS`] characters.
pub(crate) fn safe_header_value(v: &str) -> String {
    v.chars()
        .take(MAX_MESSAGE_CHARS)
        .map(|c| {
            if c == '\t' || (' '..='~').contains(&c) {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// A `Warning` header field (PS3.18 §8.3.5.1 with RFC 7234 §5.5's syntax):
/// `299 sia "text"`, the text a quoted-string (`"` and `\` escaped) of safe characters.
pub(crate) fn warning(text: &str) -> (String, String) {
    let mut v = String::with_capacity(text.len() + 10);
    v.push_str("299 sia \"");
    for c in safe_header_value(text).chars() {
        if c == '"' || c == '\\' {
            v.push('\\');
        }
        v.push(c);
    }
    v.push('"');
    ("Warning".into(), v)
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
    pub(crate) fn set_detail(&mut self, detail: String) {
        self.detail = Some(detail);
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The header fields, in order (`Content-Length` included).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The body.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// The body by value (a host that writes its chunks out without copying).
    pub fn into_body(self) -> Body {
        self.body
    }

    /// A plain-text error (DICOMweb errors carry a human-readable reason). Control
    /// characters in `message` are replaced and a long one is cut (see
    /// [`Error`](crate::Error)'s message): it may echo request text.
    pub fn error(status: u16, message: &str) -> Response {
        let mut text = client_message(message.to_string());
        text.push('\n');
        Response::with_body(
            status,
            "text/plain; charset=utf-8",
            Body::from_vec(text.into_bytes()),
        )
    }

    /// Every header value made safe to send ([`safe_header_value`]): the last step of
    /// [`crate::Engine::handle`], so no path through the engine can hand a host a value
    /// that splits its response.
    pub(crate) fn sanitize_headers(&mut self) {
        for (_, v) in &mut self.headers {
            if !is_safe_header_value(v) || v.len() > MAX_MESSAGE_CHARS * 4 {
                *v = safe_header_value(v);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_of_an_owned_chunk_shares_its_bytes() {
        let chunk = Chunk::from_vec(vec![7; 512 * 1024]);
        let at = chunk.as_bytes().as_ptr();
        let clone = chunk.clone();
        assert_eq!(clone.as_bytes().as_ptr(), at, "the clone copied the buffer");
        // While a clone lives the buffer cannot be handed over; after, it moves out.
        let chunk = chunk.try_into_vec().unwrap_err();
        drop(clone);
        let v = chunk.try_into_vec().unwrap();
        assert_eq!(v.as_ptr(), at, "the buffer was copied out");
    }

    #[test]
    fn into_vec_copies_only_what_it_cannot_move() {
        let shared = Chunk::from_vec(b"abc".to_vec());
        let keep = shared.clone();
        assert_eq!(shared.into_vec(), b"abc");
        assert_eq!(keep.as_bytes(), b"abc");
        assert_eq!(Chunk::from_static(b"xyz").into_vec(), b"xyz");
    }
}
