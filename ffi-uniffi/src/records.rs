//! Plain records passed by value between the JVM and the engine (Kotlin `data class`es).

use crate::bytes::Bytes;
use crate::error::SiaError;

/// One HTTP header field.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Header {
    /// Field name (compared case-insensitively by the engine).
    pub name: String,
    /// Field value.
    pub value: String,
}

/// An HTTP request as a host received it, for [`crate::Engine::handle`].
#[derive(Clone, Debug, uniffi::Record)]
pub struct HttpRequest {
    /// `GET` or `HEAD` (anything else is answered 405).
    pub method: String,
    /// Path and query as sent, still percent-encoded: `/dicom-web/studies?PatientID=1`.
    pub target: String,
    /// Header fields in order (`Authorization`, `Accept`, ...).
    pub headers: Vec<Header>,
}

/// The engine's answer to an [`HttpRequest`].
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: i32,
    /// Header fields, `Content-Type` and `Content-Length` included.
    pub headers: Vec<Header>,
    /// The whole body (a `ByteArray` in Kotlin; see [`Frame`] for what it costs).
    pub body: Bytes,
}

/// One query parameter, unencoded (`patient`, `123`).
#[derive(Clone, Debug, uniffi::Record)]
pub struct QueryParam {
    /// Parameter name, e.g. `patient.identifier` or `modality`.
    pub name: String,
    /// Parameter value as the FHIR search syntax has it (`SIA_DEMO|DEMO-001`).
    pub value: String,
}

/// A study, a series of a study, or an instance of a series (DICOM UIDs, PS3.5 §9).
#[derive(Clone, Debug, uniffi::Record)]
pub struct DicomRef {
    /// Study Instance UID (0020,000D).
    pub study: String,
    /// Series Instance UID (0020,000E), when the reference is to a series or instance.
    pub series: Option<String>,
    /// SOP Instance UID (0008,0018), when the reference is to an instance (needs `series`).
    pub instance: Option<String>,
}

/// One instance (for frame retrieval).
#[derive(Clone, Debug, uniffi::Record)]
pub struct InstanceRef {
    /// Study Instance UID (0020,000D).
    pub study: String,
    /// Series Instance UID (0020,000E).
    pub series: String,
    /// SOP Instance UID (0008,0018).
    pub instance: String,
}

/// What a caller wants to reach, for [`crate::Engine::authorize`].
#[derive(Clone, Debug, uniffi::Enum)]
pub enum Access {
    /// Read a whole study (ImagingStudy read, WADO-RS retrieve).
    Study {
        /// Study Instance UID.
        study: String,
    },
    /// Read one series.
    Series {
        /// Study Instance UID.
        study: String,
        /// Series Instance UID.
        series: String,
    },
    /// Read one instance (its metadata, frames or file).
    Instance {
        /// Study Instance UID.
        study: String,
        /// Series Instance UID.
        series: String,
        /// SOP Instance UID.
        instance: String,
    },
    /// Search ImagingStudy (the SMART `s` permission).
    SearchImagingStudies,
}

/// The authorization decision for one [`Access`] with one token.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Decision {
    /// Whether the access is allowed.
    pub allowed: bool,
    /// The HTTP status the decision maps to: 200 allowed, 401 no or bad token (RFC 6750
    /// `invalid_token`), 403 a valid token whose scopes or patient compartment refuse.
    pub status: i32,
    /// Why it was refused (client-safe), empty when allowed.
    pub reason: String,
    /// The `WWW-Authenticate` challenge (RFC 6750 §3) to send with a 401/403, if any.
    pub www_authenticate: Option<String>,
}

/// One frame of an instance (PS3.18 §10.4.1.1.2 "Frames"), with the Image Pixel
/// attributes (PS3.3 C.7.6.3) needed to interpret native bytes.
///
/// Copying: the engine reads the frame into a buffer it owns (pread), or maps it (read
/// mode `mmap`); this record shares that buffer (no copy), and `bytes` then costs two
/// copies of the frame on its way to the JVM: into uniffi's `RustBuffer` when the record
/// is serialised, and from that native buffer into the Java-heap `ByteArray` (JNA cannot
/// hand a heap array to Rust to fill). Each is one `memcpy`; `FrameBench` in jvm/
/// measures the whole call.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Frame {
    /// 1-based frame number within the instance.
    pub number: i32,
    /// The frame's bytes: native pixels (Explicit VR Little Endian), or one compressed
    /// frame (its fragments joined) in the stored transfer syntax.
    pub bytes: Bytes,
    /// Transfer Syntax UID the bytes are in.
    pub transfer_syntax: String,
    /// Media type of the bytes (`application/octet-stream`, `image/jpeg`, ...), with
    /// its `transfer-syntax` parameter.
    pub content_type: String,
    /// Rows (0028,0010).
    pub rows: i32,
    /// Columns (0028,0011).
    pub columns: i32,
    /// Samples per Pixel (0028,0002).
    pub samples_per_pixel: i32,
    /// Bits Allocated (0028,0100).
    pub bits_allocated: i32,
    /// Pixel Representation (0028,0103): 0 unsigned, 1 two's complement.
    pub pixel_representation: i32,
    /// Planar Configuration (0028,0006): 0 interleaved, 1 by plane.
    pub planar_configuration: i32,
    /// Photometric Interpretation (0028,0004), e.g. `MONOCHROME2`, `RGB`.
    pub photometric_interpretation: String,
}

impl TryFrom<&sia::Frame> for Frame {
    type Error = SiaError;

    /// The record of one frame, sharing its chunks. Errors: `TooCostly` for a frame
    /// longer than a `ByteArray` holds.
    fn try_from(f: &sia::Frame) -> Result<Frame, SiaError> {
        let int = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(Frame {
            number: int(f.number()),
            bytes: Bytes::from_chunks(f.chunks().to_vec())?,
            transfer_syntax: f.transfer_syntax().to_string(),
            content_type: f.content_type().to_string(),
            rows: int(f.rows()),
            columns: int(f.columns()),
            samples_per_pixel: int(f.samples_per_pixel()),
            bits_allocated: int(f.bits_allocated()),
            pixel_representation: int(f.pixel_representation()),
            planar_configuration: int(f.planar_configuration()),
            photometric_interpretation: f.photometric_interpretation().to_string(),
        })
    }
}

/// Progress of an index run, passed to [`crate::IndexListener::on_progress`].
#[derive(Clone, Debug, uniffi::Record)]
pub struct IndexProgress {
    /// Files read and written so far in this run.
    pub files_done: i64,
    /// Files found so far that this run reads; final once `walk_done`.
    pub files_found: i64,
    /// Whether the folder walk has finished.
    pub walk_done: bool,
    /// Bytes of the files read so far.
    pub bytes_done: i64,
    /// The file written last (empty before the first).
    pub current: String,
}

/// A file that could not be indexed.
#[derive(Clone, Debug, uniffi::Record)]
pub struct SkippedFile {
    /// Its path.
    pub path: String,
    /// Why (the scanner's message).
    pub reason: String,
}

/// What an index run did.
#[derive(Clone, Debug, uniffi::Record)]
pub struct IndexReport {
    /// Files read and indexed in this run.
    pub indexed: i64,
    /// Files unchanged since the last run (size, mtime, inode), not read again.
    pub unchanged: i64,
    /// Files that vanished and were removed from the index.
    pub removed: i64,
    /// Files not indexed because another file has the same SOP Instance UID.
    pub duplicates: i64,
    /// Files not indexed because a UID they name belongs to another patient.
    pub conflicts: i64,
    /// Files that could not be indexed, with the reason.
    pub skipped: Vec<SkippedFile>,
    /// Wall-clock duration of the run in seconds.
    pub seconds: f64,
}

impl From<sia::IndexReport> for IndexReport {
    fn from(r: sia::IndexReport) -> IndexReport {
        IndexReport {
            indexed: clamp(r.indexed),
            unchanged: clamp(r.unchanged),
            removed: clamp(r.removed),
            duplicates: clamp(r.duplicates.len() as u64),
            conflicts: clamp(r.conflicts.len() as u64),
            skipped: r
                .skipped
                .into_iter()
                .map(|s| SkippedFile {
                    path: s.path,
                    reason: s.reason,
                })
                .collect(),
            seconds: r.seconds,
        }
    }
}

/// A count as a Kotlin `Long` (no count reaches 2^63; saturate rather than wrap).
pub(crate) fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
