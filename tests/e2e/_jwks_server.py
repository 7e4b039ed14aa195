"""A stand-in for an external EHR's key endpoints, for the `jwks_url` tests: an
`http.server` on a free loopback port, in a thread, serving a JWKS (and a SMART
configuration pointing at it) whose keys, `Cache-Control` and status the test changes
while `sia serve` runs, and counting the requests it gets."""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "https://sia.test/fhir"
SCOPE = "launch/patient patient/Patient.rs patient/ImagingStudy.rs"


class SigningKey:
    """An RSA key with a `kid`: its public JWK, and tokens signed with it."""

    def __init__(self, kid: str, private=None):
        self.kid = kid
        self.private = private or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
        self.jwk = jwk

    def token(self, iss: str, patient="DEMO-001", aud=AUDIENCE, scope=SCOPE, seconds=600):
        """A fresh access token (own `jti`, so the server's verified-token cache never
        answers for it)."""
        now = int(time.time())
        claims = {
            "iss": iss,
            "sub": "e2e",
            "aud": aud,
            "scope": scope,
            "patient": patient,
            "iat": now,
            "exp": now + seconds,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid})


class JwksServer:
    """`/jwks.json` serves `keys` (or `body`) with `cache_control`, or `status` when it
    is not 200;
    `/.well-known/smart-configuration` names `/jwks.json` as `jwks_uri`. `requests`
    lists the paths asked for, with their times."""

    def __init__(self):
        self.keys = []
        self.cache_control = "max-age=3600"
        self.status = 200
        self.body = None  # when set, /jwks.json answers these bytes instead
        self.delay = 0.0  # seconds /jwks.json waits before answering
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with outer.lock:
                    outer.requests.append((time.monotonic(), self.path))
                    status, keys, cc = outer.status, list(outer.keys), outer.cache_control
                    override, delay = outer.body, outer.delay
                if self.path == "/jwks.json" and delay:
                    time.sleep(delay)
                if self.path == "/jwks.json":
                    body = override if override is not None else json.dumps({"keys": keys}).encode()
                elif self.path == "/.well-known/smart-configuration":
                    body = json.dumps(
                        {
                            "issuer": outer.url,
                            "jwks_uri": outer.url + "/jwks.json",
                            "authorization_endpoint": outer.url + "/authorize",
                            "token_endpoint": outer.url + "/token",
                            "capabilities": ["launch-standalone"],
                        }
                    ).encode()
                else:
                    status, body = 404, b"{}"
                if status != 200:
                    body = b'{"error": "down"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if status == 200 and cc:
                    self.send_header("Cache-Control", cc)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.running = True

    def set_keys(self, *keys: SigningKey):
        with self.lock:
            self.keys = [k.jwk for k in keys]

    def fetches(self, path="/jwks.json", since=None) -> int:
        with self.lock:
            return sum(1 for t, p in self.requests if p == path and (since is None or t >= since))

    def wait_for_fetches(self, n, path="/jwks.json", timeout=30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.fetches(path) >= n:
                break
            time.sleep(0.05)
        return self.fetches(path)

    def stop(self):
        """Takes the issuer off the network: the port then refuses connections."""
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.running = False
