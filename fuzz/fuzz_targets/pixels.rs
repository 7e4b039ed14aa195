//! Every decode path (JPEG 8- and 12-bit, JPEG Lossless, JPEG 2000 / HTJ2K, RLE of 8,
//! 16 and 32 bits, and JPEG-LS when built with it) and the rendering after it: a 9-byte
//! header picks the transfer syntax and the image attributes (Bits Allocated is byte 7
//! modulo 3: 8, 16, 32), the rest is the frame's codestream. Decoding must
//! answer Ok or an error — never panic, never allocate past the limits fuzz-ci sets
//! (`-rss_limit_mb`, `-malloc_limit_mb`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sia::internal::dicom::ImagePixelInfo;
use sia::internal::pixels::window::{Presentation, render};
use sia::internal::pixels::{decode_frame, decoded_photometric, encode};

const SYNTAXES: [&str; 9] = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.5",
];
const PHOTOMETRIC: [&str; 5] = [
    "MONOCHROME2",
    "MONOCHROME1",
    "RGB",
    "YBR_FULL",
    "YBR_FULL_422",
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let ts = SYNTAXES[usize::from(data[0]) % SYNTAXES.len()];
    let flags = data[1];
    let rows = u32::from(u16::from_le_bytes([data[2], data[3]]));
    let columns = u32::from(u16::from_le_bytes([data[4], data[5]]));
    let samples_per_pixel = if data[6] & 1 == 1 { 3 } else { 1 };
    let bits_allocated = [8, 16, 32][usize::from(data[7]) % 3];
    let bits_stored = u32::from(data[8]).clamp(1, bits_allocated);
    let photometric = if samples_per_pixel == 3 {
        PHOTOMETRIC[2 + usize::from(flags >> 1) % 3]
    } else {
        PHOTOMETRIC[usize::from(flags >> 1) % 2]
    };
    let image = ImagePixelInfo {
        rows,
        columns,
        samples_per_pixel,
        bits_allocated,
        bits_stored,
        pixel_representation: u32::from(flags & 1),
        photometric: photometric.into(),
        planar_configuration: 0,
        frames: 1,
    };
    // 64 MiB: under fuzz-ci's -malloc_limit_mb, and the same check as the engine's cap.
    let Ok(frame) = decode_frame(ts, &image, &data[9..], 64 << 20) else {
        return;
    };
    assert_eq!(
        frame.len() as u64,
        sia::internal::pixels::decoded_frame_len(&image).unwrap()
    );
    let p = Presentation {
        rows,
        columns,
        samples_per_pixel,
        bits_allocated,
        bits_stored,
        signed: flags & 1 == 1,
        photometric: decoded_photometric(ts, &image).into(),
        ..Default::default()
    };
    if let Ok(img) = render(&frame, &p) {
        let vp = encode::Viewport {
            width: 64,
            height: 64,
            region: None,
        };
        let img = encode::fit(img, Some(vp)).expect("a viewport within the image");
        encode::encode(&img, "image/png", 90).expect("PNG encodes any rendering");
    }
});
