//! What wraps every route: one log line per request, the request-target limit, CORS
//! from the configuration and gzip for JSON only (tower-http does the protocol work).
//!
//! [`Front`] is one tower service rather than a stack of axum layers: a layer added
//! with `Router::layer` or `middleware::from_fn` costs every request a boxed future and
//! clones of the services beneath it, and with CORS, compression and the log line that
//! was half of what `/healthz` cost (38,153 instructions a request with the layers,
//! 18,773 without). CORS's response headers only mean something to a request that
//! carries `Origin` (Fetch §3.2), so tower-http's CORS service is built for those
//! requests and preflights; other answers get its `Vary` header alone. Requests under
//! the FHIR and DICOMweb bases go to the engine route directly: axum's router would
//! only have matched them to its fallback.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service, ServiceExt};
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::{Compression, CompressionLayer};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::transport::EngineService;
use super::web::EnginePaths;

/// Longest request target (path and query) served; longer ones are 414 (RFC 9110 §15.5.15).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The `Vary` value tower-http's CORS service gives every answer: what a request that
/// carries none of these fields gets instead, so that a cache never hands an answer made
/// without CORS headers to a cross-origin request.
const CORS_VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

/// The server's service: the router with gzip for JSON, CORS where configured, and one
/// `tracing` line per request (method, path (never the query: OHIF and capability URLs
/// carry tokens there), status, response bytes and microseconds; no header is logged).
/// Request targets longer than [`MAX_URI_BYTES`] are answered 414 here (RFC 9110
/// §15.5.15; hyper bounds only the whole head), and logged.
#[derive(Clone)]
pub struct Front {
    router: Compression<Router, JsonOnly>,
    /// The engine's route for the paths only it answers, without the router's matching
    /// (a request would only reach its fallback).
    engine: Compression<EngineService, JsonOnly>,
    engine_paths: Arc<EnginePaths>,
    cors: Option<Arc<CorsLayer>>,
}

impl Front {
    /// `router` (whose fallback is the engine route) and `engine` (that route as a
    /// service, for the paths `engine_paths` names) behind gzip for JSON and, when `cors`
    /// is given, CORS.
    pub fn new(
        router: Router,
        engine: EngineService,
        engine_paths: EnginePaths,
        cors: Option<CorsLayer>,
    ) -> Front {
        let gzip = CompressionLayer::new().compress_when(JsonOnly);
        Front {
            router: gzip.layer(router),
            engine: gzip.layer(engine),
            engine_paths: Arc::new(engine_paths),
            cors: cors.map(Arc::new),
        }
    }

    /// The answer, before the log line.
    async fn answer(self, req: axum::extract::Request) -> Response {
        let target_len = req.uri().path().len() + req.uri().query().map_or(0, |q| q.len() + 1);
        if target_len > MAX_URI_BYTES {
            return (
                StatusCode::URI_TOO_LONG,
                format!("the request target is longer than {MAX_URI_BYTES} bytes\n"),
            )
                .into_response();
        }
        if self.engine_paths.engine_serves(req.uri().path()) {
            with_cors(self.engine, self.cors, req).await
        } else {
            with_cors(self.router, self.cors, req).await
        }
    }
}

/// `inner`'s answer to `req`, through tower-http's CORS service when `cors` is configured
/// and the request is a preflight or carries `Origin`; other answers get its `Vary`.
async fn with_cors<S, B>(
    inner: S,
    cors: Option<Arc<CorsLayer>>,
    req: axum::extract::Request,
) -> Response
where
    S: Service<axum::extract::Request, Response = axum::http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: http_body::Body<Data = bytes::Bytes> + Default + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let Some(cors) = cors else {
        return into_response(inner.oneshot(req).await);
    };
    if req.method() == Method::OPTIONS || req.headers().contains_key(header::ORIGIN) {
        return into_response(cors.layer(inner).oneshot(req).await);
    }
    let mut resp = into_response(inner.oneshot(req).await);
    resp.headers_mut().append(header::VARY, CORS_VARY);
    resp
}

/// A response of any body, as axum's.
fn into_response<B>(r: Result<axum::http::Response<B>, Infallible>) -> Response
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    match r {
        Ok(resp) => resp.map(Body::new),
        Err(never) => match never {},
    }
}

impl<B> Service<axum::http::Request<B>> for Front
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router and the layers here are always ready; `answer` uses `oneshot`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let start = Instant::now();
        let method = req.method().clone();
        // A `Uri` clone shares its bytes: the path for the log line without a copy.
        let uri = req.uri().clone();
        let front = self.clone();
        Box::pin(async move {
            let resp = front.answer(req.map(Body::new)).await;
            let bytes = resp
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info!(
                target: super::logging::REQUEST_TARGET,
                "{method} {} {} {bytes} {}us",
                loggable(uri.path()),
                resp.status().as_u16(),
                start.elapsed().as_micros()
            );
            Ok(resp)
        })
    }
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
