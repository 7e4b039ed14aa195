#!/usr/bin/env python3
"""ImagingStudy search with an introspected (opaque) token next to an offline-verified
JWT, on the same imaging server, in the same run; and what a first request costs when
it needs an introspection at the EHR (issue 19).

    python bench/introspection_bench.py [--seconds 8] [--first 30]

Three `sia serve` processes on loopback (release build): EHR A (`--dev
--dev-opaque-tokens`: opaque tokens, introspection only), EHR B (`--dev`: ES256 JWTs),
and the imaging server trusting both (A by `introspection_url` with its client secret,
B by `jwks_url`). `wrk -t2 -c16` measures cached requests; the first-request latency is
the median over fresh tokens of the first search (introspection included) and of the
second (cached), with Python's http.client on one connection.
"""

import argparse
import http.client
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from serve_bench import ROOT, dev_token, free_port, wrk  # noqa: E402

SEARCH = "/fhir/ImagingStudy?patient=Patient/DEMO-001"


def start(args, work, name):
    port = free_port()
    out = open(work / f"{name}.out", "w")
    proc = subprocess.Popen([str(ROOT / "target/release/sia"), "serve", *map(str, args), "--listen",
                             f"127.0.0.1:{port}"], stdout=out, stderr=subprocess.DEVNULL, cwd=work)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1)
            return proc, base
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{name} did not start")


def timed_get(base, path, token):
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    t = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"})
    r = conn.getresponse()
    r.read()
    ms = (time.perf_counter() - t) * 1e3
    conn.close()
    assert r.status == 200, r.status
    return ms


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--first", type=int, default=30, help="fresh tokens for the first-request latency")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (apt-get install wrk)")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sia-cli"], cwd=ROOT, check=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="sia-introspection-bench-"))
    procs = []
    try:
        subprocess.run([str(ROOT / "target/release/sia"), "demo", str(work / "demo")], check=True,
                       capture_output=True)
        a, ehr_a = start([work / "demo", "--dev", "--dev-opaque-tokens", "--db", work / "a.db"], work, "a")
        b, ehr_b = start([work / "demo", "--dev", "--db", work / "b.db"], work, "b")
        procs += [a, b]
        port = free_port()
        (work / "imaging.toml").write_text(f"""
[server]
base_url = "http://127.0.0.1:{port}"
db = "imaging.db"
[[issuers]]
iss = "{ehr_a}/dev/fhir"
audiences = ["{ehr_a}/dev/fhir"]
introspection_url = "{ehr_a}/dev/introspect"
client_id = "sia-introspect"
client_secret_file = "a.db.dev-introspect-secret"
[[issuers]]
iss = "{ehr_b}/dev/fhir"
audiences = ["{ehr_b}/dev/fhir"]
jwks_url = "{ehr_b}/dev/.well-known/jwks.json"
algorithms = ["ES256"]
[patients]
policy = "identity"
""")
        imaging_proc = subprocess.Popen(
            [str(ROOT / "target/release/sia"), "serve", str(work / "demo"), "--config", str(work / "imaging.toml"),
             "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
        procs.append(imaging_proc)
        imaging = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{imaging}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        opaque, jwt = dev_token(ehr_a, "DEMO-001"), dev_token(ehr_b, "DEMO-001")
        timed_get(imaging, SEARCH, opaque)
        timed_get(imaging, SEARCH, jwt)
        rows = {
            "ImagingStudy search, offline-verified JWT (cached)": wrk(imaging + SEARCH, "application/fhir+json", jwt,
                                                                      args.seconds),
            "ImagingStudy search, introspected opaque token (cached)": wrk(imaging + SEARCH, "application/fhir+json",
                                                                           opaque, args.seconds),
        }
        first, second, first_jwt = [], [], []
        for _ in range(args.first):
            t = dev_token(ehr_a, "DEMO-001")
            first.append(timed_get(imaging, SEARCH, t))
            second.append(timed_get(imaging, SEARCH, t))
            first_jwt.append(timed_get(imaging, SEARCH, dev_token(ehr_b, "DEMO-001")))
        print(f"wrk -t2 -c16 -d{args.seconds}s on loopback, one imaging server trusting both EHRs")
        print(f"{'':58} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
        for label, r in rows.items():
            print(f"{label:58} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
        print(f"first request of a fresh opaque token (introspection at the EHR): "
              f"{statistics.median(first):.2f} ms median over {args.first}")
        print(f"second request of the same token (cached):                        "
              f"{statistics.median(second):.2f} ms")
        print(f"first request of a fresh JWT (signature verified offline):        "
              f"{statistics.median(first_jwt):.2f} ms")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
