//! sia — SMART Imaging Access: the engine.
//!
//! Index folders of DICOM files into SQLite ([`index`]), read them back as FHIR R4
//! `ImagingStudy` ([`fhir`]), with every file parsed by sia's own bounded scanner
//! ([`dicom`]). The C ABI, the Python package and the `sia` command all call this crate.
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
pub mod pixels;
mod router;
pub mod storage;
pub mod wado;

pub use config::{ClientAuth, IssuerClient, JwksSource, ServerSettings, TlsFiles};
pub use engine::{Config, Engine};
pub use error::{Error, Result};
