#!/usr/bin/env python3
"""Instructions and system calls per request of `sia serve`, which the machine's load
does not change (wall-clock figures on a shared machine move by 2-3x between runs).

    python bench/serve_counts.py BIN CASE [--requests N] [--dir DATA]

BIN is a release `sia`; CASE an index into `serve_bench.CASES` (2: JPEG frame,
3: native frame, 4: series metadata); DATA the data of `bench/serve_bench.py` (written
there on first use). The server runs with `--dev` and every request carries a bearer
token. After 20 requests to warm, a pause past the one-second bounds (listings, path
checks) and 5 more, it counts N requests over one keep-alive connection:
instructions with callgrind (instrumented alone: `--instr-atstart=no`, then
`callgrind_control -i on/off`), then, in a second server, system calls with
`strace -f -c`. Needs valgrind and strace (Debian packages).
"""

import argparse
import http.client
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import serve_bench as sb  # noqa: E402


def server(cmd_prefix, binp, data, work):
    port = sb.free_port()
    proc = subprocess.Popen([*cmd_prefix, binp, "serve", str(data), "--dev", "--db", f"{work}/sia.db",
                             "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(3000):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=5)
            break
        except OSError:
            time.sleep(0.2)
    return proc, port, base


def requester(port, base, case):
    _, path, accept, _ = sb.CASES[case]
    token = sb.dev_token(base, "DEMO-001" if "DEMO-001" in path else "BENCH")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def get():
        conn.request("GET", path, headers={"Accept": accept, "Authorization": f"Bearer {token}"})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"status {r.status}")
    for _ in range(20):
        get()
    time.sleep(1.2)
    for _ in range(5):
        get()
    return get


def instructions(binp, data, case, n, keep=None):
    with tempfile.TemporaryDirectory(prefix="sia-counts-") as work:
        out = f"{work}/callgrind.out"
        proc, port, base = server(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                                   f"--callgrind-out-file={out}"], binp, data, work)
        try:
            get = requester(port, base, case)
            subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
            for _ in range(n):
                get()
            subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        text = pathlib.Path(out).read_text(errors="replace")
        if keep:
            pathlib.Path(keep).write_text(text)
        return sum(int(t) for t in re.findall(r"^totals: (\d+)", text, re.M)) / n


def syscalls(binp, data, case, n):
    with tempfile.TemporaryDirectory(prefix="sia-counts-") as work:
        proc, port, base = server([], binp, data, work)
        try:
            get = requester(port, base, case)
            st = subprocess.Popen(["strace", "-f", "-c", "-o", f"{work}/strace", "-p", str(proc.pid)],
                                  stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            for _ in range(n):
                get()
            st.send_signal(signal.SIGINT)
            st.wait()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        text = pathlib.Path(f"{work}/strace").read_text()
    rows = re.findall(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", text, re.M)
    return {name: int(c) / n for c, name in rows if name != "total"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bin")
    ap.add_argument("case", type=int)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--dir", type=pathlib.Path, default=pathlib.Path(tempfile.gettempdir()) / "sia-wado-bench")
    ap.add_argument("--keep", type=pathlib.Path,
                    help="keep the callgrind profile there (read it with callgrind_annotate)")
    args = ap.parse_args()
    sb.build_data(args.dir)
    label = sb.CASES[args.case][0]
    ins = instructions(args.bin, args.dir, args.case, args.requests, args.keep)
    calls = syscalls(args.bin, args.dir, args.case, args.requests)
    print(f"{label}: {ins:,.0f} instructions/request, {sum(calls.values()):.1f} system calls/request ("
          + ", ".join(f"{k} {v:.2f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1]) if v >= 0.05) + ")")


if __name__ == "__main__":
    main()
