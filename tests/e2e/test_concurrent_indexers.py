"""Two `sia index` processes released at the same instant (issue 15, item 3), on the same
folder and on overlapping folders, on SQLite and on PostgreSQL (when SIA_TEST_PG_URL
names a server): both exit 0, and the index they leave is the one a single run makes,
row for row, with no duplicate or orphan row and the structural checks passing.

Both processes are spawned first, each blocked reading a FIFO, then released together
by one write to it, so their opens, schema checks, walks and first batches coincide."""

import json
import os
import pathlib
import subprocess
import time

import pytest

from index_checks import DUMP, VIOLATIONS, backend, run_index, write_corpus  # noqa: F401 (fixture)

# Enough files for several batches per run in a debug build.
FILES = 1500


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("concurrent") / "data"
    write_corpus(folder, FILES)
    return folder


def waiting_on(pid: int, fifo: pathlib.Path) -> bool:
    """Whether process `pid` has the FIFO open and sleeps in a read of it."""
    try:
        fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read()
    except OSError:
        return False
    return str(fifo) in fds and "pipe" in wchan


def index_at_once(sia, tmp_path, db, runs):
    """Runs `sia index --json --db DB FOLDERS...` once per entry of `runs`, all released
    at the same instant; answers each process's (exit status, report, stderr)."""
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    # Opened read-write, so that neither this open nor the processes' opens block, and
    # the processes wait in `read` until the write below.
    gate = os.open(fifo, os.O_RDWR)
    procs = [
        subprocess.Popen(
            ["sh", "-c", 'read _ < "$0"; exec "$@"', str(fifo), str(sia), "index", "--json", "--db", str(db), *map(str, folders)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for folders in runs
    ]
    deadline = time.time() + 30
    while not all(waiting_on(p.pid, fifo) for p in procs):
        assert time.time() < deadline, "the processes did not reach the gate"
        time.sleep(0.01)
    os.write(gate, b"go\n" * len(procs))
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        out.append((p.returncode, json.loads(stdout) if p.returncode == 0 else None, stderr))
    os.close(gate)
    return out


@pytest.mark.parametrize("overlap", ["same folder", "overlapping folders"])
def test_two_index_processes_released_together_make_the_index_of_one_run(sia, backend, corpus, tmp_path, overlap):
    clean = backend.new("clean")
    run_index(sia, clean, corpus)
    expected = [backend.query(clean, q) for q in DUMP]
    assert len(expected[1]) == FILES

    db = backend.new("together")
    if overlap == "same folder":
        runs = [[corpus], [corpus]]
    else:
        # The whole corpus, and a part of it with the folder of duplicates: both runs
        # meet the same files and the same SOP Instance UIDs from different walks.
        runs = [[corpus], [corpus / "000", corpus / "zz-duplicates"]]
    results = index_at_once(sia, tmp_path, db, runs)
    for status, _, stderr in results:
        assert status == 0, f"{backend.name}, {overlap}: exit {status}\n{stderr}"
    reports = [r for _, r, _ in results]
    # Every file was read by one run or the other; a run that came second found the
    # other's rows and skipped them as unchanged.
    assert sum(r["indexed"] for r in reports) >= FILES, reports

    backend.structural(db)
    for q in VIOLATIONS:
        assert backend.query(db, q) == [], f"{backend.name}, {overlap}: {q}"
    assert [backend.query(db, q) for q in DUMP] == expected
    # And a run after both changes nothing.
    again = subprocess.run(
        [str(sia), "index", "--json", "--db", str(db), str(corpus)], check=True, capture_output=True, text=True
    )
    report = json.loads(again.stdout)
    assert report["indexed"] == 0 and report["removed"] == 0, report
