//! The browser side of `sia serve`: the SMART imaging app at `/app/` (static files from
//! `app/`, fhirclient's build at `/app/lib/`) and the OHIF viewer at `/viewer/` (the
//! published `@ohif/app` `dist/`, unmodified on disk). OHIF's build assumes it is served
//! at `/`, so some files are rewritten in memory for the `/viewer/` prefix: `index.html`
//! (absolute links, `window.PUBLIC_URL`), the bundles that fix webpack's public path
//! (`__webpack_require__.p = "/"`), stylesheets with root-relative font URLs, and
//! `app-config.js`, generated at run time with one DICOMweb data source: this server's,
//! or the study-bound capability address the app hands over in the page's fragment
//! (never sent to a server, never logged).
//!
//! Also the caching policy of the engine's answers ([`cache_headers`]): frames, metadata
//! and bulk data of a study are immutable and may be kept by the browser (privately,
//! varying by `Authorization`); DICOMweb searches are revalidated; FHIR answers are not
//! stored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use tower::ServiceExt;
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;

/// Where the browser files come from (each optional).
#[derive(Clone, Debug, Default)]
pub struct WebDirs {
    /// The imaging app's static files (`app/`).
    pub app: Option<PathBuf>,
    /// fhirclient's browser build (`fhir-client.min.js`), served at `/app/lib/`.
    pub app_lib: Option<PathBuf>,
    /// OHIF's `dist/`.
    pub viewer: Option<PathBuf>,
}

impl WebDirs {
    /// Flags first, then the configuration, then (with `--dev`) the folders
    /// `scripts/web-deps` fills, relative to the working directory, when they exist.
    pub fn resolve(
        flags: WebDirs,
        config: &sia::ServerSettings,
        dev: bool,
    ) -> Result<WebDirs, String> {
        let pick = |flag: Option<PathBuf>, conf: &Option<PathBuf>, default: &str| {
            flag.or_else(|| conf.clone()).or_else(|| {
                let d = PathBuf::from(default);
                (dev && d.is_dir()).then_some(d)
            })
        };
        let dirs = WebDirs {
            app: pick(flags.app, &config.app_dir, "app"),
            app_lib: pick(flags.app_lib, &config.app_lib_dir, ".cache/web/fhirclient"),
            viewer: pick(flags.viewer, &config.viewer_dir, ".cache/web/ohif"),
        };
        for (what, dir) in [
            ("--app", &dirs.app),
            ("--app-lib", &dirs.app_lib),
            ("--viewer", &dirs.viewer),
        ] {
            if let Some(d) = dir
                && !d.is_dir()
            {
                return Err(format!("{what} {}: not a folder", d.display()));
            }
        }
        if let Some(v) = &dirs.viewer
            && !v.join("index.html").is_file()
        {
            return Err(format!(
                "--viewer {}: no index.html (give the dist/ folder of @ohif/app; scripts/web-deps fetches it)",
                v.display()
            ));
        }
        Ok(dirs)
    }
}

/// The browser files, ready to serve.
pub struct Web {
    app: Option<ServeDir>,
    app_lib: Option<ServeDir>,
    viewer: Option<Viewer>,
    /// `{base path}`: `""`, or `/x` when the base URL has a path.
    base_path: String,
}

struct Viewer {
    files: ServeDir,
    index_html: Bytes,
    app_config: Bytes,
    /// Bundles whose webpack public path (JavaScript) or font URLs (CSS) were
    /// rewritten, by file name.
    rewritten: HashMap<String, Bytes>,
}

/// The marker of webpack's runtime public path in OHIF's bundles (entry and workers).
const PUBLIC_PATH: &str = "__webpack_require__.p = \"/\";";

impl Web {
    /// Reads what must be rewritten (blocking: a few files of OHIF's `dist/`).
    pub fn new(dirs: &WebDirs, base_path: &str, dicomweb_base: &str) -> Result<Web, String> {
        let viewer = match &dirs.viewer {
            None => None,
            Some(dir) => Some(Viewer::new(
                dir,
                &format!("{base_path}/viewer"),
                dicomweb_base,
            )?),
        };
        if dirs.app.is_some() && dirs.app_lib.is_none() {
            tracing::warn!(
                "the imaging app needs fhirclient at /app/lib/: scripts/web-deps, then --app-lib .cache/web/fhirclient"
            );
        }
        Ok(Web {
            app: dirs.app.as_ref().map(ServeDir::new),
            app_lib: dirs.app_lib.as_ref().map(ServeDir::new),
            viewer,
            base_path: base_path.to_string(),
        })
    }

    /// Lines for the start banner.
    pub fn banner(&self, base: &str) -> String {
        let mut out = String::new();
        if self.app.is_some() {
            out.push_str(&format!("  imaging app (SMART)  {base}/app/\n"));
        }
        match &self.viewer {
            Some(_) => out.push_str(&format!("  viewer (OHIF)        {base}/viewer/\n")),
            None if self.app.is_some() => out.push_str(
                "  viewer (OHIF)        not installed: scripts/web-deps, then --viewer .cache/web/ohif\n",
            ),
            None => {}
        }
        out
    }

    /// Adds `/app/` and `/viewer/` to `router`.
    pub fn routes<S: Clone + Send + Sync + 'static>(
        self: Arc<Self>,
        mut router: Router<S>,
    ) -> Router<S> {
        let bp = self.base_path.clone();
        if self.app.is_some() {
            let to = format!("{bp}/app/");
            router = router.route(
                &format!("{bp}/app"),
                get(move || async move { redirect(&to) }),
            );
            let w = self.clone();
            router = router.route(
                &format!("{bp}/app/"),
                get(move |req: Request| async move { w.app_file("", req).await }),
            );
            let w = self.clone();
            router =
                router.route(
                    &format!("{bp}/app/{{*path}}"),
                    get(
                        move |axum::extract::Path(path): axum::extract::Path<String>,
                              req: Request| async move {
                            w.app_file(&path, req).await
                        },
                    ),
                );
        }
        if self.viewer.is_some() {
            let to = format!("{bp}/viewer/");
            router = router.route(
                &format!("{bp}/viewer"),
                get(move || async move { redirect(&to) }),
            );
            let w = self.clone();
            router = router.route(
                &format!("{bp}/viewer/"),
                get(move |req: Request| async move { w.viewer_file("", req).await })
                    .layer(compression()),
            );
            let w = self.clone();
            router =
                router.route(
                    &format!("{bp}/viewer/{{*path}}"),
                    get(
                        move |axum::extract::Path(path): axum::extract::Path<String>,
                              req: Request| async move {
                            w.viewer_file(&path, req).await
                        },
                    )
                    .layer(compression()),
                );
        }
        router
    }

    async fn app_file(&self, path: &str, req: Request) -> Response {
        if let (Some(lib), Some(rest)) = (&self.app_lib, path.strip_prefix("lib/")) {
            return with_cache(serve_dir(lib, rest, req).await, "public, max-age=86400");
        }
        let Some(app) = &self.app else {
            return StatusCode::NOT_FOUND.into_response();
        };
        // The app changes as it is developed: always revalidated (Last-Modified).
        with_cache(serve_dir(app, path, req).await, "no-cache")
    }

    async fn viewer_file(&self, path: &str, req: Request) -> Response {
        let Some(v) = &self.viewer else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let resp = if path == "app-config.js" {
            bytes_response(
                v.app_config.clone(),
                "text/javascript; charset=utf-8",
                "no-cache",
            )
        } else if let Some(body) = v.rewritten.get(path) {
            let content_type = if path.ends_with(".css") {
                "text/css; charset=utf-8"
            } else {
                "text/javascript; charset=utf-8"
            };
            bytes_response(body.clone(), content_type, cache_for(path))
        } else if path.is_empty() || path == "index.html" {
            v.index()
        } else {
            let method = req.method().clone();
            let resp = serve_dir(&v.files, path, req).await;
            // The viewer's own routes (`/viewer/viewer?StudyInstanceUIDs=…`) are pages of
            // the single-page app: index.html, as OHIF's `_redirects` says.
            if resp.status() == StatusCode::NOT_FOUND
                && method == Method::GET
                && !path.rsplit('/').next().unwrap_or("").contains('.')
            {
                v.index()
            } else {
                with_cache(resp, cache_for(path))
            }
        };
        isolated(resp)
    }
}

impl Viewer {
    fn new(dir: &Path, prefix: &str, dicomweb_base: &str) -> Result<Viewer, String> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| format!("{}: {e}", dir.join(name).display()))
        };
        let index = read("index.html")?
            .replace(
                "window.PUBLIC_URL=\"/\"",
                &format!("window.PUBLIC_URL=\"{prefix}/\""),
            )
            .replace("href=\"/", &format!("href=\"{prefix}/"))
            .replace("src=\"/", &format!("src=\"{prefix}/"));
        let mut rewritten = HashMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let (js, css) = (name.ends_with(".js"), name.ends_with(".css"));
            if !(js || css) || name == "app-config.js" {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            if js && text.contains(PUBLIC_PATH) {
                let fixed = text.replace(
                    PUBLIC_PATH,
                    &format!("__webpack_require__.p = \"{prefix}/\";"),
                );
                rewritten.insert(name, Bytes::from(fixed));
            } else if css && text.contains("url(/") {
                // Fonts referenced from the root.
                let fixed = text.replace("url(/", &format!("url({prefix}/"));
                rewritten.insert(name, Bytes::from(fixed));
            }
        }
        if rewritten.is_empty() {
            tracing::warn!(
                "{}: no bundle sets webpack's public path to \"/\"; the viewer may not load under {prefix}/",
                dir.display()
            );
        }
        Ok(Viewer {
            files: ServeDir::new(dir),
            index_html: Bytes::from(index),
            app_config: Bytes::from(app_config(prefix, dicomweb_base)),
            rewritten,
        })
    }

    fn index(&self) -> Response {
        bytes_response(
            self.index_html.clone(),
            "text/html; charset=utf-8",
            "no-cache",
        )
    }
}

/// OHIF's runtime configuration: one DICOMweb data source, this server's. The imaging
/// app opens `/viewer/viewer?StudyInstanceUIDs={uid}#dicomweb={Endpoint address}`; the
/// address (a capability URL granting that one study) is taken from the fragment, kept in
/// the tab's sessionStorage and removed from the address bar. Only addresses under this
/// server's DICOMweb base are accepted.
fn app_config(prefix: &str, dicomweb_base: &str) -> String {
    let base = serde_json::to_string(dicomweb_base).unwrap_or_else(|_| "\"\"".into());
    let prefix_js = serde_json::to_string(prefix).unwrap_or_else(|_| "\"\"".into());
    format!(
        r#"// The OHIF viewer's runtime configuration, written by `sia serve` (cli/src/serve/web.rs).
(function () {{
  var base = {base};
  var key = 'sia.viewer.dicomweb';
  var root = null;
  var m = /(?:^#|&)dicomweb=([^&]*)/.exec(window.location.hash);
  if (m) {{
    root = decodeURIComponent(m[1]);
    try {{ window.sessionStorage.setItem(key, root); }} catch (e) {{}}
    window.history.replaceState(window.history.state, '', window.location.pathname + window.location.search);
  }} else {{
    try {{ root = window.sessionStorage.getItem(key); }} catch (e) {{}}
  }}
  if (!root || (root !== base && root.indexOf(base + '/cap/') !== 0)) {{
    root = base;
  }}
  window.config = {{
    name: 'sia',
    routerBasename: {prefix_js},
    extensions: [],
    modes: [],
    customizationService: {{}},
    showStudyList: false,
    maxNumberOfWebWorkers: 3,
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: true,
    showLoadingIndicator: true,
    strictZSpacingForVolumeViewport: true,
    investigationalUseDialog: {{ option: 'never' }},
    maxNumRequests: {{ interaction: 100, thumbnail: 5, prefetch: 25 }},
    showErrorDetails: 'always',
    defaultDataSourceName: 'sia',
    dataSources: [
      {{
        namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
        sourceName: 'sia',
        configuration: {{
          friendlyName: 'sia',
          name: 'sia',
          wadoUriRoot: root,
          qidoRoot: root,
          wadoRoot: root,
          qidoSupportsIncludeField: true,
          supportsReject: false,
          supportsStow: false,
          dicomUploadEnabled: false,
          imageRendering: 'wadors',
          thumbnailRendering: 'wadors',
          enableStudyLazyLoad: true,
          supportsFuzzyMatching: false,
          supportsWildcard: false,
          staticWado: false,
          singlepart: 'video',
          bulkDataURI: {{ enabled: true, relativeResolution: 'studies' }},
          omitQuotationForMultipartRequest: true,
        }},
      }},
    ],
  }};
}})();
"#
    )
}

/// How long the browser may keep a viewer file: hashed names (`*.bundle.{{16 hex}}.js`,
/// `{{16 hex}}.wasm`) never change; the rest are revalidated hourly.
fn cache_for(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let hashed = name
        .split('.')
        .any(|p| p.len() >= 16 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if hashed {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=3600"
    }
}

/// gzip for the viewer's files when the browser accepts it (OHIF's JavaScript is about
/// 40 MB, a quarter of that gzipped; fastest level: it is compressed per request, and the
/// hashed bundles are then cached for a year).
fn compression() -> CompressionLayer {
    CompressionLayer::new().quality(CompressionLevel::Fastest)
}

fn redirect(to: &str) -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, to.to_string())],
    )
        .into_response()
}

fn bytes_response(body: Bytes, content_type: &'static str, cache: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Body::from(body),
    )
        .into_response()
}

/// Sets `Cache-Control` on successful answers.
fn with_cache(mut resp: Response, cache: &'static str) -> Response {
    if resp.status().is_success() || resp.status() == StatusCode::NOT_MODIFIED {
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    resp
}

/// OHIF's decoders use SharedArrayBuffer when the page is cross-origin isolated; every
/// resource it loads from this server is same-origin (or answered with CORS).
fn isolated(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-embedder-policy",
        HeaderValue::from_static("require-corp"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// `rel` of `dir` through tower-http's `ServeDir` (content types, `Last-Modified`,
/// conditional and range requests, no escaping the folder).
async fn serve_dir(dir: &ServeDir, rel: &str, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let mut inner = Request::new(Body::empty());
    *inner.method_mut() = parts.method;
    *inner.headers_mut() = parts.headers;
    let uri = format!("/{}", rel.trim_start_matches('/'));
    match uri.parse() {
        Ok(u) => *inner.uri_mut() = u,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    }
    match dir.clone().oneshot(inner).await {
        Ok(resp) => resp.map(Body::new),
        Err(e) => match e {},
    }
}

/// Paths of the engine's answers, for [`cache_headers`].
#[derive(Clone)]
pub struct EnginePaths {
    /// `{base path}/dicom-web/`.
    pub dicomweb: String,
    /// `{base path}/fhir`.
    pub fhir: String,
}

impl EnginePaths {
    /// The paths of `ctx`'s FHIR and DICOMweb bases.
    pub fn new(ctx: &sia::internal::fhir::FhirContext) -> EnginePaths {
        let path = |u: &str| {
            url::Url::parse(u)
                .map(|u| u.path().trim_end_matches('/').to_string())
                .unwrap_or_default()
        };
        EnginePaths {
            dicomweb: format!("{}/", path(&ctx.dicomweb_base)),
            fhir: path(&ctx.fhir_base),
        }
    }

    /// Whether `path` is under the DICOMweb or the FHIR base, which only the engine
    /// answers (no route of the server's own lies under them).
    pub fn engine_serves(&self, path: &str) -> bool {
        (self.dicomweb.len() > 1 && path.starts_with(self.dicomweb.as_str()))
            || (!self.fhir.is_empty() && self.under_fhir(path))
    }

    /// Whether `path` is the FHIR base or under it.
    pub fn under_fhir(&self, path: &str) -> bool {
        path.strip_prefix(self.fhir.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// Browser caching of the engine's answers (unless the engine set `Cache-Control`):
/// a study's frames, metadata and bulk data never change under one URL, so a 200 may be
/// kept privately for a day, varying by `Authorization` (another user's token is a
/// different entry); DICOMweb searches are revalidated; FHIR answers are not stored.
/// `get`: whether the request was a GET or HEAD (nothing else is cached).
///
/// Called by the engine route on its answers rather than layered as middleware: a layer
/// costs every request of the server a boxed future and a service clone.
pub fn apply_cache_policy(paths: &EnginePaths, get: bool, path: &str, resp: &mut Response) {
    if !get || resp.headers().contains_key(header::CACHE_CONTROL) {
        return;
    }
    let policy = if let Some(rest) = path.strip_prefix(paths.dicomweb.as_str()) {
        let immutable =
            rest.contains("/frames/") || rest.ends_with("/metadata") || rest.contains("/bulkdata/");
        if immutable && resp.status() == StatusCode::OK {
            resp.headers_mut()
                .append(header::VARY, HeaderValue::from_static("Authorization"));
            "private, max-age=86400"
        } else {
            "no-cache"
        }
    } else if paths.under_fhir(path) {
        "no-store"
    } else {
        return;
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_viewer_files_are_immutable() {
        assert_eq!(
            cache_for("app.bundle.0f6159c501addfe9.js"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            cache_for("0ddf166f7a343eda.wasm"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(cache_for("app.bundle.css"), "public, max-age=3600");
        assert_eq!(cache_for("assets/favicon.ico"), "public, max-age=3600");
    }

    #[test]
    fn app_config_accepts_only_this_servers_dicomweb() {
        let js = app_config("/viewer", "http://127.0.0.1:8080/dicom-web");
        assert!(js.contains("var base = \"http://127.0.0.1:8080/dicom-web\";"));
        assert!(js.contains("root.indexOf(base + '/cap/') !== 0"));
        assert!(js.contains("routerBasename: \"/viewer\""));
    }
}
