//! Checks of a compressed frame's own header against the image attributes, made before
//! a decoder sees the bytes.
//!
//! The decoders size their work from the codestream's header (JPEG SOF, JPEG 2000 SIZ,
//! the RLE segment table), not from Rows and Columns: a frame whose header lies (a
//! 65535 × 65535 SOF inside a 512 × 512 image) would make them allocate gigabytes, and
//! some adapters index the output by the header's sizes. So every frame's header must
//! describe exactly the image the data set declares before it is decoded.

use super::DecodeError;
use super::syntax::Family;
use crate::dicom::ImagePixelInfo;

/// Checks that `frame` (the concatenated fragments of one frame) starts with a header
/// of the `family`'s format that matches `image`'s Rows, Columns and Samples per Pixel
/// and a sample precision that fits Bits Allocated.
///
/// Returns what the decoder choice depends on.
///
/// Errors: [`DecodeError::Corrupt`] for a header that cannot be read or that disagrees;
/// [`DecodeError::Unsupported`] for a valid header no decoder here handles
/// (hierarchical JPEG).
pub(crate) fn check(
    family: Family,
    frame: &[u8],
    image: &ImagePixelInfo,
) -> Result<Header, DecodeError> {
    match family {
        Family::Jpeg | Family::JpegLs => jpeg(frame, image),
        Family::Jpeg2000 => j2k(frame, image).map(|()| Header::default()),
        Family::Rle => rle(frame, image).map(|()| Header::default()),
    }
}

/// What a checked header tells about the codestream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// For a JPEG DCT frame (SOF0-2, SOF9-10: not lossless, not JPEG-LS), its sample
    /// precision P (T.81 B.2.2: 8 or 12).
    pub jpeg_dct_precision: Option<u32>,
}

fn corrupt(what: impl Into<String>) -> DecodeError {
    DecodeError::Corrupt(what.into())
}

fn dims_match(
    kind: &str,
    rows: u64,
    cols: u64,
    comps: u64,
    precision: u32,
    image: &ImagePixelInfo,
) -> Result<(), DecodeError> {
    if rows != u64::from(image.rows)
        || cols != u64::from(image.columns)
        || comps != u64::from(image.samples_per_pixel.max(1))
    {
        return Err(corrupt(format!(
            "the {kind} header describes {cols}×{rows} with {comps} component(s); the data set \
             {}×{} with {} sample(s) per pixel",
            image.columns, image.rows, image.samples_per_pixel
        )));
    }
    if precision == 0 || precision > image.bits_allocated {
        return Err(corrupt(format!(
            "the {kind} header has {precision}-bit samples; Bits Allocated is {}",
            image.bits_allocated
        )));
    }
    Ok(())
}

/// JPEG (ITU-T T.81) and JPEG-LS (T.87): walks marker segments up to the first start of
/// frame (SOFn, or SOF55 for JPEG-LS) and compares its sizes.
fn jpeg(b: &[u8], image: &ImagePixelInfo) -> Result<Header, DecodeError> {
    if b.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err(corrupt("the frame does not start with a JPEG SOI marker"));
    }
    let mut pos = 2usize;
    loop {
        // Fill bytes (0xFF) may precede a marker (T.81 B.1.1.2).
        while b.get(pos) == Some(&0xFF) && b.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (b.get(pos), b.get(pos + 1)) else {
            return Err(corrupt(format!(
                "no JPEG marker at byte {pos} before the frame header"
            )));
        };
        let len = match b.get(pos + 2..pos + 4) {
            Some(l) => usize::from(u16::from_be_bytes([l[0], l[1]])),
            None => return Err(corrupt("the JPEG header ends inside a marker segment")),
        };
        if len < 2 {
            return Err(corrupt(format!("JPEG marker segment of length {len}")));
        }
        let seg = b
            .get(pos + 4..pos + 2 + len)
            .ok_or_else(|| corrupt("a JPEG marker segment runs past the frame"))?;
        match marker {
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC); SOF55 (F7) is JPEG-LS.
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                if matches!(marker, 0xC5..=0xC7 | 0xCD..=0xCF) {
                    return Err(DecodeError::Unsupported(
                        "hierarchical JPEG (SOF5-7, SOF13-15) cannot be decoded".into(),
                    ));
                }
                let lossless = matches!(marker, 0xC3 | 0xCB);
                return sof(seg, "JPEG", lossless, image);
            }
            0xF7 => return sof(seg, "JPEG-LS", true, image),
            0xD9 | 0xDA => {
                return Err(corrupt("the JPEG data has no frame header before its scan"));
            }
            _ => pos += 2 + len,
        }
    }
}

fn sof(
    seg: &[u8],
    kind: &str,
    lossless: bool,
    image: &ImagePixelInfo,
) -> Result<Header, DecodeError> {
    if seg.len() < 6 {
        return Err(corrupt(format!("{kind} frame header too short")));
    }
    let precision = u32::from(seg[0]);
    let rows = u64::from(u16::from_be_bytes([seg[1], seg[2]]));
    let cols = u64::from(u16::from_be_bytes([seg[3], seg[4]]));
    let comps = u64::from(seg[5]);
    if seg.len() < 6 + 3 * comps as usize {
        return Err(corrupt(format!(
            "{kind} frame header lists fewer components than it declares"
        )));
    }
    // Rows 0 in a SOF means "given by a DNL marker later": not used in DICOM.
    dims_match(kind, rows, cols, comps, precision, image)?;
    // Subsampled components (H or V sampling > 1 relative to the others) are fine: the
    // decoders upsample to the frame size.
    Ok(Header {
        jpeg_dct_precision: (kind == "JPEG" && !lossless).then_some(precision),
    })
}

/// JPEG 2000 (ITU-T T.800): a raw codestream (SOC, SIZ) or a JP2 file (then the
/// codestream inside its `jp2c` box).
fn j2k(b: &[u8], image: &ImagePixelInfo) -> Result<(), DecodeError> {
    let cs = if b.get(..2) == Some(&[0xFF, 0x4F]) {
        b
    } else if b.get(4..8) == Some(b"jP  ") {
        jp2_codestream(b)?
    } else {
        return Err(corrupt(
            "the frame starts with neither a JPEG 2000 SOC marker nor a JP2 signature",
        ));
    };
    // SIZ follows SOC immediately (T.800 A.5).
    if cs.get(2..4) != Some(&[0xFF, 0x51]) {
        return Err(corrupt(
            "the JPEG 2000 codestream has no SIZ marker after SOC",
        ));
    }
    let siz = cs
        .get(4..)
        .ok_or_else(|| corrupt("the JPEG 2000 SIZ marker is truncated"))?;
    let u32_at = |o: usize| {
        siz.get(o..o + 4)
            .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
    };
    let (Some(xsiz), Some(ysiz), Some(x0), Some(y0)) =
        (u32_at(4), u32_at(8), u32_at(12), u32_at(16))
    else {
        return Err(corrupt("the JPEG 2000 SIZ marker is truncated"));
    };
    let csiz = siz
        .get(36..38)
        .map(|v| u64::from(u16::from_be_bytes([v[0], v[1]])))
        .ok_or_else(|| corrupt("the JPEG 2000 SIZ marker is truncated"))?;
    if x0 > xsiz || y0 > ysiz {
        return Err(corrupt("the JPEG 2000 image offset lies outside the image"));
    }
    let (cols, rows) = (u64::from(xsiz - x0), u64::from(ysiz - y0));
    let mut precision = 0u32;
    for c in 0..csiz as usize {
        let comp = siz.get(38 + 3 * c..41 + 3 * c).ok_or_else(|| {
            corrupt("the JPEG 2000 SIZ marker lists fewer components than it declares")
        })?;
        // Ssiz: bit 7 is the sign, bits 0-6 the precision minus one.
        precision = precision.max(u32::from(comp[0] & 0x7F) + 1);
        if comp[1] != 1 || comp[2] != 1 {
            return Err(DecodeError::Unsupported(
                "JPEG 2000 components subsampled in the codestream cannot be decoded".into(),
            ));
        }
    }
    dims_match("JPEG 2000", rows, cols, csiz, precision, image)
}

/// The `jp2c` box's contents of a JP2 file (ISO/IEC 15444-1 Annex I).
fn jp2_codestream(b: &[u8]) -> Result<&[u8], DecodeError> {
    let mut pos = 0usize;
    while pos + 8 <= b.len() {
        let len = u32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]]) as u64;
        let kind = &b[pos + 4..pos + 8];
        let (header, len) = match len {
            0 => (8u64, (b.len() - pos) as u64),
            1 => {
                let ext = b
                    .get(pos + 8..pos + 16)
                    .ok_or_else(|| corrupt("a JP2 box header is truncated"))?;
                (16, u64::from_be_bytes(ext.try_into().expect("8 bytes")))
            }
            n => (8, n),
        };
        if len < header {
            return Err(corrupt("a JP2 box is shorter than its header"));
        }
        if kind == b"jp2c" {
            return Ok(&b[pos + header as usize..]);
        }
        pos = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .ok_or_else(|| corrupt("a JP2 box runs past the frame"))?;
    }
    Err(corrupt("the JP2 file has no codestream box"))
}

/// RLE Lossless (PS3.5 Annex G): a 64-byte header of 16 little-endian u32 values, the
/// number of segments then their offsets. There must be one segment per byte of each
/// sample (Samples per Pixel × Bits Allocated / 8), each starting after the header and
/// in order.
fn rle(b: &[u8], image: &ImagePixelInfo) -> Result<(), DecodeError> {
    let header = b
        .get(..64)
        .ok_or_else(|| corrupt("the RLE frame is shorter than its 64-byte header"))?;
    let word = |i: usize| u32::from_le_bytes(header[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    let segments = word(0);
    let want = image.samples_per_pixel.max(1) * image.bits_allocated.div_ceil(8);
    if segments != want {
        return Err(corrupt(format!(
            "the RLE header has {segments} segment(s); {} sample(s) of {} bits need {want}",
            image.samples_per_pixel, image.bits_allocated
        )));
    }
    let mut last = 63u32;
    for i in 1..=segments as usize {
        let off = word(i);
        if off <= last || off as usize > b.len() {
            return Err(corrupt(format!(
                "RLE segment {i} starts at {off}, out of order or past the frame"
            )));
        }
        last = off;
    }
    // Each segment must decode to a whole plane: the registry's adapter indexes its
    // output by Rows × Columns and would panic on a short segment.
    let plane = u64::from(image.rows) * u64::from(image.columns);
    for i in 1..=segments as usize {
        let end = if i < segments as usize {
            word(i + 1) as usize
        } else {
            b.len()
        };
        if packbits_len(&b[word(i) as usize..end], plane) < plane {
            return Err(corrupt(format!(
                "RLE segment {i} decodes to fewer than the {plane} bytes of a plane"
            )));
        }
    }
    Ok(())
}

/// How many bytes the PackBits `segment` (PS3.5 G.3.1) decodes to, counting stops once
/// `limit` is reached; a literal run cut short by the segment's end counts only up to it.
fn packbits_len(segment: &[u8], limit: u64) -> u64 {
    let (mut out, mut at) = (0u64, 0usize);
    while out < limit && at < segment.len() {
        let n = segment[at] as i8;
        at += 1;
        match n {
            0..=127 => {
                let run = n as usize + 1;
                if at + run > segment.len() {
                    return out;
                }
                out += run as u64;
                at += run;
            }
            -127..=-1 => {
                if at >= segment.len() {
                    return out;
                }
                out += (1 - i64::from(n)) as u64;
                at += 1;
            }
            -128 => {}
        }
    }
    out
}

/// For a JPEG frame whose data set says RGB (PS3.5 8.2.1: the components were coded
/// without a colour transform), the frame with its component identifiers rewritten to
/// 'R', 'G', 'B' in the frame header and every scan header, which is how the decoder is
/// told not to apply the YCbCr transform it otherwise assumes for three components
/// identified 1, 2, 3 or 0, 1, 2. `None` when nothing needs rewriting or the stream
/// cannot be walked (the decoder then reports the damage).
pub(crate) fn jpeg_as_rgb(b: &[u8]) -> Option<Vec<u8>> {
    const RGB: [u8; 3] = [b'R', b'G', b'B'];
    let mut out = b.to_vec();
    let mut ids: Option<[u8; 3]> = None;
    let mut pos = 2usize;
    while pos + 4 <= b.len() {
        if b[pos] != 0xFF {
            return None;
        }
        let marker = b[pos + 1];
        match marker {
            0xFF => {
                pos += 1;
                continue;
            }
            0xD9 => break,
            0x01 | 0xD0..=0xD7 => {
                pos += 2;
                continue;
            }
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([b[pos + 2], b[pos + 3]]));
        let seg_end = pos
            .checked_add(2 + len)
            .filter(|&e| e <= b.len() && len >= 2)?;
        match marker {
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let n = usize::from(*b.get(pos + 9)?);
                if n != 3 || seg_end < pos + 10 + 9 {
                    return None;
                }
                let found = [b[pos + 10], b[pos + 13], b[pos + 16]];
                if found == RGB {
                    return None;
                }
                for (k, id) in RGB.iter().enumerate() {
                    out[pos + 10 + 3 * k] = *id;
                }
                ids = Some(found);
            }
            0xDA => {
                let map = ids?;
                let n = usize::from(*b.get(pos + 4)?);
                if seg_end < pos + 5 + 2 * n {
                    return None;
                }
                for k in 0..n {
                    let at = pos + 5 + 2 * k;
                    let c = map.iter().position(|&id| id == b[at])?;
                    out[at] = RGB[c];
                }
                // Entropy-coded data follows: go to the next marker that is not a
                // stuffed 0xFF00, a restart marker or fill.
                pos = seg_end;
                while pos + 1 < b.len() {
                    if b[pos] == 0xFF && !matches!(b[pos + 1], 0x00 | 0xFF | 0xD0..=0xD7) {
                        break;
                    }
                    pos += 1;
                }
                continue;
            }
            _ => {}
        }
        pos = seg_end;
    }
    ids.map(|_| out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(rows: u32, cols: u32, spp: u32, bits: u32) -> ImagePixelInfo {
        ImagePixelInfo {
            rows,
            columns: cols,
            samples_per_pixel: spp,
            bits_allocated: bits,
            bits_stored: bits,
            photometric: "MONOCHROME2".into(),
            frames: 1,
            ..Default::default()
        }
    }

    fn jpeg_with_sof(marker: u8, precision: u8, rows: u16, cols: u16, comps: u8) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, marker];
        let len = 8 + 3 * u16::from(comps);
        v.extend_from_slice(&len.to_be_bytes());
        v.push(precision);
        v.extend_from_slice(&rows.to_be_bytes());
        v.extend_from_slice(&cols.to_be_bytes());
        v.push(comps);
        for c in 0..comps {
            v.extend_from_slice(&[c + 1, 0x11, 0]);
        }
        v
    }

    #[test]
    fn jpeg_headers() {
        let im = image(512, 256, 1, 16);
        assert!(jpeg(&jpeg_with_sof(0xC3, 16, 512, 256, 1), &im).is_ok());
        // A lying SOF: larger than the data set says.
        let e = jpeg(&jpeg_with_sof(0xC3, 16, 65535, 65535, 1), &im).unwrap_err();
        assert!(matches!(e, DecodeError::Corrupt(_)), "{e}");
        // Too many bits for the container.
        assert!(
            jpeg(
                &jpeg_with_sof(0xC3, 16, 512, 256, 1),
                &image(512, 256, 1, 8)
            )
            .is_err()
        );
        // 12-bit DCT: valid, and told apart from 8-bit DCT and lossless.
        let dct = |m, p| jpeg(&jpeg_with_sof(m, p, 512, 256, 1), &im).unwrap();
        assert_eq!(dct(0xC1, 12).jpeg_dct_precision, Some(12));
        assert_eq!(dct(0xC0, 8).jpeg_dct_precision, Some(8));
        assert_eq!(dct(0xC3, 12).jpeg_dct_precision, None);
        // Truncated inside the SOF, and no SOI.
        let full = jpeg_with_sof(0xC0, 8, 512, 256, 1);
        for cut in 0..full.len() {
            assert!(
                jpeg(&full[..cut], &image(512, 256, 1, 8)).is_err(),
                "cut {cut}"
            );
        }
        assert!(jpeg(&[0xFF, 0xD8, 0xFF, 0xDA, 0, 2], &im).is_err());
    }

    fn j2k_siz(w: u32, h: u32, comps: u16, ssiz: u8) -> Vec<u8> {
        let mut v = vec![0xFF, 0x4F, 0xFF, 0x51];
        v.extend_from_slice(&(38 + 3 * comps).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        for x in [w, h, 0, 0, w, h, 0, 0] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(&comps.to_be_bytes());
        for _ in 0..comps {
            v.extend_from_slice(&[ssiz, 1, 1]);
        }
        v
    }

    #[test]
    fn j2k_headers() {
        let im = image(64, 32, 3, 8);
        assert!(j2k(&j2k_siz(32, 64, 3, 7), &im).is_ok());
        assert!(j2k(&j2k_siz(64, 32, 3, 7), &im).is_err());
        assert!(j2k(&j2k_siz(32, 64, 4, 7), &im).is_err());
        assert!(
            j2k(&j2k_siz(32, 64, 3, 15), &im).is_err(),
            "16-bit samples in 8 bits"
        );
        let full = j2k_siz(32, 64, 3, 7);
        for cut in 0..full.len() {
            assert!(j2k(&full[..cut], &im).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn rle_headers() {
        let im = image(2, 2, 1, 16);
        let mut h = vec![0u8; 64];
        h[0] = 2;
        h[4] = 64;
        h[8] = 66;
        // Two segments, each a plane of four zero bytes (a repeat run).
        h.extend_from_slice(&[0xFD, 0, 0xFD, 0]);
        assert!(rle(&h, &im).is_ok());
        let mut bad = h.clone();
        bad[0] = 15;
        assert!(rle(&bad, &im).is_err());
        let mut bad = h.clone();
        bad[8] = 60;
        assert!(rle(&bad, &im).is_err());
        assert!(rle(&h[..63], &im).is_err());
    }

    #[test]
    fn rle_segments_must_fill_their_plane() {
        // 2x2, 8-bit: one segment of 4 bytes.
        let im = image(2, 2, 1, 8);
        let frame = |segment: &[u8]| {
            let mut h = vec![0u8; 64];
            h[0] = 1;
            h[4] = 64;
            h.extend_from_slice(segment);
            h
        };
        assert!(rle(&frame(&[3, 1, 2, 3, 4]), &im).is_ok()); // literal run of 4
        assert!(rle(&frame(&[0xFD, 9]), &im).is_ok()); // repeat 9 four times
        assert!(rle(&frame(&[0x80, 0xFF, 9, 1, 7, 8]), &im).is_ok()); // no-op, 9 twice, 2 literals
        assert!(rle(&frame(&[2, 1, 2, 3]), &im).is_err()); // three bytes only
        assert!(rle(&frame(&[3, 1, 2]), &im).is_err()); // literal run cut short
        assert!(rle(&frame(&[0xFE]), &im).is_err()); // repeat without its byte
        assert!(rle(&frame(&[]), &im).is_err()); // empty segment
        // Longer than a plane is fine: the adapter takes Rows x Columns.
        assert!(rle(&frame(&[0xF0, 1]), &im).is_ok());
    }

    #[test]
    fn rgb_component_ids() {
        let mut f = jpeg_with_sof(0xC0, 8, 2, 2, 3);
        f.extend_from_slice(&[0xFF, 0xDA, 0, 12, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 63, 0]);
        f.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD9]);
        let out = jpeg_as_rgb(&f).expect("rewritten");
        assert_eq!(out.len(), f.len());
        let sof = out.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        assert_eq!([out[sof + 10], out[sof + 13], out[sof + 16]], *b"RGB");
        let sos = out.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        assert_eq!([out[sos + 5], out[sos + 7], out[sos + 9]], *b"RGB");
        assert!(jpeg_as_rgb(&out).is_none(), "already R, G, B");
        assert!(jpeg_as_rgb(&f[..20]).is_none());
    }
}
