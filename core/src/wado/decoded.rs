//! WADO-RS frames of a compressed instance sent decoded, as Explicit VR Little Endian
//! `application/octet-stream` (PS3.18 8.7.3.5): what a client gets when it asks for
//! uncompressed frames (`application/octet-stream` without a transfer syntax, or with
//! `transfer-syntax=1.2.840.10008.1.2.1`) of an instance stored compressed.
//!
//! The frame route calls [`Engine::decoded_frames`] only after the stored syntax was not
//! acceptable, so frames in their stored syntax never pass here.

use std::sync::Arc;

use crate::dicom::FrameTable;
use crate::dicom::tag::ts;
use crate::dicom::{Fragment, ImagePixelInfo};
use crate::http::Chunk;
use crate::index::InstanceLocation;
use crate::pixels::{self, DecodeError, FrameFailure};
use crate::storage::{FileError, OpenFile};
use crate::wado::{self, AcceptHeader, FrameRepresentation};
use crate::{Engine, Error, ErrorKind, Result};

/// Frames decoded for a WADO-RS frames answer.
pub(crate) struct DecodedFrames {
    /// The negotiated representation (`application/octet-stream`, Explicit VR LE).
    pub rep: FrameRepresentation,
    /// Each frame's bytes, in the asked order.
    pub frames: Vec<Arc<[u8]>>,
    /// Photometric Interpretation of the decoded pixels.
    pub photometric: String,
}

impl Engine {
    /// Frames `present` (1-based) of an encapsulated instance decoded, when `accept`
    /// takes `application/octet-stream` in Explicit VR Little Endian: the representation
    /// and each frame's bytes (Explicit VR Little Endian, interleaved), with the
    /// Photometric Interpretation of the decoded pixels (`RGB` for YBR JPEG). `None` when
    /// `accept` does not take that or the instance is not encapsulated (the caller then
    /// answers `NotAcceptable`).
    ///
    /// # Errors
    /// `NotAcceptable` when this build cannot decode the syntax or the codestream,
    /// `TooCostly` when the frames would exceed [`pixels::MAX_REQUEST_BYTES`],
    /// `Unavailable` when every decode slot stayed busy, `InvalidDicom` for a damaged
    /// codestream or a missing Image Pixel module, `Gone` for a file changed since
    /// indexing, `Internal`.
    pub(crate) fn decoded_frames(
        &self,
        accept: &AcceptHeader,
        instance: &str,
        loc: &InstanceLocation,
        present: &[u32],
    ) -> Result<Option<DecodedFrames>> {
        let FrameTable::Encapsulated {
            fragments,
            frame_starts,
            ..
        } = &loc.frames
        else {
            return Ok(None);
        };
        let Some(rep) = wado::negotiate_frames(accept, true, ts::EXPLICIT_VR_LE, present.len())
        else {
            return Ok(None);
        };
        if !pixels::syntax::decodes(&loc.transfer_syntax) {
            return Err(Error::not_acceptable(format!(
                "frames in transfer syntax {} cannot be decoded by sia; ask for \
                 multipart/related; type=\"{}\"; transfer-syntax={}",
                loc.transfer_syntax,
                wado::frame_media_type(&loc.transfer_syntax),
                loc.transfer_syntax
            )));
        }
        let Some(image) = self.index.image_pixel_info(instance)? else {
            return Err(
                Error::new(ErrorKind::InvalidDicom, crate::error::INTERNAL_ERROR).with_detail(
                    format!(
                        "instance {instance} has encapsulated pixel data but no image pixel module"
                    ),
                ),
            );
        };
        let each = pixels::decoded_frame_len(&image).unwrap_or(u64::MAX);
        if each.saturating_mul(present.len() as u64) > pixels::MAX_REQUEST_BYTES {
            return Err(Error::new(
                ErrorKind::TooCostly,
                format!(
                    "{} decoded frame(s) of {each} bytes exceed the {}-byte limit of one \
                     request; ask for fewer frames",
                    present.len(),
                    pixels::MAX_REQUEST_BYTES
                ),
            ));
        }
        let file = self.files.open(&loc.file)?;
        let mut decoded = Vec::with_capacity(present.len());
        for &n in present {
            decoded.push(self.decode_fragments(&file, loc, &image, fragments, frame_starts, n)?);
        }
        let photometric = pixels::decoded_photometric(&loc.transfer_syntax, &image).to_string();
        Ok(Some(DecodedFrames {
            rep,
            frames: decoded,
            photometric,
        }))
    }
}

impl Engine {
    /// Frame `n` (1-based) of an encapsulated instance, decoded (Explicit VR Little
    /// Endian, interleaved) or taken from the decoded-frame cache: the frame's fragments
    /// (`fragments[frame_starts[n-1]..frame_starts[n]]`) read from `file` and joined, then
    /// handed to the codec. The caller has checked `n` against the frame table.
    ///
    /// # Errors
    /// As [`failure_error`]: `NotAcceptable`, `TooCostly`, `Unavailable`, `InvalidDicom`,
    /// `Gone`.
    pub(crate) fn decode_fragments(
        &self,
        file: &OpenFile,
        loc: &InstanceLocation,
        image: &ImagePixelInfo,
        fragments: &[Fragment],
        frame_starts: &[u32],
        n: u32,
    ) -> Result<Arc<[u8]>> {
        let i = (n - 1) as usize;
        let (a, b) = (frame_starts[i] as usize, frame_starts[i + 1] as usize);
        let read = || -> std::result::Result<Vec<u8>, FileError> {
            let mut out = Vec::new();
            for f in &fragments[a..b] {
                out.extend_from_slice(&file.read(f.offset, u64::from(f.len))?);
            }
            Ok(out)
        };
        self.pixels
            .frame(&loc.file, n, &loc.transfer_syntax, image, read)
            .map_err(|f| failure_error(f, &loc.transfer_syntax, n))
    }
}

/// The error for a frame that could not be decoded.
pub(crate) fn failure_error(f: FrameFailure, transfer_syntax: &str, n: u32) -> Error {
    match f {
        FrameFailure::File(e) => e.into(),
        FrameFailure::Deferred => deferred(),
        FrameFailure::Busy => Error::new(
            ErrorKind::Unavailable,
            "every decoder is busy; try again shortly",
        )
        .with_retry_after(1),
        FrameFailure::Decode(DecodeError::Unsupported(m)) => Error::not_acceptable(format!(
            "frame {n} cannot be decoded ({m}); ask for its stored syntax {transfer_syntax}"
        )),
        FrameFailure::Decode(DecodeError::TooLarge(m)) => {
            Error::new(ErrorKind::TooCostly, format!("frame {n}: {m}"))
        }
        FrameFailure::Decode(DecodeError::Corrupt(m)) => Error::new(
            ErrorKind::InvalidDicom,
            format!("frame {n} of this instance cannot be decoded: {m}"),
        ),
    }
}

/// The error inside `Engine::handle_without_decoding` for work it refused; never sent
/// (the host answers the request again off its async workers).
pub(crate) fn deferred() -> Error {
    Error::new(
        ErrorKind::Unavailable,
        "decoding is not done on this thread; answer the request where blocking is fine",
    )
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
    ) -> Result<(String, Vec<Chunk>)> {
        if !wants_explicit_le(ask, &transfer_syntax) {
            return Ok((transfer_syntax, body));
        }
        let Some(loc) = self.instance_location(sop)? else {
            return Err(Error::not_found(format!("no instance {sop}")));
        };
        let FrameTable::Encapsulated {
            fragments,
            frame_starts,
            ..
        } = &loc.frames
        else {
            return Ok((transfer_syntax, body));
        };
        let Some(image) = self.index.image_pixel_info(sop)? else {
            return Ok((transfer_syntax, body));
        };
        let count = loc.frames.count();
        let each = pixels::decoded_frame_len(&image).unwrap_or(u64::MAX);
        if each.saturating_mul(u64::from(count)) > pixels::MAX_REQUEST_BYTES {
            return Err(Error::new(
                ErrorKind::TooCostly,
                format!(
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
            let read = || -> std::result::Result<Vec<u8>, FileError> {
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
                Err(f) => return Err(failure_error(f, &transfer_syntax, n)),
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
            Ok(file) => Ok((ts::EXPLICIT_VR_LE.to_string(), vec![Chunk::from_vec(file)])),
            Err(e) => Err(Error::internal(format!(
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
