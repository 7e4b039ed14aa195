#!/usr/bin/env python3
"""`sia serve` under load, next to Orthanc 1.10 + DICOMweb 1.7, on the same files, in the
same run: `wrk` on loopback (2 threads, 16 connections, 10 s per URL by default),
requests/s and p50/p99 latency, and sia's peak RSS.

    python bench/serve_bench.py [--dir /tmp/sia-wado-bench] [--seconds 10] [--no-orthanc]

Data: the WADO benchmark set (`core/benches/wado_data.rs`: a 300 MB 600-frame native
instance, a 2,000-frame JPEG instance, a 1,000-instance series) plus the demo set
(`sia demo`), written on first use. sia runs as `sia serve DIR --dev` (release build)
and every request carries the ready bearer token it prints, so the timings include
token checks and the patient compartment; Orthanc runs without authentication.
Needs `wrk`, and for the comparison `orthanc orthanc-dicomweb` (Debian packages).
"""

import argparse
import contextlib
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Where cargo puts the release build (CARGO_TARGET_DIR when set, as cargo itself does).
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
STUDY = "1.2.826.0.1.3680043.10.1"
DEMO = "2.25.228146457203842916711418316839742735"

CASES = [
    # (label, path under the server, Accept, whether the path is FHIR)
    ("ImagingStudy?patient= (2 studies)", "/fhir/ImagingStudy?patient=Patient/DEMO-001", "application/fhir+json", True),
    ("QIDO studies?PatientID=", "/dicom-web/studies?PatientID=DEMO-001", "application/dicom+json", False),
    ("one JPEG frame of a 2,000-frame instance",
     f"/dicom-web/studies/{STUDY}/series/{STUDY}.2/instances/{STUDY}.2.1/frames/1000",
     'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.50', False),
    ("one native 512 KB frame of a 300 MB instance",
     f"/dicom-web/studies/{STUDY}/series/{STUDY}.1/instances/{STUDY}.1.1/frames/300",
     'multipart/related; type="application/octet-stream"', False),
    ("metadata of a 1,000-instance series", f"/dicom-web/studies/{STUDY}/series/{STUDY}.3/metadata",
     "application/dicom+json", False),
]


LATENCY = "metadata of a 1,000-instance series, 1 client"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_data(data):
    if not (data / "study").exists():
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "sia", "--example", "wado_latency"],
                       cwd=ROOT, check=True)
        subprocess.run([str(TARGET / "release/examples/wado_latency"), str(data)], check=True,
                       capture_output=True)
    if not (data / "demo").exists():
        subprocess.run([str(TARGET / "release/sia"), "demo", str(data / "demo")], check=True,
                       capture_output=True)


def dev_token(base, patient):
    """A token for `patient` from the development EHR: authorization code + PKCE."""
    import base64
    import hashlib
    import urllib.parse

    verifier = base64.urlsafe_b64encode(b"sia-serve-bench-verifier-0123456789abcdef").rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = "http://127.0.0.1:9/cb"
    q = urllib.parse.urlencode({
        "response_type": "code", "client_id": "bench", "redirect_uri": redirect, "state": "s",
        "scope": "launch/patient patient/ImagingStudy.rs", "aud": f"{base}/dev/fhir",
        "code_challenge": challenge, "code_challenge_method": "S256", "patient": patient})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    try:
        urllib.request.build_opener(NoRedirect).open(f"{base}/dev/authorize?{q}", timeout=30)
        raise RuntimeError("authorize did not redirect")
    except urllib.error.HTTPError as e:
        location = e.headers["Location"]
    code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]
    body = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code, "client_id": "bench",
                                   "redirect_uri": redirect, "code_verifier": verifier}).encode()
    with urllib.request.urlopen(f"{base}/dev/token", data=body, timeout=30) as r:
        return json.loads(r.read())["access_token"]


def wrk(url, accept, token, seconds, connections=16, timeout="30s"):
    cmd = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency", f"--timeout={timeout}",
           "-H", f"Accept: {accept}", url]
    if token:
        cmd[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50_ms": pct(50), "p99_ms": pct(99), "non2xx": int(errors.group(1)) if errors else 0}


def sia_figures(data, seconds):
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sia-cli"], cwd=ROOT, check=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="sia-serve-bench-"))
    port = free_port()
    out = open(work / "out", "w")
    proc = subprocess.Popen([str(TARGET / "release/sia"), "serve", str(data), "--dev", "--db",
                             str(work / "sia.db"), "--listen", f"127.0.0.1:{port}"],
                            stdout=out, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if "export TOKEN=" in (work / "out").read_text():
                break
            time.sleep(0.1)
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        tokens = {"DEMO-001": dev_token(base, "DEMO-001"), "BENCH": dev_token(base, "BENCH")}
        results = {}
        for label, path, accept, _ in CASES:
            token = tokens["DEMO-001" if "DEMO-001" in path else "BENCH"]
            req = urllib.request.Request(base + path, headers={"Accept": accept, "Authorization": f"Bearer {token}"})
            urllib.request.urlopen(req, timeout=60).read()  # warm: caches and page cache
            results[label] = wrk(base + path, accept, token, seconds)
        # Latency as one viewer sees it: one connection, one request at a time.
        label, path, accept, _ = CASES[-1]
        results[LATENCY] = wrk(base + path, accept, tokens["BENCH"], seconds, connections=1)
        status = pathlib.Path(f"/proc/{proc.pid}/status").read_text()
        results["rss_mib"] = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
        return results
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def orthanc(files, prefix):
    """Orthanc 1.10 with its DICOMweb plugin on a free loopback port, `files` stored in it
    (POST /instances); yields its base URL, and stops it and removes its storage after.
    None when Orthanc is not installed."""
    if not shutil.which("Orthanc"):
        print("Orthanc not installed (apt-get install orthanc orthanc-dicomweb): skipped", file=sys.stderr)
        yield None
        return
    work = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    port = free_port()
    config = {
        "Name": "bench", "StorageDirectory": str(work / "db"), "IndexDirectory": str(work / "db"),
        "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
        "HttpPort": port, "DicomPort": free_port(), "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "StorageCompression": False,
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "WadoRoot": "/wado",
                     "Host": f"127.0.0.1:{port}", "Ssl": False},
    }
    (work / "config.json").write_text(json.dumps(config))
    proc = subprocess.Popen(["Orthanc", str(work / "config.json")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{base}/system", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        for f in files:
            req = urllib.request.Request(f"{base}/instances", data=f.read_bytes(), method="POST",
                                         headers={"Content-Type": "application/dicom"})
            urllib.request.urlopen(req, timeout=300).read()
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


def orthanc_figures(data, seconds):
    files = [data / "native600.dcm", data / "jpeg2000.dcm", *sorted((data / "study").glob("*.dcm")),
             *sorted((data / "demo").rglob("*.dcm"))]
    with orthanc(files, "orthanc-serve-bench-") as base:
        if base is None:
            return None
        results = {}
        for label, path, accept, is_fhir in CASES:
            if is_fhir:
                continue  # Orthanc serves no FHIR
            url = base + path
            # The native frame takes Orthanc about a second: fewer connections, long timeout.
            conns = 2 if "native" in label else 16
            results[label] = wrk(url, accept, None, seconds, connections=conns, timeout="60s")
        results[LATENCY] = wrk(base + CASES[-1][1], CASES[-1][2], None, seconds, connections=1, timeout="60s")
        return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=pathlib.Path, default=pathlib.Path(tempfile.gettempdir()) / "sia-wado-bench")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--no-orthanc", action="store_true")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (apt-get install wrk)")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sia-cli"], cwd=ROOT, check=True)
    build_data(args.dir)
    sia = sia_figures(args.dir, args.seconds)
    orth = None if args.no_orthanc else orthanc_figures(args.dir, args.seconds)
    print(f"wrk -t2 -c16 -d{args.seconds}s on loopback (-c1 for the last row; Orthanc's native frame -c2);"
          " sia with a bearer token, Orthanc without auth")
    print(f"{'':44} {'sia req/s':>10} {'p50 ms':>8} {'p99 ms':>8} | {'Orthanc req/s':>13} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>8}")
    for label in [c[0] for c in CASES] + [LATENCY]:
        s = sia[label]
        line = f"{label:44} {s['rps']:>10.0f} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f}"
        if s["non2xx"]:
            line += f" (non-2xx: {s['non2xx']})"
        o = (orth or {}).get(label)
        if o:
            ratio = s["rps"] / o["rps"] if o["rps"] else float("inf")
            line += f" | {o['rps']:>13.1f} {o['p50_ms']:>8.2f} {o['p99_ms']:>8.2f} {ratio:>7.0f}x"
        print(line)
    print(f"sia peak RSS under this load: {sia['rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
