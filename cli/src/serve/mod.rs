//! `sia serve`: the engine on the network. A thin layer of routes and state over
//! `Engine::handle` (axum on hyper 1 and tokio): every FHIR, DICOMweb and WADO-URI
//! request is translated and handed to the engine; the server adds only what belongs
//! to a network host — TLS, CORS, gzip, limits, logs, JWKS fetching, file watching —
//! and, with `--dev`, a development SMART EHR under `/dev`.

mod dev;
mod ehr;
mod jwks;
mod layers;
mod listener;
mod logging;
mod outbound;
mod resolve;
mod transport;
mod watch;
mod web;
mod workers;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use sia::internal::index::StudyFilter;
use sia::{Authorizer, PatientPolicy};
use sia::{Config, Engine};

use dev::DevEhr;
use jwks::JwksFetcher;
use transport::{EngineState, engine_route};

/// What `sia serve` was asked to do (see the command's help).
pub struct ServeArgs {
    /// Files and folders indexed at start (and watched with `watch`).
    pub paths: Vec<PathBuf>,
    /// The index database, overriding the configuration's.
    pub db: Option<PathBuf>,
    /// The configuration file.
    pub config: Option<PathBuf>,
    /// The socket address, overriding the configuration's.
    pub listen: Option<String>,
    /// The public base URL, overriding the configuration's.
    pub base_url: Option<String>,
    /// Serve the development EHR under `/dev`.
    pub dev: bool,
    /// Allow `--dev` on an address that is not loopback.
    pub dev_on_network: bool,
    /// The development EHR issues opaque tokens (introspection only).
    pub dev_opaque_tokens: bool,
    /// Backend-services clients of the development EHR, `ID=JWKS_FILE`.
    pub dev_clients: Vec<String>,
    /// Re-index `paths` when files change.
    pub watch: bool,
    /// CORS origins, overriding the configuration's.
    pub cors: Vec<String>,
    /// The imaging app, fhirclient and OHIF folders, overriding the configuration's.
    pub web: web::WebDirs,
}

pub use web::WebDirs;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> Result<(), BoxError> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Lines are batched to stderr by a thread of their own (logging.rs): no `write`
    // per request. The guard writes what is left when `run` returns.
    let (writer, _log_guard, log_error) = logging::BatchedWriter::start(std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .event_format(logging::RequestLineFormat::new(logging::UtcTimestamp))
        .try_init();
    if let Some(e) = log_error {
        tracing::warn!("cannot start the log thread, lines are written in large batches: {e}");
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Every connection and every file being read holds a descriptor; the usual soft
    // limit of 1,024 is far below `max_connections`. Raise it to the hard limit.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!("open file limit: {n}"),
        Err(e) => tracing::warn!("cannot raise the open file limit: {e}"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> Result<(), BoxError> {
    // Requests to EHRs and issuers go out from this runtime, whichever thread asks.
    outbound::set_main_runtime();
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(db) = &args.db {
        // --db (a file, or a postgres:// URL) wins over the configuration's index.
        config.db = db.clone();
        config.index_url = None;
    }
    let listen = args
        .listen
        .clone()
        .or_else(|| config.server.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let addr: SocketAddr = tokio::net::lookup_host(&listen)
        .await
        .map_err(|e| format!("listen address {listen:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("listen address {listen:?} resolves to nothing"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let loopback = local.ip().is_loopback();
    let tls = match &config.server.tls {
        Some(t) => Some(listener::tls_acceptor(&t.cert_file, &t.key_file)?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base_url = match (&args.base_url, &args.config) {
        (Some(b), _) => b.trim_end_matches('/').to_string(),
        (None, Some(_)) => config.base_url.trim_end_matches('/').to_string(),
        (None, None) => format!("{scheme}://{local}"),
    };
    config.base_url = base_url.clone();

    if args.dev && !loopback && !args.dev_on_network {
        return Err(format!(
            "--dev serves a development EHR that hands a token to anyone who asks; \
             {local} is not a loopback address, so it is refused (add --dev-on-network to force it)"
        )
        .into());
    }
    if args.dev && !loopback {
        tracing::warn!(
            "!!! --dev on {local}: ANYONE WHO CAN REACH THIS ADDRESS CAN GET A TOKEN FOR ANY PATIENT !!!"
        );
    }
    if config.auth.is_none() && !args.dev {
        if !loopback {
            return Err(format!(
                "without --config (trusted issuers) or --dev every study would be served to anyone; \
                 refused on {local}, which is not a loopback address"
            )
            .into());
        }
        tracing::warn!("no --config and no --dev: every request is served without a token");
    }
    if !loopback && tls.is_none() {
        tracing::warn!(
            "serving plain HTTP on {local}: SMART requires TLS outside loopback ([server.tls] cert_file, key_file)"
        );
    }

    let db = config.db.clone();
    // The viewer reaches a study through its Endpoint's capability address (README: the
    // imaging app and the viewer): --dev serving the viewer turns capability URLs on (a
    // key of this process) unless a configuration file decides.
    let web_dirs = WebDirs::resolve(args.web.clone(), &config.server, args.dev)?;
    if args.dev && web_dirs.viewer.is_some() && args.config.is_none() {
        config.capabilities = Some(sia::CapabilityKey::random()?);
    }
    if args.dev {
        let imaging_fhir = sia::internal::fhir::FhirContext::for_base_url(&base_url).fhir_base;
        let policy = DevEhr::issuer_policy(&db, &base_url, &imaging_fhir)?;
        match &config.auth {
            Some(auth) => auth.add_issuer(policy)?,
            None => {
                config.auth = Some(Arc::new(Authorizer::new(
                    vec![policy],
                    PatientPolicy::Identity,
                )));
            }
        }
    }
    let mut cors = if args.cors.is_empty() {
        config.server.cors_origins.clone()
    } else {
        args.cors.clone()
    };
    if cors.is_empty() && args.dev {
        cors = vec!["*".into()];
    }
    let max_connections = config.server.max_connections;
    let write_timeout = config.server.write_timeout_seconds;
    let auth = config.auth.clone();
    let jwks_sources = config.jwks_sources.clone();
    let issuer_clients = config.issuer_clients.clone();
    let identifier_systems = config.identifier_systems.clone();
    let engine = Arc::new(tokio::task::spawn_blocking(move || Engine::open(config)).await??);

    if !args.paths.is_empty() {
        let (e, paths) = (engine.clone(), args.paths.clone());
        let report =
            tokio::task::spawn_blocking(move || crate::index_with_progress(&e, &paths)).await??;
        tracing::info!(
            "indexed {}, unchanged {}, removed {}, duplicates {}, skipped {}, conflicts {} in {:.3} s",
            report.indexed,
            report.unchanged,
            report.removed,
            report.duplicates.len(),
            report.skipped.len(),
            report.conflicts.len(),
            report.seconds
        );
        for c in &report.conflicts {
            tracing::warn!("conflict: {c}; not indexed");
        }
    }
    let jwks = match (&auth, jwks_sources.is_empty()) {
        (Some(auth), false) => {
            let f = Arc::new(JwksFetcher::new(auth.clone(), &jwks_sources)?);
            f.spawn_schedules();
            Some(f)
        }
        _ => None,
    };
    if args.watch {
        if args.paths.is_empty() {
            return Err("--watch needs the paths to watch".into());
        }
        watch::spawn(engine.clone(), args.paths.clone(), db.clone())?;
    }
    let dev = match (&auth, args.dev) {
        (Some(auth), true) => Some(Arc::new(
            DevEhr::new(&db, &base_url, engine.clone(), auth.clone())?
                .with_opaque_tokens(args.dev_opaque_tokens)
                .with_clients(&args.dev_clients)?,
        )),
        _ => None,
    };

    let base_path = url::Url::parse(&base_url)
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default();
    let fhir_ctx = engine.fhir_context().clone();
    let web = {
        let (dirs, bp, dw) = (web_dirs, base_path.clone(), fhir_ctx.dicomweb_base.clone());
        Arc::new(tokio::task::spawn_blocking(move || web::Web::new(&dirs, &bp, &dw)).await??)
    };
    let engine_paths = web::EnginePaths::new(&fhir_ctx);
    let introspector = match &auth {
        Some(auth) => ehr::Introspector::new(auth.clone(), &issuer_clients)?.map(Arc::new),
        None => None,
    };
    let resolver = match &auth {
        Some(auth) => resolve::Resolver::new(
            engine.clone(),
            auth.clone(),
            &issuer_clients,
            identifier_systems,
        )?
        .map(Arc::new),
        None => None,
    };
    // One `Arc` for the whole state: axum clones the state for every request.
    let state = Arc::new(EngineState {
        resolver,
        engine: engine.clone(),
        jwks,
        introspector,
        dev: dev.clone(),
        paths: engine_paths.clone(),
        blocking: tokio::runtime::Handle::current(),
    });
    let mut app =
        Router::<Arc<EngineState>>::new().route(&format!("{base_path}/healthz"), get(healthz));
    if let Some(d) = &dev {
        app = app.nest_service(&format!("{base_path}/dev"), d.clone().router());
    }
    let app = web.clone().routes(app);
    let app = layers::Front::new(
        app.fallback(engine_route).with_state(state.clone()),
        transport::EngineService(state),
        engine_paths,
        layers::cors(&cors),
    );

    print_banner(&base_url, &engine, dev.as_deref(), tls.is_some(), &web);
    let mut limits = listener::Limits::default();
    if let Some(n) = max_connections {
        limits.max_connections = n.max(1);
    }
    if let Some(s) = write_timeout {
        limits.write_stall = std::time::Duration::from_secs(s.max(1));
    }
    let workers = workers::ConnectionWorkers::start(workers::ConnectionWorkers::default_count())?;
    listener::serve(
        listener,
        &workers,
        app,
        tls,
        limits,
        listener::shutdown_signal(),
    )
    .await;
    tokio::task::spawn_blocking(move || workers.stop()).await?;
    Ok(())
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// What to open: the URLs, and with `--dev` a ready token and the seed's journey as
/// curl lines. Printed to stdout (logs go to stderr).
fn print_banner(base: &str, engine: &Engine, dev: Option<&DevEhr>, tls: bool, web: &web::Web) {
    let mut out = String::new();
    let proto = if tls {
        "HTTPS, HTTP/1.1 and HTTP/2"
    } else {
        "HTTP/1.1 and HTTP/2"
    };
    out.push_str(&format!("sia serve: listening on {base} ({proto})\n"));
    out.push_str(&format!(
        "  FHIR ImagingStudy    {base}/fhir/ImagingStudy\n"
    ));
    out.push_str(&format!("  DICOMweb             {base}/dicom-web\n"));
    out.push_str(&format!("  WADO-URI             {base}/wado\n"));
    out.push_str(&format!("  health               {base}/healthz\n"));
    out.push_str(&web.banner(base));
    if let Some(ehr) = dev {
        let (cid, secret) = &ehr.introspection_client;
        out.push_str(
            "\ndevelopment SMART EHR (--dev: every request is granted; never for real patients)\n",
        );
        out.push_str(&format!(
            "  SMART configuration  {}/.well-known/smart-configuration\n",
            ehr.fhir_base
        ));
        out.push_str(&format!("  authorize            {}/authorize\n", ehr.base));
        out.push_str(&format!("  token                {}/token\n", ehr.base));
        out.push_str(&format!(
            "  introspect           {}/introspect  (HTTP Basic {cid}:{secret})\n",
            ehr.base
        ));
        out.push_str(&format!(
            "  FHIR Patient         {}/Patient/{{id}}\n",
            ehr.fhir_base
        ));
        match ehr.first_patient() {
            None => out.push_str("\nno patients indexed yet: give a folder of DICOM files\n"),
            Some(patient) => {
                let scope = "launch/patient patient/Patient.rs patient/ImagingStudy.rs";
                match ehr.access_token("sia-cli", scope, Some(&patient), dev::READY_TOKEN_SECONDS) {
                    Err(e) => out.push_str(&format!("\nno ready token: {e}\n")),
                    Ok(token) => {
                        let study = engine
                            .studies(&StudyFilter {
                                patient_id: Some(patient.clone()),
                                ..StudyFilter::default()
                            })
                            .ok()
                            .and_then(|s| s.into_iter().next())
                            .map(|s| s.uid)
                            .unwrap_or_else(|| "{study-uid}".into());
                        out.push_str(&journey(base, ehr, &patient, scope, &token, &study));
                    }
                }
            }
        }
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

fn journey(
    base: &str,
    ehr: &DevEhr,
    patient: &str,
    scope: &str,
    token: &str,
    study: &str,
) -> String {
    let q = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "\nready token for Patient/{patient} ({scope}; 24 h):\n\
         export TOKEN={token}\n\
         \nthe seed's journey:\n\
         # 1. authorize (a browser shows a patient picker; patient= picks one for scripts):\n\
         #    {ehr_base}/authorize?response_type=code&client_id=my-app&redirect_uri={redirect}&scope={scope_q}&state=xyz&aud={aud}&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&patient={patient}\n\
         # 2. token (code from the redirect; the verifier of that challenge is dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk):\n\
         curl -s -d grant_type=authorization_code -d client_id=my-app -d redirect_uri={redirect} -d code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk -d code=CODE {ehr_base}/token\n\
         # 3. the patient at the EHR:\n\
         curl -s -H \"Authorization: Bearer $TOKEN\" {fhir}/Patient/{patient}\n\
         # 4. the patient's imaging studies:\n\
         curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/fhir/ImagingStudy?patient=Patient/{patient}'\n\
         # 5. a study's metadata, then the study itself (DICOMweb, at the ImagingStudy's Endpoint):\n\
         curl -s -H \"Authorization: Bearer $TOKEN\" {base}/dicom-web/studies/{study}/metadata\n\
         curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Accept: multipart/related; type=\"application/dicom\"' {base}/dicom-web/studies/{study} -o study.multipart\n",
        ehr_base = ehr.base,
        fhir = ehr.fhir_base,
        redirect = q("http://127.0.0.1:9/callback"),
        scope_q = q(scope),
        aud = q(&ehr.fhir_base),
    )
}
