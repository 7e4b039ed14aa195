"""Helpers shared by the e2e tests of the journey, the decision table and TLS/CORS: the
SMART authorization-code + PKCE flow against `sia serve --dev` driven by authlib, the
introspection client printed in the banner, FHIR validation with fhir.resources (R4B),
and the reference frames pydicom reads from the demo files."""

import html.parser
import pathlib
import re

import numpy as np
import pydicom
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.endpoint import Endpoint
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from pydicom.encaps import generate_frames

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never fetched: the test reads Location
SCOPE = "launch/patient patient/Patient.rs patient/ImagingStudy.rs"
TIMEOUT = 60

MODELS = {
    "Bundle": Bundle,
    "CapabilityStatement": CapabilityStatement,
    "Endpoint": Endpoint,
    "ImagingStudy": ImagingStudy,
    "OperationOutcome": OperationOutcome,
    "Patient": Patient,
}


def validate(resource: dict, expected_type: str | None = None):
    """Validates a FHIR resource (and a Bundle's entries, one by one) with the R4B models
    of fhir.resources; returns the model."""
    rtype = resource.get("resourceType")
    if expected_type is not None:
        assert rtype == expected_type, f"want {expected_type}, got {rtype}: {str(resource)[:300]}"
    assert rtype in MODELS, f"no model for {rtype}"
    model = MODELS[rtype].model_validate(resource)
    if rtype == "Bundle":
        for entry in resource.get("entry", []):
            validate(entry["resource"])
    return model


def fhir_json(resp: requests.Response, expected_type: str, status: int = 200) -> dict:
    """The FHIR body of `resp`, after checking status, media type and validity."""
    assert resp.status_code == status, f"{resp.status_code} (want {status}): {resp.text[:500]}"
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip() in ("application/fhir+json", "application/json"), ctype
    body = resp.json()
    validate(body, expected_type)
    return body


def oauth_session(server, scope=SCOPE, client_id="my-app", **kw) -> OAuth2Session:
    """An authlib client for the dev EHR: a public client (no secret) with PKCE S256."""
    return OAuth2Session(
        client_id,
        redirect_uri=REDIRECT_URI,
        scope=scope,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
        **kw,
    )


def authorize(server, session: OAuth2Session, patient: str | None = "DEMO-001", aud=None, **extra):
    """Starts the flow: returns (authorization URL, code verifier, state, response of the
    dev EHR's authorize endpoint, not followed)."""
    verifier = generate_token(64)
    params = {"aud": aud or f"{server.base}/fhir", **extra}
    if patient is not None:
        params["patient"] = patient
    url, state = session.create_authorization_url(
        f"{server.base}/dev/authorize", code_verifier=verifier, **params
    )
    resp = requests.get(url, allow_redirects=False, timeout=TIMEOUT, verify=server.verify)
    return url, verifier, state, resp


def login(server, patient="DEMO-001", scope=SCOPE, client_id="my-app"):
    """The whole authorization-code + PKCE flow; returns (session, token dict)."""
    session = oauth_session(server, scope=scope, client_id=client_id)
    _, verifier, _, resp = authorize(server, session, patient)
    assert resp.status_code == 302, f"{resp.status_code}: {resp.text[:300]}"
    token = session.fetch_token(
        f"{server.base}/dev/token",
        authorization_response=resp.headers["Location"],
        code_verifier=verifier,
        timeout=TIMEOUT,
        verify=server.verify,
    )
    return session, token


def introspection_client(server) -> tuple[str, str, str]:
    """(URL, client id, secret) of the introspection line in the `--dev` banner."""
    m = re.search(r"^\s*introspect\s+(\S+)\s+\(HTTP Basic ([^:\s]+):(\S+)\)\s*$", server.stdout(), re.M)
    assert m, f"no introspection line in the banner:\n{server.stdout()}"
    return m.group(1), m.group(2), m.group(3)


class LinkParser(html.parser.HTMLParser):
    """Collects (href, text) of every <a> in a page."""

    def __init__(self):
        super().__init__()
        self.links = []
        self._href = None
        self._text = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href = dict(attrs).get("href")
            self._text = []

    def handle_data(self, data):
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text).strip()))
            self._href = None


def links(page: str):
    p = LinkParser()
    p.feed(page)
    return p.links


def demo_files(demo_dir: pathlib.Path, patient: str | None = None):
    """{SOP Instance UID: dataset} of the demo files (of one patient)."""
    out = {}
    for path in sorted(demo_dir.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        if patient is None or ds.PatientID == patient:
            out[ds.SOPInstanceUID] = ds
    return out


def reference_frames(ds) -> list[bytes]:
    """What a WADO-RS frame request must return, from pydicom: for native data each
    frame's raw pixel bytes, little-endian (big-endian sources swapped as pydicom reads
    them); for encapsulated data each frame's fragments as pydicom splits them."""
    n = int(ds.get("NumberOfFrames", 1) or 1)
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax.is_compressed:
        return list(generate_frames(ds.PixelData, number_of_frames=n))
    data = ds.PixelData
    bits = ds.BitsAllocated
    if not syntax.is_little_endian and bits > 8:
        data = np.frombuffer(data, dtype=f">u{bits // 8}").astype(f"<u{bits // 8}").tobytes()
    size = ds.Rows * ds.Columns * ds.get("SamplesPerPixel", 1) * bits // 8
    frames = [data[i * size : (i + 1) * size] for i in range(n)]
    if ds.get("SamplesPerPixel", 1) == 1 and ds.PixelRepresentation == 0:
        # The same pixels pydicom decodes (unsigned, byte-aligned demo data).
        decoded = ds.pixel_array.reshape(n, -1)
        for raw, px in zip(frames, decoded):
            assert np.array_equal(np.frombuffer(raw, dtype=f"<u{bits // 8}"), px.ravel()), "reference frame differs from pixel_array"
    return frames
