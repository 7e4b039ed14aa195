//! Requests the server itself makes: to EHRs (introspection, tokens, Patient reads) and
//! to issuers (JWKS, SMART configuration). Each goes out on the server's main runtime
//! and reads at most a given number of bytes of its answer.
//!
//! Why the main runtime: connections are served on per-thread runtimes
//! ([`super::workers`]), and reqwest keeps a pooled connection's I/O on the runtime that
//! opened it. A request from one connection thread would otherwise wait on another
//! thread's turn (or on a runtime that has stopped, at shutdown) to reach its EHR.

use std::sync::OnceLock;

/// The runtime outgoing requests run on; set once by [`set_main_runtime`].
static MAIN: OnceLock<tokio::runtime::Handle> = OnceLock::new();

/// Makes the current runtime the one outgoing requests run on. Called once, from the
/// main runtime, before connections are served; later calls change nothing.
pub fn set_main_runtime() {
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        let _ = MAIN.set(h);
    }
}

/// An answer: status, header fields and body.
pub struct Fetched {
    /// The HTTP status.
    pub status: reqwest::StatusCode,
    /// The answer's header fields.
    pub headers: reqwest::header::HeaderMap,
    /// The body, at most the `max` bytes asked for.
    pub body: Vec<u8>,
}

/// Sends `req` to `url` (the address it was built for, named in errors) and reads its
/// answer's body, at most `max` bytes, on the main runtime (on the current one when
/// none is set, as in unit tests). Errors, as `"{url}: reason"`: no answer (timeout,
/// refused, reset), a body longer than `max`, or the server shutting down.
pub async fn fetch(req: reqwest::RequestBuilder, url: &str, max: usize) -> Result<Fetched, String> {
    fetch_on(MAIN.get(), req, url, max).await
}

/// [`fetch`] on runtime `main` (the current one when `None`).
async fn fetch_on(
    main: Option<&tokio::runtime::Handle>,
    req: reqwest::RequestBuilder,
    url: &str,
    max: usize,
) -> Result<Fetched, String> {
    let exchange = exchange(req, max);
    let result = match main {
        Some(main) => match main.spawn(exchange).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err("the server is shutting down".into()),
        },
        None => exchange.await,
    };
    result.map_err(|why| format!("{url}: {why}"))
}

/// Sends `req` and reads the answer (owned arguments: the future is `'static` and can
/// be spawned on another runtime).
async fn exchange(req: reqwest::RequestBuilder, max: usize) -> Result<Fetched, String> {
    let mut resp = req.send().await.map_err(|e| without_url(&e))?;
    let status = resp.status();
    let headers = std::mem::take(resp.headers_mut());
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| without_url(&e))? {
        if body.len() + chunk.len() > max {
            return Err(format!("answer larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        status,
        headers,
        body,
    })
}

/// A reqwest error without the URL (which the caller names once); a timeout as such.
fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        // Every client the server asks with has a 5 s timeout (ehr.rs, jwks.rs).
        return "no answer within 5 s".into();
    }
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(&format!(" ({u})"), "").replace(u.as_str(), "");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A one-shot HTTP server on loopback answering `answer`; its URL.
    fn serve_once(answer: Vec<u8>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(&answer);
            }
        });
        url
    }

    fn answer(body: &[u8]) -> Vec<u8> {
        let mut a = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nCache-Control: max-age=7\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        a.extend_from_slice(body);
        a
    }

    #[tokio::test]
    async fn an_answer_within_the_bound_is_read_whole() {
        let url = serve_once(answer(b"{\"ok\":true}"));
        let got = fetch(reqwest::Client::new().get(&url), &url, 11)
            .await
            .unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.headers["cache-control"], "max-age=7");
        assert_eq!(got.body, b"{\"ok\":true}");
    }

    #[tokio::test]
    async fn an_answer_past_the_bound_is_refused() {
        let url = serve_once(answer(&[b'x'; 4096]));
        let err = fetch(reqwest::Client::new().get(&url), &url, 4095)
            .await
            .err()
            .unwrap();
        assert_eq!(err, format!("{url}: answer larger than 4095 bytes"));
    }

    #[test]
    fn requests_go_out_on_the_runtime_given_from_another_one() {
        let main = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let handle = main.handle().clone();
        // A connection thread's runtime asks through the main one.
        let conn = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ask = || {
            let url = serve_once(answer(b"ok"));
            let got = conn.block_on(fetch_on(
                Some(&handle),
                reqwest::Client::new().get(&url),
                &url,
                16,
            ));
            (url, got)
        };
        assert_eq!(ask().1.unwrap().body, b"ok");
        // Once the main runtime is gone nothing goes out, though the asking runtime runs:
        // the request was the main runtime's to make.
        drop(main);
        let (url, got) = ask();
        assert_eq!(
            got.err().unwrap(),
            format!("{url}: the server is shutting down")
        );
    }
}
