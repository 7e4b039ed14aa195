"""Research example: index a folder, find a patient's CT series, stack its frames into
a NumPy volume, and time the same load with pydicom.

    python py/examples/research.py FOLDER PATIENT_ID [--db FILE]

Checked with ``mypy --strict`` against the package's stubs (py/tests/test_typing.py).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import Any

import numpy as np
import numpy.typing as npt

import sia


def ct_series(engine: sia.Engine, patient_id: str) -> list[tuple[str, str, str]] | None:
    """(study, series, sop) of the patient's CT series with the most instances, in
    Instance Number order; None when the patient has no CT."""
    best: tuple[int, str, dict[str, Any]] | None = None
    for study in engine.studies(patient_id=patient_id):
        for series in study.get("series", []):
            if series["modality"]["code"] == "CT":
                n = int(series.get("numberOfInstances", 0))
                if best is None or n > best[0]:
                    best = (n, study["id"], series)
    if best is None:
        return None
    _, study_uid, series = best
    instances = sorted(series.get("instance", []), key=lambda i: int(i.get("number", 0)))
    return [(study_uid, series["uid"], i["uid"]) for i in instances]


def load_volume(engine: sia.Engine, refs: list[tuple[str, str, str]]) -> npt.NDArray[Any]:
    """The slices stacked into one ``(slices, rows, columns)`` array of stored values."""
    return np.stack([engine.pixel_array(study, series, sop, 1) for study, series, sop in refs])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("folder", type=pathlib.Path)
    p.add_argument("patient_id")
    p.add_argument("--db", type=pathlib.Path, default=pathlib.Path("research.db"))
    args = p.parse_args(argv)
    with sia.Engine(args.db) as engine:
        report: sia.IndexReport = engine.index(args.folder)
        print(report)
        refs = ct_series(engine, args.patient_id)
        if refs is None:
            print(f"no CT series for patient {args.patient_id}", file=sys.stderr)
            return 1
        t0 = time.perf_counter()
        volume = load_volume(engine, refs)
        t_sia = time.perf_counter() - t0
        print(f"sia:     {volume.shape} {volume.dtype} in {t_sia * 1e3:.1f} ms")
        try:
            import pydicom
        except ImportError:
            print("pydicom is not installed: no comparison (pip install pydicom)", file=sys.stderr)
            return 0
        files = [f for f in sorted(args.folder.rglob("*")) if f.is_file()]
        t0 = time.perf_counter()
        by_uid: dict[str, npt.NDArray[Any]] = {}
        wanted = {sop for _, _, sop in refs}
        for f in files:
            ds = pydicom.dcmread(f, force=True)
            if ds.get("SOPInstanceUID") in wanted:
                by_uid[ds.SOPInstanceUID] = ds.pixel_array
        reference = np.stack([by_uid[sop] for _, _, sop in refs])
        t_pydicom = time.perf_counter() - t0
        print(f"pydicom: {reference.shape} {reference.dtype} in {t_pydicom * 1e3:.1f} ms "
              f"({t_pydicom / t_sia:.1f}x sia's time; same values: {np.array_equal(volume, reference)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
