"""Fixtures of the sia package's tests: the demo set written by the engine itself, an
engine over it, and pydicom's test files."""

from __future__ import annotations

import pathlib
import shutil

import pydicom
import pytest

import sia


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    d = tmp_path_factory.mktemp("demo") / "demo"
    files = sia.write_demo(d)
    assert len(files) == 40
    return d


@pytest.fixture()
def engine(demo_dir: pathlib.Path, tmp_path: pathlib.Path):
    with sia.Engine(tmp_path / "sia.db") as e:
        report = e.index(demo_dir, progress=False)
        assert report.indexed == 40
        yield e


@pytest.fixture(scope="session")
def pydicom_test_files() -> pathlib.Path:
    return pathlib.Path(pydicom.__file__).parent / "data" / "test_files"


@pytest.fixture(scope="session")
def many_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, int]:
    """A folder of 4,000 files (the demo set 100 times over), big enough for an index run
    to last a while; copies are duplicates of the same instances, which the engine reads
    and reports like any file."""
    root = tmp_path_factory.mktemp("many")
    first = root / "copy000"
    sia.write_demo(first)
    for i in range(1, 100):
        shutil.copytree(first, root / f"copy{i:03}")
    return root, 4000


def instances(engine: sia.Engine) -> list[tuple[str, str, str]]:
    """(study, series, sop) of every indexed instance, from the ImagingStudy resources."""
    out = []
    for study in engine.studies():
        uid = study["identifier"][0]["value"].removeprefix("urn:oid:")
        for series in study.get("series", []):
            for inst in series.get("instance", []):
                out.append((uid, series["uid"], inst["uid"]))
    return out


@pytest.fixture(scope="session")
def ct_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """Eight 512 x 512 int16 CT slices (512 KiB frames)."""
    from ctseries import write_ct_series

    d = tmp_path_factory.mktemp("ct") / "ct"
    write_ct_series(d, slices=8)
    return d


@pytest.fixture()
def ct_engine(ct_dir: pathlib.Path, tmp_path: pathlib.Path):
    with sia.Engine(tmp_path / "ct.db") as e:
        assert e.index(ct_dir, progress=False).indexed == 8
        yield e
