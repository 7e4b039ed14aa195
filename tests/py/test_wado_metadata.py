"""WADO-RS metadata (DICOM JSON) checked attribute by attribute against pydicom's
`Dataset.to_json_dict` on pydicom's own test files.

Intentional differences, skipped by the comparison:
- pydicom reads an explicit `UN` element of a known tag with the dictionary VR
  (`config.replace_un_with_known_vr`); PS3.18 F.2 keeps the source VR, and so does sia.
- Group length elements (gggg,0000) are in pydicom's output when the file has them;
  PS3.18 F.2.2 says they "shall not be included", and sia leaves them out.
- IS/DS: sia writes the file's digits as the JSON number; pydicom converts through
  int/float. They are compared as numbers.
- Padding: sia trims the insignificant leading and trailing spaces of each value of a
  multi-valued string (PS3.5 6.2); pydicom keeps them inside multi-values
  (`"DERIVED "`). Strings are compared without that padding.
"""

import json
import math
import subprocess

import pydicom
import pytest

from conftest import the_instance, transfer_syntax


def fetch_metadata(sia, db, study, series, sop):
    target = f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/metadata"
    proc = subprocess.run([str(sia), "get", "--db", str(db), target], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def same_number(a, b):
    try:
        fa, fb = float(a), float(b)
    except (TypeError, ValueError):
        return a == b
    return fa == fb or (math.isnan(fa) and math.isnan(fb)) or math.isclose(fa, fb, rel_tol=1e-6)


def compare(ours, theirs, path, problems):
    for tag, t in theirs.items():
        if tag.endswith("0000"):
            continue
        where = f"{path}{tag}"
        o = ours.get(tag)
        if o is None:
            problems.append(f"{where}: missing")
            continue
        if o["vr"] == "UN" or t["vr"] == "UN":
            continue
        if o["vr"] != t["vr"]:
            problems.append(f"{where}: vr {o['vr']} != {t['vr']}")
            continue
        if "BulkDataURI" in t or "InlineBinary" in t:
            if "BulkDataURI" not in o:
                problems.append(f"{where}: no BulkDataURI")
            continue
        tv, ov = t.get("Value"), o.get("Value")
        if tv is None or ov is None:
            if (tv or None) != (ov or None) and not (tv in (None, [], [None], [""]) and ov in (None, [None])):
                problems.append(f"{where}: Value {ov!r} != {tv!r}")
            continue
        if t["vr"] == "SQ":
            if len(tv) != len(ov):
                problems.append(f"{where}: {len(ov)} items != {len(tv)}")
                continue
            for i, (oi, ti) in enumerate(zip(ov, tv)):
                compare(oi, ti, f"{where}/{i}/", problems)
            continue
        if len(tv) != len(ov):
            problems.append(f"{where}: {ov!r} != {tv!r}")
            continue
        for a, b in zip(ov, tv):
            if t["vr"] in ("DS", "IS", "FL", "FD"):
                ok = same_number(a, b)
            elif t["vr"] == "PN":
                ok = (a or {}) == {k: v for k, v in (b or {}).items() if v}
            else:
                ok = a == b or (a is None and b == "") or (isinstance(b, str) and a == b.strip(" "))
            if not ok:
                problems.append(f"{where}: {a!r} != {b!r}")
    extra = {k for k in ours if k not in theirs}
    for tag in sorted(extra):
        problems.append(f"{path}{tag}: not in pydicom's output")


def test_metadata_matches_pydicom(sia, per_file_index):
    checked, problems = 0, {}
    for path, (db, report) in per_file_index.items():
        if report["indexed"] != 1:
            continue
        try:
            ds = pydicom.dcmread(path, force=True)
            theirs = ds.to_json_dict(bulk_data_threshold=0, bulk_data_element_handler=lambda e: "uri")
        except Exception:
            continue  # pydicom cannot serialise this file; nothing to compare with
        study, series, sop = the_instance(db)
        (ours,) = fetch_metadata(sia, db, study, series, sop)
        mine = []
        compare(ours, theirs, "", mine)
        if mine:
            problems[path.name] = mine
        checked += 1
    assert checked >= 80
    assert not problems, json.dumps(problems, indent=1, ensure_ascii=False)[:6000]


def bulk_uris(obj, out):
    for attr in obj.values():
        if "BulkDataURI" in attr:
            out.append((attr["vr"], attr["BulkDataURI"]))
        for item in attr.get("Value", []) if attr.get("vr") == "SQ" else []:
            bulk_uris(item, out)
    return out


def test_every_bulkdata_uri_is_served(sia, per_file_index):
    """Each BulkDataURI in the metadata answers 200 with the element's bytes (little
    endian), checked against pydicom for the root-level ones."""
    served = 0
    for path, (db, report) in per_file_index.items():
        if report["indexed"] != 1:
            continue
        study, series, sop = the_instance(db)
        (meta,) = fetch_metadata(sia, db, study, series, sop)
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception:
            ds = None
        for vr, uri in bulk_uris(meta, []):
            target = uri.split("http://127.0.0.1:8080", 1)[1]
            proc = subprocess.run(
                [str(sia), "get", "--db", str(db), target, "-H", "Accept: application/octet-stream"],
                capture_output=True, timeout=60,
            )
            status = int(proc.stderr.decode().split()[1])
            tag = uri.rsplit("/", 1)[1]
            if tag == "7FE00010":
                # Pixel Data: the whole native value, or (compressed) its frames decoded
                # for this Accept; a 500 only for a codestream pydicom cannot decode either.
                assert status in (200, 406, 500), (path.name, status)
                if status == 500:
                    assert b"cannot be decoded" in proc.stdout, (path.name, proc.stdout[:300])
                    try:
                        ds.pixel_array
                    except Exception:
                        pass
                    else:
                        raise AssertionError(f"{path.name}: pydicom decodes what sia calls damaged")
                served += 1
                continue
            assert status == 200, (path.name, uri, proc.stderr[:300])
            if ds is not None and "/" not in uri.split("/bulkdata/", 1)[1] and ds.is_little_endian:
                elem = ds.get(int(tag, 16))
                if elem is not None and isinstance(elem.value, bytes):
                    value = elem.value
                    assert proc.stdout[: len(value)] == value, (path.name, tag)
            served += 1
    assert served >= 100, served
