"""Where `sia serve` agrees to listen, and how many connections it holds (issue 9):
`--dev` hands a token to anyone who asks, so it is refused on an address other machines
can reach unless forced, and says so loudly when forced; serving every study without a
token is refused there too; plain HTTP off loopback is served with a warning (SMART
requires TLS); `max_connections` bounds the connections served at once, the rest wait
until one closes."""

import socket
import subprocess
import time

import requests

from conftest import Server, free_port


def run_refused(sia, tmp_path, *args) -> str:
    """Runs `sia serve` expecting it to refuse to start; its stderr."""
    p = subprocess.run(
        [str(sia), "serve", *map(str, args), "--db", str(tmp_path / "sia.db")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode != 0, p.stdout + p.stderr
    assert "listening on" not in p.stdout
    return p.stderr


def test_dev_on_a_network_address_is_refused_unless_forced(sia, tmp_path, demo_dir):
    err = run_refused(sia, tmp_path, demo_dir, "--dev", "--listen", f"0.0.0.0:{free_port()}")
    assert "not a loopback address" in err and "--dev-on-network" in err, err


def test_no_token_check_on_a_network_address_is_refused(sia, tmp_path, demo_dir):
    err = run_refused(sia, tmp_path, demo_dir, "--listen", f"0.0.0.0:{free_port()}")
    assert "served to anyone" in err and "not a loopback address" in err, err


def test_forced_dev_on_a_network_address_warns_and_serves(sia, tmp_path, demo_dir):
    port = free_port()
    out, err = tmp_path / "out", tmp_path / "err"
    proc = subprocess.Popen(
        [str(sia), "serve", str(demo_dir), "--dev", "--dev-on-network",
         "--listen", f"0.0.0.0:{port}", "--db", str(tmp_path / "sia.db")],
        cwd=tmp_path, stdout=open(out, "w"), stderr=open(err, "w"),
    )
    try:
        deadline = time.time() + 120
        while "listening on" not in out.read_text():
            assert proc.poll() is None, err.read_text()
            assert time.time() < deadline, err.read_text()
            time.sleep(0.1)
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).text == "ok\n"
        time.sleep(0.3)  # log lines are written in batches
        log = err.read_text()
        assert "ANYONE WHO CAN REACH THIS ADDRESS CAN GET A TOKEN" in log, log
        assert "serving plain HTTP" in log and "SMART requires TLS" in log, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_loopback_without_tls_gives_no_network_warning(start_server, demo_dir, tmp_path):
    server = start_server(demo_dir, "--dev", "--db", tmp_path / "sia.db")
    log = server.log()
    assert "serving plain HTTP" not in log and "ANYONE" not in log, log


def request_on(s: socket.socket, timeout: float) -> bytes:
    """Sends a keep-alive `/healthz` request on `s` and reads the answer's first bytes
    (b"" when none comes within `timeout`)."""
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(timeout)
    try:
        return s.recv(4096)
    except socket.timeout:
        return b""


def test_connections_past_max_connections_wait_until_one_closes(start_server, demo_dir, tmp_path):
    (tmp_path / "sia.toml").write_text(
        '[server]\nbase_url = "http://127.0.0.1:8080"\ndb = "sia.db"\nmax_connections = 2\n'
    )
    server = start_server(demo_dir, "--config", tmp_path / "sia.toml")
    # Three connections, each asking once and kept open. The readiness probe's connection
    # may still hold a place (idle keep-alive lasts up to 10 s), so at most two answer.
    conns = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
    try:
        answers = [request_on(c, 2) for c in conns]
        served = [c for c, a in zip(conns, answers) if a.startswith(b"HTTP/1.1 200")]
        waiting = [c for c, a in zip(conns, answers) if not a]
        assert len(served) + len(waiting) == 3, answers
        assert served, "no connection served"
        assert waiting, "three connections served at once past max_connections=2"
        for c in served:
            c.close()
        waiting[0].settimeout(10)
        assert waiting[0].recv(4096).startswith(b"HTTP/1.1 200"), "not served once places were free"
    finally:
        for c in conns:
            c.close()
