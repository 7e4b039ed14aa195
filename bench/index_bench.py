#!/usr/bin/env python3
"""Times `sia index` as a whole process on the benchmark corpus, next to pydicom's
header-only parse of the same files, on a warm page cache.

    python bench/index_bench.py [--patients 200] [--corpus /tmp/sia-bench-corpus] [--runs 5]

Prints medians of --runs runs and the ratio against pydicom from the same run. The
corpus is PATIENTS x 2 studies x 5 series x 10 single-frame CT instances (~40 KB each).
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def run_sia(*args):
    """Runs sia; returns (seconds, stdout, peak RSS in MiB of that process alone)."""
    t = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed with {proc.returncode}")
    return seconds, out, usage.ru_maxrss / 1024


def corpus_files(corpus):
    return sorted(corpus.rglob("*.dcm"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--corpus", type=pathlib.Path, default=pathlib.Path(tempfile.gettempdir()) / "sia-bench-corpus")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pydicom-files", type=int, default=5000, help="files pydicom parses (its rate is per file)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()

    # Two builds: with --example, cargo builds only the example, not the binary.
    sh("cargo", "build", "--release", "-q", "-p", "sia-cli", cwd=ROOT)
    sh("cargo", "build", "--release", "-q", "-p", "sia", "--example", "synth_corpus", cwd=ROOT)
    sia = ROOT / "target" / "release" / "sia"
    expected = args.patients * 100
    files = corpus_files(args.corpus) if args.corpus.exists() else []
    if len(files) != expected:
        sh("rm", "-rf", str(args.corpus))
        sh(str(ROOT / "target" / "release" / "examples" / "synth_corpus"), str(args.corpus), str(args.patients),
           stdout=subprocess.DEVNULL)
        files = corpus_files(args.corpus)
    total_bytes = sum(f.stat().st_size for f in files)
    for f in files:  # warm the page cache
        f.read_bytes()

    work = pathlib.Path(tempfile.mkdtemp(prefix="sia-bench-"))
    full, again, rss = [], [], []
    for run in range(args.runs):
        db = work / f"run{run}.db"
        seconds, out, peak = run_sia(str(sia), "index", "--db", str(db), "--json", str(args.corpus))
        full.append(seconds)
        rss.append(peak)
        report = json.loads(out)
        assert report["indexed"] == len(files), report
    db = work / "run0.db"
    for _ in range(args.runs):
        seconds, out, peak = run_sia(str(sia), "index", "--db", str(db), "--json", str(args.corpus))
        again.append(seconds)
        rss.append(peak)
        assert json.loads(out)["unchanged"] == len(files)
    peak_rss_mb = max(rss)
    db_bytes = db.stat().st_size + sum(p.stat().st_size for p in work.glob("run0.db-*"))

    import pydicom

    sample = files[: args.pydicom_files]
    pyd = []
    for _ in range(max(1, args.runs // 2)):
        t = time.perf_counter()
        for f in sample:
            pydicom.dcmread(f, stop_before_pixels=True)
        pyd.append(time.perf_counter() - t)

    figures = {
        "files": len(files),
        "corpus_mib": round(total_bytes / 2**20, 1),
        "index_median_s": round(statistics.median(full), 3),
        "index_instances_per_s": round(len(files) / statistics.median(full)),
        "reindex_median_s": round(statistics.median(again), 3),
        "reindex_files_per_s": round(len(files) / statistics.median(again)),
        "peak_rss_mib": round(peak_rss_mb, 1),
        "index_bytes_per_instance": round(db_bytes / len(files)),
        "pydicom_header_files_per_s": round(len(sample) / statistics.median(pyd)),
        "cpus": os.cpu_count(),
    }
    figures["ratio_vs_pydicom"] = round(figures["index_instances_per_s"] / figures["pydicom_header_files_per_s"], 1)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"corpus: {figures['files']} files, {figures['corpus_mib']} MiB, {figures['cpus']} CPUs, warm cache")
    print(f"sia index (fresh db):     median {figures['index_median_s']:.3f} s = {figures['index_instances_per_s']:,} instances/s")
    print(f"sia index (unchanged):    median {figures['reindex_median_s']:.3f} s = {figures['reindex_files_per_s']:,} files/s")
    print(f"pydicom header-only read: {figures['pydicom_header_files_per_s']:,} files/s")
    print(f"ratio sia / pydicom:      {figures['ratio_vs_pydicom']}x")
    print(f"peak RSS of sia:          {figures['peak_rss_mib']} MiB")
    print(f"index size:               {figures['index_bytes_per_instance']} bytes per instance")


if __name__ == "__main__":
    sys.exit(main())
