//! `libsia`: the C ABI of the sia engine as `libsia.so` and `libsia.a`, declared in
//! `include/sia.h`. The `extern "C"` functions are defined in `sia-ffi-abi`
//! (`ffi-c/abi`); linking that crate here exports every one of them (all named `sia_`).

pub use sia_ffi_abi::*;
