//! Rendered images out: scaled to the viewport and encoded as JPEG, PNG or GIF (PS3.18
//! 8.3.5 and 10.4). PNG and GIF through the `image` crate; JPEG through `jpeg-encoder`
//! (pure Rust, AVX2 when the processor has it), which encodes a 512 × 512 rendering
//! about three times faster than the `image` crate's own JPEG encoder and as fast as
//! libjpeg-turbo built without its assembly (README, "Pixel data").

use image::codecs::gif::GifEncoder;
use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::{ExtendedColorType, ImageBuffer, ImageEncoder, Luma, Rgb};

use super::window::Rendered;

/// The media types rendered resources are offered in, the default first (PS3.18 Table
/// 8.7.4-1: `image/jpeg` is the default for single-frame renderings).
pub const RENDERED_MEDIA_TYPES: [&str; 3] = ["image/jpeg", "image/png", "image/gif"];

/// The viewport parameter (PS3.18 8.3.5.1.3): the rendering is scaled to fit `width` ×
/// `height` keeping its aspect ratio, after cutting the source region when given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Viewport {
    /// Viewport width in pixels (1..=8192).
    pub width: u32,
    /// Viewport height in pixels (1..=8192).
    pub height: u32,
    /// Source region: x, y, width, height in image pixels.
    pub region: Option<(u32, u32, u32, u32)>,
}

/// Largest viewport side: bounds the memory a request can ask the scaler for.
pub const MAX_VIEWPORT: u32 = 8192;

impl Viewport {
    /// Parses `vw,vh` or `vw,vh,sx,sy,sw,sh`.
    pub fn parse(s: &str) -> Result<Viewport, String> {
        let v: Vec<u32> = s
            .split(',')
            .map(|p| p.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                format!(
                    "viewport={s}: expected vw,vh or vw,vh,sx,sy,sw,sh as non-negative integers"
                )
            })?;
        let (w, h, region) = match v.as_slice() {
            [w, h] => (*w, *h, None),
            [w, h, x, y, sw, sh] => (*w, *h, Some((*x, *y, *sw, *sh))),
            _ => return Err(format!("viewport={s}: expected 2 or 6 values")),
        };
        if w == 0 || h == 0 || w > MAX_VIEWPORT || h > MAX_VIEWPORT {
            return Err(format!(
                "viewport={s}: width and height must be 1..={MAX_VIEWPORT}"
            ));
        }
        Ok(Viewport {
            width: w,
            height: h,
            region,
        })
    }
}

/// Cuts the region and scales `img` to fit `vp` (aspect kept; never enlarged past the
/// viewport, always at least 1 × 1).
pub fn fit(img: Rendered, vp: Option<Viewport>) -> Result<Rendered, String> {
    let Some(vp) = vp else { return Ok(img) };
    let mut img = img;
    if let Some((x, y, w, h)) = vp.region {
        if w == 0 || h == 0 || x.saturating_add(w) > img.width || y.saturating_add(h) > img.height {
            return Err(format!(
                "viewport region {x},{y},{w},{h} lies outside the {}×{} image",
                img.width, img.height
            ));
        }
        let ch = usize::from(img.channels);
        let mut data = Vec::with_capacity(w as usize * h as usize * ch);
        for row in y..y + h {
            let start = (row as usize * img.width as usize + x as usize) * ch;
            data.extend_from_slice(&img.data[start..start + w as usize * ch]);
        }
        img = Rendered {
            width: w,
            height: h,
            channels: img.channels,
            data,
        };
    }
    let scale = f64::min(
        f64::from(vp.width) / f64::from(img.width),
        f64::from(vp.height) / f64::from(img.height),
    );
    let w = ((f64::from(img.width) * scale).round() as u32).clamp(1, vp.width);
    let h = ((f64::from(img.height) * scale).round() as u32).clamp(1, vp.height);
    if (w, h) == (img.width, img.height) {
        return Ok(img);
    }
    let data = if img.channels == 1 {
        let buf = ImageBuffer::<Luma<u8>, _>::from_raw(img.width, img.height, img.data)
            .ok_or("rendered buffer size mismatch")?;
        image::imageops::resize(&buf, w, h, FilterType::Triangle).into_raw()
    } else {
        let buf = ImageBuffer::<Rgb<u8>, _>::from_raw(img.width, img.height, img.data)
            .ok_or("rendered buffer size mismatch")?;
        image::imageops::resize(&buf, w, h, FilterType::Triangle).into_raw()
    };
    Ok(Rendered {
        width: w,
        height: h,
        channels: img.channels,
        data,
    })
}

/// Encodes `img` as `media_type` (one of [`RENDERED_MEDIA_TYPES`]); `quality` (1..=100)
/// applies to JPEG only.
pub fn encode(img: &Rendered, media_type: &str, quality: u8) -> Result<Vec<u8>, String> {
    let color = if img.channels == 1 {
        ExtendedColorType::L8
    } else {
        ExtendedColorType::Rgb8
    };
    let mut out = Vec::new();
    let r = match media_type {
        "image/jpeg" => return jpeg(img, quality),
        "image/png" => {
            PngEncoder::new(&mut out).write_image(&img.data, img.width, img.height, color)
        }
        "image/gif" => {
            // GIF holds 8-bit indexed colour: grey goes as RGB so that the encoder's
            // quantiser keeps all 256 levels in the palette.
            let rgb: Vec<u8> = if img.channels == 1 {
                img.data.iter().flat_map(|&v| [v, v, v]).collect()
            } else {
                img.data.clone()
            };
            GifEncoder::new(&mut out).encode(&rgb, img.width, img.height, ExtendedColorType::Rgb8)
        }
        other => return Err(format!("{other} is not a rendered media type")),
    };
    r.map_err(|e| format!("cannot encode {media_type}: {e}"))?;
    Ok(out)
}

/// Baseline JPEG of `img` at `quality` (clamped to 1..=100), colour without chroma
/// subsampling (4:4:4): a rendering may carry thin coloured overlays or Doppler that
/// 4:2:0 would smear.
fn jpeg(img: &Rendered, quality: u8) -> Result<Vec<u8>, String> {
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
    let side = |v: u32| {
        u16::try_from(v)
            .map_err(|_| format!("a JPEG is at most 65535 pixels wide and high, not {v}"))
    };
    let (width, height) = (side(img.width)?, side(img.height)?);
    let color = if img.channels == 1 {
        ColorType::Luma
    } else {
        ColorType::Rgb
    };
    let mut out = Vec::new();
    let mut encoder = Encoder::new(&mut out, quality.clamp(1, 100));
    encoder.set_sampling_factor(SamplingFactor::F_1_1);
    encoder
        .encode(&img.data, width, height, color)
        .map_err(|e| format!("cannot encode image/jpeg: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(w: u32, h: u32) -> Rendered {
        Rendered {
            width: w,
            height: h,
            channels: 1,
            data: (0..w * h).map(|i| (i % 256) as u8).collect(),
        }
    }

    #[test]
    fn viewport_parsing_and_fit() {
        assert!(Viewport::parse("0,10").is_err());
        assert!(Viewport::parse("10").is_err());
        assert!(Viewport::parse("99999,10").is_err());
        let vp = Viewport::parse("64,64").unwrap();
        let r = fit(grey(256, 128), Some(vp)).unwrap();
        assert_eq!((r.width, r.height), (64, 32), "aspect kept");
        let vp = Viewport::parse("10,10,2,2,4,4").unwrap();
        let r = fit(grey(8, 8), Some(vp)).unwrap();
        assert_eq!((r.width, r.height), (10, 10));
        assert!(fit(grey(8, 8), Some(Viewport::parse("10,10,6,6,4,4").unwrap())).is_err());
    }

    #[test]
    fn png_round_trips_exactly() {
        let img = grey(16, 4);
        let png = encode(&img, "image/png", 90).unwrap();
        let back = image::load_from_memory(&png).unwrap().into_luma8();
        assert_eq!(back.into_raw(), img.data);
        assert_eq!(&encode(&img, "image/gif", 90).unwrap()[..3], b"GIF");
    }

    /// The sampling factors of each start-of-frame component of a baseline JPEG (ITU-T
    /// T.81 B.2.2: 0x11 is one sample per pixel in each direction).
    fn sampling(jpeg: &[u8]) -> Vec<u8> {
        let at = jpeg
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("SOF0");
        let count = jpeg[at + 9] as usize;
        (0..count).map(|k| jpeg[at + 11 + 3 * k]).collect()
    }

    #[test]
    fn jpeg_decodes_back_close_to_the_rendering_in_grey_and_colour() {
        let img = grey(64, 48);
        let jpeg = encode(&img, "image/jpeg", 90).unwrap();
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (64, 48));
        assert_eq!(back.color(), image::ColorType::L8);
        assert_eq!(sampling(&jpeg), [0x11]);
        let grey_back = back.into_luma8().into_raw();
        let error = |a: &[u8], b: &[u8]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| x.abs_diff(*y) as u64)
                .sum::<u64>()
                / a.len() as u64
        };
        // The test pattern is a sawtooth (hard edges every 256 pixels): quality 90 keeps
        // the mean error within a few levels.
        assert!(
            error(&grey_back, &img.data) <= 4,
            "{}",
            error(&grey_back, &img.data)
        );

        let rgb = Rendered {
            width: 32,
            height: 16,
            channels: 3,
            data: (0..32 * 16 * 3).map(|i| [200u8, 30, 90][i % 3]).collect(),
        };
        let jpeg = encode(&rgb, "image/jpeg", 75).unwrap();
        // No chroma subsampling, even below quality 90 where the encoder would choose it.
        assert_eq!(sampling(&jpeg), [0x11; 3]);
        let back = image::load_from_memory(&jpeg)
            .unwrap()
            .into_rgb8()
            .into_raw();
        assert!(error(&back, &rgb.data) <= 4, "{}", error(&back, &rgb.data));
    }

    #[test]
    fn a_rendering_wider_than_a_jpeg_can_hold_is_an_error() {
        let img = grey(70_000, 1);
        let e = encode(&img, "image/jpeg", 90).unwrap_err();
        assert!(e.contains("65535"), "{e}");
        assert!(encode(&img, "image/png", 90).is_ok());
    }
}
