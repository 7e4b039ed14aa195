//! WADO-RS frames (PS3.18 10.4.1.1.5, `.../instances/{i}/frames/{list}`): the frames of
//! an instance in its stored syntax, or decoded to Explicit VR Little Endian when the
//! client asks for uncompressed frames of a compressed instance (`wado/decoded.rs`).
//! Native frames in Explicit VR Little Endian are ranges of the file (zero-copy with
//! `mmap`); big-endian frames are swapped and 1-bit frames realigned into owned buffers.

use std::borrow::Cow;
use std::sync::Arc;

use super::refs::DicomRef;
use super::{AcceptHeader, Multipart};
use crate::auth::Grant;
use crate::dicom::FrameTable;
use crate::http::{Body, Chunk, Response};
use crate::index::PixelDescription;
use crate::storage::{FileError, OpenFile};
use crate::{Engine, Error, Result};

/// What every frame of one answer shares.
#[derive(Debug)]
struct FrameInfo {
    media_type: &'static str,
    transfer_syntax: String,
    /// `{media_type}; transfer-syntax={transfer_syntax}`.
    content_type: String,
    pixel: PixelDescription,
}

/// One frame: its bytes as chunks that own what they point at (ranges of the file when
/// they can be sent as stored), and how to read them.
#[derive(Clone, Debug)]
pub struct Frame {
    number: u32,
    chunks: Vec<Chunk>,
    info: Arc<FrameInfo>,
}

impl Frame {
    /// The frame number (1-based, PS3.18 10.4.1.1.5).
    pub fn number(&self) -> u32 {
        self.number
    }

    /// The frame's bytes: borrowed when they are one chunk (a native frame, or an
    /// encapsulated frame of one fragment), else joined into a new buffer.
    pub fn bytes(&self) -> Cow<'_, [u8]> {
        match self.chunks.as_slice() {
            [] => Cow::Borrowed(&[]),
            [one] => Cow::Borrowed(one.as_bytes()),
            many => Cow::Owned(many.iter().flat_map(|c| c.as_bytes()).copied().collect()),
        }
    }

    /// The frame's bytes as chunks, in order (the fragments of an encapsulated frame).
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Chunk::len).sum()
    }

    /// Whether the frame has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The transfer syntax of the bytes (Explicit VR Little Endian for native frames).
    pub fn transfer_syntax(&self) -> &str {
        &self.info.transfer_syntax
    }

    /// The media type of the bytes (`application/octet-stream`, `image/jpeg`, ...).
    pub fn media_type(&self) -> &str {
        self.info.media_type
    }

    /// `Content-Type` of the frame's part: `{media type}; transfer-syntax={uid}`.
    pub fn content_type(&self) -> &str {
        &self.info.content_type
    }

    /// The Image Pixel attributes of the instance (rows, columns, samples per pixel,
    /// bits allocated, pixel representation, planar configuration, photometric
    /// interpretation): a native frame is `rows × columns × samples_per_pixel` samples
    /// of `bits_allocated` bits, little endian.
    pub fn pixel(&self) -> &PixelDescription {
        &self.info.pixel
    }

    /// Rows (0028,0010).
    pub fn rows(&self) -> u32 {
        self.info.pixel.rows
    }

    /// Columns (0028,0011).
    pub fn columns(&self) -> u32 {
        self.info.pixel.columns
    }

    /// Samples per Pixel (0028,0002).
    pub fn samples_per_pixel(&self) -> u32 {
        self.info.pixel.samples_per_pixel
    }

    /// Bits Allocated (0028,0100).
    pub fn bits_allocated(&self) -> u32 {
        self.info.pixel.bits_allocated
    }

    /// Pixel Representation (0028,0103): 0 unsigned, 1 signed.
    pub fn pixel_representation(&self) -> u32 {
        self.info.pixel.pixel_representation
    }

    /// Planar Configuration (0028,0006).
    pub fn planar_configuration(&self) -> u32 {
        self.info.pixel.planar_configuration
    }

    /// Photometric Interpretation (0028,0004).
    pub fn photometric_interpretation(&self) -> &str {
        &self.info.pixel.photometric_interpretation
    }
}

/// The frames [`Engine::frames`] found, in the order asked, and those it did not.
#[derive(Clone, Debug)]
pub struct Frames {
    frames: Vec<Frame>,
    missing: Vec<u32>,
    count: u32,
    multipart: bool,
}

impl Frames {
    /// The frames found, in the order asked.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// The frames by value.
    pub fn into_frames(self) -> Vec<Frame> {
        self.frames
    }

    /// Frame numbers asked for that the instance does not have (HTTP 206).
    pub fn missing(&self) -> &[u32] {
        &self.missing
    }

    /// How many frames the instance has.
    pub fn frame_count(&self) -> u32 {
        self.count
    }

    /// Whether the accepted representation is `multipart/related` (else a single-part
    /// body, only for one frame).
    pub fn multipart(&self) -> bool {
        self.multipart
    }
}

/// `Accept` as a typed caller gives it: an empty string accepts anything.
pub(crate) fn accept_str(accept: &str) -> Result<AcceptHeader> {
    if accept.trim().is_empty() {
        return Ok(AcceptHeader::any());
    }
    AcceptHeader::parse(accept).map_err(|e| Error::invalid(e.to_string()))
}

impl Engine {
    /// Frames `numbers` (1-based, in the order asked) of `instance`, in a representation
    /// `accept` (an `Accept` header value; empty accepts anything) allows, as
    /// PS3.18 10.4.1.1.5 and 8.7.3.5 define: native frames as
    /// `application/octet-stream` in Explicit VR Little Endian, compressed frames as
    /// stored, or decoded to Explicit VR Little Endian when `accept` asks for that and
    /// not for the stored syntax. Each [`Frame`] carries its bytes (zero-copy
    /// when stored as sent and read mode `mmap`) and the Image Pixel attributes.
    ///
    /// # Errors
    /// `InvalidInput` (not an instance, no or zero frame numbers, bad `accept`),
    /// `Forbidden` (the grant does not reach the study), `NotFound` (no such instance,
    /// no pixel data, none of the frames), `NotAcceptable` (no accepted form, or a
    /// syntax or codestream this build cannot decode), `TooCostly` (decoded frames past
    /// the request limit), `Unavailable` (every decoder busy), `InvalidDicom` (a damaged
    /// codestream), `Gone` (the file changed since indexing), `Internal`.
    pub fn frames(
        &self,
        instance: &DicomRef,
        numbers: &[u32],
        accept: &str,
        grant: &Grant,
    ) -> Result<Frames> {
        if numbers.is_empty() || numbers.contains(&0) {
            return Err(Error::invalid(
                "frame numbers are 1-based, and at least one is needed",
            ));
        }
        self.require_study(grant, instance.study_uid())?;
        self.frames_with(instance, numbers, &accept_str(accept)?)
    }

    /// [`Engine::frames`] after the grant check, with a parsed `Accept`.
    pub(crate) fn frames_with(
        &self,
        instance: &DicomRef,
        wanted: &[u32],
        accept: &AcceptHeader,
    ) -> Result<Frames> {
        let (study, series, sop) = instance.as_instance()?;
        let loc = self.located(study, series, sop)?;
        let count = loc.frames.count();
        if loc.frames == FrameTable::None {
            return Err(Error::not_found(format!(
                "instance {sop} has no pixel data"
            )));
        }
        let present: Vec<u32> = wanted.iter().copied().filter(|&n| n <= count).collect();
        let missing: Vec<u32> = wanted.iter().copied().filter(|&n| n > count).collect();
        if present.is_empty() {
            let missing: Vec<String> = missing.iter().map(u32::to_string).collect();
            return Err(Error::not_found(format!(
                "instance {sop} has {count} frame(s); asked for {}",
                missing.join(",")
            )));
        }
        // Frames of a deflated data set are native frames once inflated.
        let native = matches!(
            loc.frames,
            FrameTable::Native { .. } | FrameTable::Deflated { .. }
        );
        let Some(rep) =
            super::negotiate_frames(accept, native, &loc.transfer_syntax, present.len())
        else {
            // Uncompressed frames of a compressed instance: decoded (wado/decoded.rs).
            if let Some(super::decoded::DecodedFrames {
                rep,
                frames: decoded,
                photometric,
            }) = self.decoded_frames(accept, sop, &loc, &present)?
            {
                let mut pixel = loc.pixel.clone();
                if pixel.photometric_interpretation != photometric {
                    // Recoloured frames are interleaved (PS3.5 8.2.1: YBR JPEG to RGB).
                    pixel.photometric_interpretation = photometric;
                    pixel.planar_configuration = 0;
                }
                let info = Arc::new(FrameInfo {
                    content_type: format!(
                        "{}; transfer-syntax={}",
                        rep.media_type, rep.transfer_syntax
                    ),
                    media_type: rep.media_type,
                    transfer_syntax: rep.transfer_syntax,
                    pixel,
                });
                let frames = present
                    .iter()
                    .zip(decoded)
                    .map(|(&n, bytes)| Frame {
                        number: n,
                        chunks: vec![Chunk::from_shared(bytes)],
                        info: info.clone(),
                    })
                    .collect();
                return Ok(Frames {
                    frames,
                    missing,
                    count,
                    multipart: rep.multipart,
                });
            }
            let offer = if native {
                "multipart/related; type=\"application/octet-stream\"".to_string()
            } else {
                format!(
                    "multipart/related; type=\"{}\"; transfer-syntax={}",
                    super::frame_media_type(&loc.transfer_syntax),
                    loc.transfer_syntax
                )
            };
            return Err(Error::not_acceptable(format!(
                "none of the accepted media types can be sent; available: {offer}"
            )));
        };
        let file = self.files.open(&loc.file)?;
        // A deflated data set is inflated (bounded as for retrieval) and its frames cut
        // from the inflated bytes with a native table built as at index time.
        let inflated;
        let (file, table) = match &loc.frames {
            FrameTable::Deflated { .. } => {
                // Inflating the whole data set is slow work, like a decode.
                if !crate::pixels::may_work_slowly() {
                    return Err(super::decoded::deferred());
                }
                let bytes = file.whole()?;
                let (data, table) = crate::dicom::inflated_frames(&bytes).map_err(|e| {
                    Error::new(crate::ErrorKind::InvalidDicom, crate::error::INTERNAL_ERROR)
                        .with_detail(format!(
                            "{}: cannot inflate the data set: {e}",
                            loc.file.path
                        ))
                })?;
                if present.iter().any(|&n| n > table.count()) {
                    return Err(Error::new(
                        crate::ErrorKind::InvalidDicom,
                        crate::error::INTERNAL_ERROR,
                    )
                    .with_detail(format!(
                        "{}: the inflated data set holds {} frame(s), the index {count}",
                        loc.file.path,
                        table.count()
                    )));
                }
                inflated = data;
                (FrameBytes::Inflated(&inflated), Cow::Owned(table))
            }
            // Borrowed: a table of thousands of frames is not copied for each request.
            _ => (FrameBytes::File(&file), Cow::Borrowed(&loc.frames)),
        };
        let info = Arc::new(FrameInfo {
            content_type: format!(
                "{}; transfer-syntax={}",
                rep.media_type, rep.transfer_syntax
            ),
            media_type: rep.media_type,
            transfer_syntax: rep.transfer_syntax,
            pixel: loc.pixel.clone(),
        });
        let mut frames = Vec::with_capacity(present.len());
        for &n in &present {
            frames.push(Frame {
                number: n,
                chunks: frame_chunks(&file, &table, n)?,
                info: info.clone(),
            });
        }
        Ok(Frames {
            frames,
            missing,
            count,
            multipart: rep.multipart,
        })
    }

    /// Where `instance` is, when it is in `series` of `study`; else `NotFound`.
    pub(crate) fn located(
        &self,
        study: &str,
        series: &str,
        instance: &str,
    ) -> Result<Arc<crate::index::InstanceLocation>> {
        match self.instance_location(instance)? {
            Some(l) if l.study_uid == study && l.series_uid == series => Ok(l),
            _ => Err(Error::not_found(format!(
                "no instance {instance} in series {series} of study {study}"
            ))),
        }
    }
}

/// The HTTP answer for `frames` of `instance`, with `Content-Location`s under `base`.
pub(crate) fn frames_response(frames: Frames, base: &str, instance: &DicomRef) -> Response {
    // Joined by hand: `format!` costs a frame request more than the rest of its answer.
    let location = |n: u32| {
        let parts = [
            base,
            "/studies/",
            instance.study_uid(),
            "/series/",
            instance.series_uid().unwrap_or_default(),
            "/instances/",
            instance.sop_instance_uid().unwrap_or_default(),
            "/frames/",
        ];
        let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum::<usize>() + 10);
        parts.iter().for_each(|p| s.push_str(p));
        s.push_str(itoa_u32(n, &mut [0; 10]));
        s
    };
    let Some(first) = frames.frames.first() else {
        return Error::not_found("no frames").to_response();
    };
    let info = first.info.clone();
    let mut resp = if frames.multipart {
        let mut mp = Multipart::new();
        for f in frames.frames {
            mp.part(
                &[
                    ("Content-Type", &info.content_type),
                    ("Content-Location", &location(f.number)),
                ],
                f.chunks,
            );
        }
        let (boundary, body) = mp.finish();
        let mut ct = String::with_capacity(48 + info.media_type.len() + boundary.len());
        for part in [
            "multipart/related; type=\"",
            info.media_type,
            "\"; boundary=",
            &boundary,
        ] {
            ct.push_str(part);
        }
        Response::with_body(200, &ct, body)
    } else {
        let mut body = Body::new();
        let first = frames.frames.into_iter().next().expect("one frame");
        let n = first.number;
        first.chunks.into_iter().for_each(|c| body.push(c));
        let mut r = Response::with_body(200, &info.content_type, body);
        r.headers.push(("Content-Location".into(), location(n)));
        r
    };
    if !frames.missing.is_empty() {
        let missing: Vec<String> = frames.missing.iter().map(u32::to_string).collect();
        resp.status = 206;
        resp.headers.push(crate::http::warning(&format!(
            "frames {} do not exist; the instance has {}",
            missing.join(","),
            frames.count
        )));
    }
    resp
}

/// `n` in decimal, written into `buf`.
fn itoa_u32(mut n: u32, buf: &mut [u8; 10]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or_default()
}

/// Where frame bytes are read from: the file, or a deflated file's inflated data set.
pub(crate) enum FrameBytes<'a> {
    File(&'a OpenFile),
    Inflated(&'a [u8]),
}

impl FrameBytes<'_> {
    fn chunk(&self, start: u64, len: u64) -> Result<Chunk, FileError> {
        match self {
            FrameBytes::File(f) => f.chunk(start, len),
            FrameBytes::Inflated(b) => Ok(Chunk::from_vec(self_range(b, start, len)?.to_vec())),
        }
    }

    fn read(&self, start: u64, len: u64) -> Result<Vec<u8>, FileError> {
        match self {
            FrameBytes::File(f) => f.read(start, len),
            FrameBytes::Inflated(b) => Ok(self_range(b, start, len)?.to_vec()),
        }
    }
}

fn self_range(b: &[u8], start: u64, len: u64) -> Result<&[u8], FileError> {
    start
        .checked_add(len)
        .and_then(|end| b.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?))
        .ok_or_else(|| FileError::Io("frame runs past the inflated data set".into()))
}

/// The bytes of frame `n` (1-based): ranges of the file where they can be sent as they
/// are, owned buffers where they must change (big-endian swap, 1-bit realignment).
pub(crate) fn frame_chunks(
    file: &FrameBytes<'_>,
    table: &FrameTable,
    n: u32,
) -> Result<Vec<Chunk>> {
    let i = u64::from(n.saturating_sub(1));
    match table {
        FrameTable::Native {
            offset,
            frame_bits,
            swap_unit,
            ..
        } => {
            let start_bit = i * frame_bits;
            let unit = u64::from(*swap_unit);
            if frame_bits % 8 == 0 && unit == 0 {
                return Ok(vec![file.chunk(offset + start_bit / 8, frame_bits / 8)?]);
            }
            // Read whole swap units around the frame (relative to the start of Pixel
            // Data: a frame of 8-bit samples in big-endian OW may start inside a word),
            // swap them, then cut the frame out.
            let first = start_bit / 8;
            let last = (start_bit + frame_bits).div_ceil(8);
            let (lo, hi) = if unit > 1 {
                (first - first % unit, last.div_ceil(unit) * unit)
            } else {
                (first, last)
            };
            let mut src = file.read(offset + lo, hi - lo)?;
            if unit > 1 {
                for u in src.chunks_exact_mut(unit as usize) {
                    u.reverse();
                }
            }
            let skip = (first - lo) as usize;
            if frame_bits % 8 == 0 {
                let len = (frame_bits / 8) as usize;
                src.truncate(skip + len);
                src.drain(..skip);
                return Ok(vec![Chunk::from_vec(src)]);
            }
            // Bits Allocated 1: frames are not padded, so frame n may start inside a
            // byte. Shift it to start at bit 0 of its first byte (pixels fill bytes from
            // the least significant bit, PS3.5 8.1.1).
            let src = &src[skip..];
            let shift = (start_bit % 8) as u32;
            let out_len = frame_bits.div_ceil(8) as usize;
            let mut out = vec![0u8; out_len];
            for (k, byte) in out.iter_mut().enumerate() {
                let lo = src.get(k).copied().unwrap_or(0) >> shift;
                let hi = if shift == 0 {
                    0
                } else {
                    src.get(k + 1).copied().unwrap_or(0) << (8 - shift)
                };
                *byte = lo | hi;
            }
            let tail = (frame_bits % 8) as u32;
            if tail != 0 {
                out[out_len - 1] &= (1u8 << tail) - 1;
            }
            Ok(vec![Chunk::from_vec(out)])
        }
        FrameTable::Encapsulated {
            fragments,
            frame_starts,
            ..
        } => {
            let (a, b) = (
                frame_starts[i as usize] as usize,
                frame_starts[i as usize + 1] as usize,
            );
            Ok(fragments[a..b]
                .iter()
                .map(|f| file.chunk(f.offset, u64::from(f.len)))
                .collect::<Result<Vec<_>, FileError>>()?)
        }
        FrameTable::None | FrameTable::Deflated { .. } => Ok(Vec::new()),
    }
}
