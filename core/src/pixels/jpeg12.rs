//! 12-bit JPEG DCT frames (ITU-T T.81 processes 2 and 4; DICOM's JPEG Extended,
//! 1.2.840.10008.1.2.4.51, and 12-bit frames of any DCT syntax) through libjpeg-turbo's
//! TurboJPEG 3 API (`turbojpeg-sys`, the C library built from the crate's bundled
//! source), behind the `jpeg12` cargo feature.
//!
//! The pure-Rust decoders of the registry (`jpeg-decoder`) and `zune-jpeg` decode 8-bit
//! DCT only; libjpeg-turbo 3 decodes 12-bit DCT with `tj3Decompress12`. This is an FFI
//! module: the one place in `pixels` with `unsafe`, each call's contract stated where
//! it is made. Lossless and 8-bit JPEG stay with the registry's decoder.
#![allow(unsafe_code)]

use super::DecodeError;
use crate::dicom::ImagePixelInfo;

/// Decodes one 12-bit JPEG DCT frame of `image` (its SOF already checked against Rows,
/// Columns and Samples per Pixel by `codestream::check`) into little-endian 16-bit
/// samples, interleaved: Rows × Columns × Samples × 2 bytes. Three-component frames
/// come out RGB (the YCbCr transform applied unless the component identifiers say R, G,
/// B, which `codestream::jpeg_as_rgb` writes for RGB data sets).
///
/// Bounded: libjpeg-turbo refuses images of more pixels than Rows × Columns and
/// progressive frames of more than 1,000 scans; the output is allocated by the caller's
/// checked size.
///
/// Errors: [`DecodeError::Unsupported`] in a build without the `jpeg12` feature, and for
/// a precision other than 12; [`DecodeError::Corrupt`] when libjpeg-turbo reports an
/// error or a warning (a damaged frame decodes to filler grey with only a warning: the
/// client must not get that as its pixels).
#[cfg(feature = "jpeg12")]
pub(super) fn decode(frame: &[u8], image: &ImagePixelInfo) -> Result<Vec<u8>, DecodeError> {
    use std::ffi::{CStr, c_int};
    use turbojpeg_sys as tj;

    let corrupt = |what: &str| DecodeError::Corrupt(format!("the 12-bit JPEG decoder: {what}"));
    let samples = image.samples_per_pixel.max(1) as usize;
    let (rows, columns) = (image.rows as usize, image.columns as usize);
    let pixels = rows
        .checked_mul(columns)
        .and_then(|p| c_int::try_from(p).ok())
        .ok_or_else(|| DecodeError::TooLarge("more pixels than libjpeg-turbo takes".into()))?;
    let len = rows * columns * samples;
    let mut out: Vec<i16> = Vec::new();
    out.try_reserve_exact(len)
        .map_err(|_| DecodeError::TooLarge(format!("cannot allocate {len} samples")))?;
    out.resize(len, 0);

    /// The TurboJPEG handle, destroyed on every return path.
    struct Handle(tj::tjhandle);
    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: `self.0` came from `tj3Init`, is not null and is destroyed once.
            unsafe { tj::tj3Destroy(self.0) }
        }
    }
    // SAFETY: tj3Init takes an init type and returns a new handle or null.
    let raw = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as c_int) };
    if raw.is_null() {
        return Err(DecodeError::TooLarge(
            "libjpeg-turbo could not allocate a decompressor".into(),
        ));
    }
    let h = Handle(raw);
    let message = |h: &Handle| -> String {
        // SAFETY: the handle is live; tj3GetErrorStr returns a NUL-terminated string
        // owned by the handle (or a static one), valid until the next call on it.
        unsafe { CStr::from_ptr(tj::tj3GetErrorStr(h.0)) }
            .to_string_lossy()
            .into_owned()
    };
    for (param, value) in [
        (tj::TJPARAM_TJPARAM_MAXPIXELS, pixels),
        (tj::TJPARAM_TJPARAM_SCANLIMIT, 1000),
        (tj::TJPARAM_TJPARAM_STOPONWARNING, 1),
    ] {
        // SAFETY: a live handle and a parameter of the TJPARAM enumeration.
        if unsafe { tj::tj3Set(h.0, param as c_int, value) } != 0 {
            return Err(corrupt(&message(&h)));
        }
    }
    // SAFETY: `frame` is a live slice of `frame.len()` bytes, only read.
    if unsafe { tj::tj3DecompressHeader(h.0, frame.as_ptr(), frame.len() as _) } != 0 {
        return Err(corrupt(&message(&h)));
    }
    // SAFETY: a live handle whose header was read.
    let get = |param: tj::TJPARAM| unsafe { tj::tj3Get(h.0, param as c_int) };
    let precision = get(tj::TJPARAM_TJPARAM_PRECISION);
    if precision != 12 || get(tj::TJPARAM_TJPARAM_LOSSLESS) == 1 {
        return Err(DecodeError::Unsupported(format!(
            "JPEG DCT frames of {precision}-bit precision (8 or 12 only)"
        )));
    }
    let (width, height) = (
        get(tj::TJPARAM_TJPARAM_JPEGWIDTH),
        get(tj::TJPARAM_TJPARAM_JPEGHEIGHT),
    );
    if usize::try_from(width).ok() != Some(columns) || usize::try_from(height).ok() != Some(rows) {
        return Err(corrupt(&format!(
            "the frame is {width}×{height}; the data set says {columns}×{rows}"
        )));
    }
    let format = if samples == 3 {
        tj::TJPF_TJPF_RGB
    } else {
        tj::TJPF_TJPF_GRAY
    };
    // SAFETY: `out` holds Rows × Columns × Samples i16 values, which is what a pitch of
    // 0 (Columns × the format's samples, unpadded) over Rows rows of the checked size
    // writes; `frame` is only read.
    let status = unsafe {
        tj::tj3Decompress12(
            h.0,
            frame.as_ptr(),
            frame.len() as _,
            out.as_mut_ptr(),
            0,
            format as c_int,
        )
    };
    if status != 0 {
        return Err(corrupt(&message(&h)));
    }
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(2 * len)
        .map_err(|_| DecodeError::TooLarge(format!("cannot allocate {} bytes", 2 * len)))?;
    bytes.extend(out.iter().flat_map(|v| v.to_le_bytes()));
    Ok(bytes)
}

/// Without the `jpeg12` feature: refused with the reason.
#[cfg(not(feature = "jpeg12"))]
pub(super) fn decode(_frame: &[u8], _image: &ImagePixelInfo) -> Result<Vec<u8>, DecodeError> {
    Err(DecodeError::Unsupported(
        "12-bit JPEG DCT (processes 2/4) needs sia built with the jpeg12 cargo feature \
         (libjpeg-turbo); the pure-Rust JPEG decoders decode 8-bit DCT only"
            .into(),
    ))
}

#[cfg(all(test, feature = "jpeg12"))]
mod tests {
    use super::*;
    use std::ffi::c_int;
    use turbojpeg_sys as tj;

    /// A 12-bit greyscale JPEG (process 4, quality 100) of `samples`, `width` wide,
    /// written by libjpeg-turbo's own encoder.
    fn encode12(samples: &[i16], width: usize) -> Vec<u8> {
        let height = samples.len() / width;
        // SAFETY: a new handle, destroyed below; `samples` holds width × height values
        // and the encoder allocates `buf`, freed with tj3Free after it is copied.
        unsafe {
            let h = tj::tj3Init(tj::TJINIT_TJINIT_COMPRESS as c_int);
            assert!(!h.is_null());
            tj::tj3Set(h, tj::TJPARAM_TJPARAM_QUALITY as c_int, 100);
            tj::tj3Set(
                h,
                tj::TJPARAM_TJPARAM_SUBSAMP as c_int,
                tj::TJSAMP_TJSAMP_GRAY as c_int,
            );
            let (mut buf, mut len) = (std::ptr::null_mut(), 0);
            let status = tj::tj3Compress12(
                h,
                samples.as_ptr(),
                width as c_int,
                0,
                height as c_int,
                tj::TJPF_TJPF_GRAY as c_int,
                &mut buf,
                &mut len,
            );
            assert_eq!(status, 0);
            let out = std::slice::from_raw_parts(buf, len as usize).to_vec();
            tj::tj3Free(buf.cast());
            tj::tj3Destroy(h);
            out
        }
    }

    fn image(rows: u32, columns: u32) -> ImagePixelInfo {
        ImagePixelInfo {
            rows,
            columns,
            samples_per_pixel: 1,
            bits_allocated: 16,
            bits_stored: 12,
            photometric: "MONOCHROME2".into(),
            frames: 1,
            ..Default::default()
        }
    }

    #[test]
    fn twelve_bit_frames_decode_and_damage_is_an_error() {
        let (w, h) = (24usize, 16usize);
        let samples: Vec<i16> = (0..w * h).map(|i| ((i * 4095) / (w * h)) as i16).collect();
        let jpeg = encode12(&samples, w);
        let out = decode(&jpeg, &image(h as u32, w as u32)).expect("decodes");
        assert_eq!(out.len(), 2 * w * h);
        let worst = out
            .chunks_exact(2)
            .zip(&samples)
            .map(|(b, &s)| (i16::from_le_bytes([b[0], b[1]]) - s).abs())
            .max()
            .unwrap();
        assert!(worst <= 8, "quality 100 differs by {worst}");
        // Sizes that disagree with the data set, and every truncation: errors, no panic.
        assert!(decode(&jpeg, &image(h as u32, w as u32 + 1)).is_err());
        for cut in (0..jpeg.len() - 2).step_by(7) {
            assert!(
                decode(&jpeg[..cut], &image(h as u32, w as u32)).is_err(),
                "cut at {cut}"
            );
        }
    }
}
