//! A small synthetic data set, so a newcomer has something to index and serve.
//!
//! Three patients, four studies, eight series, 40 files, covering what the engine must
//! handle: Explicit and Implicit VR Little Endian, Explicit VR Big Endian, native
//! single- and multi-frame images, RLE-compressed multi-frame images with and without a
//! Basic Offset Table, RGB, and a UTF-8 patient name with ideographic characters.

use std::path::{Path, PathBuf};

use crate::dicom::tag::{Encoding, Tag, Vr, tags, ts};
use crate::dicom::write::{DataSetWriter, basic_offsets, file_meta};
use crate::error::{Error, Result};

/// The root of every UID in the demo set (a 2.25 UUID-derived root).
pub const DEMO_UID_ROOT: &str = "2.25.228146457203842916711418316839742735";

const CT_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const MR_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
const US_MULTIFRAME: &str = "1.2.840.10008.5.1.4.1.1.3.1";
const XA_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.12.1";
const SECONDARY_CAPTURE: &str = "1.2.840.10008.5.1.4.1.1.7";

struct Patient {
    id: &'static str,
    issuer: &'static str,
    name: &'static str,
    birth_date: &'static str,
    sex: &'static str,
    charset: &'static str,
}

struct Study {
    n: u32,
    date: &'static str,
    time: &'static str,
    accession: &'static str,
    description: &'static str,
    referrer: &'static str,
}

#[derive(Clone, Copy)]
enum Pixels {
    /// Grey, 16 bits, one frame.
    Grey16,
    /// Grey, 8 bits, `n` frames, native.
    Cine8(u32),
    /// Grey, 8 bits, `n` frames, RLE Lossless, with or without a Basic Offset Table.
    Rle8 { frames: u32, with_bot: bool },
    /// RGB, 8 bits, one frame.
    Rgb8,
}

struct Series {
    n: u32,
    modality: &'static str,
    sop_class: &'static str,
    description: &'static str,
    body_part: &'static str,
    laterality: &'static str,
    transfer_syntax: &'static str,
    pixels: Pixels,
    instances: u32,
}

const ROWS: u16 = 64;
const COLS: u16 = 64;

/// Writes the demo set into `dir` (created if needed); returns the files written.
pub fn write_demo(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let patients = [
        Patient {
            id: "DEMO-001",
            issuer: "SIA_DEMO",
            name: "Doe^Jane",
            birth_date: "19700101",
            sex: "F",
            charset: "",
        },
        Patient {
            id: "DEMO-002",
            issuer: "2.25.228146457203842916711418316839742735.999",
            name: "Smith^John^A^Dr.",
            birth_date: "19651231",
            sex: "M",
            charset: "ISO_IR 100",
        },
        Patient {
            id: "DEMO-003",
            issuer: "",
            name: "Yamada^Tarou=山田^太郎",
            birth_date: "19800515",
            sex: "M",
            charset: "ISO_IR 192",
        },
    ];
    let plan: Vec<(usize, Study, Vec<Series>)> = vec![
        (
            0,
            Study {
                n: 1,
                date: "20240312",
                time: "101500",
                accession: "ACC1001",
                description: "CT CHEST",
                referrer: "House^Gregory",
            },
            vec![
                Series {
                    n: 1,
                    modality: "CT",
                    sop_class: CT_IMAGE,
                    description: "Axial 5mm",
                    body_part: "CHEST",
                    laterality: "",
                    transfer_syntax: ts::EXPLICIT_VR_LE,
                    pixels: Pixels::Grey16,
                    instances: 8,
                },
                Series {
                    n: 2,
                    modality: "CT",
                    sop_class: CT_IMAGE,
                    description: "Scout",
                    body_part: "CHEST",
                    laterality: "",
                    transfer_syntax: ts::IMPLICIT_VR_LE,
                    pixels: Pixels::Grey16,
                    instances: 1,
                },
            ],
        ),
        (
            0,
            Study {
                n: 2,
                date: "20240520",
                time: "083000.25",
                accession: "ACC1002",
                description: "US ABDOMEN",
                referrer: "",
            },
            vec![
                Series {
                    n: 1,
                    modality: "US",
                    sop_class: US_MULTIFRAME,
                    description: "Cine native",
                    body_part: "ABDOMEN",
                    laterality: "",
                    transfer_syntax: ts::EXPLICIT_VR_LE,
                    pixels: Pixels::Cine8(20),
                    instances: 1,
                },
                Series {
                    n: 2,
                    modality: "US",
                    sop_class: US_MULTIFRAME,
                    description: "Cine RLE",
                    body_part: "ABDOMEN",
                    laterality: "",
                    transfer_syntax: ts::RLE_LOSSLESS,
                    pixels: Pixels::Rle8 {
                        frames: 12,
                        with_bot: false,
                    },
                    instances: 1,
                },
            ],
        ),
        (
            1,
            Study {
                n: 3,
                date: "20231105",
                time: "1420",
                accession: "ACC2001",
                description: "MR KNEE",
                referrer: "Grey^Meredith",
            },
            vec![
                Series {
                    n: 1,
                    modality: "MR",
                    sop_class: MR_IMAGE,
                    description: "T1 sag",
                    body_part: "KNEE",
                    laterality: "L",
                    transfer_syntax: ts::IMPLICIT_VR_LE,
                    pixels: Pixels::Grey16,
                    instances: 12,
                },
                Series {
                    n: 2,
                    modality: "MR",
                    sop_class: MR_IMAGE,
                    description: "T2 sag",
                    body_part: "KNEE",
                    laterality: "L",
                    transfer_syntax: ts::EXPLICIT_VR_BE,
                    pixels: Pixels::Grey16,
                    instances: 12,
                },
            ],
        ),
        (
            2,
            Study {
                n: 4,
                date: "20250130",
                time: "160000",
                accession: "ACC3001",
                description: "心臓カテーテル",
                referrer: "",
            },
            vec![
                Series {
                    n: 1,
                    modality: "XA",
                    sop_class: XA_IMAGE,
                    description: "LAO 30",
                    body_part: "HEART",
                    laterality: "",
                    transfer_syntax: ts::RLE_LOSSLESS,
                    pixels: Pixels::Rle8 {
                        frames: 30,
                        with_bot: true,
                    },
                    instances: 1,
                },
                Series {
                    n: 2,
                    modality: "OT",
                    sop_class: SECONDARY_CAPTURE,
                    description: "Report capture",
                    body_part: "",
                    laterality: "",
                    transfer_syntax: ts::EXPLICIT_VR_LE,
                    pixels: Pixels::Rgb8,
                    instances: 4,
                },
            ],
        ),
    ];
    let mut written = Vec::new();
    for (pi, study, series_list) in &plan {
        let patient = &patients[*pi];
        for series in series_list {
            for i in 1..=series.instances {
                let sop_uid = format!("{DEMO_UID_ROOT}.{}.{}.{}", study.n, series.n, i);
                let bytes = instance(patient, study, series, i, &sop_uid);
                let name = format!(
                    "{}/study{}/series{}/{:03}.dcm",
                    patient.id, study.n, series.n, i
                );
                let path = dir.join(name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
                written.push(path);
            }
        }
    }
    Ok(written)
}

fn instance(p: &Patient, st: &Study, se: &Series, number: u32, sop_uid: &str) -> Vec<u8> {
    let enc = match se.transfer_syntax {
        ts::IMPLICIT_VR_LE => Encoding::IMPLICIT_LE,
        ts::EXPLICIT_VR_BE => Encoding::EXPLICIT_BE,
        _ => Encoding::EXPLICIT_LE,
    };
    let (samples, bits, frames) = match se.pixels {
        Pixels::Grey16 => (1u16, 16u16, 1u32),
        Pixels::Cine8(n) => (1, 8, n),
        Pixels::Rle8 { frames, .. } => (1, 8, frames),
        Pixels::Rgb8 => (3, 8, 1),
    };
    let mut w = DataSetWriter::new(enc);
    if !p.charset.is_empty() {
        w.str(tags::SPECIFIC_CHARACTER_SET, Vr::CS, p.charset);
    }
    let image_type = if se.modality == "OT" {
        "DERIVED\\SECONDARY"
    } else {
        "ORIGINAL\\PRIMARY"
    };
    w.str(tags::IMAGE_TYPE, Vr::CS, image_type)
        .str(tags::SOP_CLASS_UID, Vr::UI, se.sop_class)
        .str(tags::SOP_INSTANCE_UID, Vr::UI, sop_uid)
        .str(tags::STUDY_DATE, Vr::DA, st.date)
        .str(tags::SERIES_DATE, Vr::DA, st.date)
        .str(tags::STUDY_TIME, Vr::TM, st.time)
        .str(tags::SERIES_TIME, Vr::TM, st.time)
        .str(tags::ACCESSION_NUMBER, Vr::SH, st.accession)
        .str(tags::MODALITY, Vr::CS, se.modality)
        .str(tags::REFERRING_PHYSICIAN_NAME, Vr::PN, st.referrer)
        .str(tags::TIMEZONE_OFFSET_FROM_UTC, Vr::SH, "+0100")
        .str(tags::STUDY_DESCRIPTION, Vr::LO, st.description)
        .str(tags::SERIES_DESCRIPTION, Vr::LO, se.description);
    if frames > 1 {
        w.str(Tag(0x0018, 0x1063), Vr::DS, "33.3");
    }
    w.str(tags::PATIENT_NAME, Vr::PN, p.name)
        .str(tags::PATIENT_ID, Vr::LO, p.id)
        .str(tags::ISSUER_OF_PATIENT_ID, Vr::LO, p.issuer)
        .str(tags::PATIENT_BIRTH_DATE, Vr::DA, p.birth_date)
        .str(tags::PATIENT_SEX, Vr::CS, p.sex);
    if !se.body_part.is_empty() {
        w.str(tags::BODY_PART_EXAMINED, Vr::CS, se.body_part);
    }
    w.str(
        tags::STUDY_INSTANCE_UID,
        Vr::UI,
        &format!("{DEMO_UID_ROOT}.{}", st.n),
    )
    .str(
        tags::SERIES_INSTANCE_UID,
        Vr::UI,
        &format!("{DEMO_UID_ROOT}.{}.{}", st.n, se.n),
    )
    .str(tags::STUDY_ID, Vr::SH, &st.n.to_string())
    .str(tags::SERIES_NUMBER, Vr::IS, &se.n.to_string())
    .str(tags::INSTANCE_NUMBER, Vr::IS, &number.to_string());
    if !se.laterality.is_empty() {
        w.str(tags::LATERALITY, Vr::CS, se.laterality);
    }
    w.us(tags::SAMPLES_PER_PIXEL, samples).str(
        tags::PHOTOMETRIC_INTERPRETATION,
        Vr::CS,
        if samples == 3 { "RGB" } else { "MONOCHROME2" },
    );
    if samples == 3 {
        w.us(tags::PLANAR_CONFIGURATION, 0);
    }
    if frames > 1 {
        w.str(tags::NUMBER_OF_FRAMES, Vr::IS, &frames.to_string());
        // Frame Increment Pointer -> Frame Time (0018,1063).
        let at: Vec<u8> = [0x0018u16, 0x1063]
            .iter()
            .flat_map(|v| {
                if enc.big_endian {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            })
            .collect();
        w.element(Tag(0x0028, 0x0009), Vr::AT, &at);
    }
    w.us(tags::ROWS, ROWS)
        .us(tags::COLUMNS, COLS)
        .us(tags::BITS_ALLOCATED, bits)
        .us(tags::BITS_STORED, if bits == 16 { 12 } else { 8 })
        .us(Tag(0x0028, 0x0102), if bits == 16 { 11 } else { 7 })
        .us(tags::PIXEL_REPRESENTATION, 0);
    match se.pixels {
        Pixels::Grey16 => {
            let words = grey16(number);
            let bytes: Vec<u8> = words
                .iter()
                .flat_map(|v| {
                    if enc.big_endian {
                        v.to_be_bytes()
                    } else {
                        v.to_le_bytes()
                    }
                })
                .collect();
            w.native_pixel_data(Vr::OW, &bytes);
        }
        Pixels::Cine8(n) => {
            let bytes: Vec<u8> = (0..n).flat_map(grey8).collect();
            w.native_pixel_data(Vr::OB, &bytes);
        }
        Pixels::Rgb8 => {
            let bytes: Vec<u8> = (0..usize::from(ROWS) * usize::from(COLS))
                .flat_map(|i| {
                    let (r, c) = (i / usize::from(COLS), i % usize::from(COLS));
                    [(r * 4) as u8, (c * 4) as u8, (number * 50) as u8]
                })
                .collect();
            w.native_pixel_data(Vr::OB, &bytes);
        }
        Pixels::Rle8 { frames, with_bot } => {
            let encoded: Vec<Vec<u8>> = (0..frames).map(|f| rle_frame(&grey8(f))).collect();
            let per_frame: Vec<Vec<&[u8]>> = encoded.iter().map(|e| vec![e.as_slice()]).collect();
            let bot = if with_bot {
                basic_offsets(&per_frame)
            } else {
                Vec::new()
            };
            let flat: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
            w.encapsulated_pixel_data(&bot, &flat);
        }
    }
    let mut out = file_meta(se.sop_class, sop_uid, se.transfer_syntax);
    out.extend_from_slice(w.as_bytes());
    out
}

/// A 12-bit ramp with a bright disc whose place depends on `seed`.
fn grey16(seed: u32) -> Vec<u16> {
    let (rows, cols) = (u32::from(ROWS), u32::from(COLS));
    let (cx, cy) = ((16 + (seed * 5) % 32) as i32, 32i32);
    (0..rows * cols)
        .map(|i| {
            let (r, c) = (i / cols, i % cols);
            let d2 = (r as i32 - cy).pow(2) + (c as i32 - cx).pow(2);
            if d2 < 100 {
                4000
            } else {
                (r * 30 + c * 10) as u16
            }
        })
        .collect()
}

/// An 8-bit frame with a disc moving with the frame number.
fn grey8(frame: u32) -> Vec<u8> {
    let (rows, cols) = (u32::from(ROWS), u32::from(COLS));
    let (cx, cy) = ((8 + (frame * 3) % 48) as i32, 32i32);
    (0..rows * cols)
        .map(|i| {
            let (r, c) = (i / cols, i % cols);
            let d2 = (r as i32 - cy).pow(2) + (c as i32 - cx).pow(2);
            if d2 < 64 { 255 } else { (r * 2) as u8 }
        })
        .collect()
}

/// RLE Lossless (PS3.5 Annex G) of one 8-bit single-sample frame: a 64-byte header and
/// one PackBits segment, each row encoded on its own.
pub fn rle_frame(pixels: &[u8]) -> Vec<u8> {
    let mut segment = Vec::with_capacity(pixels.len());
    for row in pixels.chunks(usize::from(COLS)) {
        packbits(row, &mut segment);
    }
    if segment.len() % 2 == 1 {
        segment.push(0x80); // a no-op byte keeps the segment even
    }
    let mut out = Vec::with_capacity(64 + segment.len());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&64u32.to_le_bytes());
    out.resize(64, 0);
    out.extend_from_slice(&segment);
    out
}

fn packbits(row: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < row.len() {
        let run = row[i..]
            .iter()
            .take(128)
            .take_while(|&&b| b == row[i])
            .count();
        if run >= 2 {
            out.push((257 - run) as u8);
            out.push(row[i]);
            i += run;
            continue;
        }
        let start = i;
        while i < row.len() && i - start < 128 && !(i + 1 < row.len() && row[i] == row[i + 1]) {
            i += 1;
        }
        out.push((i - start - 1) as u8);
        out.extend_from_slice(&row[start..i]);
    }
}
