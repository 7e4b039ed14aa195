"""Type stubs of the compiled module ``sia._sia`` (Rust, pyo3). Use the ``sia`` package:
``sia.Engine`` subclasses the ``Engine`` here and adds ``index``, ``search`` and
``pixel_array``."""

import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, final

__version__: str

_Path = str | os.PathLike[str]
_Headers = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]

def write_demo(folder: _Path) -> list[pathlib.Path]:
    """Writes sia's synthetic demo set (3 patients, 4 studies, 40 files) into ``folder``;
    returns the files written."""

@final
class IndexProgress:
    """Where an index run is (given to an ``Engine.index`` progress callback)."""

    @property
    def files_done(self) -> int:
        """Files read and written so far in this run."""
    @property
    def files_found(self) -> int:
        """Files this run reads, found so far; the total once ``walk_done``."""
    @property
    def walk_done(self) -> bool:
        """Whether the walk has finished."""
    @property
    def bytes_done(self) -> int:
        """Bytes of the files read so far."""
    @property
    def current(self) -> str:
        """The file written last."""

@final
class Response:
    """An HTTP answer of ``Engine.handle``."""

    @property
    def status(self) -> int:
        """The status code."""
    @property
    def reason(self) -> str:
        """The standard reason phrase, or ``""``."""
    @property
    def headers(self) -> list[tuple[str, str]]:
        """Header fields in order (``Content-Length`` included)."""
    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
    @property
    def chunks(self) -> list[memoryview]:
        """The body as read-only views over the engine's buffers (no copy); each stays
        valid while referenced, also after ``Engine.close()``."""
    @property
    def body(self) -> bytes:
        """The whole body (one copy)."""
    @property
    def content_length(self) -> int:
        """The body's length in bytes."""
    @property
    def detail(self) -> str | None:
        """What went wrong beyond what a client reads (may name files), for logs."""

@final
class PixelInfo:
    """How an instance's frames are encoded (PS3.3 C.7.6.3 Image Pixel Module)."""

    @property
    def transfer_syntax(self) -> str:
        """The Transfer Syntax UID frames are returned in (the stored one)."""
    @property
    def number_of_frames(self) -> int:
        """Frames in the instance (1 for single-frame images)."""
    @property
    def rows(self) -> int:
        """Rows (0028,0010)."""
    @property
    def columns(self) -> int:
        """Columns (0028,0011)."""
    @property
    def samples_per_pixel(self) -> int:
        """Samples per Pixel (0028,0002): 1 (grey) or 3 (colour)."""
    @property
    def bits_allocated(self) -> int:
        """Bits Allocated (0028,0100): 1, 8, 16, 32 or 64."""
    @property
    def pixel_representation(self) -> int:
        """Pixel Representation (0028,0103): 0 unsigned, 1 two's complement."""
    @property
    def planar_configuration(self) -> int:
        """Planar Configuration (0028,0006): 0 colour-by-pixel, 1 colour-by-plane."""
    @property
    def photometric_interpretation(self) -> str:
        """Photometric Interpretation (0028,0004): MONOCHROME2, RGB, YBR_FULL, ..."""
    @property
    def encapsulated(self) -> bool:
        """Whether frames are compressed (an encapsulated transfer syntax)."""

@final
class Decision:
    """The engine's authorization decision for a token and an access."""

    @property
    def allowed(self) -> bool:
        """Whether the access is granted."""
    @property
    def status(self) -> int:
        """200 when allowed, else the refusal's HTTP status (401 or 403)."""
    @property
    def message(self) -> str:
        """Why it was refused (empty when allowed)."""
    @property
    def challenge(self) -> str | None:
        """The ``WWW-Authenticate`` value of a refusal (RFC 6750 §3)."""
    @property
    def patient(self) -> str | None:
        """The FHIR Patient id of the token's patient context, if any."""
    @property
    def issuer(self) -> str | None:
        """The token's issuer (``iss``), if a token was verified."""
    @property
    def expires_at(self) -> int | None:
        """When the grant ends (Unix seconds), if it does."""
    def __bool__(self) -> bool: ...

class Engine:
    def __init__(
        self,
        db: _Path | None = None,
        config: _Path | None = None,
        *,
        base_url: str | None = None,
        read_mode: str | None = None,
    ) -> None: ...
    def close(self) -> None:
        """Releases the engine; later calls raise ``EngineClosed``. Idempotent."""
    @property
    def closed(self) -> bool: ...
    @property
    def db(self) -> pathlib.Path:
        """The index file."""
    @property
    def base_url(self) -> str:
        """The public base URL resources are addressed under."""
    def _index(self, paths: Sequence[str], progress: Any = None, interval: float = 0.1) -> dict[str, Any]: ...
    def _search(self, query: Sequence[tuple[str, str]]) -> dict[str, Any]: ...
    def studies(self, patient_id: str | None = None, issuer: str | None = None) -> list[dict[str, Any]]:
        """ImagingStudy resources (FHIR R4, as dicts) of a DICOM patient, or of every study."""
    def metadata(self, study: str, series: str | None = None, sop: str | None = None) -> list[dict[str, Any]]:
        """DICOM JSON (PS3.18 F.2) of every instance of a study, series or one instance:
        one dict per instance keyed by tag (``"00100010"``), with ``vr`` and ``Value``,
        bulk data as ``BulkDataURI``. Raises ``NotFound``, ``InvalidInput``, ``Gone``."""
    def frame(self, study: str, series: str, sop: str, number: int = 1) -> memoryview:
        """Frame ``number`` (from 1) in its stored transfer syntax (native frames as
        little-endian bytes, Explicit VR Little Endian): a read-only, 1-D view of unsigned
        bytes over the engine's buffer (of the file's mapping with read mode ``mmap``), no
        copy. It stays valid while referenced, also after ``close()``.

        Raises: ``InvalidInput`` (not a UID, number 0), ``NotFound`` (no such instance or
        frame), ``Gone`` (the file changed since it was indexed), ``EngineClosed``."""
    def frames(self, study: str, series: str, sop: str, numbers: Iterable[int] | None = None) -> list[memoryview]:
        """Several frames (every frame when ``numbers`` is None, in order), as ``frame``
        gives them; one engine call. Raises as ``frame``; ``NotFound`` names missing ones."""
    def _described_frames(
        self, study: str, series: str, sop: str, numbers: Sequence[int] | None = None
    ) -> tuple[PixelInfo, list[memoryview]]: ...
    def pixel_info(self, study: str, series: str, sop: str) -> PixelInfo:
        """How the instance's frames are encoded."""
    def link(self, fhir_patient: str, patient_id: str, issuer: str = "", *, fhir_issuer: str = "") -> None:
        """Links a FHIR Patient to a DICOM patient (Patient ID, Issuer of Patient ID)."""
    def unlink(self, fhir_patient: str, patient_id: str, issuer: str = "", *, fhir_issuer: str = "") -> bool:
        """Removes a link; whether there was one."""
    def authorize(
        self,
        token: str | None,
        study: str | None = None,
        series: str | None = None,
        sop: str | None = None,
    ) -> Decision:
        """The decision for a bearer token (None: no token) reading a study, series or
        instance (decided on its study's patient compartment), or searching ImagingStudy
        when ``study`` is None: signature, issuer, audience, expiry, scopes and links.
        Refusals are a ``Decision`` with ``allowed`` False (401 or 403), not exceptions;
        ``InvalidInput`` for malformed UIDs."""
    def handle(self, method: str, target: str, headers: _Headers | None = None) -> Response:
        """Answers an HTTP request (``target`` is ``/path?query``) as ``sia serve`` would."""
    def _time_frames(self, study: str, series: str, sop: str, number: int, iterations: int) -> float: ...
