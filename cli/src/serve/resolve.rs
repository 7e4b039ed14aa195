//! Patient resolution (SMART Imaging IG): a token names a FHIR Patient the index has no
//! link for, and its issuer is configured with `resolve_patients = true`. The server
//! gets a backend-services token of its own (client credentials, `private_key_jwt`, at
//! the issuer's token endpoint, configured or discovered), reads `Patient/{id}` at the
//! issuer's FHIR base, and has the engine link the identifiers whose system maps to a
//! DICOM issuer (`[patients] identifier_systems`) and that name an indexed patient —
//! never a value alone. Each new link is logged; a patient that matches nothing is
//! refused with `403` (for a minute, without asking again); an EHR that cannot be asked
//! makes the request `503`. The decision itself stays the engine's, over the links.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sia::{Authorizer, PatientPolicy};
use sia::{ClientAuth, Engine, IssuerClient};

use super::ehr::{http_client, now, post_form};

/// The scope the server asks for to read Patients.
pub const RESOLVE_SCOPE: &str = "system/Patient.rs";
/// How long a patient that matched nothing is refused without asking the EHR again.
const UNMATCHED_SECONDS: i64 = 60;
/// Most remembered unmatched patients.
const MAX_UNMATCHED: usize = 10_000;
/// Largest Patient resource or SMART configuration read from an EHR.
const MAX_ANSWER: usize = 1024 * 1024;

/// What the server must do with a request's patient.
pub enum Resolution {
    /// Nothing (linked already, not a resolving issuer, or no patient in the token).
    NotNeeded,
    /// Resolved now: links were added.
    Linked,
    /// The Patient's identifiers match no indexed patient: `403`.
    Unmatched(String),
    /// The EHR could not be asked: `503`.
    Unavailable(String),
}

/// Resolves tokens' FHIR Patients at their issuers.
pub struct Resolver {
    http: reqwest::Client,
    engine: Arc<Engine>,
    auth: Arc<Authorizer>,
    clients: HashMap<String, IssuerClient>,
    systems: HashMap<String, String>,
    /// Per issuer: the backend token and its expiry; the token endpoint once discovered.
    tokens: tokio::sync::Mutex<HashMap<String, (String, i64)>>,
    endpoints: Mutex<HashMap<String, String>>,
    /// (issuer, patient) -> until when it is refused without asking.
    unmatched: Mutex<HashMap<(String, String), i64>>,
    /// (issuer, patient) seen with links: not looked up again.
    known: Mutex<std::collections::HashSet<(String, String)>>,
    /// One resolution at a time: concurrent requests for a new patient fetch it once.
    busy: tokio::sync::Mutex<()>,
}

/// A FHIR id (R4 `id`: 1–64 of `[A-Za-z0-9-.]`), so it can be put in a URL path.
fn fhir_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().any(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

impl Resolver {
    /// A resolver for the issuers of `clients` with `resolve_patients`; `None` when
    /// there are none or patients map by identity.
    pub fn new(
        engine: Arc<Engine>,
        auth: Arc<Authorizer>,
        clients: &[IssuerClient],
        systems: HashMap<String, String>,
    ) -> Result<Option<Resolver>, String> {
        let clients: HashMap<String, IssuerClient> = clients
            .iter()
            .filter(|c| c.resolve_patients && c.client.is_some())
            .map(|c| (c.iss.clone(), c.clone()))
            .collect();
        if clients.is_empty() || auth.patients == PatientPolicy::Identity {
            return Ok(None);
        }
        Ok(Some(Resolver {
            http: http_client()?,
            engine,
            auth,
            clients,
            systems,
            tokens: tokio::sync::Mutex::new(HashMap::new()),
            endpoints: Mutex::new(HashMap::new()),
            unmatched: Mutex::new(HashMap::new()),
            known: Mutex::new(std::collections::HashSet::new()),
            busy: tokio::sync::Mutex::new(()),
        }))
    }

    /// Resolves the patient of `req`'s token when it needs it.
    pub async fn for_request(&self, req: &sia::Request) -> Resolution {
        // Only for a token the engine grants ImagingStudy access to, up to the patient
        // compartment; a refused token is the engine's to answer.
        use sia::internal::auth::Interaction;
        let Some(token) = [Interaction::Read, Interaction::Search]
            .into_iter()
            .find_map(|i| self.auth.authorize(req, i).ok())
            .map(|g| g.token)
        else {
            return Resolution::NotNeeded;
        };
        let Some(patient) = token.patient.clone().filter(|p| !p.is_empty()) else {
            return Resolution::NotNeeded;
        };
        let Some(client) = self.clients.get(&token.iss) else {
            return Resolution::NotNeeded;
        };
        let iss = token.iss.clone();
        if self.linked(&iss, &patient).await.unwrap_or(true) {
            return Resolution::NotNeeded;
        }
        let key = (iss.clone(), patient.clone());
        if let Some(until) = self
            .unmatched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && *until > now()
        {
            return Resolution::Unmatched(unmatched_text(&iss, &patient));
        }
        let _busy = self.busy.lock().await;
        if self.linked(&iss, &patient).await.unwrap_or(true) {
            return Resolution::NotNeeded;
        }
        if !fhir_id(&patient) {
            return self.refuse(key, "the token's patient is not a FHIR id".into());
        }
        match self.resolve(client, &patient).await {
            Ok(Some(r)) if !r.linked.is_empty() => {
                for (pid, issuer) in &r.linked {
                    tracing::info!(
                        "patient resolution: linked Patient/{patient} of {iss} to DICOM patient {pid} (issuer {issuer:?}), by its identifier at the EHR"
                    );
                }
                Resolution::Linked
            }
            Ok(Some(r)) => {
                let why = if r.skipped.is_empty() {
                    "no identifier with a mapped system".to_string()
                } else {
                    r.skipped.join("; ")
                };
                self.refuse(key, why)
            }
            Ok(None) => self.refuse(key, "the EHR has no such Patient".into()),
            Err(e) => {
                tracing::warn!("patient resolution of Patient/{patient} at {iss}: {e}");
                Resolution::Unavailable(e)
            }
        }
    }

    fn refuse(&self, key: (String, String), why: String) -> Resolution {
        tracing::warn!(
            "patient resolution: Patient/{} of {} matches no indexed patient: {why}",
            key.1,
            key.0
        );
        let text = unmatched_text(&key.0, &key.1);
        let mut m = self.unmatched.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_UNMATCHED {
            let t = now();
            m.retain(|_, until| *until > t);
            if m.len() >= MAX_UNMATCHED {
                m.clear();
            }
        }
        m.insert(key, now() + UNMATCHED_SECONDS);
        Resolution::Unmatched(text)
    }

    async fn linked(&self, iss: &str, patient: &str) -> Result<bool, String> {
        let key = (iss.to_string(), patient.to_string());
        if self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return Ok(true);
        }
        let (engine, auth) = (self.engine.clone(), self.auth.clone());
        let (i, p) = key.clone();
        let linked = tokio::task::spawn_blocking(move || {
            engine
                .index_db()
                .has_links(&i, auth.unassigned_links_serve(&i), &p)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        if linked {
            let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            if known.len() >= MAX_UNMATCHED {
                known.clear();
            }
            known.insert(key);
        }
        Ok(linked)
    }

    /// Reads `Patient/{patient}` at the issuer and links it; `None` when the EHR has
    /// no such Patient (404 / 410).
    async fn resolve(
        &self,
        c: &IssuerClient,
        patient: &str,
    ) -> Result<Option<sia::internal::index::PatientResolution>, String> {
        let token = self.backend_token(c).await?;
        let url = format!("{}/Patient/{patient}", c.fhir_base);
        let req = self
            .http
            .get(&url)
            .bearer_auth(&token)
            .header("Accept", "application/fhir+json");
        let answer = super::outbound::fetch(req, &url, MAX_ANSWER).await?;
        let status = answer.status;
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Ok(None);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            // The backend token may have been revoked: ask for a new one next time.
            self.tokens.lock().await.remove(&c.iss);
        }
        if !status.is_success() {
            return Err(format!("{url}: HTTP {status}"));
        }
        let body = answer.body;
        let resource: Value =
            serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))?;
        if resource["resourceType"] != "Patient" || resource["id"] != patient {
            return Err(format!("{url}: the answer is not Patient/{patient}"));
        }
        let (engine, systems, iss) = (self.engine.clone(), self.systems.clone(), c.iss.clone());
        tokio::task::spawn_blocking(move || {
            engine
                .index_db()
                .resolve_patient_for(&iss, &resource, &systems)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
        .map(Some)
    }

    /// The server's own backend-services token at issuer `c` (cached until shortly
    /// before it expires).
    async fn backend_token(&self, c: &IssuerClient) -> Result<String, String> {
        let mut tokens = self.tokens.lock().await;
        if let Some((t, exp)) = tokens.get(&c.iss)
            && *exp > now() + 30
        {
            return Ok(t.clone());
        }
        let client: &ClientAuth = c.client.as_ref().ok_or("no client")?;
        let endpoint = self.token_endpoint(c).await?;
        let v = post_form(
            &self.http,
            &endpoint,
            client,
            &endpoint,
            vec![
                ("grant_type", "client_credentials".into()),
                ("scope", RESOLVE_SCOPE.into()),
            ],
        )
        .await?;
        let token = v["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("{endpoint}: no access_token"))?
            .to_string();
        let expires_in = v["expires_in"].as_i64().unwrap_or(300).clamp(0, 3600);
        tokens.insert(c.iss.clone(), (token.clone(), now() + expires_in));
        Ok(token)
    }

    /// `token_endpoint`, configured or from `{iss}/.well-known/smart-configuration`.
    async fn token_endpoint(&self, c: &IssuerClient) -> Result<String, String> {
        if let Some(t) = &c.token_endpoint {
            return Ok(t.clone());
        }
        if let Some(t) = self
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&c.iss)
        {
            return Ok(t.clone());
        }
        let url = format!(
            "{}/.well-known/smart-configuration",
            c.iss.trim_end_matches('/')
        );
        let req = self.http.get(&url).header("Accept", "application/json");
        let answer = super::outbound::fetch(req, &url, MAX_ANSWER).await?;
        if !answer.status.is_success() {
            return Err(format!("{url}: HTTP {}", answer.status));
        }
        let doc: Value =
            serde_json::from_slice(&answer.body).map_err(|e| format!("{url}: not JSON: {e}"))?;
        let t = doc["token_endpoint"]
            .as_str()
            .ok_or_else(|| format!("{url}: no token_endpoint"))?
            .to_string();
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(c.iss.clone(), t.clone());
        Ok(t)
    }
}

fn unmatched_text(iss: &str, patient: &str) -> String {
    format!(
        "Patient/{} of {} matches no patient of this imaging server: none of its identifiers (system and value) names an indexed DICOM patient",
        sia::internal::auth::token::clip(patient),
        sia::internal::auth::token::clip(iss)
    )
}

/// The `403` for a patient that matches nothing: an OperationOutcome on FHIR routes.
pub fn unmatched(req: &sia::Request, paths: &super::web::EnginePaths, text: &str) -> sia::Response {
    if paths.under_fhir(&req.path) {
        sia::Response::with_body(
            403,
            "application/fhir+json",
            sia::Body::from_vec(
                sia::internal::fhir::operation_outcome("forbidden", text)
                    .to_string()
                    .into_bytes(),
            ),
        )
    } else {
        sia::Response::error(403, text)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_fhir_ids_reach_a_url() {
        assert!(super::fhir_id("DEMO-001"));
        assert!(super::fhir_id("a.b-9"));
        assert!(!super::fhir_id("../x"));
        assert!(!super::fhir_id("a/b"));
        assert!(!super::fhir_id(""));
        assert!(!super::fhir_id(".."));
        assert!(!super::fhir_id(&"x".repeat(65)));
    }
}
