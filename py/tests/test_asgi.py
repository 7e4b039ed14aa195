"""sia.asgi.App: the ASGI messages it sends, and uvicorn on loopback running the
end-to-end subset every host of the engine shares (tests/e2e/test_hosts.py and
tests/e2e/test_decisions_http.py, unchanged, through SIA_SERVE_CMD)."""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any

import pytest

import sia
import sia.asgi
from conftest import instances

REPO = pathlib.Path(__file__).resolve().parents[2]


def call(app: sia.asgi.App, path: str, query: bytes = b"", method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": headers or [],
    }
    asyncio.run(app(scope, receive, send))
    return sent


def test_frames_are_streamed_from_the_engines_buffers(ct_engine: sia.Engine) -> None:
    engine = ct_engine
    app = sia.asgi.App(engine)
    study, series, sop = instances(engine)[0]
    target = f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/1"
    sent = call(app, target, headers=[(b"accept", b'multipart/related; type="application/octet-stream"; transfer-syntax=*')])
    start, *bodies = sent
    assert start["type"] == "http.response.start" and start["status"] == 200
    headers = dict(start["headers"])
    assert int(headers[b"Content-Length"]) == sum(len(b["body"]) for b in bodies)
    # The frame (64 KiB and more) goes out as a view of the engine's chunk, not a copy.
    assert any(isinstance(b["body"], memoryview) and len(b["body"]) >= 16 * 1024 for b in bodies)
    assert all(b.get("more_body") for b in bodies[:-1]) and not bodies[-1].get("more_body")
    want = engine.handle("GET", target, headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'})
    got = b"".join(bytes(b["body"]) for b in bodies)
    boundary = want.header("Content-Type").split("boundary=")[1].strip('"')  # type: ignore[union-attr]
    other = headers[b"Content-Type"].decode().split("boundary=")[1].strip('"')
    assert got.replace(other.encode(), b"B") == want.body.replace(boundary.encode(), b"B")


def test_healthz_head_lifespan_and_long_targets(engine: sia.Engine) -> None:
    app = sia.asgi.App(engine)
    ok = call(app, "/healthz")
    assert ok[0]["status"] == 200 and ok[1]["body"] == b"ok\n"
    head = call(app, "/fhir/metadata", method="HEAD")
    assert head[0]["status"] == 200 and head[1]["body"] == b""
    assert call(app, "/" + "x" * 9000)[0]["status"] == 414
    post = call(app, "/dicom-web/studies", method="POST")
    assert post[0]["status"] in (405, 415, 501)

    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[Any] = []

    async def receive() -> Any:
        return next(messages)

    async def send(m: Any) -> None:
        sent.append(m["type"])

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_uvicorn_serves_the_end_to_end_subset() -> None:
    sia_bin = os.environ.get("SIA_BIN") or str(REPO / "target" / "debug" / "sia")
    if not pathlib.Path(sia_bin).exists():
        pytest.fail(f"the end-to-end subset compares with `sia get`: build it (cargo build -p sia-cli) or set SIA_BIN; {sia_bin} is missing")
    pytest.importorskip("uvicorn")
    env = {**os.environ, "SIA_SERVE_CMD": f"{shutil.which(sys.executable) or sys.executable} -m sia.serve", "SIA_BIN": sia_bin}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/e2e/test_hosts.py", "tests/e2e/test_decisions_http.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-500:]


def test_uvicorn_streams_large_frames_byte_for_byte(ct_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """Frames of 512 KiB go out as memoryviews of the engine's chunks; uvicorn writes
    them as they are."""
    pytest.importorskip("uvicorn")
    import socket
    import time
    import urllib.request

    import pydicom

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sia.serve", "--listen", f"127.0.0.1:{port}", "--db", str(tmp_path / "s.db"), str(ct_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert f"listening on http://127.0.0.1:{port}" in banner, banner + (proc.stderr.read() if proc.stderr else "")
        files = sorted(ct_dir.glob("*.dcm"))
        for f in files[:3]:
            ds = pydicom.dcmread(f)
            url = (
                f"http://127.0.0.1:{port}/dicom-web/studies/{ds.StudyInstanceUID}/series/"
                f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/frames/1"
            )
            req = urllib.request.Request(url, headers={"Accept": "application/octet-stream"})
            t0 = time.monotonic()
            with urllib.request.urlopen(req, timeout=30) as r:
                body = r.read()
                assert r.status == 200 and r.headers["Content-Length"] == str(len(body))
            assert body == ds.PixelData, f.name
            assert time.monotonic() - t0 < 10
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # A clean stop: uvicorn finishes open responses, then re-raises SIGTERM (-15).
    assert proc.returncode in (0, -15), proc.stderr.read() if proc.stderr else ""
