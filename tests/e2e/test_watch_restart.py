"""`--watch`, shutdown and restart (issue 9, "Tests"): a file copied into a served folder
appears in QIDO and FHIR; a deleted one answers 404/410, a rewritten one never its old
bytes; SIGTERM during a large download ends cleanly; a restart on the same `--db` reuses
the index without re-reading unchanged files.

Each test serves its own copy of the demo set (the watched folder is written to), with
`--dev` for the ready token of DEMO-001, the patient every file here belongs to."""

import re
import shutil
import signal
import socket
import time

import numpy as np
import pytest
import pydicom

from _dicom_files import instance_url, write_instance, write_large_instance

POLL_SECONDS = 20


@pytest.fixture
def data(demo_dir, tmp_path):
    """A writable copy of the demo set."""
    d = tmp_path / "data"
    shutil.copytree(demo_dir, d)
    return d


def poll(check, what, timeout=POLL_SECONDS):
    """Calls `check()` until it returns something truthy (bounded); returns that."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def qido_has(server, uid) -> bool:
    r = server.get(f"/dicom-web/studies?StudyInstanceUID={uid}", token=server.token)
    assert r.status_code == 200, (r.status_code, r.text)
    return any(s["0020000D"]["Value"] == [uid] for s in r.json())


def fhir_has(server, uid) -> bool:
    r = server.get("/fhir/ImagingStudy?patient=Patient/DEMO-001", token=server.token)
    assert r.status_code == 200, (r.status_code, r.text)
    return any(e["resource"]["id"] == uid for e in r.json().get("entry", []))


def frame(server, info, n=1):
    return server.get(
        instance_url(info) + f"/frames/{n}",
        token=server.token,
        headers={"Accept": 'multipart/related; type="application/octet-stream"'},
    )


def pixel_frame(path, n=1) -> bytes:
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        arr = arr[n - 1]
    return arr.astype("<u2").tobytes()


def multipart_payload(resp) -> bytes:
    """The one part of a multipart/related frames response."""
    ctype = resp.headers["Content-Type"]
    boundary = re.search(r'boundary="?([^";]+)"?', ctype).group(1).encode()
    body = resp.content
    part = body.split(b"--" + boundary)[1]
    return part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]


def test_copied_in_file_appears_in_qido_and_fhir(start_server, data, tmp_path):
    server = start_server(data, "--watch", "--dev", "--db", tmp_path / "sia.db")
    outside = tmp_path / "outside" / "new.dcm"
    info = write_instance(outside, frames=2, description="copied in")
    assert not qido_has(server, info["study"])
    assert not fhir_has(server, info["study"])

    shutil.copy(outside, data / "DEMO-001" / "new.dcm")

    poll(lambda: qido_has(server, info["study"]), "the new study in QIDO")
    poll(lambda: fhir_has(server, info["study"]), "the new study in FHIR ImagingStudy")
    r = frame(server, info, 2)
    assert r.status_code == 200
    assert multipart_payload(r) == pixel_frame(outside, 2)
    # A file in a new sub-folder is found too (the watch is recursive).
    info2 = write_instance(tmp_path / "outside" / "deep.dcm", description="deep")
    (data / "DEMO-001" / "late" / "a").mkdir(parents=True)
    shutil.copy(tmp_path / "outside" / "deep.dcm", data / "DEMO-001" / "late" / "a" / "x.dcm")
    poll(lambda: qido_has(server, info2["study"]), "the study of a file in a new folder")
    assert "watch: re-indexed" in server.log()
    assert server.stop() == 0  # the watcher does not hold up a clean exit


def test_burst_of_copies_is_indexed_in_few_runs(start_server, data, tmp_path):
    """Twenty files copied at once are all found, by a handful of debounced re-index
    runs rather than one per file."""
    server = start_server(data, "--watch", "--dev", "--db", tmp_path / "sia.db")
    study = write_instance(tmp_path / "outside" / "0.dcm", description="burst")["study"]
    series = None
    for i in range(1, 20):
        info = write_instance(tmp_path / "outside" / f"{i}.dcm", study_uid=study, series_uid=series)
        series = info["series"]
    shutil.copytree(tmp_path / "outside", data / "DEMO-001" / "burst")

    def all_there():
        r = server.get(f"/dicom-web/studies?StudyInstanceUID={study}", token=server.token)
        found = r.json()
        return found and found[0].get("00201208", {}).get("Value") == [20]

    poll(all_there, "all 20 copied instances in QIDO")
    runs = server.log().count("watch: re-indexed")
    assert 1 <= runs <= 5, f"{runs} re-index runs for one burst of 20 files"


def test_deleted_file_answers_404_or_410(start_server, data, tmp_path):
    info = write_instance(data / "DEMO-001" / "doomed.dcm", frames=3, description="doomed")
    server = start_server(data, "--watch", "--dev", "--db", tmp_path / "sia.db")
    assert qido_has(server, info["study"])
    assert frame(server, info).status_code == 200  # mapped and cached by the server
    metadata = f"/dicom-web/studies/{info['study']}/metadata"
    assert server.get(metadata, token=server.token).status_code == 200

    info["path"].unlink()

    # At once (before the re-index) or after it: 404 or 410, never the old bytes.
    def gone():
        codes = (
            server.get(metadata, token=server.token).status_code,
            frame(server, info).status_code,
            server.get(instance_url(info), token=server.token,
                       headers={"Accept": "application/dicom"}).status_code,
        )
        assert all(c in (200, 404, 410) for c in codes), codes
        return all(c in (404, 410) for c in codes) and codes

    poll(gone, "404/410 for the deleted file's metadata, frames and instance")
    poll(lambda: not qido_has(server, info["study"]), "the deleted study gone from QIDO")
    poll(lambda: not fhir_has(server, info["study"]), "the deleted study gone from FHIR")
    # A whole study folder removed at once goes too; the rest of the demo stays.
    folder = data / "DEMO-001" / "study2"
    removed = pydicom.dcmread(next(folder.rglob("*.dcm"))).StudyInstanceUID
    kept = pydicom.dcmread(next((data / "DEMO-001" / "study1").rglob("*.dcm"))).StudyInstanceUID
    assert qido_has(server, removed)
    shutil.rmtree(folder)
    poll(lambda: not qido_has(server, removed), "the removed folder's study gone from QIDO")
    r = server.get(f"/dicom-web/studies/{removed}/metadata", token=server.token)
    assert r.status_code in (404, 410), r.status_code
    assert qido_has(server, kept) and fhir_has(server, kept)


def test_rewritten_file_never_serves_its_old_bytes(start_server, data, tmp_path):
    path = data / "DEMO-001" / "changing.dcm"
    info = write_instance(path, frames=1, rows=128, columns=128)
    old = pixel_frame(path)
    server = start_server(data, "--watch", "--dev", "--db", tmp_path / "sia.db")
    r = frame(server, info)
    assert r.status_code == 200 and multipart_payload(r) == old

    # The same instance rewritten in place with other pixels (a new inode, as editors and
    # copy tools do: write a temporary file, then rename it over the old one).
    ds = pydicom.dcmread(path)
    ds.PixelData = (np.frombuffer(old, dtype="<u2") ^ 0xFFFF).astype("<u2").tobytes()
    tmp = path.with_suffix(".tmp")
    ds.save_as(tmp)
    tmp.replace(path)
    new = pixel_frame(path)
    assert new != old

    def fresh():
        r = frame(server, info)
        assert r.status_code in (200, 404, 410), r.status_code
        if r.status_code == 200:
            payload = multipart_payload(r)
            assert payload != old, "stale bytes of the replaced file"
            return payload == new
        return False

    poll(fresh, "the rewritten file's new pixels")


def test_sigterm_during_large_download_exits_cleanly(start_server, tmp_path):
    """A download running when SIGTERM arrives is finished (within the grace period);
    the process then exits 0 and takes no new connections."""
    info = write_large_instance(tmp_path / "data" / "large.dcm")
    whole = info["path"].stat().st_size
    server = start_server(tmp_path / "data", "--dev", "--db", tmp_path / "sia.db")
    resp = server.get(
        instance_url(info), token=server.token, headers={"Accept": "application/dicom"}, stream=True
    )
    assert resp.status_code == 200
    chunks = resp.iter_content(1 << 20)
    got = len(next(chunks))
    assert got < whole

    start = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    got += sum(len(c) for c in chunks)
    assert got == whole, f"the running download was cut at {got} of {whole} bytes"
    code = server.proc.wait(timeout=40)
    assert code == 0, server.log()[-2000:]
    assert time.monotonic() - start < 40
    assert "shutting down" in server.log()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


def test_sigterm_with_a_stalled_download_exits_after_the_grace_period(start_server, tmp_path):
    """A client that stops reading mid-download does not keep the server alive: SIGTERM
    ends it with exit code 0 within the 10 s grace period plus a margin."""
    info = write_large_instance(tmp_path / "data" / "large.dcm")
    server = start_server(tmp_path / "data", "--dev", "--db", tmp_path / "sia.db")
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(
            (
                f"GET {instance_url(info)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {server.token}\r\nAccept: application/dicom\r\n\r\n"
            ).encode()
        )
        assert s.recv(1 << 16).startswith(b"HTTP/1.1 200")
        # ...and read nothing more.
        start = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=60)
        seconds = time.monotonic() - start
    finally:
        s.close()
    assert code == 0, server.log()[-2000:]
    assert seconds < 35, f"{seconds:.1f} s to stop"
    assert "shutdown grace" in server.log() or "all connections closed" in server.log()


def index_report(log: str) -> dict:
    m = re.search(r"indexed (\d+), unchanged (\d+), removed (\d+)", log)
    assert m, f"no index report in:\n{log}"
    return {"indexed": int(m[1]), "unchanged": int(m[2]), "removed": int(m[3])}


def test_restart_on_the_same_db_reuses_the_index(start_server, data, tmp_path):
    db = tmp_path / "sia.db"
    files = sum(1 for p in data.rglob("*.dcm"))
    first = start_server(data, "--dev", "--db", db)
    report = index_report(first.log())
    assert report["indexed"] == files and report["unchanged"] == 0, report
    studies = first.get("/fhir/ImagingStudy?patient=Patient/DEMO-001", token=first.token).json()
    assert first.stop() == 0

    second = start_server(data, "--dev", "--db", db)
    report = index_report(second.log())
    assert report == {"indexed": 0, "unchanged": files, "removed": 0}, report
    again = second.get("/fhir/ImagingStudy?patient=Patient/DEMO-001", token=second.token).json()
    assert again["total"] == studies["total"] >= 1
    assert sorted(e["resource"]["id"] for e in again["entry"]) == sorted(
        e["resource"]["id"] for e in studies["entry"]
    )
    assert second.stop() == 0

    # Changed while the server was down: only that file is read again.
    victim = next(iter(sorted(data.rglob("*.dcm"))))
    victim.unlink()
    write_instance(data / "DEMO-001" / "added.dcm")
    third = start_server(data, "--dev", "--db", db)
    report = index_report(third.log())
    assert report == {"indexed": 1, "unchanged": files - 1, "removed": 1}, report


def test_dev_tokens_outlive_a_restart_on_the_same_db(start_server, data, tmp_path):
    """`--dev` keeps its signing key beside the db: a token issued before a restart is
    still accepted after it (same public base URL, so the same issuer and audience), and
    a server on another db, with a key of its own, refuses it."""
    db = tmp_path / "sia.db"
    base = ["--base-url", "http://imaging.example"]
    first = start_server(data, "--dev", "--db", db, *base)
    token = first.token
    assert first.stop() == 0
    second = start_server(data, "--dev", "--db", db, *base)
    assert second.token != token
    r = second.get("/fhir/ImagingStudy?patient=Patient/DEMO-001", token=token)
    assert r.status_code == 200 and r.json()["total"] >= 1, r.text
    other = start_server(data, "--dev", "--db", tmp_path / "other.db", *base)
    r = other.get("/fhir/ImagingStudy?patient=Patient/DEMO-001", token=token)
    assert r.status_code == 401 and "invalid_token" in r.headers["WWW-Authenticate"], r.text
