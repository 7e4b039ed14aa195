//! The presentation attributes of an image read from its data set: everything
//! [`super::window::render`] needs beyond the frame (PS3.3 C.7.6.3 Image Pixel, C.11.1
//! Modality LUT, C.11.2 VOI LUT, C.7.6.3.1.5-6 palettes).

use crate::dicom::ImagePixelInfo;
use crate::dicom::bulk::{self, BulkValue, Step};
use crate::dicom::tag::Tag;
use crate::pixels;
use crate::pixels::window::{Lut, Presentation, VoiFunction, Window};

/// The presentation attributes of an instance read from `header` (the file's bytes up
/// to its Pixel Data, or the whole file). An attribute that cannot be read (absent, or
/// past a damaged element) is taken as absent; the frame then renders with its own range.
pub(crate) fn presentation(
    header: &[u8],
    image: &ImagePixelInfo,
    transfer_syntax: &str,
    decoded: bool,
    asked: Option<Window>,
) -> Result<Presentation, String> {
    let value = |path: &[Step]| -> Option<Vec<u8>> {
        match bulk::find(header, path, image.bits_allocated) {
            Ok(Some(BulkValue::Bytes { data, .. })) => Some(data.into_owned()),
            _ => None,
        }
    };
    let tag = |g: u16, e: u16| Step::Tag(Tag(g, e));
    let text = |g: u16, e: u16| -> Option<String> {
        value(&[tag(g, e)]).map(|b| {
            String::from_utf8_lossy(&b)
                .trim_matches(['\0', ' '])
                .to_string()
        })
    };
    let first_number = |g: u16, e: u16| -> Option<f64> {
        text(g, e)?
            .split('\\')
            .next()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
    };
    let signed = image.pixel_representation == 1;
    let lut = |descriptor: &[Step], data: &[Step]| -> Option<Lut> {
        let d = value(descriptor)?;
        let word = |i: usize| {
            d.get(2 * i..2 * i + 2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
        };
        let first = word(1)?;
        let first = if signed {
            i64::from(first as i16)
        } else {
            i64::from(first)
        };
        Lut::new(
            u32::from(word(0)?),
            first,
            u32::from(word(2)?),
            &value(data)?,
        )
    };
    let rescale = match (first_number(0x0028, 0x1053), first_number(0x0028, 0x1052)) {
        (Some(s), Some(i)) => Some((s, i)),
        (None, Some(i)) => Some((1.0, i)),
        _ => None,
    };
    let function = text(0x0028, 0x1056)
        .and_then(|f| VoiFunction::parse(&f))
        .unwrap_or(VoiFunction::Linear);
    let own_window = match (first_number(0x0028, 0x1050), first_number(0x0028, 0x1051)) {
        (Some(center), Some(width)) if width > 0.0 => Some(Window {
            center,
            width,
            function,
        }),
        _ => None,
    };
    let photometric = if decoded {
        pixels::decoded_photometric(transfer_syntax, image).to_string()
    } else {
        image.photometric.clone()
    };
    let palette = if photometric == "PALETTE COLOR" {
        if value(&[tag(0x0028, 0x1221)]).is_some() {
            return Err("segmented palettes are not rendered".into());
        }
        let channel = |k: u16| lut(&[tag(0x0028, 0x1101 + k)], &[tag(0x0028, 0x1201 + k)]);
        match (channel(0), channel(1), channel(2)) {
            (Some(r), Some(g), Some(b)) => Some([r, g, b]),
            _ => {
                return Err(
                    "the Palette Color LUTs are missing or disagree with their descriptors".into(),
                );
            }
        }
    } else {
        None
    };
    let samples = match photometric.as_str() {
        "YBR_FULL_422" | "YBR_PARTIAL_422" if !decoded => 2,
        _ => image.samples_per_pixel.max(1),
    };
    Ok(Presentation {
        rows: image.rows,
        columns: image.columns,
        samples_per_pixel: samples,
        bits_allocated: image.bits_allocated,
        bits_stored: image.bits_stored,
        signed,
        planar: !decoded && image.planar_configuration == 1,
        photometric,
        rescale,
        modality_lut: lut(
            &[tag(0x0028, 0x3000), Step::Item(0), tag(0x0028, 0x3002)],
            &[tag(0x0028, 0x3000), Step::Item(0), tag(0x0028, 0x3006)],
        ),
        window: asked.or(own_window),
        voi_lut: lut(
            &[tag(0x0028, 0x3010), Step::Item(0), tag(0x0028, 0x3002)],
            &[tag(0x0028, 0x3010), Step::Item(0), tag(0x0028, 0x3006)],
        ),
        palette,
    })
}
