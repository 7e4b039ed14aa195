//! Reading DICOM files: the header scan, character sets, and the frame table.
//!
//! The scanner is sia's own, not dicom-rs: it works on byte offsets (which the frame
//! table needs and dicom-object does not expose), checks every declared length against
//! the file before touching it (dicom-rs allocates by declared length), decodes ISO 2022
//! code extensions, and stops at Pixel Data without reading the payload.

pub mod bulk;
pub mod charset;
mod deflate;
mod dictionary;
mod elements;
pub mod frames;
pub mod json;
pub mod native;
mod record;
mod scan;
pub mod source;
pub mod tag;
pub mod transcode;
pub mod write;

pub use frames::{Fragment, FrameBoundaries, FrameTable, ImagePixelInfo};
pub use scan::{
    InstanceRecord, PatientInfo, Scanned, SeriesInfo, StudyInfo, inflated_frames, scan, scan_file,
};

use std::fmt;

/// Whether `s` is a DICOM UID as PS3.5 9.1 defines it: digits and dots, at most 64
/// characters.
pub fn is_conformant_uid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// Whether `s` may identify a study, series or instance: the one rule the scanner (what
/// is indexed) and every path and query (what is asked for) share.
///
/// A DICOM UID always may. So may a non-conformant value that real (often anonymised)
/// files carry, such as 64 hexadecimal digits or a UUID, when it is a safe identifier:
/// at most 64 characters, none of them a control, non-ASCII, space, `/` or `\`
/// character, no `..`, and only characters a URL path segment carries as they are
/// (letters, digits and `-._~!$&'()*+;=:@`; not `,`, which separates list values).
/// Everything else is refused: the scanner skips the file with a reason, and a request
/// that names such a value is a 400.
pub fn is_safe_uid(s: &str) -> bool {
    // One pass over at most 64 bytes, each looked up in a table (every request path
    // checks three UIDs; the scanner, every file's).
    if s.is_empty() || s.len() > 64 || s == "." {
        return false;
    }
    let mut previous = 0u8;
    for b in s.bytes() {
        if !UID_BYTE[usize::from(b)] || (b == b'.' && previous == b'.') {
            return false;
        }
        previous = b;
    }
    true
}

/// The bytes [`is_safe_uid`] allows: letters, digits and `-._~!$&'()*+;=:@`.
static UID_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"-._~!$&'()*+;=:@";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};

/// Why a file could not be indexed. The message names what was wrong and where, so a
/// user can find the file's problem without a hex editor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanError {
    kind: ScanErrorKind,
    message: String,
}

/// The broad class of a [`ScanError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScanErrorKind {
    /// The file is not DICOM at all.
    NotDicom,
    /// A declared length or structure runs past the end of the file.
    Truncated,
    /// The structure is inconsistent (bad lengths, missing required attributes, ...).
    Malformed,
    /// Valid DICOM that sia does not index (a DICOMDIR, a data set past a size limit).
    Unsupported,
    /// Reading the file failed.
    Io,
}

impl ScanError {
    pub(crate) fn new(kind: ScanErrorKind, message: impl Into<String>) -> Self {
        ScanError {
            kind,
            message: message.into(),
        }
    }
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::new(ScanErrorKind::Malformed, message)
    }
    pub(crate) fn truncated(message: impl Into<String>) -> Self {
        Self::new(ScanErrorKind::Truncated, message)
    }
    pub(crate) fn io(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            return Self::truncated("file ended early (was it truncated while being read?)");
        }
        Self::new(ScanErrorKind::Io, e.to_string())
    }
    /// The class of error.
    pub fn kind(&self) -> ScanErrorKind {
        self.kind
    }
    /// The human-readable reason.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = match self.kind {
            ScanErrorKind::NotDicom => "not DICOM",
            ScanErrorKind::Truncated => "truncated",
            ScanErrorKind::Malformed => "malformed",
            ScanErrorKind::Unsupported => "not indexed",
            ScanErrorKind::Io => "read error",
        };
        write!(f, "{class}: {}", self.message)
    }
}

impl std::error::Error for ScanError {}

#[cfg(test)]
mod tests {
    use super::is_safe_uid;

    /// The rule as its documentation states it, written plainly.
    fn rule(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 64
            && s != "."
            && !s.contains("..")
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+;=:@".contains(&b))
    }

    #[test]
    fn safe_uids_follow_the_stated_rule() {
        let chars: Vec<char> = (0u8..128)
            .map(char::from)
            .chain(['é', '€', '\u{0}'])
            .collect();
        for a in &chars {
            for b in &chars {
                for s in [a.to_string(), format!("{a}{b}"), format!("1.{a}{b}.2")] {
                    assert_eq!(is_safe_uid(&s), rule(&s), "{s:?}");
                }
            }
        }
        for s in ["", ".", "..", "1..2", "1.2.", ".1", "1.2.840.10008.1.2"] {
            assert_eq!(is_safe_uid(s), rule(s), "{s:?}");
        }
        let at = |n: usize| "1".repeat(n);
        assert!(is_safe_uid(&at(64)) && !is_safe_uid(&at(65)));
    }
}
