"""The demo data set is valid DICOM to pydicom, and `sia studies` is valid FHIR R4 to
fhir.resources."""

import json

import numpy as np
import pydicom
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.endpoint import Endpoint
from fhir.resources.R4B.imagingstudy import ImagingStudy

from conftest import db_rows, index_json, read_frames, run_sia


@pytest.fixture(scope="module")
def demo(sia, tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    run_sia(sia, "demo", base / "data")
    report = index_json(sia, base / "sia.db", base / "data")
    return base, report


def test_demo_is_indexed_completely(demo):
    base, report = demo
    assert report["indexed"] == 40
    assert report["skipped"] == [] and report["duplicates"] == []


def test_demo_files_decode_in_pydicom_to_the_indexed_frames(demo):
    base, _ = demo
    for path in sorted((base / "data").rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array  # decodes RLE with pydicom's own decoder
        kind, _, frames = read_frames(base / "sia.db", ds.SOPInstanceUID)
        n = int(ds.get("NumberOfFrames", 1))
        assert len(frames) == n
        if kind == "native":
            dtype = np.dtype(">u2" if ds.BitsAllocated == 16 and not ds.is_little_endian else f"<u{ds.BitsAllocated // 8}")
            ours = np.concatenate([np.frombuffer(f, dtype=dtype) for f in frames])
            assert np.array_equal(ours, pixels.reshape(-1)), path
        else:
            assert ds.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
            assert all(f.startswith(b"\x01\x00\x00\x00\x40\x00\x00\x00") for f in frames), path


def test_studies_bundle_is_valid_fhir_r4(sia, demo):
    base, _ = demo
    out = run_sia(sia, "studies", "--db", base / "sia.db", "--base-url", "https://pacs.example.org").stdout
    bundle = json.loads(out)
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset" and bundle["total"] == 4
    studies = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert len(studies) == 4
    for e in studies:
        study = ImagingStudy.model_validate(e["resource"])
        assert e["fullUrl"] == f"https://pacs.example.org/fhir/ImagingStudy/{study.id}"
        assert study.identifier[0].system == "urn:dicom:uid"
        assert study.identifier[0].value == f"urn:oid:{study.id}"
        assert study.endpoint[0].reference == "Endpoint/dicom-wado-rs"
        assert study.numberOfInstances == sum(s.numberOfInstances for s in study.series)
        assert study.numberOfSeries == len(study.series)
        for s in study.series:
            assert s.numberOfInstances == len(s.instance)
    (endpoint,) = [e for e in bundle["entry"] if e["search"]["mode"] == "include"]
    ep = Endpoint.model_validate(endpoint["resource"])
    assert ep.address == "https://pacs.example.org/dicom-web"
    assert ep.connectionType.code == "dicom-wado-rs"
    assert ep.extension[0].valueBoolean is True


def test_studies_for_one_patient(sia, demo):
    base, _ = demo
    out = run_sia(sia, "studies", "--db", base / "sia.db", "--patient-id", "DEMO-001", "--issuer", "SIA_DEMO").stdout
    bundle = json.loads(out)
    Bundle.model_validate(bundle)
    assert bundle["total"] == 2
    assert {e["resource"]["description"] for e in bundle["entry"] if e["search"]["mode"] == "match"} == {
        "CT CHEST",
        "US ABDOMEN",
    }
    out = run_sia(sia, "studies", "--db", base / "sia.db", "--patient-id", "DEMO-001", "--issuer", "OTHER").stdout
    assert json.loads(out)["total"] == 0


def test_utf8_names_survive(demo):
    base, _ = demo
    names = {r[0] for r in db_rows(base / "sia.db", "SELECT name FROM patients")}
    assert "Yamada^Tarou=山田^太郎" in names
