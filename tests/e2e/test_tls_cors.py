"""What a network host adds around the engine: TLS from the configuration with a
certificate the test generates (HTTP/2 by ALPN, plain HTTP refused on the TLS port),
CORS preflight from another origin (any origin with `--dev`, the configured list
otherwise, none without), gzip for JSON only (never pixel data), HEAD, and HTTP/2 with
prior knowledge on the plain port."""

import datetime
import gzip
import ipaddress
import shutil
import socket
import ssl
import subprocess

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from dicomweb_client.api import DICOMwebClient

from _oauth import TIMEOUT, demo_files, fhir_json, login, reference_frames
from conftest import DEMO_ROOT, Server, free_port

STUDY = f"{DEMO_ROOT}.2"
SERIES = f"{DEMO_ROOT}.2.1"  # native, 20 frames
INSTANCE = f"{DEMO_ROOT}.2.1.1"
METADATA = f"/dicom-web/studies/{STUDY}/metadata"
FRAME = f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{INSTANCE}/frames/1"
VIEWER = "http://viewer.example"


def make_certificate(folder):
    """A self-signed ECDSA P-256 certificate for 127.0.0.1 (SAN IPAddress) and its key,
    as PEM files; returns (cert path, key path, DER of the certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sia e2e 127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path, cert.public_bytes(serialization.Encoding.DER)


def server_on_known_port(start_server, monkeypatch, config_text, *args, **kw):
    """A server whose configured `base_url` names the port it listens on (the shared
    `Server` picks its port with `free_port`, which is pinned here for that)."""
    port = free_port()
    monkeypatch.setitem(Server.__init__.__globals__, "free_port", lambda: port)
    workdir = kw.pop("workdir")
    (workdir / "sia.toml").write_text(config_text.replace("{PORT}", str(port)))
    s = start_server("--config", workdir / "sia.toml", *args, workdir=workdir, **kw)
    assert s.port == port
    return s


@pytest.fixture
def tls_server(start_server, demo_dir, tmp_path, monkeypatch):
    cert, key, der = make_certificate(tmp_path)
    config = f"""
[server]
base_url = "https://127.0.0.1:{{PORT}}"
db = "sia.db"
[server.tls]
cert_file = "{cert.name}"
key_file = "{key.name}"
[patients]
policy = "identity"
"""
    s = server_on_known_port(
        start_server, monkeypatch, config, demo_dir, "--dev", workdir=tmp_path, scheme="https", verify=str(cert)
    )
    s.cert_path, s.cert_der = cert, der
    return s


def curl(*args) -> subprocess.CompletedProcess:
    assert shutil.which("curl"), "curl is needed"
    return subprocess.run(["curl", "-sS", "--max-time", "60", *args], capture_output=True, timeout=90)


def curl_body(out_path, *args):
    """curl with `args`, the body into `out_path`: ("{http_version} {http_code}", body)."""
    p = curl(*args, "-w", "%{http_version} %{http_code}", "-o", str(out_path))
    assert p.returncode == 0, p.stderr
    return p.stdout.decode().strip(), out_path.read_bytes()


def test_https_with_a_generated_certificate_serves_the_whole_journey(tls_server, demo_dir):
    s = tls_server
    assert f"listening on https://127.0.0.1:{s.port} (HTTPS" in s.stdout()
    # The server presents exactly the certificate the test made.
    ctx = ssl.create_default_context(cafile=str(s.cert_path))
    with socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.getpeercert(binary_form=True) == s.cert_der
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    # A client that does not trust it refuses it (it is really TLS with that certificate).
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{s.base}/healthz", timeout=TIMEOUT)
    # authlib's PKCE flow, FHIR and DICOMweb, all over HTTPS.
    _, token = login(s, "DEMO-001")
    r = requests.get(
        f"{s.base}/fhir/ImagingStudy",
        params={"patient": "Patient/DEMO-001", "_include": "ImagingStudy:endpoint"},
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=TIMEOUT,
        verify=s.verify,
    )
    bundle = fhir_json(r, "Bundle")
    (address,) = {e["resource"]["address"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Endpoint"}
    assert address == f"https://127.0.0.1:{s.port}/dicom-web"
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE would override `verify`
    session.verify = s.verify
    session.headers["Authorization"] = f"Bearer {token['access_token']}"
    client = DICOMwebClient(url=address, session=session)
    ref = demo_files(demo_dir, "DEMO-001")[INSTANCE]
    frames = client.retrieve_instance_frames(STUDY, SERIES, INSTANCE, frame_numbers=[1, 20])
    want = reference_frames(ref)
    assert [bytes(f) for f in frames] == [want[0], want[19]]
    assert {m["00080018"]["Value"][0] for m in client.retrieve_study_metadata(STUDY)} == {
        INSTANCE,
        f"{DEMO_ROOT}.2.2.1",
    }
    # The dev EHR's SMART configuration names https endpoints.
    conf = requests.get(f"{s.base}/dev/fhir/.well-known/smart-configuration", timeout=TIMEOUT, verify=s.verify).json()
    assert conf["token_endpoint"] == f"https://127.0.0.1:{s.port}/dev/token"


def test_tls_offers_http2_by_alpn_and_http11_to_clients_without_it(tls_server):
    s = tls_server
    for offered, chosen in [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")]:
        ctx = ssl.create_default_context(cafile=str(s.cert_path))
        ctx.set_alpn_protocols(offered)
        with socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.selected_alpn_protocol() == chosen, offered
    # curl (nghttp2) speaks HTTP/2 over that TLS and gets the same frame bytes.
    token = s.token
    auth = ["-H", f"Authorization: Bearer {token}", "-H", "Accept: application/octet-stream"]
    out = {}
    for flag in ["--http2", "--http1.1"]:
        out[flag] = curl_body(s.workdir / "frame.bin", flag, "--cacert", str(s.cert_path), *auth, s.base + FRAME)
    assert out["--http2"][0] == "2 200", out["--http2"][0]
    assert out["--http1.1"][0] == "1.1 200", out["--http1.1"][0]
    assert out["--http2"][1] == out["--http1.1"][1] and len(out["--http2"][1]) == 64 * 64


def test_plain_http_on_the_tls_port_gets_no_http_answer(tls_server):
    s = tls_server
    with socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        received = b""
        try:
            while chunk := raw.recv(4096):
                received += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    assert not received.startswith(b"HTTP/"), received[:100]
    assert b"ok" not in received
    try:
        r = requests.get(f"http://127.0.0.1:{s.port}/healthz", timeout=TIMEOUT)
    except requests.exceptions.ConnectionError:
        pass
    else:
        raise AssertionError(f"plain HTTP answered on the TLS port: {r.status_code} {r.text[:100]!r}")
    # ... and the server keeps serving TLS clients.
    assert requests.get(f"{s.base}/healthz", timeout=TIMEOUT, verify=s.verify).text == "ok\n"


def test_tls_with_an_unusable_certificate_refuses_to_start(sia, tmp_path):
    cert, key, _ = make_certificate(tmp_path)
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    for cert_name, key_name, named in [("bad.pem", key.name, "bad.pem"), (cert.name, "missing.pem", "missing.pem")]:
        (tmp_path / "bad.toml").write_text(
            f'[server]\nbase_url = "https://127.0.0.1"\ndb = "sia.db"\n'
            f'[server.tls]\ncert_file = "{cert_name}"\nkey_file = "{key_name}"\n'
        )
        p = subprocess.run(
            [str(sia), "serve", "--config", tmp_path / "bad.toml", "--listen", f"127.0.0.1:{free_port()}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode != 0
        assert named in p.stderr, p.stderr
        assert "listening on" not in p.stdout


def preflight(base, path, origin=VIEWER, method="GET", headers="authorization, accept"):
    return requests.options(
        base + path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
        timeout=TIMEOUT,
    )


def header_list(r, name):
    return {v.strip().lower() for v in r.headers.get(name, "").split(",") if v.strip()}


def test_cors_preflight_from_another_origin_is_allowed_with_dev(dev_server):
    base = dev_server.base
    for path in [METADATA, FRAME, "/fhir/ImagingStudy", "/dev/fhir/Patient/DEMO-001", "/dicom-web/studies"]:
        r = preflight(base, path)
        assert r.status_code in (200, 204), (path, r.status_code)
        assert r.headers.get("Access-Control-Allow-Origin") == "*", path
        assert {"get"} <= header_list(r, "Access-Control-Allow-Methods"), path
        assert {"authorization", "accept"} <= header_list(r, "Access-Control-Allow-Headers"), path
        assert not r.content
    # The token endpoint, posted to from a browser app.
    r = preflight(base, "/dev/token", method="POST", headers="content-type")
    assert r.headers.get("Access-Control-Allow-Origin") == "*"
    assert "post" in header_list(r, "Access-Control-Allow-Methods")
    # The actual request: allowed origin, and the headers a viewer reads are exposed.
    r = requests.get(
        base + METADATA,
        headers={"Origin": VIEWER, "Authorization": f"Bearer {dev_server.token}"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200 and r.headers.get("Access-Control-Allow-Origin") == "*"
    assert {"www-authenticate", "content-location", "warning"} <= header_list(r, "Access-Control-Expose-Headers")
    # Refusals carry it too, so a browser app can read the 401 challenge.
    r = requests.get(base + METADATA, headers={"Origin": VIEWER}, timeout=TIMEOUT)
    assert r.status_code == 401 and r.headers.get("Access-Control-Allow-Origin") == "*"
    # A request without Origin (a PACS, a script) gets no CORS headers, but the same
    # Vary, so a cache never hands its answer to a cross-origin request.
    r = requests.get(base + METADATA, headers={"Authorization": f"Bearer {dev_server.token}"}, timeout=TIMEOUT)
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    assert {"origin", "access-control-request-method", "access-control-request-headers"} <= header_list(r, "Vary")
    with_origin = requests.get(
        base + METADATA,
        headers={"Origin": VIEWER, "Authorization": f"Bearer {dev_server.token}"},
        timeout=TIMEOUT,
    )
    assert header_list(with_origin, "Vary") == header_list(r, "Vary")


def test_cors_origins_from_the_configuration_allow_only_those(start_server, demo_dir, tmp_path, monkeypatch):
    config = f"""
[server]
base_url = "http://127.0.0.1:{{PORT}}"
db = "sia.db"
cors_origins = ["{VIEWER}"]
[patients]
policy = "identity"
"""
    # With --dev too: the configured list replaces the any-origin default of --dev.
    s = server_on_known_port(start_server, monkeypatch, config, demo_dir, "--dev", workdir=tmp_path)
    auth = {"Authorization": f"Bearer {s.token}"}
    r = preflight(s.base, METADATA)
    assert r.status_code in (200, 204)
    assert r.headers.get("Access-Control-Allow-Origin") == VIEWER
    assert "origin" in header_list(r, "Vary")
    assert {"authorization", "accept"} <= header_list(r, "Access-Control-Allow-Headers")
    r = requests.get(s.base + METADATA, headers={"Origin": VIEWER, **auth}, timeout=TIMEOUT)
    assert r.status_code == 200 and r.headers.get("Access-Control-Allow-Origin") == VIEWER
    for other in ["http://evil.example", "http://viewer.example.evil", "https://viewer.example", "null"]:
        r = preflight(s.base, METADATA, origin=other)
        assert "Access-Control-Allow-Origin" not in r.headers, other
        r = requests.get(s.base + METADATA, headers={"Origin": other, **auth}, timeout=TIMEOUT)
        assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers, other


def test_no_cors_headers_without_configuration(start_server, demo_dir, tmp_path):
    s = start_server(demo_dir, "--db", tmp_path / "sia.db")
    r = preflight(s.base, METADATA)
    assert "Access-Control-Allow-Origin" not in r.headers
    r = requests.get(s.base + METADATA, headers={"Origin": VIEWER}, timeout=TIMEOUT)
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers


def raw_get(url, headers):
    """GET without decoding: (response, the bytes as they came on the wire)."""
    r = requests.get(url, headers=headers, timeout=TIMEOUT, stream=True)
    body = r.raw.read(decode_content=False)
    return r, body


def test_gzip_for_json_only_never_for_pixel_data(dev_server, demo_dir):
    base, token = dev_server.base, dev_server.token
    auth = {"Authorization": f"Bearer {token}"}
    identity, plain = raw_get(base + METADATA, {**auth, "Accept-Encoding": "identity"})
    assert identity.status_code == 200 and "Content-Encoding" not in identity.headers
    for path, kind in [(METADATA, "application/dicom+json"), ("/fhir/ImagingStudy?patient=Patient/DEMO-001", "application/fhir+json")]:
        r, wire = raw_get(base + path, {**auth, "Accept-Encoding": "gzip"})
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(kind)
        assert r.headers.get("Content-Encoding") == "gzip", path
        assert "accept-encoding" in header_list(r, "Vary")
        assert wire[:2] == b"\x1f\x8b"
        body = gzip.decompress(wire)
        if path == METADATA:
            assert body == plain
    want = reference_frames(demo_files(demo_dir, "DEMO-001")[INSTANCE])[0]
    for accept in ["application/octet-stream", 'multipart/related; type="application/octet-stream"']:
        r, wire = raw_get(base + FRAME, {**auth, "Accept-Encoding": "gzip, deflate, br", "Accept": accept})
        assert r.status_code == 200, accept
        assert "Content-Encoding" not in r.headers, accept
        assert int(r.headers["Content-Length"]) == len(wire)
        assert want in wire
    r, wire = raw_get(
        f"{base}/dicom-web/studies/{STUDY}",
        {**auth, "Accept-Encoding": "gzip", "Accept": 'multipart/related; type="application/dicom"'},
    )
    assert r.status_code == 200 and "Content-Encoding" not in r.headers
    assert b"DICM" in wire


def test_head_answers_like_get_without_a_body(dev_server):
    base = dev_server.base
    auth = {"Authorization": f"Bearer {dev_server.token}", "Accept-Encoding": "identity"}
    for path in [METADATA, FRAME, "/fhir/ImagingStudy?patient=Patient/DEMO-001", "/healthz"]:
        got = requests.get(base + path, headers=auth, timeout=TIMEOUT)
        head = requests.head(base + path, headers=auth, timeout=TIMEOUT)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["Content-Type"].split(";")[0] == got.headers["Content-Type"].split(";")[0], path
        if "Content-Length" in head.headers:
            assert int(head.headers["Content-Length"]) == len(got.content), path
    # HEAD goes through the same authorization.
    r = requests.head(base + METADATA, timeout=TIMEOUT)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")


def test_http2_with_prior_knowledge_on_the_plain_port(dev_server, tmp_path):
    base, token = dev_server.base, dev_server.token
    auth = ["-H", f"Authorization: Bearer {token}", "-H", "Accept: application/octet-stream"]
    bodies = {}
    for flag in ["--http2-prior-knowledge", "--http1.1"]:
        bodies[flag] = curl_body(tmp_path / "frame.bin", flag, *auth, base + FRAME)
    assert bodies["--http2-prior-knowledge"][0] == "2 200"
    assert bodies["--http1.1"][0] == "1.1 200"
    assert bodies["--http2-prior-knowledge"][1] == bodies["--http1.1"][1]
    # Other answers over HTTP/2 too, a refusal among them (one request per curl: curl
    # 7.88 cannot reuse a prior-knowledge connection, curl/curl#10634).
    for path, want in [
        (METADATA, "2 200"),
        ("/fhir/ImagingStudy", "2 200"),
        (f"/dicom-web/studies/{DEMO_ROOT}.3/metadata", "2 403"),
        ("/healthz", "2 200"),
    ]:
        status, _ = curl_body(tmp_path / "out.bin", "--http2-prior-knowledge", "-H", f"Authorization: Bearer {token}", base + path)
        assert status == want, path
