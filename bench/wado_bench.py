#!/usr/bin/env python3
"""WADO-RS side by side: sia (in-process Engine::handle), pydicom (read + slice) and
Orthanc 1.10 with the DICOMweb plugin (over HTTP on loopback), on the same files:

- one native 512 KB frame (frame 300) of a 300 MB, 600-frame instance;
- one JPEG frame (frame 1000) of a 2,000-frame instance;
- metadata of a series of 1,000 instances.

    python bench/wado_bench.py [--dir /tmp/sia-wado-bench] [--no-orthanc]

Orthanc comes from Debian (`apt-get install orthanc orthanc-dicomweb`); the script
starts a throwaway instance on 127.0.0.1:18042 and stops it at the end. Its figures
include HTTP on loopback, sia's do not (the server does not exist yet): read the ratios
with that in mind.
"""

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
STUDY = "1.2.826.0.1.3680043.10.1"
NATIVE = f"/studies/{STUDY}/series/{STUDY}.1/instances/{STUDY}.1.1/frames/300"
JPEG = f"/studies/{STUDY}/series/{STUDY}.2/instances/{STUDY}.2.1/frames/1000"
METADATA = f"/studies/{STUDY}/series/{STUDY}.3/metadata"


def p50(samples):
    return statistics.median(samples)


def timed(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e6)
    return p50(out)


def sia_figures(data):
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sia", "--example", "wado_latency"], cwd=ROOT, check=True)
    out = subprocess.run([str(ROOT / "target/release/examples/wado_latency"), str(data)], check=True,
                         capture_output=True, text=True).stdout
    f = json.loads(out)
    return {"native": f["native_frame_us"][0], "jpeg": f["jpeg_frame_us"][0], "metadata": f["metadata_1000_us"][0]}


def pydicom_figures(data):
    import pydicom
    from pydicom.encaps import get_frame

    native_path, jpeg_path = data / "native600.dcm", data / "jpeg2000.dcm"

    def native():
        ds = pydicom.dcmread(native_path)
        size = ds.Rows * ds.Columns * 2
        return ds.PixelData[299 * size : 300 * size]

    def jpeg():
        ds = pydicom.dcmread(jpeg_path)
        return get_frame(ds.PixelData, 999, number_of_frames=2000)

    files = sorted((data / "study").glob("*.dcm"))

    def metadata():
        return [pydicom.dcmread(f, stop_before_pixels=True).to_json_dict() for f in files]

    return {"native": timed(native, 5), "jpeg": timed(jpeg, 20), "metadata": timed(metadata, 3)}


def orthanc_figures(data):
    if not shutil.which("Orthanc"):
        print("Orthanc not installed (apt-get install orthanc orthanc-dicomweb): skipped", file=sys.stderr)
        return None
    work = pathlib.Path(tempfile.mkdtemp(prefix="orthanc-bench-"))
    config = {
        "Name": "bench", "StorageDirectory": str(work / "db"), "IndexDirectory": str(work / "db"),
        "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
        "HttpPort": 18042, "DicomPort": 14242, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "StorageCompression": False,
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "WadoRoot": "/wado",
                     "Host": "127.0.0.1:18042", "Ssl": False},
    }
    (work / "config.json").write_text(json.dumps(config))
    proc = subprocess.Popen(["Orthanc", str(work / "config.json")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = "http://127.0.0.1:18042"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/system", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        files = [data / "native600.dcm", data / "jpeg2000.dcm", *sorted((data / "study").glob("*.dcm"))]
        for f in files:
            req = urllib.request.Request(f"{base}/instances", data=f.read_bytes(), method="POST",
                                         headers={"Content-Type": "application/dicom"})
            urllib.request.urlopen(req, timeout=300).read()

        def get(path, accept):
            req = urllib.request.Request(f"{base}/dicom-web{path}", headers={"Accept": accept})
            with urllib.request.urlopen(req, timeout=300) as r:
                return r.read()

        return {
            "native": timed(lambda: get(NATIVE, 'multipart/related; type="application/octet-stream"'), 5),
            "jpeg": timed(lambda: get(JPEG, 'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.50'), 20),
            "metadata": timed(lambda: get(METADATA, "application/dicom+json"), 3),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=pathlib.Path, default=pathlib.Path(tempfile.gettempdir()) / "sia-wado-bench")
    ap.add_argument("--no-orthanc", action="store_true")
    args = ap.parse_args()
    sia = sia_figures(args.dir)  # writes the data on first use
    pyd = pydicom_figures(args.dir)
    orth = None if args.no_orthanc else orthanc_figures(args.dir)
    rows = [("one native 512 KB frame of a 300 MB instance", "native"),
            ("one JPEG frame of a 2,000-frame instance", "jpeg"),
            ("metadata of a 1,000-instance series", "metadata")]
    print(f"{'p50':48} {'sia':>12} {'pydicom':>12} {'ratio':>8} {'Orthanc':>12} {'ratio':>8}")
    for label, key in rows:
        line = f"{label:48} {sia[key]:>10.1f}us {pyd[key]:>10.0f}us {pyd[key] / sia[key]:>7.0f}x"
        if orth:
            line += f" {orth[key]:>10.0f}us {orth[key] / sia[key]:>7.0f}x"
        print(line)


if __name__ == "__main__":
    main()
