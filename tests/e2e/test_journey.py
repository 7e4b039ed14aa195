"""The seed's journey over HTTP with real, unmodified client libraries against
`sia serve DEMO --dev`: authlib drives the SMART authorization-code + PKCE flow at the
development EHR, requests reads `Patient/{id}` there and `ImagingStudy?patient=` at the
imaging server, and dicomweb-client retrieves studies, series, instances, metadata and
frames at the ImagingStudy's Endpoint address with the bearer token — frames byte-equal
to pydicom's. Every FHIR resource on the way is validated with fhir.resources (R4B)."""

import base64
import html
import json
import os
import re
import subprocess
import urllib.parse

import pytest
import requests
from authlib.integrations.requests_client import OAuthError
from dicomweb_client.api import DICOMwebClient

from _oauth import (
    REDIRECT_URI,
    SCOPE,
    TIMEOUT,
    authorize,
    demo_files,
    fhir_json,
    introspection_client,
    links,
    login,
    oauth_session,
    reference_frames,
)
from conftest import DEMO_ROOT


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def query_of(location: str) -> dict:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def dicomweb(address: str, access_token: str | None) -> DICOMwebClient:
    session = requests.Session()
    if access_token:
        session.headers["Authorization"] = f"Bearer {access_token}"
    return DICOMwebClient(url=address, session=session)


def endpoint_address(bundle: dict) -> str:
    """The DICOMweb address of the Endpoint every ImagingStudy of `bundle` references."""
    studies = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ImagingStudy"]
    endpoints = {
        f"Endpoint/{e['resource']['id']}": e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Endpoint"
    }
    assert studies and endpoints, bundle
    addresses = set()
    for s in studies:
        for ref in s["endpoint"]:
            ep = endpoints[ref["reference"]]
            assert ep["connectionType"]["code"] == "dicom-wado-rs"
            assert ep["status"] == "active"
            addresses.add(ep["address"])
    assert len(addresses) == 1, addresses
    return addresses.pop()


def test_smart_configuration_of_the_dev_ehr_and_the_imaging_server(dev_server):
    base = dev_server.base
    r = requests.get(f"{base}/dev/fhir/.well-known/smart-configuration", timeout=TIMEOUT)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    conf = r.json()
    assert conf["issuer"] == f"{base}/dev/fhir"
    assert conf["authorization_endpoint"] == f"{base}/dev/authorize"
    assert conf["token_endpoint"] == f"{base}/dev/token"
    assert conf["introspection_endpoint"] == f"{base}/dev/introspect"
    assert conf["code_challenge_methods_supported"] == ["S256"]
    assert "plain" not in conf["code_challenge_methods_supported"]
    assert {"authorization_code", "refresh_token"} <= set(conf["grant_types_supported"])
    assert conf["response_types_supported"] == ["code"]
    assert {"launch/patient", "offline_access", "patient/ImagingStudy.rs", "patient/Patient.rs"} <= set(
        conf["scopes_supported"]
    )
    assert {"launch-standalone", "client-public", "context-standalone-patient", "permission-offline", "permission-v2"} <= set(
        conf["capabilities"]
    )
    assert {"url": f"{base}/fhir", "capabilities": ["smart-imaging-access"]} in conf["associated_endpoints"]
    # The keys it signs with are published where it says.
    jwks = requests.get(conf["jwks_uri"], timeout=TIMEOUT).json()
    assert [k["kty"] for k in jwks["keys"]] == ["EC"] and all("d" not in k for k in jwks["keys"])
    # The imaging server's own SMART configuration points at its DICOMweb endpoint.
    r = requests.get(f"{base}/fhir/.well-known/smart-configuration", timeout=TIMEOUT)
    assert r.status_code == 200
    imaging = r.json()
    assert "smart-imaging-access" in imaging["capabilities"]
    assert {"url": f"{base}/dicom-web", "capabilities": ["smart-imaging-access"]} in imaging["associated_endpoints"]


def test_capability_statements_of_the_dev_ehr_and_the_imaging_server_validate(dev_server):
    base = dev_server.base
    ehr = fhir_json(requests.get(f"{base}/dev/fhir/metadata", timeout=TIMEOUT), "CapabilityStatement")
    assert [r["type"] for r in ehr["rest"][0]["resource"]] == ["Patient"]
    oauth = ehr["rest"][0]["security"]["extension"][0]["extension"]
    assert {e["url"]: e["valueUri"] for e in oauth} == {
        "authorize": f"{base}/dev/authorize",
        "token": f"{base}/dev/token",
        "introspect": f"{base}/dev/introspect",
    }
    imaging = fhir_json(requests.get(f"{base}/fhir/metadata", timeout=TIMEOUT), "CapabilityStatement")
    assert "ImagingStudy" in [r["type"] for r in imaging["rest"][0]["resource"]]


def test_seed_journey_with_authlib_pkce_fhir_and_dicomweb_client(dev_server, demo_dir):
    base = dev_server.base
    # 1-2. Authorization code + PKCE (S256) with authlib, patient chosen in the query.
    session = oauth_session(dev_server, scope=SCOPE)
    url, verifier, state, resp = authorize(dev_server, session, "DEMO-001")
    sent = query_of(url)
    assert sent["code_challenge_method"] == "S256" and sent["code_challenge"] and "code_verifier" not in sent
    assert resp.status_code == 302, resp.text
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    back = query_of(location)
    assert back["state"] == state and back["code"]
    token = session.fetch_token(
        f"{base}/dev/token", authorization_response=location, code_verifier=verifier, timeout=TIMEOUT
    )
    assert token["token_type"] == "Bearer" and token["patient"] == "DEMO-001"
    assert token["scope"] == SCOPE and token["expires_in"] > 0
    assert "refresh_token" not in token  # no offline_access asked for
    claims = jwt_claims(token["access_token"])
    assert claims["iss"] == f"{base}/dev/fhir" and claims["patient"] == "DEMO-001"
    assert f"{base}/fhir" in claims["aud"] and claims["client_id"] == "my-app"
    access = token["access_token"]

    # 3. GET Patient/{id} at the EHR (authlib's session sends the bearer token itself).
    r = session.get(f"{base}/dev/fhir/Patient/DEMO-001", timeout=TIMEOUT)
    patient = fhir_json(r, "Patient")
    ds = next(iter(demo_files(demo_dir, "DEMO-001").values()))
    family, given = ds.PatientName.family_name, ds.PatientName.given_name
    assert patient["id"] == "DEMO-001"
    assert patient["name"][0]["family"] == family and patient["name"][0]["given"] == [given]
    dob = ds.PatientBirthDate
    assert patient["birthDate"] == f"{dob[:4]}-{dob[4:6]}-{dob[6:]}"
    assert patient["gender"] == {"F": "female", "M": "male"}[ds.PatientSex]
    assert {"system": ds.IssuerOfPatientID, "value": "DEMO-001"}.items() <= patient["identifier"][0].items()
    # ... and by identifier, as a searchset Bundle.
    r = session.get(
        f"{base}/dev/fhir/Patient", params={"identifier": f"{ds.IssuerOfPatientID}|DEMO-001"}, timeout=TIMEOUT
    )
    found = fhir_json(r, "Bundle")
    assert found["total"] == 1 and found["entry"][0]["resource"]["id"] == "DEMO-001"

    # 4. GET ImagingStudy?patient=Patient/{id} at the imaging server.
    r = requests.get(
        f"{base}/fhir/ImagingStudy", params={"patient": "Patient/DEMO-001"}, headers=bearer(access), timeout=TIMEOUT
    )
    bundle = fhir_json(r, "Bundle")
    assert bundle["type"] == "searchset" and bundle["total"] == 2
    studies = {e["resource"]["id"]: e["resource"] for e in bundle["entry"]}
    assert set(studies) == {f"{DEMO_ROOT}.1", f"{DEMO_ROOT}.2"}
    assert all(s["subject"]["identifier"]["value"] == "DEMO-001" for s in studies.values())
    assert all(s["endpoint"] == [{"reference": "Endpoint/dicom-wado-rs"}] for s in studies.values())
    # The Endpoint the studies reference, included in the Bundle.
    r = requests.get(
        f"{base}/fhir/ImagingStudy",
        params={"patient": "Patient/DEMO-001", "_include": "ImagingStudy:endpoint"},
        headers=bearer(access),
        timeout=TIMEOUT,
    )
    included = fhir_json(r, "Bundle")
    assert [e["search"]["mode"] for e in included["entry"]].count("include") == 1
    address = endpoint_address(included)
    assert address == f"{base}/dicom-web"
    # A single study read validates too.
    one = fhir_json(
        requests.get(f"{base}/fhir/ImagingStudy/{DEMO_ROOT}.2", headers=bearer(access), timeout=TIMEOUT),
        "ImagingStudy",
    )
    assert one["numberOfInstances"] == 2

    # 5. DICOMweb at the Endpoint's address with dicomweb-client and the bearer token.
    client = dicomweb(address, access)
    files = demo_files(demo_dir, "DEMO-001")
    assert len(files) == 11
    found = client.search_for_studies(search_filters={"PatientID": "DEMO-001"})
    assert {s["0020000D"]["Value"][0] for s in found} == set(studies)

    for study_uid, study in studies.items():
        want = {uid for uid, ds in files.items() if ds.StudyInstanceUID == study_uid}
        # Study retrieval: every instance, each a dataset equal to the file's.
        got = client.retrieve_study(study_uid)
        assert {ds.SOPInstanceUID for ds in got} == want
        for ds in got:
            ref = files[ds.SOPInstanceUID]
            assert ds.PatientID == "DEMO-001" and ds.Rows == ref.Rows
            if ds.file_meta.TransferSyntaxUID == ref.file_meta.TransferSyntaxUID:
                assert ds.PixelData == ref.PixelData, ds.SOPInstanceUID
            else:
                # PS3.18 8.7.3: application/dicom without a transfer-syntax is Explicit
                # VR Little Endian, so an Implicit VR or lossless compressed file (the
                # demo's RLE series) arrives in it, with the same pixels.
                assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
                assert (ds.pixel_array == ref.pixel_array).all(), ds.SOPInstanceUID
        # Study metadata.
        meta = client.retrieve_study_metadata(study_uid)
        assert {m["00080018"]["Value"][0] for m in meta} == want
        assert all(m["00100020"]["Value"] == ["DEMO-001"] for m in meta)
        for series in study["series"]:
            series_uid = series["uid"]
            in_series = {uid for uid, ds in files.items() if ds.SeriesInstanceUID == series_uid}
            assert {i["uid"] for i in series["instance"]} == in_series
            # Series retrieval and metadata.
            assert {ds.SOPInstanceUID for ds in client.retrieve_series(study_uid, series_uid)} == in_series
            assert {m["00080018"]["Value"][0] for m in client.retrieve_series_metadata(study_uid, series_uid)} == in_series
            for sop_uid in sorted(in_series):
                ref = files[sop_uid]
                # Instance retrieval and metadata.
                inst = client.retrieve_instance(study_uid, series_uid, sop_uid)
                assert inst.SOPInstanceUID == sop_uid and inst.StudyInstanceUID == study_uid
                m = client.retrieve_instance_metadata(study_uid, series_uid, sop_uid)
                assert m["00080018"]["Value"] == [sop_uid]
                assert m["00280010"]["Value"] == [ref.Rows]
                # Frames: byte-equal to pydicom's.
                want_frames = reference_frames(ref)
                numbers = list(range(1, len(want_frames) + 1))
                syntax = ref.file_meta.TransferSyntaxUID
                if syntax.is_compressed:
                    media = (("image/dicom-rle", str(syntax)),)
                else:
                    media = (("application/octet-stream", "*"),)
                frames = client.retrieve_instance_frames(
                    study_uid, series_uid, sop_uid, frame_numbers=numbers, media_types=media
                )
                assert len(frames) == len(want_frames), sop_uid
                for i, (got_frame, want_frame) in enumerate(zip(frames, want_frames), 1):
                    assert bytes(got_frame) == want_frame, f"{sop_uid} frame {i}"
                # One frame on its own, out of order.
                last = client.retrieve_instance_frames(
                    study_uid, series_uid, sop_uid, frame_numbers=[numbers[-1]], media_types=media
                )
                assert [bytes(f) for f in last] == [want_frames[-1]]
    # The multi-frame instances were part of it: both a native and an RLE one.
    syntaxes = {ds.file_meta.TransferSyntaxUID.name for ds in files.values() if int(ds.get("NumberOfFrames", 1)) > 1}
    assert syntaxes == {"Explicit VR Little Endian", "RLE Lossless"}


def test_patient_compartment_holds_at_the_ehr_and_the_imaging_server(dev_server):
    base = dev_server.base
    _, token = login(dev_server, "DEMO-001")
    access = token["access_token"]
    # Another patient at the EHR and the imaging server: 403 with an OperationOutcome.
    r = requests.get(f"{base}/dev/fhir/Patient/DEMO-002", headers=bearer(access), timeout=TIMEOUT)
    fhir_json(r, "OperationOutcome", 403)
    r = requests.get(
        f"{base}/fhir/ImagingStudy", params={"patient": "Patient/DEMO-002"}, headers=bearer(access), timeout=TIMEOUT
    )
    fhir_json(r, "OperationOutcome", 403)
    r = requests.get(f"{base}/fhir/ImagingStudy/{DEMO_ROOT}.3", headers=bearer(access), timeout=TIMEOUT)
    assert r.status_code in (403, 404)
    fhir_json(r, "OperationOutcome", r.status_code)
    # Without a token: 401, a Bearer challenge without an error code (RFC 6750 §3.1: the
    # request had no authentication at all), OperationOutcome.
    for url in [f"{base}/dev/fhir/Patient/DEMO-001", f"{base}/fhir/ImagingStudy?patient=Patient/DEMO-001"]:
        r = requests.get(url, timeout=TIMEOUT)
        fhir_json(r, "OperationOutcome", 401)
        assert r.headers["WWW-Authenticate"].startswith("Bearer"), url
        assert "error=" not in r.headers["WWW-Authenticate"], url
    # A token whose scopes do not reach Patient: 403 insufficient_scope at the EHR.
    _, imaging_only = login(dev_server, "DEMO-001", scope="launch/patient patient/ImagingStudy.rs")
    r = requests.get(f"{base}/dev/fhir/Patient/DEMO-001", headers=bearer(imaging_only["access_token"]), timeout=TIMEOUT)
    fhir_json(r, "OperationOutcome", 403)
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    # DICOMweb: another patient's study is refused; no token is refused.
    client = dicomweb(f"{base}/dicom-web", access)
    with pytest.raises(requests.HTTPError) as e:
        client.retrieve_study_metadata(f"{DEMO_ROOT}.3")
    assert e.value.response.status_code == 403
    with pytest.raises(requests.HTTPError) as e:
        dicomweb(f"{base}/dicom-web", None).retrieve_study_metadata(f"{DEMO_ROOT}.1")
    assert e.value.response.status_code == 401
    assert e.value.response.headers["WWW-Authenticate"].startswith("Bearer")
    # A forged token (signature of another key) is refused everywhere.
    head, body, _ = access.split(".")
    forged = f"{head}.{body}.{base64.urlsafe_b64encode(bytes(64)).rstrip(b'=').decode()}"
    r = requests.get(f"{base}/dev/fhir/Patient/DEMO-001", headers=bearer(forged), timeout=TIMEOUT)
    fhir_json(r, "OperationOutcome", 401)
    r = requests.get(f"{base}/fhir/ImagingStudy", headers=bearer(forged), timeout=TIMEOUT)
    fhir_json(r, "OperationOutcome", 401)
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_patient_picker_lists_demo_patients_and_its_links_complete_the_flow(dev_server, demo_dir):
    base = dev_server.base
    session = oauth_session(dev_server)
    _, verifier, state, resp = authorize(dev_server, session, patient=None)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("text/html")
    page = resp.text
    picks = {}
    for href, text in links(page):
        q = query_of(html.unescape(href))
        assert href.startswith(f"{base}/dev/authorize?"), href
        picks[q["patient"]] = (href, text, q)
    assert set(picks) == {"DEMO-001", "DEMO-002", "DEMO-003"}
    names = {ds.PatientID: ds.PatientName for ds in demo_files(demo_dir).values()}
    for pid, (_, text, q) in picks.items():
        family, given = names[pid].family_name, names[pid].given_name
        assert family in text and given in text, (pid, text)
        # Each link repeats the app's request: PKCE challenge, state, client, scope.
        assert q["code_challenge"] and q["code_challenge_method"] == "S256"
        assert q["state"] == state and q["client_id"] == "my-app" and q["scope"] == SCOPE
    # Following a link (as the browser would) completes the flow for that patient.
    r = requests.get(picks["DEMO-002"][0], allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 302
    token = session.fetch_token(
        f"{base}/dev/token", authorization_response=r.headers["Location"], code_verifier=verifier, timeout=TIMEOUT
    )
    assert token["patient"] == "DEMO-002"
    bundle = fhir_json(
        requests.get(
            f"{base}/fhir/ImagingStudy",
            params={"patient": "Patient/DEMO-002", "_include": "ImagingStudy:endpoint"},
            headers=bearer(token["access_token"]),
            timeout=TIMEOUT,
        ),
        "Bundle",
    )
    assert bundle["total"] == 1 and bundle["entry"][0]["resource"]["id"] == f"{DEMO_ROOT}.3"
    # DEMO-002's big-endian series: frames swapped to little-endian as pydicom reads them.
    client = dicomweb(endpoint_address(bundle), token["access_token"])
    files = demo_files(demo_dir, "DEMO-002")
    big = [ds for ds in files.values() if not ds.file_meta.TransferSyntaxUID.is_little_endian]
    assert big
    for ds in big[:3]:
        (frame,) = client.retrieve_instance_frames(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, frame_numbers=[1]
        )
        assert bytes(frame) == reference_frames(ds)[0]
    # An unknown patient in the query is refused, not redirected.
    _, _, _, r = authorize(dev_server, session, patient="NOBODY")
    assert r.status_code == 400 and "Location" not in r.headers


def test_refresh_token_grant_with_offline_access(dev_server):
    base = dev_server.base
    scope = SCOPE + " offline_access"
    session, token = login(dev_server, "DEMO-001", scope=scope)
    assert token["refresh_token"] and token["scope"] == scope
    first = token["access_token"]
    refreshed = session.refresh_token(f"{base}/dev/token", refresh_token=token["refresh_token"], timeout=TIMEOUT)
    assert refreshed["access_token"] != first
    assert refreshed["patient"] == "DEMO-001" and refreshed["scope"] == scope
    assert refreshed["refresh_token"] and refreshed["refresh_token"] != token["refresh_token"]
    # The new access token works at the imaging server.
    r = requests.get(
        f"{base}/fhir/ImagingStudy",
        params={"patient": "Patient/DEMO-001"},
        headers=bearer(refreshed["access_token"]),
        timeout=TIMEOUT,
    )
    assert fhir_json(r, "Bundle")["total"] == 2
    # The old refresh token was rotated out.
    r = requests.post(
        f"{base}/dev/token",
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": "my-app"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # A narrower scope may be asked for, never a wider one; another client cannot use it.
    r = requests.post(
        f"{base}/dev/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refreshed["refresh_token"],
            "client_id": "other-app",
        },
        timeout=TIMEOUT,
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    _, token = login(dev_server, "DEMO-001", scope=scope)
    r = requests.post(
        f"{base}/dev/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": "my-app",
            "scope": scope + " patient/*.rs",
        },
        timeout=TIMEOUT,
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


def test_no_refresh_token_without_offline_access(dev_server):
    _, token = login(dev_server, "DEMO-001", scope=SCOPE)
    assert "refresh_token" not in token
    r = requests.post(
        f"{dev_server.base}/dev/token",
        data={"grant_type": "refresh_token", "refresh_token": "made-up", "client_id": "my-app"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_wrong_code_verifier_is_invalid_grant_and_burns_the_code(dev_server):
    base = dev_server.base
    session = oauth_session(dev_server)
    _, verifier, _, resp = authorize(dev_server, session, "DEMO-001")
    location = resp.headers["Location"]
    wrong = verifier[:-1] + ("A" if verifier[-1] != "A" else "B")
    with pytest.raises(OAuthError) as e:
        session.fetch_token(f"{base}/dev/token", authorization_response=location, code_verifier=wrong, timeout=TIMEOUT)
    assert e.value.error == "invalid_grant"
    # The code was good for one exchange, even a failed one.
    with pytest.raises(OAuthError) as e:
        session.fetch_token(f"{base}/dev/token", authorization_response=location, code_verifier=verifier, timeout=TIMEOUT)
    assert e.value.error == "invalid_grant"
    # No verifier at all.
    _, verifier, _, resp = authorize(dev_server, session, "DEMO-001")
    code = query_of(resp.headers["Location"])["code"]
    r = requests.post(
        f"{base}/dev/token",
        data={"grant_type": "authorization_code", "code": code, "client_id": "my-app", "redirect_uri": REDIRECT_URI},
        timeout=TIMEOUT,
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # The right verifier sent with another redirect_uri.
    _, verifier, _, resp = authorize(dev_server, session, "DEMO-001")
    code = query_of(resp.headers["Location"])["code"]
    r = requests.post(
        f"{base}/dev/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": "my-app",
            "redirect_uri": "http://127.0.0.1:9/elsewhere",
            "code_verifier": verifier,
        },
        timeout=TIMEOUT,
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_authorization_without_pkce_s256_redirects_with_an_error(dev_server):
    base = dev_server.base
    common = {
        "response_type": "code",
        "client_id": "my-app",
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "state": "st-123",
        "aud": f"{base}/fhir",
        "patient": "DEMO-001",
    }
    s256 = {"code_challenge": "a" * 43, "code_challenge_method": "S256"}
    cases = {
        "no code_challenge": {},
        "plain method": {"code_challenge": "a" * 43, "code_challenge_method": "plain"},
        "no method": {"code_challenge": "a" * 43},
        # Not PKCE, but refused the same way: another audience, no audience.
        "aud of another server": {**s256, "aud": "https://evil.example/fhir"},
        "no aud": {**s256, "aud": ""},
    }
    for name, extra in cases.items():
        r = requests.get(f"{base}/dev/authorize", params={**common, **extra}, allow_redirects=False, timeout=TIMEOUT)
        assert r.status_code == 302, (name, r.status_code, r.text)
        location = r.headers["Location"]
        assert location.startswith(REDIRECT_URI + "?"), name
        q = query_of(location)
        assert q["error"] == "invalid_request" and q["state"] == "st-123" and "code" not in q, (name, q)
    # Without state (the app's CSRF protection) there is no code either.
    r = requests.get(
        f"{base}/dev/authorize", params={**common, **s256, "state": ""}, allow_redirects=False, timeout=TIMEOUT
    )
    q = query_of(r.headers["Location"])
    assert r.status_code == 302 and q["error"] == "invalid_request" and "code" not in q
    # authlib without PKCE: the same error comes back to the app.
    plain = oauth_session(dev_server)
    plain.code_challenge_method = None
    url, state = plain.create_authorization_url(f"{base}/dev/authorize", aud=f"{base}/fhir", patient="DEMO-001")
    assert "code_challenge" not in url
    r = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    q = query_of(r.headers["Location"])
    assert r.status_code == 302 and q["error"] == "invalid_request" and q["state"] == state
    # A bad redirect_uri is shown, never redirected to.
    r = requests.get(
        f"{base}/dev/authorize",
        params={**common, "redirect_uri": "javascript:alert(1)", "code_challenge": "a" * 43, "code_challenge_method": "S256"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert r.status_code == 400 and "Location" not in r.headers


def test_authorization_code_cannot_be_reused(dev_server):
    base = dev_server.base
    session = oauth_session(dev_server)
    _, verifier, _, resp = authorize(dev_server, session, "DEMO-001")
    location = resp.headers["Location"]
    form = {
        "grant_type": "authorization_code",
        "code": query_of(location)["code"],
        "client_id": "my-app",
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    r = requests.post(f"{base}/dev/token", data=form, timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["access_token"]
    assert "no-store" in r.headers["Cache-Control"]  # RFC 6749 §5.1
    # The same exchange again, raw and through authlib: refused.
    r = requests.post(f"{base}/dev/token", data=form, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    again = oauth_session(dev_server)
    with pytest.raises(OAuthError) as e:
        again.fetch_token(f"{base}/dev/token", authorization_response=location, code_verifier=verifier, timeout=TIMEOUT)
    assert e.value.error == "invalid_grant"


def test_introspection_with_the_banner_credentials(dev_server):
    url, client_id, secret = introspection_client(dev_server)
    assert url == f"{dev_server.base}/dev/introspect"
    _, token = login(dev_server, "DEMO-001")
    r = requests.post(url, data={"token": token["access_token"]}, auth=(client_id, secret), timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    info = r.json()
    assert info["active"] is True
    assert info["patient"] == "DEMO-001" and info["scope"] == SCOPE
    assert info["client_id"] == "my-app" and info["iss"] == f"{dev_server.base}/dev/fhir"
    assert f"{dev_server.base}/fhir" in info["aud"] and info["exp"] > 0 and info["token_type"] == "Bearer"
    # The ready token printed in the banner is active too.
    r = requests.post(url, data={"token": dev_server.token}, auth=(client_id, secret), timeout=TIMEOUT)
    assert r.json()["active"] is True
    # A token that is not one (or is tampered with) is inactive, and says nothing else.
    for bad in ["not-a-token", token["access_token"][:-4] + "AAAA"]:
        r = requests.post(url, data={"token": bad}, auth=(client_id, secret), timeout=TIMEOUT)
        assert r.status_code == 200 and r.json() == {"active": False}


def test_introspection_refused_without_client_authentication(dev_server):
    url, client_id, secret = introspection_client(dev_server)
    _, token = login(dev_server, "DEMO-001")
    for auth in [None, (client_id, secret + "x"), (client_id, secret[:-1]), ("someone", secret)]:
        r = requests.post(url, data={"token": token["access_token"]}, auth=auth, timeout=TIMEOUT)
        assert r.status_code == 401, auth
        assert r.json()["error"] == "invalid_client"
        assert r.headers["WWW-Authenticate"].startswith("Basic")
        assert "patient" not in r.text
    # A bearer token is not client authentication either.
    r = requests.post(url, data={"token": token["access_token"]}, headers=bearer(token["access_token"]), timeout=TIMEOUT)
    assert r.status_code == 401


def test_dev_with_a_config_follows_its_patient_policy(start_server, demo_dir, tmp_path):
    """With --config, the file's [patients] policy applies to the dev EHR's tokens too:
    the default `links` finds nothing for an unlinked patient, `identity` finds the
    DICOM patient of the same id (README, `--dev`)."""
    for policy, total in (("", 0), ('[patients]\npolicy = "identity"\n', 2)):
        work = tmp_path / f"p{total}"
        work.mkdir()
        (work / "sia.toml").write_text('[server]\nbase_url = "http://127.0.0.1:8080"\ndb = "sia.db"\n' + policy)
        s = start_server(demo_dir, "--dev", "--config", work / "sia.toml", workdir=work)
        r = requests.get(
            f"{s.base}/fhir/ImagingStudy", params={"patient": "Patient/DEMO-001"}, headers=bearer(s.token),
            timeout=TIMEOUT,
        )
        if total:
            assert fhir_json(r, "Bundle")["total"] == total
        else:
            assert r.status_code in (200, 403), r.text
            if r.status_code == 200:
                assert fhir_json(r, "Bundle")["total"] == 0


def test_the_banner_journey_works_as_printed(dev_server, tmp_path):
    """The authorize URL and curl lines the banner prints, run as a newcomer would."""
    out = dev_server.stdout()
    (url,) = re.findall(r"^#\s+(http\S+/dev/authorize\?\S+)$", out, re.M)
    r = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 302, r.text
    code = query_of(r.headers["Location"])["code"]
    lines = [line for line in out.splitlines() if line.startswith("curl ")]
    assert len(lines) == 5, out
    assert "code=CODE" in lines[0]
    env = {**os.environ, "TOKEN": dev_server.token}
    for line in [lines[0].replace("code=CODE", f"code={code}"), *lines[1:]]:
        p = subprocess.run(
            ["bash", "-c", line + " --max-time 60 -w '%{stderr}%{http_code}'"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=90,
        )
        assert p.returncode == 0 and p.stderr.decode().strip() == "200", (line, p.stderr, p.stdout[:300])
        if "/token" in line:
            assert json.loads(p.stdout)["access_token"]
    assert b"DICM" in (tmp_path / "study.multipart").read_bytes()
