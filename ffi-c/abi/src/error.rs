//! Status codes, the thread-local last error message, the panic boundary every entry
//! point runs in, and the checked conversions of C arguments.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The result of a fallible call: `SIA_OK` (0) or one of the `SIA_ERR_*` codes. A plain
/// `int32_t` rather than a C enum, so that a value from a newer library is never
/// undefined behaviour in an older caller.
pub type sia_status = i32;

/// Success.
pub const SIA_OK: sia_status = 0;
/// A required pointer argument was NULL.
pub const SIA_ERR_NULL_ARGUMENT: sia_status = 1;
/// A string argument was not valid UTF-8.
pub const SIA_ERR_INVALID_UTF8: sia_status = 2;
/// An argument was invalid (an empty path list, a length past `PTRDIFF_MAX`, a bad
/// configuration value...).
pub const SIA_ERR_INVALID_ARGUMENT: sia_status = 3;
/// The engine handle is not open: closed already, or never returned by `sia_engine_open`.
pub const SIA_ERR_CLOSED: sia_status = 4;
/// The configuration could not be read or is invalid.
pub const SIA_ERR_CONFIG: sia_status = 5;
/// A file or folder could not be read or written.
pub const SIA_ERR_IO: sia_status = 6;
/// The SQLite index failed, or is not a sia index of a version this library reads.
pub const SIA_ERR_DATABASE: sia_status = 7;
/// What was asked for is not in the index.
pub const SIA_ERR_NOT_FOUND: sia_status = 8;
/// What was asked for was indexed but its file is gone or changed.
pub const SIA_ERR_GONE: sia_status = 9;
/// The credentials are missing or invalid (HTTP 401).
pub const SIA_ERR_UNAUTHORIZED: sia_status = 10;
/// The credentials do not reach what was asked for (HTTP 403).
pub const SIA_ERR_FORBIDDEN: sia_status = 11;
/// No representation matches the requested media type or transfer syntax (HTTP 406).
pub const SIA_ERR_NOT_ACCEPTABLE: sia_status = 12;
/// The progress callback asked to stop; the index stays consistent and a new run
/// completes the work.
pub const SIA_ERR_CANCELLED: sia_status = 13;
/// A service the engine needs is unavailable (HTTP 503).
pub const SIA_ERR_UNAVAILABLE: sia_status = 14;
/// An internal error of the engine; the message says more.
pub const SIA_ERR_INTERNAL: sia_status = 15;
/// A bug: the library panicked. The call had no effect beyond what the message says;
/// the engine stays usable.
pub const SIA_ERR_PANIC: sia_status = 16;

thread_local! {
    /// The message of the last failed call on this thread.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// The message of the last call on the calling thread that did not return `SIA_OK`
/// (`""` when none failed yet). Calls that succeed leave it unchanged.
///
/// Thread safety: any thread; each thread has its own message. Lifetime: the pointer is
/// valid until the next failing `sia_` call on the same thread or the thread's end;
/// copy it to keep it. Never free it. Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn sia_last_error_message() -> *const c_char {
    // The CString lives in this thread's storage and is replaced only by a later failing
    // call on this thread, which is the documented lifetime.
    LAST_ERROR.with(|m| m.borrow().as_ptr())
}

/// A static description of a status code (`"SIA_ERR_NOT_FOUND: not found"`); unknown
/// codes give `"unknown status"`. Takes an `int32_t` so that any value is safe.
///
/// Thread safety: any thread. Lifetime: static; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn sia_status_str(status: i32) -> *const c_char {
    let s: &'static str = match status {
        SIA_OK => "SIA_OK: success\0",
        SIA_ERR_NULL_ARGUMENT => "SIA_ERR_NULL_ARGUMENT: a required pointer was NULL\0",
        SIA_ERR_INVALID_UTF8 => "SIA_ERR_INVALID_UTF8: a string was not UTF-8\0",
        SIA_ERR_INVALID_ARGUMENT => "SIA_ERR_INVALID_ARGUMENT: invalid argument\0",
        SIA_ERR_CLOSED => "SIA_ERR_CLOSED: the engine handle is not open\0",
        SIA_ERR_CONFIG => "SIA_ERR_CONFIG: invalid configuration\0",
        SIA_ERR_IO => "SIA_ERR_IO: file input/output failed\0",
        SIA_ERR_DATABASE => "SIA_ERR_DATABASE: the index database failed\0",
        SIA_ERR_NOT_FOUND => "SIA_ERR_NOT_FOUND: not found\0",
        SIA_ERR_GONE => "SIA_ERR_GONE: the file is gone or changed\0",
        SIA_ERR_UNAUTHORIZED => "SIA_ERR_UNAUTHORIZED: missing or invalid credentials\0",
        SIA_ERR_FORBIDDEN => "SIA_ERR_FORBIDDEN: the credentials do not reach this\0",
        SIA_ERR_NOT_ACCEPTABLE => "SIA_ERR_NOT_ACCEPTABLE: no acceptable representation\0",
        SIA_ERR_CANCELLED => "SIA_ERR_CANCELLED: cancelled by the callback\0",
        SIA_ERR_UNAVAILABLE => "SIA_ERR_UNAVAILABLE: a needed service is unavailable\0",
        SIA_ERR_INTERNAL => "SIA_ERR_INTERNAL: internal error\0",
        SIA_ERR_PANIC => "SIA_ERR_PANIC: the library panicked (a bug)\0",
        _ => "unknown status\0",
    };
    s.as_ptr().cast()
}

/// A failed call: its status and message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: sia_status,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: sia_status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
}

impl From<sia::Error> for Failure {
    /// The status of the error's kind; the message, then what the engine tells only its
    /// host (a path, SQL): the C caller is the host, and the message goes to its log.
    fn from(e: sia::Error) -> Failure {
        let message = match e.detail() {
            Some(d) if d != e.message() => format!("{} ({d})", e.message()),
            _ => e.message().to_string(),
        };
        Failure::new(crate::typed::status_of(e.kind()), message)
    }
}

/// Records `message` as the calling thread's last error.
pub(crate) fn set_last_error(message: &str) {
    // A NUL inside a message would truncate it in C; replace it rather than lose it all.
    let c = CString::new(message.replace('\0', "\u{FFFD}")).unwrap_or_default();
    LAST_ERROR.with(|m| *m.borrow_mut() = c);
}

/// Runs one entry point: a failure becomes its status and the last error message, a
/// panic becomes `SIA_ERR_PANIC` (the panic never unwinds into C).
pub(crate) fn boundary(f: impl FnOnce() -> Result<(), Failure>) -> sia_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => SIA_OK,
        Ok(Err(failure)) => {
            set_last_error(&failure.message);
            failure.status
        }
        Err(panic) => {
            let what = (panic.downcast_ref::<&str>().copied())
                .or(panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a panic");
            set_last_error(&format!("internal error (a bug in sia): {what}"));
            SIA_ERR_PANIC
        }
    }
}

/// Runs an entry point that cannot report a status (a getter): a panic gives `default`.
pub(crate) fn infallible<T>(default: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(default)
}

/// A NUL-terminated UTF-8 string argument; `what` names it in the message.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid for `'a`.
pub(crate) unsafe fn c_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::new(
            SIA_ERR_NULL_ARGUMENT,
            format!("{what} is NULL"),
        ));
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string living for 'a.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|e| Failure::new(SIA_ERR_INVALID_UTF8, format!("{what} is not UTF-8: {e}")))
}

/// Like [`c_str`], but NULL is `None`.
///
/// # Safety
/// As [`c_str`].
pub(crate) unsafe fn opt_c_str<'a>(
    p: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, Failure> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: as this function's contract.
        unsafe { c_str(p, what) }.map(Some)
    }
}

/// A byte range argument (`data`, `len`): NULL is allowed only with length 0, and a
/// length past `isize::MAX` is refused before any slice is made.
///
/// # Safety
/// `data` is NULL or points to `len` readable bytes that stay valid for `'a`.
pub(crate) unsafe fn c_bytes<'a>(
    data: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(Failure::new(
            SIA_ERR_NULL_ARGUMENT,
            format!("{what} is NULL with length {len}"),
        ));
    }
    if len > isize::MAX as usize {
        return Err(Failure::new(
            SIA_ERR_INVALID_ARGUMENT,
            format!("{what}: length {len} is larger than any object"),
        ));
    }
    // SAFETY: non-NULL, len within isize::MAX, and the caller promises len readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// [`c_bytes`] as UTF-8 text.
///
/// # Safety
/// As [`c_bytes`].
pub(crate) unsafe fn c_text<'a>(
    data: *const c_char,
    len: usize,
    what: &str,
) -> Result<&'a str, Failure> {
    // SAFETY: as this function's contract.
    let bytes = unsafe { c_bytes(data.cast(), len, what) }?;
    std::str::from_utf8(bytes)
        .map_err(|e| Failure::new(SIA_ERR_INVALID_UTF8, format!("{what} is not UTF-8: {e}")))
}

/// Writes an out-parameter after checking it is not NULL (checked before any work by
/// [`check_out`], so a NULL out-parameter never costs an operation's side effects).
///
/// # Safety
/// `out` was checked by [`check_out`] and points to writable memory for a `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) {
    // SAFETY: the caller checked `out` is non-NULL and writable.
    unsafe { out.write(value) }
}

/// Fails when an out-parameter is NULL.
pub(crate) fn check_out<T>(out: *mut T, what: &str) -> Result<(), Failure> {
    if out.is_null() {
        Err(Failure::new(
            SIA_ERR_NULL_ARGUMENT,
            format!("{what} is NULL"),
        ))
    } else {
        Ok(())
    }
}
