"""WADO-RS frames through the engine's router (`sia get`): every frame of every pydicom
test file is byte-identical to pydicom's, in little endian (deflated files inflated),
parsed out of the multipart body by Python's own email package."""

import subprocess
from email.parser import BytesParser
from email.policy import HTTP

import pydicom
import pytest

from conftest import the_instance, native_frames, reference_frames, transfer_syntax


def get(sia, db, target, *headers):
    args = [str(sia), "get", "--db", str(db), target]
    for h in headers:
        args += ["-H", h]
    proc = subprocess.run(args, capture_output=True, timeout=120)
    lines = proc.stderr.decode().splitlines()
    status = int(lines[0].split()[1])
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return status, fields, proc.stdout, proc.returncode


def parse_multipart(content_type, body):
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    assert msg.is_multipart(), content_type
    return [
        ((p.get_content_type(), p.get_param("transfer-syntax")), p["Content-Location"], p.get_payload(decode=True))
        for p in msg.iter_parts()
    ]


def little_endian_frames(ds, n):
    """What the frames resource must send for native frames: little-endian bytes. A
    big-endian OW value is swapped in 16-bit words, or whole samples when they are wider
    (pydicom reads it so); OB is a byte stream."""
    data = ds.PixelData
    if not ds.is_little_endian and ds["PixelData"].VR != "OB":
        unit = max(2, ds.BitsAllocated // 8)
        data = b"".join(data[i : i + unit][::-1] for i in range(0, len(data) - len(data) % unit, unit))
    return native_frames(ds, data, n)


def test_every_frame_of_every_pydicom_file(sia, per_file_index):
    checked = {"native": 0, "encapsulated": 0}
    for path, (db, report) in per_file_index.items():
        if report["indexed"] != 1:
            continue
        ds = pydicom.dcmread(path, force=True)
        if "PixelData" not in ds:
            continue
        kind, expected = reference_frames(ds)
        if kind is None:
            continue
        study, series, sop = the_instance(db)
        # Ask for every frame, last first, to check order is kept.
        order = list(range(len(expected), 0, -1))
        target = f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/{','.join(map(str, order))}"
        status, fields, body, rc = get(sia, db, target, "Accept: */*")
        assert status == 200 and rc == 0, (path.name, status, body[:200])
        parts = parse_multipart(fields["Content-Type"], body)
        assert len(parts) == len(order), path.name
        if kind == "native":
            expected = little_endian_frames(ds, len(expected))
        for n, (ctype, location, payload) in zip(order, parts):
            assert location.endswith(f"/instances/{sop}/frames/{n}"), location
            want = bytes(expected[n - 1])
            if kind == "native":
                assert ctype == ("application/octet-stream", "1.2.840.10008.1.2.1")
            else:
                assert ctype[1] == transfer_syntax(ds)
            assert payload == want, f"{path.name}: frame {n} differs"
        checked[kind] += 1
    assert checked["native"] >= 30 and checked["encapsulated"] >= 30, checked


@pytest.fixture(scope="module")
def demo_db(sia, tmp_path_factory):
    base = tmp_path_factory.mktemp("wado")
    subprocess.run([str(sia), "demo", str(base / "d")], check=True, capture_output=True)
    subprocess.run([str(sia), "index", "--db", str(base / "d.db"), str(base / "d")], check=True, capture_output=True)
    return base / "d.db"


ROOT = "2.25.228146457203842916711418316839742735"
CINE = f"/dicom-web/studies/{ROOT}.2/series/{ROOT}.2.1/instances/{ROOT}.2.1.1"
RLE = f"/dicom-web/studies/{ROOT}.2/series/{ROOT}.2.2/instances/{ROOT}.2.2.1"


def test_statuses(sia, demo_db):
    assert get(sia, demo_db, f"{CINE}/frames/0")[0] == 400
    assert get(sia, demo_db, f"{CINE}/frames/2,2")[0] == 400
    assert get(sia, demo_db, f"{CINE}/frames/99")[0] == 404
    status, fields, body, _ = get(sia, demo_db, f"{CINE}/frames/1,99")
    assert status == 206 and "99" in fields["Warning"]
    assert len(parse_multipart(fields["Content-Type"], body)) == 1
    assert get(sia, demo_db, f"{CINE}/frames/1", "Accept: image/jpeg")[0] == 406
    # Uncompressed frames of an RLE instance are decoded (test_pixels.py checks the
    # bytes); a compressed syntax sia cannot produce is 406.
    assert get(sia, demo_db, f"{RLE}/frames/1", "Accept: multipart/related; type=application/octet-stream")[0] == 200
    jpeg = "Accept: multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.50"
    assert get(sia, demo_db, f"{RLE}/frames/1", jpeg)[0] == 406
    assert get(sia, demo_db, f"/dicom-web/studies/{ROOT}.1/series/{ROOT}.2.1/instances/{ROOT}.2.1.1/frames/1")[0] == 404
    assert get(sia, demo_db, "/dicom-web/studies/1.2.3/../../etc/passwd")[0] == 400
    assert get(sia, demo_db, f"{CINE}/frames/1", "Accept: multipart/related; type=\"unclosed")[0] == 400


def test_ohif_accept_gets_compressed_frames_as_octet_stream(sia, demo_db):
    status, fields, body, _ = get(
        sia, demo_db, f"{RLE}/frames/2", "Accept: multipart/related; type=application/octet-stream; transfer-syntax=*"
    )
    assert status == 200
    (ctype, _, payload), = parse_multipart(fields["Content-Type"], body)
    assert ctype == ("application/octet-stream", "1.2.840.10008.1.2.5")
    assert payload[:8] == b"\x01\x00\x00\x00\x40\x00\x00\x00"  # an RLE header: one segment at 64


def test_single_part_for_one_native_frame(sia, demo_db):
    status, fields, body, _ = get(sia, demo_db, f"{CINE}/frames/3", "Accept: application/octet-stream")
    assert status == 200
    assert fields["Content-Type"] == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    assert len(body) == 64 * 64 and fields["Content-Location"].endswith("/frames/3")
