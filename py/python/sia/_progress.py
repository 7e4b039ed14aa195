"""The progress display of :meth:`sia.Engine.index` on a terminal: a tqdm bar when tqdm
is installed, else one line rewritten in place on standard error."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ._sia import IndexProgress


class PlainProgress:
    """One status line (``files done/found, MB read, files/s``) rewritten with ``\\r``,
    at most ten times a second, ended with a newline by :meth:`close`."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._start = time.monotonic()
        self._drawn = False

    def __call__(self, p: IndexProgress) -> None:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        total = f"{p.files_found}" if p.walk_done else f"{p.files_found}+"
        line = (
            f"indexing: {p.files_done}/{total} files, {p.bytes_done / 1e6:.1f} MB, "
            f"{p.files_done / elapsed:.0f} files/s"
        )
        self._stream.write("\r" + line.ljust(78))
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()


class TqdmProgress:
    """A tqdm bar over the files this run reads; its total grows while the walk runs."""

    def __init__(self, stream: TextIO) -> None:
        from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

        self._bar = tqdm(total=0, unit="file", desc="indexing", file=stream, dynamic_ncols=True)

    def __call__(self, p: IndexProgress) -> None:
        if self._bar.total != p.files_found:
            self._bar.total = p.files_found
        self._bar.update(p.files_done - self._bar.n)
        self._bar.set_postfix_str(f"{p.bytes_done / 1e6:.0f} MB", refresh=False)

    def close(self) -> None:
        self._bar.close()


def default_display(stream: TextIO | None = None) -> PlainProgress | TqdmProgress | None:
    """The display for a run started without a callback: None unless ``stream`` (standard
    error by default) is a terminal, tqdm when it imports, else the plain line."""
    stream = stream if stream is not None else sys.stderr
    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    try:
        return TqdmProgress(stream)
    except ImportError:
        return PlainProgress(stream)
