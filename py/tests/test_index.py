"""Engine.index: the report, the progress callback, the GIL released while the engine
works, and Ctrl-C (SIGINT) cancelling a run without harming the index."""

from __future__ import annotations

import io
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import sia


def test_report_counts_and_reasons(demo_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    junk = tmp_path / "files"
    junk.mkdir()
    (junk / "not-dicom.dcm").write_bytes(b"hello")
    with sia.Engine(tmp_path / "sia.db") as e:
        first = e.index([demo_dir, junk], progress=False)
        assert (first.indexed, first.unchanged, first.removed) == (40, 0, 0)
        assert [p for p, _ in first.skipped] == [str(junk / "not-dicom.dcm")]
        assert first.skipped[0][1]  # a reason
        again = e.index([demo_dir, junk], progress=False)
        assert (again.indexed, again.unchanged) == (0, 41)  # the skipped file too: it did not change
        victim = sorted(demo_dir.rglob("*.dcm"))[0]
        moved = tmp_path / "moved.dcm"
        victim.rename(moved)
        try:
            after = e.index(demo_dir, progress=False)
            assert after.removed == 1
        finally:
            moved.rename(victim)
        assert "indexed" in str(after) and after.seconds >= 0


def test_progress_callback_runs_on_the_calling_thread(many_files: tuple[pathlib.Path, int], tmp_path: pathlib.Path) -> None:
    root, total = many_files
    seen: list[sia.IndexProgress] = []
    threads = set()

    def progress(p: sia.IndexProgress) -> None:
        seen.append(p)
        threads.add(threading.get_ident())

    with sia.Engine(tmp_path / "sia.db") as e:
        report = e.index(root, progress=progress)
    assert report.indexed + len(report.duplicates) == total
    assert seen, "no progress reported"
    assert threads == {threading.get_ident()}
    last = seen[-1]
    assert last.walk_done and last.files_done == last.files_found == total
    assert last.bytes_done > 0 and last.current.endswith(".dcm")
    done = [p.files_done for p in seen]
    assert done == sorted(done)


def test_other_threads_run_while_indexing(many_files: tuple[pathlib.Path, int], tmp_path: pathlib.Path) -> None:
    """A pure-Python thread counts while the main thread is inside ``index``. Were the
    GIL held for the call, the counter could not run at all until it returned; released,
    it keeps a good part of the pace it has alone (it shares the cores with the engine's
    threads, and on a busy machine with others)."""
    root, _ = many_files
    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    counter = threading.Thread(target=count)
    counter.start()
    try:
        t0, before = time.perf_counter(), ticks
        time.sleep(0.3)
        alone = (ticks - before) / (time.perf_counter() - t0)
        with sia.Engine(tmp_path / "sia.db") as e:
            # No progress callback: nothing in the run needs the GIL.
            t0, before = time.perf_counter(), ticks
            e.index(root, progress=False)
            elapsed, during = time.perf_counter() - t0, ticks - before
    finally:
        stop.set()
        counter.join()
    assert elapsed > 0.05, "the run was too short to tell"
    assert during / elapsed > alone / 20, (during / elapsed, alone)


SCRIPT = textwrap.dedent(
    """
    import sys, sia
    db, root = sys.argv[1], sys.argv[2]
    def progress(p):
        if p.files_done >= 50:
            print("started", flush=True)
    try:
        with sia.Engine(db) as e:
            e.index(root, progress=progress)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
    print("finished", flush=True)
    """
)


def test_sigint_cancels_and_the_index_stays_usable(many_files: tuple[pathlib.Path, int], tmp_path: pathlib.Path) -> None:
    root, total = many_files
    db = tmp_path / "sia.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(db), str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "started", (line, proc.stderr.read() if proc.stderr else "")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    stopped_after = time.monotonic() - t0
    if "finished" in out:
        pytest.fail("the run finished before the signal arrived: make the data set larger")
    assert proc.returncode == 130 and "interrupted" in out, (proc.returncode, out, err)
    # Cancelled promptly, not at the end of the run.
    assert stopped_after < 5, stopped_after
    with sia.Engine(db) as e:
        kept = e.studies()
        report = e.index(root, progress=False)
        assert report.indexed + len(report.duplicates) + report.unchanged == total
        # The interrupted run stopped before the end: this one had work left. (How much
        # depends on the machine: the signal follows the first progress call, about
        # 0.1 s in, by which a fast machine has indexed half of these 4,000 files.)
        assert report.unchanged < total, report
        again = e.index(root, progress=False)
        assert again.indexed == 0 and again.unchanged + len(again.duplicates) == total
        assert len(e.studies()) == 4 and len(kept) <= 4
    assert os.path.getsize(db) > 0


WALK_SCRIPT = textwrap.dedent(
    """
    import sys, time, sia
    db, root = sys.argv[1], sys.argv[2]
    seen = None
    def progress(p):
        global seen
        # A call while the walk goes on and nothing was written: the engine's periodic
        # call, the only kind a walk over unchanged files makes.
        if seen is None and not p.walk_done and p.files_done == 0:
            seen = time.monotonic()
            print("walking", flush=True)
    with sia.Engine(db) as e:
        # How long the whole walk takes here and now, to compare the stop with.
        t0 = time.monotonic()
        e.index(root, progress=False)
        whole = time.monotonic() - t0
        try:
            e.index(root, progress=progress)
        except KeyboardInterrupt:
            print(f"interrupted {time.monotonic() - seen:.3f} {whole:.3f}", flush=True)
            sys.exit(130)
    print("finished", flush=True)
    """
)


@pytest.fixture(scope="session")
def unchanged_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path, int]:
    """An index of 60,000 files that are not DICOM (indexed as skipped), so that running
    it again only walks: nothing is read or written, for long enough to be interrupted."""
    root = tmp_path_factory.mktemp("walk")
    total = 0
    for d in range(300):
        sub = root / f"d{d:03}"
        sub.mkdir()
        for f in range(200):
            (sub / f"f{f:03}.txt").write_bytes(b"x")
            total += 1
    db = tmp_path_factory.mktemp("walkdb") / "sia.db"
    with sia.Engine(db) as e:
        report = e.index(root, progress=False)
    assert len(report.skipped) == total
    return root, db, total


def test_sigint_during_a_walk_that_writes_nothing_cancels_promptly(
    unchanged_tree: tuple[pathlib.Path, pathlib.Path, int],
) -> None:
    root, db, total = unchanged_tree
    proc = subprocess.Popen(
        [sys.executable, "-c", WALK_SCRIPT, str(db), str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "walking", (line, proc.stderr.read() if proc.stderr else "")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if "finished" in out:
        pytest.fail("the walk finished before the signal arrived: make the tree larger")
    assert proc.returncode == 130 and "interrupted" in out, (proc.returncode, out, err)
    # Noticed within a few progress intervals, not at the end of the walk: the child
    # times both, under the same load.
    stopped, whole = map(float, out.split("interrupted", 1)[1].split()[:2])
    assert stopped < whole / 2, (stopped, whole)
    with sia.Engine(db) as e:
        report = e.index(root, progress=False)
    assert (report.unchanged, report.indexed, report.removed) == (total, 0, 0), report


def test_a_failing_callback_cancels_and_raises(many_files: tuple[pathlib.Path, int], tmp_path: pathlib.Path) -> None:
    root, total = many_files

    class Stop(Exception):
        pass

    def progress(p: sia.IndexProgress) -> None:
        raise Stop

    with sia.Engine(tmp_path / "sia.db") as e:
        t0 = time.monotonic()
        with pytest.raises(Stop):
            e.index(root, progress=progress)
        assert time.monotonic() - t0 < 5
        report = e.index(root, progress=False)
        assert report.indexed + len(report.duplicates) + report.unchanged == total
        assert report.unchanged < total / 2, report


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_default_display_is_a_bar_on_a_terminal_only(demo_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    from sia._progress import PlainProgress, TqdmProgress, default_display

    assert default_display(io.StringIO()) is None
    shown = default_display(Terminal())
    try:
        import tqdm  # noqa: F401

        assert isinstance(shown, TqdmProgress)
    except ImportError:
        assert isinstance(shown, PlainProgress)
    out = Terminal()
    plain = PlainProgress(out)
    with sia.Engine(tmp_path / "sia.db") as e:
        e.index(demo_dir, progress=plain)
    plain.close()
    text = out.getvalue()
    assert text.startswith("\rindexing: ") and "40/40 files" in text and text.endswith("\n"), text
