"""Decoded pixel data (issue 13): frames of compressed instances asked for as
uncompressed `application/octet-stream` are decoded by sia (dicom-rs codecs) and must
equal pydicom's `pixel_array` (pydicom decoding with pylibjpeg): byte for byte for
lossless syntaxes, within the codec tolerance below for lossy ones."""

import shutil

import numpy as np
import pydicom
import pytest

from conftest import index_json, the_instance, transfer_syntax
from test_wado_frames import get, parse_multipart

pytest.importorskip("pylibjpeg", reason="pydicom needs pylibjpeg to decode the reference frames")

EXPLICIT_LE = "1.2.840.10008.1.2.1"
UNCOMPRESSED = 'Accept: multipart/related; type="application/octet-stream"'
# Lossy JPEG: two IDCT implementations (libjpeg's and jpeg-decoder's) and their chroma
# upsampling differ by rounding; no sample may differ by more than this.
LOSSY_MAX_DIFF = 4
# Why sia may answer 406 for a syntax it otherwise decodes; anything else is a failure.
LOSSY = {
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.203",
}
KNOWN_406 = {
    "1.2.840.10008.1.2.4.51": "12-bit JPEG DCT: jpeg-decoder decodes 8-bit DCT only",
    "1.2.840.10008.1.2.4.80": "JPEG-LS needs the jpegls cargo feature (CharLS, off by default)",
    "1.2.840.10008.1.2.4.81": "JPEG-LS needs the jpegls cargo feature (CharLS, off by default)",
    "1.2.840.10008.1.2.5": "RLE of Bits Allocated 32: the dicom-rs RLE codec decodes 8 and 16",
}


def frames_url(db, numbers):
    study, series, sop = the_instance(db)
    return f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/{','.join(map(str, numbers))}"


def reference(ds):
    """pydicom's frames as a list of arrays (YBR JPEG and JPEG 2000 with a colour
    transform come out RGB from both decoders; RLE keeps its stored colour)."""
    arr = ds.pixel_array if transfer_syntax(ds) != pydicom.uid.RLELossless else pydicom.pixels.pixel_array(ds, as_rgb=False)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    return list(arr) if n > 1 else [arr]


def compressed_files(per_file_index):
    for path, (db, report) in per_file_index.items():
        if report["indexed"] != 1:
            continue
        ds = pydicom.dcmread(path, force=True)
        if "PixelData" not in ds:
            continue
        uid = transfer_syntax(ds)
        if uid.is_compressed and uid != pydicom.uid.DeflatedExplicitVRLittleEndian:
            yield path, db, ds, uid


def test_decoded_frames_equal_pydicom(sia, per_file_index):
    exact, lossy, refused = [], [], []
    for path, db, ds, uid in compressed_files(per_file_index):
        n = int(ds.get("NumberOfFrames", 1) or 1)
        order = list(range(n, 0, -1))
        status, fields, body, rc = get(sia, db, frames_url(db, order), UNCOMPRESSED)
        assert rc == 0 or status >= 400, path.name
        try:
            expected = reference(ds)
        except Exception:  # pydicom cannot decode it either (damaged codestream)
            assert status in (406, 500), (path.name, status)
            continue
        if status == 406:
            assert uid in KNOWN_406, (path.name, body[:200])
            if uid == pydicom.uid.RLELossless:
                assert ds.BitsAllocated == 32, path.name
            if uid == pydicom.uid.JPEGExtended12Bit:
                assert ds.BitsStored > 8, path.name
            refused.append(path.name)
            continue
        assert status == 200, (path.name, status, body[:300])
        parts = parse_multipart(fields["Content-Type"], body)
        assert len(parts) == n
        for k, ((ctype, location, payload), want) in enumerate(zip(parts, [expected[i - 1] for i in order])):
            assert ctype == ("application/octet-stream", EXPLICIT_LE), path.name
            assert location.endswith(f"/frames/{order[k]}")
            want = np.ascontiguousarray(want)
            if not uid in LOSSY:
                assert payload == want.tobytes(), f"{path.name}: frame {order[k]} differs"
            else:
                got = np.frombuffer(payload, dtype=want.dtype).reshape(want.shape)
                diff = np.abs(got.astype(np.int64) - want.astype(np.int64)).max()
                assert diff <= LOSSY_MAX_DIFF, f"{path.name}: frame {order[k]} differs by {diff}"
        (lossy if uid in LOSSY else exact).append(path.name)
    # The families that decode in the default build: JPEG (baseline, lossless), JPEG
    # 2000, RLE, each with files in pydicom's set.
    assert len(exact) >= 10 and len(lossy) >= 17, (exact, lossy, refused)
    assert any("jp2k" in name or "J2K" in name for name in exact)
    assert any("rle" in name.lower() for name in exact)
    assert any("jpeg_gdcm" in name for name in exact), "JPEG Lossless SV1"


def test_stored_syntax_stays_the_default_and_star_keeps_it(sia, pydicom_test_files, tmp_path):
    path = pydicom_test_files / "MR_small_jp2klossless.dcm"
    db = tmp_path / "x.db"
    index_json(sia, db, path)
    url = frames_url(db, [1])
    for accept in ("Accept: */*", 'Accept: multipart/related; type="application/octet-stream"; transfer-syntax=*'):
        status, fields, body, _ = get(sia, db, url, accept)
        assert status == 200
        ((ctype, _, payload),) = parse_multipart(fields["Content-Type"], body)
        assert ctype[1] == "1.2.840.10008.1.2.4.90", accept
        assert payload[:2] == b"\xff\x4f"
    # Explicitly asked for: decoded; a single part for one frame.
    status, fields, body, _ = get(sia, db, url, f"Accept: application/octet-stream; transfer-syntax={EXPLICIT_LE}")
    assert status == 200 and fields["Content-Type"] == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    assert body == pydicom.dcmread(path).pixel_array.tobytes()
    # A syntax sia cannot produce from this one.
    status, _, body, _ = get(sia, db, url, 'Accept: multipart/related; type="image/jls"')
    assert status == 406, body


def hostile_copy(src, dst, patch):
    data = bytearray(src.read_bytes())
    patch(data)
    dst.write_bytes(bytes(data))
    return dst


def test_hostile_codestreams_are_clear_errors(sia, pydicom_test_files, tmp_path):
    """A lying JPEG 2000 SIZ (larger than Rows/Columns), a lying JPEG SOF, and damaged
    entropy-coded data: each a clear 500 naming the frame, never a crash or a huge
    allocation."""

    def lying_siz(data):
        at = data.find(b"\xff\x4f\xff\x51")
        data[at + 8 : at + 16] = (60000).to_bytes(4, "big") + (60000).to_bytes(4, "big")

    def lying_sof(data):
        at = data.find(b"\xff\xc3")
        data[at + 5 : at + 9] = (65000).to_bytes(2, "big") + (65000).to_bytes(2, "big")

    def garbage_scan(data):
        at = data.find(b"\xff\xda")
        for i in range(at + 40, min(len(data) - 16, at + 4000), 3):
            data[i] = 0xFF if data[i] else 0x01

    cases = [
        ("MR_small_jp2klossless.dcm", lying_siz, "header describes"),
        ("SC_rgb_jpeg_gdcm.dcm", lying_sof, "header describes"),
        ("SC_rgb_jpeg_gdcm.dcm", garbage_scan, "cannot be decoded"),
    ]
    for name, patch, message in cases:
        target = tmp_path / name
        db = tmp_path / f"{name}.{patch.__name__}.db"
        hostile_copy(pydicom_test_files / name, target, patch)
        index_json(sia, db, target)
        status, _, body, rc = get(sia, db, frames_url(db, [1]), UNCOMPRESSED)
        assert status in (500, 200), (name, patch.__name__, status)
        if status == 500:
            assert message.encode() in body, body
        shutil.rmtree(tmp_path / "x", ignore_errors=True)
    # The lying headers at least must be refused, not decoded.
    for name, patch in [("MR_small_jp2klossless.dcm", lying_siz), ("SC_rgb_jpeg_gdcm.dcm", lying_sof)]:
        target = tmp_path / f"again-{name}"
        db = tmp_path / f"again-{name}.db"
        hostile_copy(pydicom_test_files / name, target, patch)
        index_json(sia, db, target)
        status, _, body, _ = get(sia, db, frames_url(db, [1]), UNCOMPRESSED)
        assert status == 500 and b"header describes" in body, (name, body[:200])
