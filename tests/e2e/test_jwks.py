"""`jwks_url` / `jwks_discovery` issuers against a JWKS server the test runs (issue 9,
"Tests": key rotation picked up, issuer down -> last good keys used, `max-age` honoured).

The EHR stand-in (`_jwks_server.JwksServer`) is a thread in this process on a free
loopback port; `sia serve --config` trusts it with the `identity` patient policy, so a
token for `patient: DEMO-001` reads the demo patient's studies with no links. Every
token is fresh (its own `jti`): the server's verified-token cache never answers for a
token the current keys would not verify."""

import re
import time
import uuid

import pytest

from _jwks_server import AUDIENCE, JwksServer, SigningKey

SEARCH = "/fhir/ImagingStudy?patient=Patient/DEMO-001"


def write_config(path, iss, db, jwks_url=None, discovery=False):
    source = 'jwks_discovery = true' if discovery else f'jwks_url = "{jwks_url}"'
    path.write_text(
        f"""[server]
base_url = "https://sia.test"
db = "{db}"

[[issuers]]
iss = "{iss}"
audiences = ["{AUDIENCE}"]
{source}
algorithms = ["RS256"]

[patients]
policy = "identity"
"""
    )
    return path


@pytest.fixture(scope="module")
def keys():
    """Two RSA keys (generating them is the slow part: once per module)."""
    return SigningKey("key-2026-01"), SigningKey("key-2026-02")


@pytest.fixture
def issuer():
    s = JwksServer()
    yield s
    s.stop()


@pytest.fixture
def serve_with_issuer(start_server, demo_dir, tmp_path):
    """Starts `sia serve DEMO --config` trusting `issuer`, and waits until the server has
    installed its first keys (its log says so), so no test request races the start-up
    fetch."""

    def start(issuer, discovery=False, wait=True):
        config = write_config(
            tmp_path / "sia.toml",
            iss=issuer.url,
            db=tmp_path / "sia.db",
            jwks_url=None if discovery else issuer.url + "/jwks.json",
            discovery=discovery,
        )
        server = start_server(demo_dir, "--config", config)
        if wait:
            wait_for_log(server, rf"JWKS of {re.escape(issuer.url)}: keys")
        return server

    return start


def wait_for_log(server, pattern, timeout=30, after=0):
    """Waits until `pattern` appears in the server's stderr past offset `after`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if re.search(pattern, server.log()[after:]):
            return
        time.sleep(0.05)
    raise AssertionError(f"no {pattern!r} in the server log:\n{server.log()}")


def assert_studies_served(server, token):
    r = server.get(SEARCH, token=token)
    assert r.status_code == 200, (r.status_code, r.text, server.log()[-3000:])
    bundle = r.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle.get("total", len(bundle.get("entry", []))) >= 1, bundle
    r = server.get("/dicom-web/studies?PatientID=DEMO-001", token=token)
    assert r.status_code == 200, (r.status_code, r.text)
    assert len(r.json()) >= 1


def assert_refused(server, token):
    r = server.get(SEARCH, token=token)
    assert r.status_code == 401, (r.status_code, r.text)
    assert "invalid_token" in r.headers.get("WWW-Authenticate", ""), r.headers


def test_token_signed_by_the_served_key_is_accepted(issuer, keys, serve_with_issuer):
    k1, k2 = keys
    issuer.set_keys(k1)
    server = serve_with_issuer(issuer)
    assert issuer.fetches() >= 1
    assert_studies_served(server, k1.token(issuer.url))
    # The keys are really checked: no token, another key under the served kid, and a
    # token from another issuer are all refused.
    r = server.get(SEARCH)
    assert r.status_code == 401
    impostor = SigningKey(k1.kid)
    assert_refused(server, impostor.token(issuer.url))
    assert_refused(server, k1.token("http://127.0.0.1:9/not-trusted"))


def test_rotated_key_is_fetched_on_the_first_request_with_its_kid(
    issuer, keys, serve_with_issuer
):
    k1, k2 = keys
    issuer.set_keys(k1)
    server = serve_with_issuer(issuer)  # max-age=3600: no scheduled fetch during the test
    assert_studies_served(server, k1.token(issuer.url))
    before = issuer.fetches()

    issuer.set_keys(k2)  # the EHR rotates its signing key
    assert_studies_served(server, k2.token(issuer.url))  # the very first request with k2
    assert issuer.fetches() == before + 1, "one fetch for the unknown kid"
    # The old key is gone from the issuer's JWKS, so it is gone from the server too.
    assert_refused(server, k1.token(issuer.url))


def test_key_rotation_is_logged(issuer, keys, serve_with_issuer):
    k1, k2 = keys
    issuer.set_keys(k1)
    server = serve_with_issuer(issuer)
    mark = len(server.log())
    issuer.set_keys(k1, k2)
    assert_studies_served(server, k2.token(issuer.url))
    wait_for_log(server, rf"JWKS of {re.escape(issuer.url)}: keys .*{k2.kid}.*were .*{k1.kid}", after=mark)
    line = next(line for line in server.log()[mark:].splitlines() if "JWKS of" in line)
    assert "/jwks.json" in line, line


def test_scheduled_refresh_follows_max_age_and_picks_up_rotation(
    issuer, keys, serve_with_issuer
):
    k1, k2 = keys
    issuer.cache_control = "public, max-age=1"
    issuer.set_keys(k1)
    server = serve_with_issuer(issuer)
    # With max-age=1 the JWKS is fetched again about every second, with no requests.
    start = time.monotonic()
    time.sleep(6)
    scheduled = issuer.fetches(since=start)
    assert 3 <= scheduled <= 30, f"{scheduled} fetches in 6 s with max-age=1"

    # A rotation is installed by the schedule alone, before any token asks for it.
    mark = len(server.log())
    issuer.set_keys(k2)
    wait_for_log(server, rf"JWKS of {re.escape(issuer.url)}: keys .*{k2.kid}", after=mark)
    assert_studies_served(server, k2.token(issuer.url))


def test_long_max_age_is_not_fetched_again(issuer, keys, serve_with_issuer):
    k1, _ = keys
    issuer.cache_control = "max-age=3600"
    issuer.set_keys(k1)
    server = serve_with_issuer(issuer)
    count = issuer.fetches()
    assert count == 1, f"{count} fetches at start"
    # Requests with known keys, over a few seconds, fetch nothing.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert_studies_served(server, k1.token(issuer.url))
        time.sleep(0.5)
    assert issuer.fetches() == 1, f"{issuer.fetches()} fetches with max-age=3600"


def test_tokens_with_unknown_kids_do_not_make_a_fetch_per_request(
    issuer, keys, serve_with_issuer
):
    k1, _ = keys
    issuer.set_keys(k1)
    server = serve_with_issuer(issuer)
    before = issuer.fetches()
    for _ in range(20):
        # The served key under random kids: all refused, and at most one fetch in all
        # (the engine's cooldown), so forged kids cannot make the server hammer the EHR.
        stranger = SigningKey(uuid.uuid4().hex, private=k1.private)
        assert_refused(server, stranger.token(issuer.url))
    assert issuer.fetches() - before <= 1, f"{issuer.fetches() - before} fetches for 20 unknown kids"
    assert_studies_served(server, k1.token(issuer.url))


def test_tokens_arriving_during_the_first_fetch_do_not_block_the_next_rotation(
    issuer, keys, serve_with_issuer
):
    """A slow EHR: requests arrive while the start-up fetch is still running. They wait
    for it (and are served), and spend no refresh: a rotation right after is still picked
    up on the first request with the new kid."""
    k1, k2 = keys
    issuer.set_keys(k1)
    issuer.delay = 4
    server = serve_with_issuer(issuer, wait=False)
    assert_studies_served(server, k1.token(issuer.url))
    assert_studies_served(server, k1.token(issuer.url))
    issuer.delay = 0
    issuer.set_keys(k2)
    assert_studies_served(server, k2.token(issuer.url))


@pytest.mark.parametrize("outage", ["stopped", "http-500", "not-a-jwks"])
def test_issuer_down_keeps_the_last_good_keys(issuer, keys, serve_with_issuer, outage):
    k1, k2 = keys
    issuer.cache_control = "max-age=1"  # the server keeps trying during the outage
    issuer.set_keys(k1)
    server = serve_with_issuer(issuer)
    assert_studies_served(server, k1.token(issuer.url))

    mark = len(server.log())
    if outage == "stopped":
        issuer.stop()
    elif outage == "http-500":
        issuer.status = 500
    else:
        issuer.body = b'{"keys": "rotated"}'  # JSON, but not a JWKS
    # The scheduled fetch fails and says it keeps the last good keys.
    wait_for_log(server, r"keeping the last good keys", after=mark)

    # Tokens of the last good key, never seen before, still work...
    for _ in range(3):
        assert_studies_served(server, k1.token(issuer.url))
    # ...a token with a kid the issuer cannot be asked about is refused, and the failed
    # refresh it causes does not drop the keys either.
    assert_refused(server, k2.token(issuer.url))
    assert_studies_served(server, k1.token(issuer.url))
    assert server.get("/healthz").status_code == 200


def test_discovery_reads_jwks_uri_from_smart_configuration(issuer, keys, serve_with_issuer):
    k1, _ = keys
    issuer.set_keys(k1)
    server = serve_with_issuer(issuer, discovery=True)
    assert issuer.fetches("/.well-known/smart-configuration") >= 1
    assert issuer.fetches("/jwks.json") >= 1
    first = [p for _, p in issuer.requests]
    assert first.index("/.well-known/smart-configuration") < first.index("/jwks.json"), first
    assert_studies_served(server, k1.token(issuer.url))
