//! sia — SMART Imaging Access: the engine.
//!
//! Index folders of DICOM files into SQLite, read them back as FHIR R4 `ImagingStudy`
//! and DICOMweb (QIDO-RS, WADO-RS, WADO-URI), every file parsed by sia's own bounded
//! scanner, every answer filtered by the SMART authorization decision. The C ABI, the
//! Python package and the `sia` command all call this crate.
//!
//! Hosts hold one [`Engine`] (`Send + Sync`) and call either [`Engine::handle`] (an
//! HTTP-shaped request in, a response out) or the typed calls it is built on:
//!
//! - [`Engine::authorize`]`(&`[`Credentials`]`, &`[`Access`]`)` → [`Grant`]: token,
//!   scopes, patient compartment; [`Grant::local`] when no issuers are configured;
//!   [`Engine::unknown_kid`] tells a host to refresh an issuer's JWKS.
//! - [`Engine::search_imaging_studies`] and [`Engine::read_imaging_study`] →
//!   `serde_json::Value` (FHIR JSON is the honest currency of those calls).
//! - [`Engine::qido`]`(level, study, series, query, &grant)` and [`Engine::metadata`]
//!   → [`DicomJson`] (bytes shared with the metadata cache, warnings, `to_value()`).
//! - [`Engine::frames`] → [`Frames`] of [`Frame`]s: bytes as owning [`Chunk`]s
//!   (zero-copy in the stored syntax) and the Image Pixel attributes a NumPy host needs.
//! - [`Engine::retrieve`] → [`Retrieved`] (multipart or a bare `application/dicom`).
//! - [`Engine::index`] with [`IndexOptions::progress`] (return `Break` to cancel),
//!   [`Engine::link_patient`], [`Engine::unlink_patient`], [`Engine::import_patients`].
//!
//! Every failure is one [`Error`]: a [`ErrorKind`] (mapped to an HTTP status), a
//! message for clients (never a server path, SQL text or internal id), a detail for
//! logs, and one conversion to an answer ([`Error::to_response`],
//! [`Error::to_fhir_response`]).
//!
//! # Example
//!
//! Open an index, index a folder, authorize a caller and fetch a frame:
//!
//! ```
//! use sia::{Access, Config, Credentials, DicomRef, Engine, IndexOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let data = dir.path().join("data");
//! sia::write_demo(&data)?; // a few DICOM studies to serve
//!
//! let engine = Engine::open(Config::builder().db(dir.path().join("index.db")).build())?;
//! let report = engine.index(&[&data], &IndexOptions::default())?;
//! assert_eq!(report.skipped.len(), 0);
//!
//! // No [[issuers]] are configured, so the caller is the local administrator; with
//! // issuers, `Credentials::bearer(token)` and a 401/403 `Error` when refused.
//! let study = format!("{}.1", sia::DEMO_UID_ROOT);
//! let grant = engine.authorize(&Credentials::none(), &Access::study(&study))?;
//!
//! let instance = DicomRef::instance(&study, &format!("{study}.1"), &format!("{study}.1.1"));
//! let frames = engine.frames(&instance, &[1], "application/octet-stream", &grant)?;
//! let frame = &frames.frames()[0];
//! // Native 16-bit samples, little endian: rows × columns × 2 bytes.
//! assert_eq!(frame.bits_allocated(), 16);
//! assert_eq!(frame.bytes().len(), (frame.rows() * frame.columns() * 2) as usize);
//! # Ok(())
//! # }
//! ```
//!
//! # Surface
//!
//! Everything a host uses is re-exported here; the modules are private. JSON bodies are
//! `serde_json::Value` (FHIR) or [`DicomJson`] bytes (DICOM JSON). A host builds an
//! [`IssuerPolicy`] with [`IssuerPolicy::new`] (algorithm names as strings, or
//! [`JwsAlgorithm`]) and [`Keys::shared_secret`] / [`Keys::jwks_json`]; [`Keys`] is
//! opaque and [`ClientAuth::client_assertion`] signs a host's client assertions, so no
//! host needs the JWT library sia verifies with (jsonwebtoken). Nothing of rusqlite,
//! memmap2 or jsonwebtoken is in a public signature (a
//! `From<rusqlite::Error>` for [`Error`] exists for `?` inside the crate and is hidden
//! from the docs). `#[non_exhaustive]` marks what will grow ([`Config`] is built with
//! [`Config::builder`] or read from TOML). The `internal` module is hidden: it serves
//! sia's own command, tests, benchmarks and fuzz targets and is not covered by semantic
//! versioning.
//!
//! Where this differs from the host contract (`api-contract.md`): [`Engine::qido`]
//! takes the study and series of the path as two `Option<&str>` instead of a
//! `DicomRef`; [`Engine::frames`] takes a [`DicomRef`] of an instance (there is no
//! separate `InstanceRef`), and [`Frame::bytes`] is a `Cow` (borrowed when the frame is
//! one chunk, joined when it is several fragments; [`Frame::chunks`] never copies);
//! [`Engine::metadata`] and [`Engine::qido`] return [`DicomJson`] (`to_value()` parses
//! it), not a `serde_json::Value`; [`Engine::retrieve`] returns [`Retrieved`] (content
//! type, body, warnings); [`Engine::unknown_kid`] answers `Some` at most once per
//! issuer per cooldown, so a host can fetch the JWKS whenever it is `Some`;
//! [`IndexReport`] has public fields; [`Access::series`] and [`Access::instance`] are
//! decided on their study (the compartment is the patient's).
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod auth;
mod config;
mod demo;
mod dicom;
mod engine;
mod error;
mod fhir;
mod http;
mod index;
mod locations;
mod metadata_cache;
mod pixels;
mod router;
mod search_cache;
mod storage;
mod study_owners;
mod wado;

pub use auth::capability::CapabilityKey;
pub use auth::{
    Access, Authorizer, BackendAccess, BackendClient, Credentials, GRANT_RECHECK_AFTER, Grant,
    IssuerPolicy, JwsAlgorithm, Keys, PatientPolicy, ResourceKind,
};
pub use config::{ClientAuth, IssuerClient, JwksSource, ServerSettings, TlsFiles};
pub use demo::{DEMO_UID_ROOT, write_demo};
pub use engine::{Config, ConfigBuilder, Engine};
pub use error::{Error, ErrorKind, Result};
pub use http::{Body, Chunk, Request, Response};
pub use index::{
    Conflict, ConflictPatient, Duplicate, IndexLocation, IndexOptions, IndexReport,
    NonconformantUid, NormalizedCharset, PatientImport, PixelDescription,
    Progress as IndexProgress, Skipped, StorageRoots, StudyFilter,
};
pub use storage::ReadMode;
pub use wado::{DicomJson, DicomRef, Frame, Frames, QidoLevel, Retrieved, is_uid};

/// sia's internals, for its own command, tests, benchmarks and fuzz targets: not part
/// of the API and not covered by semantic versioning.
#[doc(hidden)]
pub mod internal {
    /// Token verification, scopes, capability URLs.
    pub mod auth {
        pub use crate::auth::*;
    }
    /// The demo data set.
    pub mod demo {
        pub use crate::demo::*;
    }
    /// The DICOM scanner, writer, dictionary and JSON.
    pub mod dicom {
        pub use crate::dicom::*;
    }
    /// FHIR resources.
    pub mod fhir {
        pub use crate::fhir::*;
    }
    /// The SQLite index.
    pub mod index {
        pub use crate::index::*;
    }
    /// Pixel decoding, rendering (windowing) and image encoding.
    pub mod pixels {
        pub use crate::pixels::*;
    }
    /// File access at request time.
    pub mod storage {
        pub use crate::storage::*;
    }
    /// DICOMweb path grammar, negotiation, QIDO parsing.
    pub mod wado {
        pub use crate::wado::*;
    }
}

#[cfg(test)]
mod api_shape {
    /// Hosts share these between threads.
    #[test]
    fn the_host_facing_types_are_send_and_sync() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<crate::Engine>();
        send_sync::<crate::Error>();
        send_sync::<crate::Grant>();
        send_sync::<crate::Chunk>();
        send_sync::<crate::Frames>();
        send_sync::<crate::Response>();
        send_sync::<crate::IndexOptions<'static>>();
    }
}
