//! Writes the benchmark corpus: single-frame CT instances of about 40 KB.
//!
//! `cargo run --release --example synth_corpus -- DIR [PATIENTS [SIZE]]` writes
//! PATIENTS x 2 studies x 5 series x 10 instances (default 200 patients: 20,000 files)
//! of SIZE x SIZE pixels (default 140: about 40 KB a file).

use std::path::PathBuf;

use sia::internal::dicom::tag::{Encoding, Vr, tags, ts};
use sia::internal::dicom::write::{DataSetWriter, file_meta};

const ROOT: &str = "2.25.311975318143254412917338434207553941";
const CT: &str = "1.2.840.10008.5.1.4.1.1.2";

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .expect("usage: synth_corpus DIR [PATIENTS [SIZE]]"),
    );
    let patients: u32 = args
        .next()
        .map(|p| p.parse().expect("PATIENTS is a number"))
        .unwrap_or(200);
    let size: u16 = args
        .next()
        .map(|p| p.parse().expect("SIZE is a number"))
        .unwrap_or(140);
    let pixels: Vec<u8> = (0..u32::from(size) * u32::from(size))
        .flat_map(|i| ((i % 4096) as u16).to_le_bytes())
        .collect();
    let mut n = 0u64;
    for p in 1..=patients {
        for st in 1..=2u32 {
            for se in 1..=5u32 {
                let folder = dir.join(format!("p{p:04}/st{st}/se{se}"));
                std::fs::create_dir_all(&folder).expect("create folder");
                for i in 1..=10u32 {
                    let study = format!("{ROOT}.{p}.{st}");
                    let series = format!("{study}.{se}");
                    let sop = format!("{series}.{i}");
                    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
                    w.str(tags::SPECIFIC_CHARACTER_SET, Vr::CS, "ISO_IR 100")
                        .str(tags::IMAGE_TYPE, Vr::CS, "ORIGINAL\\PRIMARY\\AXIAL")
                        .str(tags::SOP_CLASS_UID, Vr::UI, CT)
                        .str(tags::SOP_INSTANCE_UID, Vr::UI, &sop)
                        .str(tags::STUDY_DATE, Vr::DA, "20240101")
                        .str(tags::SERIES_DATE, Vr::DA, "20240101")
                        .str(tags::STUDY_TIME, Vr::TM, "120000")
                        .str(tags::SERIES_TIME, Vr::TM, "120500")
                        .str(tags::ACCESSION_NUMBER, Vr::SH, &format!("A{p:05}{st}"))
                        .str(tags::MODALITY, Vr::CS, "CT")
                        .str(tags::REFERRING_PHYSICIAN_NAME, Vr::PN, "Referrer^Rita")
                        .str(tags::STUDY_DESCRIPTION, Vr::LO, "CT THORAX")
                        .str(tags::SERIES_DESCRIPTION, Vr::LO, &format!("Series {se}"))
                        .str(tags::PATIENT_NAME, Vr::PN, &format!("Patient^{p}"))
                        .str(tags::PATIENT_ID, Vr::LO, &format!("PID{p:05}"))
                        .str(tags::ISSUER_OF_PATIENT_ID, Vr::LO, "HOSP")
                        .str(tags::PATIENT_BIRTH_DATE, Vr::DA, "19600101")
                        .str(tags::PATIENT_SEX, Vr::CS, "O")
                        .str(tags::BODY_PART_EXAMINED, Vr::CS, "CHEST")
                        .str(tags::STUDY_INSTANCE_UID, Vr::UI, &study)
                        .str(tags::SERIES_INSTANCE_UID, Vr::UI, &series)
                        .str(tags::STUDY_ID, Vr::SH, &st.to_string())
                        .str(tags::SERIES_NUMBER, Vr::IS, &se.to_string())
                        .str(tags::INSTANCE_NUMBER, Vr::IS, &i.to_string())
                        .us(tags::SAMPLES_PER_PIXEL, 1)
                        .str(tags::PHOTOMETRIC_INTERPRETATION, Vr::CS, "MONOCHROME2")
                        .us(tags::ROWS, size)
                        .us(tags::COLUMNS, size)
                        .us(tags::BITS_ALLOCATED, 16)
                        .us(tags::BITS_STORED, 12)
                        .us(tags::PIXEL_REPRESENTATION, 0)
                        .native_pixel_data(Vr::OW, &pixels);
                    let mut bytes = file_meta(CT, &sop, ts::EXPLICIT_VR_LE);
                    bytes.extend_from_slice(w.as_bytes());
                    std::fs::write(folder.join(format!("{i:02}.dcm")), bytes).expect("write file");
                    n += 1;
                }
            }
        }
    }
    println!("wrote {n} files to {}", dir.display());
}
