"""Helpers for tests/e2e/test_real_ehr.py: `sia serve` processes on ports chosen up front
(the imaging server's configuration names the EHR's URL and its own, and an EHR
restarted after an outage comes back on the same port), the imaging server's
configuration against an EHR, counts of the EHR's introspections from its request log,
and a stand-in EHR introspection endpoint whose answers the test decides."""

import base64
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import conftest
from conftest import Server, free_port


class PortServer(Server):
    """A `Server` on `port` (else a free one): the same process handling as conftest's."""

    def __init__(self, sia, workdir, args, port=None, env=None):
        self.port = port or free_port()
        self.workdir = workdir
        self.scheme = "http"
        self.base = f"http://127.0.0.1:{self.port}"
        self.out_path = workdir / f"serve-{self.port}-{time.time_ns()}.out"
        self.err_path = workdir / f"serve-{self.port}-{time.time_ns()}.err"
        cmd = [str(sia), "serve", "--listen", f"127.0.0.1:{self.port}", *map(str, args)]
        self.proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            stdout=open(self.out_path, "w"),
            stderr=open(self.err_path, "w"),
            env={**conftest.os.environ, **(env or {})},
        )
        self.verify = True
        self.wait_ready()


def introspections(ehr) -> int:
    """How many introspection requests the EHR answered (its request log)."""
    return sum(1 for line in ehr.log().splitlines() if "POST /dev/introspect " in line)


def wait_for(predicate, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def imaging_config(path, port, ehr_base, secret_file=None, extra_issuer="", extra=""):
    """The imaging server's configuration: the dev EHR as the one issuer, its tokens
    introspected with the client printed in the EHR's banner."""
    fhir = f"{ehr_base}/dev/fhir"
    auth = f'client_id = "sia-introspect"\nclient_secret_file = "{secret_file}"\n' if secret_file else ""
    path.write_text(f"""
[server]
base_url = "http://127.0.0.1:{port}"
db = "imaging.db"
[[issuers]]
iss = "{fhir}"
audiences = ["{fhir}", "http://127.0.0.1:{port}/fhir"]
introspection_url = "{ehr_base}/dev/introspect"
{auth}{extra_issuer}
[patients]
policy = "links"
{extra}
""")
    return path


def ec_client_key(path_pem, path_jwks, kid="client-key-1"):
    """A P-384 key for a backend client: the private PEM for sia, the public JWKS for the
    EHR. Returns the private key."""
    key = ec.generate_private_key(ec.SECP384R1())
    path_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "alg": "ES384", "use": "sig"})
    path_jwks.write_text(json.dumps({"keys": [jwk]}))
    return key


def client_assertion(key, client_id, aud, kid="client-key-1", jti=None):
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "exp": now + 240, "iat": now,
              "jti": jti or base64.urlsafe_b64encode(time.time_ns().to_bytes(8, "big")).decode()}
    return jwt.encode(claims, key, algorithm="ES384", headers={"kid": kid})


def backend_token(ehr, key, client_id, scope="system/ImagingStudy.rs", kid="client-key-1"):
    """A client_credentials token from the dev EHR, authenticated by private_key_jwt."""
    token_url = f"{ehr.base}/dev/token"
    r = requests.post(token_url, data={
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": client_assertion(key, client_id, token_url, kid=kid),
    }, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


class FakeIntrospection:
    """An RFC 7662 endpoint on a free loopback port, in a thread: `answers[token]` is the
    JSON it gives for a token (`{"active": false}` for any other), after checking HTTP
    Basic `client_id:secret`; `calls` counts the requests."""

    def __init__(self, client_id="sia", secret="s3cret-s3cret"):
        self.answers = {}
        self.calls = 0
        self.lock = threading.Lock()
        expected = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                with outer.lock:
                    outer.calls += 1
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                token = parse_qs(body).get("token", [""])[0]
                answer = json.dumps(outer.answers.get(token, {"active": False})).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/introspect"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def ehr_answer(keys_jwks, token):
    """What a careful EHR would answer when introspecting a JWT of the decision table:
    its claims when its signature verifies with the key its `kid` names (the key's own
    `alg` and type respected), `{"active": false}` otherwise. The claims are passed on
    as they are (an expired `exp`, a wrong `aud` stay): sia must apply its own rules."""
    try:
        header = jwt.get_unverified_header(token)
        alg = header.get("alg")
        if alg not in ("RS256", "ES256", "EdDSA", "PS256"):
            return {"active": False}
        jwk = next(k for k in keys_jwks["keys"] if k["kid"] == header.get("kid"))
        if jwk.get("alg") and jwk["alg"] != alg:
            return {"active": False}
        key = jwt.PyJWK(jwk, algorithm=alg)
        claims = jwt.decode(token, key=key, algorithms=[alg],
                            options={"verify_signature": True, "verify_exp": False, "verify_nbf": False,
                                     "verify_iat": False, "verify_aud": False, "verify_iss": False,
                                     "require": []})
    except Exception:  # noqa: BLE001 (anything that does not verify is inactive)
        return {"active": False}
    return {"active": True, **claims}
