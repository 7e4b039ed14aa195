"""sia — SMART Imaging Access, from Python.

Index folders of DICOM files into a SQLite index, find studies as FHIR ImagingStudy
resources, read frames without copying (``memoryview``) or as NumPy arrays, check SMART
tokens, and serve everything over ASGI (:mod:`sia.asgi`)::

    import sia

    with sia.Engine("archive.db") as engine:
        print(engine.index(["/data/dicom"]))
        for study in engine.studies(patient_id="DEMO-001"):
            print(study["id"], study.get("description"))

Every call runs in the engine (Rust) with the GIL released (except frame reads in
``mmap`` read mode, a few microseconds each: shorter than handing the GIL over); one
engine may be shared by any number of threads. Errors are :class:`SiaError` subclasses.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Union

from . import _sia
from ._errors import (
    AccessDenied,
    Cancelled,
    ConfigError,
    EngineClosed,
    Gone,
    InternalError,
    InvalidDicom,
    InvalidInput,
    InvalidToken,
    NotAcceptable,
    NotFound,
    NotImplemented,
    SiaError,
    TooCostly,
    Unavailable,
)
from ._progress import default_display
from ._report import IndexReport
from ._sia import IndexProgress, Response, write_demo

if TYPE_CHECKING:
    import numpy

__version__: str = _sia.__version__

__all__ = [
    "Engine",
    "IndexProgress",
    "IndexReport",
    "Response",
    "SiaError",
    "InvalidInput",
    "InvalidDicom",
    "NotFound",
    "Gone",
    "AccessDenied",
    "InvalidToken",
    "NotAcceptable",
    "TooCostly",
    "NotImplemented",
    "Unavailable",
    "Cancelled",
    "ConfigError",
    "InternalError",
    "EngineClosed",
    "write_demo",
    "__version__",
]

PathArg = Union[str, "os.PathLike[str]"]
SearchValue = Union[str, int, Iterable[Union[str, int]]]


class Engine(_sia.Engine):
    """An open sia index.

    ``Engine(db, config=None, *, base_url=None, read_mode=None)``

    Args:
        db: the SQLite index file (created when missing), or a PostgreSQL database as a
            ``postgres://`` URL (tables created at open). May be None when ``config``
            names one (``[server] db``, or ``[index] db`` / ``url``).
        config: a sia configuration file (TOML; see the README): trusted token issuers,
            patient policy, storage read mode. Relative paths in it are relative to its
            folder. Without one, every call is answered as to the local administrator.
        base_url: the public base URL resources are addressed under (FHIR at
            ``{base_url}/fhir``, DICOMweb at ``{base_url}/dicom-web``); default the
            configuration's, else ``http://127.0.0.1:8080``.
        read_mode: ``"pread"`` (default: a file truncated while read is an error, never a
            crash) or ``"mmap"`` (frames are zero-copy views of the file's mapping; only
            for files never truncated or rewritten in place).

    Raises:
        ConfigError: the configuration is invalid, or the index belongs to a newer sia.
        InternalError: the index cannot be opened (``detail`` says why).

    An engine is a context manager (``with sia.Engine(...) as e:`` closes it) and is safe
    to share between threads.

    Reads (``studies``, ``search``, ``metadata``, ``frame``, ``frames``, ``pixel_info``,
    ``pixel_array``) answer as to the index's local administrator, whatever issuers the
    configuration trusts; ``authorize`` gives the decision for a token, and ``handle``
    answers a request exactly as ``sia serve`` would, authorization included.
    """

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def index(
        self,
        paths: PathArg | Iterable[PathArg],
        progress: Callable[[IndexProgress], object] | bool | None = None,
    ) -> IndexReport:
        """Indexes DICOM files and folders (recursively): new and changed files are read,
        unchanged ones skipped, vanished ones removed.

        Args:
            paths: a file or folder, or several.
            progress: a callable given an :class:`IndexProgress` about ten times a second
                (on the calling thread); True for the default display, False for none.
                By default (None) a progress bar is shown when standard error is a
                terminal (tqdm when installed, else a plain line).

        Returns:
            An :class:`IndexReport` (counts, duplicates, skipped files with reasons).

        Raises:
            KeyboardInterrupt: on Ctrl-C: the run is cancelled; what was committed stays
                and the index stays consistent, so running again completes it.
            Any exception the ``progress`` callable raises, after cancelling likewise.

        The GIL is released while the engine works, so other threads keep running.
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        roots = [os.fspath(p) for p in paths]
        display = None
        callback: Callable[[IndexProgress], object] | None
        if progress is None or progress is True:
            display = default_display()
            if display is None and progress is True:
                from ._progress import PlainProgress
                import sys

                display = PlainProgress(sys.stderr)
            callback = display
        elif progress is False:
            callback = None
        else:
            callback = progress
        try:
            report = self._index(roots, callback)
        finally:
            if display is not None:
                display.close()
        return IndexReport.from_engine(report)

    def search(self, params: Mapping[str, SearchValue] | None = None, /, **kwargs: SearchValue) -> dict[str, Any]:
        """Searches ImagingStudy (FHIR R4 search) and returns the searchset Bundle.

        Parameters are FHIR's: ``patient`` (``"Patient/123"``), ``identifier``
        (``"urn:oid:1.2.3"``), ``started`` and ``_lastUpdated`` (``"ge2020-01-01"``),
        ``modality``, ``_count``, ``_offset``; ``patient_identifier`` stands for
        ``patient.identifier`` (``"ISSUER|ID"`` or ``"ID"``). A list value repeats the
        parameter (``started=["ge2020", "lt2021"]``).

        Raises:
            InvalidInput: an unknown parameter or a malformed value.
        """
        merged: dict[str, SearchValue] = dict(params or {})
        merged.update(kwargs)
        query: list[tuple[str, str]] = []
        for name, value in merged.items():
            name = "patient.identifier" if name == "patient_identifier" else name
            values = [value] if isinstance(value, (str, int)) else list(value)
            query.extend((name, str(v)) for v in values)
        result: dict[str, Any] = self._search(query)
        return result

    def pixel_array(self, study: str, series: str, sop: str, number: int | None = None) -> numpy.ndarray:
        """The pixel data of a native (uncompressed) instance as a NumPy array.

        Args:
            number: one frame (from 1), or None for every frame.

        Returns:
            For one frame, shape ``(rows, columns)`` or ``(rows, columns, samples)``
            (planar configuration 1 is transposed to that shape as a view); for every
            frame, a leading ``frames`` axis. The dtype follows Bits Allocated and Pixel
            Representation (``uint8``, ``int16``/``uint16``, ``int32``/``uint32``),
            little-endian. Values are stored values: no rescale, no windowing. One frame
            is a read-only view of the engine's buffer (no copy); every frame of a
            multi-frame instance is stacked into a new array (one copy).

        Raises:
            NotAcceptable: the frames are compressed (encapsulated); read them with
                :meth:`frame` and decode.
            NotFound: no such instance or frame.
            ImportError: NumPy is not installed (it is imported only here).
        """
        from ._pixels import pixel_array

        return pixel_array(self, study, series, sop, number)
