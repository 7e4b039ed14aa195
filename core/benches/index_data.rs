//! The header-only corpus and PostgreSQL schemas of the index benchmarks, shared by
//! `benches/index.rs` (criterion, 20,000 instances) and `benches/index_scale.rs`
//! (percentiles at 1,000,000 instances).

use std::path::Path;

use sia::internal::dicom::tag::{Encoding, Vr, tags, ts};
use sia::internal::dicom::write::{DataSetWriter, file_meta};

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const ROOT: &str = "1.2.826.0.1.3680043.10.1015.9";
/// Instances per patient: one study of two series of five.
pub const PER_PATIENT: u32 = 10;

/// The Study Instance UID of patient `patient`'s one study.
pub fn study_uid(patient: u32) -> String {
    format!("{ROOT}.{patient}")
}

/// Writes `instances` header-only files under `dir`, 1,000 per folder: patient `n /
/// PER_PATIENT` has Patient ID `P{n:05}` of issuer `HOSP`.
pub fn write_corpus(dir: &Path, instances: u32) {
    for n in 0..instances {
        let (patient, series, k) = (n / PER_PATIENT, n / 5, n % 5);
        let sop = format!("{ROOT}.{patient}.{series}.{k}");
        let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
        w.str(tags::SOP_CLASS_UID, Vr::UI, CT)
            .str(tags::SOP_INSTANCE_UID, Vr::UI, &sop)
            .str(
                tags::STUDY_DATE,
                Vr::DA,
                &format!("2024{:02}{:02}", 1 + patient % 12, 1 + patient % 28),
            )
            .str(tags::STUDY_TIME, Vr::TM, "101112")
            .str(
                tags::MODALITY,
                Vr::CS,
                if series % 2 == 0 { "CT" } else { "SR" },
            )
            .str(tags::STUDY_DESCRIPTION, Vr::LO, "CHEST")
            .str(tags::PATIENT_NAME, Vr::PN, &format!("Patient^{patient:05}"))
            .str(tags::PATIENT_ID, Vr::LO, &format!("P{patient:05}"))
            .str(tags::ISSUER_OF_PATIENT_ID, Vr::LO, "HOSP")
            .str(tags::STUDY_INSTANCE_UID, Vr::UI, &study_uid(patient))
            .str(
                tags::SERIES_INSTANCE_UID,
                Vr::UI,
                &format!("{ROOT}.{patient}.{series}"),
            );
        let mut bytes = file_meta(CT, &sop, ts::EXPLICIT_VR_LE);
        bytes.extend_from_slice(w.as_bytes());
        let folder = dir.join(format!("{:03}", patient / 100));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(format!("{n:07}.dcm")), bytes).unwrap();
    }
}

/// A new PostgreSQL schema's URL (schema `bench_<pid>_<n>`) in the database `base`
/// names.
pub fn pg_schema(base: &str, n: u32) -> String {
    let schema = format!("bench_{}_{n}", std::process::id());
    let mut c = postgres::Client::connect(base, postgres::NoTls).unwrap();
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}
