//! WADO-RS frames of a compressed instance sent decoded, as Explicit VR Little Endian
//! `application/octet-stream` (PS3.18 8.7.3.5): what a client gets when it asks for
//! uncompressed frames (`application/octet-stream` without a transfer syntax, or with
//! `transfer-syntax=1.2.840.10008.1.2.1`) of an instance stored compressed.
//!
//! The frame route calls [`Engine::decoded_frames`] only after the stored syntax was not
//! acceptable, so frames in their stored syntax never pass here.

use crate::Engine;
use crate::dicom::FrameTable;
use crate::dicom::tag::ts;
use crate::http::{Body, Chunk, Response};
use crate::index::InstanceLocation;
use crate::pixels::{self, DecodeError, FrameFailure};
use crate::storage::FileError;
use crate::wado::{self, AcceptHeader, Multipart};

/// The frames a request names: those present (1-based, in the asked order) and the
/// numbers past the instance's last frame (reported in a `Warning`).
pub(crate) struct FrameRequest<'a> {
    /// Frames to send.
    pub present: &'a [u32],
    /// Frames asked for that do not exist.
    pub missing: &'a [String],
}

impl Engine {
    /// The decoded frames of an encapsulated instance when `accept` takes
    /// `application/octet-stream` in Explicit VR Little Endian; `None` when it does not
    /// (the caller answers 406) or the instance is not encapsulated.
    ///
    /// Answers 406 when this build cannot decode the syntax or the codestream, 400 when
    /// the frames would exceed [`pixels::MAX_REQUEST_BYTES`], 503 when every decode slot
    /// stayed busy, 500 for a damaged codestream, 410 for a file changed since indexing.
    pub(crate) fn decoded_frames(
        &self,
        accept: &AcceptHeader,
        location: impl Fn(u32) -> String,
        instance: &str,
        loc: &InstanceLocation,
        frames: FrameRequest<'_>,
    ) -> Option<Response> {
        let FrameTable::Encapsulated {
            fragments,
            frame_starts,
            ..
        } = &loc.frames
        else {
            return None;
        };
        let rep = wado::negotiate_frames(accept, true, ts::EXPLICIT_VR_LE, frames.present.len())?;
        if !pixels::syntax::decodes(&loc.transfer_syntax) {
            return Some(Response::error(
                406,
                &format!(
                    "frames in transfer syntax {} cannot be decoded by sia; ask for \
                     multipart/related; type=\"{}\"; transfer-syntax={}",
                    loc.transfer_syntax,
                    wado::frame_media_type(&loc.transfer_syntax),
                    loc.transfer_syntax
                ),
            ));
        }
        let image = match pixels::image_info(&self.index, instance) {
            Ok(Some(i)) => i,
            Ok(None) => {
                return Some(Response::error(
                    500,
                    &format!(
                        "instance {instance} has encapsulated pixel data but no image pixel module"
                    ),
                ));
            }
            Err(e) => return Some(Response::internal(format!("index: {e}"))),
        };
        let each = pixels::decoded_frame_len(&image).unwrap_or(u64::MAX);
        if each.saturating_mul(frames.present.len() as u64) > pixels::MAX_REQUEST_BYTES {
            return Some(Response::error(
                400,
                &format!(
                    "{} decoded frame(s) of {each} bytes exceed the {}-byte limit of one \
                     request; ask for fewer frames",
                    frames.present.len(),
                    pixels::MAX_REQUEST_BYTES
                ),
            ));
        }
        let file = match self.files.open(&loc.file) {
            Ok(f) => f,
            Err(e) => return Some(file_failure(e)),
        };
        let mut decoded = Vec::with_capacity(frames.present.len());
        for &n in frames.present {
            let i = (n - 1) as usize;
            let (a, b) = (frame_starts[i] as usize, frame_starts[i + 1] as usize);
            let read = || -> Result<Vec<u8>, FileError> {
                let mut out = Vec::new();
                for f in &fragments[a..b] {
                    out.extend_from_slice(&file.read(f.offset, u64::from(f.len))?);
                }
                Ok(out)
            };
            match self
                .pixels
                .frame(&loc.file, n, &loc.transfer_syntax, &image, read)
            {
                Ok(frame) => decoded.push((n, frame)),
                Err(f) => return Some(failure_response(f, &loc.transfer_syntax, n)),
            }
        }
        let part_type = format!(
            "{}; transfer-syntax={}",
            rep.media_type, rep.transfer_syntax
        );
        let mut resp = if rep.multipart {
            let mut mp = Multipart::new();
            for (n, frame) in decoded {
                mp.part(
                    &[
                        ("Content-Type", &part_type),
                        ("Content-Location", &location(n)),
                    ],
                    [Chunk::Shared(frame)],
                );
            }
            let (boundary, body) = mp.finish();
            let ct = format!(
                "multipart/related; type=\"{}\"; boundary={boundary}",
                rep.media_type
            );
            Response::with_body(200, &ct, body)
        } else {
            let (n, frame) = decoded.into_iter().next()?;
            let mut body = Body::new();
            body.push(Chunk::Shared(frame));
            let mut r = Response::with_body(200, &part_type, body);
            r.headers.push(("Content-Location".into(), location(n)));
            r
        };
        if !frames.missing.is_empty() {
            resp.status = 206;
            resp.headers.push((
                "Warning".into(),
                format!(
                    "299 sia \"frames {} do not exist; the instance has {}\"",
                    frames.missing.join(","),
                    loc.frames.count()
                ),
            ));
        }
        Some(resp)
    }
}

fn file_failure(e: FileError) -> Response {
    let status = match e {
        FileError::Gone(_) | FileError::Changed(_) => 410,
        FileError::Io(_) => 500,
    };
    Response::error(status, e.client_message()).with_detail(e.detail())
}

/// The response for a frame that could not be decoded.
pub(crate) fn failure_response(f: FrameFailure, transfer_syntax: &str, n: u32) -> Response {
    match f {
        FrameFailure::File(e) => file_failure(e),
        FrameFailure::Busy => {
            let mut r = Response::error(503, "every decoder is busy; try again shortly");
            r.headers.push(("Retry-After".into(), "1".into()));
            r
        }
        FrameFailure::Decode(DecodeError::Unsupported(m)) => Response::error(
            406,
            &format!(
                "frame {n} cannot be decoded ({m}); ask for its stored syntax {transfer_syntax}"
            ),
        ),
        FrameFailure::Decode(DecodeError::TooLarge(m)) => {
            Response::error(400, &format!("frame {n}: {m}"))
        }
        FrameFailure::Decode(DecodeError::Corrupt(m)) => Response::error(
            500,
            &format!("frame {n} of this instance cannot be decoded: {m}"),
        ),
    }
}

/// How a client named the transfer syntax it takes `application/dicom` in.
pub(crate) enum DicomAsk<'a> {
    /// WADO-RS: the `Accept` header.
    Accept(&'a AcceptHeader),
    /// WADO-URI: the `transferSyntax` parameter, when given.
    Uri(Option<&'a str>),
}

/// Whether an instance stored in encapsulated `stored` should go out decoded to Explicit
/// VR Little Endian (PS3.18 8.7.3.5.2): when the client accepts its stored syntax (by
/// name or `*`), no; when it names Explicit VR Little Endian, yes; when it names no
/// syntax (the default, which is Explicit VR Little Endian), yes for lossless sources
/// and no for lossy ones, which go as stored as PS3.18 8.7.3.4 allows (decoding them
/// would only make them larger, never better). Never for a syntax this build cannot
/// decode (the existing negotiation then decides, 406 included).
pub(crate) fn wants_explicit_le(ask: &DicomAsk<'_>, stored: &str) -> bool {
    if !pixels::syntax::decodes(stored) {
        return false;
    }
    let (mut stored_ok, mut le_named, mut default) = (false, false, false);
    let mut see = |param: Option<&str>| match param {
        Some("*") => stored_ok = true,
        Some(uid) if uid == stored => stored_ok = true,
        Some(ts::EXPLICIT_VR_LE) => le_named = true,
        Some(_) => {}
        None => default = true,
    };
    match ask {
        DicomAsk::Uri(param) => see(*param),
        DicomAsk::Accept(accept) => {
            for r in accept.ranges.iter().filter(|r| r.q > 0) {
                let multipart =
                    r.kind == "multipart" && (r.subtype == "related" || r.subtype == "*");
                let dicom = if multipart {
                    let t = r.param("type").unwrap_or("application/dicom");
                    t == "application/dicom" || t == "application/*" || t == "*/*"
                } else {
                    r.matches("application/dicom")
                };
                if dicom {
                    see(r.param("transfer-syntax"));
                }
            }
        }
    }
    !stored_ok && (le_named || (default && !pixels::syntax::is_lossy(stored)))
}

impl Engine {
    /// The instance `sop` (its file's bytes `stored`, in `transfer_syntax`) as the
    /// client asked for it: unchanged, or rewritten in Explicit VR Little Endian with its
    /// frames decoded ([`wants_explicit_le`]). Errors as for decoded frames, except that
    /// a frame the codec cannot handle is a 406 only when the client named Explicit VR
    /// Little Endian; with the default syntax the instance goes as stored.
    pub(crate) fn dicom_as_asked(
        &self,
        ask: &DicomAsk<'_>,
        sop: &str,
        transfer_syntax: String,
        body: Vec<Chunk>,
    ) -> Result<(String, Vec<Chunk>), Response> {
        if !wants_explicit_le(ask, &transfer_syntax) {
            return Ok((transfer_syntax, body));
        }
        let loc = match self.instance_location(sop) {
            Ok(Some(l)) => l,
            Ok(None) => return Err(Response::error(404, &format!("no instance {sop}"))),
            Err(e) => return Err(Response::internal(format!("index: {e}"))),
        };
        let FrameTable::Encapsulated {
            fragments,
            frame_starts,
            ..
        } = &loc.frames
        else {
            return Ok((transfer_syntax, body));
        };
        let image = match pixels::image_info(&self.index, sop) {
            Ok(Some(i)) => i,
            Ok(_) => return Ok((transfer_syntax, body)),
            Err(e) => return Err(Response::internal(format!("index: {e}"))),
        };
        let count = loc.frames.count();
        let each = pixels::decoded_frame_len(&image).unwrap_or(u64::MAX);
        if each.saturating_mul(u64::from(count)) > pixels::MAX_REQUEST_BYTES {
            return Err(Response::error(
                400,
                &format!(
                    "instance {sop} decodes to more than {} bytes; ask for its stored syntax {transfer_syntax}",
                    pixels::MAX_REQUEST_BYTES
                ),
            ));
        }
        // The file as one slice (one chunk in either read mode).
        let joined;
        let bytes: &[u8] = match body.as_slice() {
            [one] => one.as_bytes(),
            many => {
                joined = many
                    .iter()
                    .flat_map(|c| c.as_bytes().iter().copied())
                    .collect::<Vec<u8>>();
                &joined
            }
        };
        let mut frames = Vec::with_capacity(count as usize);
        for n in 1..=count {
            let i = (n - 1) as usize;
            let (a, b) = (frame_starts[i] as usize, frame_starts[i + 1] as usize);
            let read = || -> Result<Vec<u8>, FileError> {
                let mut out = Vec::new();
                for f in &fragments[a..b] {
                    let range = usize::try_from(f.offset)
                        .ok()
                        .and_then(|s| bytes.get(s..s + f.len as usize));
                    out.extend_from_slice(
                        range
                            .ok_or_else(|| FileError::Io("a fragment runs past the file".into()))?,
                    );
                }
                Ok(out)
            };
            match self
                .pixels
                .frame(&loc.file, n, &transfer_syntax, &image, read)
            {
                Ok(f) => frames.push(f),
                Err(FrameFailure::Decode(DecodeError::Unsupported(_)))
                    if !names_explicit_le(ask) =>
                {
                    return Ok((transfer_syntax, body));
                }
                Err(f) => return Err(failure_response(f, &transfer_syntax, n)),
            }
        }
        let parts: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
        let photometric = pixels::decoded_photometric(&transfer_syntax, &image);
        match crate::dicom::native::with_native_pixels(
            bytes,
            &parts,
            image.bits_allocated,
            photometric,
        ) {
            Ok(file) => Ok((ts::EXPLICIT_VR_LE.to_string(), vec![Chunk::Owned(file)])),
            Err(e) => Err(Response::internal(format!(
                "instance {sop}: cannot rewrite the data set: {e}"
            ))),
        }
    }
}

/// Whether the client named Explicit VR Little Endian for `application/dicom`.
fn names_explicit_le(ask: &DicomAsk<'_>) -> bool {
    match ask {
        DicomAsk::Uri(p) => *p == Some(ts::EXPLICIT_VR_LE),
        DicomAsk::Accept(a) => a
            .ranges
            .iter()
            .any(|r| r.q > 0 && r.param("transfer-syntax") == Some(ts::EXPLICIT_VR_LE)),
    }
}
