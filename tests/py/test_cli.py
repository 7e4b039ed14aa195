"""The `sia` command's interface: exit codes, JSON report, and a run killed mid-way."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import time

from conftest import index_json, run_sia


def test_missing_path_fails_the_run(sia, tmp_path):
    proc = run_sia(sia, "index", "--db", tmp_path / "x.db", "--json", tmp_path / "nope", check=False)
    assert proc.returncode != 0
    assert "nope" in proc.stderr


def test_bad_files_do_not_fail_the_run(sia, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "junk.dcm").write_bytes(b"not dicom at all" * 10)
    (tmp_path / "data" / "empty.dcm").write_bytes(b"")
    report = index_json(sia, tmp_path / "x.db", tmp_path / "data")
    assert set(report) == {"indexed", "unchanged", "removed", "duplicates", "skipped", "conflicts", "nonconformant_uids", "normalized_charsets", "seconds"}
    assert report["indexed"] == 0
    assert sorted(os.path.basename(s["path"]) for s in report["skipped"]) == ["empty.dcm", "junk.dcm"]
    assert all(s["reason"] for s in report["skipped"])


def test_studies_without_index_is_a_clear_error(sia, tmp_path):
    proc = run_sia(sia, "studies", "--db", tmp_path / "none.db", check=False)
    assert proc.returncode != 0 and "sia index" in proc.stderr


def make_corpus(sia, root, copies):
    """Many copies of the demo set, each with its own UIDs (same length, so every
    element length stays right)."""
    run_sia(sia, "demo", root / "base")
    base_files = sorted((root / "base").rglob("*.dcm"))
    for c in range(copies):
        for f in base_files:
            data = f.read_bytes()
            data = data.replace(b"2.25.228146457203842916711418316839742735", b"2.25.%d" % (10**35 + c))
            dest = root / f"copy{c:03d}" / f.relative_to(root / "base")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)


def test_killed_mid_run_leaves_an_index_that_opens_and_a_rerun_completes(sia, tmp_path):
    corpus = tmp_path / "corpus"
    make_corpus(sia, corpus, 300)  # 12,000 files: several batch commits per run
    started = time.monotonic()
    reference = index_json(sia, tmp_path / "ref.db", corpus)
    duration = time.monotonic() - started
    expected = sqlite3.connect(tmp_path / "ref.db").execute("SELECT count(*) FROM instances").fetchone()[0]
    assert expected == reference["indexed"] > 2000
    rng = random.Random(7)
    db = tmp_path / "killed.db"
    interrupted = partial = 0
    for attempt in range(6):
        proc = subprocess.Popen([str(sia), "index", "--db", str(db), "--json", str(corpus)], stdout=subprocess.DEVNULL)
        # Each run has less left to do, so aim at a shrinking window.
        time.sleep(rng.uniform(0.2, 0.9) * duration / (attempt + 1))
        proc.send_signal(signal.SIGKILL)
        interrupted += proc.wait() == -signal.SIGKILL
        con = sqlite3.connect(db)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # Every indexed file row has its instance, and no instance lacks its file.
        orphans = con.execute(
            "SELECT count(*) FROM files f LEFT JOIN instances i ON i.file = f.id WHERE f.state = 0 AND i.id IS NULL"
        ).fetchone()[0]
        assert orphans == 0, f"attempt {attempt}: {orphans} files marked indexed without an instance"
        partial += 0 < con.execute("SELECT count(*) FROM instances").fetchone()[0] < expected
        con.close()
    assert interrupted >= 3 and partial >= 1, "no kill landed mid-write; the test proves nothing"
    final = index_json(sia, db, corpus)
    assert final["skipped"] == []
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM instances").fetchone()[0] == expected
    ref = sqlite3.connect(tmp_path / "ref.db")
    q = "SELECT study_uid, num_series, num_instances, modalities FROM studies ORDER BY study_uid"
    assert con.execute(q).fetchall() == ref.execute(q).fetchall()
    again = index_json(sia, db, corpus)
    assert again["indexed"] == 0 and again["unchanged"] == reference["indexed"]
