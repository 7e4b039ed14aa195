//! Storage a PACS can trust (issue 17): a file truncated, replaced or removed while its
//! bytes are read or sent never kills the process, and every answer is a correct body,
//! 404 or 410.
//!
//! Eight threads fetch frames and retrieve the whole instance of a multi-megabyte file,
//! and copy every body out (as a host writing it to a socket would), while another
//! thread changes the file:
//!
//! - `pread` (the default) against the worst case: the file truncated in place and
//!   written again (its mtime restored, so the index still accepts it and the race stays
//!   hot), removed and put back, and replaced by rename with a re-index.
//! - `mmap` against what its contract allows: replacement by rename and removal (with
//!   re-indexing). A mapping keeps the old inode alive, so neither can fault. Truncating a
//!   mapped file *in place* raises SIGBUS by the operating system's design; that is why
//!   `mmap` is an opt-in for hosts that own their storage, and why this test does not
//!   run that case in `mmap` mode (it would kill the test binary, which is the point).

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use sia::ReadMode;
use sia::Request;
use sia::internal::dicom::tag::{Encoding, Vr, ts};
use sia::internal::dicom::write::DataSetWriter;
use sia::{Config, Engine};

use crate::common::*;

const ROWS: u16 = 256;
const COLS: u16 = 256;
const FRAMES: u32 = 48;
const FRAME_LEN: usize = ROWS as usize * COLS as usize * 2;
const INSTANCE: &str = "/dicom-web/studies/1.2.3.4/series/1.2.3.4.5/instances/1.2.3.4.5.6";

/// A 6 MB native instance whose frames all differ.
fn large_file() -> (Vec<u8>, Vec<u8>) {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    image(&mut w, ROWS, COLS, 16, FRAMES);
    let pixels: Vec<u8> = (0..FRAME_LEN * FRAMES as usize)
        .map(|i| (i % 251 + i / FRAME_LEN) as u8)
        .collect();
    w.native_pixel_data(Vr::OW, &pixels);
    (with_meta(ts::EXPLICIT_VR_LE, &w.into_bytes()), pixels)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Change {
    /// Truncate in place, write back, restore mtime (`pread` only).
    InPlace,
    /// Remove, then put back a new file by rename, and re-index.
    Replace,
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    gone: AtomicU64,
    not_found: AtomicU64,
}

fn race(mode: ReadMode, changes: &[Change]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (file, pixels) = large_file();
    let path = data.join("big.dcm");
    std::fs::write(&path, &file).unwrap();
    let engine = Arc::new(
        Engine::open(crate::common::config_in(dir.path()).read_mode(mode).build()).unwrap(),
    );
    engine.index(&[&data], &Default::default()).unwrap();

    let seconds = std::env::var("SIA_RACE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4.0);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let start = Arc::new(Barrier::new(9));
    let file = Arc::new(file);
    let pixels = Arc::new(pixels);

    let mut readers = Vec::new();
    for t in 0..8u32 {
        let (engine, stop, tally, start) =
            (engine.clone(), stop.clone(), tally.clone(), start.clone());
        let (file, pixels) = (file.clone(), pixels.clone());
        readers.push(std::thread::spawn(move || {
            start.wait();
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let whole = i % 4 == 0;
                let (req, expected): (Request, &[u8]) = if whole {
                    (
                        Request::get(INSTANCE)
                            .with_header("Accept", "multipart/related; type=\"application/dicom\""),
                        &file,
                    )
                } else {
                    let n = i % FRAMES + 1;
                    let at = (n as usize - 1) * FRAME_LEN;
                    (
                        Request::get(&format!("{INSTANCE}/frames/{n}")),
                        &pixels[at..at + FRAME_LEN],
                    )
                };
                let resp = engine.handle(&req);
                match resp.status {
                    200 => {
                        // Touch every byte, as a host sending the body does.
                        assert!(single_part(&resp) == expected, "{mode:?}: wrong bytes");
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    410 => {
                        tally.gone.fetch_add(1, Ordering::Relaxed);
                    }
                    404 => {
                        tally.not_found.fetch_add(1, Ordering::Relaxed);
                    }
                    s => panic!(
                        "{mode:?}: status {s}: {}",
                        String::from_utf8_lossy(&resp.body.to_vec())
                    ),
                }
            }
        }));
    }

    start.wait();
    let mut round = 0usize;
    while Instant::now() < deadline {
        match changes[round % changes.len()] {
            Change::InPlace => truncate_and_rewrite(&path, &file, round),
            Change::Replace => {
                std::fs::remove_file(&path).unwrap();
                if round.is_multiple_of(2) {
                    // Requests see the instance gone from the index: 404.
                    engine.index(&[&data], &Default::default()).unwrap();
                }
                std::thread::sleep(Duration::from_millis(2));
                let tmp = dir.path().join("big.tmp");
                std::fs::write(&tmp, &*file).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
                std::thread::sleep(Duration::from_millis(2));
                engine.index(&[&data], &Default::default()).unwrap();
            }
        }
        round += 1;
        // Let readers meet the intact file too.
        std::thread::sleep(Duration::from_millis(15));
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("a reader failed");
    }
    let (ok, gone, not_found) = (
        tally.ok.load(Ordering::Relaxed),
        tally.gone.load(Ordering::Relaxed),
        tally.not_found.load(Ordering::Relaxed),
    );
    eprintln!(
        "{mode:?} {changes:?}: {round} changes, {ok} correct, {gone} gone, {not_found} not found"
    );
    assert!(round >= 3, "the file was hardly changed");
    assert!(ok > 0, "no request succeeded");
    assert!(gone + not_found > 0, "no request met a changed file");
    // Once the file is back, it serves again.
    let resp = engine.handle(&Request::get(&format!("{INSTANCE}/frames/{FRAMES}")));
    assert_eq!(resp.status, 200);
}

/// Cuts the file short in place (to a random length, sometimes zero), writes the rest
/// back in pieces, and restores the indexed mtime, keeping size and inode: the index
/// then accepts the file again, so readers keep opening it while it is being cut.
fn truncate_and_rewrite(path: &Path, bytes: &[u8], round: usize) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let mtime = f.metadata().unwrap().modified().unwrap();
    let cut = if round.is_multiple_of(5) {
        0
    } else {
        (round * 7_919_993) % bytes.len()
    };
    f.set_len(cut as u64).unwrap();
    std::thread::sleep(Duration::from_millis(1));
    for (k, piece) in bytes[cut..].chunks(1 << 20).enumerate() {
        f.write_all_at(piece, (cut + (k << 20)) as u64).unwrap();
    }
    f.set_modified(mtime).unwrap();
    drop(f);
    assert_eq!(std::fs::metadata(path).unwrap().len(), bytes.len() as u64);
}

#[test]
fn pread_survives_truncation_in_place_and_replacement() {
    race(
        ReadMode::Pread,
        &[Change::InPlace, Change::InPlace, Change::Replace],
    );
}

#[test]
fn mmap_survives_replacement_by_rename_and_removal() {
    race(ReadMode::Mmap, &[Change::Replace]);
}

#[test]
fn pread_is_the_default_and_the_config_file_chooses() {
    assert_eq!(Config::default().read_mode, ReadMode::Pread);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sia.toml");
    let base = "[server]\nbase_url = \"http://127.0.0.1:8080\"\ndb = \"i.db\"\n";
    std::fs::write(&p, base).unwrap();
    assert_eq!(Config::from_file(&p).unwrap().read_mode, ReadMode::Pread);
    std::fs::write(&p, format!("{base}[storage]\nread_mode = \"mmap\"\n")).unwrap();
    assert_eq!(Config::from_file(&p).unwrap().read_mode, ReadMode::Mmap);
    std::fs::write(&p, format!("{base}[storage]\nread_mode = \"pread\"\n")).unwrap();
    assert_eq!(Config::from_file(&p).unwrap().read_mode, ReadMode::Pread);
    std::fs::write(&p, format!("{base}[storage]\nread_mode = \"fast\"\n")).unwrap();
    let e = Config::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("read mode"), "{e}");
}

/// `f` on its own thread, or a failure after ten seconds instead of a test that hangs.
fn within_ten_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("blocked: opening a FIFO waits for a writer")
}

#[test]
fn a_file_replaced_by_a_fifo_is_gone_without_blocking() {
    for mode in [ReadMode::Pread, ReadMode::Mmap] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        sia::write_demo(&data).unwrap();
        let engine = Arc::new(
            Engine::open(
                Config::builder()
                    .db(dir.path().join("i.db"))
                    .read_mode(mode)
                    .build(),
            )
            .unwrap(),
        );
        engine
            .index(&[&data], &sia::IndexOptions::default())
            .unwrap();
        let file = data.join("DEMO-001/study1/series1/001.dcm");
        std::fs::remove_file(&file).unwrap();
        let c = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file system node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let base = format!(
            "/dicom-web/studies/{root}.1/series/{root}.1.1/instances/{root}.1.1.1",
            root = sia::DEMO_UID_ROOT
        );
        for path in [
            format!("{base}/frames/1"),
            base.clone(),
            format!("{base}/metadata"),
        ] {
            let e = engine.clone();
            let status = within_ten_seconds(move || {
                e.handle(&Request::get(&path).with_header("Accept", "*/*"))
                    .status
            });
            assert_eq!(status, 410, "{mode:?} {base}");
        }
        // The scanner refuses it at once too (a file swapped between walk and scan).
        let fifo = file.clone();
        let scanned = within_ten_seconds(move || sia::internal::dicom::scan_file(&fifo).is_err());
        assert!(scanned);
    }
}
