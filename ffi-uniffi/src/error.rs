//! The one error type of the binding: a uniffi error enum that becomes the Kotlin
//! exception hierarchy `SiaException` (`SiaException.NotFound`, `.AccessDenied`, ...),
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
    /// The error an HTTP status of an engine response stands for, with the response's
    /// client-safe message. `None` for success statuses.
    pub(crate) fn from_status(status: u16, message: String) -> Option<SiaError> {
        Some(match status {
            200..=299 => return None,
            400 => SiaError::InvalidInput(message),
            401 => SiaError::InvalidToken(message),
            403 => SiaError::AccessDenied(message),
            404 => SiaError::NotFound(message),
            406 => SiaError::NotAcceptable(message),
            410 => SiaError::Gone(message),
            413 => SiaError::TooCostly(message),
            503 => SiaError::Unavailable(message),
            _ => SiaError::Internal(message),
        })
    }
}

impl From<sia::Error> for SiaError {
    fn from(e: sia::Error) -> SiaError {
        match e {
            sia::Error::InvalidInput(m) => SiaError::InvalidInput(m),
            other => SiaError::Internal(other.to_string()),
        }
    }
}
