#!/usr/bin/env python3
"""Pixel data in `sia serve` next to Orthanc 1.10 + DICOMweb 1.7 and pydicom (+ pylibjpeg),
on the same files, in the same run (issue 13): p50 of sequential requests (one client)
and the ratio to sia.

    python bench/pixels_bench.py [--dir /tmp/sia-pixels-bench] [--requests 50] [--no-orthanc]
                                 [--sia target/release/sia]

Cases:
- a 512 x 512 16-bit CT frame rendered as PNG and as JPEG (window 40,400);
- one 512 x 512 JPEG Lossless (SV1) frame decoded to Explicit VR LE octet-stream (each
  request a different instance, so sia's decoded-frame cache never answers);
- a 100-instance JPEG Lossless series retrieved as application/dicom in Explicit VR LE.

Data (written on first use): 100 synthetic 512 x 512 CT instances (pydicom), compressed
to JPEG Lossless SV1 with dcmtk's `dcmcjpeg +e1` (Debian `dcmtk`). sia runs as
`sia serve DIR --dev` (release build) with the printed bearer token; Orthanc without
authentication; pydicom in this process (dcmread + pixel_array with pylibjpeg, numpy
windowing, Pillow encoding; `decompress()` + write for the series).
Needs pydicom, numpy, pylibjpeg-libjpeg, Pillow, dcmtk; Orthanc + orthanc-dicomweb for
the comparison.
"""

import argparse
import io
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from serve_bench import dev_token, free_port, orthanc  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPLICIT_LE = "1.2.840.10008.1.2.1"
N = 100


def write_data(data: pathlib.Path):
    """100 CT slices, 512 x 512, 12 bits in 16, rescaled to HU, JPEG Lossless SV1."""
    if (data / "jpegls").exists() and len(list((data / "jpegls").glob("*.dcm"))) == N:
        return
    raw, jll = data / "native", data / "jpegls"
    raw.mkdir(parents=True, exist_ok=True)
    jll.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    y, x = np.mgrid[0:512, 0:512]
    rng = np.random.default_rng(13)
    for k in range(N):
        body = ((x - 256) ** 2 + (y - 256) ** 2 < (200 - k) ** 2) * 1040
        bone = ((x - 256) ** 2 + (y - 330) ** 2 < 30**2) * 900
        pixels = (body + bone + rng.normal(0, 20, (512, 512)) + 24).clip(0, 4095).astype(np.uint16)
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientID, ds.PatientName, ds.Modality, ds.InstanceNumber = "BENCH", "Bench^CT", "CT", k + 1
        ds.Rows = ds.Columns = 512
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.WindowCenter, ds.WindowWidth = -1024, 1, 40, 400
        ds.PixelData = pixels.tobytes()
        path = raw / f"{k:03}.dcm"
        ds.save_as(path, enforce_file_format=True)
        subprocess.run(["dcmcjpeg", "+e1", str(path), str(jll / f"{k:03}.dcm")], check=True)


def p50(fn, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def fetch(url, accept, token=None):
    headers = {"Accept": accept}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=300) as r:
        body = r.read()
        assert r.status == 200, (url, r.status)
        return body


def uids(files):
    out = []
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        out.append((ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID))
    return out


def verify(base, ids, token, rendered_path):
    """Each server does the work timed: images in the asked format, frames decoded (a
    512 x 512 16-bit payload, not the compressed one), the series in Explicit VR LE."""
    st, se, sop = ids[0]
    one = f"{base}/dicom-web/studies/{st}/series/{se}/instances/{sop}"
    png = fetch(f"{one}/{rendered_path}?window=40,400,linear", "image/png", token)
    jpeg = fetch(f"{one}/{rendered_path}?window=40,400,linear", "image/jpeg", token)
    assert png.startswith(b"\x89PNG") and jpeg.startswith(b"\xff\xd8"), base
    frame = fetch(f"{one}/frames/1", 'multipart/related; type="application/octet-stream"', token)
    assert len(frame) >= 512 * 512 * 2, (base, len(frame))
    series = fetch(f"{base}/dicom-web/studies/{st}/series/{se}",
                   f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT_LE}', token)
    assert len(series) >= N * 512 * 512 * 2 and b"1.2.840.10008.1.2.4.70" not in series, (base, len(series))


def cases(base, ids, token, n, rendered_path):
    st, se, _ = ids[0]
    one = f"{base}/dicom-web/studies/{st}/series/{se}/instances/{ids[0][2]}"
    verify(base, ids, token, rendered_path)
    counter = iter(range(10**9))

    def next_frame():
        _, _, sop = ids[next(counter) % len(ids)]
        return f"{base}/dicom-web/studies/{st}/series/{se}/instances/{sop}/frames/1"

    return {
        "rendered 512x512 CT frame, PNG": p50(
            lambda: fetch(f"{one}/{rendered_path}?window=40,400,linear", "image/png", token), n),
        "rendered 512x512 CT frame, JPEG": p50(
            lambda: fetch(f"{one}/{rendered_path}?window=40,400,linear", "image/jpeg", token), n),
        "decode one 512x512 JPEG Lossless frame": p50(
            lambda: fetch(next_frame(), 'multipart/related; type="application/octet-stream"', token),
            min(n, len(ids))),
        "100-instance JPEG Lossless series as Explicit VR LE": p50(
            lambda: fetch(f"{base}/dicom-web/studies/{st}/series/{se}",
                          f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT_LE}', token),
            max(3, n // 10)),
    }


def sia_figures(data, n, binary=None):
    """sia's figures; `binary` is the `sia` to run, else the release build (built here)."""
    if binary is None:
        target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "sia-cli"], cwd=ROOT, check=True)
        binary = target / "release/sia"
    work = pathlib.Path(tempfile.mkdtemp(prefix="sia-pixels-bench-"))
    port = free_port()
    out = open(work / "out", "w")
    proc = subprocess.Popen([str(binary), "serve", str(data / "jpegls"), "--dev", "--db",
                             str(work / "sia.db"), "--listen", f"127.0.0.1:{port}"],
                            stdout=out, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1200):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        token = dev_token(base, "BENCH")
        return cases(base, uids(sorted((data / "jpegls").glob("*.dcm"))), token, n, "rendered")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def orthanc_figures(data, n):
    files = sorted((data / "jpegls").glob("*.dcm"))
    with orthanc(files, "orthanc-pixels-bench-") as base:
        return None if base is None else cases(base, uids(files), None, n, "rendered")


def pydicom_figures(data, n):
    files = sorted((data / "jpegls").glob("*.dcm"))

    def render(fmt):
        ds = pydicom.dcmread(files[0])
        x = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        y = np.clip(((x - 39.5) / 399 + 0.5) * 255, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(y).save(buf, format=fmt)

    counter = iter(range(10**9))

    def decode():
        pydicom.dcmread(files[next(counter) % len(files)]).pixel_array.tobytes()

    def series():
        for f in files:
            ds = pydicom.dcmread(f)
            ds.decompress()
            ds.save_as(io.BytesIO())

    return {
        "rendered 512x512 CT frame, PNG": p50(lambda: render("PNG"), n),
        "rendered 512x512 CT frame, JPEG": p50(lambda: render("JPEG"), n),
        "decode one 512x512 JPEG Lossless frame": p50(decode, min(n, len(files))),
        "100-instance JPEG Lossless series as Explicit VR LE": p50(series, max(3, n // 10)),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp/sia-pixels-bench")
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--no-orthanc", action="store_true")
    ap.add_argument("--sia", type=pathlib.Path, help="the sia binary (default: build the release one)")
    args = ap.parse_args()
    data = pathlib.Path(args.dir)
    write_data(data)
    results = {"sia": sia_figures(data, args.requests, args.sia), "pydicom": pydicom_figures(data, args.requests)}
    if not args.no_orthanc:
        results["Orthanc"] = orthanc_figures(data, args.requests)
    print(f"{'p50 ms (ratio to sia)':55}" + "".join(f"{k:>20}" for k in results))
    for label in results["sia"]:
        row = f"{label:55}"
        for who, r in results.items():
            if r is None:
                row += f"{'-':>20}"
                continue
            v = r[label]
            row += f"{v:>12.1f}" + (f" ({v / results['sia'][label]:4.1f}x)" if who != "sia" else " " * 8)
        print(row)


if __name__ == "__main__":
    main()
