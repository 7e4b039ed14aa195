//! The translation between HTTP as hyper/axum carry it and the engine's transport-neutral
//! [`sia::Request`] / [`sia::Response`]. Nothing here decides a status or a
//! header: `Engine::handle` does; this only moves bytes, without copying mapped ones.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use sia::Chunk;
use sia::Engine;

use super::ehr::{Introspector, Outcome};
use super::jwks::JwksFetcher;

/// What the engine route needs.
pub struct EngineState {
    /// The engine every request goes through.
    pub engine: Arc<Engine>,
    /// Fetches issuers' keys when a token names a `kid` not yet known.
    pub jwks: Option<Arc<JwksFetcher>>,
    /// Introspects tokens at EHRs configured with `introspection_url`.
    pub introspector: Option<Arc<Introspector>>,
    /// Resolves tokens' FHIR Patients at EHRs configured with `resolve_patients`.
    pub resolver: Option<Arc<super::resolve::Resolver>>,
    /// The development EHR, whose opaque tokens are introspected in-process.
    pub dev: Option<Arc<super::dev::DevEhr>>,
    /// The engine's base paths: browser caching of its answers, and the shape of the
    /// `503` and `403` made here (an OperationOutcome under the FHIR base).
    pub paths: super::web::EnginePaths,
    /// The runtime whose blocking pool runs the engine's slower answers: the main one,
    /// whose pool every connection thread shares (each connection thread's runtime has
    /// a small pool of its own).
    pub blocking: tokio::runtime::Handle,
}

/// Every request the server does not answer itself (FHIR, DICOMweb, WADO-URI and
/// anything unknown) goes to `Engine::handle`, on the blocking pool: the engine reads
/// files and SQLite synchronously.
pub async fn engine_route(
    State(state): State<Arc<EngineState>>,
    req: axum::extract::Request,
) -> Response {
    let (parts, _body) = req.into_parts();
    let get = parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD;
    let mut resp = answer(&state, &parts).await;
    super::web::apply_cache_policy(&state.paths, get, parts.uri.path(), &mut resp);
    resp
}

/// [`engine_route`] as a tower service, for requests [`super::layers::Front`] sends to
/// the engine without axum's router (which would only match them to its fallback).
#[derive(Clone)]
pub struct EngineService(pub Arc<EngineState>);

impl tower::Service<axum::extract::Request> for EngineService {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Pin<
        Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::extract::Request) -> Self::Future {
        let state = self.0.clone();
        let head = req.method() == axum::http::Method::HEAD;
        Box::pin(async move {
            let mut resp = engine_route(State(state), req).await;
            // The engine empties HEAD answers itself, but not the ones made here (an EHR
            // that is down, the blocking pool's failure); axum's router, which this
            // service bypasses, emptied every one (hyper does not over HTTP/2).
            if head {
                *resp.body_mut() = axum::body::Body::empty();
            }
            Ok(resp)
        })
    }
}

/// The answer to a request (see [`engine_route`]).
async fn answer(state: &EngineState, parts: &axum::http::request::Parts) -> Response {
    let mut request = sia::Request {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                // Field values are almost always ASCII: `from_utf8` checks them a word at
                // a time, where the lossy conversion walks a long bearer token byte by
                // byte (4% of a frame request's instructions).
                let value = match std::str::from_utf8(v.as_bytes()) {
                    Ok(s) => s.to_string(),
                    Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
                };
                (n.as_str().to_string(), value)
            })
            .collect(),
        ..Default::default()
    };
    if let Some(jwks) = &state.jwks {
        jwks.refresh_for(&request).await;
    }
    if let Some(dev) = &state.dev
        && dev.issues_opaque_tokens()
        && let Some(bearer) = super::ehr::bearer(&request)
        && let Some(answer) = dev.opaque_introspection(bearer)
    {
        request.introspection = Some(answer);
    } else if let Some(introspector) = &state.introspector {
        match introspector.for_request(&request).await {
            Outcome::NotNeeded => {}
            Outcome::Response(v) => request.introspection = Some(v),
            Outcome::Unavailable(why) => {
                return into_http(super::ehr::unavailable(&request, &state.paths, &why));
            }
        }
    }
    if let Some(resolver) = &state.resolver {
        use super::resolve::Resolution;
        match resolver.for_request(&request).await {
            Resolution::NotNeeded | Resolution::Linked => {}
            Resolution::Unmatched(text) => {
                return into_http(super::resolve::unmatched(&request, &state.paths, &text));
            }
            Resolution::Unavailable(why) => {
                return into_http(super::ehr::unavailable(&request, &state.paths, &why));
            }
        }
    }
    // On PostgreSQL (no index file) every answer waits on a network round trip, which
    // must not hold an async worker: the blocking pool takes it.
    if answers_quickly(&request) && state.engine.index_db().path().is_some() {
        // A frame or a bounded search costs microseconds to a millisecond: handing it to
        // the blocking pool would cost more in thread switches than the work itself. A
        // frame that must be decoded or rendered is refused here (the engine decodes
        // nothing then) and goes to the blocking pool below, so a burst of decodes cannot
        // hold the async workers that stored-syntax frames need.
        if let Some(resp) = state.engine.handle_without_decoding(&request) {
            return into_http(resp);
        }
    }
    let engine = state.engine.clone();
    match state
        .blocking
        .spawn_blocking(move || {
            let resp = engine.handle(&request);
            // What the client is not told (a file path, an index error) goes to the log.
            if let Some(detail) = resp.detail() {
                tracing::warn!(
                    "{} {}: {}: {detail}",
                    request.method,
                    request.path,
                    resp.status
                );
            }
            resp
        })
        .await
    {
        Ok(resp) => into_http(resp),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response(),
    }
}

/// Requests the engine answers from its caches and the index without reading whole
/// files: frames and bulk data (ranges of a mapping; those that need decoding or
/// rendering are refused by `Engine::handle_without_decoding`), metadata kept from an
/// earlier request (metadata to be checked or written, which may re-read thousands of
/// headers, is refused the same way), QIDO and FHIR searches (bounded by their page
/// sizes). Whole studies, series and instances, and WADO-URI go to the blocking pool.
fn answers_quickly(req: &sia::Request) -> bool {
    let path = req.path.as_str();
    if path.contains("/frames/") || path.contains("/bulkdata/") || path.ends_with("/metadata") {
        return true;
    }
    if path.contains("/fhir/") {
        return true;
    }
    // QIDO: `.../studies`, `.../series`, `.../instances` with nothing after them.
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    matches!(last, "studies" | "series" | "instances")
}

/// The engine's response as an HTTP response; mapped chunks become `Bytes` that keep
/// their mapping alive until hyper has written them.
pub fn into_http(resp: sia::Response) -> Response {
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let chunks = coalesce(resp.body.into_chunks());
    let mut out = Response::new(axum::body::Body::new(ChunkBody {
        remaining: chunks.iter().map(|b| b.len() as u64).sum(),
        chunks,
    }));
    *out.status_mut() = status;
    let headers = out.headers_mut();
    for (name, value) in resp.headers {
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) else {
            continue;
        };
        headers.append(n, v);
    }
    out
}

/// Chunks smaller than this are copied together before writing.
const SMALL_CHUNK: usize = 16 * 1024;
/// Largest buffer small chunks are gathered into.
const GATHER: usize = 256 * 1024;

/// The body as `Bytes` for hyper. Large chunks (frames, files) pass as they are; runs of
/// small ones (the thousand instance objects and commas of a series' metadata, multipart
/// part headers) are gathered into buffers of up to 256 KiB, so a response is a few
/// large writes rather than thousands of tiny ones.
fn coalesce(chunks: Vec<Chunk>) -> VecDeque<Bytes> {
    let mut out = VecDeque::new();
    // Bytes of small chunks not yet gathered: each buffer is allocated at its final
    // size once, instead of growing (and copying) by doubling.
    let mut small_left: usize = chunks
        .iter()
        .map(Chunk::len)
        .filter(|&n| n < SMALL_CHUNK)
        .sum();
    let mut gathered: Vec<u8> = Vec::new();
    for chunk in chunks {
        let len = chunk.as_bytes().len();
        if len < SMALL_CHUNK {
            if gathered.len() + len > GATHER {
                out.push_back(Bytes::from(std::mem::take(&mut gathered)));
            }
            if gathered.capacity() == 0 {
                gathered.reserve_exact(small_left.min(GATHER));
            }
            gathered.extend_from_slice(chunk.as_bytes());
            small_left -= len;
            continue;
        }
        if !gathered.is_empty() {
            out.push_back(Bytes::from(std::mem::take(&mut gathered)));
        }
        out.push_back(bytes_of(chunk));
    }
    if !gathered.is_empty() {
        out.push_back(Bytes::from(gathered));
    }
    out
}

/// A chunk as `Bytes` without copying: an owned buffer is moved, static bytes are
/// borrowed, and shared bytes or a mapped range are kept alive by the `Bytes` itself
/// (a `Chunk` owns what it points at).
fn bytes_of(chunk: Chunk) -> Bytes {
    if let Some(s) = chunk.as_static() {
        return Bytes::from_static(s);
    }
    match chunk.try_into_vec() {
        Ok(v) => Bytes::from(v),
        Err(shared) => Bytes::from_owner(shared),
    }
}

/// A body of ready chunks with an exact length, so hyper sends `Content-Length`.
struct ChunkBody {
    chunks: VecDeque<Bytes>,
    remaining: u64,
}

impl http_body::Body for ChunkBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.chunks.pop_front() {
            Some(b) => {
                self.remaining -= b.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
