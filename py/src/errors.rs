//! Engine failures as Python exceptions. The classes live in `sia/_errors.py` (a
//! hierarchy under `sia.SiaError`, with `status`, `challenge` and `detail` attributes);
//! this module picks the class from the engine's error kind or HTTP status and raises
//! it with the engine's client message.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule};

/// The exception classes of `sia._errors`, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// 404.
    NotFound,
    /// 410: the file of an indexed instance was removed or changed.
    Gone,
    /// 400: a malformed argument or request.
    InvalidInput,
    /// 401: no token, or one that does not verify.
    InvalidToken,
    /// 403: a valid token that does not reach what was asked.
    AccessDenied,
    /// 406.
    NotAcceptable,
    /// 400 (FHIR too-costly).
    TooCostly,
    /// 501.
    NotImplemented,
    /// 503.
    Unavailable,
    /// An invalid configuration, or an index of a newer sia.
    ConfigError,
    /// A stored file no longer reads as it did when indexed.
    InvalidDicom,
    /// An index run cancelled by its caller.
    Cancelled,
    /// A failure inside the engine.
    InternalError,
    /// A call on a closed engine.
    EngineClosed,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::NotFound => "NotFound",
            Class::Gone => "Gone",
            Class::InvalidInput => "InvalidInput",
            Class::InvalidToken => "InvalidToken",
            Class::AccessDenied => "AccessDenied",
            Class::NotAcceptable => "NotAcceptable",
            Class::TooCostly => "TooCostly",
            Class::NotImplemented => "NotImplemented",
            Class::Unavailable => "Unavailable",
            Class::ConfigError => "ConfigError",
            Class::InvalidDicom => "InvalidDicom",
            Class::Cancelled => "Cancelled",
            Class::InternalError => "InternalError",
            Class::EngineClosed => "EngineClosed",
        }
    }

    /// The class of an engine error kind.
    pub fn of_kind(kind: sia::ErrorKind) -> Class {
        use sia::ErrorKind as K;
        match kind {
            K::NotFound => Class::NotFound,
            K::Gone => Class::Gone,
            K::InvalidInput => Class::InvalidInput,
            K::Unauthorized => Class::InvalidToken,
            K::Forbidden => Class::AccessDenied,
            K::NotAcceptable => Class::NotAcceptable,
            K::TooCostly => Class::TooCostly,
            K::NotImplemented => Class::NotImplemented,
            K::Unavailable => Class::Unavailable,
            K::Cancelled => Class::Cancelled,
            K::Config => Class::ConfigError,
            K::InvalidDicom => Class::InvalidDicom,
            // Internal, and kinds a newer engine adds.
            _ => Class::InternalError,
        }
    }
}

/// What a raised exception carries besides its message.
#[derive(Debug, Default)]
pub struct Extra<'a> {
    /// The HTTP status the failure maps to.
    pub status: Option<u16>,
    /// The `WWW-Authenticate` challenge of a refusal (RFC 6750 §3).
    pub challenge: Option<&'a str>,
    /// What the engine knows beyond the message (may name files), for logs.
    pub detail: Option<&'a str>,
}

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// The exception `class(message, status=, challenge=, detail=)` from `sia._errors`.
pub fn raise(py: Python<'_>, class: Class, message: &str, extra: Extra<'_>) -> PyErr {
    match build(py, class, message, &extra) {
        Ok(err) => err,
        // Only when the package is broken (sia._errors missing): still an exception.
        Err(e) => e,
    }
}

fn build(py: Python<'_>, class: Class, message: &str, extra: &Extra<'_>) -> PyResult<PyErr> {
    let module =
        ERRORS.get_or_try_init(py, || Ok::<_, PyErr>(py.import("sia._errors")?.unbind()))?;
    let cls = module.bind(py).getattr(class.name())?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("status", extra.status)?;
    kwargs.set_item("challenge", extra.challenge)?;
    kwargs.set_item("detail", extra.detail)?;
    let value = cls.call((message,), Some(&kwargs))?;
    Ok(PyErr::from_value(value))
}

/// The Python exception of an engine error: its class from the kind, the client message,
/// the status, the challenge of a refusal and the detail for logs.
pub fn engine_error(py: Python<'_>, e: &sia::Error) -> PyErr {
    raise(
        py,
        Class::of_kind(e.kind()),
        e.message(),
        Extra {
            status: Some(e.status()),
            challenge: e.challenge(),
            detail: e.detail(),
        },
    )
}

/// `InvalidInput` (status 400) with `message`.
pub fn invalid(py: Python<'_>, message: &str) -> PyErr {
    raise(
        py,
        Class::InvalidInput,
        message,
        Extra {
            status: Some(400),
            ..Extra::default()
        },
    )
}

/// `EngineClosed`: a call after `Engine.close()`.
pub fn closed(py: Python<'_>) -> PyErr {
    raise(
        py,
        Class::EngineClosed,
        "the engine is closed",
        Extra::default(),
    )
}
