"""What an index is and whether it is consistent, read from the database itself, for
the tests of several or interrupted `sia index` processes (test_kill_indexer.py,
test_concurrent_indexers.py): a corpus writer, a dump of the index without row ids or
times, queries for rows that break a rule, and the two backends' structural checks
(SQLite `PRAGMA integrity_check` and foreign keys; PostgreSQL's constraints)."""

import os
import shutil
import sqlite3
import subprocess
import uuid

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

PG_URL = os.environ.get("SIA_TEST_PG_URL", "")
CT = "1.2.840.10008.5.1.4.1.1.2"
ROOT = "1.2.826.0.1.3680043.10.1015.77"
# Enough files that a debug build is still writing when the first batch has committed
# (commits come every second or 2,000 files).
FILES = int(os.environ.get("SIA_KILL_FILES", "6000"))


def write_corpus(folder, files=FILES):
    """`files` header-only CT instances (10 per patient, 5 per series), a few duplicates
    of them (same SOP Instance UID, larger path) and a few files that are not DICOM."""
    folder.mkdir()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for n in range(files):
        patient, series, k = n // 10, n // 5, n % 5
        sop = f"{ROOT}.{patient}.{series}.{k}"
        meta.MediaStorageSOPInstanceUID = sop
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CT
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID = f"{ROOT}.{patient}"
        ds.SeriesInstanceUID = f"{ROOT}.{patient}.{series}"
        ds.PatientID = f"P{patient:05}"
        ds.IssuerOfPatientID = "HOSP"
        ds.PatientName = f"Patient^{patient:05}"
        ds.StudyDate = "20240101"
        ds.Modality = "CT" if series % 2 == 0 else "SR"
        ds.InstanceNumber = k + 1
        sub = folder / f"{patient // 100:03}"
        sub.mkdir(exist_ok=True)
        ds.save_as(sub / f"{n:07}.dcm", enforce_file_format=True)
    dup = folder / "zz-duplicates"
    dup.mkdir()
    for n in range(0, files, files // 7):
        shutil.copy(folder / f"{n // 10 // 100:03}" / f"{n:07}.dcm", dup / f"{n:07}.dcm")
    (folder / "zz-notes.txt").write_text("not DICOM\n")


def run_index(sia, db, *folders):
    subprocess.run([str(sia), "index", "--db", str(db), *map(str, folders)], check=True, capture_output=True)


# What one index is, without row ids or times: every file row (path, state, SOP
# Instance UID), every instance with its file and series, and the derived rows.
DUMP = [
    "SELECT path, state, coalesce(sop_instance_uid, '') FROM files ORDER BY walk_key",
    """SELECT i.sop_instance_uid, se.series_uid, f.path, i.number_of_frames FROM instances i
       JOIN series se ON se.id = i.series JOIN files f ON f.id = i.file ORDER BY i.sop_instance_uid""",
    """SELECT se.series_uid, st.study_uid, se.modality, se.num_instances FROM series se
       JOIN studies st ON st.id = se.study ORDER BY se.series_uid""",
    """SELECT st.study_uid, p.patient_id, p.issuer, st.modalities, st.num_series, st.num_instances
       FROM studies st JOIN patients p ON p.id = st.patient ORDER BY st.study_uid""",
    "SELECT patient_id, issuer, name FROM patients ORDER BY patient_id, issuer",
]

# Each query answers the rows that break a rule; all must answer none.
VIOLATIONS = [
    # Every indexed file has its instance; no other file has one.
    "SELECT f.id FROM files f WHERE f.state = 0 AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.file = f.id)",
    "SELECT i.id FROM instances i JOIN files f ON f.id = i.file WHERE f.state != 0",
    # No orphans: every reference resolves; no empty series, study or patient.
    "SELECT i.id FROM instances i WHERE NOT EXISTS (SELECT 1 FROM series se WHERE se.id = i.series)",
    "SELECT i.id FROM instances i WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.id = i.file)",
    "SELECT se.id FROM series se WHERE NOT EXISTS (SELECT 1 FROM studies st WHERE st.id = se.study)",
    "SELECT st.id FROM studies st WHERE NOT EXISTS (SELECT 1 FROM patients p WHERE p.id = st.patient)",
    "SELECT se.id FROM series se WHERE NOT EXISTS (SELECT 1 FROM instances i WHERE i.series = se.id)",
    "SELECT st.id FROM studies st WHERE NOT EXISTS (SELECT 1 FROM series se WHERE se.study = st.id)",
    "SELECT p.id FROM patients p WHERE NOT EXISTS (SELECT 1 FROM studies st WHERE st.patient = p.id)",
    # Unique keys.
    "SELECT walk_key FROM files GROUP BY walk_key HAVING count(*) > 1",
    "SELECT sop_instance_uid FROM instances GROUP BY sop_instance_uid HAVING count(*) > 1",
    "SELECT file FROM instances GROUP BY file HAVING count(*) > 1",
    # A duplicate's SOP Instance UID is provided by another file.
    """SELECT f.id FROM files f WHERE f.state = 1
       AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.sop_instance_uid = f.sop_instance_uid)""",
    # Derived counts match the rows.
    """SELECT se.id FROM series se
       WHERE se.num_instances != (SELECT count(*) FROM instances i WHERE i.series = se.id)""",
    """SELECT st.id FROM studies st
       WHERE st.num_series != (SELECT count(*) FROM series se WHERE se.study = st.id)
          OR st.num_instances != (SELECT coalesce(sum(se.num_instances), 0) FROM series se WHERE se.study = st.id)""",
]


class Sqlite:
    name = "sqlite"

    def __init__(self, tmp_path):
        self.tmp = tmp_path

    def new(self, label):
        return self.tmp / f"{label}.db"

    def query(self, db, sql):
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            return [tuple(r) for r in c.execute(sql)]

    def committed_files(self, db):
        try:
            return self.query(db, "SELECT count(*) FROM files")[0][0]
        except sqlite3.Error:
            return 0  # not created yet, or its tables not yet

    def structural(self, db):
        assert self.query(db, "PRAGMA integrity_check") == [("ok",)]
        assert self.query(db, "PRAGMA foreign_key_check") == []

    def close(self):
        pass


class Postgres:
    name = "postgres"

    def __init__(self, _):
        self.schemas = []

    def psql(self, url, sql):
        out = subprocess.run(
            ["psql", url, "-v", "ON_ERROR_STOP=1", "-tA", "-F", "\t", "-c", sql],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return [tuple(line.split("\t")) for line in out.splitlines() if line]

    def new(self, label):
        schema = f"e2e_kill_{label}_{uuid.uuid4().hex[:8]}"
        self.psql(PG_URL, f"CREATE SCHEMA {schema}")
        self.schemas.append(schema)
        sep = "&" if "?" in PG_URL else "?"
        return f"{PG_URL}{sep}options=-c%20search_path%3D{schema}"

    def query(self, url, sql):
        return self.psql(url, sql)

    def committed_files(self, url):
        try:
            return int(self.psql(url, "SELECT count(*) FROM files")[0][0])
        except subprocess.CalledProcessError:
            return 0

    def structural(self, url):
        # Constraints the schema declares are checked by the server on every write;
        # here: none is left invalid (NOT VALID) and none is missing.
        rows = self.psql(
            url,
            "SELECT conrelid::regclass::text, contype, convalidated FROM pg_constraint "
            "WHERE connamespace = current_schema()::regnamespace ORDER BY 1, 2",
        )
        assert all(v == "t" for _, _, v in rows), rows
        kinds = {(t, k) for t, k, _ in rows}
        for table, kind in [("files", "u"), ("instances", "f"), ("instances", "u"), ("series", "f"), ("studies", "f")]:
            assert (table, kind) in kinds, (table, kind, rows)

    def close(self):
        for s in self.schemas:
            self.psql(PG_URL, f"DROP SCHEMA {s} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path):
    if request.param == "postgres" and not (PG_URL and shutil.which("psql")):
        pytest.skip("no PostgreSQL server (SIA_TEST_PG_URL) or no psql")
    b = (Sqlite if request.param == "sqlite" else Postgres)(tmp_path)
    yield b
    b.close()


