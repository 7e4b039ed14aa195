"""Two `sia serve` hosts over one PostgreSQL index (issue 15): the same answers from
both, a file indexed through one served by the other, and connections the database
ended replaced without an error. Runs when SIA_TEST_PG_URL names a server
(scripts/test starts a throwaway one with scripts/pg-throwaway); skipped otherwise."""

import os
import shutil
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import paths_of, without_boundary

PG_URL = os.environ.get("SIA_TEST_PG_URL", "")
pytestmark = pytest.mark.skipif(
    not PG_URL or not shutil.which("psql"),
    reason="no PostgreSQL server (SIA_TEST_PG_URL) or no psql",
)
BASE = "https://pacs.example"


def psql(sql: str, url: str = PG_URL) -> str:
    return subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-tAc", sql],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def schema_url():
    """A URL of a new schema for one test's index."""
    schema = "e2e_" + uuid.uuid4().hex[:12]
    psql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-c%20search_path%3D{schema}", schema
    psql(f"DROP SCHEMA {schema} CASCADE")


def test_two_hosts_answer_alike_and_serve_what_the_other_indexed(start_server, demo_dir, schema_url):
    url, _ = schema_url
    indexer = start_server(demo_dir, "--db", url, "--base-url", BASE)
    reader = start_server("--db", url, "--base-url", BASE)  # indexes nothing itself
    assert len(indexer.get("/dicom-web/studies").json()) == 4
    for path in paths_of(indexer):
        a, b = indexer.get(path), reader.get(path)
        assert a.status_code == 200, (path, a.status_code, a.text[:200])
        kind = lambda r: r.headers.get("Content-Type", "").split("; boundary=")[0]
        assert (b.status_code, kind(b)) == (a.status_code, kind(a)), path
        assert without_boundary(a) == without_boundary(b), path


def test_connections_the_database_ended_are_replaced_without_an_error(start_server, demo_dir, schema_url):
    url, _ = schema_url
    app = "sia_e2e_" + uuid.uuid4().hex[:8]
    host = start_server(demo_dir, "--db", f"{url}&application_name={app}", "--base-url", BASE)
    with ThreadPoolExecutor(4) as pool:  # several idle connections in the host's pool
        assert {r.status_code for r in pool.map(host.get, ["/dicom-web/studies"] * 8)} == {200}
    ended = psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE application_name = '{app}'"
    ).strip()
    assert int(ended) >= 1
    deadline = time.time() + 10
    while int(psql(f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'")) > 0:
        assert time.time() < deadline
        time.sleep(0.01)
    # Each dead connection fails at its first statement and the request runs again on
    # another: no request sees the loss (a database that is down answers 503:
    # test_postgres_outage.py).
    for path in ["/dicom-web/studies", "/fhir/ImagingStudy", "/dicom-web/series", "/dicom-web/studies"]:
        r = host.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
    assert host.proc.poll() is None, "the host exited"
