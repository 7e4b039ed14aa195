//! `sia_handle`: one HTTP request in, one response out, with every HTTP decision
//! (status, `Content-Type`, `WWW-Authenticate`, multipart framing) made by the engine.
//! The body is a list of chunks the host writes as they are: frames and files are views
//! into the engine's buffers or mappings, never copied, and stay valid until the
//! response is freed.

use std::cell::RefCell;
use std::ffi::{CString, c_char};

use crate::engine::{engine_of, sia_engine};
use crate::error::*;

/// A header field. In requests, `name`/`value` point to `name_len`/`value_len` bytes of
/// UTF-8 (no NUL needed). In responses (`sia_response_header`), both are also
/// NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sia_header {
    /// The field name (case-insensitive).
    pub name: *const c_char,
    /// Length of `name` in bytes.
    pub name_len: usize,
    /// The field value.
    pub value: *const c_char,
    /// Length of `value` in bytes.
    pub value_len: usize,
}

/// An HTTP request as the host received it.
#[repr(C)]
pub struct sia_request {
    /// `"GET"` or `"HEAD"` (others are answered 405). NUL-terminated.
    pub method: *const c_char,
    /// The path as sent, still percent-encoded, without the query (`"/fhir/ImagingStudy"`).
    /// NUL-terminated.
    pub path: *const c_char,
    /// The query string without `?`, still percent-encoded; NULL or `""` for none.
    pub query: *const c_char,
    /// `header_count` header fields (NULL when `header_count` is 0).
    pub headers: *const sia_header,
    /// Number of header fields.
    pub header_count: usize,
}

/// A byte view: `len` bytes at `data`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sia_bytes {
    /// The first byte (never NULL when `len` > 0).
    pub data: *const u8,
    /// Length in bytes.
    pub len: usize,
}

/// A response (opaque): status, header fields and body chunks, owned until
/// `sia_response_free`.
///
/// Thread safety: a `const sia_response *` may be read from several threads at once;
/// freeing needs exclusive access. A response does not depend on its engine staying
/// open: it owns (shares) the mappings and buffers its chunks point into.
pub struct sia_response {
    status: u16,
    /// Every header name and value, each followed by a NUL, in one buffer (one
    /// allocation per response, not two per field).
    header_text: Vec<u8>,
    /// (name start, name length, value start, value length) in `header_text`.
    headers: Vec<(usize, usize, usize, usize)>,
    chunks: Vec<sia::Chunk>,
    body_len: u64,
    detail: Option<CString>,
}

/// Most header fields in one request: more is a caller bug, refused before reading.
const MAX_HEADERS: usize = 1024;

/// Builds the engine's request from the C one.
///
/// # Safety
/// `req` points to a valid `sia_request` (see `sia_handle`).
pub(crate) unsafe fn request_from(req: &sia_request) -> Result<sia::Request, Failure> {
    let mut into = sia::Request::default();
    // SAFETY: as this function's contract.
    unsafe { fill_request(req, &mut into) }?;
    Ok(into)
}

/// Writes the C request into `into`, reusing its strings' buffers: a thread that
/// answers request after request allocates nothing here once its buffers have grown to
/// its usual requests (`sia_handle`'s budget is 1 µs over the engine, and an
/// allocation costs tens of nanoseconds). On failure `into` holds a partial request.
///
/// # Safety
/// `req` points to a valid `sia_request` (see `sia_handle`).
pub(crate) unsafe fn fill_request(
    req: &sia_request,
    into: &mut sia::Request,
) -> Result<(), Failure> {
    // SAFETY (all three): the caller promises NUL-terminated strings or NULL.
    let method = unsafe { c_str(req.method, "request.method") }?;
    let path = unsafe { c_str(req.path, "request.path") }?;
    let query = unsafe { opt_c_str(req.query, "request.query") }?.unwrap_or("");
    if req.header_count > MAX_HEADERS {
        return Err(Failure::new(
            SIA_ERR_INVALID_ARGUMENT,
            format!(
                "request.header_count {} is more than {MAX_HEADERS}",
                req.header_count
            ),
        ));
    }
    let headers: &[sia_header] = if req.header_count == 0 {
        &[]
    } else if req.headers.is_null() {
        return Err(Failure::new(
            SIA_ERR_NULL_ARGUMENT,
            "request.headers is NULL with header_count > 0",
        ));
    } else {
        // SAFETY: non-NULL, count bounded, and the caller promises that many headers.
        unsafe { std::slice::from_raw_parts(req.headers, req.header_count) }
    };
    set(&mut into.method, method);
    set(&mut into.path, path);
    set(&mut into.query, query);
    into.introspection = None;
    into.headers.truncate(headers.len());
    for (i, h) in headers.iter().enumerate() {
        // The field's name in the message is made only when it is needed.
        let at = |f: Failure| Failure::new(f.status, format!("headers[{i}].{}", f.message));
        // SAFETY: each header's pointers and lengths are valid by contract.
        let name = unsafe { c_text(h.name, h.name_len, "name") }.map_err(at)?;
        let value = unsafe { c_text(h.value, h.value_len, "value") }.map_err(at)?;
        match into.headers.get_mut(i) {
            Some((n, v)) => {
                set(n, name);
                set(v, value);
            }
            None => into.headers.push((name.to_owned(), value.to_owned())),
        }
    }
    Ok(())
}

/// Replaces `s` with `with`, in its own buffer when that is large enough.
fn set(s: &mut String, with: &str) {
    s.clear();
    s.push_str(with);
}

/// Above this many bytes kept in a thread's reused request (long header values, many
/// headers), the buffers are dropped after the call instead of kept for the next.
const KEEP_REQUEST_BYTES: usize = 16 * 1024;

thread_local! {
    /// The request buffers `sia_handle` reuses on this thread.
    static REQUEST: RefCell<sia::Request> = RefCell::default();
}

/// Runs `f` with this thread's reused request buffers (fresh ones if they are in use,
/// which only a re-entrant call could cause), then drops them if they grew too large.
fn with_request_buffers<T>(f: impl FnOnce(&mut sia::Request) -> T) -> T {
    REQUEST.with(|cell| match cell.try_borrow_mut() {
        Ok(mut req) => {
            let out = f(&mut req);
            let kept = req.method.capacity()
                + req.path.capacity()
                + req.query.capacity()
                + req
                    .headers
                    .iter()
                    .map(|(n, v)| n.capacity() + v.capacity() + 48)
                    .sum::<usize>();
            if kept > KEEP_REQUEST_BYTES {
                *req = sia::Request::default();
            }
            out
        }
        Err(_) => f(&mut sia::Request::default()),
    })
}

/// Keeps a string that may hold NUL as a C string (a NUL would truncate it in C, so it
/// becomes U+FFFD; the engine never writes one into a header).
fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

/// Appends `s` and a NUL to `buf` (a NUL inside `s` becomes U+FFFD: it would end the
/// string in C); returns its (start, length).
fn push_c(buf: &mut Vec<u8>, s: &str) -> (usize, usize) {
    let start = buf.len();
    if s.contains('\0') {
        buf.extend_from_slice(s.replace('\0', "\u{FFFD}").as_bytes());
    } else {
        buf.extend_from_slice(s.as_bytes());
    }
    let len = buf.len() - start;
    buf.push(0);
    (start, len)
}

/// Answers one request: writes `*out` with the engine's response, whatever its status
/// (a 404 or 401 is a successful call; read `sia_response_status`).
///
/// Errors (no response): `SIA_ERR_NULL_ARGUMENT`, `SIA_ERR_INVALID_UTF8`,
/// `SIA_ERR_INVALID_ARGUMENT` (more than 1024 headers), `SIA_ERR_CLOSED`.
/// Thread safety: any thread, concurrently with every other engine call.
/// Lifetime: `request` and what it points to are read only during the call.
///
/// # Safety
/// `request` is NULL or points to a valid `sia_request` whose pointers are NULL or valid
/// for the lengths given; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_handle(
    engine: *const sia_engine,
    request: *const sia_request,
    out: *mut *mut sia_response,
) -> sia_status {
    boundary(|| {
        check_out(out, "out")?;
        let engine = engine_of(engine)?;
        // SAFETY: NULL or a valid request by contract.
        let req = unsafe { request.as_ref() }
            .ok_or_else(|| Failure::new(SIA_ERR_NULL_ARGUMENT, "request is NULL"))?;
        let resp = with_request_buffers(|into| {
            // SAFETY: as the function's contract.
            unsafe { fill_request(req, into) }?;
            Ok::<_, Failure>(engine.handle(into))
        })?;
        let body_len = resp.body.len() as u64;
        let detail = resp.detail().map(c_string);
        let mut header_text = Vec::with_capacity(
            resp.headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 2)
                .sum(),
        );
        let mut headers = Vec::with_capacity(resp.headers.len());
        for (n, v) in &resp.headers {
            let name = push_c(&mut header_text, n);
            let value = push_c(&mut header_text, v);
            headers.push((name.0, name.1, value.0, value.1));
        }
        let response = sia_response {
            status: resp.status,
            header_text,
            headers,
            chunks: resp.body.into_chunks(),
            body_len,
            detail,
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, Box::into_raw(Box::new(response))) };
        Ok(())
    })
}

/// Borrows a response argument.
///
/// # Safety
/// `p` is NULL or a live response.
unsafe fn response_ref<'a>(p: *const sia_response) -> Option<&'a sia_response> {
    // SAFETY: non-NULL responses come from `sia_handle` and live until freed.
    unsafe { p.as_ref() }
}

/// The HTTP status code (200, 404, ...); 0 when `response` is NULL.
///
/// # Safety
/// `response` is NULL or a live response.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_response_status(response: *const sia_response) -> u16 {
    // SAFETY: as the function's contract.
    infallible(0, || {
        unsafe { response_ref(response) }.map_or(0, |r| r.status)
    })
}

/// The number of header fields (`Content-Type` and `Content-Length` included); 0 when
/// `response` is NULL.
///
/// # Safety
/// `response` is NULL or a live response.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_response_header_count(response: *const sia_response) -> usize {
    // SAFETY: as the function's contract.
    infallible(0, || {
        unsafe { response_ref(response) }.map_or(0, |r| r.headers.len())
    })
}

/// Header field `index` (0-based, in the engine's order; a name may repeat). Writes
/// `*out` with NUL-terminated name and value that stay valid until the response is
/// freed.
///
/// Errors: `SIA_ERR_NULL_ARGUMENT`, `SIA_ERR_INVALID_ARGUMENT` (index out of range).
///
/// # Safety
/// `response` is NULL or a live response; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_response_header(
    response: *const sia_response,
    index: usize,
    out: *mut sia_header,
) -> sia_status {
    boundary(|| {
        check_out(out, "out")?;
        // SAFETY: as the function's contract.
        let r = unsafe { response_ref(response) }
            .ok_or_else(|| Failure::new(SIA_ERR_NULL_ARGUMENT, "response is NULL"))?;
        let &(ns, nl, vs, vl) = r.headers.get(index).ok_or_else(|| {
            Failure::new(
                SIA_ERR_INVALID_ARGUMENT,
                format!("header {index} of {}", r.headers.len()),
            )
        })?;
        let text = r.header_text.as_ptr();
        // The offsets were made by `push_c` within `header_text`, each followed by NUL.
        let h = sia_header {
            name: text.wrapping_add(ns).cast(),
            name_len: nl,
            value: text.wrapping_add(vs).cast(),
            value_len: vl,
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, h) };
        Ok(())
    })
}

/// The number of body chunks (0 for an empty body or a `HEAD` request, or when
/// `response` is NULL). Chunks are never empty.
///
/// # Safety
/// `response` is NULL or a live response.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_response_chunk_count(response: *const sia_response) -> usize {
    // SAFETY: as the function's contract.
    infallible(0, || {
        unsafe { response_ref(response) }.map_or(0, |r| r.chunks.len())
    })
}

/// Body chunk `index` (0-based) as a view into the engine's buffer or file mapping,
/// without a copy. Writes `*out`; the bytes stay valid and unchanged until the
/// response is freed (even after the engine is closed). Write the chunks in order for
/// the body.
///
/// Errors: `SIA_ERR_NULL_ARGUMENT`, `SIA_ERR_INVALID_ARGUMENT` (index out of range).
///
/// # Safety
/// `response` is NULL or a live response; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_response_chunk(
    response: *const sia_response,
    index: usize,
    out: *mut sia_bytes,
) -> sia_status {
    boundary(|| {
        check_out(out, "out")?;
        // SAFETY: as the function's contract.
        let r = unsafe { response_ref(response) }
            .ok_or_else(|| Failure::new(SIA_ERR_NULL_ARGUMENT, "response is NULL"))?;
        let c = r.chunks.get(index).ok_or_else(|| {
            Failure::new(
                SIA_ERR_INVALID_ARGUMENT,
                format!("chunk {index} of {}", r.chunks.len()),
            )
        })?;
        let b = c.as_bytes();
        // SAFETY: checked non-NULL above. The chunk owns (an Arc of) what it points into,
        // so the view lives as long as the response.
        unsafe {
            write_out(
                out,
                sia_bytes {
                    data: b.as_ptr(),
                    len: b.len(),
                },
            )
        };
        Ok(())
    })
}

/// The body's total length in bytes (the sum of the chunks; `Content-Length` for a
/// `GET`); 0 when `response` is NULL.
///
/// # Safety
/// `response` is NULL or a live response.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_response_body_length(response: *const sia_response) -> u64 {
    // SAFETY: as the function's contract.
    infallible(0, || {
        unsafe { response_ref(response) }.map_or(0, |r| r.body_len)
    })
}

/// What went wrong, for the host's log only, when the engine knows more than it tells
/// the client (a file path, an index error); NULL when there is nothing to add. Never
/// send it to the client. Lifetime: until the response is freed.
///
/// # Safety
/// `response` is NULL or a live response.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_response_detail(response: *const sia_response) -> *const c_char {
    // SAFETY: as the function's contract.
    infallible(std::ptr::null(), || {
        unsafe { response_ref(response) }
            .and_then(|r| r.detail.as_ref())
            .map_or(std::ptr::null(), |d| d.as_ptr())
    })
}

/// Frees a response and every view into it; NULL is a no-op.
///
/// Thread safety: no other thread may use `response` during or after the call.
///
/// # Safety
/// `response` is NULL or a live response not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_response_free(response: *mut sia_response) {
    infallible((), || {
        if !response.is_null() {
            // SAFETY: made by Box::into_raw in `sia_handle`, freed once by contract.
            drop(unsafe { Box::from_raw(response) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &'static [u8], value: &'static [u8]) -> sia_header {
        sia_header {
            name: name.as_ptr().cast(),
            name_len: name.len(),
            value: value.as_ptr().cast(),
            value_len: value.len(),
        }
    }

    fn request(method: &'static [u8], path: &'static [u8], headers: &[sia_header]) -> sia_request {
        sia_request {
            method: method.as_ptr().cast(),
            path: path.as_ptr().cast(),
            query: std::ptr::null(),
            headers: headers.as_ptr(),
            header_count: headers.len(),
        }
    }

    #[test]
    fn a_reused_request_holds_exactly_the_last_one() {
        let mut into = sia::Request::default();
        let two = [
            header(b"Accept", b"*/*"),
            header(b"Authorization", b"Bearer x"),
        ];
        // SAFETY (both): the requests point at static NUL-terminated strings and headers.
        unsafe { fill_request(&request(b"GET\0", b"/fhir/metadata\0", &two), &mut into) }.unwrap();
        assert_eq!(into.headers.len(), 2);
        let one = [header(b"X", b"")];
        unsafe { fill_request(&request(b"HEAD\0", b"/a\0", &one), &mut into) }.unwrap();
        assert_eq!(
            (
                into.method.as_str(),
                into.path.as_str(),
                into.query.as_str()
            ),
            ("HEAD", "/a", "")
        );
        assert_eq!(into.headers, vec![("X".to_string(), String::new())]);
        // The same as a fresh conversion.
        let fresh = unsafe { request_from(&request(b"HEAD\0", b"/a\0", &one)) }.unwrap();
        assert_eq!(
            (fresh.method, fresh.path, fresh.headers),
            (into.method, into.path, into.headers)
        );
    }

    #[test]
    fn a_bad_header_is_named_in_the_message() {
        let bad = [header(b"Accept", b"*/*"), header(b"N", b"\xff")];
        let mut into = sia::Request::default();
        // SAFETY: static strings and headers; the invalid byte is the test.
        let err = unsafe { fill_request(&request(b"GET\0", b"/\0", &bad), &mut into) }.unwrap_err();
        assert_eq!(err.status, SIA_ERR_INVALID_UTF8);
        assert!(
            err.message.starts_with("headers[1].value is not UTF-8"),
            "{}",
            err.message
        );
        let null = [sia_header {
            name: std::ptr::null(),
            name_len: 3,
            value: b"v".as_ptr().cast(),
            value_len: 1,
        }];
        let err =
            unsafe { fill_request(&request(b"GET\0", b"/\0", &null), &mut into) }.unwrap_err();
        assert_eq!(err.status, SIA_ERR_NULL_ARGUMENT);
        assert_eq!(err.message, "headers[0].name is NULL with length 3");
    }

    #[test]
    fn large_buffers_are_not_kept() {
        static LONG: [u8; 20_000] = [b'a'; 20_000];
        let big = [sia_header {
            name: b"X".as_ptr().cast(),
            name_len: 1,
            value: LONG.as_ptr().cast(),
            value_len: LONG.len(),
        }];
        let r = request(b"GET\0", b"/\0", &big);
        // SAFETY: static strings and headers.
        with_request_buffers(|into| unsafe { fill_request(&r, into) }).unwrap();
        let kept = REQUEST.with(|c| {
            c.borrow()
                .headers
                .iter()
                .map(|(_, v)| v.capacity())
                .sum::<usize>()
        });
        assert_eq!(
            kept, 0,
            "a 20 KB header value is not kept for the next request"
        );
        let small = [header(b"Accept", b"*/*")];
        let r = request(b"GET\0", b"/\0", &small);
        with_request_buffers(|into| unsafe { fill_request(&r, into) }).unwrap();
        assert_eq!(
            REQUEST.with(|c| c.borrow().headers.len()),
            1,
            "small ones are"
        );
    }
}
