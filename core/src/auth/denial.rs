//! [`Denial`]: why a request is refused, and the RFC 6750 challenge it answers with.

use super::token;
use crate::http::Response;

/// Why a request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// 401 or 403.
    pub status: u16,
    /// The RFC 6750 error code, when there is one.
    pub error: Option<&'static str>,
    /// Human-readable reason.
    pub reason: String,
}

impl Denial {
    pub(crate) fn unauthorized(reason: impl Into<String>) -> Denial {
        Denial {
            status: 401,
            error: Some("invalid_token"),
            reason: reason.into(),
        }
    }
    pub(crate) fn forbidden(reason: impl Into<String>) -> Denial {
        Denial {
            status: 403,
            error: Some("insufficient_scope"),
            reason: reason.into(),
        }
    }
    /// A capability URL that is forged or expired.
    pub fn unauthorized_capability(reason: impl Into<String>) -> Denial {
        Denial::unauthorized(reason)
    }
    /// A patient-compartment refusal (403 without a scope error: the scopes were fine).
    pub fn patient_mismatch(reason: impl Into<String>) -> Denial {
        Denial {
            status: 403,
            error: None,
            reason: reason.into(),
        }
    }

    /// The `WWW-Authenticate` value RFC 6750 §3 asks for: on every 401, and on a 403
    /// with an error code.
    pub(crate) fn challenge(&self) -> Option<String> {
        let challenge = match self.error {
            Some(code) => {
                // The reason may quote request input: bounded, and no quote, backslash or
                // control character reaches the header.
                let desc: String = token::clip_message(&self.reason)
                    .chars()
                    .map(|c| match c {
                        '"' | '\\' => '\'',
                        c if c.is_control() => '?',
                        c => c,
                    })
                    .collect();
                format!("Bearer realm=\"sia\", error=\"{code}\", error_description=\"{desc}\"")
            }
            None => "Bearer realm=\"sia\"".to_string(),
        };
        (self.status == 401 || self.error.is_some()).then_some(challenge)
    }

    /// The HTTP response, with `WWW-Authenticate` as RFC 6750 asks.
    pub fn response(&self) -> Response {
        crate::Error::from(self.clone()).to_response()
    }
}
