"""The exceptions sia raises: one hierarchy under :class:`SiaError`.

Each carries the engine's message for a client (never a server path or SQL text), the
HTTP status the failure maps to (``status``), the ``WWW-Authenticate`` challenge of a
refusal (``challenge``, RFC 6750 §3) and, when the engine knows more, a ``detail`` meant
for logs (it may name files)."""

from __future__ import annotations

__all__ = [
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
]


class SiaError(Exception):
    """Base class of every error the engine reports.

    Attributes:
        message: what went wrong, for the user or client.
        status: the HTTP status this failure is answered with by ``sia serve``, or None.
        challenge: the ``WWW-Authenticate`` value of a 401/403, or None.
        detail: what the engine knows beyond ``message`` (may name files), or None.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        challenge: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.challenge = challenge
        self.detail = detail

    def __str__(self) -> str:
        # The engine's message, and what it knows beyond it (a file, a line of the
        # configuration): the caller here is the index's owner, not a remote client.
        if self.detail and self.detail != self.message:
            return f"{self.message} ({self.detail})"
        return self.message


class InvalidInput(SiaError, ValueError):
    """A malformed argument or request (HTTP 400): a UID that is not one, an unknown
    search parameter, a frame number below 1."""


class InvalidDicom(SiaError):
    """A stored file no longer reads as the DICOM file it was when indexed (HTTP 500)."""


class NotFound(SiaError, LookupError):
    """Nothing at the address asked for: no such study, series, instance or frame (404)."""


class Gone(SiaError):
    """The file of an indexed instance was removed or changed since it was indexed (410);
    index again."""


class AccessDenied(SiaError, PermissionError):
    """A valid token that does not reach what was asked for (HTTP 403)."""


class InvalidToken(SiaError, PermissionError):
    """No token, or a token that does not verify: signature, issuer, audience, expiry
    (HTTP 401, with a ``Bearer`` challenge)."""


class NotAcceptable(SiaError):
    """None of the accepted representations can be produced (HTTP 406)."""


class TooCostly(SiaError):
    """The request would cost more than the engine answers (HTTP 400, FHIR too-costly)."""


class NotImplemented(SiaError):  # noqa: A001 (the HTTP status's name)
    """A resource DICOMweb defines that sia does not serve (HTTP 501)."""


class Unavailable(SiaError):
    """Something the engine depends on is unavailable for now (HTTP 503)."""


class Cancelled(SiaError):
    """The operation was cancelled by its caller."""


class ConfigError(SiaError):
    """An invalid configuration file or option, or an index written by a newer sia."""


class InternalError(SiaError):
    """A failure inside the engine (index database, I/O); ``detail`` says what."""


class EngineClosed(SiaError):
    """A call on an engine after :meth:`sia.Engine.close`."""
