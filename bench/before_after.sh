#!/usr/bin/env bash
# The frame, metadata and search requests of core/benches/before_after.rs, timed in an
# older build of the engine and in the working tree's, in turn, in one run (issue 17:
# "the frame, metadata and search benchmarks before and after, same run").
#
#   bench/before_after.sh [REV] [SECONDS] [ROUNDS]
#
# REV (default 33be462, the tree before issue 17's restructuring began) is exported
# with `git archive` into a work folder, given this program with an API shim for its
# older surface, and built in release mode beside the working tree's build. The data
# (a 300 MB native instance, a 2,000-frame JPEG instance, a 1,000-instance series,
# 20,000 header-only instances) is written once. Each round runs REV (read mode mmap,
# the only one it has, with and without its metadata cache), then the working tree in
# read mode pread (today's default), mmap, and mmap with the search and metadata
# caches off (what a first request pays),
# each timing every request for SECONDS (default 2); ROUNDS (default 7) rounds.
# Prints each request's median time per Engine::handle call (microseconds) in the
# best round of each build, and the ratios to REV: the machine is shared, and
# another process's work only ever adds time, so the best round is the figure least
# disturbed (the median of the rounds is printed beside it).
#
# SIA_BEFORE_AFTER_DIR keeps the work folder (builds, data) between runs; by default
# it is a temporary folder removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
rev="${1:-33be462}"
secs="${2:-2}"
rounds="${3:-7}"
work="${SIA_BEFORE_AFTER_DIR:-}"
if [ -z "$work" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"

# The executable cargo built for the before_after bench in the workspace at $1.
build() {
  (cd "$1" && cargo bench -p sia --bench before_after --no-run --message-format=json 2>/dev/null) |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "before_after" and m.get("executable"):
        print(m["executable"])'
}

old="$work/tree-$rev"
if [ ! -d "$old" ]; then
  mkdir -p "$old"
  git archive "$rev" | tar -x -C "$old"
  printf '\n[[bench]]\nname = "before_after"\nharness = false\n' >>"$old/core/Cargo.toml"
fi
# The program itself is today's (copied each time); its API shim is the older API's.
cp core/benches/before_after.rs "$old/core/benches/"
cat >"$old/core/benches/before_after_api.rs" <<'RS'
//! `before_after.rs`'s view of the engine before issue 17: public modules, a `Config`
//! struct, memory mapping the only read mode.
use std::path::Path;

pub use sia::http::Request;
pub use sia::Engine;
use sia::Config;

pub fn open(db: &Path, mode: &str, dir: &Path) -> Engine {
    let (mode, caches) = match mode.strip_suffix("-nocache") {
        Some(mode) => (mode, false),
        None => (mode, true),
    };
    assert_eq!(mode, "mmap", "this engine only maps files");
    let mut config = Config {
        db: db.to_path_buf(),
        ..Config::default()
    };
    if !caches {
        // It had no search cache yet.
        config.metadata_cache_bytes = 0;
    }
    let engine = Engine::open(config).unwrap();
    engine.index(&[dir], &Default::default()).unwrap();
    engine
}

pub fn write_data(_: &Path) {
    panic!("the data is written by the working tree's build");
}
RS
echo "building $rev and the working tree (release)..." >&2
old_bin="$(build "$old")"
new_bin="$(build .)"
[ -n "$old_bin" ] && [ -n "$new_bin" ] || { echo "build failed" >&2; exit 1; }

if [ ! -f "$work/data/.written" ]; then
  "$new_bin" write "$work/data"
  touch "$work/data/.written"
fi

out="$work/rounds.tsv"
: >"$out"
for round in $(seq "$rounds"); do
  echo "round $round/$rounds" >&2
  for mode in mmap mmap-nocache; do
    "$old_bin" run "$work/data" "$work/before-$mode.db" "$mode" "$secs" | sed "s/^/$rev $mode\t/" >>"$out"
  done
  for mode in pread mmap mmap-nocache; do
    "$new_bin" run "$work/data" "$work/after-$mode.db" "$mode" "$secs" | sed "s/^/now $mode\t/" >>"$out"
  done
done

python3 - "$out" "$rev" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(list)
names = []
for line in open(sys.argv[1]):
    build, name, median, _ = line.rstrip("\n").split("\t")
    rows[(build, name)].append(float(median))
    if name not in names:
        names.append(name)
rev = sys.argv[2]
builds = [f"{rev} mmap", f"{rev} mmap-nocache", "now pread", "now mmap", "now mmap-nocache"]
for title, pick in (("best round", min), ("median of rounds", statistics.median)):
    print(f"\n{title}, us per call")
    print(f"{'request':48} " + " ".join(f"{b:>19}" for b in builds)
          + "   pread/before mmap/before nocache/before-nocache")
    for name in names:
        m = [pick(rows[(b, name)]) for b in builds]
        print(f"{name:48} " + " ".join(f"{v:>19.1f}" for v in m)
              + f"   {m[2] / m[0]:>12.2f} {m[3] / m[0]:>11.2f} {m[4] / m[1]:>22.2f}")
PY
