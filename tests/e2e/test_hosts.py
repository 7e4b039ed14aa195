"""Every host of the engine answers as the engine does: a server started from the demo set
(`sia serve`, or the host named by `SIA_SERVE_CMD`: the C++ PACS example, the Python ASGI
app) is asked every kind of FHIR, DICOMweb and WADO-URI request, and each answer must equal
the one `sia get` computes in-process on the same index: status, content type, and body
byte for byte (multipart boundaries aside, which are fresh per response).

The auth decision table over HTTP is tests/e2e/test_decisions_http.py; together they are
the subset every host runs unchanged."""

import re
import subprocess

import pytest
import requests

from _oauth import TIMEOUT
from conftest import Server, instance_uids

DICOM = 'multipart/related; type="application/dicom"'
OCTETS = 'multipart/related; type="application/octet-stream"'


@pytest.fixture(scope="module")
def served(sia, demo_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("hosts")
    s = Server(sia, work, [demo_dir, "--db", work / "sia.db"])
    yield s, work / "sia.db"
    s.stop()


def in_process(sia, server, db, target, headers):
    args = [str(sia), "get", "--db", str(db), "--base-url", server.base, target]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    proc = subprocess.run(args, capture_output=True, timeout=60)
    lines = proc.stderr.decode().splitlines()
    status = int(lines[0].split()[1])
    fields = {k.lower(): v for k, v in (l.split(": ", 1) for l in lines[1:] if ": " in l)}
    return status, fields, proc.stdout


def boundary_of(content_type):
    m = re.search(r'boundary="?([^";]+)"?', content_type or "")
    return m.group(1) if m else None


def normalised(content_type, body):
    """(content type, body) with a multipart boundary replaced by a fixed one."""
    b = boundary_of(content_type)
    if not b:
        return content_type, body
    return content_type.replace(b, "BOUNDARY"), body.replace(b.encode(), b"BOUNDARY")



def targets(all_uids):
    out = [
        ("/fhir/metadata", {}),
        ("/fhir/ImagingStudy", {}),
        ("/fhir/ImagingStudy?patient.identifier=DEMO-001", {}),
        ("/fhir/ImagingStudy?identifier=urn:oid:1.2.3", {}),
        ("/fhir/ImagingStudy?_count=1", {}),
        ("/fhir/ImagingStudy?unknown-param=1", {}),
        ("/fhir/ImagingStudy/nope", {}),
        ("/dicom-web/studies", {}),
        ("/dicom-web/studies?PatientID=DEMO-001&includefield=all", {}),
        ("/dicom-web/studies?PatientName=*&limit=1&offset=1", {}),
        ("/dicom-web/studies?StudyDate=19000101-", {}),
        ("/dicom-web/series?Modality=CT", {}),
        ("/dicom-web/instances?limit=3", {}),
        ("/dicom-web/studies?BadKey=1", {}),
        ("/dicom-web/studies/1.2.3/metadata", {}),
        ("/dicom-web/studies/1.2%2F..%2Fetc/series", {}),
        ("/dicom-web/nothing", {}),
        ("/wado?requestType=WADO&studyUID=1&seriesUID=2&objectUID=3", {}),
    ]
    seen_series = set()
    for s, se, i in all_uids:
        inst = f"/dicom-web/studies/{s}/series/{se}/instances/{i}"
        out += [
            (f"/fhir/ImagingStudy/{s}", {}),
            (f"{inst}/metadata", {}),
            (inst, {"Accept": DICOM}),
            (inst, {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}),
            (f"{inst}/frames/1", {}),
            (f"{inst}/frames/1", {"Accept": OCTETS + "; transfer-syntax=*"}),
            (f"{inst}/frames/1,1", {}),
            (f"{inst}/frames/999999", {}),
            (f"{inst}/frames/0", {}),
            (f"{inst}/bulkdata/7FE00010", {}),
            (f"{inst}/rendered", {}),
            (
                f"/wado?requestType=WADO&studyUID={s}&seriesUID={se}&objectUID={i}"
                "&contentType=application/dicom",
                {},
            ),
        ]
        if (s, se) not in seen_series:
            seen_series.add((s, se))
            out += [
                (f"/dicom-web/studies/{s}", {"Accept": DICOM}),
                (f"/dicom-web/studies/{s}/metadata", {}),
                (f"/dicom-web/studies/{s}/series", {}),
                (f"/dicom-web/studies/{s}/series/{se}", {"Accept": DICOM}),
                (f"/dicom-web/studies/{s}/series/{se}/metadata", {}),
                (f"/dicom-web/studies/{s}/series/{se}/instances", {}),
            ]
    return out


def test_every_answer_equals_the_engines_in_process_answer(sia, served):
    server, db = served
    all_uids = instance_uids(server)
    assert len(all_uids) >= 3
    failures = []
    for target, headers in targets(all_uids):
        r = requests.get(server.base + target, headers=headers, timeout=TIMEOUT)
        status, fields, body = in_process(sia, server, db, target, headers)
        got = normalised(r.headers.get("Content-Type"), r.content)
        want = normalised(fields.get("content-type"), body)
        if r.status_code != status:
            failures.append(f"{target} {headers}: status {r.status_code}, in-process {status}")
        elif status == 200 and got != want:
            failures.append(
                f"{target} {headers}: body differs ({got[0]!r}, {len(got[1])} B; "
                f"in-process {want[0]!r}, {len(want[1])} B)"
            )
        elif status != 200 and got[0] != want[0]:
            failures.append(f"{target} {headers}: content type {got[0]!r}, in-process {want[0]!r}")
    assert not failures, "\n".join(failures[:20])


def test_frames_and_instances_are_what_the_files_hold(served):
    """Not only equal to the engine: the stored bytes themselves (the demo set is native)."""
    import pydicom

    server, _ = served
    s, se, i = instance_uids(server)[0]
    inst = f"/dicom-web/studies/{s}/series/{se}/instances/{i}"
    r = server.get(inst, headers={"Accept": DICOM})
    assert r.status_code == 200
    b = boundary_of(r.headers["Content-Type"])
    part = r.content.split(b"--" + b.encode())[1]
    ds = pydicom.dcmread(__import__("io").BytesIO(part.split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n")))
    assert ds.SOPInstanceUID == i
    r = server.get(f"{inst}/frames/1", headers={"Accept": OCTETS + "; transfer-syntax=*"})
    assert r.status_code == 200
    frame_len = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
    assert ds.PixelData[:frame_len] in r.content


def test_unknown_route_and_method_give_the_engines_errors(sia, served):
    server, db = served
    r = requests.post(server.base + "/dicom-web/studies", data=b"x", timeout=TIMEOUT)
    assert r.status_code in (405, 415, 501), r.status_code
    r = requests.get(server.base + "/fhir/Patient/123", timeout=TIMEOUT)
    status, _, _ = in_process(sia, server, db, "/fhir/Patient/123", {})
    assert r.status_code == status


def test_a_range_request_leaves_a_keep_alive_connection_in_step(served):
    """Whatever a host makes of `Range` (the whole body, or the part asked for), it sends
    exactly what its own Content-Length says: a byte more would be read by a keep-alive
    client as the start of the next response (cpp-pacs once wrote to the body's end)."""
    import http.client

    server, _ = served
    s, se, i = instance_uids(server)[0]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        for rng in ("bytes=0-9", "bytes=100-", "bytes=-5"):
            conn.request(
                "GET",
                f"/dicom-web/studies/{s}/series/{se}/instances/{i}/frames/1",
                headers={"Accept": OCTETS + "; transfer-syntax=*", "Range": rng},
            )
            r = conn.getresponse()
            body = r.read()
            assert r.status in (200, 206), (rng, r.status)
            assert len(body) == int(r.headers["Content-Length"]), rng
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            assert (r.status, r.read().strip()) == (200, b"ok"), rng
    finally:
        conn.close()


def test_a_large_request_body_is_refused_not_buffered(served):
    """No route takes a body: a large one is answered 405 or 413 and the host goes on."""
    server, _ = served
    r = requests.post(
        server.base + "/dicom-web/studies", data=b"x" * (8 << 20), timeout=TIMEOUT
    )
    assert r.status_code in (405, 413), r.status_code
    assert requests.get(server.base + "/healthz", timeout=TIMEOUT).status_code == 200
