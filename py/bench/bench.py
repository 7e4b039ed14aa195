"""Benchmark of the Python package (not a test: figures vary with the machine).

    python py/bench/bench.py [--slices 300] [--read-mode pread|mmap] [--workdir DIR]

Prints, from one run on the same files:

1. ``Engine.frame()`` overhead over the Rust call it wraps: the time per call from
   Python minus the time per call of ``Engine::frames`` looped inside Rust on the same
   frame (target: at most 2 µs), as wall-clock and as the calling thread's CPU time
   (``time.thread_time``; both sides run on this thread), in paired rounds (the median
   of the rounds' differences, with quartiles). On a machine shared with other work the
   wall-clock figure mostly measures the wait for a core; the CPU time does not, so the
   target is checked on it. Two frames: a CT slice (512 KiB) and a
   64 x 64 one (8 KiB). In ``pread`` mode each call reads the frame into a new buffer;
   for the large frame, the interpreter's own memory traffic between calls costs that
   copy some of its cache, which the tight Rust loop does not see: the small frame
   shows the binding's own share.
2. Frames per second: every slice's frame through ``Engine.frame`` (a memoryview, no
   decode) and through ``Engine.pixel_array`` (a NumPy view), against pydicom reading
   each file and taking ``pixel_array``.
3. A CT volume load (``--slices`` 512 x 512 int16 slices stacked into one array): sia
   against pydicom, with the ratio.

Install the package in release mode first (``pip install ./py``): a debug build
(``maturin develop``) measures the debug engine.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

import sia

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from ctseries import read_with_pydicom, write_ct_series  # noqa: E402


def best_of(runs: int, f: Callable[[], object]) -> float:
    """The shortest of ``runs`` timings of ``f`` (the least disturbed by other work)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def overhead_rounds(
    call: Callable[..., object],
    time_rust: Callable[..., float],
    ref: tuple[str, str, str],
    calls: int,
    rounds: int,
) -> str:
    """What ``call`` (``Engine.frame``) adds over ``time_rust`` (``Engine._time_frames``,
    the same engine call looped in Rust), per call, as paired rounds: each round times
    ``calls // rounds`` calls on both sides back to back (the order alternating), so a
    burst of other work on the machine lands in one round's pair rather than in one side
    only; the figure is the median of the rounds' differences, with the spread of the
    middle half. A single best-of per side, as earlier versions printed, subtracts two
    extremes of 30 µs calls and moved by ±1 µs between runs."""
    m = max(1, calls // rounds)

    def python_calls() -> None:
        for _ in range(m):
            call(*ref)

    def rust_calls() -> None:
        time_rust(*ref, 1, m)

    wall: list[float] = []
    cpu: list[float] = []
    py_cpu: list[float] = []
    rust_cpu: list[float] = []
    for r in range(rounds):
        sides: dict[str, tuple[float, float]] = {}
        for name, f in (("py", python_calls), ("rust", rust_calls))[:: 1 if r % 2 == 0 else -1]:
            w0, c0 = time.perf_counter(), time.thread_time()
            f()
            sides[name] = (time.perf_counter() - w0, time.thread_time() - c0)
        wall.append((sides["py"][0] - sides["rust"][0]) / m)
        cpu.append((sides["py"][1] - sides["rust"][1]) / m)
        py_cpu.append(sides["py"][1] / m)
        rust_cpu.append(sides["rust"][1] / m)

    def spread(xs: list[float]) -> str:
        q = statistics.quantiles(xs, n=4)
        return f"{statistics.median(xs) * 1e6:.2f} [{q[0] * 1e6:.2f}, {q[2] * 1e6:.2f}]"

    return (f"thread CPU Python {statistics.median(py_cpu) * 1e6:.2f}, Rust {statistics.median(rust_cpu) * 1e6:.2f}; "
            f"overhead (median [quartiles] of {rounds} paired rounds of {m:,} calls) "
            f"CPU {spread(cpu)}, wall-clock {spread(wall)} (target ≤ 2 µs)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slices", type=int, default=300)
    p.add_argument("--read-mode", default="pread", choices=["pread", "mmap"])
    p.add_argument("--workdir", type=pathlib.Path)
    p.add_argument("--calls", type=int, default=200_000, help="frame() calls per side for the overhead figure")
    p.add_argument("--rounds", type=int, default=21, help="paired rounds the calls are split into")
    args = p.parse_args()
    import pydicom

    work = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="sia-bench-"))
    folder = work / f"ct{args.slices}"
    files = sorted(folder.glob("*.dcm")) if folder.exists() else []
    if len(files) != args.slices:
        files = write_ct_series(folder, slices=args.slices)
    print(f"sia {sia.__version__}, pydicom {pydicom.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}")
    print(f"data: {args.slices} CT slices of 512 x 512 int16 in {folder} (read mode {args.read_mode})")
    small = work / "small"
    if not small.exists():
        write_ct_series(small, slices=1, size=64, patient_id="CT-SMALL", root="2.25.27182818284590452353602874713")

    with sia.Engine(work / "bench.db", read_mode=args.read_mode) as engine:
        report = engine.index([folder, small], progress=False)
        print(f"index: {report}")
        refs = sorted(
            ((i["0020000D"]["Value"][0], i["0020000E"]["Value"][0], i["00080018"]["Value"][0], i["00200013"]["Value"][0])
             for i in engine.metadata(engine.studies(patient_id="CT-001")[0]["id"])),
            key=lambda r: r[3],
        )
        refs3 = [r[:3] for r in refs]
        assert len(refs3) == args.slices

        # 1. frame() overhead: the same frame, so both sides do the same work; in mmap
        # mode, where a frame is a range of a cached mapping, the Rust call is small and
        # the binding's share shows (with pread both sides copy 512 KiB per call).
        n = args.calls
        small_study = engine.studies(patient_id="CT-SMALL")[0]["id"]
        small_ref = next(
            (i["0020000D"]["Value"][0], i["0020000E"]["Value"][0], i["00080018"]["Value"][0])
            for i in engine.metadata(small_study)
        )
        with sia.Engine(work / "bench.db", read_mode="mmap") as mapped:
            for label, e in (("mmap", mapped), (args.read_mode, engine)):
                for size, ref in (("512 KiB", refs3[0]), ("8 KiB", small_ref)):
                    call = e.frame
                    assert len(call(*ref)) == (512 * 512 * 2 if size == "512 KiB" else 64 * 64 * 2)
                    print(f"\n1. frame() ({label}, {size} frame), µs per call: "
                          + overhead_rounds(call, e._time_frames, ref, n, args.rounds))
                if label == args.read_mode:
                    break
        frame = engine.frame

        # 2. frames per second over every slice.
        t_view = best_of(3, lambda: [frame(*r) for r in refs3])
        t_np = best_of(3, lambda: [engine.pixel_array(*r, 1) for r in refs3])
        t_pd = best_of(3, lambda: [pydicom.dcmread(f).pixel_array for f in files])
        k = args.slices
        print(f"\n2. frames/s: sia frame() {k / t_view:,.0f}, sia pixel_array() {k / t_np:,.0f}, "
              f"pydicom dcmread+pixel_array {k / t_pd:,.0f}")
        print(f"   ratios: frame() {t_pd / t_view:.1f}x, pixel_array() {t_pd / t_np:.1f}x faster than pydicom")

        # 3. the volume.
        def sia_volume() -> np.ndarray:
            return np.stack([engine.pixel_array(*r, 1) for r in refs3])

        a, b = sia_volume(), read_with_pydicom(files)
        assert np.array_equal(a, b), "sia and pydicom disagree on the volume"
        t_sia = statistics.median(best_of(1, sia_volume) for _ in range(5))
        t_pyd = statistics.median(best_of(1, lambda: read_with_pydicom(files)) for _ in range(5))
        print(f"\n3. {k}-slice volume {a.shape} {a.dtype}: sia {t_sia * 1e3:.1f} ms, pydicom {t_pyd * 1e3:.1f} ms "
              f"(median of 5): {t_pyd / t_sia:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
