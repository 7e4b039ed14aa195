"""The database stopped and started again under a running host (issue 15): `sia serve`
on a PostgreSQL index; the PostgreSQL server is shut down entirely (`pg_ctl stop -m
fast`, and `-m immediate`, a crash without a shutdown checkpoint). Every request that
needs the index then answers 503 with a clear message and `Retry-After`, each within
the connect timeout (no request hangs), also many at once; the process survives. The
server is started again on the same socket and port, and the host answers again without
a restart, exactly as before the outage.

Each test runs its own throwaway cluster (scripts/pg-throwaway start / server-stop /
server-start / stop), since it stops the server; skipped without PostgreSQL's server
binaries (Debian's postgresql package; scripts/test installs it)."""

import glob
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ROOT, paths_of, without_boundary

SCRIPT = ROOT / "scripts" / "pg-throwaway"
BASE = "https://pacs.example"
# The engine's default connect timeout (core/src/index/db/pg.rs DEFAULT_CONNECT_TIMEOUT):
# the longest a request may wait for a connection during an outage.
CONNECT_TIMEOUT = 5.0
# The host's caches of instance locations and study listings live at most a second;
# after that every request below needs the index.
CACHE_LIFETIME = 1.0

pytestmark = pytest.mark.skipif(
    not (shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb")),
    reason="no PostgreSQL server binaries (apt-get install postgresql)",
)


@pytest.fixture
def cluster():
    """(URL, folder) of a new throwaway PostgreSQL cluster, removed after the test."""
    out = subprocess.run([str(SCRIPT), "start"], check=True, capture_output=True, text=True).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    yield env["SIA_TEST_PG_URL"], env["SIA_TEST_PG_DIR"]
    subprocess.run([str(SCRIPT), "stop", env["SIA_TEST_PG_DIR"]], check=False)


def timed(host, path):
    started = time.monotonic()
    r = host.get(path)
    return r, time.monotonic() - started


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_the_database_stopped_and_started_again_under_a_running_host(start_server, demo_dir, cluster, mode):
    url, folder = cluster
    host = start_server(demo_dir, "--db", url, "--base-url", BASE)
    paths = paths_of(host)
    before = {}
    for p in paths:
        r = host.get(p)
        assert r.status_code == 200, (p, r.status_code, r.text[:200])
        before[p] = (r.headers.get("Content-Type", "").split("; boundary=")[0], without_boundary(r))
    # Several requests at once, so the pool holds more than one idle connection when the
    # server goes away.
    with ThreadPoolExecutor(8) as pool:
        assert {r.status_code for r in pool.map(host.get, paths * 2)} == {200}

    subprocess.run([str(SCRIPT), "server-stop", folder, mode], check=True)
    time.sleep(CACHE_LIFETIME + 0.5)

    waits = []
    for _ in range(3):
        for p in paths:
            r, took = timed(host, p)
            waits.append(took)
            assert r.status_code == 503, (mode, p, r.status_code, r.text[:200])
            assert r.headers.get("Retry-After") == "1", (p, r.headers)
            assert "index database is unavailable" in r.text, (p, r.text[:200])
    # Many at once: none waits behind another for a connection that cannot come.
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda p: timed(host, p), paths * 4))
    assert {r.status_code for r, _ in answers} == {503}
    waits += [t for _, t in answers]
    assert max(waits) < CONNECT_TIMEOUT, f"slowest 503 took {max(waits):.2f} s"
    assert host.proc.poll() is None, "the host exited during the outage"
    # The operator's side: the host logs each 503 with its cause.
    assert ": 503: index: " in host.log(), host.log()[-2000:]
    print(f"\n{mode}: {len(waits)} answers of 503 during the outage, slowest {max(waits) * 1000:.0f} ms")

    subprocess.run([str(SCRIPT), "server-start", folder], check=True)
    started = time.monotonic()
    while True:
        r = host.get("/dicom-web/studies")
        if r.status_code == 200:
            break
        assert r.status_code == 503, (r.status_code, r.text[:200])
        assert time.monotonic() - started < 10, "the host did not recover within 10 s"
        time.sleep(0.05)
    print(f"{mode}: answering again {(time.monotonic() - started) * 1000:.0f} ms after the database")
    # Back: every answer as before the outage, the first time and at once.
    for p in paths:
        r = host.get(p)
        assert r.status_code == 200, (mode, p, r.status_code, r.text[:200])
        kind = r.headers.get("Content-Type", "").split("; boundary=")[0]
        assert (kind, without_boundary(r)) == before[p], p
    with ThreadPoolExecutor(8) as pool:
        assert {r.status_code for r in pool.map(host.get, paths * 2)} == {200}
    assert host.proc.poll() is None
