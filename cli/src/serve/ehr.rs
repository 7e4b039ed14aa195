//! `sia serve` in front of a real EHR: token introspection (RFC 7662) at the issuers
//! configured with `introspection_url`, and the client authentication both it and
//! patient resolution use (`client_secret_basic`, or `private_key_jwt` per RFC 7523 and
//! SMART Backend Services). The server only asks and translates: the introspection
//! response goes into `Request::introspection`, where the engine checks it with the
//! same rules as a token it verifies itself.
//!
//! Results are cached per whole token until its `exp` (or `introspection_cache_seconds`),
//! in a bounded map; concurrent requests with the same new token share one call. An EHR
//! that cannot be asked (unreachable, slow, 5xx, not JSON) makes the request `503` with
//! `Retry-After`: never a guess, never fail open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use sia::Authorizer;
use sia::{ClientAuth, IssuerClient};
use tokio::sync::OnceCell;

/// Longest wait for an EHR's answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest introspection or token response read.
const MAX_RESPONSE: usize = 256 * 1024;
/// Most introspection results kept.
const MAX_CACHED: usize = 10_000;
/// How long an inactive answer is reused (a burst of requests with a revoked token
/// asks once, and a token refused now is asked about again soon).
const INACTIVE_SECONDS: i64 = 5;
/// `Retry-After` of a `503` when the EHR cannot be asked.
pub const RETRY_AFTER_SECONDS: u64 = 10;

/// What the server must do with a request's token.
pub enum Outcome {
    /// Nothing: the engine verifies it (or there is none).
    NotNeeded,
    /// The EHR's answer, for `Request::introspection`.
    Response(Value),
    /// The EHR could not be asked: `503`.
    Unavailable(String),
}

struct Cached {
    response: Value,
    until: i64,
}

type Flight = Arc<OnceCell<Result<Value, String>>>;

/// Introspects tokens at the configured issuers.
pub struct Introspector {
    http: reqwest::Client,
    auth: Arc<Authorizer>,
    issuers: Vec<IssuerClient>,
    cache: Mutex<HashMap<String, Cached>>,
    inflight: Mutex<HashMap<String, Flight>>,
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The HTTP client for EHR calls: bounded time, few redirects.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sia/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// The bearer token of a request with exactly one `Authorization: Bearer` header.
pub fn bearer(req: &sia::Request) -> Option<&str> {
    let mut values = req.header_values("authorization");
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value
        .trim()
        .split_once(' ')
        .filter(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty())
        .map(|(_, t)| t.trim())
}

/// The `iss` of a JWT-shaped token, unverified (routing only).
fn unverified_iss(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > 64 * 1024 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_string)
}

/// A client assertion (RFC 7523 §2.2; SMART Backend Services) for `aud`, valid five
/// minutes, with a random `jti`; the engine signs it.
pub fn client_assertion(client: &ClientAuth, aud: &str) -> Result<String, String> {
    let jti = super::dev::random_token::<16>()?;
    client
        .client_assertion(aud, &jti)
        .map_err(|e| e.to_string())
}

/// A form POST to an EHR endpoint with `client`'s authentication; the JSON answer of a
/// `200` (any other status is an error, with the status).
pub async fn post_form(
    http: &reqwest::Client,
    url: &str,
    client: &ClientAuth,
    assertion_aud: &str,
    mut form: Vec<(&str, String)>,
) -> Result<Value, String> {
    let mut req = http.post(url).header("Accept", "application/json");
    match client {
        ClientAuth::SecretBasic { client_id, secret } => {
            // RFC 6749 §2.3.1: both parts form-urlencoded before Basic.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            req = req.basic_auth(enc(client_id), Some(enc(secret)));
        }
        ClientAuth::PrivateKeyJwt { .. } => {
            form.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ));
            form.push(("client_assertion", client_assertion(client, assertion_aud)?));
        }
        #[allow(unreachable_patterns)]
        _ => return Err("unsupported client authentication".into()),
    }
    let answer = super::outbound::fetch(req.form(&form), url, MAX_RESPONSE).await?;
    if !answer.status.is_success() {
        let text = String::from_utf8_lossy(&answer.body);
        let text: String = text.chars().take(200).collect();
        return Err(format!("{url}: HTTP {}: {text}", answer.status));
    }
    serde_json::from_slice(&answer.body).map_err(|e| format!("{url}: not JSON: {e}"))
}

impl Introspector {
    /// An introspector for the issuers of `clients` that have an `introspection_url`;
    /// `None` when there are none.
    pub fn new(
        auth: Arc<Authorizer>,
        clients: &[IssuerClient],
    ) -> Result<Option<Introspector>, String> {
        let issuers: Vec<IssuerClient> = clients
            .iter()
            .filter(|c| c.introspection_url.is_some() && c.client.is_some())
            .cloned()
            .collect();
        if issuers.is_empty() {
            return Ok(None);
        }
        Ok(Some(Introspector {
            http: http_client()?,
            auth,
            issuers,
            cache: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
        }))
    }

    /// Whether `req`'s token must be introspected, and the answer when it must.
    pub async fn for_request(&self, req: &sia::Request) -> Outcome {
        let Some(token) = bearer(req) else {
            return Outcome::NotNeeded;
        };
        // A JWT of a configured issuer goes to that issuer only, and only when it is to
        // be introspected; anything else (opaque, or of an issuer not configured) to the
        // introspecting issuers in configuration order.
        let targets: Vec<usize> = match unverified_iss(token) {
            Some(iss) if self.auth.issuer_names().contains(&iss) => {
                match self.issuers.iter().position(|c| c.iss == iss) {
                    None => return Outcome::NotNeeded,
                    Some(i) => {
                        if !self.issuers[i].introspect_all && self.auth.verify(token).is_ok() {
                            return Outcome::NotNeeded;
                        }
                        vec![i]
                    }
                }
            }
            _ => (0..self.issuers.len()).collect(),
        };
        match self.introspect(token, &targets).await {
            Ok(v) => Outcome::Response(v),
            Err(e) => Outcome::Unavailable(e),
        }
    }

    fn cached(&self, token: &str) -> Option<Value> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(token)
            .filter(|c| c.until > now())
            .map(|c| c.response.clone())
    }

    fn store(&self, token: &str, response: &Value, cap: Option<u32>) {
        let t = now();
        let until = if response.get("active") == Some(&Value::Bool(true)) {
            let Some(exp) = response.get("exp").and_then(Value::as_i64) else {
                return; // the engine refuses it; nothing worth keeping
            };
            match cap {
                Some(c) => exp.min(t + i64::from(c)),
                None => exp,
            }
        } else {
            t + INACTIVE_SECONDS
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, c| c.until > t);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(
            token.to_string(),
            Cached {
                response: response.clone(),
                until,
            },
        );
    }

    /// The (cached) introspection of `token` at the issuers `targets`; concurrent
    /// callers with the same token share one flight.
    async fn introspect(&self, token: &str, targets: &[usize]) -> Result<Value, String> {
        if let Some(v) = self.cached(token) {
            return Ok(v);
        }
        let flight = {
            let mut m = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(token.to_string()).or_default().clone()
        };
        let _landed = Landed {
            map: &self.inflight,
            token,
            flight: &flight,
        };
        flight
            .get_or_init(|| async {
                if let Some(v) = self.cached(token) {
                    return Ok(v);
                }
                self.ask_all(token, targets).await
            })
            .await
            .clone()
    }

    /// Asks the issuers in turn: the first active answer, else the last inactive one;
    /// an error when no issuer answered active and one could not be asked.
    async fn ask_all(&self, token: &str, targets: &[usize]) -> Result<Value, String> {
        let mut failure = None;
        let mut inactive = None;
        for &i in targets {
            let c = &self.issuers[i];
            match self.ask(c, token).await {
                Ok(v) if v.get("active") == Some(&Value::Bool(true)) => {
                    self.store(token, &v, c.introspection_cache_seconds);
                    return Ok(v);
                }
                Ok(v) => inactive = Some(v),
                Err(e) => {
                    tracing::warn!("introspection at {}: {e}", c.iss);
                    failure = Some(e);
                }
            }
        }
        match (failure, inactive) {
            (Some(e), _) => Err(e),
            (None, Some(v)) => {
                self.store(token, &v, None);
                Ok(v)
            }
            (None, None) => Ok(json!({ "active": false })),
        }
    }

    /// One introspection at issuer `c`: its answer, with `iss` filled in when the EHR
    /// leaves it out, and inactive when it names another issuer (an EHR vouches for its
    /// own tokens only).
    async fn ask(&self, c: &IssuerClient, token: &str) -> Result<Value, String> {
        let (Some(url), Some(client)) = (&c.introspection_url, &c.client) else {
            return Err("no introspection_url".into());
        };
        let aud = c.token_endpoint.as_deref().unwrap_or(url);
        let form = vec![
            ("token", token.to_string()),
            ("token_type_hint", "access_token".to_string()),
        ];
        let mut v = post_form(&self.http, url, client, aud, form).await?;
        let Some(o) = v.as_object_mut() else {
            return Err(format!("{url}: the answer is not a JSON object"));
        };
        if o.get("active") != Some(&Value::Bool(true)) {
            return Ok(json!({ "active": false }));
        }
        match o.get("iss") {
            None => {
                o.insert("iss".into(), Value::String(c.iss.clone()));
            }
            Some(Value::String(iss)) if iss == &c.iss => {}
            Some(other) => {
                tracing::warn!(
                    "introspection at {}: an active token of issuer {} is not this issuer's; refused",
                    c.iss,
                    sia::internal::auth::token::clip(&other.to_string())
                );
                return Ok(json!({ "active": false }));
            }
        }
        Ok(v)
    }
}

/// Removes a finished (or abandoned) flight from the in-flight map.
struct Landed<'a> {
    map: &'a Mutex<HashMap<String, Flight>>,
    token: &'a str,
    flight: &'a Flight,
}

impl Drop for Landed<'_> {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if m.get(self.token)
            .is_some_and(|f| Arc::ptr_eq(f, self.flight))
        {
            m.remove(self.token);
        }
    }
}

/// The `503` for a request whose token could not be introspected: no data, a
/// `Retry-After`, an OperationOutcome on FHIR routes.
pub fn unavailable(
    req: &sia::Request,
    paths: &super::web::EnginePaths,
    why: &str,
) -> sia::Response {
    let text = "the EHR that issued the token cannot be reached to check the token or its patient now; try again later";
    tracing::warn!(
        "503 for {}: {why}",
        req.path.chars().take(200).collect::<String>()
    );
    let mut r = if paths.under_fhir(&req.path) {
        sia::Response::with_body(
            503,
            "application/fhir+json",
            sia::Body::from_vec(
                sia::internal::fhir::operation_outcome("transient", text)
                    .to_string()
                    .into_bytes(),
            ),
        )
    } else {
        sia::Response::error(503, text)
    };
    r.headers
        .push(("Retry-After".into(), RETRY_AFTER_SECONDS.to_string()));
    r.headers.push(("Cache-Control".into(), "no-store".into()));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_issuers_are_read_for_routing_only() {
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let t = format!(
            "{}.{}.sig",
            b64(&json!({"alg": "none"})),
            b64(&json!({"iss": "https://ehr"}))
        );
        assert_eq!(unverified_iss(&t).as_deref(), Some("https://ehr"));
        assert_eq!(unverified_iss("opaque-token"), None);
        assert_eq!(unverified_iss("a.b.c.d"), None);
    }

    #[test]
    fn bearer_tokens_need_one_bearer_header() {
        let r = sia::Request::get("/x").with_header("Authorization", "Bearer abc");
        assert_eq!(bearer(&r), Some("abc"));
        let r = r.with_header("Authorization", "Bearer def");
        assert_eq!(bearer(&r), None);
        let r = sia::Request::get("/x").with_header("Authorization", "Basic abc");
        assert_eq!(bearer(&r), None);
    }
}
