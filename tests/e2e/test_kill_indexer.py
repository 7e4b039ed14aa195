"""kill -9 of a running `sia index` process (issue 15, item 3): the index it leaves is
consistent (SQLite `PRAGMA integrity_check` and foreign keys; on PostgreSQL the
constraint checks of index_checks.py), and a re-run converges to the index one clean
run makes. On SQLite, and on PostgreSQL when SIA_TEST_PG_URL names a server
(scripts/test's PostgreSQL pass)."""

import signal
import subprocess
import time

import pytest

from index_checks import DUMP, FILES, VIOLATIONS, backend, run_index, write_corpus  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kill") / "data"
    write_corpus(folder)
    return folder


def test_kill_9_mid_run_leaves_a_consistent_index_and_the_rerun_converges(sia, backend, corpus):
    clean = backend.new("clean")
    run_index(sia, clean, corpus)
    expected = [backend.query(clean, q) for q in DUMP]
    assert len(expected[1]) == FILES, "one instance per SOP Instance UID"

    killed = backend.new("killed")
    proc = subprocess.Popen(
        [str(sia), "index", "--db", str(killed), str(corpus)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill once a batch has committed, while the run is still going.
    deadline = time.time() + 300
    while backend.committed_files(killed) == 0:
        assert proc.poll() is None, "the run ended before its first commit was seen"
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = backend.committed_files(killed)
    assert 0 < partial < FILES, f"killed after {partial} of {FILES} files: not mid-run"

    backend.structural(killed)
    for q in VIOLATIONS:
        assert backend.query(killed, q) == [], f"after kill -9: {q}"

    run_index(sia, killed, corpus)
    backend.structural(killed)
    for q in VIOLATIONS:
        assert backend.query(killed, q) == [], f"after the re-run: {q}"
    assert [backend.query(killed, q) for q in DUMP] == expected
