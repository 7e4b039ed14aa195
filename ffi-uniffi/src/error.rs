//! The one error type of the binding: a uniffi error enum that becomes the Kotlin
//! exception hierarchy `SiaException` (`SiaException.NotFound`, `.AccessDenied`, ...;
//! uniffi renames the variant `ConfigError` to `ConfigException`, as `SiaError` itself),
//! named as the Python package names its exceptions (`sia.NotFound`, `sia.AccessDenied`).

/// Why an engine call failed. In Kotlin each variant is a subclass of the sealed class
/// `SiaException` (a `kotlin.Exception`) whose `message` is the client-safe message: it
/// never names a server path, SQL text or internal id (the log detail stays in Rust).
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum SiaError {
    /// An argument was malformed (HTTP 400).
    #[error("{0}")]
    InvalidInput(String),
    /// A file is not DICOM the engine can read.
    #[error("{0}")]
    InvalidDicom(String),
    /// No such study, series, instance or frame (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The resource was indexed but its file is gone (HTTP 410).
    #[error("{0}")]
    Gone(String),
    /// No token, or a token that is expired, forged or for another audience (HTTP 401,
    /// RFC 6750 `invalid_token`).
    #[error("{0}")]
    InvalidToken(String),
    /// A valid token that does not reach this resource: scope or patient compartment
    /// (HTTP 403).
    #[error("{0}")]
    AccessDenied(String),
    /// No representation matches the requested media type / transfer syntax (HTTP 406).
    #[error("{0}")]
    NotAcceptable(String),
    /// The request would cost more than the engine's limits allow (HTTP 413).
    #[error("{0}")]
    TooCostly(String),
    /// The index or storage is temporarily unavailable (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// A feature the request needs is not implemented (HTTP 501).
    #[error("{0}")]
    NotImplemented(String),
    /// The progress callback asked the run to stop.
    #[error("{0}")]
    Cancelled(String),
    /// The configuration could not be read or is invalid.
    #[error("{0}")]
    ConfigError(String),
    /// A bug or an unexpected failure inside the engine (HTTP 500).
    #[error("{0}")]
    Internal(String),
}

impl SiaError {
    /// A configuration that could not be read or used, whatever the engine's kind.
    pub(crate) fn config(e: sia::Error) -> SiaError {
        SiaError::ConfigError(e.message().to_string())
    }
}

impl From<sia::Error> for SiaError {
    /// By the engine's kind, with its client-safe message (the detail, which may name a
    /// path, stays in Rust).
    fn from(e: sia::Error) -> SiaError {
        let m = e.message().to_string();
        match e.kind() {
            sia::ErrorKind::NotFound => SiaError::NotFound(m),
            sia::ErrorKind::Gone => SiaError::Gone(m),
            sia::ErrorKind::InvalidInput => SiaError::InvalidInput(m),
            sia::ErrorKind::Unauthorized => SiaError::InvalidToken(m),
            sia::ErrorKind::Forbidden => SiaError::AccessDenied(m),
            sia::ErrorKind::NotAcceptable => SiaError::NotAcceptable(m),
            sia::ErrorKind::TooCostly => SiaError::TooCostly(m),
            sia::ErrorKind::NotImplemented => SiaError::NotImplemented(m),
            sia::ErrorKind::Unavailable => SiaError::Unavailable(m),
            sia::ErrorKind::Cancelled => SiaError::Cancelled(m),
            sia::ErrorKind::Config => SiaError::ConfigError(m),
            sia::ErrorKind::InvalidDicom => SiaError::InvalidDicom(m),
            _ => SiaError::Internal(m),
        }
    }
}
