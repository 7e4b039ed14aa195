"""Every pydicom test file is indexed or skipped with a reason, and every frame the
index locates is byte-identical to what pydicom finds."""

import pathlib

import pydicom
import pytest

from conftest import all_files, db_rows, index_json, read_frames, reference_frames, transfer_syntax

# Files pydicom reads but sia refuses, each with the reason it is right to refuse.
EXPECTED_SKIPS = {
    # The Pixel Data element declares more bytes than the file holds.
    "MR_truncated.dcm": "truncated",
    "rtplan_truncated.dcm": "truncated",
    # No Study Instance UID / SOP Instance UID: nothing to file the instance under.
    "JPEGLSNearLossless_08.dcm": "Study Instance UID",
    "JPEGLSNearLossless_16.dcm": "Study Instance UID",
    "SC_rgb_jls_lossy_line.dcm": "Study Instance UID",
    "SC_rgb_jls_lossy_sample.dcm": "Study Instance UID",
    "UN_sequence.dcm": "SOP Instance UID",
    "empty_charset_LEI.dcm": "SOP Instance UID",
    "meta_missing_tsyntax.dcm": "SOP Instance UID",
    "nested_priv_SQ.dcm": "SOP Instance UID",
    "no_meta_group_length.dcm": "SOP Instance UID",
    "priv_SQ.dcm": "SOP Instance UID",
    "no_meta.dcm": "not DICOM",
}


def test_whole_folder_is_indexed_or_skipped_with_reason(sia, pydicom_test_files, tmp_path):
    report = index_json(sia, tmp_path / "all.db", pydicom_test_files)
    files = all_files(pydicom_test_files)
    accounted = report["indexed"] + len(report["duplicates"]) + len(report["skipped"]) + len(report["conflicts"])
    assert accounted == len(files)
    for s in report["skipped"]:
        assert s["reason"], s
    # Duplicates are real: the kept file has the same SOP Instance UID.
    for d in report["duplicates"]:
        kept = db_rows(
            tmp_path / "all.db",
            "SELECT f.path FROM instances i JOIN files f ON f.id = i.file WHERE i.sop_instance_uid = ?",
            d["sop_instance_uid"],
        )
        assert len(kept) == 1 and kept[0][0] < d["path"]


def test_skips_are_the_expected_ones(per_file_index):
    for path, (db, report) in per_file_index.items():
        if not report["skipped"]:
            continue
        reason = report["skipped"][0]["reason"]
        try:
            ds = pydicom.dcmread(path)
            pydicom_reads = "SOPInstanceUID" in ds or "PixelData" in ds
        except Exception:
            pydicom_reads = False
        if pydicom_reads and "DICOMDIR" not in reason:
            assert path.name in EXPECTED_SKIPS, f"{path.name}: sia skipped ({reason}) but pydicom reads it"
            assert EXPECTED_SKIPS[path.name] in reason, (path.name, reason)


def test_frames_match_pydicom(per_file_index):
    compared = {"native": 0, "encapsulated": 0}
    for path, (db, report) in per_file_index.items():
        if report["indexed"] != 1:
            continue
        ds = pydicom.dcmread(path, force=True)
        if "PixelData" not in ds:
            continue
        uid = db_rows(db, "SELECT sop_instance_uid FROM instances")[0][0]
        ours = read_frames(db, uid)
        if transfer_syntax(ds) == pydicom.uid.DeflatedExplicitVRLittleEndian:
            assert ours[0] == "deflated", path.name
            continue
        kind, expected = reference_frames(ds)
        if kind is None:
            continue
        assert ours[0] == kind, path.name
        assert len(ours[2]) == len(expected), f"{path.name}: {len(ours[2])} frames, pydicom {len(expected)}"
        for i, (a, b) in enumerate(zip(ours[2], expected)):
            assert a == bytes(b), f"{path.name}: frame {i + 1} differs"
        compared[kind] += 1
    # The suite has dozens of each; a collapse to zero would hide a broken locator.
    assert compared["native"] >= 30 and compared["encapsulated"] >= 30, compared


def test_character_sets_match_pydicom(per_file_index, pydicom_test_files):
    checked = 0
    for path, (db, report) in per_file_index.items():
        if "charset_files" not in path.parts or report["indexed"] != 1:
            continue
        ds = pydicom.dcmread(path)
        if "PatientName" not in ds:
            continue
        expected = str(ds.PatientName).strip(" \x00")
        ours = db_rows(db, "SELECT name FROM patients")[0][0]
        assert ours == expected, f"{path.name}: {ours!r} != pydicom {expected!r}"
        checked += 1
    assert checked >= 10
