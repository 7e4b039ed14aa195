#!/usr/bin/env python3
"""Writes seed corpora for the fuzz targets into fuzz/corpus/<target>/.

Seeds: the demo set written by `sia demo`, pydicom's test files when pydicom is
installed (files up to 256 KiB), frame-table blobs from an index of those, and a few
hand-made inputs for the locator and the character-set decoder. Corpora are not
committed; this script rebuilds them.

    python scripts/fuzz-seeds.py [path/to/sia]
"""

import hashlib
import pathlib
import sqlite3
import struct
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fuzz" / "corpus"
MAX_SEED = 256 * 1024


def b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def put(target, data: bytes):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def dicom_sources(tmp: pathlib.Path, sia: pathlib.Path):
    subprocess.run([str(sia), "demo", str(tmp / "demo")], check=True, stdout=subprocess.DEVNULL)
    files = sorted((tmp / "demo").rglob("*.dcm"))
    try:
        import pydicom

        data = pathlib.Path(pydicom.__file__).parent / "data"
        files += sorted(p for p in data.rglob("*") if p.is_file() and p.suffix in ("", ".dcm"))
    except ImportError:
        print("pydicom not installed: seeding from the demo set only", file=sys.stderr)
    return [f for f in files if f.stat().st_size <= MAX_SEED]


def locator_seed(frames, flags, items, eot=b""):
    return struct.pack("<HBB", frames, flags, len(eot) // 8) + eot + items


def item(payload: bytes) -> bytes:
    return b"\xfe\xff\x00\xe0" + struct.pack("<I", len(payload)) + payload


DELIM = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


# The transfer syntaxes of fuzz_targets/pixels.rs, in its order.
PIXEL_SYNTAXES = ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                  "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90",
                  "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.5"]


def pixel_seeds():
    """The first frame of every compressed pydicom file behind the 9-byte header of the
    pixels target (syntax, flags, rows, columns, samples, bits allocated and stored)."""
    try:
        import pydicom
        from pydicom.encaps import generate_frames
    except ImportError:
        return
    data = pathlib.Path(pydicom.__file__).parent / "data" / "test_files"
    for path in sorted(data.rglob("*.dcm")):
        try:
            ds = pydicom.dcmread(path)
            uid = ds.file_meta.TransferSyntaxUID
            if uid not in PIXEL_SYNTAXES or "PixelData" not in ds:
                continue
            n = int(ds.get("NumberOfFrames", 1) or 1)
            frame = next(generate_frames(ds.PixelData, number_of_frames=n))
        except Exception:
            continue
        pi = str(ds.get("PhotometricInterpretation", ""))
        flags = (ds.get("PixelRepresentation", 0) & 1) | (2 if pi == "MONOCHROME1" else 0)
        header = struct.pack("<BBHHBBB", PIXEL_SYNTAXES.index(uid), flags, ds.Rows, ds.Columns,
                             1 if ds.get("SamplesPerPixel", 1) == 3 else 0, {8: 0, 16: 1, 32: 2}.get(ds.BitsAllocated, 0),
                             ds.get("BitsStored", ds.BitsAllocated))
        if len(frame) <= MAX_SEED:
            put("pixels", header + frame)


def main():
    sia = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "target" / "debug" / "sia"
    with tempfile.TemporaryDirectory() as t:
        tmp = pathlib.Path(t)
        files = dicom_sources(tmp, sia)
        for f in files:
            put("scan", f.read_bytes())
            put("dicom_json", f.read_bytes())
            put("retrieve", f.read_bytes())
        db = tmp / "seed.db"
        subprocess.run([str(sia), "index", "--db", str(db), "--json", *map(str, files)], check=True,
                       stdout=subprocess.DEVNULL)
        con = sqlite3.connect(db)
        for (blob,) in con.execute("SELECT DISTINCT frame_table FROM instances"):
            put("frame_table_blob", bytes(blob))
        con.close()

    pixel_seeds()

    frag_a, frag_b = b"\xff\xd8ab\xff\xd9", b"\xff\xd8cd\xff\xd9"
    put("frame_locator", locator_seed(2, 1, item(b"") + item(frag_a) + item(frag_b) + DELIM))
    put("frame_locator", locator_seed(2, 1, item(struct.pack("<II", 0, 14)) + item(frag_a) + item(frag_b) + DELIM))
    put("frame_locator", locator_seed(2, 5, item(b"") + item(frag_a) + item(frag_b) + DELIM, struct.pack("<QQ", 0, 14)))
    put("frame_locator", locator_seed(2, 1, item(b"") + item(b"\xff\xd8a") + item(b"b") + item(b"\xff\xd8c") + DELIM))
    put("frame_locator", locator_seed(3, 0, bytes(48)))
    put("frame_locator", locator_seed(3, 2, bytes(6)))

    jis = b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"
    korean = b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7"
    for selector, text in [(4, jis), (6, korean), (1, b"Buc^J\xe9r\xf4me"), (3, "王^小东".encode("gb18030")),
                           (2, "Wang^XiaoDong=王^小東".encode())]:
        put("charset", bytes([selector]) + text)
    put("charset", b"\xff\\ISO 2022 IR 87`" + jis)
    for accept in [
        "*/*",
        'multipart/related; type="application/octet-stream"; transfer-syntax=*',
        'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.50;q=0.9, */*;q=0.1',
        "multipart/related; type=image/x-dicom-rle, application/octet-stream",
    ]:
        put("accept", b"\x80" + accept.encode())
        put("accept", b"\x01" + accept.encode())
    for path in ["studies", "studies/1.2.3/series/4.5/instances/6.7/frames/1,2", "studies/1.2/metadata",
                 "studies/1.2/series/3.4/instances/5.6/frames/1%2C3", "studies/1.2/../x"]:
        put("path", path.encode())
    for req in ["GET frames/1", "GET frames/3,1,2\nAccept: */*", "HEAD frames/1\nAccept: image/jpeg",
                "GET frames/1\nAccept: multipart/related; type=application/octet-stream; transfer-syntax=*",
                "POST frames/1", "GET metadata", "GET frames/1,99\nAccept: application/octet-stream"]:
        # The first byte picks a prefix (sel % 5) and a credential (sel // 5 % 9; 0 is
        # the open engine).
        for sel in range(5 * 9):
            put("router", bytes([sel]) + req.encode())
    header = b64url(b'{"alg":"HS256","typ":"JWT"}')
    body = b64url(b'{"iss":"https://hs","aud":"https://ehr/fhir","exp":1900000000,"scope":"patient/ImagingStudy.rs","patient":"1"}')
    for tok in [f"{header}.{body}.c2ln", f"{header}.{body}.", "a.b.c", "eyJhbGciOiJub25lIn0.e30."]:
        for scopes in ["patient/ImagingStudy.rs", "patient/*.read user/ImagingStudy.r?modality=CT", "system/*.cruds __x"]:
            put("auth", f"{tok}\n{scopes}".encode())
    for fhir in ["GET /fhir/ImagingStudy?patient=123", "GET /fhir/ImagingStudy?_count=1&_include=ImagingStudy:endpoint",
                 "GET /fhir/ImagingStudy?started=ge2024-01-01&modality=CT", "GET /fhir/metadata",
                 "GET /fhir/ImagingStudy/2.25.228146457203842916711418316839742735.1",
                 "GET /wado?requestType=WADO&studyUID=1&seriesUID=2&objectUID=3&contentType=application/dicom",
                 "GET /dicom-web/studies?PatientName=doe*&fuzzymatching=true&includefield=all"]:
        for credential in range(9):
            put("router", bytes([5 * credential + 4]) + fhir.encode())
    # c_api: byte 0 = operation (low 3 bits) + variant, then `\n`-separated arguments.
    root = "2.25.228146457203842916711418316839742735"
    inst = f"{root}.1\n{root}.1.1\n{root}.1.1.1"
    for seed in [
        b"\x00GET\n/dicom-web/studies\n\nAccept:application/dicom+json",
        f"\x00GET\n/dicom-web/studies/{root}.1/series/{root}.1.1/instances/{root}.1.1.1/frames/1\n\nAccept:*/*".encode(),
        b"\x08HEAD\n/fhir/ImagingStudy\n_count=1",
        b"\x00GET\n/fhir/\xff\n\nX:\xe9",
        *(bytes([2 | (v << 3)]) + b"/fhir/metadata" for v in range(6)),
        b"\x03sia.db\nhttp://127.0.0.1:1\nmissing.toml",
        b"\x24", b"\x0c",
        *(bytes([5 | (v << 3)]) + f"Bearer x\n{inst}\n\n\x01\x00\x02\x00\n_count\n1".encode() for v in range(16)),
        b"\x06\x01\n\x80",
    ]:
        put("c_api", seed)
    counts = {d.name: len(list(d.iterdir())) for d in sorted(CORPUS.iterdir())}
    print("seeds:", ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
