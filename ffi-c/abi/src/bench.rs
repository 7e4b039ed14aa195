//! `sia_benchmark_handle`: the same request answered in Rust, in a loop, so that a C or
//! C++ benchmark can set the ABI's cost (C strings in, a boxed response with C strings
//! out) against the engine's own in the same process and run.

use std::time::Instant;

use crate::engine::{engine_of, sia_engine};
use crate::error::*;
use crate::response::{request_from, sia_request};

/// Answers `request` `iterations` times through the engine's Rust API
/// (`Engine::handle`, each response's chunks visited and dropped), without the C ABI in
/// between, and writes the total wall-clock time in nanoseconds to `*out_nanoseconds`.
/// The request is converted once, before the clock starts. For benchmarks that measure
/// what `sia_handle` adds (compare with the same loop over `sia_handle` /
/// `sia_response_free`).
///
/// Errors: as `sia_handle`, and `SIA_ERR_INVALID_ARGUMENT` when `iterations` is 0.
/// Thread safety: any thread.
///
/// # Safety
/// As `sia_handle`; `out_nanoseconds` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_benchmark_handle(
    engine: *const sia_engine,
    request: *const sia_request,
    iterations: u64,
    out_nanoseconds: *mut u64,
) -> sia_status {
    boundary(|| {
        check_out(out_nanoseconds, "out_nanoseconds")?;
        if iterations == 0 {
            return Err(Failure::new(SIA_ERR_INVALID_ARGUMENT, "iterations is 0"));
        }
        let engine = engine_of(engine)?;
        // SAFETY: NULL or a valid request by contract.
        let req = unsafe { request.as_ref() }
            .ok_or_else(|| Failure::new(SIA_ERR_NULL_ARGUMENT, "request is NULL"))?;
        // SAFETY: as the function's contract.
        let req = unsafe { request_from(req) }?;
        let start = Instant::now();
        for _ in 0..iterations {
            let resp = engine.handle(&req);
            let mut seen = 0usize;
            for c in resp.body.chunks() {
                seen = seen.wrapping_add(c.as_bytes().as_ptr() as usize);
            }
            std::hint::black_box((resp.status, seen));
        }
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_nanoseconds, ns) };
        Ok(())
    })
}
