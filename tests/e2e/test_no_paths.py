"""No server path in a client-visible message (issue 17): a running `sia serve` is asked
every kind of request — before and after its files are removed, truncated or turned into
a loop of symbolic links behind its back — and no response body or header names the
data folder or the index. The detail goes to the server's log instead."""

import os
import shutil

from conftest import instance_uids

DICOM = 'multipart/related; type="application/dicom"'



def requests_for(all_uids):
    reqs = [
        ("/fhir/metadata", {}),
        ("/fhir/ImagingStudy", {}),
        ("/fhir/ImagingStudy/nope", {}),
        ("/dicom-web/studies", {}),
        ("/dicom-web/studies/1.2.3/metadata", {}),
        ("/dicom-web/studies/1.2%2F..%2Fetc/series", {}),
        ("/dicom-web/nothing", {}),
        ("/wado?requestType=WADO&studyUID=1&seriesUID=2&objectUID=3", {}),
    ]
    for s, se, i in all_uids:
        inst = f"/dicom-web/studies/{s}/series/{se}/instances/{i}"
        reqs += [
            (f"/fhir/ImagingStudy/{s}", {}),
            (f"/dicom-web/studies/{s}", {"Accept": DICOM}),
            (f"/dicom-web/studies/{s}/metadata", {}),
            (f"/dicom-web/studies/{s}/series/{se}/metadata", {}),
            (inst, {"Accept": DICOM}),
            (f"{inst}/metadata", {}),
            (f"{inst}/frames/1", {}),
            (f"{inst}/bulkdata/7FE00010", {}),
            (
                f"/wado?requestType=WADO&studyUID={s}&seriesUID={se}&objectUID={i}"
                "&contentType=application/dicom",
                {},
            ),
        ]
    return reqs


def scan(server, reqs, secrets):
    statuses = set()
    for path, headers in reqs:
        r = server.get(path, headers=headers)
        statuses.add(r.status_code)
        for secret in secrets:
            assert secret.encode() not in r.content, (path, r.status_code, r.text[:500])
            for name, value in r.headers.items():
                assert secret not in value, (path, name, value)
    return statuses


def test_no_body_names_a_server_path(start_server, demo_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_dir, data)
    db = tmp_path / "index" / "sia.db"
    db.parent.mkdir()
    # No --config and no --dev on loopback: every request is served without a token.
    server = start_server(data, "--db", db)
    all_uids = instance_uids(server)
    assert len(all_uids) >= 10
    reqs = requests_for(all_uids)
    secrets = {str(tmp_path), str(data), str(db), os.path.realpath(tmp_path)}
    before = scan(server, reqs, secrets)
    assert 200 in before and 404 in before

    files = sorted(p for p in data.rglob("*") if p.is_file())
    files[0].unlink()
    with open(files[1], "r+b") as f:
        f.truncate(100)
    files[2].unlink()
    os.symlink(files[2], files[2])
    for f in files[3:]:
        f.write_bytes(b"not DICOM any more")
    after = scan(server, reqs, secrets)
    assert 410 in after and 500 in after, after
    # What the clients were not told is in the server's log.
    assert str(data) in server.log()
