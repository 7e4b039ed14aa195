"""Frames through the Python API equal pydicom's on pydicom's own test files: native
frames as NumPy arrays (``Engine.pixel_array`` against pydicom's ``pixel_array``, value
for value, and their bytes), encapsulated frames byte for byte against pydicom's
``generate_frames``. And the memoryview contract: read-only, zero-copy, alive after
``Engine.close()``."""

from __future__ import annotations

import gc
import pathlib

import numpy as np
import pydicom
import pytest
from pydicom.encaps import generate_frames
from pydicom.pixels import pixel_array as pydicom_pixels

import sia
from conftest import instances


def frames_of_pydicom(ds: pydicom.Dataset) -> tuple[str, int] | None:
    """('native' | 'encapsulated', number of frames), or None when pydicom cannot tell."""
    try:
        n = int(ds.get("NumberOfFrames", 1) or 1)
    except ValueError:
        return None  # badVR.dcm: Number of Frames "1A"
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    return ("encapsulated" if ts is not None and ts.is_compressed else "native"), n


@pytest.fixture(scope="module")
def pydicom_instances(pydicom_test_files: pathlib.Path, tmp_path_factory: pytest.TempPathFactory):
    """Every pydicom test file with pixel data, indexed alone (pydicom has many
    re-encodings of one image under one SOP Instance UID): (path, dataset, engine,
    (study, series, sop))."""
    base = tmp_path_factory.mktemp("perfile")
    out = []
    engines = []
    for i, path in enumerate(sorted(pydicom_test_files.glob("*.dcm"))):
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception:  # noqa: BLE001 (files pydicom cannot read are not compared)
            continue
        if "PixelData" not in ds or frames_of_pydicom(ds) is None:
            continue
        e = sia.Engine(base / f"{i}.db")
        engines.append(e)
        if e.index(path, progress=False).indexed != 1:
            continue
        out.append((path, ds, e, instances(e)[0]))
    yield out
    for e in engines:
        e.close()


def test_encapsulated_frames_equal_generate_frames(pydicom_instances) -> None:
    checked = 0
    for path, ds, engine, ref in pydicom_instances:
        kind, n = frames_of_pydicom(ds)  # type: ignore[misc]
        if kind != "encapsulated":
            continue
        eot = None
        if "ExtendedOffsetTable" in ds:
            eot = (ds.ExtendedOffsetTable, ds.get("ExtendedOffsetTableLengths"))
        want = list(generate_frames(ds.PixelData, number_of_frames=n, extended_offsets=eot))
        info = engine.pixel_info(*ref)
        assert info.encapsulated and info.transfer_syntax == ds.file_meta.TransferSyntaxUID, path.name
        assert info.number_of_frames == len(want), path.name
        got = engine.frames(*ref)
        assert [bytes(f) for f in got] == want, path.name
        assert bytes(engine.frame(*ref, len(want))) == want[-1], path.name
        with pytest.raises(sia.NotAcceptable):
            engine.pixel_array(*ref)
        checked += 1
    assert checked >= 30, checked


def test_native_frames_equal_pydicoms_pixel_array(pydicom_instances) -> None:
    checked = 0
    for path, ds, engine, ref in pydicom_instances:
        kind, n = frames_of_pydicom(ds)  # type: ignore[misc]
        if kind != "native" or ds.BitsAllocated == 1:
            continue  # 1-bit frames are bit-packed: compared as bytes by tests/py
        if ds.get("PhotometricInterpretation", "").endswith("_422"):
            continue  # 4:2:2 subsampled: pydicom upsamples, sia returns stored samples
        try:
            want = pydicom_pixels(ds, raw=True)
        except Exception:  # noqa: BLE001 (pydicom cannot decode it: nothing to compare)
            continue
        got = engine.pixel_array(*ref)
        assert got.shape == want.shape, (path.name, got.shape, want.shape)
        assert got.dtype.kind == want.dtype.kind and got.dtype.itemsize == want.dtype.itemsize, (path.name, got.dtype, want.dtype)
        assert np.array_equal(got, want), path.name
        assert not got.flags.writeable
        # Each frame alone, and its bytes: the little-endian bytes of pydicom's frame.
        frames = [want] if n == 1 else list(want)
        for k, frame in enumerate(frames, start=1):
            one = engine.pixel_array(*ref, k)
            assert np.array_equal(one, frame), (path.name, k)
            raw = bytes(engine.frame(*ref, k))
            if engine.pixel_info(*ref).planar_configuration == 0:
                assert raw == frame.astype(frame.dtype.newbyteorder("<")).tobytes(), (path.name, k)
        checked += 1
    assert checked >= 15, checked  # 18 with pydicom 3.0.2


def test_frame_is_a_read_only_view_that_outlives_close(ct_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    files = sorted(ct_dir.glob("*.dcm"))
    for mode in ("pread", "mmap"):
        e = sia.Engine(tmp_path / f"{mode}.db", read_mode=mode)
        e.index(ct_dir, progress=False)
        ref = sorted(instances(e))[0]
        view = e.frame(*ref)
        assert isinstance(view, memoryview) and view.readonly and view.format == "B"
        assert len(view) == 512 * 512 * 2
        with pytest.raises(TypeError):
            view[0] = 1  # type: ignore[index]
        arr = e.pixel_array(*ref)
        e.close()
        gc.collect()
        with pytest.raises(sia.EngineClosed):
            e.frame(*ref)
        # Still readable, and still the file's pixels.
        want = pydicom.dcmread(files[0]).pixel_array
        assert bytes(view) == want.tobytes()
        assert np.array_equal(arr, want)
        del view, arr
        gc.collect()


def mapped_files_at(address: int) -> list[str]:
    """The files mapped into this process at `address` (/proc/self/maps)."""
    found = []
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end and len(fields) == 6:
                found.append(fields[5].strip())
    return found


def test_mmap_frames_point_into_the_files_mapping_pread_ones_do_not(
    ct_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """Zero-copy, shown rather than assumed: in `mmap` mode the memoryview's bytes are
    the file's mapped pages (its address lies in a mapping of that .dcm file); in `pread`
    mode they are a buffer of the process's own (no file mapped there)."""
    for mode in ("mmap", "pread"):
        with sia.Engine(tmp_path / f"{mode}-zc.db", read_mode=mode) as e:
            e.index(ct_dir, progress=False)
            study, series, sop = sorted(instances(e))[0]
            view = e.frame(study, series, sop, 1)
            address = np.frombuffer(view, dtype=np.uint8).ctypes.data
            files = [f for f in mapped_files_at(address) if f.endswith(".dcm")]
            if mode == "mmap":
                assert len(files) == 1 and pathlib.Path(files[0]).parent == ct_dir.resolve(), files
                last = np.frombuffer(view, dtype=np.uint8).ctypes.data + len(view) - 1
                assert mapped_files_at(last) == [files[0]]
            else:
                assert files == [], files
            del view


def test_frame_errors(ct_engine: sia.Engine) -> None:
    study, series, sop = instances(ct_engine)[0]
    with pytest.raises(sia.NotFound):
        ct_engine.frame(study, series, sop, 2)
    with pytest.raises(sia.InvalidInput):
        ct_engine.frame(study, series, sop, 0)
    with pytest.raises(sia.NotFound):
        ct_engine.frame(study, series, sop + ".9", 1)
    with pytest.raises(sia.InvalidInput):
        ct_engine.frame(study, series, "../x", 1)


def test_a_volume_stacks_in_slice_order(ct_engine: sia.Engine, ct_dir: pathlib.Path) -> None:
    refs = sorted(instances(ct_engine), key=lambda r: int(r[2].rsplit(".", 1)[1]))
    volume = np.stack([ct_engine.pixel_array(*r) for r in refs])
    want = np.stack([pydicom.dcmread(f).pixel_array for f in sorted(ct_dir.glob("*.dcm"))])
    assert volume.shape == (8, 512, 512) and volume.dtype == np.dtype("<i2")
    assert np.array_equal(volume, want)
