//! `before_after.rs`'s view of the engine, in today's API (`bench/before_after.sh`
//! writes the older API's version of this file into the older tree).

use std::path::Path;

use sia::{Config, ReadMode};
pub use sia::{Engine, Request};

#[path = "index_data.rs"]
#[allow(dead_code)]
mod index_data;
#[path = "wado_data.rs"]
mod wado_data;

/// Opens an engine with its index at `db` in read mode `mode` (`pread` or `mmap`; with
/// `-nocache`, the search and metadata caches off) and indexes `dir`.
pub fn open(db: &Path, mode: &str, dir: &Path) -> Engine {
    let (mode, caches) = match mode.strip_suffix("-nocache") {
        Some(mode) => (mode, false),
        None => (mode, true),
    };
    let mut config = Config::builder().db(db).read_mode(match mode {
        "pread" => ReadMode::Pread,
        "mmap" => ReadMode::Mmap,
        other => panic!("read mode {other}"),
    });
    if !caches {
        config = config.search_cache_bytes(0).metadata_cache_bytes(0);
    }
    let engine = Engine::open(config.build()).unwrap();
    engine.index(&[dir], &Default::default()).unwrap();
    engine
}

/// Writes the benchmark's data under `dir`: `wado_data`'s study in `dir/wado`, 20,000
/// header-only instances in `dir/index`.
pub fn write_data(dir: &Path) {
    std::fs::create_dir_all(dir.join("wado")).unwrap();
    wado_data::build(&dir.join("wado"));
    index_data::write_corpus(&dir.join("index"), 20_000);
}
