//! Rewriting an encapsulated (compressed) file as Explicit VR Little Endian with native
//! Pixel Data, from frames decoded elsewhere (`crate::pixels`): what PS3.18 8.7.3 asks
//! when a client wants `application/dicom` in Explicit VR Little Endian from a
//! compressed instance.
//!
//! Encapsulated syntaxes encode the data set in Explicit VR Little Endian already, so
//! every element is copied byte for byte except: the File Meta group (new, naming
//! Explicit VR Little Endian), Pixel Data (native, the decoded frames), the Extended
//! Offset Table and its lengths (they describe fragments that no longer exist), group
//! lengths (they would be wrong), and, when the codec changed the colour model,
//! Photometric Interpretation and Planar Configuration.

use super::ScanError;
use super::elements::{UNDEFINED, decode_header};
use super::scan::{locate_data_set, skip_undefined_sequence};
use super::source::SliceSource;
use super::tag::{Encoding, Tag, Vr, tags, ts};
use super::write::{DataSetWriter, file_meta};
use super::{Scanned, scan};

const PHOTOMETRIC: Tag = Tag(0x0028, 0x0004);
const PLANAR_CONFIGURATION: Tag = Tag(0x0028, 0x0006);
const EXTENDED_OFFSET_TABLE_LENGTHS: Tag = Tag(0x7FE0, 0x0002);

/// The file `bytes` (encapsulated, with a File Meta group) rewritten in Explicit VR
/// Little Endian with `frames` (each frame's native little-endian samples, in order,
/// interleaved) as its Pixel Data (OB for 8-bit samples, else OW), and `photometric` as
/// its Photometric Interpretation (Planar Configuration 0 when that changed).
///
/// Errors: the file is not encapsulated Explicit VR Little Endian, or an element cannot
/// be walked.
pub fn with_native_pixels(
    bytes: &[u8],
    frames: &[&[u8]],
    bits_allocated: u32,
    photometric: &str,
) -> Result<Vec<u8>, ScanError> {
    let start = locate_data_set(&mut SliceSource(bytes))?;
    if start.deflated || start.encoding != Encoding::EXPLICIT_LE {
        return Err(ScanError::malformed(
            "only an encapsulated Explicit VR Little Endian data set can take decoded pixels",
        ));
    }
    let record = match scan(&mut SliceSource(bytes))? {
        Scanned::Instance(r) => r,
        Scanned::Dicomdir => return Err(ScanError::malformed("a DICOMDIR is not an instance")),
    };
    let enc = Encoding::EXPLICIT_LE;
    let mut out = file_meta(
        &record.sop_class_uid,
        &record.sop_instance_uid,
        ts::EXPLICIT_VR_LE,
    );
    let mut w = DataSetWriter::new(enc);
    let stored_photometric = record
        .image
        .as_ref()
        .map(|i| i.photometric.trim().to_string());
    let recoloured = stored_photometric
        .as_deref()
        .is_some_and(|p| p != photometric);
    let mut pos = start.pos;
    let total = bytes.len() as u64;
    let mut wrote_pixels = false;
    while total.saturating_sub(pos) >= 8 {
        let h = decode_header(&bytes[pos as usize..], pos, enc)?;
        let end = if h.len != UNDEFINED {
            h.value_pos
                .checked_add(u64::from(h.len))
                .filter(|&e| e <= total)
                .ok_or_else(|| {
                    ScanError::truncated(format!("element {} runs past the file", h.tag))
                })?
        } else if h.tag == tags::PIXEL_DATA {
            skip_fragments(bytes, h.value_pos)?
        } else {
            let nested = if h.vr == Some(Vr::UN) {
                Encoding::IMPLICIT_LE
            } else {
                enc
            };
            skip_undefined_sequence(bytes, h.value_pos, nested)?
        };
        match h.tag {
            tags::PIXEL_DATA => {
                let data: Vec<u8> = frames.concat();
                let vr = if bits_allocated <= 8 { Vr::OB } else { Vr::OW };
                w.native_pixel_data(vr, &data);
                wrote_pixels = true;
            }
            tags::EXTENDED_OFFSET_TABLE | EXTENDED_OFFSET_TABLE_LENGTHS => {}
            Tag(_, 0x0000) => {}
            PHOTOMETRIC if recoloured => {
                w.str(PHOTOMETRIC, Vr::CS, photometric);
            }
            PLANAR_CONFIGURATION if recoloured => {
                w.us(PLANAR_CONFIGURATION, 0);
            }
            _ => {
                w.raw(&bytes[pos as usize..end as usize]);
            }
        }
        pos = end;
    }
    if !wrote_pixels {
        return Err(ScanError::malformed(
            "the data set has no Pixel Data to replace",
        ));
    }
    out.extend_from_slice(w.as_bytes());
    Ok(out)
}

/// The position after encapsulated Pixel Data whose items start at `pos`.
fn skip_fragments(b: &[u8], mut pos: u64) -> Result<u64, ScanError> {
    loop {
        let h = decode_header(
            b.get(pos as usize..).unwrap_or(&[]),
            pos,
            Encoding::IMPLICIT_LE,
        )?;
        match h.tag {
            tags::SEQUENCE_DELIMITATION => return Ok(h.value_pos),
            tags::ITEM if h.len != UNDEFINED => {
                pos = h
                    .value_pos
                    .checked_add(u64::from(h.len))
                    .filter(|&e| e <= b.len() as u64)
                    .ok_or_else(|| ScanError::truncated("a pixel data item runs past the file"))?;
            }
            other => {
                return Err(ScanError::malformed(format!(
                    "unexpected {other} in pixel data"
                )));
            }
        }
    }
}
