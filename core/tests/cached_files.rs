//! What the engine keeps between requests (open descriptors of files, instances' DICOM
//! JSON, whole metadata answers) never outlives the file it was made from: a file
//! replaced, rewritten in place, removed or re-pointed after indexing answers with its
//! new content (when the index accepts it), 404 or 410 — never with bytes or metadata of
//! the file that was there before, past the documented one-second bounds.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sia::internal::dicom::tag::{Encoding, Vr, ts};
use sia::internal::dicom::write::DataSetWriter;
use sia::{Engine, Request};

use crate::common::*;

const FRAMES: u32 = 3;
const FRAME_LEN: usize = 4 * 3 * 2;
const INSTANCE: &str = "/dicom-web/studies/1.2.3.4/series/1.2.3.4.5/instances/1.2.3.4.5.6";
const SERIES_METADATA: &str = "/dicom-web/studies/1.2.3.4/series/1.2.3.4.5/metadata";
/// Longer than the bounds a kept descriptor's path check and a metadata listing have.
const PAST_THE_BOUNDS: Duration = Duration::from_millis(1_150);
/// Longer than a file must be left alone before its descriptor is kept (50 ms).
const SETTLE: Duration = Duration::from_millis(80);

/// A native instance of patient `name` whose pixel bytes start at `seed`; every version
/// has the same length, so a replacement keeps the indexed size.
fn version(name: &str, seed: u8) -> (Vec<u8>, Vec<u8>) {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", name);
    image(&mut w, 4, 3, 16, FRAMES);
    let pixels: Vec<u8> = (0..FRAME_LEN * FRAMES as usize)
        .map(|i| (i as u8).wrapping_add(seed))
        .collect();
    w.native_pixel_data(Vr::OW, &pixels);
    (with_meta(ts::EXPLICIT_VR_LE, &w.into_bytes()), pixels)
}

/// Status and, when 200, the bytes of frame 2.
fn frame2(engine: &Engine) -> (u16, Vec<u8>) {
    let resp = engine.handle(&Request::get(&format!("{INSTANCE}/frames/2")));
    let bytes = if resp.status == 200 {
        single_part(&resp)
    } else {
        Vec::new()
    };
    (resp.status, bytes)
}

fn frame2_of(pixels: &[u8]) -> Vec<u8> {
    pixels[FRAME_LEN..2 * FRAME_LEN].to_vec()
}

/// The Patient's Name of the series' one instance, from its metadata.
fn patient_name(engine: &Engine) -> Result<String, u16> {
    let resp = engine.handle(&Request::get(SERIES_METADATA));
    if resp.status != 200 {
        return Err(resp.status);
    }
    let v: serde_json::Value = serde_json::from_slice(&resp.body.to_vec()).unwrap();
    Ok(v[0]["00100010"]["Value"][0]["Alphabetic"]
        .as_str()
        .unwrap()
        .to_string())
}

/// Writes `bytes` to `path` by writing another file and renaming it over (a new inode).
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    path: PathBuf,
    engine: Engine,
    /// The engine's configuration: another engine opened with it shares its index (the
    /// same SQLite file, or the same PostgreSQL schema).
    config: sia::Config,
}

fn fixture(bytes: &[u8]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let path = data.join("a.dcm");
    std::fs::write(&path, bytes).unwrap();
    std::thread::sleep(SETTLE);
    let config = config_in(dir.path()).build();
    let engine = Engine::open(config.clone()).unwrap();
    engine.index(&[&data], &Default::default()).unwrap();
    Fixture {
        _dir: dir,
        data,
        path,
        engine,
        config,
    }
}

#[test]
fn a_kept_descriptor_never_serves_a_replaced_or_rewritten_file() {
    let (a, a_px) = version("A^A", 0);
    let (b, b_px) = version("B^B", 100);
    let (c, c_px) = version("C^C", 200);
    let fx = fixture(&a);
    // The second and later requests read through the kept descriptor.
    for _ in 0..3 {
        assert_eq!(frame2(&fx.engine), (200, frame2_of(&a_px)));
    }

    // Replaced by rename, not re-indexed: the index describes another inode.
    replace(&fx.path, &b);
    assert_eq!(frame2(&fx.engine).0, 410);
    fx.engine.index(&[&fx.data], &Default::default()).unwrap();
    std::thread::sleep(SETTLE);
    for _ in 0..3 {
        assert_eq!(frame2(&fx.engine), (200, frame2_of(&b_px)));
    }

    // Rewritten in place with the indexed size and mtime restored: the index accepts
    // the file, so its new bytes are served, never the old ones from a kept descriptor.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&fx.path)
        .unwrap();
    let mtime = f.metadata().unwrap().modified().unwrap();
    f.write_all_at(&c, 0).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    for _ in 0..3 {
        assert_eq!(frame2(&fx.engine), (200, frame2_of(&c_px)));
    }

    // Its folder renamed and another file put at the same path: until the path is
    // checked again (at most a second) the indexed file's own bytes may still be
    // served, never the new file's; after that, 410.
    std::thread::sleep(SETTLE);
    assert_eq!(frame2(&fx.engine), (200, frame2_of(&c_px)));
    std::fs::rename(&fx.data, fx.data.with_extension("old")).unwrap();
    std::fs::create_dir(&fx.data).unwrap();
    std::fs::write(&fx.path, &a).unwrap();
    let (status, bytes) = frame2(&fx.engine);
    assert!(
        status == 410 || (status == 200 && bytes == frame2_of(&c_px)),
        "{status}"
    );
    std::thread::sleep(PAST_THE_BOUNDS);
    assert_eq!(frame2(&fx.engine).0, 410);

    // Removed: 410 at once.
    std::fs::remove_file(&fx.path).unwrap();
    std::fs::rename(fx.data.with_extension("old").join("a.dcm"), &fx.path).unwrap();
    fx.engine.index(&[&fx.data], &Default::default()).unwrap();
    std::thread::sleep(SETTLE);
    assert_eq!(frame2(&fx.engine), (200, frame2_of(&c_px)));
    assert_eq!(frame2(&fx.engine), (200, frame2_of(&c_px)));
    std::fs::remove_file(&fx.path).unwrap();
    assert_eq!(frame2(&fx.engine).0, 410);
}

#[test]
fn metadata_follows_a_replaced_file_and_a_reindex() {
    let (a, _) = version("A^A", 0);
    let (b, _) = version("B^B", 0);
    let (c, _) = version("C^C", 0);
    let fx = fixture(&a);
    assert_eq!(patient_name(&fx.engine).unwrap(), "A^A");
    let first = fx
        .engine
        .handle(&Request::get(SERIES_METADATA))
        .body
        .to_vec();
    assert_eq!(
        fx.engine
            .handle(&Request::get(SERIES_METADATA))
            .body
            .to_vec(),
        first,
        "the kept answer is the answer"
    );

    // Replaced and re-indexed by this engine: the new header at once.
    replace(&fx.path, &b);
    fx.engine.index(&[&fx.data], &Default::default()).unwrap();
    assert_eq!(patient_name(&fx.engine).unwrap(), "B^B");

    // Replaced and re-indexed by another process (another engine on the same index):
    // the new header once the listing's second has passed, and never a 5xx.
    replace(&fx.path, &c);
    let other = Engine::open(fx.config.clone()).unwrap();
    other.index(&[&fx.data], &Default::default()).unwrap();
    match patient_name(&fx.engine) {
        Ok(name) => assert!(name == "B^B" || name == "C^C", "{name}"),
        Err(status) => assert!(status == 404 || status == 410, "{status}"),
    }
    std::thread::sleep(PAST_THE_BOUNDS);
    assert_eq!(patient_name(&fx.engine).unwrap(), "C^C");

    // Removed and not re-indexed: the series has nothing left to describe, once the
    // listing's second has passed.
    std::fs::remove_file(&fx.path).unwrap();
    std::thread::sleep(PAST_THE_BOUNDS);
    assert_eq!(patient_name(&fx.engine), Err(410));
}

#[test]
fn quick_handling_serves_only_metadata_that_is_kept() {
    let (a, _) = version("A^A", 0);
    let fx = fixture(&a);
    let req = Request::get(SERIES_METADATA);
    // Not kept yet: refused, with nothing read, for the blocking path.
    assert!(fx.engine.handle_without_decoding(&req).is_none());
    let full = fx.engine.handle(&req);
    assert_eq!(full.status, 200);
    let quick = fx.engine.handle_without_decoding(&req).expect("kept now");
    assert_eq!(quick.status, 200);
    assert_eq!(quick.body.to_vec(), full.body.to_vec());
    // Its listing's second over: checked again on the blocking path.
    std::thread::sleep(PAST_THE_BOUNDS);
    assert!(fx.engine.handle_without_decoding(&req).is_none());
    assert_eq!(fx.engine.handle(&req).body.to_vec(), full.body.to_vec());
}
