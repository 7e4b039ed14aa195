#!/usr/bin/env python3
"""Several `sia serve` hosts over one PostgreSQL index (issue 15): requests/s of FHIR
ImagingStudy search for random patients under `wrk`, one host against two hosts sharing
the index, in the same run, plus the same search on one SQLite host for reference.

    python bench/pg_hosts_bench.py [--patients 1000] [--seconds 10] [--connections 16]

Data: `synth_corpus DIR PATIENTS 1` (PATIENTS x 2 studies x 5 series x 10 instances of
1 x 1 pixels: header-sized files), indexed once into a throwaway PostgreSQL cluster
(scripts/pg-throwaway: fsync off, Unix socket) and once into SQLite. Each request asks
for another patient (a wrk Lua script over a fixed random list), so every answer comes
from the index (PostgreSQL answers are not cached; the SQLite host runs with its search
cache, whose hits this spread of patients mostly misses). Two hosts: two wrk processes
at the same time, each with half the connections, against two `sia serve` processes;
the figure is their sum. On a 2-core machine the hosts, wrk and PostgreSQL share the
same cores, so two hosts cannot add capacity here: the run shows that they share one
index correctly under load and what the database costs, not the scaling of a cluster.
Needs `wrk` and PostgreSQL's server binaries (Debian: wrk postgresql).
"""

import argparse
import os
import pathlib
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")

LUA = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1], { Accept = "application/fhir+json" })
end
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(sia, db, workdir):
    port = free_port()
    proc = subprocess.Popen(
        # One base URL for every host, as behind a load balancer: the addresses in the
        # answers are built from it, so the hosts' answers are byte-identical.
        [str(sia), "serve", "--db", db, "--listen", f"127.0.0.1:{port}", "--base-url", "https://imaging.example"],
        stdout=open(workdir / f"serve-{port}.out", "w"),
        stderr=open(workdir / f"serve-{port}.err", "w"),
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(base + "/fhir/metadata", timeout=1) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"sia serve on {db} did not start: {(workdir / f'serve-{port}.err').read_text()[-2000:]}")


def wrk(base, seconds, connections, lua):
    return subprocess.Popen(
        ["wrk", "-t1" if connections < 4 else "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(lua), base],
        stdout=subprocess.PIPE,
        text=True,
    )


def parse(out):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+\w+)", out).group(1)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out).group(1)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"wrk saw {non2xx.group(1)} failed answers:\n{out}")
    return rps, p50, p99


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=1000, help="x 100 instances")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk (apt-get install wrk)")

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sia-cli"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sia", "--example", "synth_corpus"], cwd=ROOT, check=True)
    sia = TARGET / "release" / "sia"
    work = pathlib.Path(tempfile.mkdtemp(prefix="sia-pg-hosts-"))
    corpus = work / "corpus"
    subprocess.run([str(TARGET / "release" / "examples" / "synth_corpus"), str(corpus), str(args.patients), "1"],
                   check=True, stdout=subprocess.DEVNULL)

    rng = random.Random(15)
    lua = work / "patients.lua"
    paths = work / "paths.txt"
    paths.write_text("".join(
        f"/fhir/ImagingStudy?patient.identifier=HOSP|PID{rng.randrange(1, args.patients + 1):05}\n"
        for _ in range(10_000)
    ))
    lua.write_text(LUA % paths)

    started = subprocess.run([str(ROOT / "scripts" / "pg-throwaway"), "start"], check=True,
                             capture_output=True, text=True).stdout
    url = re.search(r"SIA_TEST_PG_URL=(\S+)", started).group(1)
    pg_dir = re.search(r"SIA_TEST_PG_DIR=(\S+)", started).group(1)
    procs = []
    try:
        sqlite_db = str(work / "index.db")
        for db in (url, sqlite_db):
            t = time.perf_counter()
            subprocess.run([str(sia), "index", "--db", db, str(corpus)], check=True, stdout=subprocess.DEVNULL)
            print(f"indexed {args.patients * 100} instances into {'PostgreSQL' if db == url else 'SQLite'} "
                  f"in {time.perf_counter() - t:.1f} s")
        a, base_a = serve(sia, url, work)
        b, base_b = serve(sia, url, work)
        s, base_s = serve(sia, sqlite_db, work)
        procs = [a, b, s]
        # Both PostgreSQL hosts give the same answer for a patient (and a non-empty one).
        probe = paths.read_text().split("\n")[0]
        bodies = []
        for base in (base_a, base_b):
            req = urllib.request.Request(base + probe, headers={"Accept": "application/fhir+json"})
            with urllib.request.urlopen(req) as r:
                bodies.append(r.read())
        if bodies[0] != bodies[1] or b'"ImagingStudy"' not in bodies[0]:
            raise SystemExit(f"the two hosts answer {probe} differently or without a study")

        rows = []
        one = wrk(base_a, args.seconds, args.connections, lua)
        rows.append(("one host, PostgreSQL", *parse(one.communicate()[0])))
        half = max(1, args.connections // 2)
        two = [wrk(base, args.seconds, half, lua) for base in (base_a, base_b)]
        outs = [parse(p.communicate()[0]) for p in two]
        rows.append(("two hosts, PostgreSQL (sum)", sum(o[0] for o in outs), outs[0][1] + " / " + outs[1][1],
                     outs[0][2] + " / " + outs[1][2]))
        ref = wrk(base_s, args.seconds, args.connections, lua)
        rows.append(("one host, SQLite", *parse(ref.communicate()[0])))
        print(f"\nFHIR ImagingStudy?patient.identifier= over {args.patients * 100} instances, "
              f"{args.connections} connections, {args.seconds} s, {os.cpu_count()} cores")
        print(f"{'':<30} {'req/s':>10} {'p50':>18} {'p99':>18}")
        for name, rps, p50, p99 in rows:
            print(f"{name:<30} {rps:>10.0f} {p50:>18} {p99:>18}")
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        subprocess.run([str(ROOT / "scripts" / "pg-throwaway"), "stop", pg_dir], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
