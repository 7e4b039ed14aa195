//! The engine's one error type: a [`ErrorKind`] a host maps to its own exceptions or
//! status codes, a message meant for the client, and a detail meant for the log.
//!
//! Per-file problems during indexing are not errors of the run: they are reported in
//! the [`crate::IndexReport`] with a reason.
//!
//! The client message never holds a server path, SQL text or an internal identifier
//! (file row ids): those go to [`Error::detail`] only. Every conversion of an error into
//! an HTTP answer goes through [`Error::to_response`] (plain text, DICOMweb) or
//! [`Error::to_fhir_response`] (an OperationOutcome), so a host that calls the typed
//! methods and one that calls [`crate::Engine::handle`] answer alike.

use std::fmt;
use std::path::Path;

use crate::http::{Body, Response};

/// What kind of failure an [`Error`] is; each maps to one HTTP status
/// ([`ErrorKind::status`]). More kinds may be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Nothing at the address asked for (404).
    NotFound,
    /// The file of an indexed instance was removed or changed since it was indexed (410).
    Gone,
    /// The request or an argument is malformed (400).
    InvalidInput,
    /// No credentials, or credentials that do not verify (401, with a challenge).
    Unauthorized,
    /// Valid credentials that do not reach what was asked for (403).
    Forbidden,
    /// None of the accepted representations can be produced (406).
    NotAcceptable,
    /// The request would cost more than the engine answers (400, FHIR `too-costly`).
    TooCostly,
    /// A resource DICOMweb defines that sia does not serve yet (501).
    NotImplemented,
    /// Something the engine depends on is unavailable for now (503).
    Unavailable,
    /// The operation was cancelled by its caller (an index run whose progress callback
    /// answered `Break`).
    Cancelled,
    /// The configuration is invalid, or the index belongs to a newer sia.
    Config,
    /// A stored DICOM file can no longer be read as it was when indexed (500).
    InvalidDicom,
    /// A failure inside the engine (index database, I/O, a bug) (500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status this kind is answered with.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::Gone => 410,
            ErrorKind::InvalidInput | ErrorKind::TooCostly => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotAcceptable => 406,
            ErrorKind::NotImplemented => 501,
            ErrorKind::Unavailable => 503,
            ErrorKind::Cancelled
            | ErrorKind::Config
            | ErrorKind::InvalidDicom
            | ErrorKind::Internal => 500,
        }
    }

    /// The FHIR `IssueType` code (R4 `OperationOutcome.issue.code`) of this kind.
    fn fhir_code(self) -> &'static str {
        match self {
            ErrorKind::NotFound | ErrorKind::Gone => "not-found",
            ErrorKind::InvalidInput => "invalid",
            ErrorKind::Unauthorized => "login",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::TooCostly => "too-costly",
            ErrorKind::NotAcceptable | ErrorKind::NotImplemented => "not-supported",
            ErrorKind::Unavailable => "transient",
            _ => "exception",
        }
    }
}

/// The client message of every failure inside the engine: what went wrong is in the
/// detail, for the log.
pub(crate) const INTERNAL_ERROR: &str = "internal error while answering this request";

/// An engine operation failed. `Send + Sync + 'static`; cheap to clone.
#[derive(Clone, Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    detail: Option<String>,
    /// The `WWW-Authenticate` value of a 401 or 403 (RFC 6750 §3).
    challenge: Option<String>,
    /// A FHIR issue code more precise than the kind's (`not-supported` for an unknown
    /// search parameter, which is still a 400).
    fhir_code: Option<&'static str>,
    /// Seconds a client should wait before retrying a 503 (RFC 9110 §10.2.3).
    retry_after: Option<u32>,
}

impl Error {
    /// An error of `kind` with `message` for the client. Control characters in the
    /// message are replaced by U+FFFD and it is cut at 1,024 characters: messages echo
    /// request text, which must not split a header or come back at any size.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: crate::http::client_message(message.into()),
            detail: None,
            challenge: None,
            fhir_code: None,
            retry_after: None,
        }
    }

    /// This error with a `Retry-After` of `seconds` in its response (RFC 9110 §10.2.3):
    /// for `Unavailable` errors that clear by themselves (every decoder busy).
    pub fn with_retry_after(mut self, seconds: u32) -> Error {
        self.retry_after = Some(seconds);
        self
    }

    /// The `Retry-After` seconds of this error's response, if it has one.
    pub fn retry_after(&self) -> Option<u32> {
        self.retry_after
    }

    /// This error with `detail` for the log (may name paths and SQL).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Error {
        self.detail = Some(detail.into());
        self
    }

    pub(crate) fn with_challenge(mut self, challenge: Option<String>) -> Error {
        // A challenge quotes a token's claims; a host copies it into a header as is.
        self.challenge = challenge.map(|c| {
            if crate::http::is_safe_header_value(&c) {
                c
            } else {
                crate::http::safe_header_value(&c)
            }
        });
        self
    }

    pub(crate) fn with_fhir_code(mut self, code: &'static str) -> Error {
        self.fhir_code = Some(code);
        self
    }

    /// A failure inside the engine: the client reads a fixed message, the log `detail`.
    pub fn internal(detail: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Internal, INTERNAL_ERROR).with_detail(detail.to_string())
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, message)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidInput, message)
    }

    pub(crate) fn not_acceptable(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotAcceptable, message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Forbidden, message)
    }

    /// A file or folder could not be read or written (the path goes to the detail).
    pub(crate) fn io(path: impl AsRef<Path>, source: std::io::Error) -> Error {
        let kind = match source.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::Forbidden,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, format!("a file or folder cannot be used: {source}"))
            .with_detail(format!("{}: {source}", path.as_ref().display()))
    }

    /// The index was written by a newer sia, or is not a sia index.
    pub(crate) fn schema(detail: impl Into<String>) -> Error {
        let detail = detail.into();
        Error::new(ErrorKind::Config, detail.clone()).with_detail(detail)
    }

    /// The run was cancelled by its caller.
    pub(crate) fn cancelled() -> Error {
        Error::new(ErrorKind::Cancelled, "the operation was cancelled")
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message for the client: never a server path, SQL text or internal id.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What the engine knows beyond the message, for the host's log.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The HTTP status the kind maps to.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3) of an authorization failure.
    pub fn challenge(&self) -> Option<&str> {
        self.challenge.as_deref()
    }

    /// The plain-text answer (DICOMweb errors carry a human-readable reason): status,
    /// `WWW-Authenticate` when there is a challenge, the message as the body, and the
    /// detail in [`Response::detail`].
    pub fn to_response(&self) -> Response {
        let mut r = Response::error(self.status(), &self.message);
        self.finish(&mut r);
        r
    }

    /// The FHIR answer: an OperationOutcome with the kind's issue code and the message
    /// as `diagnostics` (FHIR R4 §3.1.0.9 `http.html#summary`).
    pub fn to_fhir_response(&self) -> Response {
        let code = self.fhir_code.unwrap_or(self.kind.fhir_code());
        let body = serde_json::to_vec(&crate::fhir::operation_outcome(code, &self.message))
            .unwrap_or_default();
        let mut r =
            Response::with_body(self.status(), "application/fhir+json", Body::from_vec(body));
        self.finish(&mut r);
        r
    }

    fn finish(&self, r: &mut Response) {
        if let Some(c) = &self.challenge {
            r.headers.push(("WWW-Authenticate".into(), c.clone()));
        }
        if let Some(s) = self.retry_after {
            r.headers.push(("Retry-After".into(), s.to_string()));
        }
        if let Some(d) = &self.detail {
            r.set_detail(d.clone());
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match &self.detail {
            Some(d) if *d != self.message => write!(f, " ({d})"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for Error {}

/// Index database failures are internal: SQLite's text goes to the detail only.
#[doc(hidden)]
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        let kind = match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                ErrorKind::Unavailable
            }
            _ => ErrorKind::Internal,
        };
        let message = if kind == ErrorKind::Unavailable {
            "the index is busy; try again"
        } else {
            INTERNAL_ERROR
        };
        Error::new(kind, message).with_detail(format!("index: {e}"))
    }
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_after_reaches_both_answers_and_only_when_set() {
        let busy = Error::new(ErrorKind::Unavailable, "busy").with_retry_after(1);
        assert_eq!(busy.retry_after(), Some(1));
        for r in [busy.to_response(), busy.to_fhir_response()] {
            assert_eq!(r.status, 503);
            assert_eq!(r.header("Retry-After"), Some("1"));
        }
        let plain = Error::new(ErrorKind::Unavailable, "down");
        assert_eq!(plain.to_response().header("Retry-After"), None);
    }

    #[test]
    fn the_client_never_reads_the_detail() {
        let e = Error::io("/srv/secret/x.dcm", std::io::Error::other("boom"));
        assert!(!e.message().contains("/srv/secret"));
        assert!(e.detail().unwrap().contains("/srv/secret"));
        let r = e.to_response();
        assert!(!String::from_utf8_lossy(&r.body.to_vec()).contains("/srv"));
        assert_eq!(r.detail(), e.detail());
        let f = Error::new(ErrorKind::Unauthorized, "no")
            .with_challenge(Some("Bearer realm=\"sia\"".into()))
            .to_fhir_response();
        assert_eq!(f.status, 401);
        assert_eq!(f.header("WWW-Authenticate"), Some("Bearer realm=\"sia\""));
        let v: serde_json::Value = serde_json::from_slice(&f.body.to_vec()).unwrap();
        assert_eq!(v["issue"][0]["code"], "login");
    }

    #[test]
    fn every_kind_has_its_status() {
        for (k, s) in [
            (ErrorKind::NotFound, 404),
            (ErrorKind::Gone, 410),
            (ErrorKind::InvalidInput, 400),
            (ErrorKind::Unauthorized, 401),
            (ErrorKind::Forbidden, 403),
            (ErrorKind::NotAcceptable, 406),
            (ErrorKind::TooCostly, 400),
            (ErrorKind::NotImplemented, 501),
            (ErrorKind::Unavailable, 503),
            (ErrorKind::Internal, 500),
        ] {
            assert_eq!(k.status(), s, "{k:?}");
        }
    }
}
