"""Native frames as NumPy arrays (NumPy is imported here only, when an array is asked
for). The arrays are views of the engine's buffers: no copy, read-only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import InvalidInput, NotAcceptable

if TYPE_CHECKING:
    import numpy

    from . import Engine
    from ._sia import PixelInfo


def dtype_of(info: PixelInfo) -> numpy.dtype:
    """The little-endian dtype of one stored sample (PS3.5 §8.1.1: the engine returns
    native frames little-endian whatever the file's byte order)."""
    import numpy as np

    signed = info.pixel_representation == 1
    bits = info.bits_allocated
    if bits not in (8, 16, 32, 64):
        raise InvalidInput(
            f"Bits Allocated {bits}: only 8, 16, 32 or 64 map to a NumPy dtype "
            "(1-bit frames are bit-packed; read them with Engine.frame)",
            status=400,
        )
    return np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")


def frame_array(buffer: memoryview, info: PixelInfo, dtype: numpy.dtype) -> numpy.ndarray:
    """One frame's samples as ``(rows, columns)`` or ``(rows, columns, samples)``."""
    import numpy as np

    rows, cols, spp = info.rows, info.columns, info.samples_per_pixel
    expected = rows * cols * spp * dtype.itemsize
    if len(buffer) < expected:
        raise InvalidInput(f"a frame of {len(buffer)} bytes cannot hold {rows} x {cols} x {spp} samples", status=400)
    a = np.frombuffer(buffer, dtype=dtype, count=rows * cols * spp)
    if spp == 1:
        return a.reshape(rows, cols)
    if info.planar_configuration == 1:
        # Colour-by-plane (PS3.3 C.7.6.3.1.3): all of R, then G, then B; a transposed view.
        return a.reshape(spp, rows, cols).transpose(1, 2, 0)
    return a.reshape(rows, cols, spp)


def pixel_array(engine: Engine, study: str, series: str, sop: str, number: int | None) -> numpy.ndarray:
    import numpy as np

    info, views = engine._described_frames(study, series, sop, None if number is None else [number])
    if info.encapsulated:
        raise NotAcceptable(
            f"the frames are compressed (transfer syntax {info.transfer_syntax}); "
            "read them with Engine.frame and decode them",
            status=406,
        )
    dtype = dtype_of(info)
    if number is not None or len(views) == 1:
        return frame_array(views[0], info, dtype)
    out = np.stack([frame_array(v, info, dtype) for v in views])
    out.flags.writeable = False
    return out
