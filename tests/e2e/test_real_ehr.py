"""`sia serve` in front of a real EHR (issue 19): two processes, one `sia serve --dev`
playing the EHR (opaque tokens, introspection, backend clients, FHIR Patient), one
`sia serve --config` as the imaging server configured against it. The imaging server
introspects, caches, answers 503 when the EHR cannot be asked, and hands every answer
to the engine's one authorization path (the decision table, replayed with introspected
tokens, gives the same decisions)."""

import concurrent.futures
import json
import re
import secrets
import subprocess

import pytest
import requests

from _ehr import (
    backend_token,
    client_assertion,
    ec_client_key,
    FakeIntrospection,
    PortServer,
    ehr_answer,
    free_port,
    imaging_config,
    introspections,
    wait_for,
)
from _oauth import TIMEOUT, fhir_json, introspection_client, login, validate
from conftest import DEMO_ROOT

STUDY_1 = f"{DEMO_ROOT}.1"  # DEMO-001's
STUDY_3 = f"{DEMO_ROOT}.3"  # DEMO-002's


def secret_file(ehr, path):
    _, _, secret = introspection_client(ehr)
    path.write_text(secret + "\n")
    return path.name


def link(sia, work, fhir_issuer, patient, pid, issuer="SIA_DEMO"):
    subprocess.run([str(sia), "link", "--db", str(work / "imaging.db"), "--fhir-issuer", fhir_issuer,
                    "--patient", patient, "--identifier", pid, "--issuer", issuer],
                   check=True, capture_output=True)


def index(sia, work, demo_dir):
    subprocess.run([str(sia), "index", "--db", str(work / "imaging.db"), str(demo_dir)],
                   check=True, capture_output=True)


@pytest.fixture
def opaque_pair(sia, demo_dir, tmp_path):
    """An EHR issuing opaque tokens, and an imaging server introspecting them (with
    DEMO-001 linked for the EHR's Patient/DEMO-001)."""
    ehr_dir = tmp_path / "ehr"
    ehr_dir.mkdir()
    ehr = PortServer(sia, ehr_dir, [demo_dir, "--dev", "--dev-opaque-tokens", "--db", ehr_dir / "ehr.db"])
    work = tmp_path / "imaging"
    work.mkdir()
    port = free_port()
    imaging_config(work / "sia.toml", port, ehr.base, secret_file(ehr, work / "introspect.secret"))
    index(sia, work, demo_dir)
    link(sia, work, f"{ehr.base}/dev/fhir", "DEMO-001", "DEMO-001")
    img = PortServer(sia, work, ["--config", work / "sia.toml"], port=port)
    yield ehr, img
    img.stop()
    ehr.stop()


def test_the_journey_with_opaque_tokens_introspected_once_per_token(opaque_pair):
    ehr, img = opaque_pair
    _, token = login(ehr)
    access = token["access_token"]
    assert access.count(".") == 0, "the dev EHR issues opaque tokens"
    # The EHR itself serves its Patient with the opaque token.
    patient = fhir_json(ehr.get("/dev/fhir/Patient/DEMO-001", access), "Patient")
    assert patient["id"] == "DEMO-001"
    before = introspections(ehr)
    bundle = fhir_json(img.get("/fhir/ImagingStudy?patient=Patient/DEMO-001", access), "Bundle")
    uids = {e["resource"]["identifier"][0]["value"] for e in bundle["entry"]}
    assert f"urn:oid:{STUDY_1}" in uids and f"urn:oid:{STUDY_3}" not in uids
    r = img.get(f"/dicom-web/studies/{STUDY_1}/metadata", access)
    assert r.status_code == 200 and r.json()
    r = img.get(f"/dicom-web/studies/{STUDY_1}", access,
                headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert r.status_code == 200 and len(r.content) > 1000
    assert img.get(f"/dicom-web/studies/{STUDY_3}/metadata", access).status_code == 403
    assert wait_for(lambda: introspections(ehr) == before + 1)
    assert introspections(ehr) == before + 1, "one introspection for all of one token's requests"

    # Concurrent requests with a new token: one introspection.
    _, second = login(ehr)
    before = introspections(ehr)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(
            lambda _: img.get(f"/dicom-web/studies/{STUDY_1}/metadata", second["access_token"]).status_code,
            range(32)))
    assert statuses == [200] * 32
    assert introspections(ehr) == before + 1, "single flight: concurrent requests share one introspection"


def test_tokens_the_ehr_reports_inactive_are_refused(opaque_pair):
    ehr, img = opaque_pair
    _, token = login(ehr)
    access = token["access_token"]
    assert requests.post(f"{ehr.base}/dev/revoke", data={"token": access}, timeout=TIMEOUT).status_code == 200
    r = img.get(f"/dicom-web/studies/{STUDY_1}/metadata", access)
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    r = img.get("/fhir/ImagingStudy", access)
    assert r.status_code == 401
    validate(r.json(), "OperationOutcome")
    # Never issued.
    assert img.get(f"/dicom-web/studies/{STUDY_1}/metadata", secrets.token_urlsafe(32)).status_code == 401
    assert img.get(f"/dicom-web/studies/{STUDY_1}/metadata").status_code == 401


def test_ehr_down_is_503_with_retry_after_and_service_resumes(sia, demo_dir, tmp_path):
    """JWTs introspected anyway (`introspect_all`), so a token outlives the EHR's restart."""
    ehr_dir = tmp_path / "ehr"
    ehr_dir.mkdir()
    ehr_port = free_port()
    ehr_args = [demo_dir, "--dev", "--db", ehr_dir / "ehr.db"]
    ehr = PortServer(sia, ehr_dir, ehr_args, port=ehr_port)
    work = tmp_path / "imaging"
    work.mkdir()
    port = free_port()
    imaging_config(work / "sia.toml", port, ehr.base, secret_file(ehr, work / "introspect.secret"),
                   extra_issuer='introspect_all = true\njwks_url = "%s/dev/.well-known/jwks.json"\nalgorithms = ["ES256"]\n' % ehr.base)
    index(sia, work, demo_dir)
    link(sia, work, f"{ehr.base}/dev/fhir", "DEMO-001", "DEMO-001")
    img = PortServer(sia, work, ["--config", work / "sia.toml"], port=port)
    try:
        _, used = login(ehr)
        _, fresh = login(ehr)
        before = introspections(ehr)
        assert img.get(f"/dicom-web/studies/{STUDY_1}/metadata", used["access_token"]).status_code == 200
        assert introspections(ehr) == before + 1, "introspect_all: a JWT the engine could verify is introspected"
        ehr.stop()
        # A token already introspected is served from the cache until it expires.
        assert img.get(f"/dicom-web/studies/{STUDY_1}/metadata", used["access_token"]).status_code == 200
        for target in [f"/dicom-web/studies/{STUDY_1}/metadata", "/fhir/ImagingStudy?patient=Patient/DEMO-001"]:
            r = img.get(target, fresh["access_token"])
            assert r.status_code == 503, (target, r.status_code, r.text[:200])
            assert int(r.headers["Retry-After"]) > 0
            assert STUDY_1 not in r.text and "DEMO-001" not in r.text
        validate(r.json(), "OperationOutcome")
        # HEAD over HTTP/2 (prior knowledge): this 503 is made by the server, not the
        # engine, and must carry no body either (nghttp2 resets a HEAD stream with DATA).
        out = subprocess.run(
            ["curl", "-sS", "--http2-prior-knowledge", "-I", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
             "-H", f"Authorization: Bearer {fresh['access_token']}", f"{img.base}/dicom-web/studies/{STUDY_1}/metadata"],
            capture_output=True, text=True, timeout=TIMEOUT,
        )
        assert (out.returncode, out.stdout) == (0, "2 503"), (out.returncode, out.stdout, out.stderr)
        ehr = PortServer(sia, ehr_dir, ehr_args, port=ehr_port)
        r = img.get(f"/dicom-web/studies/{STUDY_1}/metadata", fresh["access_token"])
        assert r.status_code == 200, r.text[:300]
    finally:
        img.stop()
        ehr.stop()


def test_a_slow_ehr_is_503_not_a_hang(sia, demo_dir, tmp_path):
    """An introspection endpoint that accepts connections but never answers."""
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    silent = f"http://127.0.0.1:{listener.getsockname()[1]}"
    work = tmp_path
    (work / "s").write_text("secret\n")
    port = free_port()
    (work / "sia.toml").write_text(f"""
[server]
base_url = "http://127.0.0.1:{port}"
db = "imaging.db"
[[issuers]]
iss = "https://ehr.example"
audiences = ["https://ehr.example/fhir"]
introspection_url = "{silent}/introspect"
client_id = "sia"
client_secret_file = "s"
""")
    index(sia, work, demo_dir)
    img = PortServer(sia, work, ["--config", work / "sia.toml"], port=port)
    try:
        r = img.get(f"/dicom-web/studies/{STUDY_1}/metadata", "opaque-token-1")
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert r.elapsed.total_seconds() < 15
    finally:
        img.stop()
        listener.close()


# The decision table, replayed with introspected tokens.

from test_decisions_http import FHIR_TWIN, auth  # noqa: E402


@pytest.fixture(scope="module")
def introspected_table(sia, tmp_path_factory):
    """The decision table's set-up, but its issuer known only by introspection: every
    token the table sends is an opaque stand-in for the row's JWT, and the stand-in EHR
    answers with what it would say about that JWT."""
    base = tmp_path_factory.mktemp("introspected")
    run = lambda *a: subprocess.run([str(sia), *map(str, a)], check=True, capture_output=True)  # noqa: E731
    run("demo", base / "d")
    run("index", "--db", base / "sia.db", base / "d")
    run("link", "--db", base / "sia.db", "--patient", "123", "--identifier", "DEMO-001", "--issuer", "SIA_DEMO")
    keys = auth.Keys()
    fake = FakeIntrospection()
    (base / "secret").write_text("s3cret-s3cret\n")
    port = free_port()
    (base / "sia.toml").write_text(f"""
[server]
base_url = "http://127.0.0.1:{port}"
db = "sia.db"
[[issuers]]
iss = "{auth.ISS}"
audiences = ["{auth.AUD}", "http://127.0.0.1:{port}/fhir"]
introspection_url = "{fake.url}"
client_id = "sia"
client_secret_file = "secret"
[patients]
policy = "links"
""")
    server = PortServer(sia, base, ["--config", base / "sia.toml"], port=port)
    yield server, keys, fake
    server.stop()
    fake.close()


def test_the_decision_table_replayed_with_introspected_tokens(introspected_table):
    server, keys, fake = introspected_table
    jwks = keys.jwks()
    failures = []
    rows = auth.rows(keys)
    assert len(rows) >= 30
    for name, token, target, want in rows:
        for path in (target, FHIR_TWIN[target]):
            opaque = secrets.token_urlsafe(24)
            fake.answers[opaque] = ehr_answer(jwks, token)
            r = requests.get(server.base + path, headers={"Authorization": f"Bearer {opaque}"}, timeout=TIMEOUT)
            if r.status_code != want:
                failures.append(f"{name} on {path}: {r.status_code} (want {want}): {r.text[:200]!r}")
            if r.status_code == 401 and 'error="invalid_token"' not in r.headers.get("WWW-Authenticate", ""):
                failures.append(f"{name} on {path}: 401 without invalid_token")
    assert not failures, "\n".join(failures)


def test_an_introspected_answer_for_another_issuer_is_refused(introspected_table):
    server, keys, fake = introspected_table
    opaque = secrets.token_urlsafe(24)
    claims = auth.claims()
    fake.answers[opaque] = {"active": True, **claims, "iss": "https://elsewhere.example"}
    assert server.get(auth.OWN_STUDY, opaque).status_code == 401
    # Without `iss`, the answer is the asked issuer's.
    opaque = secrets.token_urlsafe(24)
    fake.answers[opaque] = {"active": True, **{k: v for k, v in claims.items() if k != "iss"}}
    assert server.get(auth.OWN_STUDY, opaque).status_code == 200


# Patient resolution: no links at the imaging server.

@pytest.fixture
def resolving_pair(sia, demo_dir, tmp_path):
    """An EHR (opaque tokens) with the imaging server registered as a backend client
    (its public key), and an imaging server that knows DEMO-001 and DEMO-002 only, has
    no links, introspects with private_key_jwt and resolves patients."""
    ehr_dir = tmp_path / "ehr"
    ehr_dir.mkdir()
    work = tmp_path / "imaging"
    work.mkdir()
    ec_client_key(work / "client.pem", ehr_dir / "sia-imaging.jwks")
    ehr = PortServer(sia, ehr_dir, [demo_dir, "--dev", "--dev-opaque-tokens", "--db", ehr_dir / "ehr.db",
                                    "--dev-client", f"sia-imaging={ehr_dir / 'sia-imaging.jwks'}"])
    port = free_port()
    imaging_config(work / "sia.toml", port, ehr.base,
                   extra_issuer='client_id = "sia-imaging"\nclient_key_file = "client.pem"\n'
                                'client_key_id = "client-key-1"\nresolve_patients = true\n',
                   extra='identifier_systems = { "SIA_DEMO" = "SIA_DEMO", "%s.999" = "%s.999" }\n'
                         % (DEMO_ROOT, DEMO_ROOT))
    index(sia, work, demo_dir / "DEMO-001")
    index(sia, work, demo_dir / "DEMO-002")
    img = PortServer(sia, work, ["--config", work / "sia.toml"], port=port)
    yield ehr, img
    img.stop()
    ehr.stop()


def count(server, needle):
    return sum(1 for line in server.log().splitlines() if needle in line)


def test_patients_are_resolved_at_the_ehr_by_identifier(resolving_pair):
    ehr, img = resolving_pair
    _, token = login(ehr, patient="DEMO-001")
    access = token["access_token"]
    bundle = fhir_json(img.get("/fhir/ImagingStudy?patient=Patient/DEMO-001", access), "Bundle")
    uids = {e["resource"]["identifier"][0]["value"] for e in bundle["entry"]}
    assert f"urn:oid:{STUDY_1}" in uids and f"urn:oid:{STUDY_3}" not in uids
    assert img.get(f"/dicom-web/studies/{STUDY_1}/metadata", access).status_code == 200
    assert img.get(f"/dicom-web/studies/{STUDY_3}/metadata", access).status_code == 403
    assert count(ehr, "GET /dev/fhir/Patient/DEMO-001 200") == 1
    assert count(ehr, "client_credentials token for sia-imaging: system/Patient.rs") == 1
    assert count(img, "linked Patient/DEMO-001 of") == 1
    # Linked now: another token for the same patient asks the EHR nothing more.
    _, again = login(ehr, patient="DEMO-001")
    assert img.get(f"/dicom-web/studies/{STUDY_1}/metadata", again["access_token"]).status_code == 200
    assert count(ehr, "GET /dev/fhir/Patient/DEMO-001 ") == 1
    # Another patient: its own studies only, with the backend token reused.
    _, other = login(ehr, patient="DEMO-002")
    assert img.get(f"/dicom-web/studies/{STUDY_3}/metadata", other["access_token"]).status_code == 200
    assert img.get(f"/dicom-web/studies/{STUDY_1}/metadata", other["access_token"]).status_code == 403
    assert count(ehr, "client_credentials token for sia-imaging") == 1
    # Introspection by private_key_jwt worked throughout.
    assert introspections(ehr) >= 3


def test_a_patient_whose_identifiers_match_nothing_is_403(resolving_pair):
    ehr, img = resolving_pair
    _, token = login(ehr, patient="DEMO-003")  # the EHR knows DEMO-003; the imaging server does not
    access = token["access_token"]
    r = img.get("/fhir/ImagingStudy?patient=Patient/DEMO-003", access)
    body = fhir_json(r, "OperationOutcome", status=403)
    assert "matches no patient" in body["issue"][0]["diagnostics"]
    r = img.get(f"/dicom-web/studies/{STUDY_1}/metadata", access)
    assert r.status_code == 403
    assert count(img, "Patient/DEMO-003 of") >= 1 and count(img, "linked Patient/DEMO-003") == 0
    # Refused for a while without asking the EHR again.
    assert count(ehr, "GET /dev/fhir/Patient/DEMO-003 ") == 1


# Backend Services: a research pipeline with its own key.

def test_backend_services_under_a_policy_and_not_without(sia, demo_dir, tmp_path):
    ehr_dir = tmp_path / "ehr"
    ehr_dir.mkdir()
    work = tmp_path / "imaging"
    work.mkdir()
    cohort_key = ec_client_key(tmp_path / "cohort.pem", ehr_dir / "cohort.jwks")
    stranger_key = ec_client_key(tmp_path / "stranger.pem", ehr_dir / "stranger.jwks")
    ehr = PortServer(sia, ehr_dir, [demo_dir, "--dev", "--dev-opaque-tokens", "--db", ehr_dir / "ehr.db",
                                    "--dev-client", f"cohort={ehr_dir / 'cohort.jwks'}",
                                    "--dev-client", f"stranger={ehr_dir / 'stranger.jwks'}"])
    port = free_port()
    imaging_config(work / "sia.toml", port, ehr.base, secret_file(ehr, work / "introspect.secret"),
                   extra='[[backend_clients]]\nclient_id = "cohort"\npatients = ["DEMO-001"]\n')
    index(sia, work, demo_dir)
    link(sia, work, f"{ehr.base}/dev/fhir", "DEMO-001", "DEMO-001")
    img = PortServer(sia, work, ["--config", work / "sia.toml"], port=port)
    try:
        conf = img.get("/fhir/.well-known/smart-configuration").json()
        assert "smart-imaging-access" in conf["capabilities"]
        assert "http://fhir.org/argonaut/smart-imaging/capabilities/backend-services" in conf["capabilities"]
        assert "http://fhir.org/argonaut/smart-imaging/capabilities/app-launch" in conf["capabilities"]
        ehr_conf = requests.get(f"{ehr.base}/dev/fhir/.well-known/smart-configuration", timeout=TIMEOUT).json()
        assert "client_credentials" in ehr_conf["grant_types_supported"]
        assert "private_key_jwt" in ehr_conf["token_endpoint_auth_methods_supported"]

        # With a policy: what it names, and nothing else.
        token = backend_token(ehr, cohort_key, "cohort")
        bundle = fhir_json(img.get("/fhir/ImagingStudy", token), "Bundle")
        uids = {e["resource"]["identifier"][0]["value"] for e in bundle["entry"]}
        assert uids == {f"urn:oid:{STUDY_1}", f"urn:oid:{DEMO_ROOT}.2"}
        qido = img.get("/dicom-web/studies", token)
        assert qido.status_code == 200 and len(qido.json()) == 2
        r = img.get(f"/dicom-web/studies/{STUDY_1}", token,
                    headers={"Accept": 'multipart/related; type="application/dicom"'})
        assert r.status_code == 200 and len(r.content) > 1000
        assert img.get(f"/dicom-web/studies/{STUDY_3}/metadata", token).status_code == 403
        fhir_json(img.get("/fhir/ImagingStudy?patient=DEMO-002", token), "OperationOutcome", status=403)
        # Patient-scope tokens of the same EHR are unchanged.
        _, patient_token = login(ehr, patient="DEMO-001")
        assert img.get(f"/dicom-web/studies/{STUDY_1}/metadata", patient_token["access_token"]).status_code == 200

        # Without a policy: nothing.
        other = backend_token(ehr, stranger_key, "stranger")
        assert img.get("/fhir/ImagingStudy", other).status_code == 403
        assert img.get(f"/dicom-web/studies/{STUDY_1}/metadata", other).status_code == 403

        # The client assertion is not an access token.
        assertion = client_assertion(cohort_key, "cohort", f"{ehr.base}/dev/token")
        r = img.get(f"/dicom-web/studies/{STUDY_1}/metadata", assertion)
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
        # Nor does the EHR hand a token to an assertion signed by another client's key.
        r = requests.post(f"{ehr.base}/dev/token", data={
            "grant_type": "client_credentials", "scope": "system/ImagingStudy.rs",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion(stranger_key, "cohort", f"{ehr.base}/dev/token"),
        }, timeout=TIMEOUT)
        assert r.status_code == 401
        # Nor twice to the same assertion.
        assertion = client_assertion(cohort_key, "cohort", f"{ehr.base}/dev/token")
        form = {"grant_type": "client_credentials", "scope": "system/ImagingStudy.rs",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion}
        assert requests.post(f"{ehr.base}/dev/token", data=form, timeout=TIMEOUT).status_code == 200
        assert requests.post(f"{ehr.base}/dev/token", data=form, timeout=TIMEOUT).status_code == 401
    finally:
        img.stop()
        ehr.stop()
