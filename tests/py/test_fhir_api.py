"""The FHIR API through `sia get --config`: ImagingStudy search and read in the patient
compartment, paging, _include, _summary, CapabilityStatement, smart-configuration and
OperationOutcome errors, validated with fhir.resources (R4B models)."""

import json

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.operationoutcome import OperationOutcome

from test_auth import AUD, ROOT, env, get, sign  # noqa: F401 (fixture)


def body(raw):
    return json.loads(raw)


def test_search_in_the_patient_compartment(sia, env):
    _, keys = env
    token = sign(keys)
    for patient in ["123", "Patient/123", f"{AUD}/Patient/123", "http://127.0.0.1:8080/fhir/Patient/123"]:
        status, fields, raw = get(sia, env, f"/fhir/ImagingStudy?patient={patient}", token)
        assert status == 200, (patient, raw[:300])
        assert fields["Content-Type"] == "application/fhir+json"
        b = body(raw)
        Bundle.model_validate(b)
        assert b["total"] == 2
        assert {e["resource"]["subject"]["reference"] for e in b["entry"]} == {"Patient/123"}
    # No patient parameter: filtered to the token's patient, not everyone's studies.
    status, _, raw = get(sia, env, "/fhir/ImagingStudy", token)
    assert status == 200 and body(raw)["total"] == 2
    # Another patient: 403 with an OperationOutcome, never an empty Bundle.
    for other in ["456", "Patient/456", "https://evil.example/fhir/Patient/123"]:
        status, _, raw = get(sia, env, f"/fhir/ImagingStudy?patient={other}", token)
        assert status == 403, other
        OperationOutcome.model_validate(body(raw))


def test_search_parameters_paging_and_include(sia, env):
    _, keys = env
    token = sign(keys)
    status, _, raw = get(sia, env, "/fhir/ImagingStudy?patient=123&_count=1&_include=ImagingStudy:endpoint", token)
    b = body(raw)
    assert status == 200 and b["total"] == 2
    assert [e["search"]["mode"] for e in b["entry"]] == ["match", "include"]
    nxt = [l["url"] for l in b["link"] if l["relation"] == "next"][0]
    status, _, raw = get(sia, env, nxt.split("http://127.0.0.1:8080", 1)[1], token)
    page2 = body(raw)
    assert page2["entry"][0]["resource"]["id"] != b["entry"][0]["resource"]["id"]
    assert any(l["relation"] == "previous" for l in page2["link"])
    queries = {
        f"identifier=urn:oid:{ROOT}.1": 1,
        f"identifier=urn:dicom:uid|urn:oid:{ROOT}.2": 1,
        "modality=CT": 1,
        "modality=http://dicom.nema.org/resources/ontology/DCM|US": 1,
        "started=ge2024-05-01": 1,
        "started=lt2024-05-01": 1,
        "started=2024-03-12": 1,
        "patient.identifier=SIA_DEMO|DEMO-001": 2,
        "_lastUpdated=gt2000-01-01": 2,
    }
    for q, n in queries.items():
        status, _, raw = get(sia, env, f"/fhir/ImagingStudy?{q}", token)
        assert status == 200 and body(raw)["total"] == n, (q, raw[:300])
    # A patient identifier that is not the token's patient is refused like patient=other
    # (issue 18: compartment parameters must all name the token's patient).
    status, _, raw = get(sia, env, "/fhir/ImagingStudy?patient.identifier=OTHER|DEMO-001", token)
    assert status == 403, raw[:300]
    status, _, raw = get(sia, env, "/fhir/ImagingStudy?_summary=count", token)
    assert body(raw)["total"] == 2 and "entry" not in body(raw)
    for bad in ["patient.identifier=DEMO-001", "identifier=1.2.3", "started=yesterday", "unknown=1", "_include=ImagingStudy:patient"]:
        status, _, raw = get(sia, env, f"/fhir/ImagingStudy?{bad}", token)
        assert status == 400, bad
        OperationOutcome.model_validate(body(raw))


def test_read_and_errors(sia, env):
    _, keys = env
    token = sign(keys)
    status, _, raw = get(sia, env, f"/fhir/ImagingStudy/{ROOT}.1", token)
    assert status == 200
    ImagingStudy.model_validate(body(raw))
    assert get(sia, env, f"/fhir/ImagingStudy/{ROOT}.3", token)[0] == 403
    assert get(sia, env, "/fhir/ImagingStudy/1.2.3", token)[0] == 404
    status, fields, raw = get(sia, env, "/fhir/ImagingStudy")
    assert status == 401 and fields["WWW-Authenticate"].startswith("Bearer")
    OperationOutcome.model_validate(body(raw))
    status, fields, _ = get(sia, env, "/fhir/ImagingStudy", sign(keys, scope="patient/ImagingStudy.r"))
    assert status == 403 and "insufficient_scope" in fields["WWW-Authenticate"]
    assert get(sia, env, "/fhir/Endpoint/dicom-wado-rs", token)[0] == 200


def test_capabilities_are_public(sia, env):
    status, _, raw = get(sia, env, "/fhir/metadata")
    assert status == 200
    cs = body(raw)
    CapabilityStatement.model_validate(cs)
    names = {p["name"] for p in cs["rest"][0]["resource"][0]["searchParam"]}
    assert names == {"patient", "subject", "identifier", "started", "modality", "_lastUpdated"}
    status, _, raw = get(sia, env, "/fhir/.well-known/smart-configuration")
    caps = body(raw)["capabilities"]
    assert status == 200 and {"smart-imaging-access", "permission-v1", "permission-v2"} <= set(caps)
