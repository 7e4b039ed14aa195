//! Tags, value representations and the handful of transfer-syntax facts the scanner needs.

use std::fmt;

/// A DICOM attribute tag: (group, element).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(pub u16, pub u16);

impl Tag {
    /// The tag as one number, group in the high half (the order DICOM sorts by).
    pub fn as_u32(self) -> u32 {
        (u32::from(self.0) << 16) | u32::from(self.1)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:04X},{:04X})", self.0, self.1)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Tags the scanner reads; everything else is skipped by its length.
#[allow(missing_docs)]
pub mod tags {
    use super::Tag;
    pub const FILE_META_GROUP_LENGTH: Tag = Tag(0x0002, 0x0000);
    pub const MEDIA_STORAGE_SOP_CLASS_UID: Tag = Tag(0x0002, 0x0002);
    pub const TRANSFER_SYNTAX_UID: Tag = Tag(0x0002, 0x0010);
    pub const DIRECTORY_RECORD_SEQUENCE: Tag = Tag(0x0004, 0x1220);
    pub const SPECIFIC_CHARACTER_SET: Tag = Tag(0x0008, 0x0005);
    pub const IMAGE_TYPE: Tag = Tag(0x0008, 0x0008);
    pub const SOP_CLASS_UID: Tag = Tag(0x0008, 0x0016);
    pub const SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x0018);
    pub const STUDY_DATE: Tag = Tag(0x0008, 0x0020);
    pub const SERIES_DATE: Tag = Tag(0x0008, 0x0021);
    pub const STUDY_TIME: Tag = Tag(0x0008, 0x0030);
    pub const SERIES_TIME: Tag = Tag(0x0008, 0x0031);
    pub const ACCESSION_NUMBER: Tag = Tag(0x0008, 0x0050);
    pub const MODALITY: Tag = Tag(0x0008, 0x0060);
    pub const REFERRING_PHYSICIAN_NAME: Tag = Tag(0x0008, 0x0090);
    pub const TIMEZONE_OFFSET_FROM_UTC: Tag = Tag(0x0008, 0x0201);
    pub const STUDY_DESCRIPTION: Tag = Tag(0x0008, 0x1030);
    pub const SERIES_DESCRIPTION: Tag = Tag(0x0008, 0x103E);
    pub const PATIENT_NAME: Tag = Tag(0x0010, 0x0010);
    pub const PATIENT_ID: Tag = Tag(0x0010, 0x0020);
    pub const ISSUER_OF_PATIENT_ID: Tag = Tag(0x0010, 0x0021);
    pub const PATIENT_BIRTH_DATE: Tag = Tag(0x0010, 0x0030);
    pub const PATIENT_SEX: Tag = Tag(0x0010, 0x0040);
    pub const BODY_PART_EXAMINED: Tag = Tag(0x0018, 0x0015);
    pub const STUDY_INSTANCE_UID: Tag = Tag(0x0020, 0x000D);
    pub const SERIES_INSTANCE_UID: Tag = Tag(0x0020, 0x000E);
    pub const STUDY_ID: Tag = Tag(0x0020, 0x0010);
    pub const SERIES_NUMBER: Tag = Tag(0x0020, 0x0011);
    pub const INSTANCE_NUMBER: Tag = Tag(0x0020, 0x0013);
    pub const LATERALITY: Tag = Tag(0x0020, 0x0060);
    pub const SAMPLES_PER_PIXEL: Tag = Tag(0x0028, 0x0002);
    pub const PHOTOMETRIC_INTERPRETATION: Tag = Tag(0x0028, 0x0004);
    pub const PLANAR_CONFIGURATION: Tag = Tag(0x0028, 0x0006);
    pub const NUMBER_OF_FRAMES: Tag = Tag(0x0028, 0x0008);
    pub const ROWS: Tag = Tag(0x0028, 0x0010);
    pub const COLUMNS: Tag = Tag(0x0028, 0x0011);
    pub const BITS_ALLOCATED: Tag = Tag(0x0028, 0x0100);
    pub const BITS_STORED: Tag = Tag(0x0028, 0x0101);
    pub const PIXEL_REPRESENTATION: Tag = Tag(0x0028, 0x0103);
    pub const DOCUMENT_TITLE: Tag = Tag(0x0042, 0x0010);
    pub const EXTENDED_OFFSET_TABLE: Tag = Tag(0x7FE0, 0x0001);
    pub const EXTENDED_OFFSET_TABLE_LENGTHS: Tag = Tag(0x7FE0, 0x0002);
    pub const FLOAT_PIXEL_DATA: Tag = Tag(0x7FE0, 0x0008);
    pub const DOUBLE_FLOAT_PIXEL_DATA: Tag = Tag(0x7FE0, 0x0009);
    pub const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
    pub const ITEM: Tag = Tag(0xFFFE, 0xE000);
    pub const ITEM_DELIMITATION: Tag = Tag(0xFFFE, 0xE00D);
    pub const SEQUENCE_DELIMITATION: Tag = Tag(0xFFFE, 0xE0DD);
}

/// Value representation (PS3.5 6.2).
#[allow(missing_docs, clippy::upper_case_acronyms)]
#[rustfmt::skip]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vr {
    AE, AS, AT, CS, DA, DS, DT, FD, FL, IS, LO, LT, OB, OD, OF, OL, OV, OW, PN, SH, SL, SQ, SS, ST,
    SV, TM, UC, UI, UL, UN, UR, US, UT, UV,
}

impl Vr {
    /// Parses the two VR bytes of an explicit-VR element; `None` when they are no VR,
    /// which the walker takes as a sign the element is really implicit VR.
    #[rustfmt::skip]
    pub fn from_bytes(b: [u8; 2]) -> Option<Vr> {
        use Vr::*;
        Some(match &b {
            b"AE" => AE, b"AS" => AS, b"AT" => AT, b"CS" => CS, b"DA" => DA, b"DS" => DS,
            b"DT" => DT, b"FD" => FD, b"FL" => FL, b"IS" => IS, b"LO" => LO, b"LT" => LT,
            b"OB" => OB, b"OD" => OD, b"OF" => OF, b"OL" => OL, b"OV" => OV, b"OW" => OW,
            b"PN" => PN, b"SH" => SH, b"SL" => SL, b"SQ" => SQ, b"SS" => SS, b"ST" => ST,
            b"SV" => SV, b"TM" => TM, b"UC" => UC, b"UI" => UI, b"UL" => UL, b"UN" => UN,
            b"UR" => UR, b"US" => US, b"UT" => UT, b"UV" => UV,
            _ => return None,
        })
    }

    /// The two letters.
    #[rustfmt::skip]
    pub fn as_str(self) -> &'static str {
        use Vr::*;
        match self {
            AE => "AE", AS => "AS", AT => "AT", CS => "CS", DA => "DA", DS => "DS", DT => "DT",
            FD => "FD", FL => "FL", IS => "IS", LO => "LO", LT => "LT", OB => "OB", OD => "OD",
            OF => "OF", OL => "OL", OV => "OV", OW => "OW", PN => "PN", SH => "SH", SL => "SL",
            SQ => "SQ", SS => "SS", ST => "ST", SV => "SV", TM => "TM", UC => "UC", UI => "UI",
            UL => "UL", UN => "UN", UR => "UR", US => "US", UT => "UT", UV => "UV",
        }
    }

    /// Explicit-VR elements of these VRs have 2 reserved bytes and a 32-bit length.
    pub fn has_long_length(self) -> bool {
        use Vr::*;
        matches!(
            self,
            OB | OD | OF | OL | OV | OW | SQ | UC | UN | UR | UT | SV | UV
        )
    }

    /// Text VRs whose bytes follow Specific Character Set (others are the default repertoire).
    pub fn uses_character_set(self) -> bool {
        use Vr::*;
        matches!(self, SH | LO | ST | LT | UT | PN | UC)
    }
}

/// The VR of `tag` in the standard data dictionary (PS3.6), for Implicit VR data
/// sets: group lengths are UL, private creators LO, other private attributes unknown
/// (`None`, read as UN).
pub fn dictionary_vr(tag: Tag) -> Option<Vr> {
    use super::dictionary::{REPEATING, STANDARD};
    if tag.1 == 0x0000 {
        return Some(Vr::UL);
    }
    if tag.0 % 2 == 1 {
        return (0x0010..=0x00FF).contains(&tag.1).then_some(Vr::LO);
    }
    let t = tag.as_u32();
    if let Ok(i) = STANDARD.binary_search_by_key(&t, |&(k, _)| k) {
        return Some(STANDARD[i].1);
    }
    REPEATING
        .iter()
        .find(|&&(mask, value, _)| t & mask == value)
        .map(|&(_, _, vr)| vr)
}

/// Whether the dictionary VR of `tag` is "US or SS" (signed when Pixel Representation is 1).
pub fn is_us_or_ss(tag: Tag) -> bool {
    super::dictionary::US_OR_SS
        .binary_search(&tag.as_u32())
        .is_ok()
}

/// How a data set's elements are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoding {
    /// Elements carry their VR.
    pub explicit_vr: bool,
    /// Numbers (tags, lengths, binary values) are big endian.
    pub big_endian: bool,
}

impl Encoding {
    /// Explicit VR Little Endian, the encoding of the File Meta group and of most files.
    pub const EXPLICIT_LE: Encoding = Encoding {
        explicit_vr: true,
        big_endian: false,
    };
    /// Implicit VR Little Endian, the DICOM default and the encoding inside UN sequences.
    pub const IMPLICIT_LE: Encoding = Encoding {
        explicit_vr: false,
        big_endian: false,
    };
    /// Explicit VR Big Endian (retired, still found).
    pub const EXPLICIT_BE: Encoding = Encoding {
        explicit_vr: true,
        big_endian: true,
    };
}

/// Well-known transfer syntax UIDs.
#[allow(missing_docs)]
pub mod ts {
    pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
    pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
    pub const DEFLATED_EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1.99";
    pub const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";
    pub const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
    pub const JPEG_LOSSLESS_SV1: &str = "1.2.840.10008.1.2.4.70";
    pub const JPEG2000_LOSSLESS: &str = "1.2.840.10008.1.2.4.90";
    pub const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
}

/// The data-set encoding a transfer syntax names, and whether the data set is deflated.
/// Unknown UIDs are taken as Explicit VR Little Endian, which every later syntax uses.
pub fn encoding_of(ts_uid: &str) -> (Encoding, bool) {
    match ts_uid {
        ts::IMPLICIT_VR_LE => (Encoding::IMPLICIT_LE, false),
        ts::EXPLICIT_VR_BE => (Encoding::EXPLICIT_BE, false),
        ts::DEFLATED_EXPLICIT_VR_LE => (Encoding::EXPLICIT_LE, true),
        // JPIP Referenced Deflate and JPIP HTJ2K Referenced Deflate use the deflated
        // data-set encoding too (PS3.5 A.5, A.6; the second found missing by the
        // registry agreement test in pixels/syntax.rs).
        "1.2.840.10008.1.2.4.95" | "1.2.840.10008.1.2.4.205" => (Encoding::EXPLICIT_LE, true),
        _ => (Encoding::EXPLICIT_LE, false),
    }
}

/// SOP Class of a DICOMDIR (Media Storage Directory Storage).
pub const MEDIA_STORAGE_DIRECTORY_SOP_CLASS: &str = "1.2.840.10008.1.3.10";

/// sia's copy of the PS3.6 dictionary (`dictionary.rs`, from pydicom) against dicom-rs'
/// (`dicom-dictionary-std`, from DCMTK's). sia keeps its own copy for speed: a lookup
/// is a binary search over a sorted static table, 12 ns against 21 ns for the crate's
/// hash map (measured over a CT header's 400 tags, release build), and an Implicit VR
/// header scan looks up every element (1.4 us for a 40 KB CT header in all).
#[cfg(test)]
mod agrees_with_dicom_dictionary_std {
    use dicom_core::dictionary::{DataDictionary, VirtualVr};
    use dicom_dictionary_std::StandardDataDictionary;

    use super::{Tag, Vr, dictionary_vr, is_us_or_ss};

    /// Retired, unnamed entries ("Retired-blank" in PS3.6) that pydicom's dictionary
    /// keeps and DCMTK's leaves out.
    const ONLY_IN_PYDICOM: [u32; 6] = [
        0x0008_0202,
        0x0018_0061,
        0x0018_9445,
        0x0028_0020,
        0x0400_0315,
        0x300A_0782,
    ];

    /// Whether dicom-rs' VR for `tag` is what sia reads: the same exact VR, or for its
    /// context-dependent ones the first choice sia takes (US for "US or SS", flagged in
    /// `US_OR_SS`; OW for "OB or OW"; US or OW for LUT data).
    fn same(tag: Tag, ours: Vr, theirs: VirtualVr) -> bool {
        match theirs {
            VirtualVr::Exact(v) => format!("{v:?}") == format!("{ours:?}"),
            VirtualVr::Xs => ours == Vr::US && is_us_or_ss(tag),
            VirtualVr::Ox | VirtualVr::Px => ours == Vr::OW,
            VirtualVr::Lt => matches!(ours, Vr::US | Vr::OW),
            // A virtual VR added by a later dicom-core: a difference to look at.
            _ => false,
        }
    }

    #[test]
    fn every_standard_attribute_has_the_same_vr() {
        let mut checked = 0;
        for &(t, vr) in super::super::dictionary::STANDARD {
            let tag = Tag((t >> 16) as u16, t as u16);
            let theirs = StandardDataDictionary.by_tag(dicom_core::Tag(tag.0, tag.1));
            match theirs {
                None => assert!(ONLY_IN_PYDICOM.contains(&t), "{t:08X} missing in dicom-rs"),
                Some(e) => {
                    assert!(
                        same(tag, vr, e.vr),
                        "{t:08X}: sia {vr:?}, dicom-rs {:?}",
                        e.vr
                    );
                    assert_eq!(dictionary_vr(tag), Some(vr));
                    checked += 1;
                }
            }
        }
        assert!(checked > 5000, "{checked}");
        // Repeating groups (50xx curves, 60xx overlays, 7Fxx) and elements (0028,04x0...):
        // every even value of the xx.
        // (sia's whole lookup: an exact entry such as (0028,0400) wins over (0028,04x0).)
        for &(mask, value, _) in super::super::dictionary::REPEATING {
            for x in (0..=0xFEu32).step_by(2) {
                let t = value | ((x << 16 | x << 4) & !mask);
                let tag = Tag((t >> 16) as u16, t as u16);
                let Some(vr) = dictionary_vr(tag) else {
                    continue;
                };
                if let Some(e) = StandardDataDictionary.by_tag(dicom_core::Tag(tag.0, tag.1)) {
                    assert!(
                        same(tag, vr, e.vr),
                        "{t:08X}: sia {vr:?}, dicom-rs {:?}",
                        e.vr
                    );
                }
            }
        }
        // And the other way for "US or SS": every such attribute is flagged.
        for &t in super::super::dictionary::US_OR_SS {
            let e = StandardDataDictionary
                .by_tag(dicom_core::Tag((t >> 16) as u16, t as u16))
                .expect("known to dicom-rs");
            assert!(
                matches!(e.vr, VirtualVr::Xs | VirtualVr::Lt),
                "{t:08X}: {:?}",
                e.vr
            );
        }
    }
}
