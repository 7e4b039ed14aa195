//! Keys of `jwks_url` / `jwks_discovery` issuers: fetched at start, again when their
//! `Cache-Control: max-age` runs out, and at once (coalesced, with the engine's cooldown)
//! when a token names a `kid` the engine does not have. A fetch that fails keeps the
//! last good set: an issuer that is down does not lock out tokens it already signed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sia::Authorizer;
use sia::JwksSource;
use tokio::sync::Mutex;

/// Used when the issuer sends no `max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// Bounds on how often a JWKS is fetched on schedule, whatever `max-age` says.
const MIN_MAX_AGE: Duration = Duration::from_secs(1);
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Retry delay after a failed scheduled fetch.
const RETRY: Duration = Duration::from_secs(15);
/// Largest JWKS or SMART configuration document read.
const MAX_DOCUMENT: usize = 1024 * 1024;

/// One issuer's remote keys.
struct Remote {
    source: JwksSource,
    /// The JWKS URL once known (discovery fills it in); held during a fetch so that
    /// concurrent requests with the same unknown `kid` cause one fetch.
    url: Mutex<Option<String>>,
}

/// Fetches and installs issuers' JWKS into the engine's [`Authorizer`].
pub struct JwksFetcher {
    auth: Arc<Authorizer>,
    client: reqwest::Client,
    remotes: HashMap<String, Remote>,
}

impl JwksFetcher {
    /// A fetcher for `sources`, installing keys into `auth`.
    pub fn new(auth: Arc<Authorizer>, sources: &[JwksSource]) -> Result<JwksFetcher, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("sia/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let remotes = sources
            .iter()
            .map(|s| {
                let url = match s {
                    JwksSource::Url { url, .. } => Some(url.clone()),
                    _ => None,
                };
                (
                    s.iss().to_string(),
                    Remote {
                        source: s.clone(),
                        url: Mutex::new(url),
                    },
                )
            })
            .collect();
        Ok(JwksFetcher {
            auth,
            client,
            remotes,
        })
    }

    /// Starts one task per issuer that keeps its keys fresh.
    pub fn spawn_schedules(self: &Arc<Self>) {
        for iss in self.remotes.keys() {
            let me = self.clone();
            let iss = iss.clone();
            tokio::spawn(async move {
                loop {
                    let wait = match me.fetch(&iss).await {
                        Ok(max_age) => max_age,
                        Err(e) => {
                            tracing::warn!("JWKS of {iss}: {e}; keeping the last good keys");
                            RETRY
                        }
                    };
                    tokio::time::sleep(wait).await;
                }
            });
        }
    }

    /// When `req`'s bearer token names a `kid` its issuer's keys lack, fetches that
    /// issuer's JWKS (at most once per cooldown per issuer, as the engine allows).
    pub async fn refresh_for(&self, req: &sia::Request) {
        let Some(bearer) = req
            .header_values("authorization")
            .next()
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
        else {
            return;
        };
        let Some((iss, kid)) = self.auth.unknown_kid(bearer) else {
            return;
        };
        let Some(remote) = self.remotes.get(&iss) else {
            return;
        };
        // A fetch may be running (the start-up one, or one for another request with the
        // same new key): wait for it rather than refuse a token it will accept, and spend
        // no refresh (and its cooldown) when it brought the key.
        drop(remote.url.lock().await);
        if self.auth.unknown_kid(bearer).is_none() || !self.auth.wants_jwks_refresh(&iss, &kid) {
            return;
        }
        if let Err(e) = self.fetch(&iss).await {
            tracing::warn!(
                "JWKS of {iss} (token with unknown kid): {e}; keeping the last good keys"
            );
        }
    }

    /// Fetches and installs `iss`'s JWKS; the time until it should be fetched again.
    async fn fetch(&self, iss: &str) -> Result<Duration, String> {
        let remote = self.remotes.get(iss).ok_or("not a remote-key issuer")?;
        let mut url = remote.url.lock().await;
        if url.is_none() {
            *url = Some(self.discover(&remote.source).await?);
        }
        let jwks_url = url.clone().unwrap_or_default();
        let (text, max_age) = self.get(&jwks_url).await?;
        let before = self.auth.key_ids(iss);
        self.auth
            .set_jwks(iss, &text)
            .map_err(|e| format!("{jwks_url}: {e}"))?;
        let after = self.auth.key_ids(iss);
        if before != after {
            tracing::info!(
                "JWKS of {iss}: keys {:?} (were {:?}) from {jwks_url}",
                after,
                before
            );
        }
        Ok(max_age)
    }

    /// `jwks_uri` from `{iss}/.well-known/smart-configuration`.
    async fn discover(&self, source: &JwksSource) -> Result<String, String> {
        let conf = format!(
            "{}/.well-known/smart-configuration",
            source.iss().trim_end_matches('/')
        );
        let (text, _) = self.get(&conf).await?;
        let doc: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{conf}: not JSON: {e}"))?;
        doc.get("jwks_uri")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("{conf}: no jwks_uri"))
    }

    /// GETs `url`: the body (bounded) and how long it may be cached.
    async fn get(&self, url: &str) -> Result<(String, Duration), String> {
        let req = self.client.get(url).header("Accept", "application/json");
        let answer = super::outbound::fetch(req, url, MAX_DOCUMENT).await?;
        if !answer.status.is_success() {
            return Err(format!("{url}: HTTP {}", answer.status));
        }
        let max_age = answer
            .headers
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .unwrap_or(DEFAULT_MAX_AGE)
            .clamp(MIN_MAX_AGE, MAX_MAX_AGE);
        let body = answer.body;
        let text = String::from_utf8(body).map_err(|_| format!("{url}: not UTF-8"))?;
        Ok((text, max_age))
    }
}

/// The `max-age` of a `Cache-Control` value (RFC 9111 §5.2.2.1); `no-store` / `no-cache`
/// count as the shortest allowed.
fn max_age(cache_control: &str) -> Option<Duration> {
    for directive in cache_control.split(',') {
        let d = directive.trim().to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(v) = d.strip_prefix("max-age=") {
            return v
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::max_age;
    use std::time::Duration;

    #[test]
    fn cache_control_max_age_is_read() {
        assert_eq!(max_age("public, max-age=60"), Some(Duration::from_secs(60)));
        assert_eq!(max_age("max-age=\"5\""), Some(Duration::from_secs(5)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=-1"), None);
    }
}
