//! Decoding one encapsulated frame to native little-endian samples, through the
//! `dicom-transfer-syntax-registry` codecs.
//!
//! sia hands the codec one frame's bytes (the frame table already knows where they are)
//! through a [`PixelDataObject`] that holds just that frame, so no data set is parsed by
//! dicom-rs and no other frame is read. Before the codec runs, the output size is
//! computed from Rows × Columns × Samples per Pixel × Bits Allocated and refused past the
//! cap, and the codestream's own header is checked against those attributes.

use std::borrow::Cow;

use dicom_encoding::adapters::{PixelDataObject, RawPixelData};
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use dicom_encoding::adapters::PixelDataReader;

use super::{DecodeError, codestream, jpeg12, rle32, syntax};
use crate::dicom::ImagePixelInfo;

/// Bytes of one decoded frame of `image`: Rows × Columns × Samples per Pixel × Bits
/// Allocated / 8, samples interleaved. `None` on overflow.
pub fn decoded_frame_len(image: &ImagePixelInfo) -> Option<u64> {
    u64::from(image.rows)
        .checked_mul(u64::from(image.columns))?
        .checked_mul(u64::from(image.samples_per_pixel.max(1)))?
        .checked_mul(u64::from(image.bits_allocated.div_ceil(8)))
}

/// The Photometric Interpretation of frames as [`decode_frame`] returns them: colour
/// JPEG and JPEG 2000 frames come out RGB (their decoders apply the colour transform,
/// and RGB-coded JPEG is told not to); everything else keeps the data set's.
pub fn decoded_photometric<'a>(transfer_syntax: &str, image: &'a ImagePixelInfo) -> &'a str {
    match syntax::family(transfer_syntax) {
        Some(syntax::Family::Jpeg | syntax::Family::Jpeg2000) if image.samples_per_pixel == 3 => {
            "RGB"
        }
        _ => image.photometric.as_str(),
    }
}

/// Decodes one frame of `transfer_syntax` whose encoded bytes (its fragments,
/// concatenated) are `encoded`, into native pixel data: little endian, samples
/// interleaved (Planar Configuration 0), exactly [`decoded_frame_len`] bytes.
///
/// Colour comes out as the codec reconstructs it: JPEG colour frames as RGB (the decoder
/// applies the YCbCr transform), JPEG 2000 frames with a multiple-component transform as
/// RGB, RLE and JPEG-LS frames in their stored Photometric Interpretation. Monochrome
/// frames keep theirs (MONOCHROME1 stays inverted; PALETTE COLOR stays indices).
///
/// Errors: [`DecodeError::Unsupported`] for a syntax this build has no codec for, Bits
/// Allocated other than 8 or 16, or a codestream feature the codec lacks;
/// [`DecodeError::TooLarge`] when the frame would exceed `max_bytes`;
/// [`DecodeError::Corrupt`] when the codestream disagrees with the data set or the codec
/// fails. Never panics: a panic inside a codec becomes `Corrupt`.
pub fn decode_frame(
    transfer_syntax: &str,
    image: &ImagePixelInfo,
    encoded: &[u8],
    max_bytes: u64,
) -> Result<Vec<u8>, DecodeError> {
    let family = syntax::family(transfer_syntax).ok_or_else(|| {
        DecodeError::Unsupported(format!(
            "sia does not decode transfer syntax {transfer_syntax}"
        ))
    })?;
    let reader = TransferSyntaxRegistry
        .get(transfer_syntax)
        .and_then(|ts| ts.pixel_data_reader())
        .ok_or_else(|| {
            DecodeError::Unsupported(format!(
                "this build of sia has no decoder for transfer syntax {transfer_syntax} \
                 (see the README's pixel data table for the cargo feature)"
            ))
        })?;
    // 32-bit samples: RLE only (PS3.5 Annex G allows any byte count per sample; the JPEG
    // family codestreams carry at most 16-bit samples).
    let depth_ok = match image.bits_allocated {
        8 | 16 => true,
        32 => family == syntax::Family::Rle,
        _ => false,
    };
    if !depth_ok {
        return Err(DecodeError::Unsupported(format!(
            "compressed frames with Bits Allocated {} cannot be decoded (8 or 16, and 32 \
             for RLE)",
            image.bits_allocated
        )));
    }
    if image.rows == 0 || image.columns == 0 || image.rows > 65535 || image.columns > 65535 {
        return Err(DecodeError::Corrupt(format!(
            "Rows {} and Columns {} make no image",
            image.rows, image.columns
        )));
    }
    if !matches!(image.samples_per_pixel.max(1), 1 | 3) {
        return Err(DecodeError::Unsupported(format!(
            "{} samples per pixel cannot be decoded (1 or 3 only)",
            image.samples_per_pixel
        )));
    }
    let want = decoded_frame_len(image)
        .ok_or_else(|| DecodeError::Corrupt("the image dimensions overflow".into()))?;
    if want > max_bytes {
        return Err(DecodeError::TooLarge(format!(
            "a decoded frame of {want} bytes exceeds the {max_bytes}-byte limit"
        )));
    }
    let header = codestream::check(family, encoded, image)?;
    let rgb;
    let encoded = if family == syntax::Family::Jpeg && image.photometric == "RGB" {
        rgb = codestream::jpeg_as_rgb(encoded);
        rgb.as_deref().unwrap_or(encoded)
    } else {
        encoded
    };
    let registry = |data: &[u8], image: &ImagePixelInfo| {
        let want = decoded_frame_len(image).unwrap_or(u64::MAX);
        through_registry(&**reader, transfer_syntax, family, image, data, want)
    };
    let mut out = if family == syntax::Family::Rle && image.bits_allocated == 32 {
        rle32::decode(encoded, image, registry)?
    } else if header.jpeg_dct_precision.is_some_and(|p| p != 8) {
        jpeg12::decode(encoded, image)?
    } else {
        registry(encoded, image)?
    };
    if out.len() as u64 != want {
        return Err(DecodeError::Corrupt(format!(
            "the {family:?} decoder produced {} bytes; the image needs {want}",
            out.len()
        )));
    }
    if image.pixel_representation == 1 {
        sign_extend(&mut out, image.bits_allocated, image.bits_stored);
    }
    Ok(out)
}

/// Signed samples (Pixel Representation 1) as two's complement over the whole
/// container: a codec may hand back a signed value of Bits Stored bits with the unused
/// high bits clear (a JPEG 2000 codestream that calls its samples unsigned, a JPEG
/// Lossless one, which has no sign), and Explicit VR Little Endian readers take the
/// container as the value. pydicom reads such frames the same way.
fn sign_extend(out: &mut [u8], bits_allocated: u32, bits_stored: u32) {
    if bits_stored == 0 || bits_stored >= bits_allocated {
        return;
    }
    let shift = bits_allocated - bits_stored;
    match bits_allocated {
        8 => out
            .iter_mut()
            .for_each(|b| *b = (((*b << shift) as i8) >> shift) as u8),
        16 => out.chunks_exact_mut(2).for_each(|c| {
            let v = (i16::from_le_bytes([c[0], c[1]]) << shift) >> shift;
            c.copy_from_slice(&v.to_le_bytes());
        }),
        32 => out.chunks_exact_mut(4).for_each(|c| {
            let v = (i32::from_le_bytes([c[0], c[1], c[2], c[3]]) << shift) >> shift;
            c.copy_from_slice(&v.to_le_bytes());
        }),
        _ => {}
    }
}

/// One frame presented to a dicom-rs codec as a single-frame, single-fragment object.
struct OneFrame<'a> {
    transfer_syntax: &'a str,
    image: &'a ImagePixelInfo,
    data: &'a [u8],
}

impl PixelDataObject for OneFrame<'_> {
    fn transfer_syntax_uid(&self) -> &str {
        self.transfer_syntax
    }

    fn rows(&self) -> Option<u16> {
        u16::try_from(self.image.rows).ok()
    }

    fn cols(&self) -> Option<u16> {
        u16::try_from(self.image.columns).ok()
    }

    fn samples_per_pixel(&self) -> Option<u16> {
        u16::try_from(self.image.samples_per_pixel.max(1)).ok()
    }

    fn bits_allocated(&self) -> Option<u16> {
        u16::try_from(self.image.bits_allocated).ok()
    }

    fn bits_stored(&self) -> Option<u16> {
        u16::try_from(self.image.bits_stored).ok()
    }

    fn photometric_interpretation(&self) -> Option<&str> {
        Some(self.image.photometric.as_str())
    }

    fn number_of_frames(&self) -> Option<u32> {
        Some(1)
    }

    fn number_of_fragments(&self) -> Option<u32> {
        Some(1)
    }

    fn fragment(&self, fragment: usize) -> Option<Cow<'_, [u8]>> {
        (fragment == 0).then_some(Cow::Borrowed(self.data))
    }

    fn offset_table(&self) -> Option<Cow<'_, [u32]>> {
        Some(Cow::Owned(vec![0]))
    }

    fn raw_pixel_data(&self) -> Option<RawPixelData> {
        let mut fragments = dicom_encoding::adapters::RawPixelData {
            fragments: Default::default(),
            offset_table: Default::default(),
        };
        fragments.fragments.push(self.data.to_vec());
        fragments.offset_table.push(0);
        Some(fragments)
    }
}

/// One frame through the registry's `reader`: the output reserved up front (`want`
/// bytes, already checked against the caps), a codec panic turned into an error.
fn through_registry(
    reader: &dyn PixelDataReader,
    transfer_syntax: &str,
    family: syntax::Family,
    image: &ImagePixelInfo,
    encoded: &[u8],
    want: u64,
) -> Result<Vec<u8>, DecodeError> {
    let object = OneFrame {
        transfer_syntax,
        image,
        data: encoded,
    };
    let mut out = Vec::new();
    out.try_reserve_exact(want as usize)
        .map_err(|_| DecodeError::TooLarge(format!("cannot allocate {want} bytes")))?;
    // The header check rules out the inputs known to make the adapters index past their
    // buffers; a panic left in a codec must still cost one request, not the host.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        reader.decode_frame(&object, 0, &mut out)
    }));
    match decoded {
        Ok(Ok(())) => Ok(out),
        Ok(Err(e)) => Err(DecodeError::Corrupt(format!(
            "the {family:?} decoder failed: {e}"
        ))),
        Err(_) => Err(DecodeError::Corrupt(format!(
            "the {family:?} decoder panicked"
        ))),
    }
}
