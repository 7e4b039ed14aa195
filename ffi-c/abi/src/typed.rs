//! The engine's typed calls: the authorization decision (`sia_authorize` →
//! `sia_decision`), the FHIR ImagingStudy search, DICOM JSON metadata and frames as
//! pointer + length views. Each read takes the decision and answers exactly as
//! `sia_handle` answers the same caller (one implementation in the engine).

use std::ffi::{CString, c_char};

use crate::engine::{engine_of, sia_engine};
use crate::error::*;

/// The outcome of `sia_authorize` (opaque): allowed (a grant the typed reads take) or
/// denied (HTTP status, reason, `WWW-Authenticate` challenge). Freed by
/// `sia_decision_free`.
///
/// Thread safety: a `const sia_decision *` may be used by several threads at once (a
/// host may authorize once and read frames from many threads with the decision).
///
/// A kept decision is checked again by every read that takes it: after the token's
/// `exp` (plus its issuer's leeway) reads fail with `SIA_ERR_UNAUTHORIZED`; a study's
/// patient compartment is looked up again once the last check is over a second old, so
/// an unlinked patient, or a study indexed since under a UID the decision was asked for
/// before it existed, gives `SIA_ERR_FORBIDDEN` as a fresh `sia_authorize` would.
pub struct sia_decision {
    outcome: Result<sia::Grant, sia::Error>,
    reason: Option<CString>,
    challenge: Option<CString>,
}

impl sia_decision {
    fn new(outcome: Result<sia::Grant, sia::Error>) -> *mut sia_decision {
        let (reason, challenge) = match &outcome {
            Ok(_) => (None, None),
            Err(e) => (Some(c_string(e.message())), e.challenge().map(c_string)),
        };
        Box::into_raw(Box::new(sia_decision {
            outcome,
            reason,
            challenge,
        }))
    }
}

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

/// The status code of an engine error kind.
pub(crate) fn status_of(kind: sia::ErrorKind) -> sia_status {
    use sia::ErrorKind as K;
    match kind {
        K::NotFound => SIA_ERR_NOT_FOUND,
        K::Gone => SIA_ERR_GONE,
        K::InvalidInput | K::TooCostly | K::NotImplemented | K::InvalidDicom => {
            SIA_ERR_INVALID_ARGUMENT
        }
        K::Unauthorized => SIA_ERR_UNAUTHORIZED,
        K::Forbidden => SIA_ERR_FORBIDDEN,
        K::NotAcceptable => SIA_ERR_NOT_ACCEPTABLE,
        K::Unavailable => SIA_ERR_UNAVAILABLE,
        K::Cancelled => SIA_ERR_CANCELLED,
        K::Config => SIA_ERR_CONFIG,
        _ => SIA_ERR_INTERNAL,
    }
}

/// The grant of a decision argument, or the decision's own failure.
///
/// # Safety
/// `p` is NULL or a live decision.
unsafe fn grant_of<'a>(p: *const sia_decision) -> Result<&'a sia::Grant, Failure> {
    // SAFETY: non-NULL decisions come from `sia_decision::new` and live until freed.
    let d = unsafe { p.as_ref() }
        .ok_or_else(|| Failure::new(SIA_ERR_NULL_ARGUMENT, "decision is NULL"))?;
    d.outcome.as_ref().map_err(|e| Failure::from(e.clone()))
}

/// Decides whether the caller presenting `authorization` (the value of its HTTP
/// `Authorization` header, e.g. `"Bearer eyJ..."`; NULL for none) may read study
/// `study_uid`, or, when `study_uid` is NULL, search ImagingStudy (FHIR search and
/// QIDO-RS): the token verified, its SMART scopes evaluated, and the study's patient
/// compartment checked, exactly as `sia_handle` decides. Without configured issuers
/// everything is allowed.
///
/// A denial is a decision, not a failure: the call returns `SIA_OK` and `*out` says
/// `allowed == false` with the HTTP status (401 or 403), the reason and the
/// `WWW-Authenticate` challenge (RFC 6750 §3). Free `*out` with `sia_decision_free`.
/// Errors: `SIA_ERR_NULL_ARGUMENT`, `SIA_ERR_INVALID_UTF8`, `SIA_ERR_CLOSED`,
/// `SIA_ERR_INTERNAL` (the index failed while deciding).
/// Thread safety: any thread.
///
/// # Safety
/// `authorization` and `study_uid` are NULL or NUL-terminated; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_authorize(
    engine: *const sia_engine,
    authorization: *const c_char,
    study_uid: *const c_char,
    out: *mut *mut sia_decision,
) -> sia_status {
    boundary(|| {
        check_out(out, "out")?;
        let engine = engine_of(engine)?;
        // SAFETY: as the function's contract.
        let authorization = unsafe { opt_c_str(authorization, "authorization") }?;
        let study = unsafe { opt_c_str(study_uid, "study_uid") }?;
        let mut req = sia::Request::get("/");
        if let Some(a) = authorization {
            req = req.with_header("Authorization", a);
        }
        let credentials = sia::Credentials::from_request(&req);
        let access = match study {
            Some(uid) => sia::Access::study(uid),
            None => sia::Access::search(sia::ResourceKind::ImagingStudy),
        };
        let outcome = match engine.authorize(&credentials, &access) {
            Ok(grant) => Ok(grant),
            Err(e)
                if matches!(
                    e.kind(),
                    sia::ErrorKind::Unauthorized | sia::ErrorKind::Forbidden
                ) =>
            {
                Err(e)
            }
            Err(e) => return Err(Failure::from(e)),
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, sia_decision::new(outcome)) };
        Ok(())
    })
}

/// A decision that allows everything, for hosts without configured issuers that call
/// the typed reads directly (the local administrator, as `sia get` without a
/// configuration). Free with `sia_decision_free`.
///
/// It is not checked against the engine's issuers: on an engine with `[[issuers]]` it
/// still reads every study. Never derive it from a request; use `sia_authorize` for
/// anything a client asked for.
///
/// Errors: `SIA_ERR_NULL_ARGUMENT`. Thread safety: any thread.
///
/// # Safety
/// `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_decision_local(out: *mut *mut sia_decision) -> sia_status {
    boundary(|| {
        check_out(out, "out")?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, sia_decision::new(Ok(sia::Grant::local()))) };
        Ok(())
    })
}

/// Whether the decision allows the access (false when `decision` is NULL).
///
/// # Safety
/// `decision` is NULL or a live decision.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_decision_allowed(decision: *const sia_decision) -> bool {
    // SAFETY: as the function's contract.
    infallible(false, || {
        unsafe { decision.as_ref() }.is_some_and(|d| d.outcome.is_ok())
    })
}

/// The HTTP status of the decision: 200 when allowed, 401 (no or invalid credentials)
/// or 403 (scopes, patient compartment) when denied; 0 when `decision` is NULL.
///
/// # Safety
/// `decision` is NULL or a live decision.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_decision_http_status(decision: *const sia_decision) -> u16 {
    // SAFETY: as the function's contract.
    infallible(0, || match unsafe { decision.as_ref() } {
        Some(d) => d.outcome.as_ref().map_or_else(|e| e.status(), |_| 200),
        None => 0,
    })
}

/// Why the access is denied (for the client: never a path or a token), or NULL when
/// allowed. Lifetime: until the decision is freed.
///
/// # Safety
/// `decision` is NULL or a live decision.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_decision_reason(decision: *const sia_decision) -> *const c_char {
    // SAFETY: as the function's contract.
    infallible(std::ptr::null(), || {
        unsafe { decision.as_ref() }
            .and_then(|d| d.reason.as_ref())
            .map_or(std::ptr::null(), |r| r.as_ptr())
    })
}

/// The `WWW-Authenticate` value to send with a denial (`Bearer error="invalid_token"`,
/// RFC 6750 §3), or NULL (allowed, or a denial without a challenge). Lifetime: until the
/// decision is freed.
///
/// # Safety
/// `decision` is NULL or a live decision.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_decision_challenge(decision: *const sia_decision) -> *const c_char {
    // SAFETY: as the function's contract.
    infallible(std::ptr::null(), || {
        unsafe { decision.as_ref() }
            .and_then(|d| d.challenge.as_ref())
            .map_or(std::ptr::null(), |c| c.as_ptr())
    })
}

/// Frees a decision; NULL is a no-op.
///
/// # Safety
/// `decision` is NULL or a live decision not freed before, used by no other thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_decision_free(decision: *mut sia_decision) {
    infallible((), || {
        if !decision.is_null() {
            // SAFETY: made by Box::into_raw in `sia_decision::new`, freed once by contract.
            drop(unsafe { Box::from_raw(decision) });
        }
    })
}

/// A search parameter: `name` and `value` as NUL-terminated UTF-8, already
/// percent-decoded (`{"patient.identifier", "urn:oid:1.2|MRN7"}`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sia_param {
    /// The parameter name.
    pub name: *const c_char,
    /// The parameter value.
    pub value: *const c_char,
}

/// Most search parameters in one call.
const MAX_PARAMS: usize = 1024;

/// # Safety
/// `params` is NULL or points to `count` valid parameters.
unsafe fn params_of(
    params: *const sia_param,
    count: usize,
) -> Result<Vec<(String, String)>, Failure> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if params.is_null() {
        return Err(Failure::new(
            SIA_ERR_NULL_ARGUMENT,
            "params is NULL with param_count > 0",
        ));
    }
    if count > MAX_PARAMS {
        return Err(Failure::new(
            SIA_ERR_INVALID_ARGUMENT,
            format!("param_count {count} is more than {MAX_PARAMS}"),
        ));
    }
    // SAFETY: non-NULL, bounded count, valid by contract.
    let raw = unsafe { std::slice::from_raw_parts(params, count) };
    raw.iter()
        .enumerate()
        .map(|(i, p)| {
            // SAFETY: each pointer is NULL or NUL-terminated by contract.
            let name = unsafe { c_str(p.name, &format!("params[{i}].name")) }?;
            let value = unsafe { c_str(p.value, &format!("params[{i}].value")) }?;
            Ok((name.to_string(), value.to_string()))
        })
        .collect()
}

/// Hands bytes to C as a NUL-terminated string owned by the caller.
///
/// # Safety
/// `out` and `out_len` were checked non-NULL.
unsafe fn give_string(
    bytes: Vec<u8>,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> Result<(), Failure> {
    let len = bytes.len();
    let s = CString::new(bytes)
        .map_err(|_| Failure::new(SIA_ERR_INTERNAL, "the engine's JSON contains a NUL byte"))?;
    // SAFETY: checked non-NULL by the caller.
    unsafe {
        write_out(out_len, len);
        write_out(out, s.into_raw());
    }
    Ok(())
}

/// Searches FHIR ImagingStudy (FHIR R4 search: `patient`, `patient.identifier`,
/// `identifier`, `started`, `modality`, `_count`, `_offset`, `_include`, ...) within what
/// `decision` reaches, as `GET /fhir/ImagingStudy?...` would: writes a searchset Bundle
/// (FHIR JSON, UTF-8, NUL-terminated) to `*out_json` and its length without the NUL to
/// `*out_len`. Free it with `sia_string_free`.
///
/// Errors: `SIA_ERR_NULL_ARGUMENT`, `SIA_ERR_INVALID_UTF8`, `SIA_ERR_CLOSED`,
/// `SIA_ERR_UNAUTHORIZED` / `SIA_ERR_FORBIDDEN` (a denied decision, or a search for
/// another patient than the token's), `SIA_ERR_INVALID_ARGUMENT` (unknown or bad
/// parameter), `SIA_ERR_INTERNAL`. Thread safety: any thread.
///
/// # Safety
/// `decision` is NULL or live; `params` is NULL or `param_count` valid parameters;
/// `out_json` and `out_len` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_search_imaging_studies(
    engine: *const sia_engine,
    decision: *const sia_decision,
    params: *const sia_param,
    param_count: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> sia_status {
    boundary(|| {
        check_out(out_json, "out_json")?;
        check_out(out_len, "out_len")?;
        let engine = engine_of(engine)?;
        // SAFETY: as the function's contract.
        let grant = unsafe { grant_of(decision) }?;
        let query = unsafe { params_of(params, param_count) }?;
        let bundle = engine.search_imaging_studies(&query, grant)?;
        let bytes = serde_json::to_vec(&bundle)
            .map_err(|e| Failure::new(SIA_ERR_INTERNAL, e.to_string()))?;
        // SAFETY: both checked non-NULL above.
        unsafe { give_string(bytes, out_json, out_len) }
    })
}

/// The DICOM JSON metadata (PS3.18 F.2; WADO-RS metadata, 10.4.1.1.2) of a study, a
/// series (`series_uid` non-NULL) or an instance (`series_uid` and `sop_instance_uid`
/// non-NULL), within what `decision` reaches: a JSON array, one object per instance,
/// written to `*out_json` (NUL-terminated) with its length in `*out_len`. Free it with
/// `sia_string_free`.
///
/// Errors: `SIA_ERR_NULL_ARGUMENT`, `SIA_ERR_INVALID_UTF8`, `SIA_ERR_INVALID_ARGUMENT`
/// (an instance UID without its series), `SIA_ERR_CLOSED`, `SIA_ERR_UNAUTHORIZED`,
/// `SIA_ERR_FORBIDDEN`, `SIA_ERR_NOT_FOUND`, `SIA_ERR_GONE` (the instance's file changed),
/// `SIA_ERR_INTERNAL`. Thread safety: any thread.
///
/// # Safety
/// The UIDs are NULL or NUL-terminated; `decision` is NULL or live; the out-pointers are
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_metadata(
    engine: *const sia_engine,
    decision: *const sia_decision,
    study_uid: *const c_char,
    series_uid: *const c_char,
    sop_instance_uid: *const c_char,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> sia_status {
    boundary(|| {
        check_out(out_json, "out_json")?;
        check_out(out_len, "out_len")?;
        let engine = engine_of(engine)?;
        // SAFETY: as the function's contract.
        let grant = unsafe { grant_of(decision) }?;
        let what = unsafe { dicom_ref(study_uid, series_uid, sop_instance_uid) }?;
        let json = engine.metadata(&what, grant)?;
        // SAFETY: both checked non-NULL above.
        unsafe { give_string(json.to_vec(), out_json, out_len) }
    })
}

/// A study, series or instance reference from C strings.
///
/// # Safety
/// Each pointer is NULL or NUL-terminated.
unsafe fn dicom_ref(
    study: *const c_char,
    series: *const c_char,
    sop: *const c_char,
) -> Result<sia::DicomRef, Failure> {
    // SAFETY: as the function's contract.
    let study = unsafe { c_str(study, "study_uid") }?;
    let series = unsafe { opt_c_str(series, "series_uid") }?;
    let sop = unsafe { opt_c_str(sop, "sop_instance_uid") }?;
    match (series, sop) {
        (None, None) => Ok(sia::DicomRef::study(study)),
        (Some(se), None) => Ok(sia::DicomRef::series(study, se)),
        (Some(se), Some(i)) => Ok(sia::DicomRef::instance(study, se, i)),
        (None, Some(_)) => Err(Failure::new(
            SIA_ERR_INVALID_ARGUMENT,
            "sop_instance_uid given without series_uid",
        )),
    }
}

/// Frees a string returned by a `sia_` call; NULL is a no-op.
///
/// # Safety
/// `s` is NULL or a string from `sia_search_imaging_studies` / `sia_metadata` not freed
/// before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_string_free(s: *mut c_char) {
    infallible((), || {
        if !s.is_null() {
            // SAFETY: made by CString::into_raw in `give_string`, freed once by contract.
            drop(unsafe { CString::from_raw(s) });
        }
    })
}

/// One frame: a view of its bytes and how to read them. Strings are NUL-terminated.
/// Everything stays valid until the `sia_frames` it came from is freed.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sia_frame {
    /// The frame's bytes: native frames in Explicit VR Little Endian, compressed frames
    /// as stored. A view into the file's mapping or the engine's buffer when the frame
    /// is one piece (no copy).
    pub data: *const u8,
    /// Length of `data` in bytes.
    pub len: usize,
    /// The frame number (1-based).
    pub number: u32,
    /// Rows (0028,0010).
    pub rows: u32,
    /// Columns (0028,0011).
    pub columns: u32,
    /// Samples per Pixel (0028,0002).
    pub samples_per_pixel: u32,
    /// Bits Allocated (0028,0100).
    pub bits_allocated: u32,
    /// Pixel Representation (0028,0103): 0 unsigned, 1 signed.
    pub pixel_representation: u32,
    /// Planar Configuration (0028,0006).
    pub planar_configuration: u32,
    /// Photometric Interpretation (0028,0004), e.g. `"MONOCHROME2"`.
    pub photometric_interpretation: *const c_char,
    /// The transfer syntax UID of `data`.
    pub transfer_syntax: *const c_char,
    /// The media type with its transfer syntax, as a multipart part's `Content-Type`.
    pub content_type: *const c_char,
}

struct HeldFrame {
    frame: sia::Frame,
    /// The frame's bytes joined, when it is several fragments.
    joined: Option<Vec<u8>>,
    photometric: CString,
    transfer_syntax: CString,
    content_type: CString,
}

/// Frames returned by `sia_frames_get` (opaque), owned until `sia_frames_free`.
///
/// Thread safety: a `const sia_frames *` may be read from several threads at once.
pub struct sia_frames {
    frames: Vec<HeldFrame>,
}

/// Most frame numbers in one call.
const MAX_FRAME_NUMBERS: usize = 65536;

/// Frames `numbers` (1-based, `count` of them) of an instance, within what `decision`
/// reaches and in a representation `accept` allows (an HTTP `Accept` value; NULL or
/// `""` accepts anything: native frames as `application/octet-stream`, compressed frames
/// as stored), as `GET .../frames/{numbers}` would (PS3.18 10.4.1.1.5). Frames the
/// instance does not have are left out (at least one must exist). Writes `*out`; free
/// it with `sia_frames_free`.
///
/// Errors: `SIA_ERR_NULL_ARGUMENT`, `SIA_ERR_INVALID_UTF8`, `SIA_ERR_INVALID_ARGUMENT`
/// (no numbers, a 0, a bad `accept`), `SIA_ERR_CLOSED`, `SIA_ERR_UNAUTHORIZED`,
/// `SIA_ERR_FORBIDDEN`, `SIA_ERR_NOT_FOUND`, `SIA_ERR_NOT_ACCEPTABLE`, `SIA_ERR_GONE`,
/// `SIA_ERR_INTERNAL`. Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// The UIDs and `accept` are NULL or NUL-terminated; `numbers` is NULL or `count`
/// readable values; `decision` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_frames_get(
    engine: *const sia_engine,
    decision: *const sia_decision,
    study_uid: *const c_char,
    series_uid: *const c_char,
    sop_instance_uid: *const c_char,
    numbers: *const u32,
    count: usize,
    accept: *const c_char,
    out: *mut *mut sia_frames,
) -> sia_status {
    boundary(|| {
        check_out(out, "out")?;
        let engine = engine_of(engine)?;
        // SAFETY: as the function's contract.
        let grant = unsafe { grant_of(decision) }?;
        let study = unsafe { c_str(study_uid, "study_uid") }?;
        let series = unsafe { c_str(series_uid, "series_uid") }?;
        let sop = unsafe { c_str(sop_instance_uid, "sop_instance_uid") }?;
        let accept = unsafe { opt_c_str(accept, "accept") }?.unwrap_or("");
        if count > MAX_FRAME_NUMBERS {
            return Err(Failure::new(
                SIA_ERR_INVALID_ARGUMENT,
                format!("count {count} is more than {MAX_FRAME_NUMBERS}"),
            ));
        }
        let numbers: &[u32] = if count == 0 {
            &[]
        } else if numbers.is_null() {
            return Err(Failure::new(
                SIA_ERR_NULL_ARGUMENT,
                "numbers is NULL with count > 0",
            ));
        } else {
            // SAFETY: non-NULL, bounded, readable by contract.
            unsafe { std::slice::from_raw_parts(numbers, count) }
        };
        let what = sia::DicomRef::instance(study, series, sop);
        let frames = engine.frames(&what, numbers, accept, grant)?;
        let held = frames
            .into_frames()
            .into_iter()
            .map(|frame| HeldFrame {
                joined: (frame.chunks().len() > 1).then(|| frame.bytes().into_owned()),
                photometric: c_string(frame.photometric_interpretation()),
                transfer_syntax: c_string(frame.transfer_syntax()),
                content_type: c_string(frame.content_type()),
                frame,
            })
            .collect();
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, Box::into_raw(Box::new(sia_frames { frames: held }))) };
        Ok(())
    })
}

/// The number of frames in `frames` (0 when NULL).
///
/// # Safety
/// `frames` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_frames_count(frames: *const sia_frames) -> usize {
    // SAFETY: as the function's contract.
    infallible(0, || {
        unsafe { frames.as_ref() }.map_or(0, |f| f.frames.len())
    })
}

/// Frame `index` (0-based, in the order asked) as a view written to `*out`, valid until
/// `frames` is freed.
///
/// Errors: `SIA_ERR_NULL_ARGUMENT`, `SIA_ERR_INVALID_ARGUMENT` (index out of range).
///
/// # Safety
/// `frames` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_frames_frame(
    frames: *const sia_frames,
    index: usize,
    out: *mut sia_frame,
) -> sia_status {
    boundary(|| {
        check_out(out, "out")?;
        // SAFETY: as the function's contract.
        let f = unsafe { frames.as_ref() }
            .ok_or_else(|| Failure::new(SIA_ERR_NULL_ARGUMENT, "frames is NULL"))?;
        let h = f.frames.get(index).ok_or_else(|| {
            Failure::new(
                SIA_ERR_INVALID_ARGUMENT,
                format!("frame {index} of {}", f.frames.len()),
            )
        })?;
        let bytes: &[u8] = match (&h.joined, h.frame.chunks()) {
            (Some(j), _) => j,
            (None, [one]) => one.as_bytes(),
            (None, _) => &[],
        };
        let fr = &h.frame;
        let view = sia_frame {
            data: bytes.as_ptr(),
            len: bytes.len(),
            number: fr.number(),
            rows: fr.rows(),
            columns: fr.columns(),
            samples_per_pixel: fr.samples_per_pixel(),
            bits_allocated: fr.bits_allocated(),
            pixel_representation: fr.pixel_representation(),
            planar_configuration: fr.planar_configuration(),
            photometric_interpretation: h.photometric.as_ptr(),
            transfer_syntax: h.transfer_syntax.as_ptr(),
            content_type: h.content_type.as_ptr(),
        };
        // SAFETY: checked non-NULL above; the views live as long as `frames`.
        unsafe { write_out(out, view) };
        Ok(())
    })
}

/// Frees frames and every view into them; NULL is a no-op.
///
/// # Safety
/// `frames` is NULL or live, not freed before, used by no other thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_frames_free(frames: *mut sia_frames) {
    infallible((), || {
        if !frames.is_null() {
            // SAFETY: made by Box::into_raw in `sia_frames_get`, freed once by contract.
            drop(unsafe { Box::from_raw(frames) });
        }
    })
}
