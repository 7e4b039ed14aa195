//! Issue 14, kind 2: misspelt Specific Character Set terms are read as the defined term
//! they stand for, everywhere text is decoded, and the index report names the files.

use sia::Engine;
use sia::Request;
use sia::internal::dicom::charset::{CharacterSet, normalize_term};
use sia::internal::dicom::tag::{Encoding, Vr, tags, ts};
use sia::internal::dicom::write::DataSetWriter;

use crate::common::*;

/// A file whose Patient's Name is `name` (raw bytes) under Specific Character Set `cs`.
fn named(cs: &[u8], name: &[u8]) -> Vec<u8> {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    w.element(tags::SPECIFIC_CHARACTER_SET, Vr::CS, cs)
        .str(tags::SOP_CLASS_UID, Vr::UI, CT)
        .str(tags::SOP_INSTANCE_UID, Vr::UI, SOP)
        .str(tags::MODALITY, Vr::CS, "CT")
        .element(tags::PATIENT_NAME, Vr::PN, name)
        .str(tags::PATIENT_ID, Vr::LO, "P1")
        .str(tags::STUDY_INSTANCE_UID, Vr::UI, STUDY)
        .str(tags::SERIES_INSTANCE_UID, Vr::UI, SERIES);
    with_meta(ts::EXPLICIT_VR_LE, w.as_bytes())
}

#[test]
fn every_defined_term_survives_its_misspellings() {
    let defined = [
        "ISO_IR 6",
        "ISO_IR 100",
        "ISO_IR 101",
        "ISO_IR 109",
        "ISO_IR 110",
        "ISO_IR 144",
        "ISO_IR 127",
        "ISO_IR 126",
        "ISO_IR 138",
        "ISO_IR 148",
        "ISO_IR 203",
        "ISO_IR 166",
        "ISO_IR 13",
        "ISO_IR 192",
        "GB18030",
        "GBK",
        "ISO 2022 IR 6",
        "ISO 2022 IR 100",
        "ISO 2022 IR 101",
        "ISO 2022 IR 109",
        "ISO 2022 IR 110",
        "ISO 2022 IR 144",
        "ISO 2022 IR 127",
        "ISO 2022 IR 126",
        "ISO 2022 IR 138",
        "ISO 2022 IR 148",
        "ISO 2022 IR 203",
        "ISO 2022 IR 166",
        "ISO 2022 IR 13",
        "ISO 2022 IR 87",
        "ISO 2022 IR 159",
        "ISO 2022 IR 149",
        "ISO 2022 IR 58",
    ];
    for term in defined {
        assert_eq!(normalize_term(term), Some(term));
        let variants = [
            term.replace('_', " "),
            term.replace(['_', ' '], "-"),
            term.replace(['_', ' '], ""),
            term.to_lowercase(),
            format!("  {term} "),
            term.replacen(' ', "  ", 1),
            term.replace("IR", "IR_").replace("_ ", "_"),
        ];
        for v in variants {
            assert_eq!(normalize_term(&v), Some(term), "{v:?}");
        }
    }
    assert_eq!(normalize_term("UTF-8"), Some("ISO_IR 192"));
    assert_eq!(normalize_term("ISO-8859-1"), Some("ISO_IR 100"));
    for unknown in ["", "ISO_IR 999", "KOI8-R", "ISO 2022 IR"] {
        assert_eq!(normalize_term(unknown), None, "{unknown:?}");
    }
}

#[test]
fn misspelt_terms_decode_as_the_defined_ones() {
    let utf8 = "Müller^Zoë".as_bytes();
    for cs in [
        "ISO IR 192",
        "ISO-IR 192",
        "ISO_IR192",
        "iso_ir 192",
        " ISO_IR  192 ",
    ] {
        let c = CharacterSet::from_value(cs.as_bytes());
        assert!(c.normalized(), "{cs:?}");
        assert_eq!(c.decode(utf8, true), "Müller^Zoë", "{cs:?}");
    }
    assert!(!CharacterSet::from_value(b"ISO_IR 192").normalized());
    // Latin-1, and ISO 2022 with code extensions in the second value.
    let c = CharacterSet::from_value(b"ISO IR 100");
    assert_eq!(c.decode(b"Buc^J\xe9r\xf4me", true), "Buc^Jérôme");
    let raw =
        b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B";
    for cs in [
        &b"\\ISO-2022-IR-87"[..],
        b"\\ISO 2022 IR87",
        b"\\iso 2022 ir 87",
        b"ISO2022IR6\\ISO2022IR87",
    ] {
        let c = CharacterSet::from_value(cs);
        assert!(c.normalized());
        assert_eq!(
            c.decode(raw, true),
            "Yamada^Tarou=山田^太郎=やまだ^たろう",
            "{:?}",
            String::from_utf8_lossy(cs)
        );
    }
    let korean = b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf";
    let c = CharacterSet::from_value(b"\\ISO_2022_IR_149");
    assert_eq!(c.decode(korean, true), "Hong^Gildong=洪^吉洞=홍^길동");
}

#[test]
fn the_issue_example_through_the_index_metadata_and_qido() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("zoe.dcm"),
        named(b"ISO IR 192", "Müller^Zoë".as_bytes()),
    )
    .unwrap();
    let engine = Engine::open(crate::common::config_in(dir.path()).build()).unwrap();
    let report = engine.index(&[&data], &Default::default()).unwrap();
    assert_eq!(report.normalized_charsets.len(), 1, "{report:?}");
    assert!(report.normalized_charsets[0].path.ends_with("zoe.dcm"));
    assert_eq!(report.normalized_charsets[0].value, "ISO IR 192");
    let get = |t: &str| -> serde_json::Value {
        let r = engine.handle(&Request::get(t));
        assert_eq!(r.status, 200, "{t}");
        serde_json::from_slice(&r.body.to_vec()).unwrap()
    };
    let meta = get(&format!(
        "/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{SOP}/metadata"
    ));
    assert_eq!(meta[0]["00100010"]["Value"][0]["Alphabetic"], "Müller^Zoë");
    let found = get("/dicom-web/studies?PatientName=M*ller*");
    assert_eq!(found[0]["00100010"]["Value"][0]["Alphabetic"], "Müller^Zoë");
}
