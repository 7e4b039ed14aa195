//! Which encapsulated transfer syntaxes sia decodes, through which codec family.
//!
//! The codecs are those of `dicom-transfer-syntax-registry` built into this binary (its
//! cargo features decide which; see the README's "Pixel data" table). A syntax decodes
//! when the registry holds a pixel-data reader for it *and* sia checks its codestream
//! header first (`pixels::codestream`); the rest answer 406.

use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

/// The codestream format of an encapsulated syntax (PS3.5 Section 8.2 and Annex A.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// JPEG (ITU-T T.81): Baseline 1.2.840.10008.1.2.4.50, Extended .51, Lossless .57
    /// and .70.
    Jpeg,
    /// JPEG-LS (ITU-T T.87): .80 and .81.
    JpegLs,
    /// JPEG 2000 (ITU-T T.800) and High-Throughput JPEG 2000 (T.814): .90-.93, .201-.203.
    Jpeg2000,
    /// RLE Lossless (PS3.5 Annex G): 1.2.840.10008.1.2.5.
    Rle,
}

/// The family of `transfer_syntax`, or `None` for native and unknown syntaxes and for
/// those sia does not decode (JPEG XL, MPEG, JPIP).
pub fn family(transfer_syntax: &str) -> Option<Family> {
    Some(match transfer_syntax {
        "1.2.840.10008.1.2.4.50"
        | "1.2.840.10008.1.2.4.51"
        | "1.2.840.10008.1.2.4.57"
        | "1.2.840.10008.1.2.4.70" => Family::Jpeg,
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => Family::JpegLs,
        "1.2.840.10008.1.2.4.90"
        | "1.2.840.10008.1.2.4.91"
        | "1.2.840.10008.1.2.4.92"
        | "1.2.840.10008.1.2.4.93"
        | "1.2.840.10008.1.2.4.201"
        | "1.2.840.10008.1.2.4.202"
        | "1.2.840.10008.1.2.4.203" => Family::Jpeg2000,
        "1.2.840.10008.1.2.5" => Family::Rle,
        _ => return None,
    })
}

/// Whether frames in `transfer_syntax` can be decoded by this build.
pub fn decodes(transfer_syntax: &str) -> bool {
    family(transfer_syntax).is_some()
        && TransferSyntaxRegistry
            .get(transfer_syntax)
            .is_some_and(|ts| ts.pixel_data_reader().is_some())
}

/// Whether `transfer_syntax` may discard information (PS3.5 Table 8-1 and A.4): its
/// decoded frames are then the codec's reconstruction, not the original pixels.
pub fn is_lossy(transfer_syntax: &str) -> bool {
    matches!(
        transfer_syntax,
        "1.2.840.10008.1.2.4.50"
            | "1.2.840.10008.1.2.4.51"
            | "1.2.840.10008.1.2.4.81"
            | "1.2.840.10008.1.2.4.91"
            | "1.2.840.10008.1.2.4.93"
            | "1.2.840.10008.1.2.4.203"
            | "1.2.840.10008.1.2.4.100"
            | "1.2.840.10008.1.2.4.101"
            | "1.2.840.10008.1.2.4.102"
            | "1.2.840.10008.1.2.4.103"
            | "1.2.840.10008.1.2.4.104"
            | "1.2.840.10008.1.2.4.105"
            | "1.2.840.10008.1.2.4.106"
            | "1.2.840.10008.1.2.4.107"
            | "1.2.840.10008.1.2.4.108"
            | "1.2.840.10008.1.2.4.111"
            | "1.2.840.10008.1.2.4.112"
    )
}

/// Every syntax this build decodes, for the README table and the CapabilityStatement-like
/// listings a host may print.
pub fn decodable() -> Vec<&'static str> {
    [
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.92",
        "1.2.840.10008.1.2.4.93",
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.202",
        "1.2.840.10008.1.2.4.203",
        "1.2.840.10008.1.2.5",
    ]
    .into_iter()
    .filter(|uid| decodes(uid))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_build_decodes_the_pure_rust_families() {
        for uid in [
            "1.2.840.10008.1.2.4.50",
            "1.2.840.10008.1.2.4.70",
            "1.2.840.10008.1.2.5",
            "1.2.840.10008.1.2.4.90",
        ] {
            assert!(decodes(uid), "{uid}");
        }
        assert_eq!(decodes("1.2.840.10008.1.2.4.80"), cfg!(feature = "jpegls"));
        assert!(!decodes("1.2.840.10008.1.2.4.100"), "MPEG-2 is not decoded");
        assert!(!decodes("1.2.840.10008.1.2.1"), "native is not a decode");
    }

    /// sia's transfer syntax facts (`dicom::tag::encoding_of`, [`family`], [`is_lossy`])
    /// against the registry's, for every syntax the registry lists. sia keeps its own
    /// match on the UID: the registry exposes endianness, deflation and encapsulation,
    /// but not whether the data set is explicit VR, and not lossiness (checked here
    /// against the names: no "Lossless" syntax, other than "Lossy (Near-Lossless)", is
    /// lossy).
    #[test]
    fn tables_agree_with_the_registry() {
        use crate::dicom::tag::{encoding_of, ts};
        use dicom_encoding::transfer_syntax::{Codec, Endianness};
        let mut seen = 0;
        for t in TransferSyntaxRegistry.iter() {
            let uid = t.uid();
            let (encoding, deflated) = encoding_of(uid);
            assert_eq!(
                encoding.big_endian,
                t.endianness() == Endianness::Big,
                "{uid}"
            );
            assert_eq!(
                deflated,
                matches!(t.codec(), Codec::Dataset(Some(_))),
                "{uid}"
            );
            assert_eq!(encoding.explicit_vr, uid != ts::IMPLICIT_VR_LE, "{uid}");
            if family(uid).is_some() {
                assert!(t.is_encapsulated_pixel_data(), "{uid}");
            }
            if t.name().contains("Lossless") && !t.name().contains("Lossy") {
                assert!(!is_lossy(uid), "{uid} {}", t.name());
            }
            if decodes(uid) {
                assert!(t.pixel_data_reader().is_some(), "{uid}");
            }
            seen += 1;
        }
        assert!(seen >= 30, "{seen}");
        for uid in [
            ts::IMPLICIT_VR_LE,
            ts::EXPLICIT_VR_LE,
            ts::DEFLATED_EXPLICIT_VR_LE,
            ts::EXPLICIT_VR_BE,
            ts::JPEG_BASELINE,
            ts::JPEG_LOSSLESS_SV1,
            ts::JPEG2000_LOSSLESS,
            ts::RLE_LOSSLESS,
        ] {
            assert!(TransferSyntaxRegistry.get(uid).is_some(), "{uid}");
        }
        // Every syntax sia decodes is one the registry knows as encapsulated.
        for uid in decodable() {
            let t = TransferSyntaxRegistry.get(uid).expect("registered");
            assert!(t.is_encapsulated_pixel_data(), "{uid}");
        }
    }
}
