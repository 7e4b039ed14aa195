"""Fixtures for the end-to-end tests: `sia serve` started on a free loopback port, the
demo set, and helpers to read what the server printed.

Every test talks HTTP to a real `sia serve` process, as a client on another machine
would; nothing here reaches into the engine."""

import os
import pathlib
import re
import shlex
import signal
import socket
import subprocess
import time

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO_ROOT = "2.25.228146457203842916711418316839742735"


def serve_command(sia) -> list:
    """The command that starts a server: `sia serve`, or another host of the engine named
    by `SIA_SERVE_CMD` (the C++ PACS example, the Python ASGI app), which must take the
    same `--listen`, `--config`, `--db` and folder arguments, print `listening on` when
    ready and answer `/healthz`. Such a host runs the subset every host shares:
    test_hosts.py and test_decisions_http.py."""
    other = os.environ.get("SIA_SERVE_CMD")
    return shlex.split(other) if other else [str(sia), "serve"]


def sia_binary() -> pathlib.Path:
    explicit = os.environ.get("SIA_BIN")
    if explicit:
        return pathlib.Path(explicit)
    return ROOT / "target" / "debug" / "sia"


@pytest.fixture(scope="session")
def sia():
    binary = sia_binary()
    if not binary.exists():
        subprocess.run(["cargo", "build", "-p", "sia-cli"], cwd=ROOT, check=True)
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `sia serve` process. `base` is its URL; `stdout()` what it printed (the
    banner); `log()` its stderr; `token` the ready token of `--dev`."""

    def __init__(self, sia, workdir: pathlib.Path, args, scheme="http", env=None, verify=True):
        self.port = free_port()
        self.workdir = workdir
        self.scheme = scheme
        self.base = f"{scheme}://127.0.0.1:{self.port}"
        self.out_path = workdir / f"serve-{self.port}.out"
        self.err_path = workdir / f"serve-{self.port}.err"
        cmd = [*serve_command(sia), "--listen", f"127.0.0.1:{self.port}", *map(str, args)]
        self.proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            stdout=open(self.out_path, "w"),
            stderr=open(self.err_path, "w"),
            env={**os.environ, **(env or {})},
        )
        self.verify = verify
        self.wait_ready()

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"sia serve exited {self.proc.returncode}:\n{self.log()}")
            try:
                r = requests.get(f"{self.base}/healthz", timeout=2, verify=self.verify)
                if r.status_code == 200 and "listening on" in self.stdout():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"sia serve did not become ready:\n{self.log()}")

    def stdout(self) -> str:
        return self.out_path.read_text()

    def log(self) -> str:
        # `sia serve` writes its log lines in batches every 50 ms (cli/src/serve/logging.rs):
        # wait past a flush, so the lines of requests already answered are in the file.
        time.sleep(0.25)
        return self.err_path.read_text()

    @property
    def token(self) -> str:
        m = re.search(r"^export TOKEN=(\S+)$", self.stdout(), re.M)
        assert m, f"no ready token in:\n{self.stdout()}"
        return m.group(1)

    def get(self, path, token=None, **kw):
        headers = dict(kw.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.get(self.base + path, headers=headers, timeout=30, verify=self.verify, **kw)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def mapped_files(self, suffix=".dcm") -> int:
        with open(f"/proc/{self.proc.pid}/maps") as f:
            return sum(1 for line in f if line.rstrip().endswith(suffix))

    def stop(self, sig=signal.SIGTERM, timeout=30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("sia serve did not stop on " + signal.Signals(sig).name)
        return self.proc.returncode


def without_boundary(r) -> bytes:
    """The body with a multipart answer's boundary (which may differ per answer) blanked."""
    ctype = r.headers.get("Content-Type", "")
    if "boundary=" not in ctype:
        return r.content
    boundary = ctype.split("boundary=", 1)[1].split(";")[0].strip('"')
    return r.content.replace(boundary.encode(), b"BOUNDARY")


def paths_of(host):
    """Requests that each need the index (searches, listings, metadata, a frame,
    retrieval) for one study the host lists: what two hosts on one index, or one host
    across an outage of its database, must answer alike."""
    studies = host.get("/dicom-web/studies").json()
    study = studies[0]["0020000D"]["Value"][0]
    series = host.get(f"/dicom-web/studies/{study}/series").json()[0]["0020000E"]["Value"][0]
    instance = host.get(f"/dicom-web/studies/{study}/series/{series}/instances").json()[0]
    sop = instance["00080018"]["Value"][0]
    return [
        "/dicom-web/studies",
        "/dicom-web/studies?PatientName=doe*&limit=2&offset=1",
        "/dicom-web/series?Modality=CT",
        f"/dicom-web/studies/{study}/instances",
        f"/dicom-web/studies/{study}/metadata",
        f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/1",
        f"/dicom-web/studies/{study}/series/{series}/instances/{sop}",
        "/fhir/ImagingStudy",
        f"/fhir/ImagingStudy?identifier=urn:oid:{study}",
    ]


def instance_uids(server):
    """(study, series, instance) UIDs of every instance the server lists over QIDO-RS."""

    def get(path):
        r = server.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def uid(v, tag):
        return v[tag]["Value"][0]

    out = []
    for st in get("/dicom-web/studies"):
        s = uid(st, "0020000D")
        for se in get(f"/dicom-web/studies/{s}/series"):
            se = uid(se, "0020000E")
            for i in get(f"/dicom-web/studies/{s}/series/{se}/instances"):
                out.append((s, se, uid(i, "00080018")))
    return out


@pytest.fixture
def start_server(sia, tmp_path):
    """Starts servers for one test and stops them after it: `start_server(args...)`."""
    servers = []

    def start(*args, workdir=None, **kw):
        s = Server(sia, workdir or tmp_path, list(args), **kw)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def demo_dir(sia, tmp_path_factory) -> pathlib.Path:
    d = tmp_path_factory.mktemp("demo")
    subprocess.run([str(sia), "demo", str(d / "demo")], check=True, capture_output=True)
    return d / "demo"


@pytest.fixture(scope="module")
def dev_server(sia, demo_dir, tmp_path_factory):
    """`sia serve DEMO --dev` shared by a module's tests."""
    work = tmp_path_factory.mktemp("dev")
    s = Server(sia, work, [demo_dir, "--dev", "--db", work / "sia.db"])
    yield s
    s.stop()
