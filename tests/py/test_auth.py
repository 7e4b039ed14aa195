"""The authorization decision table (sia design, "Authorization decision"), each row with
its exact expected status, through `sia get --config` against the demo set. Keys and
tokens are generated here with PyJWT and cryptography."""

import base64
import hashlib
import hmac
import json
import subprocess
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from conftest import run_sia

ISS = "https://ehr.example.org"
AUD = "https://ehr.example.org/fhir"
ROOT = "2.25.228146457203842916711418316839742735"
OWN_STUDY = f"/dicom-web/studies/{ROOT}.1/metadata"        # DEMO-001, linked to Patient/123
OTHER_STUDY = f"/dicom-web/studies/{ROOT}.3/metadata"      # DEMO-002
OWN_FRAME = f"/dicom-web/studies/{ROOT}.2/series/{ROOT}.2.1/instances/{ROOT}.2.1.1/frames/1"
SEARCH = "/dicom-web/studies"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa384 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.ed = ed25519.Ed25519PrivateKey.generate()

    def jwks(self):
        def jwk(alg_cls, key, kid, alg=None):
            d = json.loads(alg_cls.to_jwk(key.public_key()))
            d["kid"] = kid
            if alg:
                d["alg"] = alg
            return d

        return {"keys": [
            jwk(jwt.algorithms.RSAAlgorithm, self.rsa, "rsa1", "RS256"),
            jwk(jwt.algorithms.RSAAlgorithm, self.rsa384, "rsa384", "RS384"),
            jwk(jwt.algorithms.ECAlgorithm, self.ec, "ec1"),
            jwk(jwt.algorithms.OKPAlgorithm, self.ed, "ed1"),
        ]}


def write_keys_and_config(base):
    """Fresh keys, their JWKS (`jwks.json`) and the configuration (`sia.toml`, index
    `sia.db`) of the decision table in `base`; the keys. Shared with
    tests/e2e/test_decisions_http.py and py/tests/test_authorize.py."""
    keys = Keys()
    (base / "jwks.json").write_text(json.dumps(keys.jwks()))
    (base / "sia.toml").write_text(f"""
[server]
listen = "127.0.0.1:8080"
base_url = "http://127.0.0.1:8080"
db = "sia.db"
[[issuers]]
iss = "{ISS}"
audiences = ["{AUD}", "http://127.0.0.1:8080/fhir"]
jwks_file = "jwks.json"
algorithms = ["RS256", "ES256", "EdDSA", "PS256"]
leeway_seconds = 30
[patients]
policy = "links"
""")
    return keys


@pytest.fixture(scope="module")
def env(sia, tmp_path_factory):
    base = tmp_path_factory.mktemp("auth")
    run_sia(sia, "demo", base / "d")
    run_sia(sia, "index", "--db", base / "sia.db", base / "d")
    run_sia(sia, "link", "--db", base / "sia.db", "--patient", "123", "--identifier", "DEMO-001", "--issuer", "SIA_DEMO")
    return base, write_keys_and_config(base)


def claims(**over):
    now = int(time.time())
    c = {"iss": ISS, "aud": AUD, "exp": now + 300, "iat": now, "sub": "user1", "client_id": "app",
         "scope": "launch/patient patient/ImagingStudy.rs openid", "patient": "123"}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def sign(keys, alg="RS256", kid="rsa1", **over):
    key = {"RS256": keys.rsa, "PS256": keys.rsa, "ES256": keys.ec, "EdDSA": keys.ed}[alg]
    if kid == "rsa384":
        key = keys.rsa384
    return jwt.encode(claims(**over), key, algorithm=alg, headers={"kid": kid})


def get(sia, env, target, token=None, raw_header=None):
    base, _ = env
    args = [str(sia), "get", "--config", str(base / "sia.toml"), target]
    if token is not None:
        args += ["-H", f"Authorization: Bearer {token}"]
    if raw_header is not None:
        args += ["-H", raw_header]
    proc = subprocess.run(args, capture_output=True, timeout=60)
    lines = proc.stderr.decode().splitlines()
    status = int(lines[0].split()[1])
    fields = dict(l.split(": ", 1) for l in lines[1:] if ": " in l)
    return status, fields, proc.stdout


def tamper_payload(token):
    h, p, s = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(p + "=="))
    body["patient"] = "456"
    return ".".join([h, b64(json.dumps(body).encode()), s])


def tamper_signature(token):
    h, p, s = token.split(".")
    sig = bytearray(base64.urlsafe_b64decode(s + "=="))
    sig[10] ^= 0x01
    return ".".join([h, p, b64(bytes(sig))])


def unsigned(alg="none"):
    return ".".join([b64(json.dumps({"alg": alg, "typ": "JWT"}).encode()), b64(json.dumps(claims()).encode()), ""])


def hs256_with_rsa_public_key(keys):
    pem = keys.rsa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    head = b64(json.dumps({"alg": "HS256", "kid": "rsa1"}).encode())
    body = b64(json.dumps(claims()).encode())
    mac = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def ecdsa_zero(keys):
    head = b64(json.dumps({"alg": "ES256", "kid": "ec1"}).encode())
    body = b64(json.dumps(claims()).encode())
    return f"{head}.{body}.{b64(bytes(64))}"


def rows(keys):
    now = int(time.time())
    return [
        # name, token, target, expected status
        ("valid v2 scope, own study", sign(keys), OWN_STUDY, 200),
        ("valid v1 scope", sign(keys, scope="patient/ImagingStudy.read"), OWN_STUDY, 200),
        ("wildcard scope", sign(keys, scope="patient/*.rs"), OWN_STUDY, 200),
        ("ES256", sign(keys, alg="ES256", kid="ec1"), OWN_STUDY, 200),
        ("EdDSA", sign(keys, alg="EdDSA", kid="ed1"), OWN_STUDY, 200),
        ("frames need the same check", sign(keys), OWN_FRAME, 200),
        ("another patient's study", sign(keys), OTHER_STUDY, 403),
        ("token for an unlinked patient", sign(keys, patient="456"), OWN_STUDY, 403),
        ("patient scope without patient context", sign(keys, patient=None), OWN_STUDY, 403),
        ("system scope without backend mode", sign(keys, scope="system/ImagingStudy.rs"), OWN_STUDY, 403),
        (".r without s on search", sign(keys, scope="patient/ImagingStudy.r"), SEARCH, 403),
        (".r is enough to read", sign(keys, scope="patient/ImagingStudy.r"), OWN_STUDY, 200),
        ("granular scope with an unsupported parameter", sign(keys, scope="patient/ImagingStudy.rs?started=gt2020"), OWN_STUDY, 403),
        ("granular modality scope that fits", sign(keys, scope="patient/ImagingStudy.rs?modality=CT"), OWN_STUDY, 200),
        ("granular modality scope that does not fit", sign(keys, scope="patient/ImagingStudy.rs?modality=MR"), OWN_STUDY, 403),
        ("expired", sign(keys, exp=now - 120), OWN_STUDY, 401),
        ("exp as a string", sign(keys, exp=str(now + 300)), OWN_STUDY, 401),
        ("exp missing", sign(keys, exp=None), OWN_STUDY, 401),
        ("nbf in the future", sign(keys, nbf=now + 600), OWN_STUDY, 401),
        ("wrong iss", sign(keys, iss="https://evil.example"), OWN_STUDY, 401),
        ("aud mismatch", sign(keys, aud="https://other.example/fhir"), OWN_STUDY, 401),
        ("aud array with a match", sign(keys, aud=["x", AUD]), OWN_STUDY, 200),
        ("aud array without a match", sign(keys, aud=["x", "y"]), OWN_STUDY, 401),
        ("aud of the wrong type", sign(keys, aud=123), OWN_STUDY, 401),
        ("alg none", unsigned("none"), OWN_STUDY, 401),
        ("alg none with a signature part", unsigned("none") + "c2ln", OWN_STUDY, 401),
        ("HS256 signed with the RSA public key", hs256_with_rsa_public_key(keys), OWN_STUDY, 401),
        ("unknown kid", sign(keys, kid="nope"), OWN_STUDY, 401),
        ("kid of an EC key with alg RS256", sign(keys, alg="RS256", kid="ec1"), OWN_STUDY, 401),
        ("JWK alg RS384 but token RS256", sign(keys, alg="RS256", kid="rsa384"), OWN_STUDY, 401),
        ("tampered payload", tamper_payload(sign(keys)), OWN_STUDY, 401),
        ("tampered signature", tamper_signature(sign(keys)), OWN_STUDY, 401),
        ("ECDSA r = s = 0", ecdsa_zero(keys), OWN_STUDY, 401),
        ("id_token presented as an access token", sign(keys, aud="app", scope=None), OWN_STUDY, 401),
        ("garbage", "not.a.token", OWN_STUDY, 401),
    ]


def test_decision_table(sia, env):
    _, keys = env
    failures = []
    for name, token, target, want in rows(keys):
        status, fields, body = get(sia, env, target, token)
        if status != want:
            failures.append(f"{name}: {status} (want {want}): {body[:200]!r}")
        if want == 401 and 'error="invalid_token"' not in fields.get("WWW-Authenticate", ""):
            failures.append(f"{name}: 401 without WWW-Authenticate invalid_token")
    assert not failures, "\n".join(failures)


def test_no_token_and_wrong_scheme(sia, env):
    status, fields, _ = get(sia, env, OWN_STUDY)
    assert status == 401 and fields["WWW-Authenticate"].startswith("Bearer")
    status, fields, _ = get(sia, env, OWN_STUDY, raw_header="Authorization: Basic dXNlcjpwYXNz")
    assert status == 401 and 'error="invalid_token"' in fields["WWW-Authenticate"]


def test_insufficient_scope_header(sia, env):
    _, keys = env
    status, fields, _ = get(sia, env, SEARCH, sign(keys, scope="patient/ImagingStudy.r"))
    assert status == 403 and 'error="insufficient_scope"' in fields["WWW-Authenticate"]


def test_search_is_filtered_to_the_token_patient(sia, env):
    _, keys = env
    status, _, body = get(sia, env, SEARCH, sign(keys))
    assert status == 200
    ids = {s["00100020"]["Value"][0] for s in json.loads(body)}
    assert ids == {"DEMO-001"}
    # A granular modality scope narrows it further.
    status, _, body = get(sia, env, SEARCH, sign(keys, scope="patient/ImagingStudy.rs?modality=US"))
    assert [s["00080061"]["Value"] for s in json.loads(body)] == [["US"]]


def test_patients_imported_from_a_bundle_are_linked_by_system_and_value(sia, env, tmp_path):
    base, keys = env
    config = (base / "sia.toml").read_text() + '\nidentifier_systems = { "http://hospital.example/mrn" = "SIA_DEMO" }\n'
    (base / "import.toml").write_text(config)
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p2", "identifier": [
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
             "system": "http://hospital.example/mrn", "value": "DEMO-001"},
        ]}},
        {"resource": {"resourceType": "Patient", "id": "p3", "identifier": [
            {"system": "urn:oid:2.25.228146457203842916711418316839742735.999", "value": "DEMO-002"},
            {"type": {"coding": [{"code": "MR"}]}, "system": "http://unknown.example", "value": "DEMO-003"},
        ]}},
        {"resource": {"resourceType": "Patient", "id": "p4", "identifier": [
            {"system": "http://hospital.example/mrn", "value": "DEMO-002"},   # wrong issuer for DEMO-002
        ]}},
    ]}
    (tmp_path / "patients.json").write_text(json.dumps(bundle))
    proc = run_sia(sia, "import-patients", tmp_path / "patients.json", "--config", base / "import.toml")
    report = json.loads(proc.stdout)
    assert report["patients"] == 3 and report["links"] == 3
    assert any("http://unknown.example" in s for s in report["skipped"])
    def total(patient):
        status, _, raw = get(sia, env, "/fhir/ImagingStudy", sign(keys, patient=patient))
        assert status == 200
        return json.loads(raw)["total"]
    assert total("p2") == 2   # DEMO-001 via the mapped MRN system
    assert total("p3") == 1   # DEMO-002 via its OID issuer
    assert total("p4") == 0   # same value, other issuer: never matched by value alone


def test_capability_urls_grant_one_study_until_the_token_expires(sia, env):
    base, keys = env
    (base / "cap.toml").write_text((base / "sia.toml").read_text() + "\n[capabilities]\nenabled = true\nsecret_file = \"cap.key\"\n")
    (base / "cap.key").write_bytes(b"k" * 40)

    def cap_get(target, token=None):
        args = [str(sia), "get", "--config", str(base / "cap.toml"), target]
        if token:
            args += ["-H", f"Authorization: Bearer {token}"]
        proc = subprocess.run(args, capture_output=True, timeout=60)
        return int(proc.stderr.decode().split()[1]), proc.stdout

    status, raw = cap_get("/fhir/ImagingStudy?patient=123", sign(keys, exp=int(time.time()) + 4))
    assert status == 200
    study = json.loads(raw)["entry"][0]["resource"]
    (endpoint,) = study["contained"]
    assert study["endpoint"] == [{"reference": "#wado"}]
    assert endpoint["extension"][0]["valueBoolean"] is False
    address = endpoint["address"].split("http://127.0.0.1:8080", 1)[1]
    uid = study["id"]
    # No token needed; the URLs inside the answer carry the capability too.
    status, raw = cap_get(f"{address}/studies/{uid}/metadata")
    assert status == 200
    retrieve_urls = [i["00081190"]["Value"][0] for i in json.loads(cap_get(f"{address}/studies/{uid}/series")[1])]
    assert retrieve_urls and all("/cap/" in u for u in retrieve_urls)
    # Appending paths cannot widen it.
    other = f"{ROOT}.3" if uid != f"{ROOT}.3" else f"{ROOT}.1"
    assert cap_get(f"{address}/studies/{other}/metadata")[0] == 403
    # A search without a study in the path (OHIF's `studies?StudyInstanceUID=`) finds only it.
    status, raw = cap_get(f"{address}/studies")
    assert status == 200 and {s["0020000D"]["Value"][0] for s in json.loads(raw)} == {uid}
    status, raw = cap_get(f"{address}/studies?StudyInstanceUID={other}")
    assert status in (200, 204) and not (json.loads(raw) if raw.strip() else [])
    assert cap_get(f"{address}/studies/{uid}/../{other}/metadata")[0] == 400
    assert cap_get(f"{address}x/studies/{uid}/metadata")[0] == 401
    # It expires with the token that produced it.
    time.sleep(5)
    assert cap_get(f"{address}/studies/{uid}/metadata")[0] == 401


def test_links_name_the_token_issuer_and_unlink_is_immediate(sia, env, tmp_path):
    """Issue 18: links are keyed by (token issuer, FHIR Patient id); `sia unlink` removes one."""
    base, keys = env
    cfg = ["--config", base / "sia.toml"]
    study4 = f"/dicom-web/studies/{ROOT}.4/metadata"      # DEMO-003, issuer ''
    token = sign(keys, patient="777")
    assert get(sia, env, study4, token)[0] == 403
    # The only configured issuer is the default.
    out = run_sia(sia, "link", *cfg, "--patient", "777", "--identifier", "DEMO-003").stdout
    assert ISS in out
    assert get(sia, env, study4, token)[0] == 200
    # Another issuer's Patient 777 is not this one; an unconfigured issuer is refused.
    assert run_sia(sia, "link", *cfg, "--fhir-issuer", "https://other", "--patient", "777",
                   "--identifier", "DEMO-003", check=False).returncode != 0
    run_sia(sia, "unlink", *cfg, "--patient", "777", "--identifier", "DEMO-003")
    assert get(sia, env, study4, token)[0] == 403
    assert run_sia(sia, "unlink", *cfg, "--patient", "777", "--identifier", "DEMO-003",
                   check=False).returncode != 0


def test_jwks_keys_that_must_not_verify_are_refused(sia, env):
    """Issue 18: RSA e = 3, use = enc and key_ops without verify never verify a token."""
    base, keys = env
    weak = rsa.generate_private_key(public_exponent=3, key_size=2048)

    def jwk(key, kid, **extra):
        d = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        d.update(kid=kid, **extra)
        return d

    (base / "screened.json").write_text(json.dumps({"keys": [
        jwk(weak, "e3"),
        jwk(keys.rsa, "enc", use="enc"),
        jwk(keys.rsa, "ops", key_ops=["encrypt"]),
        jwk(keys.rsa, "good", key_ops=["verify"]),
    ]}))
    (base / "screened.toml").write_text((base / "sia.toml").read_text().replace("jwks.json", "screened.json"))
    for kid, key, want in [("e3", weak, 401), ("enc", keys.rsa, 401), ("ops", keys.rsa, 401), ("good", keys.rsa, 200)]:
        token = jwt.encode(claims(), key, algorithm="RS256", headers={"kid": kid})
        proc = subprocess.run([str(sia), "get", "--config", str(base / "screened.toml"), OWN_STUDY,
                               "-H", f"Authorization: Bearer {token}"], capture_output=True, timeout=60)
        err = proc.stderr.decode()
        status = [int(l.split()[1]) for l in err.splitlines() if l.startswith("HTTP/1.1 ")]
        assert status == [want], (kid, err[-500:])
        assert 'refused key "e3"' in err and 'refused key "enc"' in err and 'refused key "ops"' in err


def test_a_reused_study_uid_does_not_move_the_study(sia, env, tmp_path):
    """Issue 18, finding 2, as reported: a file with bob's Patient ID and issuer reusing
    alice's CT Study Instance UID (with its own series and SOP) is reported as a
    conflict by `sia index --json` and changes nothing."""
    import pydicom

    base, keys = env
    data = tmp_path / "d"
    run_sia(sia, "demo", data)
    db = tmp_path / "sia.db"
    run_sia(sia, "index", "--db", db, data)
    run_sia(sia, "link", "--db", db, "--patient", "alice", "--identifier", "DEMO-001", "--issuer", "SIA_DEMO")
    run_sia(sia, "link", "--db", db, "--patient", "bob", "--identifier", "DEMO-002",
            "--issuer", f"{ROOT}.999")
    source = sorted(data.rglob("*.dcm"), key=lambda p: str(p))
    ds = next(pydicom.dcmread(p) for p in source if pydicom.dcmread(p).StudyInstanceUID == f"{ROOT}.1")
    ds.PatientID, ds.IssuerOfPatientID, ds.PatientName = "DEMO-002", f"{ROOT}.999", "Smith^John^A^Dr."
    ds.SeriesInstanceUID, ds.SOPInstanceUID = "1.2.826.0.1.9.1", "1.2.826.0.1.9.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(data / "bob.dcm")
    report = json.loads(run_sia(sia, "index", "--db", db, "--json", data).stdout)
    assert report["conflicts"] == [{
        "path": str((data / "bob.dcm").resolve()), "level": "study", "uid": f"{ROOT}.1",
        "indexed_patient": {"patient_id": "DEMO-001", "issuer": "SIA_DEMO"},
        "file_patient": {"patient_id": "DEMO-002", "issuer": f"{ROOT}.999"},
    }], report
    config = (base / "sia.toml").read_text().replace('db = "sia.db"', f'db = "{db}"')
    (tmp_path / "sia.toml").write_text(config)
    (tmp_path / "jwks.json").write_text((base / "jwks.json").read_text())

    def status(patient):
        token = sign(keys, patient=patient)
        proc = subprocess.run([str(sia), "get", "--config", str(tmp_path / "sia.toml"), OWN_STUDY,
                               "-H", f"Authorization: Bearer {token}"], capture_output=True, timeout=60)
        return int(proc.stderr.decode().splitlines()[0].split()[1]), proc.stdout

    alice_status, body = status("alice")
    assert alice_status == 200 and b"DEMO-002" not in body
    assert status("bob")[0] == 403
