"""Hostile HTTP against `sia serve` (issue 9, "Tests"): bad UIDs, `..`, `%2F`, `%00`,
oversized headers and URIs, a slow client sending headers byte by byte, 1,000 idle
connections, bad Accept and query values -> 4xx or a closed connection, and the server
keeps answering others; a client that disconnects mid-download leaks no descriptors or
mappings.

Requests that `requests` would normalise or refuse to send are written on raw sockets.
After every test the server must still answer `/healthz` and a normal metadata request
(the autouse `still_serving` fixture)."""

import os
import resource
import shutil
import socket
import threading
import time

import pytest
import requests

from _dicom_files import instance_url, write_large_instance
from conftest import Server


@pytest.fixture(scope="module", autouse=True)
def enough_descriptors():
    """1,000 client sockets here and as many on the server (which inherits the limit):
    raise the soft descriptor limit toward the hard one when it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def large(tmp_path_factory, enough_descriptors):
    """A folder holding one ~100 MB instance of 200 native 512 x 512 frames."""
    d = tmp_path_factory.mktemp("large") / "data"
    info = write_large_instance(d / "large.dcm")
    return info


@pytest.fixture(scope="module")
def server(sia, large, tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile")
    s = Server(sia, work, [large["path"].parent, "--dev", "--db", work / "sia.db"])
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def still_serving(request):
    """After each test, the module's server answers /healthz and a real request."""
    yield
    if "server" in request.fixturenames:
        s = request.getfixturevalue("server")
        assert_still_serving(s, request.getfixturevalue("large"))


def assert_still_serving(server, info):
    assert server.proc.poll() is None, f"the server died:\n{server.log()[-3000:]}"
    assert server.get("/healthz").status_code == 200
    r = server.get(f"/dicom-web/studies/{info['study']}/metadata", token=server.token)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.json()[0]["0020000D"]["Value"] == [info["study"]]


def raw(server, data: bytes, timeout=20):
    """Sends `data` on a new connection; returns (status or None, head bytes). None means
    the server closed (or reset) the connection without an answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may close while a huge request is still being sent
        got = b""
        try:
            while b"\r\n\r\n" not in got and len(got) < 65536:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
    if not got.startswith(b"HTTP/1.1 "):
        return None, got
    return int(got[9:12]), got


def get_line(path: str, token: str, extra: bytes = b"") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Connection: close\r\n"
    ).encode() + extra + b"\r\n"


def assert_4xx(status, head, allow_close=False):
    if status is None and allow_close:
        return
    assert status is not None, f"no answer: {head[:200]!r}"
    assert 400 <= status < 500, head[:300]


BAD_UIDS = [
    "not-a-uid",
    "1.2.abc",
    "1." * 40 + "2",  # longer than 64 characters
    "01.2.3",  # leading zero in a component
    "1.2.3.",
    "-1",
    "1.2.3;drop table studies",
    "%20",
]


@pytest.mark.parametrize("uid", BAD_UIDS)
def test_bad_uids_are_4xx(server, large, uid):
    token = server.token
    study, series = large["study"], large["series"]
    for path in [
        f"/dicom-web/studies/{uid}/metadata",
        f"/dicom-web/studies/{study}/series/{uid}",
        f"/dicom-web/studies/{study}/series/{series}/instances/{uid}/frames/1",
        f"/wado?requestType=WADO&studyUID={uid}&seriesUID={series}&objectUID={uid}",
        f"/fhir/ImagingStudy/{uid}",
    ]:
        status, head = raw(server, get_line(path, token))
        assert_4xx(status, head)


@pytest.mark.parametrize(
    "path",
    [
        "/dicom-web/studies/../../../../etc/passwd",
        "/dicom-web/../../../etc/passwd",
        "/dicom-web/studies/{study}/../../../../../etc/passwd",
        "/dicom-web/studies/{study}/series/../../../etc/passwd",
        "/dicom-web/studies/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/dicom-web/studies/{study}%2F..%2F..%2Fetc%2Fpasswd/metadata",
        "/dicom-web/studies/{study}%2fmetadata",
        "/dicom-web/studies/{study}%00/metadata",
        "/dicom-web/studies/{study}/series/{series}/instances/{instance}%00.dcm",
        "/wado?requestType=WADO&studyUID=..%2F..%2Fetc&seriesUID={series}&objectUID={instance}",
        "/wado?requestType=WADO&studyUID={study}%00&seriesUID={series}&objectUID={instance}",
        "/fhir/ImagingStudy/..%2F..%2Fetc%2Fpasswd",
        "/..%2F..%2F..%2Fetc%2Fpasswd",
    ],
)
def test_dot_dot_encoded_slash_and_nul_in_paths_are_4xx(server, large, path):
    path = path.format(**large)
    status, head = raw(server, get_line(path, server.token))
    assert_4xx(status, head)
    assert b"root:" not in head


def test_raw_nul_and_control_bytes_in_the_request_line_are_refused(server, large):
    for target in [
        f"/dicom-web/studies/{large['study']}\x00/metadata",
        "/healthz\x01",
        "/dicom-web/studies\x7f",
    ]:
        data = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        status, head = raw(server, data)
        assert_4xx(status, head, allow_close=True)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n",  # TLS to plain HTTP
        b"GET / HTTP/9.9\r\n\r\n",
        b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nBad Header Name: 1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
    ],
    ids=["tls-hello", "http-9.9", "unknown-method", "negative-length", "bad-header-name",
         "nul-in-header", "obsolete-folding"],
)
def test_malformed_requests_are_4xx_or_closed(server, request_bytes):
    status, head = raw(server, request_bytes)
    assert_4xx(status, head, allow_close=True)


def test_malformed_chunked_body_does_not_confuse_the_next_request(server):
    """A GET with a broken chunked body: whatever the answer to it, the bytes after it
    are never read as a second request on the same connection."""
    smuggled = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nGET /dicom-web/studies HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as s:
        s.sendall(smuggled)
        got = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert got.count(b"HTTP/1.1 ") <= 1, got[:500]


def test_oversized_header_is_431_or_closed(server):
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    status, head = raw(server, big)
    assert status in (None, 431), head[:200]
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    many += b"".join(b"X-H%d: 1\r\n" % i for i in range(1000)) + b"\r\n"
    status, head = raw(server, many)
    assert status in (None, 431), head[:200]
    huge_token = get_line("/dicom-web/studies", "e" * 100_000)
    status, head = raw(server, huge_token)
    assert status in (None, 431), head[:200]


def test_oversized_uri_is_414(server):
    for target in [
        "/dicom-web/studies?PatientID=" + "a" * 9000,
        "/dicom-web/studies/" + "1" * 9000 + "/metadata",
        "/fhir/ImagingStudy?patient=Patient/" + "x" * 20_000,
    ]:
        status, head = raw(server, get_line(target, server.token))
        assert status == 414, head[:300]
    # Past the head limit hyper refuses before routing: 414 or 431, or a close.
    status, head = raw(server, get_line("/dicom-web/studies?q=" + "a" * 100_000, "t"))
    assert status in (None, 414, 431), head[:200]


def test_slow_header_client_is_closed_while_others_are_served(server, large):
    """A client trickles a request head one byte every 0.5 s (it would take ~60 s to
    finish); the server closes it after its 10 s header timeout, well before."""
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 80 + b"\r\n\r\n"
    outcome = {}

    def slow():
        s = socket.create_connection(("127.0.0.1", server.port), timeout=1)
        start = time.monotonic()
        sent = 0
        try:
            while time.monotonic() - start < 45 and sent < len(head):
                try:
                    s.send(head[sent : sent + 1])
                    sent += 1
                except OSError as e:  # reset or broken pipe: closed by the server
                    outcome["closed"] = f"send: {e}"
                    break
                try:
                    got = s.recv(4096)
                    outcome["closed"] = f"recv {got[:80]!r}"  # EOF or a 408
                    break
                except TimeoutError:
                    pass
                except OSError as e:
                    outcome["closed"] = f"recv: {e}"
                    break
                time.sleep(0.5)
        finally:
            outcome["seconds"] = time.monotonic() - start
            outcome["sent"] = sent
            s.close()

    t = threading.Thread(target=slow, daemon=True)
    t.start()
    # Meanwhile another client is served as usual.
    served = 0
    while t.is_alive() and served < 200:
        assert_still_serving(server, large)
        served += 1
        time.sleep(0.2)
    t.join(timeout=60)
    assert not t.is_alive()
    assert "closed" in outcome, f"not closed after {outcome}"
    assert outcome["sent"] < len(head), outcome
    assert outcome["seconds"] < 40, outcome  # header timeout 10 s, generous margin
    assert served >= 3


def test_silent_clients_are_closed_after_the_header_timeout(server):
    """Connections that send nothing, or stop inside HTTP/2's preface (before hyper knows
    the protocol), are closed after the 10 s header timeout, not held for minutes."""
    held = {}

    def silent(first_bytes):
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as s:
            start = time.monotonic()
            if first_bytes:
                s.sendall(first_bytes)
            try:
                got = s.recv(4096)
            except (ConnectionResetError, TimeoutError) as e:
                got = repr(e).encode()
            held[first_bytes] = (time.monotonic() - start, got[:80])

    cases = [b"", b"P", b"PRI * HTTP/2.0\r\n"]
    threads = [threading.Thread(target=silent, args=(c,), daemon=True) for c in cases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert sorted(held) == sorted(cases), held
    for first_bytes, (seconds, got) in held.items():
        assert b"HTTP/1.1 200" not in got, (first_bytes, got)
        assert seconds < 40, f"{first_bytes!r} held {seconds:.1f} s ({got!r})"


def test_thousand_idle_connections_do_not_starve_other_clients(server, large):
    baseline = server.fds()
    idle = []
    try:
        for i in range(1000):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            if i % 4 == 1:
                s.sendall(b"GET /healthz HTTP/1.1\r\n")  # half a request head
            elif i % 4 == 2:
                s.sendall(b"G")  # not yet an HTTP version
            idle.append(s)
        # They were accepted: the server holds the connections (until its 10 s header
        # timeout closes them)...
        deadline = time.monotonic() + 8
        while server.fds() < baseline + 900 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.fds() >= baseline + 500, (baseline, server.fds())
        # ...and still answers others, on new connections and kept-alive ones.
        with requests.Session() as session:
            for _ in range(20):
                r = session.get(server.base + "/healthz", timeout=30)
                assert r.status_code == 200
        for _ in range(5):
            assert_still_serving(server, large)
    finally:
        for s in idle:
            s.close()
    # Closed by the clients, they are closed by the server too.
    deadline = time.monotonic() + 30
    while server.fds() > baseline + 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.fds() <= baseline + 5, (baseline, server.fds())


@pytest.mark.parametrize(
    "accept",
    [
        "image/unknown",
        "text/html",
        'multipart/related; type="image/png"',
        "application/octet-stream; transfer-syntax=1.2.3.4",
        "*/*;q=0",
        ";;;",
        "application/dicom+json;q=abc",
        "application/dicom+json;q=2",
        "/",
        'multipart/related; type="application/octet-stream"; boundary="' + "b" * 200,
    ],
)
def test_bad_accept_values_are_4xx(server, large, accept):
    frames = instance_url(large) + "/frames/1"
    for path in [frames, f"/dicom-web/studies/{large['study']}/metadata"]:
        r = server.get(path, token=server.token, headers={"Accept": accept})
        assert 400 <= r.status_code < 500, (path, accept, r.status_code, r.text[:200])


@pytest.mark.parametrize(
    "query",
    [
        "/dicom-web/studies?limit=-1",
        "/dicom-web/studies?limit=abc",
        "/dicom-web/studies?offset=99999999999999999999999",
        "/dicom-web/studies?StudyDate=notadate",
        "/dicom-web/studies?PatientID=%FF%FE",
        "/dicom-web/studies?StudyInstanceUID=" + "1" * 2000,
        "/dicom-web/studies/{study}/series?SeriesNumber=abc",
        "{instance_url}/frames/0",
        "{instance_url}/frames/abc",
        "{instance_url}/frames/1,,2",
        "{instance_url}/frames/99999999999",
        "{instance_url}/frames/201",
        "/fhir/ImagingStudy?patient=Patient/DEMO-001&_count=abc",
        "/fhir/ImagingStudy?patient=Patient/DEMO-001&_count=-5",
        "/fhir/ImagingStudy?unknown-parameter=1",
        "/wado?requestType=WADO&studyUID={study}&seriesUID={series}&objectUID={instance}&contentType=text/html",
        "/wado?requestType=NOPE&studyUID={study}&seriesUID={series}&objectUID={instance}",
    ],
)
def test_bad_query_values_are_4xx(server, large, query):
    path = query.format(**large, instance_url=instance_url(large))
    r = server.get(path, token=server.token)
    assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])


@pytest.mark.parametrize("read_mode", ["pread", "mmap"])
def test_disconnect_mid_download_leaks_no_descriptors_or_mappings(sia, tmp_path, read_mode):
    """Clients that stop after the first megabytes of a ~100 MB instance, closing
    politely or with a reset: once they are gone the server holds no more descriptors
    than before, and no mapping of the file outlives the cache's own (`mmap` mode; the
    default `pread` mode maps nothing)."""
    data = tmp_path / "data"
    info = write_large_instance(data / "leak.dcm")
    args = [data, "--dev", "--db", tmp_path / "sia.db"]
    if read_mode == "mmap":
        (tmp_path / "sia.toml").write_text(
            '[server]\nbase_url = "http://127.0.0.1:8080"\ndb = "sia.db"\n'
            '[patients]\npolicy = "identity"\n[storage]\nread_mode = "mmap"\n'
        )
        args += ["--config", tmp_path / "sia.toml"]
    server = Server(sia, tmp_path, args)
    try:
        token = server.token
        url = instance_url(info)
        whole = info["path"].stat().st_size
        # Warm up: one full download (the mapping cache now holds the file).
        r = server.get(url, token=token, headers={"Accept": "application/dicom"}, stream=True)
        assert r.status_code == 200
        assert sum(len(c) for c in r.iter_content(1 << 20)) == whole
        r.close()
        assert server.get("/healthz").status_code == 200
        time.sleep(0.5)
        fds_before = server.fds()
        maps_before = server.mapped_files("leak.dcm")
        if read_mode == "mmap":
            assert maps_before >= 1, maps_before  # the cached mapping
        else:
            assert maps_before == 0, maps_before

        for i in range(10):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            s.sendall(
                get_line(url, token, b"Accept: application/dicom\r\n").replace(
                    b"Connection: close\r\n", b""
                )
            )
            got = 0
            while got < 2 * 1024 * 1024:
                chunk = s.recv(1 << 16)
                assert chunk, "the server closed first"
                got += len(chunk)
            # The response is still being written: the server holds this connection.
            assert server.fds() >= fds_before + 1, (fds_before, server.fds())
            if i % 2:
                # Abortive close: RST instead of FIN.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()

        deadline = time.monotonic() + 30
        while server.fds() > fds_before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.fds() <= fds_before, (fds_before, server.fds(), os.listdir(f"/proc/{server.proc.pid}/fd"))
        assert server.mapped_files("leak.dcm") <= maps_before

        # The cache lets go of a file that changed; if an aborted response still held
        # the mapping, it would stay in /proc/<pid>/maps.
        os.utime(info["path"], ns=(time.time_ns(), time.time_ns() + 10**9))
        r = server.get(url, token=token, headers={"Accept": "application/dicom"})
        assert r.status_code == 410, r.status_code
        deadline = time.monotonic() + 30
        while server.mapped_files("leak.dcm") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.mapped_files("leak.dcm") == 0
        assert server.get("/healthz").status_code == 200
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def test_a_client_that_stops_reading_is_closed_after_the_write_timeout(sia, tmp_path):
    """`write_timeout_seconds`: a download whose client stops reading is given up once a
    write has made no progress that long; its descriptors are released while the client
    still holds its end, and the client never gets the whole instance."""
    data = tmp_path / "data"
    info = write_large_instance(data / "stall.dcm")
    (tmp_path / "sia.toml").write_text(
        '[server]\nbase_url = "http://127.0.0.1:8080"\ndb = "sia.db"\nwrite_timeout_seconds = 2\n'
        '[patients]\npolicy = "identity"\n'
    )
    server = Server(sia, tmp_path, [data, "--dev", "--db", tmp_path / "sia.db", "--config", tmp_path / "sia.toml"])
    s = None
    try:
        token = server.token
        url = instance_url(info)
        whole = info["path"].stat().st_size
        # Warm (the file's kept descriptor), on a connection that is closed after it.
        r = server.get(url, token=token, headers={"Accept": "application/dicom", "Connection": "close"})
        assert r.status_code == 200 and len(r.content) == whole
        time.sleep(0.5)
        before = server.fds()
        s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(get_line(url, token, b"Accept: application/dicom\r\n"))
        assert s.recv(1 << 16).startswith(b"HTTP/1.1 200")
        assert server.fds() > before, "the stalled connection holds a descriptor"
        # ...and read nothing more: within the timeout plus a margin the server lets go.
        deadline = time.monotonic() + 20
        while server.fds() > before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.fds() <= before, "the stalled connection was not closed"
        got = 0
        s.settimeout(10)
        try:
            while chunk := s.recv(1 << 20):
                got += len(chunk)
        except ConnectionResetError:
            pass
        assert got < whole, "the whole instance arrived though the client had stalled"
    finally:
        if s is not None:
            s.close()
        server.stop()
