"""The README's research example runs as documented, and NumPy stays optional: the
package imports and serves frames without it, and only `pixel_array` asks for it."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap

from ctseries import write_ct_series

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "research.py"


def test_the_research_example_loads_the_volume_pydicom_loads(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "archive"
    write_ct_series(folder / "ct", slices=12, size=64, patient_id="CT-042")
    p = subprocess.run(
        [sys.executable, str(EXAMPLE), str(folder), "CT-042", "--db", str(tmp_path / "r.db")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "sia:     (12, 64, 64) int16" in p.stdout, p.stdout
    assert "pydicom: (12, 64, 64) int16" in p.stdout, p.stdout
    assert "same values: True" in p.stdout, p.stdout


def test_the_research_example_says_when_the_patient_has_no_ct(tmp_path: pathlib.Path) -> None:
    write_ct_series(tmp_path / "archive", slices=2, size=16, patient_id="CT-042")
    p = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path / "archive"), "NOBODY", "--db", str(tmp_path / "r.db")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 1
    assert "no CT series for patient NOBODY" in p.stderr


def test_numpy_is_imported_only_by_pixel_array(tmp_path: pathlib.Path) -> None:
    write_ct_series(tmp_path / "ct", slices=1, size=16, patient_id="CT-1")
    program = textwrap.dedent(
        f"""
        import sys
        sys.modules["numpy"] = None  # `import numpy` raises ImportError, as if not installed
        import sia
        with sia.Engine({str(tmp_path / "n.db")!r}) as e:
            e.index({str(tmp_path / "ct")!r}, progress=False)
            (study,) = e.studies()
            series = study["series"][0]
            sop = series["instance"][0]["uid"]
            view = e.frame(study["id"], series["uid"], sop, 1)
            assert len(view) == 16 * 16 * 2, len(view)
            try:
                e.pixel_array(study["id"], series["uid"], sop, 1)
            except ImportError as err:
                print("pixel_array:", err)
            else:
                raise SystemExit("pixel_array worked without NumPy")
        print("numpy loaded:", sys.modules.get("numpy") is not None)
        """
    )
    p = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "pixel_array:" in p.stdout and "numpy loaded: False" in p.stdout, p.stdout
