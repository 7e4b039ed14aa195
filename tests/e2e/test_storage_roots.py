"""Named storage roots from the configuration file (issue 15, item 4): `sia index
--config` and `sia serve --config` read `[storage.roots]`; two hosts that mount the
archive at different folders serve the same files from one index, and a host without
the root answers a clear error. On SQLite, and on PostgreSQL when SIA_TEST_PG_URL names
a server (scripts/test's second pass)."""

import json
import os
import subprocess
import time
import uuid

import jwt
import pytest

from conftest import without_boundary

PG_URL = os.environ.get("SIA_TEST_PG_URL", "")
AUDIENCE = "https://sia.test/fhir"
ISS = "https://ehr.test"
SECRET = "storage-roots-e2e-secret-of-32-bytes!"


def token(patient="DEMO-001"):
    now = int(time.time())
    claims = {
        "iss": ISS,
        "sub": "e2e",
        "aud": AUDIENCE,
        "scope": "launch/patient patient/Patient.rs patient/ImagingStudy.rs",
        "patient": patient,
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def write_config(path, index, roots):
    lines = ["[server]", 'base_url = "https://sia.test"', index, ""]
    lines += [
        "[[issuers]]",
        f'iss = "{ISS}"',
        f'audiences = ["{AUDIENCE}"]',
        'hs256_secret_file = "secret"',
        'algorithms = ["HS256"]',
        "",
        "[patients]",
        'policy = "identity"',
        "",
    ]
    if roots:
        lines.append("[storage.roots]")
        lines += [f'{name} = "{folder}"' for name, folder in roots.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def index_line(request, tmp_path):
    """The config's index: an SQLite file, or a new schema on SIA_TEST_PG_URL."""
    if request.param == "sqlite":
        yield f'db = "{tmp_path / "shared.db"}"'
        return
    if not PG_URL:
        pytest.skip("no PostgreSQL server (SIA_TEST_PG_URL)")
    schema = "e2e_roots_" + uuid.uuid4().hex[:10]
    psql = ["psql", PG_URL, "-v", "ON_ERROR_STOP=1", "-qc"]
    subprocess.run([*psql, f"CREATE SCHEMA {schema}"], check=True)
    sep = "&" if "?" in PG_URL else "?"
    yield f'[index]\nurl = "{PG_URL}{sep}options=-c%20search_path%3D{schema}"'
    subprocess.run([*psql, f"DROP SCHEMA {schema} CASCADE"], check=True)


def sia_index(sia, config, folder):
    out = subprocess.run(
        [str(sia), "index", "--config", str(config), "--json", str(folder)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def test_hosts_mounting_the_archive_at_different_folders_serve_the_same_files(
    sia, start_server, tmp_path, index_line
):
    (tmp_path / "secret").write_text(SECRET)
    a_root, b_root = tmp_path / "a" / "archive", tmp_path / "b" / "archive"
    subprocess.run([str(sia), "demo", str(a_root / "demo")], check=True, capture_output=True)
    (tmp_path / "b").mkdir()
    # cp -a keeps sizes and mtimes (what identifies a file under a root); the inode
    # numbers differ, as between two mounts of one share.
    subprocess.run(["cp", "-a", str(a_root), str(b_root)], check=True)
    a_cfg = write_config(tmp_path / "a.toml", index_line, {"archive": a_root})
    b_cfg = write_config(tmp_path / "b.toml", index_line, {"archive": b_root})
    none_cfg = write_config(tmp_path / "none.toml", index_line, {})

    first = sia_index(sia, a_cfg, a_root)
    assert first["indexed"] > 0, first
    # The same files through B's folder: nothing new, nothing removed.
    again = sia_index(sia, b_cfg, b_root)
    assert (again["indexed"], again["removed"], again["unchanged"]) == (0, 0, first["indexed"]), again

    a = start_server("--config", a_cfg)
    b = start_server("--config", b_cfg)
    auth = {"Authorization": f"Bearer {token()}"}
    bundle = a.get("/fhir/ImagingStudy?patient=Patient/DEMO-001", headers=auth)
    assert bundle.status_code == 200, bundle.text
    studies = [
        i["value"].removeprefix("urn:oid:")
        for e in bundle.json()["entry"]
        for i in e["resource"]["identifier"]
        if i.get("system") == "urn:dicom:uid"
    ]
    assert studies, bundle.json()
    for path in [
        "/fhir/ImagingStudy?patient=Patient/DEMO-001",
        *(f"/dicom-web/studies/{s}/metadata" for s in studies),
        *(f"/dicom-web/studies/{s}" for s in studies),
    ]:
        ra, rb = a.get(path, headers=auth), b.get(path, headers=auth)
        assert ra.status_code == 200, (path, ra.status_code, ra.text[:300])
        assert rb.status_code == 200, (path, rb.status_code, rb.text[:300])
        assert without_boundary(ra) == without_boundary(rb), path

    # A host that does not configure the root: searches work, files are a clear error.
    c = start_server("--config", none_cfg)
    r = c.get("/fhir/ImagingStudy?patient=Patient/DEMO-001", headers=auth)
    assert r.status_code == 200
    r = c.get(f"/dicom-web/studies/{studies[0]}", headers=auth)
    assert r.status_code == 500, r.text
    assert "storage root this host does not configure" in r.text
    assert str(tmp_path) not in r.text
