//! The C ABI of the sia engine: the `extern "C"` functions of `libsia.so` / `libsia.a`
//! (built by the `sia-ffi` crate, which links this one), declared in `include/sia.h`.
//!
//! Every exported symbol starts with `sia_`. The conventions (the header repeats them
//! where they apply) follow sqlite3 and rustls-ffi:
//! - every fallible call returns a [`sia_status`] (`SIA_OK` = 0) and explains a failure
//!   in [`sia_last_error_message`] (thread-local);
//! - out-parameters are written only when the call returns `SIA_OK`;
//! - every `*_free` / `*_close` accepts NULL and does nothing;
//! - no Rust panic crosses the boundary: each entry point catches it and returns
//!   `SIA_ERR_PANIC` (or 0 / NULL from the few calls that cannot fail);
//! - an engine handle is an opaque identifier, never a pointer into freed memory: a
//!   handle used after `sia_engine_close` gives `SIA_ERR_CLOSED`, never a crash.
//!
//! `unsafe` lives only here (raw pointers from C); each block states why it is sound.
#![allow(non_camel_case_types)]
#![warn(missing_docs)]

pub mod bench;
pub mod config;
pub mod engine;
pub mod error;
pub mod index;
pub mod response;
pub mod typed;
pub mod version;

pub use bench::*;
pub use config::*;
pub use engine::*;
pub use error::*;
pub use index::*;
pub use response::*;
pub use typed::*;
pub use version::*;
