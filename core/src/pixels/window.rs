//! From stored pixel values to 8-bit display values (PS3.3 C.11 / PS3.4 N.2): Modality
//! LUT or Rescale Slope / Intercept, then the VOI (a window, linear, linear-exact or
//! sigmoid, or a VOI LUT), MONOCHROME1 inversion; PALETTE COLOR through its palette;
//! YBR to RGB; planar configuration undone.
//!
//! Input is one frame of native little-endian samples (as stored, or as a codec
//! decoded them); output is 8-bit grey or interleaved 8-bit RGB of Rows × Columns.

/// A window (PS3.3 C.11.2.1.2): centre and width in modality units, and the function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Window Center (0028,1050).
    pub center: f64,
    /// Window Width (0028,1051); at least 1 for `Linear`, above 0 otherwise.
    pub width: f64,
    /// VOI LUT Function (0028,1056).
    pub function: VoiFunction,
}

/// VOI LUT Function (0028,1056), PS3.3 C.11.2.1.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoiFunction {
    /// `LINEAR` (C.11.2.1.2.1), the default.
    Linear,
    /// `LINEAR_EXACT` (C.11.2.1.3.2).
    LinearExact,
    /// `SIGMOID` (C.11.2.1.3.1).
    Sigmoid,
}

impl VoiFunction {
    /// From the attribute value or the `window` query parameter's third value (case
    /// ignored; `linear-exact` and `linear_exact` both accepted).
    pub fn parse(s: &str) -> Option<VoiFunction> {
        match s.trim().to_ascii_uppercase().replace('-', "_").as_str() {
            "LINEAR" => Some(VoiFunction::Linear),
            "LINEAR_EXACT" => Some(VoiFunction::LinearExact),
            "SIGMOID" => Some(VoiFunction::Sigmoid),
            _ => None,
        }
    }
}

/// A lookup table (Modality LUT, VOI LUT, or one palette channel): LUT Descriptor
/// (entries, first stored value mapped, bits per entry) and its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lut {
    /// First input value mapped (the descriptor's second value; signed when the input is).
    pub first: i64,
    /// Bits per entry (the descriptor's third value), 8 or 16.
    pub bits: u32,
    /// The entries.
    pub data: Vec<u16>,
}

impl Lut {
    /// Builds a LUT from a descriptor's three values and the little-endian data bytes.
    /// `None` when they disagree (no entries, more entries declared than given, bits
    /// outside 1..=16).
    pub fn new(entries: u32, first: i64, bits: u32, data: &[u8]) -> Option<Lut> {
        // PS3.3 C.11.1.1.1: 0 entries means 65536.
        let n = if entries == 0 {
            65536
        } else {
            entries as usize
        };
        if !(1..=16).contains(&bits) {
            return None;
        }
        let data: Vec<u16> = if data.len() >= 2 * n {
            data.chunks_exact(2)
                .take(n)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect()
        } else if bits <= 8 && data.len() >= n {
            // 8-bit entries packed one per byte (allowed for palettes, C.7.6.3.1.6).
            data[..n].iter().map(|&b| u16::from(b)).collect()
        } else {
            return None;
        };
        Some(Lut { first, bits, data })
    }

    fn get(&self, x: i64) -> u16 {
        let i = (x - self.first).clamp(0, self.data.len() as i64 - 1);
        self.data[i as usize]
    }

    /// The entry for `x` scaled to 0..=255.
    fn get8(&self, x: i64) -> u8 {
        let v = u32::from(self.get(x));
        let max = (1u32 << self.bits) - 1;
        ((v.min(max) * 255 + max / 2) / max) as u8
    }
}

/// How a frame's values become display values: everything read from the data set (and
/// the request's `window`) that the pipeline needs.
#[derive(Clone, Debug, Default)]
pub struct Presentation {
    /// Rows (0028,0010).
    pub rows: u32,
    /// Columns (0028,0011).
    pub columns: u32,
    /// Samples per Pixel of the *frame bytes* (1 or 3; 2 for native YBR_FULL_422).
    pub samples_per_pixel: u32,
    /// Bits Allocated (1, 8, 16 or 32).
    pub bits_allocated: u32,
    /// Bits Stored.
    pub bits_stored: u32,
    /// Pixel Representation: signed samples when true.
    pub signed: bool,
    /// Photometric Interpretation *of the frame bytes* (a decoder may have made RGB).
    pub photometric: String,
    /// Planar Configuration of the frame bytes (1: colour by plane).
    pub planar: bool,
    /// Rescale Slope and Intercept (0028,1053 / 0028,1052), when present.
    pub rescale: Option<(f64, f64)>,
    /// Modality LUT Sequence (0028,3000) first item's LUT, when present (it replaces
    /// the rescale).
    pub modality_lut: Option<Lut>,
    /// The window to apply: the request's, else the data set's first.
    pub window: Option<Window>,
    /// VOI LUT Sequence (0028,3010) first item's LUT, used when no window is.
    pub voi_lut: Option<Lut>,
    /// Red, Green, Blue Palette Color LUTs, for PALETTE COLOR.
    pub palette: Option<[Lut; 3]>,
}

/// An 8-bit rendering: grey (1 byte a pixel) or RGB (3 bytes a pixel), row by row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// 1 (grey) or 3 (RGB).
    pub channels: u8,
    /// The pixels.
    pub data: Vec<u8>,
}

/// Renders `frame` (native little-endian samples) as `p` describes. Errors name what
/// does not fit: too few bytes, a photometric interpretation not rendered, a PALETTE
/// COLOR image without its palette.
pub fn render(frame: &[u8], p: &Presentation) -> Result<Rendered, String> {
    let pixels = p.rows as usize * p.columns as usize;
    let pi = p.photometric.trim();
    let samples = match pi {
        "MONOCHROME1" | "MONOCHROME2" | "PALETTE COLOR" => 1,
        "RGB" | "YBR_FULL" | "YBR_ICT" | "YBR_RCT" => 3,
        "YBR_FULL_422" | "YBR_PARTIAL_422" => 2,
        other => {
            return Err(format!(
                "Photometric Interpretation {other:?} is not rendered"
            ));
        }
    };
    if p.samples_per_pixel != samples && !(samples == 3 && p.samples_per_pixel == 3) {
        return Err(format!(
            "{pi} with {} samples per pixel in the frame",
            p.samples_per_pixel
        ));
    }
    let values = unpack(frame, pixels * samples as usize, p)?;
    let data = match pi {
        "MONOCHROME1" | "MONOCHROME2" => grey(&values, p, pi == "MONOCHROME1"),
        "PALETTE COLOR" => {
            let pal = p
                .palette
                .as_ref()
                .ok_or("a PALETTE COLOR image without its Palette Color LUTs")?;
            let mut out = Vec::with_capacity(pixels * 3);
            for &v in &values {
                out.extend(pal.iter().map(|l| l.get8(v)));
            }
            return Ok(Rendered {
                width: p.columns,
                height: p.rows,
                channels: 3,
                data: out,
            });
        }
        _ => {
            return Ok(Rendered {
                width: p.columns,
                height: p.rows,
                channels: 3,
                data: colour(&values, p, pi, pixels),
            });
        }
    };
    Ok(Rendered {
        width: p.columns,
        height: p.rows,
        channels: 1,
        data,
    })
}

/// The frame's sample values, `n` of them, as stored (sign-extended or masked to Bits
/// Stored).
fn unpack(frame: &[u8], n: usize, p: &Presentation) -> Result<Vec<i64>, String> {
    let short = || {
        format!(
            "the frame holds {} bytes; {n} samples of {} bits need more",
            frame.len(),
            p.bits_allocated
        )
    };
    let stored = p.bits_stored.clamp(1, p.bits_allocated.max(1));
    let fix = |raw: u64| -> i64 {
        let masked = raw & ((1u64 << stored) - 1);
        if p.signed && masked >> (stored - 1) == 1 {
            masked as i64 - (1i64 << stored)
        } else {
            masked as i64
        }
    };
    Ok(match p.bits_allocated {
        1 => {
            if frame.len() * 8 < n {
                return Err(short());
            }
            (0..n)
                .map(|i| i64::from((frame[i / 8] >> (i % 8)) & 1))
                .collect()
        }
        8 => frame
            .get(..n)
            .ok_or_else(short)?
            .iter()
            .map(|&b| fix(u64::from(b)))
            .collect(),
        16 => frame
            .get(..2 * n)
            .ok_or_else(short)?
            .chunks_exact(2)
            .map(|c| fix(u64::from(u16::from_le_bytes([c[0], c[1]]))))
            .collect(),
        32 => frame
            .get(..4 * n)
            .ok_or_else(short)?
            .chunks_exact(4)
            .map(|c| fix(u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))))
            .collect(),
        b => return Err(format!("Bits Allocated {b} is not rendered")),
    })
}

/// Modality LUT, then VOI, then the 8-bit output (inverted for MONOCHROME1).
fn grey(values: &[i64], p: &Presentation, invert: bool) -> Vec<u8> {
    let modality = |x: i64| -> f64 {
        if let Some(l) = &p.modality_lut {
            f64::from(l.get(x))
        } else if let Some((slope, intercept)) = p.rescale {
            x as f64 * slope + intercept
        } else {
            x as f64
        }
    };
    let window = p.window.or_else(|| {
        if p.voi_lut.is_some() {
            return None;
        }
        // No VOI in the data set or the request: the frame's range, linear-exact, so
        // that its minimum is black and its maximum white.
        let (lo, hi) = values
            .iter()
            .map(|&x| modality(x))
            .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        (lo <= hi).then(|| Window {
            center: (lo + hi) / 2.0,
            width: (hi - lo).max(f64::MIN_POSITIVE),
            function: VoiFunction::LinearExact,
        })
    });
    values
        .iter()
        .map(|&x| {
            let y = match (&window, &p.voi_lut) {
                (Some(w), _) => apply_window(modality(x), w),
                (None, Some(l)) => l.get8(modality(x).round() as i64),
                (None, None) => 0,
            };
            if invert { 255 - y } else { y }
        })
        .collect()
}

/// PS3.3 C.11.2.1.2.1 and C.11.2.1.3 with an output range of 0..=255, rounded to the
/// nearest integer.
pub fn apply_window(x: f64, w: &Window) -> u8 {
    let (c, width) = (w.center, w.width);
    let y = match w.function {
        VoiFunction::Linear => {
            let width = width.max(1.0);
            if x <= c - 0.5 - (width - 1.0) / 2.0 {
                0.0
            } else if x > c - 0.5 + (width - 1.0) / 2.0 {
                255.0
            } else {
                ((x - (c - 0.5)) / (width - 1.0) + 0.5) * 255.0
            }
        }
        VoiFunction::LinearExact => {
            if x <= c - width / 2.0 {
                0.0
            } else if x > c + width / 2.0 {
                255.0
            } else {
                ((x - c) / width + 0.5) * 255.0
            }
        }
        VoiFunction::Sigmoid => 255.0 / (1.0 + (-4.0 * (x - c) / width).exp()),
    };
    y.round().clamp(0.0, 255.0) as u8
}

/// RGB or YBR samples to interleaved 8-bit RGB.
fn colour(values: &[i64], p: &Presentation, pi: &str, pixels: usize) -> Vec<u8> {
    let to8 = |v: i64| -> f64 {
        let bits = p.bits_stored.clamp(1, 32);
        if bits <= 8 {
            v as f64
        } else {
            v as f64 / ((1u64 << (bits - 8)) as f64)
        }
    };
    let mut out = Vec::with_capacity(pixels * 3);
    for i in 0..pixels {
        let (a, b, c) = if pi.ends_with("_422") {
            // Native 4:2:2 (PS3.3 C.7.6.3.1.2): Y Y Cb Cr for each pair of pixels.
            let pair = i / 2 * 4;
            (values[pair + i % 2], values[pair + 2], values[pair + 3])
        } else if p.planar {
            (values[i], values[pixels + i], values[2 * pixels + i])
        } else {
            (values[3 * i], values[3 * i + 1], values[3 * i + 2])
        };
        let (a, b, c) = (to8(a), to8(b), to8(c));
        let rgb = match pi {
            "RGB" => [a, b, c],
            // YBR_FULL (C.7.6.3.1.2; the ICT and RCT only appear encoded and their
            // decoders output RGB).
            "YBR_PARTIAL_422" => {
                let y = 1.1644 * (a - 16.0);
                [
                    y + 1.5960 * (c - 128.0),
                    y - 0.3917 * (b - 128.0) - 0.8129 * (c - 128.0),
                    y + 2.0172 * (b - 128.0),
                ]
            }
            _ => [
                a + 1.402 * (c - 128.0),
                a - 0.344136 * (b - 128.0) - 0.714136 * (c - 128.0),
                a + 1.772 * (b - 128.0),
            ],
        };
        out.extend(rgb.map(|v| v.round().clamp(0.0, 255.0) as u8));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mono(values: &[u16], window: Option<Window>) -> Presentation {
        let _ = values;
        Presentation {
            rows: 1,
            columns: values.len() as u32,
            samples_per_pixel: 1,
            bits_allocated: 16,
            bits_stored: 12,
            photometric: "MONOCHROME2".into(),
            window,
            ..Default::default()
        }
    }

    fn bytes(v: &[u16]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn linear_window_per_standard() {
        // C.11.2.1.2.1 with c = 2048, w = 4096: x <= 0 -> 0, x > 4095 -> 255.
        let w = Window {
            center: 2048.0,
            width: 4096.0,
            function: VoiFunction::Linear,
        };
        assert_eq!(apply_window(0.0, &w), 0);
        assert_eq!(apply_window(4095.5, &w), 255);
        assert_eq!(apply_window(2047.5, &w), 128);
        let narrow = Window {
            center: 40.0,
            width: 1.0,
            function: VoiFunction::Linear,
        };
        assert_eq!(apply_window(39.0, &narrow), 0);
        assert_eq!(apply_window(40.0, &narrow), 255);
        let s = Window {
            center: 0.0,
            width: 10.0,
            function: VoiFunction::Sigmoid,
        };
        assert_eq!(apply_window(0.0, &s), 128);
        assert!(apply_window(100.0, &s) == 255 && apply_window(-100.0, &s) == 0);
    }

    #[test]
    fn monochrome_pipeline() {
        let v = [0u16, 1000, 2000, 4095];
        let r = render(&bytes(&v), &mono(&v, None)).unwrap();
        assert_eq!(r.data, vec![0, 62, 125, 255], "frame range, linear-exact");
        let mut p = mono(&v, None);
        p.photometric = "MONOCHROME1".into();
        assert_eq!(render(&bytes(&v), &p).unwrap().data, vec![255, 193, 130, 0]);
        // Rescale into HU, then a window in HU.
        let mut p = mono(
            &v,
            Some(Window {
                center: 0.0,
                width: 2.0,
                function: VoiFunction::LinearExact,
            }),
        );
        p.rescale = Some((1.0, -1000.0));
        assert_eq!(render(&bytes(&v), &p).unwrap().data, vec![0, 128, 255, 255]);
        // Signed 12-bit in 16: 0xFFF is -1.
        let mut p = mono(
            &[0xFFF, 0],
            Some(Window {
                center: 0.0,
                width: 4.0,
                function: VoiFunction::LinearExact,
            }),
        );
        p.signed = true;
        assert_eq!(render(&bytes(&[0xFFF, 0]), &p).unwrap().data, vec![64, 128]);
        assert!(
            render(&bytes(&v[..2]), &mono(&v, None)).is_err(),
            "short frame"
        );
    }

    #[test]
    fn colour_and_palette() {
        let mut p = Presentation {
            rows: 1,
            columns: 2,
            samples_per_pixel: 3,
            bits_allocated: 8,
            bits_stored: 8,
            photometric: "RGB".into(),
            planar: true,
            ..Default::default()
        };
        assert_eq!(
            render(&[1, 2, 3, 4, 5, 6], &p).unwrap().data,
            vec![1, 3, 5, 2, 4, 6]
        );
        p.planar = false;
        p.photometric = "YBR_FULL".into();
        assert_eq!(
            render(&[128, 128, 128, 255, 128, 128], &p).unwrap().data,
            vec![128, 128, 128, 255, 255, 255]
        );
        let lut = |d: &[u16]| Lut::new(d.len() as u32, 0, 16, &bytes(d)).unwrap();
        let p = Presentation {
            rows: 1,
            columns: 2,
            samples_per_pixel: 1,
            bits_allocated: 8,
            bits_stored: 8,
            photometric: "PALETTE COLOR".into(),
            palette: Some([lut(&[0, 65535]), lut(&[65535, 0]), lut(&[0, 0])]),
            ..Default::default()
        };
        assert_eq!(
            render(&[0, 1], &p).unwrap().data,
            vec![0, 255, 0, 255, 0, 0]
        );
        assert!(
            Lut::new(4, 0, 16, &[0; 6]).is_none(),
            "fewer entries than declared"
        );
    }
}
