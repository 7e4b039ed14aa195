//! The requests a viewer makes most, timed the same way in two builds of the engine so
//! that a restructuring can be compared with the tree before it in one run (issue 17's
//! "before and after, same run"). `bench/before_after.sh REV` builds this program at
//! `REV` and at the working tree, writes the data once, and runs the two builds in turn.
//!
//! Usage: `before_after write DIR` writes the data (a 300 MB native multi-frame
//! instance, a 2,000-frame JPEG instance, a 1,000-instance series: `wado_data.rs`; and
//! 20,000 header-only instances of 2,000 patients: `index_data.rs`);
//! `before_after run DIR DB MODE SECONDS` indexes `DIR` into `DB` (read mode `pread` or
//! `mmap`) and prints, per request, the median time of one `Engine::handle` call in
//! microseconds over `SECONDS` of calls: `name<TAB>median_us<TAB>calls`.
//! `SIA_BEFORE_AFTER_ONLY=TEXT` times only the requests whose name contains `TEXT` (for
//! profiling one of them with `perf record`); `SIA_BEFORE_AFTER_CALLS=N` makes exactly
//! `N` timed calls (and no warm-up) instead of timing for `SECONDS`, so that two runs
//! under `valgrind --tool=callgrind` with different `N` give instructions per call.
//!
//! Timing is plain (no criterion) so that the program builds unchanged against an older
//! engine: what differs between the two APIs (where `Engine` and `Request` live, how an
//! engine is configured) is in `before_after_api.rs`, which the script replaces with the
//! older API's version.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

mod before_after_api;
use before_after_api as api;

/// Study Instance UID of `wado_data.rs`'s study and the one patient searched for.
const STUDY: &str = "1.2.826.0.1.3680043.10.1";
const PATIENT: &str = "P01000";

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["write", dir] => api::write_data(Path::new(dir)),
        ["run", dir, db, mode, seconds] => run(
            Path::new(dir),
            Path::new(db),
            mode,
            Duration::from_secs_f64(seconds.parse().expect("SECONDS")),
        ),
        // `cargo bench` without arguments runs every bench target: nothing to do here.
        [] => {}
        _ => panic!("usage: before_after write DIR | run DIR DB pread|mmap SECONDS"),
    }
}

/// `GET path` (with `Accept: accept`) through `Engine::handle`: status and body length.
fn get(engine: &api::Engine, path: &str, accept: Option<&str>) -> (u16, usize) {
    let mut request = api::Request::get(path);
    if let Some(accept) = accept {
        request = request.with_header("Accept", accept);
    }
    let response = engine.handle(&request);
    (response.status, response.body.len())
}

fn run(dir: &Path, db: &Path, mode: &str, per_request: Duration) {
    let engine = api::open(db, mode, dir);
    let requests: [(&str, String, Option<&str>); 5] = [
        (
            "native 512 KB frame of a 300 MB instance",
            format!("/dicom-web/studies/{STUDY}/series/{STUDY}.1/instances/{STUDY}.1.1/frames/300"),
            Some("multipart/related; type=\"application/octet-stream\""),
        ),
        (
            "JPEG frame of a 2,000-frame instance",
            format!(
                "/dicom-web/studies/{STUDY}/series/{STUDY}.2/instances/{STUDY}.2.1/frames/1000"
            ),
            Some("multipart/related; type=\"image/jpeg\"; transfer-syntax=1.2.840.10008.1.2.4.50"),
        ),
        (
            "metadata of a 1,000-instance series",
            format!("/dicom-web/studies/{STUDY}/series/{STUDY}.3/metadata"),
            None,
        ),
        (
            "QIDO studies?PatientID= of 20,000",
            format!("/dicom-web/studies?PatientID={PATIENT}"),
            None,
        ),
        (
            "FHIR ImagingStudy?patient.identifier= of 20,000",
            format!("/fhir/ImagingStudy?patient.identifier=HOSP|{PATIENT}"),
            None,
        ),
    ];
    let only = std::env::var("SIA_BEFORE_AFTER_ONLY").unwrap_or_default();
    for (name, path, accept) in requests.iter().filter(|r| r.0.contains(&only)) {
        let (status, len) = get(&engine, path, *accept);
        assert_eq!(status, 200, "{name}: {path}");
        assert!(len > 0, "{name}: empty body");
        let calls: Option<usize> = std::env::var("SIA_BEFORE_AFTER_CALLS")
            .ok()
            .map(|n| n.parse().expect("SIA_BEFORE_AFTER_CALLS"));
        // Warm up (page cache, kept descriptors, caches of the engine) for a tenth.
        let warm = Instant::now();
        while calls.is_none() && warm.elapsed() < per_request / 10 {
            black_box(get(&engine, path, *accept));
        }
        let mut times = Vec::new();
        let start = Instant::now();
        while match calls {
            Some(n) => times.len() < n,
            None => start.elapsed() < per_request,
        } {
            let t = Instant::now();
            black_box(get(&engine, black_box(path), *accept));
            times.push(t.elapsed());
        }
        times.sort();
        let median = times
            .get(times.len() / 2)
            .map_or(0.0, |t| t.as_secs_f64() * 1e6);
        println!("{name}\t{median:.2}\t{}", times.len());
    }
}
