"""The engine's authorization decision table over HTTP: every row of
tests/py/test_auth.py (keys and tokens made there with cryptography and PyJWT) replayed
against `sia serve --config` with that test's configuration, on DICOMweb and on the
matching FHIR route. Each answer must carry the row's status, the `WWW-Authenticate`
challenge RFC 6750 asks for, the same status and challenge `sia get --config` gives
in-process (the server translates, it does not decide), and on FHIR routes a valid
OperationOutcome."""

import importlib.util
import pathlib
import sys

import pytest
import requests

from _oauth import TIMEOUT, validate
from conftest import Server

PY_TESTS = pathlib.Path(__file__).resolve().parents[1] / "py"


def load_test_auth():
    """tests/py/test_auth.py as a module (not collected here). It imports `run_sia` from
    its own conftest, which is not this directory's, so that conftest is put in place
    under the name `conftest` only while test_auth is imported."""
    spec = importlib.util.spec_from_file_location("sia_py_conftest", PY_TESTS / "conftest.py")
    py_conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(py_conftest)
    saved = sys.modules.get("conftest")
    sys.modules["conftest"] = py_conftest
    try:
        spec = importlib.util.spec_from_file_location("sia_py_test_auth", PY_TESTS / "test_auth.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            sys.modules.pop("conftest", None)
        else:
            sys.modules["conftest"] = saved
    return module, py_conftest


auth, py_conftest = load_test_auth()
ROOT = auth.ROOT

# The FHIR resource each DICOMweb target of the table is about.
FHIR_TWIN = {
    auth.OWN_STUDY: f"/fhir/ImagingStudy/{ROOT}.1",
    auth.OTHER_STUDY: f"/fhir/ImagingStudy/{ROOT}.3",
    auth.OWN_FRAME: f"/fhir/ImagingStudy/{ROOT}.2",
    auth.SEARCH: "/fhir/ImagingStudy",
}


@pytest.fixture(scope="module")
def env(sia, tmp_path_factory):
    """test_auth.py's set-up: the demo set indexed, Patient/123 linked to DEMO-001, its
    keys' JWKS and its configuration file (written the same way)."""
    base = tmp_path_factory.mktemp("decisions")
    run = py_conftest.run_sia
    run(sia, "demo", base / "d")
    run(sia, "index", "--db", base / "sia.db", base / "d")
    run(sia, "link", "--db", base / "sia.db", "--patient", "123", "--identifier", "DEMO-001", "--issuer", "SIA_DEMO")
    keys = auth.write_keys_and_config(base)
    return base, keys


@pytest.fixture(scope="module")
def server(sia, env):
    base, _ = env
    s = Server(sia, base, ["--config", base / "sia.toml"])
    yield s
    s.stop()


def http_get(server, target, token=None, raw_header=None):
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if raw_header is not None:
        name, value = raw_header.split(": ", 1)
        headers[name] = value
    return requests.get(server.base + target, headers=headers, timeout=TIMEOUT)


def in_process(sia, env, target, token=None, raw_header=None):
    """(status, WWW-Authenticate) of `sia get --config`."""
    status, fields, _ = auth.get(sia, env, target, token, raw_header)
    return status, fields.get("WWW-Authenticate")


def check_challenge(name, status, challenge, failures):
    if status == 401:
        if not (challenge or "").startswith("Bearer") or 'error="invalid_token"' not in challenge:
            failures.append(f"{name}: 401 with WWW-Authenticate {challenge!r}")
    elif status == 200 and challenge:
        failures.append(f"{name}: 200 with WWW-Authenticate {challenge!r}")


def test_decision_table_over_http_on_dicomweb(sia, env, server):
    _, keys = env
    failures = []
    table = auth.rows(keys)
    assert len(table) >= 30
    for name, token, target, want in table:
        r = http_get(server, target, token)
        challenge = r.headers.get("WWW-Authenticate")
        if r.status_code != want:
            failures.append(f"{name}: {r.status_code} (want {want}): {r.text[:200]!r}")
        check_challenge(name, r.status_code, challenge, failures)
        expected = in_process(sia, env, target, token)
        if (r.status_code, challenge) != expected:
            failures.append(f"{name}: HTTP {(r.status_code, challenge)} != sia get {expected}")
        if want == 200 and not r.content:
            failures.append(f"{name}: 200 without a body")
    assert not failures, "\n".join(failures)


def test_decision_table_over_http_on_fhir_with_operation_outcomes(sia, env, server):
    _, keys = env
    failures = []
    for name, token, target, want in auth.rows(keys):
        fhir_target = FHIR_TWIN[target]
        r = http_get(server, fhir_target, token)
        challenge = r.headers.get("WWW-Authenticate")
        # The same decision as on DICOMweb, except that FHIR has no frames of its own.
        if r.status_code != want:
            failures.append(f"{name} on {fhir_target}: {r.status_code} (want {want}): {r.text[:200]!r}")
        check_challenge(name, r.status_code, challenge, failures)
        expected = in_process(sia, env, fhir_target, token)
        if (r.status_code, challenge) != expected:
            failures.append(f"{name}: HTTP {(r.status_code, challenge)} != sia get {expected}")
        if not r.headers.get("Content-Type", "").startswith("application/fhir+json"):
            failures.append(f"{name}: Content-Type {r.headers.get('Content-Type')!r}")
            continue
        body = r.json()
        try:
            if r.status_code == 200:
                validate(body, "Bundle" if fhir_target == "/fhir/ImagingStudy" else "ImagingStudy")
            else:
                validate(body, "OperationOutcome")
                assert body["issue"] and body["issue"][0]["severity"] in ("error", "fatal")
        except Exception as e:  # noqa: BLE001 (collected with the others)
            failures.append(f"{name}: {type(e).__name__}: {e}")
    assert not failures, "\n".join(failures)


def test_no_token_and_wrong_scheme_are_401_bearer_challenges(sia, env, server):
    wado = (
        f"/wado?requestType=WADO&studyUID={ROOT}.1&seriesUID={ROOT}.1.1&objectUID={ROOT}.1.1.1"
        "&contentType=application/dicom"
    )
    for target in [auth.OWN_STUDY, FHIR_TWIN[auth.OWN_STUDY], auth.SEARCH, wado]:
        r = http_get(server, target)
        assert r.status_code == 401, target
        assert r.headers["WWW-Authenticate"].startswith("Bearer"), target
        assert (r.status_code, r.headers["WWW-Authenticate"]) == in_process(sia, env, target)
    # With a token, the same WADO-URI request is served.
    r = http_get(server, wado, auth.sign(env[1]))
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/dicom"
    r = http_get(server, auth.OWN_STUDY, raw_header="Authorization: Basic dXNlcjpwYXNz")
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    r = http_get(server, FHIR_TWIN[auth.OWN_STUDY])
    validate(r.json(), "OperationOutcome")
    # Not secret: health and the FHIR server's discovery documents.
    assert http_get(server, "/healthz").status_code == 200
    validate(http_get(server, "/fhir/metadata").json(), "CapabilityStatement")
    assert http_get(server, "/fhir/.well-known/smart-configuration").status_code == 200


def test_insufficient_scope_is_403_with_the_insufficient_scope_challenge(env, server):
    _, keys = env
    token = auth.sign(keys, scope="patient/ImagingStudy.r")
    for target in [auth.SEARCH, "/fhir/ImagingStudy"]:
        r = http_get(server, target, token)
        assert r.status_code == 403, target
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    validate(r.json(), "OperationOutcome")


def test_search_over_http_is_filtered_to_the_token_patient(env, server):
    _, keys = env
    r = http_get(server, auth.SEARCH, auth.sign(keys))
    assert r.status_code == 200
    assert {s["00100020"]["Value"][0] for s in r.json()} == {"DEMO-001"}
    r = http_get(server, "/fhir/ImagingStudy?patient=Patient/123", auth.sign(keys))
    bundle = r.json()
    validate(bundle, "Bundle")
    assert bundle["total"] == 2
    assert {e["resource"]["subject"]["reference"] for e in bundle["entry"]} == {"Patient/123"}
    # Another patient is 403 with an OperationOutcome, never an empty Bundle.
    r = http_get(server, "/fhir/ImagingStudy?patient=Patient/456", auth.sign(keys))
    assert r.status_code == 403
    validate(r.json(), "OperationOutcome")


def test_the_server_logs_no_token(env, server):
    _, keys = env
    token = auth.sign(keys)
    assert http_get(server, auth.OWN_STUDY + "?x=" + token, token).status_code in (200, 400)
    signature = token.split(".")[2]
    # One log line per request, and neither the header nor the query value in it.
    assert signature not in server.log()
    assert signature not in server.stdout()
    assert "/metadata" in server.log()

