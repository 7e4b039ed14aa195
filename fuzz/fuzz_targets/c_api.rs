//! The C entry points of libsia (`sia-ffi-abi`) called through Rust with arbitrary
//! arguments, as a careless C caller would: arbitrary bytes as method, path, query and
//! header fields (invalid UTF-8 included), NULL in every pointer position, lengths past
//! any object, out-of-range indices, closed engine handles, arbitrary configuration
//! strings and status codes, and index runs cancelled by the callback at any point.
//!
//! Oracles: never a panic or crash; every status is one of the documented codes; an
//! out-parameter is untouched unless the call returns SIA_OK; a response's chunks add
//! up to its body length and to its Content-Length; a closed handle is SIA_ERR_CLOSED;
//! a cancelled index run is SIA_ERR_CANCELLED and a re-run completes it.
//!
//! Input: byte 0 picks the operation (low 3 bits) and a variant (high bits); the rest,
//! split at `\n`, gives the string arguments. The typed calls (authorize, frames,
//! metadata, search) get arbitrary credentials, UIDs, frame numbers and parameters.
#![no_main]

use std::ffi::{CString, c_char, c_void};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sia_ffi_abi::*;

struct Fixture {
    _dir: tempfile::TempDir,
    demo: CString,
    engine: *mut sia_engine,
    closed: *mut sia_engine,
    dir: std::path::PathBuf,
}

// SAFETY: the engine handles are identifiers that libsia documents as usable from any
// thread; the fixture is only read after it is made.
unsafe impl Send for Fixture {}
unsafe impl Sync for Fixture {}

fn open(db: &std::path::Path) -> *mut sia_engine {
    let db = CString::new(db.to_str().unwrap()).unwrap();
    let mut config = std::ptr::null_mut();
    let mut engine = std::ptr::null_mut();
    // SAFETY: valid strings and out-pointers.
    unsafe {
        assert_eq!(sia_config_new(db.as_ptr(), &mut config), SIA_OK);
        assert_eq!(sia_engine_open(config, &mut engine), SIA_OK);
        sia_config_free(config);
    }
    engine
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        sia::write_demo(&data).expect("demo");
        let demo = CString::new(data.to_str().unwrap()).unwrap();
        let engine = open(&dir.path().join("sia.db"));
        let paths = [demo.as_ptr()];
        let mut report = sia_index_report::default();
        // SAFETY: valid arguments.
        let status = unsafe {
            sia_index(
                engine,
                paths.as_ptr(),
                1,
                None,
                std::ptr::null_mut(),
                &mut report,
            )
        };
        assert_eq!(status, SIA_OK);
        let closed = open(&dir.path().join("closed.db"));
        sia_engine_close(closed);
        Fixture {
            dir: dir.path().to_path_buf(),
            _dir: dir,
            demo,
            engine,
            closed,
        }
    })
}

const STATUSES: std::ops::RangeInclusive<sia_status> = SIA_OK..=SIA_ERR_PANIC;

fn check_status(s: sia_status) -> sia_status {
    assert!(STATUSES.contains(&s), "undocumented status {s}");
    assert_ne!(s, SIA_ERR_PANIC, "the library panicked: {}", last_error());
    if s != SIA_OK {
        assert!(!last_error().is_empty(), "status {s} without a message");
    }
    s
}

fn last_error() -> String {
    // SAFETY: never NULL, NUL-terminated, valid until the next failing call here.
    unsafe { std::ffi::CStr::from_ptr(sia_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

/// A C string of `bytes` up to its first NUL (as C would see it).
fn c(bytes: &[u8]) -> CString {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).unwrap()
}

const SENTINEL: *mut sia_response = 0x10 as *mut sia_response;

/// Answers a request and checks the response's invariants.
fn handle(engine: *const sia_engine, req: &sia_request, indices: &[u8]) {
    let mut out = SENTINEL;
    // SAFETY: the request's pointers are valid for their lengths.
    let s = check_status(unsafe { sia_handle(engine, req, &mut out) });
    if s != SIA_OK {
        assert_eq!(out, SENTINEL, "out-parameter written on failure");
        return;
    }
    // SAFETY: `out` is a live response until freed below.
    unsafe {
        let n = sia_response_chunk_count(out);
        let mut total = 0u64;
        for i in 0..n {
            let mut b = sia_bytes {
                data: std::ptr::null(),
                len: 0,
            };
            assert_eq!(check_status(sia_response_chunk(out, i, &mut b)), SIA_OK);
            assert!(b.len > 0 && !b.data.is_null());
            total += b.len as u64;
        }
        assert_eq!(total, sia_response_body_length(out));
        let mut content_length = None;
        for i in 0..sia_response_header_count(out) {
            let mut h = std::mem::zeroed::<sia_header>();
            assert_eq!(check_status(sia_response_header(out, i, &mut h)), SIA_OK);
            let name = std::slice::from_raw_parts(h.name.cast::<u8>(), h.name_len);
            if name.eq_ignore_ascii_case(b"content-length") {
                let v = std::slice::from_raw_parts(h.value.cast::<u8>(), h.value_len);
                content_length = std::str::from_utf8(v)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok());
            }
        }
        let method = std::ffi::CStr::from_ptr(req.method).to_bytes();
        if method == b"GET" {
            assert_eq!(
                content_length,
                Some(total),
                "Content-Length differs from the body"
            );
        }
        for &i in indices {
            let mut b = sia_bytes {
                data: std::ptr::null(),
                len: 0,
            };
            let s = check_status(sia_response_chunk(out, i as usize, &mut b));
            assert_eq!(s == SIA_OK, (i as usize) < sia_response_chunk_count(out));
            let mut h = std::mem::zeroed::<sia_header>();
            let s = check_status(sia_response_header(out, i as usize, &mut h));
            assert_eq!(s == SIA_OK, (i as usize) < sia_response_header_count(out));
        }
        sia_response_free(out);
    }
}

unsafe extern "C" fn cancel_after(_: *const sia_index_progress, user: *mut c_void) -> i32 {
    // SAFETY: `user` is the counter the fuzz target passes.
    let left = unsafe { &mut *user.cast::<i32>() };
    *left -= 1;
    (*left < 0) as i32
}

fuzz_target!(|data: &[u8]| {
    let Some((&op, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let fields: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(b"");
    let variant = op >> 3;
    match op & 7 {
        // A request of arbitrary bytes, header fields `name:value` from field 3 on.
        0 | 1 => {
            let (method, path, query) = (c(field(0)), c(field(1)), c(field(2)));
            let raw: Vec<(&[u8], &[u8])> = fields
                .iter()
                .skip(3)
                .map(|l| {
                    let at = l.iter().position(|&b| b == b':').unwrap_or(l.len());
                    (&l[..at], l.get(at + 1..).unwrap_or(b""))
                })
                .collect();
            let headers: Vec<sia_header> = raw
                .iter()
                .map(|(n, v)| sia_header {
                    name: n.as_ptr().cast(),
                    name_len: n.len(),
                    value: v.as_ptr().cast(),
                    value_len: v.len(),
                })
                .collect();
            let req = sia_request {
                method: method.as_ptr(),
                path: path.as_ptr(),
                query: if variant & 1 == 1 {
                    std::ptr::null()
                } else {
                    query.as_ptr()
                },
                headers: headers.as_ptr(),
                header_count: headers.len(),
            };
            handle(f.engine, &req, field(2));
        }
        // NULL in each position, lengths past any object, closed and NULL engines.
        2 => {
            // A valid path: the argument under test is the only bad one.
            let path = c"/fhir/metadata";
            let big = sia_header {
                name: c"X".as_ptr(),
                name_len: usize::MAX - variant as usize,
                value: c"v".as_ptr(),
                value_len: 1,
            };
            let mut req = sia_request {
                method: c"GET".as_ptr(),
                path: path.as_ptr(),
                query: std::ptr::null(),
                headers: std::ptr::null(),
                header_count: 0,
            };
            let mut engine: *const sia_engine = f.engine;
            let want = match variant % 6 {
                0 => {
                    req.method = std::ptr::null();
                    SIA_ERR_NULL_ARGUMENT
                }
                1 => {
                    req.path = std::ptr::null();
                    SIA_ERR_NULL_ARGUMENT
                }
                2 => {
                    req.header_count = 1 + variant as usize;
                    SIA_ERR_NULL_ARGUMENT
                }
                3 => {
                    req.headers = &big;
                    req.header_count = 1;
                    SIA_ERR_INVALID_ARGUMENT
                }
                4 => {
                    engine = f.closed;
                    SIA_ERR_CLOSED
                }
                _ => {
                    engine = std::ptr::null();
                    SIA_ERR_NULL_ARGUMENT
                }
            };
            let mut out = SENTINEL;
            // SAFETY: every pointer is NULL or valid; lengths past isize::MAX are refused
            // before any read.
            let s = check_status(unsafe { sia_handle(engine, &req, &mut out) });
            assert_eq!(s, want, "{}", last_error());
            assert_eq!(out, SENTINEL);
            // SAFETY: a NULL request and a NULL out-parameter are refused.
            unsafe {
                assert_eq!(
                    sia_handle(f.engine, std::ptr::null(), &mut out),
                    SIA_ERR_NULL_ARGUMENT
                );
                assert_eq!(
                    sia_handle(f.engine, &req, std::ptr::null_mut()),
                    SIA_ERR_NULL_ARGUMENT
                );
            }
        }
        // Configuration strings.
        3 => {
            let (db, url, name) = (c(field(0)), c(field(1)), field(2));
            let mut config = std::ptr::null_mut();
            // SAFETY: valid C strings; the config lives until freed here.
            unsafe {
                if check_status(sia_config_new(db.as_ptr(), &mut config)) != SIA_OK {
                    return;
                }
                let s = check_status(sia_config_set_base_url(config, url.as_ptr()));
                let url = url.to_bytes();
                let plausible = url.starts_with(b"http://") || url.starts_with(b"https://");
                if !plausible {
                    assert_ne!(s, SIA_OK);
                }
                check_status(sia_config_set_db(config, db.as_ptr()));
                assert!(sia_config_listen(config).is_null());
                sia_config_free(config);
                // A file name inside the fixture's folder (no separators: nothing outside).
                let safe: Vec<u8> = name
                    .iter()
                    .copied()
                    .filter(|&b| b != b'/' && b != 0)
                    .collect();
                let file = f.dir.join(String::from_utf8_lossy(&safe).as_ref());
                let file = c(file.as_os_str().as_encoded_bytes());
                let mut out = std::ptr::null_mut();
                let s = check_status(sia_config_from_file(file.as_ptr(), &mut out));
                if s == SIA_OK {
                    sia_config_free(out);
                } else {
                    assert!(out.is_null());
                }
            }
        }
        // An index run on a scratch index, cancelled after `variant` files; a re-run
        // completes it.
        4 => {
            let scratch = tempfile::tempdir().expect("scratch");
            let engine = open(&scratch.path().join("s.db"));
            let paths = [f.demo.as_ptr()];
            let mut left: i32 = variant as i32;
            let mut report = sia_index_report::default();
            report.indexed = 7777;
            // SAFETY: valid arguments; the callback's user data is `left`.
            let s = check_status(unsafe {
                sia_index(
                    engine,
                    paths.as_ptr(),
                    1,
                    Some(cancel_after),
                    (&raw mut left).cast(),
                    &mut report,
                )
            });
            assert!(s == SIA_OK || s == SIA_ERR_CANCELLED, "{}", last_error());
            if s == SIA_ERR_CANCELLED {
                assert_eq!(report.indexed, 7777, "report written on failure");
            }
            let mut second = sia_index_report::default();
            // SAFETY: valid arguments.
            let s = unsafe {
                sia_index(
                    engine,
                    paths.as_ptr(),
                    1,
                    None,
                    std::ptr::null_mut(),
                    &mut second,
                )
            };
            assert_eq!(s, SIA_OK, "{}", last_error());
            assert!(second.indexed + second.unchanged >= 40);
            sia_engine_close(engine);
            // Bad arguments.
            let nul: [*const c_char; 1] = [std::ptr::null()];
            let bad = c(field(0));
            let bad_paths = [bad.as_ptr()];
            // SAFETY: NULL entries and counts are refused before use.
            unsafe {
                assert_eq!(
                    sia_index(
                        f.engine,
                        nul.as_ptr(),
                        1,
                        None,
                        std::ptr::null_mut(),
                        &mut report
                    ),
                    SIA_ERR_NULL_ARGUMENT
                );
                assert_eq!(
                    sia_index(
                        f.engine,
                        paths.as_ptr(),
                        0,
                        None,
                        std::ptr::null_mut(),
                        &mut report
                    ),
                    SIA_ERR_INVALID_ARGUMENT
                );
                assert_eq!(
                    sia_index(
                        f.closed,
                        bad_paths.as_ptr(),
                        1,
                        None,
                        std::ptr::null_mut(),
                        &mut report
                    ),
                    SIA_ERR_CLOSED
                );
            }
        }
        // The typed calls with arbitrary credentials, UIDs, frame numbers, Accept values
        // and search parameters (open engine: the local grant unless denied).
        5 => {
            let (authorization, study, series, sop, accept) = (
                c(field(0)),
                c(field(1)),
                c(field(2)),
                c(field(3)),
                c(field(4)),
            );
            let mut decision = std::ptr::null_mut();
            // SAFETY: valid C strings or NULL; every object made is freed here.
            unsafe {
                let auth_ptr = if variant & 1 == 1 {
                    authorization.as_ptr()
                } else {
                    std::ptr::null()
                };
                let study_ptr = if variant & 2 == 2 {
                    study.as_ptr()
                } else {
                    std::ptr::null()
                };
                let s = check_status(sia_authorize(f.engine, auth_ptr, study_ptr, &mut decision));
                if s != SIA_OK {
                    assert!(decision.is_null());
                    return;
                }
                // No issuers: every decision allows.
                assert!(sia_decision_allowed(decision));
                assert_eq!(sia_decision_http_status(decision), 200);
                let numbers: Vec<u32> = field(5)
                    .chunks(2)
                    .map(|b| u32::from(b[0]) | (u32::from(*b.get(1).unwrap_or(&0)) << 8))
                    .collect();
                let mut frames = std::ptr::null_mut();
                let s = check_status(sia_frames_get(
                    f.engine,
                    decision,
                    study.as_ptr(),
                    series.as_ptr(),
                    sop.as_ptr(),
                    numbers.as_ptr(),
                    numbers.len(),
                    accept.as_ptr(),
                    &mut frames,
                ));
                if s == SIA_OK {
                    let n = sia_frames_count(frames);
                    assert!(n >= 1 && n <= numbers.len());
                    for i in 0..=n {
                        let mut view = std::mem::zeroed::<sia_frame>();
                        let s = check_status(sia_frames_frame(frames, i, &mut view));
                        assert_eq!(s == SIA_OK, i < n);
                        if s == SIA_OK {
                            assert!(numbers.contains(&view.number));
                            assert!(view.len == 0 || !view.data.is_null());
                        }
                    }
                    sia_frames_free(frames);
                } else {
                    assert!(frames.is_null());
                }
                let (mut json, mut len) = (std::ptr::null_mut(), 0usize);
                let series_ptr = if variant & 4 == 4 {
                    series.as_ptr()
                } else {
                    std::ptr::null()
                };
                let sop_ptr = if variant & 8 == 8 {
                    sop.as_ptr()
                } else {
                    std::ptr::null()
                };
                if check_status(sia_metadata(
                    f.engine,
                    decision,
                    study.as_ptr(),
                    series_ptr,
                    sop_ptr,
                    &mut json,
                    &mut len,
                )) == SIA_OK
                {
                    assert_eq!(std::ffi::CStr::from_ptr(json).to_bytes().len(), len);
                    sia_string_free(json);
                }
                let names: Vec<CString> = fields.iter().skip(6).step_by(2).map(|b| c(b)).collect();
                let values: Vec<CString> = fields.iter().skip(7).step_by(2).map(|b| c(b)).collect();
                let params: Vec<sia_param> = names
                    .iter()
                    .zip(&values)
                    .map(|(n, v)| sia_param {
                        name: n.as_ptr(),
                        value: v.as_ptr(),
                    })
                    .collect();
                let (mut json, mut len) = (std::ptr::null_mut(), 0usize);
                if check_status(sia_search_imaging_studies(
                    f.engine,
                    decision,
                    params.as_ptr(),
                    params.len(),
                    &mut json,
                    &mut len,
                )) == SIA_OK
                {
                    let bundle = std::ffi::CStr::from_ptr(json).to_bytes();
                    assert_eq!(bundle.len(), len);
                    assert!(bundle.starts_with(b"{\"resourceType\":\"Bundle\""));
                    sia_string_free(json);
                }
                sia_decision_free(decision);
            }
        }
        // Status codes and accessors on NULL.
        _ => {
            let code = i32::from_le_bytes([
                field(0).first().copied().unwrap_or(0),
                variant,
                0,
                field(1).first().copied().unwrap_or(0),
            ]);
            // SAFETY: static strings; NULL responses are accepted.
            unsafe {
                assert!(!sia_status_str(code).is_null());
                assert!(!sia_last_error_message().is_null());
                assert_eq!(sia_response_status(std::ptr::null()), 0);
                assert_eq!(sia_response_chunk_count(std::ptr::null()), 0);
                sia_response_free(std::ptr::null_mut());
                sia_config_free(std::ptr::null_mut());
            }
            sia_engine_close(std::ptr::null_mut());
            sia_engine_close(f.closed);
        }
    }
});
