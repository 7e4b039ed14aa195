"""Issue 14: inputs from the field, written with pydicom and checked against pydicom's
reading of them through `sia index` and `sia get`."""

import json
import subprocess
from email.parser import BytesParser
from email.policy import HTTP

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels.utils import get_nr_frames
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, RLELossless, generate_uid

from conftest import index_json

STUDY, SERIES = "1.2.826.0.1.3680043.10.14.1", "1.2.826.0.1.3680043.10.14.1.1"


def base_dataset(sop, transfer_syntax=ExplicitVRLittleEndian):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = sop
    ds.PatientID = "P14"
    ds.PatientName = "Field^Fault"
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = SERIES
    ds.Modality = "OT"
    return ds


def image_2x2(ds, number_of_frames, pixel_data):
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    if number_of_frames is not None:
        ds.NumberOfFrames = number_of_frames
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = pixel_data
    return ds


def sia_get(sia, db, target, *headers):
    args = [str(sia), "get", "--db", str(db), target]
    for h in headers:
        args += ["-H", h]
    proc = subprocess.run(args, capture_output=True, timeout=120)
    lines = proc.stderr.decode().splitlines()
    status = int(lines[0].split()[1])
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return status, fields, proc.stdout


def multipart_payloads(content_type, body):
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    assert msg.is_multipart(), content_type
    return [p.get_payload(decode=True) for p in msg.iter_parts()]


def instance_path(sop, study=STUDY, series=SERIES):
    return f"/dicom-web/studies/{study}/series/{series}/instances/{sop}"


def served_frames(sia, db, sop, n):
    status, fields, body = sia_get(sia, db, f"{instance_path(sop)}/frames/{','.join(map(str, range(1, n + 1)))}", "Accept: */*")
    assert status == 200, (status, body[:300])
    return multipart_payloads(fields["Content-Type"], body)


@pytest.mark.parametrize("nof", [0, None, "", "0"])
def test_degenerate_number_of_frames_native_matches_pydicom(sia, tmp_path, nof):
    sop = generate_uid()
    ds = image_2x2(base_dataset(sop), nof, b"\x01\x02\x03\x04")
    path = tmp_path / "nof.dcm"
    ds.save_as(path, enforce_file_format=True)
    db = tmp_path / "i.db"
    assert index_json(sia, db, path)["indexed"] == 1
    back = pydicom.dcmread(path)
    n = get_nr_frames(back, warn=False)
    assert n == 1
    assert served_frames(sia, db, sop, n) == [back.PixelData]


def test_number_of_frames_zero_encapsulated_matches_pydicom(sia, tmp_path):
    sop = generate_uid()
    ds = image_2x2(base_dataset(sop, RLELossless), 0, encapsulate([b"ab", b"cd", b"ef"], has_bot=False))
    path = tmp_path / "nof0.dcm"
    ds.save_as(path, enforce_file_format=True)
    db = tmp_path / "i.db"
    assert index_json(sia, db, path)["indexed"] == 1
    back = pydicom.dcmread(path)
    n = get_nr_frames(back, warn=False)
    expected = list(generate_frames(back.PixelData, number_of_frames=n))
    assert served_frames(sia, db, sop, n) == expected == [b"abcdef"]


@pytest.mark.parametrize("nof", [3, 0])
def test_deflated_frames_match_pydicom(sia, tmp_path, nof):
    sop = generate_uid()
    pixels = bytes(range(1, 13))
    ds = image_2x2(base_dataset(sop, DeflatedExplicitVRLittleEndian), nof, pixels)
    path = tmp_path / "dfl.dcm"
    ds.save_as(path, enforce_file_format=True)
    db = tmp_path / "i.db"
    assert index_json(sia, db, path)["indexed"] == 1
    back = pydicom.dcmread(path)
    assert back.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    n = get_nr_frames(back, warn=False)
    expected = [back.PixelData[i * 4 : (i + 1) * 4] for i in range(n)]
    assert served_frames(sia, db, sop, n) == expected


def test_hexadecimal_uids_are_indexed_reported_and_served(sia, tmp_path):
    import hashlib

    study, series, sop = (hashlib.sha256(s.encode()).hexdigest() for s in ("study", "series", "sop"))
    ds = image_2x2(base_dataset(sop), None, b"\x01\x02\x03\x04")
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    path = tmp_path / "anon.dcm"
    ds.save_as(path, enforce_file_format=True)
    db = tmp_path / "i.db"
    report = index_json(sia, db, path)
    assert report["indexed"] == 1 and report["skipped"] == []
    assert sorted((u["attribute"], u["uid"]) for u in report["nonconformant_uids"]) == sorted(
        [("StudyInstanceUID", study), ("SeriesInstanceUID", series), ("SOPInstanceUID", sop)]
    )
    status, _, body = sia_get(sia, db, f"{instance_path(sop, study, series)}/metadata")
    assert status == 200
    meta = json.loads(body)[0]
    back = pydicom.dcmread(path)
    assert meta["0020000D"]["Value"] == [back.StudyInstanceUID]
    assert meta["00080018"]["Value"] == [back.SOPInstanceUID]
    status, _, body = sia_get(sia, db, f"/dicom-web/studies/{study}/series")
    assert status == 200 and json.loads(body)[0]["0020000E"]["Value"] == [series]
    assert sia_get(sia, db, "/dicom-web/studies/../etc/passwd")[0] == 400


@pytest.mark.parametrize(
    "charset, name",
    [
        ("ISO IR 192", "Müller^Zoë"),
        ("ISO-IR 192", "Müller^Zoë"),
        ("ISO IR 100", "Buc^Jérôme"),
        ("ISO-IR 144", "Люкceмбypг^Иван"),
        ("ISO IR 126", "Διονυσιος"),
    ],
)
def test_misspelt_charsets_decode_as_pydicom(sia, tmp_path, charset, name):
    sop = generate_uid()
    ds = base_dataset(sop)
    ds.SpecificCharacterSet = charset
    defined = pydicom.charset.python_encoding[charset.replace("-", "_").replace("ISO IR", "ISO_IR")]
    ds.add_new(0x00100010, "PN", name.encode(defined))
    path = tmp_path / "cs.dcm"
    ds.save_as(path, enforce_file_format=True)
    back = pydicom.dcmread(path)
    expected = str(back.PatientName)
    assert expected == name  # pydicom's own reading of the misspelt term
    db = tmp_path / "i.db"
    report = index_json(sia, db, path)
    assert report["normalized_charsets"] == [{"path": str(path), "value": charset}]
    status, _, body = sia_get(sia, db, f"{instance_path(sop)}/metadata")
    assert status == 200
    assert json.loads(body)[0]["00100010"]["Value"][0]["Alphabetic"] == expected
    status, _, body = sia_get(sia, db, "/dicom-web/studies?PatientID=P14")
    assert status == 200 and json.loads(body)[0]["00100010"]["Value"][0]["Alphabetic"] == expected


def test_misspelt_iso2022_term_decodes_as_pydicom(sia, tmp_path):
    sop = generate_uid()
    ds = base_dataset(sop)
    ds.SpecificCharacterSet = ["", "ISO-2022-IR-87"]
    raw = b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"
    ds.add_new(0x00100010, "PN", raw)
    path = tmp_path / "jp.dcm"
    ds.save_as(path, enforce_file_format=True)
    back = pydicom.dcmread(path)
    expected = str(back.PatientName)
    assert expected == "Yamada^Tarou=山田^太郎=やまだ^たろう"
    db = tmp_path / "i.db"
    report = index_json(sia, db, path)
    assert [c["path"] for c in report["normalized_charsets"]] == [str(path)]
    status, _, body = sia_get(sia, db, f"{instance_path(sop)}/metadata")
    pn = json.loads(body)[0]["00100010"]["Value"][0]
    assert "=".join([pn["Alphabetic"], pn["Ideographic"], pn["Phonetic"]]) == expected


def test_stray_delimiter_in_a_defined_length_sequence_reads_as_pydicom(sia, tmp_path):
    import struct

    sop = generate_uid()
    ds = base_dataset(sop)
    path = tmp_path / "stray.dcm"
    ds.save_as(path, enforce_file_format=True)

    def explicit(group, elem, vr, value):
        return struct.pack("<HH2sH", group, elem, vr, len(value)) + value

    item = explicit(0x2001, 0x1060, b"SH", b"ABCD")
    sequence = struct.pack("<HH", 0xFFFE, 0xE000) + struct.pack("<I", len(item)) + item
    sequence += struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    raw = explicit(0x2001, 0x0010, b"LO", b"SIA TEST")
    raw += struct.pack("<HH2s2xI", 0x2001, 0x105F, b"SQ", len(sequence)) + sequence
    raw += explicit(0x2001, 0x1061, b"SH", b"AFTER ")
    with open(path, "ab") as f:
        f.write(raw)
    theirs = pydicom.dcmread(path).to_json_dict()
    assert theirs["2001105F"] == {"vr": "SQ", "Value": [{"20011060": {"vr": "SH", "Value": ["ABCD"]}}]}
    db = tmp_path / "i.db"
    assert index_json(sia, db, path)["indexed"] == 1
    for target in [f"{instance_path(sop)}/metadata", f"/dicom-web/studies/{STUDY}/metadata"]:
        status, _, body = sia_get(sia, db, target)
        assert status == 200, (target, body[:300])
        ours = json.loads(body)[0]
        for tag in ("2001105F", "20011061", "00100010", "0020000D"):
            assert ours[tag] == theirs[tag], tag


@pytest.mark.parametrize("tail", [1, 5, 7])
def test_trailing_bytes_shorter_than_a_header_are_ignored_as_pydicom_does(sia, tmp_path, tail):
    sop = generate_uid()
    path = tmp_path / "tail.dcm"
    base_dataset(sop).save_as(path, enforce_file_format=True)
    with open(path, "ab") as f:
        f.write(b"\xab" * tail)
    theirs = pydicom.dcmread(path).to_json_dict()
    db = tmp_path / "i.db"
    assert index_json(sia, db, path)["indexed"] == 1
    status, _, body = sia_get(sia, db, f"{instance_path(sop)}/metadata")
    assert status == 200
    ours = json.loads(body)[0]
    assert {k: v for k, v in ours.items()} == {k: v for k, v in theirs.items() if not k.startswith("0002")}
