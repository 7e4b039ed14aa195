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
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
mod config;
pub mod demo;
pub mod dicom;
pub(crate) mod engine;
pub mod error;
pub mod fhir;
pub mod http;
pub mod index;
mod locations;
mod metadata_cache;
mod router;
pub mod storage;
pub mod wado;

pub use auth::{Access, Credentials, Grant, ResourceKind};
pub use config::{ClientAuth, IssuerClient, JwksSource, ServerSettings, TlsFiles};
pub use engine::{Config, Engine};
pub use error::{Error, ErrorKind, Result};
pub use http::{Body, Chunk, Request, Response};
pub use index::{
    IndexOptions, IndexReport, PatientImport, PixelDescription, Progress as IndexProgress,
};
pub use wado::{DicomJson, DicomRef, Frame, Frames, QidoLevel, Retrieved};
