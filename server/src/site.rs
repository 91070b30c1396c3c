//! The static files of `--static DIR` (a web app served beside the API): only
//! files really inside the folder, no dotfiles, JSON errors like the API's,
//! headers that keep a browser from sniffing types or caching the app's entry
//! points for good, and a file's precompressed sibling (`FILE.br`, `FILE.gz`)
//! in its place for a browser that accepts it.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use tower::ServiceExt;
use tower_http::services::ServeDir;

use crate::error::ApiError;

/// The default `Content-Security-Policy` of static files: everything from the
/// server's own origin only, no plugins, no framing, no `<base>` elsewhere.
/// Scripts may also be inline and evaluate strings, because the pages this
/// server is used with do (the sync tests' harness has an inline module, the
/// demo's end-to-end checks call the API through `new Function`); an app that
/// does neither should pass a `--csp` without 'unsafe-inline' and 'unsafe-eval'.
/// Workers may come from the origin (a service worker) and from `blob:` URLs:
/// the package compresses push bodies in a worker it starts from one.
pub const DEFAULT_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval'; \
     worker-src 'self' blob:; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'self'; \
     frame-ancestors 'none'";

pub struct Site {
    /// The folder, with symbolic links resolved.
    root: PathBuf,
    files: ServeDir,
    csp: HeaderValue,
}

impl Site {
    pub fn new(dir: &Path, csp: HeaderValue) -> std::io::Result<Site> {
        let root = dir.canonicalize()?;
        // A sibling compressed once at the best quality beats compressing on
        // every request at the fastest (the wasm module: 283 KB with brotli at
        // 11, 395 KB at 1). Whoever writes one keeps it in step with its file.
        let files = ServeDir::new(&root).precompressed_br().precompressed_gzip();
        Ok(Site { files, root, csp })
    }

    pub async fn serve(&self, request: Request) -> Response {
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return ApiError::MethodNotAllowed.into_response();
        }
        let Ok(path) = percent_decode_str(request.uri().path()).decode_utf8() else {
            return not_found();
        };
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        // Dotfiles (.git, .env, .htpasswd) are never part of the app; this also refuses `..`.
        if segments.iter().any(|s| s.starts_with('.') || s.contains('\\')) {
            return not_found();
        }
        let candidate = self.root.join(segments.join("/"));
        if !self.inside(&candidate).await || (candidate.is_dir() && !self.inside(&candidate.join("index.html")).await) {
            return not_found();
        }
        let entry_point = path.ends_with('/') || matches!(segments.last(), Some(&"index.html" | &"sw.js"));
        let response = match self.files.clone().oneshot(request).await {
            Ok(response) => response.map(Body::new),
            Err(never) => match never {},
        };
        match response.status() {
            StatusCode::NOT_FOUND => return not_found(),
            StatusCode::METHOD_NOT_ALLOWED => return ApiError::MethodNotAllowed.into_response(),
            _ => {}
        }
        let mut response = response;
        response.headers_mut().insert(CONTENT_SECURITY_POLICY, self.csp.clone());
        if entry_point && response.status().is_success() {
            // The page and its service worker must be checked for updates on every
            // load, or a deployed fix never reaches browsers that cached the old one.
            response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        }
        response
    }

    /// Whether `path`, with its symbolic links resolved, is inside the folder
    /// (a path that does not exist is: the file server answers 404 for it).
    async fn inside(&self, path: &Path) -> bool {
        match tokio::fs::canonicalize(path).await {
            Ok(real) => real.starts_with(&self.root),
            Err(_) => true,
        }
    }
}

fn not_found() -> Response {
    ApiError::NotFound("no such file".into()).into_response()
}
