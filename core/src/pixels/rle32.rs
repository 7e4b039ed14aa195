//! RLE Lossless frames of Bits Allocated 32 (PS3.5 Annex G), through the registry's
//! RLE adapter, which decodes 8- and 16-bit samples only.
//!
//! An RLE frame holds one segment per byte of each sample, the most significant byte
//! first, sample after sample (PS3.5 G.2): the four segments of a 32-bit sample are the
//! two segments of its high 16 bits followed by the two of its low 16 bits. So the
//! frame is split into two 16-bit RLE frames with the same header layout — the high
//! halves and the low halves of every sample — each is decoded by the adapter, and the
//! halves are joined into little-endian 32-bit samples. The PackBits decoding stays the
//! library's; only the segment table is rewritten here.

use super::DecodeError;
use crate::dicom::ImagePixelInfo;

/// Decodes one RLE frame of `image` (Bits Allocated 32, `frame` already checked by
/// `codestream::check`: 4 × Samples per Pixel segments, in order, each filling a
/// plane) with `decode16`, which decodes a 16-bit RLE frame of the image it is given.
/// Returns the samples little endian, interleaved, Rows × Columns × Samples × 4 bytes.
///
/// Errors: [`DecodeError::Corrupt`] for a segment table that does not describe 32-bit
/// samples, and whatever `decode16` answers.
pub(super) fn decode(
    frame: &[u8],
    image: &ImagePixelInfo,
    decode16: impl Fn(&[u8], &ImagePixelInfo) -> Result<Vec<u8>, DecodeError>,
) -> Result<Vec<u8>, DecodeError> {
    let samples = image.samples_per_pixel.max(1) as usize;
    let segments = segments(frame, 4 * samples)?;
    let half_image = ImagePixelInfo {
        bits_allocated: 16,
        bits_stored: 16,
        // Signed samples are sign-extended by the caller over the whole 32 bits.
        pixel_representation: 0,
        ..image.clone()
    };
    // Half 0: the high 16 bits of each sample (its segments 1 and 2); half 1: the low.
    let half = |h: usize| -> Result<Vec<u8>, DecodeError> {
        let picked: Vec<&[u8]> = (0..samples)
            .flat_map(|s| [segments[4 * s + 2 * h], segments[4 * s + 2 * h + 1]])
            .collect();
        decode16(&rle_frame(&picked)?, &half_image)
    };
    let (high, low) = (half(0)?, half(1)?);
    if high.len() != low.len() || high.len() % 2 != 0 {
        return Err(DecodeError::Corrupt(
            "the two halves of a 32-bit RLE frame decoded to different sizes".into(),
        ));
    }
    let mut out = Vec::new();
    out.try_reserve_exact(2 * high.len())
        .map_err(|_| DecodeError::TooLarge(format!("cannot allocate {} bytes", 2 * high.len())))?;
    for (h, l) in high.chunks_exact(2).zip(low.chunks_exact(2)) {
        out.extend_from_slice(&[l[0], l[1], h[0], h[1]]);
    }
    Ok(out)
}

/// The `want` segments of an RLE frame (PS3.5 G.4: a header of 16 little-endian u32,
/// the segment count then each segment's offset; a segment ends where the next starts,
/// the last at the frame's end).
fn segments(frame: &[u8], want: usize) -> Result<Vec<&[u8]>, DecodeError> {
    let word = |i: usize| -> Option<usize> {
        let b = frame.get(4 * i..4 * i + 4)?;
        usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok()
    };
    let bad = || DecodeError::Corrupt("the RLE segment table does not describe the frame".into());
    if word(0) != Some(want) || want > 15 {
        return Err(bad());
    }
    let starts: Vec<usize> = (1..=want)
        .map(word)
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    (0..want)
        .map(|i| {
            let end = starts.get(i + 1).copied().unwrap_or(frame.len());
            frame.get(starts[i]..end).ok_or_else(bad)
        })
        .collect()
}

/// An RLE frame of `segments`, in order, after a 64-byte header.
fn rle_frame(segments: &[&[u8]]) -> Result<Vec<u8>, DecodeError> {
    let body: usize = segments.iter().map(|s| s.len()).sum();
    let mut out = Vec::with_capacity(64 + body);
    out.extend_from_slice(&(segments.len() as u32).to_le_bytes());
    let mut at = 64usize;
    for s in segments {
        let offset = u32::try_from(at)
            .map_err(|_| DecodeError::TooLarge("an RLE frame past 4 GiB".into()))?;
        out.extend_from_slice(&offset.to_le_bytes());
        at += s.len();
    }
    out.resize(64, 0);
    for s in segments {
        out.extend_from_slice(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PackBits segment of `bytes` as literal runs (PS3.5 G.3.1).
    fn literal(bytes: &[u8]) -> Vec<u8> {
        bytes
            .chunks(128)
            .flat_map(|c| std::iter::once((c.len() - 1) as u8).chain(c.iter().copied()))
            .collect()
    }

    /// Encodes `samples` (interleaved, `spp` per pixel) as a 32-bit RLE frame.
    fn encode32(samples: &[u32], spp: usize) -> Vec<u8> {
        let segs: Vec<Vec<u8>> = (0..spp)
            .flat_map(|s| {
                (0..4).map(move |byte| {
                    let plane: Vec<u8> = samples
                        .iter()
                        .skip(s)
                        .step_by(spp)
                        .map(|v| v.to_be_bytes()[byte])
                        .collect();
                    literal(&plane)
                })
            })
            .collect();
        rle_frame(&segs.iter().map(|s| &s[..]).collect::<Vec<_>>()).unwrap()
    }

    /// A 16-bit decoder that reads literal-only segments (what `encode32` writes).
    fn literal16(frame: &[u8], image: &ImagePixelInfo) -> Result<Vec<u8>, DecodeError> {
        assert_eq!(image.bits_allocated, 16);
        let spp = image.samples_per_pixel as usize;
        let segs = segments(frame, 2 * spp)?;
        let planes: Vec<Vec<u8>> = segs
            .iter()
            .map(|s| {
                let (mut at, mut out) = (0, Vec::new());
                while at < s.len() {
                    let n = s[at] as usize + 1;
                    out.extend_from_slice(&s[at + 1..at + 1 + n]);
                    at += 1 + n;
                }
                out
            })
            .collect();
        let mut out = Vec::new();
        for p in 0..planes[0].len() {
            // Little endian: the low byte's segment is the second of the sample.
            out.extend(planes.chunks(2).flat_map(|s| [s[1][p], s[0][p]]));
        }
        Ok(out)
    }

    fn image(spp: u32, n: u32) -> ImagePixelInfo {
        ImagePixelInfo {
            rows: 1,
            columns: n,
            samples_per_pixel: spp,
            bits_allocated: 32,
            bits_stored: 32,
            photometric: if spp == 3 { "RGB" } else { "MONOCHROME2" }.into(),
            frames: 1,
            ..Default::default()
        }
    }

    #[test]
    fn halves_join_into_little_endian_samples() {
        let grey = [0x0102_0304, 0xFFEE_DDCC, 0, 0x8000_0001];
        let out = decode(&encode32(&grey, 1), &image(1, 4), literal16).unwrap();
        let want: Vec<u8> = grey.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(out, want);
        let rgb = [1, 0x0001_0000, 0xDEAD_BEEF, 7, 8, 9];
        let out = decode(&encode32(&rgb, 3), &image(3, 2), literal16).unwrap();
        let want: Vec<u8> = rgb.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn a_table_of_another_shape_is_refused() {
        let frame = encode32(&[1, 2], 1);
        // Three samples need twelve segments; the frame has four.
        assert!(matches!(
            decode(&frame, &image(3, 2), literal16),
            Err(DecodeError::Corrupt(_))
        ));
        let mut lying = frame.clone();
        lying[8] = 0xFF; // segment 2 starts past the frame
        assert!(decode(&lying, &image(1, 2), literal16).is_err());
        assert!(decode(&frame[..40], &image(1, 2), literal16).is_err());
    }
}
