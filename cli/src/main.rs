//! `sia`: index DICOM folders, print FHIR ImagingStudy, answer DICOMweb requests
//! in-process, write a demo data set.

mod serve;

/// mimalloc: the server allocates a few small buffers per request on every thread, where
/// glibc's allocator showed up in profiles; the index run benefits as well.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sia::Request;
use sia::internal::index::{IndexOptions, IndexReport, Progress, StudyFilter};
use sia::{Config, Engine};

#[derive(Parser)]
#[command(
    name = "sia",
    version,
    about = "SMART Imaging Access: DICOM index, FHIR ImagingStudy, DICOMweb"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Index DICOM files and folders (recursively) into the index database.
    Index {
        /// Files and folders to index.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The index: an SQLite file, or a PostgreSQL database as a `postgres://` URL
        /// (default: the config's index, else sia.db).
        #[arg(long)]
        db: Option<PathBuf>,
        /// Configuration file: its index (`[server] db` or `[index]`) and storage roots
        /// (`[storage.roots]`) are used; --db overrides the index.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the run's report as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print a FHIR R4 searchset Bundle of ImagingStudy resources.
    Studies {
        /// The index: an SQLite file, or a PostgreSQL database as a `postgres://` URL.
        #[arg(long, default_value = "sia.db")]
        db: PathBuf,
        /// Only studies of this DICOM Patient ID.
        #[arg(long)]
        patient_id: Option<String>,
        /// With --patient-id: only this Issuer of Patient ID.
        #[arg(long, requires = "patient_id")]
        issuer: Option<String>,
        /// The public base URL (FHIR at {base}/fhir, DICOMweb at {base}/dicom-web).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        base_url: String,
    },
    /// Send one request through the engine in-process (no network) and print the answer.
    ///
    /// The body goes to stdout, the status line and headers to stderr; the exit status is
    /// 1 for an HTTP status of 400 or more. Without --config it runs as the local
    /// administrator (no token needed); with --config authorization is enforced exactly
    /// as the server will.
    Get {
        /// The request target, e.g. /dicom-web/studies/{uid}/series/{uid}/instances/{uid}/frames/1
        target: String,
        /// The index, a file or a `postgres://` URL (default: the configuration's, else ./sia.db).
        #[arg(long)]
        db: Option<PathBuf>,
        /// A configuration file: authorization is then enforced exactly as the server
        /// will (send the token with -H 'Authorization: Bearer ...').
        #[arg(long)]
        config: Option<PathBuf>,
        /// A request header, `Name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The public base URL used in Content-Location and links.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        base_url: String,
    },
    /// Link a FHIR Patient id to a DICOM patient (Patient ID + Issuer of Patient ID).
    ///
    /// Tokens of that issuer whose patient is that FHIR id can then see the DICOM
    /// patient's studies. A FHIR Patient id means something only on its EHR, so a link
    /// names the token issuer (--fhir-issuer, or the only issuer of --config). Without
    /// either, the link is unassigned: it serves tokens only while exactly one issuer is
    /// configured.
    Link(LinkArgs),
    /// Remove a link made by `sia link` or `sia import-patients`; effective at once,
    /// capability URLs that relied on it included.
    Unlink(LinkArgs),
    /// Link FHIR Patients to DICOM patients from Patient resources.
    ///
    /// The file holds NDJSON, a Bundle or one Patient; identifier systems map to DICOM
    /// issuers through [patients] identifier_systems in --config, or urn:oid: systems.
    /// The Patients are those of one token issuer (--fhir-issuer, or the only issuer of
    /// --config).
    ImportPatients {
        /// The file of Patient resources.
        file: PathBuf,
        /// The index, a file or a `postgres://` URL (default: the configuration's, else ./sia.db).
        #[arg(long)]
        db: Option<PathBuf>,
        /// A configuration file with `[patients] identifier_systems`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The token issuer (`iss`) whose Patients these are.
        #[arg(long)]
        fhir_issuer: Option<String>,
    },
    /// Serve FHIR, DICOMweb and WADO-URI over HTTP (and with --dev a development SMART EHR).
    ///
    /// Indexes PATHS at start, then serves FHIR under /fhir, DICOMweb under /dicom-web and
    /// WADO-URI under /wado, every request authorized by the engine. With --dev (loopback
    /// only unless --dev-on-network) a development SMART EHR under /dev issues tokens the
    /// server trusts; a ready token and curl lines are printed. Logs go to stderr
    /// (SIA_LOG=debug for more).
    Serve {
        /// Files and folders to index at start (and watch, with --watch).
        paths: Vec<PathBuf>,
        /// The index, a file or a `postgres://` URL (default: the configuration's, else ./sia.db).
        #[arg(long)]
        db: Option<PathBuf>,
        /// A configuration file: [server], [[issuers]], [patients], [capabilities].
        #[arg(long)]
        config: Option<PathBuf>,
        /// The address to listen on (default: the configuration's, else 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
        /// The public base URL (default: the configuration's, else from the address).
        #[arg(long)]
        base_url: Option<String>,
        /// Serve a development SMART EHR under /dev and trust its tokens.
        #[arg(long)]
        dev: bool,
        /// Allow --dev on an address other than loopback (anyone reaching it gets tokens).
        #[arg(long, requires = "dev")]
        dev_on_network: bool,
        /// The development EHR issues opaque access tokens (checked by introspection
        /// only, like SMART's reference launcher) instead of JWTs.
        #[arg(long, requires = "dev")]
        dev_opaque_tokens: bool,
        /// A backend-services client of the development EHR: `ID=JWKS_FILE` (its public
        /// keys); it gets system/ tokens by client_credentials with private_key_jwt
        /// (repeatable).
        #[arg(long = "dev-client", requires = "dev", value_name = "ID=JWKS_FILE")]
        dev_clients: Vec<String>,
        /// Re-index PATHS when files are added, changed or removed.
        #[arg(long)]
        watch: bool,
        /// An origin allowed by CORS (repeatable; `*` for any); overrides the configuration.
        #[arg(long = "cors-origin")]
        cors: Vec<String>,
        /// The imaging app's folder, served at /app/ (default with --dev: ./app if present).
        #[arg(long, value_name = "DIR")]
        app: Option<PathBuf>,
        /// fhirclient's build folder, served at /app/lib/ (default with --dev:
        /// ./.cache/web/fhirclient if present; scripts/web-deps fetches it).
        #[arg(long, value_name = "DIR")]
        app_lib: Option<PathBuf>,
        /// The OHIF viewer's dist/ folder, served at /viewer/ (default with --dev:
        /// ./.cache/web/ohif if present; scripts/web-deps fetches it).
        #[arg(long, value_name = "DIR")]
        viewer: Option<PathBuf>,
    },
    /// Write a small synthetic DICOM data set to try sia on.
    Demo {
        /// Folder to write into (created if needed).
        dir: PathBuf,
    },
}

/// Which link `sia link` adds and `sia unlink` removes: a FHIR Patient id of a token
/// issuer, and a DICOM patient (Patient ID + Issuer of Patient ID).
#[derive(clap::Args)]
struct LinkArgs {
    /// The index, a file or a `postgres://` URL (default: the configuration's, else ./sia.db).
    #[arg(long)]
    db: Option<PathBuf>,
    /// A configuration file: its only issuer is the default --fhir-issuer.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The token issuer (`iss`) whose Patient id this is.
    #[arg(long)]
    fhir_issuer: Option<String>,
    /// The FHIR Patient id (as in the token's patient claim).
    #[arg(long)]
    patient: String,
    /// The DICOM Patient ID (0010,0020).
    #[arg(long)]
    identifier: String,
    /// The DICOM Issuer of Patient ID (0010,0021); empty when absent.
    #[arg(long, default_value = "")]
    issuer: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(e.as_ref()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sia: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `sia studies | head` closes the pipe early; that is not an error.
fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let kind = e
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind)
        .or_else(|| {
            e.downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
        });
    kind == Some(std::io::ErrorKind::BrokenPipe)
}

fn run(command: Command) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Serve {
            paths,
            db,
            config,
            listen,
            base_url,
            dev,
            dev_on_network,
            dev_opaque_tokens,
            dev_clients,
            watch,
            cors,
            app,
            app_lib,
            viewer,
        } => serve::run(serve::ServeArgs {
            paths,
            db,
            config,
            listen,
            base_url,
            dev,
            dev_on_network,
            dev_opaque_tokens,
            dev_clients,
            watch,
            cors,
            web: serve::WebDirs {
                app,
                app_lib,
                viewer,
            },
        })
        .map_err(|e| e as Box<dyn std::error::Error>),
        Command::Index {
            paths,
            db,
            config,
            json,
        } => index(paths, db, config, json),
        Command::Studies {
            db,
            patient_id,
            issuer,
            base_url,
        } => {
            let cfg = Config::builder().db(db).base_url(base_url).build();
            require_index(&cfg)?;
            let engine = Engine::open(cfg)?;
            let bundle = engine.imaging_study_bundle(&StudyFilter {
                patient_id,
                issuer,
                study_uid: None,
            })?;
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &bundle)?;
            writeln!(out)?;
            Ok(())
        }
        Command::Get {
            target,
            db,
            config,
            headers,
            base_url,
        } => get(target, db, config, headers, base_url),
        Command::Link(LinkArgs {
            db,
            config,
            fhir_issuer,
            patient,
            identifier,
            issuer,
        }) => {
            let (cfg, iss) = link_target(db, config, fhir_issuer)?;
            let index = sia::internal::index::Index::open_at(&cfg.index_location())?;
            index.link_patient_for(&iss, &patient, &identifier, &issuer)?;
            println!(
                "linked FHIR Patient/{patient} of issuer {iss:?} to DICOM patient {identifier:?} (issuer {issuer:?})"
            );
            Ok(())
        }
        Command::Unlink(LinkArgs {
            db,
            config,
            fhir_issuer,
            patient,
            identifier,
            issuer,
        }) => {
            let (cfg, iss) = link_target(db, config, fhir_issuer)?;
            let index = sia::internal::index::Index::open_at(&cfg.index_location())?;
            let n = index.unlink_patient(&iss, &patient, &identifier, &issuer)?;
            if n == 0 {
                return Err(format!(
                    "no link from FHIR Patient/{patient} of issuer {iss:?} to DICOM patient {identifier:?} (issuer {issuer:?})"
                )
                .into());
            }
            println!(
                "unlinked FHIR Patient/{patient} of issuer {iss:?} from DICOM patient {identifier:?} (issuer {issuer:?})"
            );
            Ok(())
        }
        Command::ImportPatients {
            file,
            db,
            config,
            fhir_issuer,
        } => {
            let (cfg, iss) = link_target(db, config, fhir_issuer)?;
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let index = sia::internal::index::Index::open_at(&cfg.index_location())?;
            let report = index.import_patients_for(&iss, &text, &cfg.identifier_systems)?;
            serde_json::to_writer(std::io::stdout().lock(), &report)?;
            println!();
            Ok(())
        }
        Command::Demo { dir } => {
            let files = sia::write_demo(&dir)?;
            println!("wrote {} DICOM files to {}", files.len(), dir.display());
            println!("next: sia index {} && sia studies", dir.display());
            Ok(())
        }
    }
}

/// The configuration (for the index and identifier systems) and the token issuer a
/// link command writes for: `--fhir-issuer` (which must be configured when --config is
/// given), else the only issuer of --config; '' (an unassigned link) without either.
/// Whether `db` names an SQLite index file that does not exist (a `postgres://` URL
/// names a database, which opening creates the tables in).
fn missing_sqlite(db: &std::path::Path) -> bool {
    matches!(
        sia::IndexLocation::from_db(db),
        sia::IndexLocation::Sqlite(_)
    ) && !db.exists()
}

/// The configuration of a command: the `--config` file, else `default`; `--db` names the
/// index instead of the file's (an SQLite path or a `postgres://` URL).
fn command_config(
    config: Option<&std::path::Path>,
    db: Option<PathBuf>,
    default: impl FnOnce() -> Config,
) -> Result<Config, Box<dyn std::error::Error>> {
    let mut cfg = match config {
        Some(path) => Config::from_file(path)?,
        None => default(),
    };
    if let Some(db) = db {
        cfg.db = db;
        cfg.index_url = None;
    }
    Ok(cfg)
}

/// Refuses a command that reads an index which does not exist yet (an SQLite file never
/// indexed) instead of creating an empty one.
fn require_index(cfg: &Config) -> Result<(), Box<dyn std::error::Error>> {
    if cfg.index_url.is_none() && missing_sqlite(&cfg.db) {
        let db = cfg.db.display();
        return Err(format!("no index at {db} (run `sia index <folder> --db {db}` first)").into());
    }
    Ok(())
}

fn link_target(
    db: Option<PathBuf>,
    config: Option<PathBuf>,
    fhir_issuer: Option<String>,
) -> Result<(Config, String), Box<dyn std::error::Error>> {
    let cfg = command_config(config.as_deref(), db, Config::default)?;
    require_index(&cfg)?;
    let configured = cfg
        .auth
        .as_ref()
        .map(|a| a.issuer_names())
        .unwrap_or_default();
    let iss = match (fhir_issuer, config.is_some(), configured.as_slice()) {
        (Some(i), true, list) if !list.contains(&i) => {
            return Err(format!("issuer {i:?} is not configured in --config").into());
        }
        (Some(i), _, _) if i.is_empty() => {
            return Err("--fhir-issuer must not be empty".into());
        }
        (Some(i), _, _) => i,
        (None, true, [only]) => only.clone(),
        (None, true, _) => {
            return Err("several issuers are configured: name one with --fhir-issuer".into());
        }
        (None, false, _) => {
            eprintln!(
                "note: no --fhir-issuer: the link is unassigned and serves tokens only while exactly one issuer is configured"
            );
            String::new()
        }
    };
    Ok((cfg, iss))
}

fn get(
    target: String,
    db: Option<PathBuf>,
    config: Option<PathBuf>,
    headers: Vec<String>,
    base_url: String,
) -> Result<(), Box<dyn std::error::Error>> {
    let cfg = command_config(config.as_deref(), db, || {
        Config::builder().base_url(base_url).build()
    })?;
    require_index(&cfg)?;
    let engine = Engine::open(cfg)?;
    let mut request = Request::get(&target);
    for h in &headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("header {h:?} is not `Name: value`"))?;
        request = request.with_header(name.trim(), value.trim());
    }
    let response = engine.handle(&request);
    let mut err = std::io::stderr().lock();
    writeln!(err, "HTTP/1.1 {} {}", response.status, response.reason())?;
    for (name, value) in &response.headers {
        writeln!(err, "{name}: {value}")?;
    }
    let mut out = std::io::stdout().lock();
    for chunk in response.body.chunks() {
        out.write_all(chunk.as_bytes())?;
    }
    out.flush()?;
    if response.status >= 400 {
        std::process::exit(1);
    }
    Ok(())
}

fn index(
    paths: Vec<PathBuf>,
    db: Option<PathBuf>,
    config: Option<PathBuf>,
    json: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let cfg = command_config(config.as_deref(), db, Config::default)?;
    let engine = Engine::open(cfg)?;
    let report = index_with_progress(&engine, &paths)?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_report(&mut out, &report)?;
    }
    Ok(())
}

/// Indexes `paths`, with a progress bar when stderr is a terminal.
pub(crate) fn index_with_progress(
    engine: &Engine,
    paths: &[impl AsRef<Path>],
) -> Result<IndexReport, sia::Error> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} files {per_sec} {wide_msg}",
            )
            .expect("valid template"),
        );
        bar
    });
    let opts = IndexOptions::default().progress(|p: &Progress<'_>| {
        if let Some(bar) = &bar {
            bar.set_length(p.files_found);
            bar.set_position(p.files_done);
            if p.files_done.is_multiple_of(64) || (p.walk_done && p.files_done == p.files_found) {
                bar.set_message(p.current.display().to_string());
            }
        }
        std::ops::ControlFlow::Continue(())
    });
    let report = engine.index(paths, &opts);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    report
}

fn print_report(out: &mut impl Write, r: &IndexReport) -> std::io::Result<()> {
    writeln!(
        out,
        "indexed {}, unchanged {}, removed {}, duplicates {}, skipped {} in {:.3} s",
        r.indexed,
        r.unchanged,
        r.removed,
        r.duplicates.len(),
        r.skipped.len(),
        r.seconds
    )?;
    for d in &r.duplicates {
        writeln!(
            out,
            "duplicate: {} (SOP Instance UID {})",
            d.path, d.sop_instance_uid
        )?;
    }
    for s in &r.skipped {
        writeln!(out, "skipped: {}: {}", s.path, s.reason)?;
    }
    for c in &r.conflicts {
        writeln!(out, "conflict: {c}; not indexed")?;
    }
    for c in &r.normalized_charsets {
        writeln!(
            out,
            "misspelt Specific Character Set (read as meant): {}: {:?}",
            c.path, c.value
        )?;
    }
    for u in &r.nonconformant_uids {
        writeln!(
            out,
            "non-conformant UID (indexed): {}: {} {:?}",
            u.path, u.attribute, u.uid
        )?;
    }
    Ok(())
}
