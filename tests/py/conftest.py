"""Shared fixtures for the cross-language tests: the `sia` binary, an index reader,
and pydicom's test files."""

import json
import os
import pathlib
import sqlite3
import struct
import subprocess

import pydicom
import pytest
from pydicom.encaps import generate_frames

ROOT = pathlib.Path(__file__).resolve().parents[2]


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


def run_sia(sia, *args, check=True, **kw):
    proc = subprocess.run([str(sia), *map(str, args)], capture_output=True, text=True, timeout=600, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"sia {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def index_json(sia, db, *paths):
    proc = run_sia(sia, "index", "--db", db, "--json", *paths)
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def pydicom_test_files() -> pathlib.Path:
    return pathlib.Path(pydicom.__file__).parent / "data" / "test_files"


def read_frames(db, sop_instance_uid):
    """The frames of one instance as the index describes them: a list of bytes, cut from
    the file with the stored frame table (the same arithmetic the server will do)."""
    con = sqlite3.connect(db)
    try:
        row = con.execute(
            "SELECT f.path, i.frame_table FROM instances i JOIN files f ON f.id = i.file"
            " WHERE i.sop_instance_uid = ?",
            (sop_instance_uid,),
        ).fetchone()
    finally:
        con.close()
    assert row is not None, f"{sop_instance_uid} not in index"
    path, table = row
    data = pathlib.Path(path).read_bytes()
    return decode_frame_table(table, data)


def decode_frame_table(table: bytes, data: bytes):
    if not table:
        return None
    kind = table[0]
    if kind == 1:
        swap, count, offset, frame_bits = table[1], *struct.unpack_from("<IQQ", table, 4)
        frames = []
        for i in range(count):
            start_bit = i * frame_bits
            if frame_bits % 8 == 0:
                start = offset + start_bit // 8
                frames.append(data[start : start + frame_bits // 8])
            else:
                # Bits Allocated 1: frames are not byte aligned.
                bits = int.from_bytes(data[offset : offset + (count * frame_bits + 7) // 8], "little")
                value = (bits >> start_bit) & ((1 << frame_bits) - 1)
                frames.append(value.to_bytes((frame_bits + 7) // 8, "little"))
        return ("native", swap, frames)
    if kind == 2:
        count, nfrag = struct.unpack_from("<II", table, 4)
        frags = [struct.unpack_from("<QI", table, 12 + 12 * k) for k in range(nfrag)]
        base = 12 + 12 * nfrag
        starts = [struct.unpack_from("<I", table, base + 4 * k)[0] for k in range(count + 1)]
        frames = []
        for a, b in zip(starts, starts[1:]):
            frames.append(b"".join(data[o : o + n] for o, n in frags[a:b]))
        return ("encapsulated", table[1], frames)
    if kind == 3:
        return ("deflated", 0, struct.unpack_from("<I", table, 4)[0])
    raise AssertionError(f"unknown frame table kind {kind}")


def db_rows(db, sql, *args):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def all_files(root: pathlib.Path):
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def per_file_index(sia, pydicom_test_files, tmp_path_factory):
    """Each file indexed into its own database, so files sharing a SOP Instance UID
    (pydicom has many re-encodings of one image) are each checked."""
    out = {}
    base = tmp_path_factory.mktemp("perfile")
    files = all_files(pydicom_test_files) + all_files(pydicom_test_files.parent / "charset_files")
    for i, path in enumerate(files):
        db = base / f"{i}.db"
        out[path] = (db, index_json(sia, db, path))
    return out




def transfer_syntax(ds):
    """The file's transfer syntax; files without File Meta are native by definition."""
    uid = getattr(ds, "file_meta", None) and ds.file_meta.get("TransferSyntaxUID")
    if uid:
        return uid
    return pydicom.uid.ImplicitVRLittleEndian if ds.original_encoding[0] is False else pydicom.uid.ExplicitVRLittleEndian


def reference_frames(ds):
    """pydicom's frames, or None when pydicom cannot tell how many there are."""
    try:
        n = int(ds.get("NumberOfFrames", 1) or 1)
    except ValueError:
        return None, None  # e.g. badVR.dcm: Number of Frames "1A"
    if transfer_syntax(ds).is_compressed:
        eot = None
        if "ExtendedOffsetTable" in ds:
            eot = (ds.ExtendedOffsetTable, ds.get("ExtendedOffsetTableLengths"))
        return "encapsulated", list(generate_frames(ds.PixelData, number_of_frames=n, extended_offsets=eot))
    return "native", native_frames(ds, ds.PixelData, n)


def native_frames(ds, data, n):
    """Cuts native pixel data into frames (not padded; 1-bit frames realigned)."""
    rows, cols, spp, bits = ds.Rows, ds.Columns, ds.get("SamplesPerPixel", 1), ds.BitsAllocated
    if ds.get("PhotometricInterpretation") in ("YBR_FULL_422", "YBR_PARTIAL_422"):
        spp = 2
    frame_bits = rows * cols * spp * bits
    if frame_bits % 8 == 0:
        size = frame_bits // 8
        return [data[i * size : (i + 1) * size] for i in range(n)]
    bits_all = int.from_bytes(data, "little")
    return [
        ((bits_all >> (i * frame_bits)) & ((1 << frame_bits) - 1)).to_bytes((frame_bits + 7) // 8, "little")
        for i in range(n)
    ]


def the_instance(db):
    """(Study, Series, SOP Instance UID) of the one instance in a single-file index."""
    return db_rows(
        db,
        "SELECT st.study_uid, se.series_uid, i.sop_instance_uid FROM instances i"
        " JOIN series se ON se.id = i.series JOIN studies st ON st.id = se.study",
    )[0]
