//! Integration tests, one binary (faster to link). Files are built by the tests with
//! `sia::internal::dicom::write` (and raw bytes where a case needs to be malformed).

mod alloc_meter;
mod backend_services;
mod backends;
mod bad_input;
mod cached_files;
mod common;
mod config_ehr;
mod fhir_output;
mod field_charsets;
mod field_frames;
mod field_tolerance;
mod field_uids;
mod fuzz_regressions;
mod index_open;
mod introspection;
mod no_paths;
mod pg_operations;
mod properties;
mod reindex;
mod scan_cases;
mod security;
mod storage_race;
mod storage_roots;
mod typed_calls;
mod wado_frames;
mod wado_metadata;
mod wado_search;
