//! Middleware around every route: one log line per request, request-size limits, gzip
//! for JSON only, and CORS from the configuration (tower-http does the protocol work).

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Longest request target (path and query) served; longer ones are 414 (RFC 9110 §15.5.15).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// One `tracing` line per request: method, path (never the query: OHIF and capability
/// URLs carry tokens there), status, response bytes and microseconds. No header is logged.
///
/// Request targets longer than [`MAX_URI_BYTES`] are answered 414 here (RFC 9110
/// §15.5.15; hyper bounds only the whole head), and logged: one layer for both, as
/// every layer costs each request a boxed future and a service clone.
pub async fn log_line(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let target_len = path.len() + req.uri().query().map_or(0, |q| q.len() + 1);
    let resp = if target_len > MAX_URI_BYTES {
        (
            StatusCode::URI_TOO_LONG,
            format!("the request target is longer than {MAX_URI_BYTES} bytes\n"),
        )
            .into_response()
    } else {
        next.run(req).await
    };
    let bytes = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    tracing::info!(
        target: super::logging::REQUEST_TARGET,
        "{method} {} {} {bytes} {}us",
        loggable(&path),
        resp.status().as_u16(),
        start.elapsed().as_micros()
    );
    resp
}

/// The path for a log line: capability segments (`/cap/{capability}/`) replaced, at most
/// 200 characters, control characters escaped.
fn loggable(path: &str) -> std::borrow::Cow<'_, str> {
    // Most paths need nothing replaced: no capability, short, printable.
    if path.len() <= 200 && !path.contains("/cap/") && !path.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut parts: Vec<&str> = path.split('/').collect();
    for i in 0..parts.len().saturating_sub(1) {
        if parts[i] == "cap" {
            parts[i + 1] = "…";
        }
    }
    let joined = parts.join("/");
    let mut out = String::new();
    for c in joined.chars().take(200) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if joined.chars().count() > 200 {
        out.push('…');
    }
    std::borrow::Cow::Owned(out)
}

/// Compress JSON (FHIR, DICOM JSON, OAuth) and HTML above 512 bytes; never pixel data,
/// multipart bodies or DICOM files, which are already compressed or must stay
/// byte-ranges of the files.
#[derive(Clone, Copy)]
pub struct JsonOnly;

impl Predicate for JsonOnly {
    fn should_compress<B>(&self, response: &axum::http::Response<B>) -> bool
    where
        B: http_body::Body,
    {
        let ct = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or("").trim();
        let textual = essence == "application/json"
            || essence.ends_with("+json")
            || essence == "text/html"
            || essence == "text/plain";
        textual && SizeAbove::new(512).should_compress(response)
    }
}

/// CORS for `origins` (`*` allows any origin). Browsers preflight every request that
/// carries `Authorization` or a quoted `Accept` (OHIF does both), so `OPTIONS` is
/// answered here for any path; the headers a viewer reads are exposed.
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
            .collect();
        AllowOrigin::list(list)
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::ACCEPT,
                header::CONTENT_TYPE,
                header::RANGE,
            ])
            .expose_headers([
                header::CONTENT_LOCATION,
                header::WARNING,
                header::WWW_AUTHENTICATE,
                header::CONTENT_TYPE,
                header::CONTENT_LENGTH,
                header::LOCATION,
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::loggable;

    #[test]
    fn log_paths_hide_capabilities_and_control_characters() {
        assert_eq!(
            loggable("/dicom-web/cap/SECRET/studies/1"),
            "/dicom-web/cap/…/studies/1"
        );
        assert_eq!(loggable("/a\nb"), "/a\\nb");
        assert!(loggable(&"x".repeat(1000)).chars().count() <= 201);
    }
}
