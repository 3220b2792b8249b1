//! The API server: a WebSocket JSON-RPC endpoint (jsonrpsee) behind a check of the API token.
//!
//! A client presents the token as `Authorization: Bearer <token>` or, where it cannot set headers
//! (a browser's WebSocket), as the query parameter `?token=<token>`. A request without the right
//! token is answered with HTTP 401 before any JSON-RPC is read.
//!
//! With a static directory configured (`[api] static_dir`, `entente node --static-dir`), a plain
//! `GET` (not a WebSocket upgrade) is answered with a file from that directory instead: a web
//! front-end served from the API's own origin. Those files are public (the page asks for the
//! token); paths are confined to the directory.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse, Server, ServerHandle};
use tower::{Layer, Service};

use crate::daemon::Daemon;

/// The largest request the API reads (a machine's artifact fits).
const MAX_REQUEST: u32 = 4 * 1024 * 1024;

/// The largest static file served.
const MAX_STATIC_FILE: u64 = 8 * 1024 * 1024;

/// Checks the token of every HTTP request (a WebSocket upgrade or a plain JSON-RPC POST); serves
/// static files for plain `GET`s when it has a directory.
#[derive(Clone)]
pub struct TokenLayer {
    token: Arc<str>,
    static_dir: Option<Arc<Path>>,
    hosts: Option<Arc<[String]>>,
}

impl TokenLayer {
    /// Requests must present `token`.
    pub fn new(token: &str) -> Self {
        Self {
            token: token.into(),
            static_dir: None,
            hosts: None,
        }
    }

    /// Answers only requests whose `Host` is one of `hosts` (403 otherwise): on a loopback
    /// address, a page of another site whose name was made to resolve to 127.0.0.1 (DNS
    /// rebinding) then cannot read even the public files.
    pub fn with_hosts(mut self, hosts: Option<Vec<String>>) -> Self {
        self.hosts = hosts.map(Into::into);
        self
    }

    /// Also serves the files under `dir` to plain `GET` and `HEAD` requests.
    pub fn with_static_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.static_dir = dir.map(Into::into);
        self
    }
}

impl<S> Layer<S> for TokenLayer {
    type Service = TokenCheck<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TokenCheck {
            inner,
            token: self.token.clone(),
            static_dir: self.static_dir.clone(),
            hosts: self.hosts.clone(),
        }
    }
}

/// The service [`TokenLayer`] wraps around the API.
#[derive(Clone)]
pub struct TokenCheck<S> {
    inner: S,
    token: Arc<str>,
    static_dir: Option<Arc<Path>>,
    hosts: Option<Arc<[String]>>,
}

/// Equal in time independent of where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn presented<B>(request: &HttpRequest<B>) -> Option<String> {
    if let Some(v) = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return v.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    request
        .uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(str::to_string)
}

impl<S, B> Service<HttpRequest<B>> for TokenCheck<S>
where
    S: Service<HttpRequest<B>, Response = HttpResponse>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        if let Some(hosts) = &self.hosts {
            let host = request
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            if !hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
                let response = plain(
                    http::StatusCode::FORBIDDEN,
                    "unexpected Host header: the API answers only its own loopback address\n",
                );
                return Box::pin(async move { Ok(response) });
            }
        }
        if let Some(dir) = &self.static_dir {
            let plain_get = matches!(*request.method(), http::Method::GET | http::Method::HEAD)
                && !request.headers().contains_key(http::header::UPGRADE);
            if plain_get {
                let dir = dir.clone();
                let path = request.uri().path().to_string();
                let head = request.method() == http::Method::HEAD;
                return Box::pin(async move { Ok(static_file(&dir, &path, head).await) });
            }
        }
        let ok = presented(&request).is_some_and(|t| same(t.as_bytes(), self.token.as_bytes()));
        if ok {
            Box::pin(self.inner.call(request))
        } else {
            let mut response = HttpResponse::new(HttpBody::from(
                "{\"error\":\"missing or wrong API token: send `Authorization: Bearer <token>` or `?token=<token>`; the token is in the daemon's token file\"}",
            ));
            *response.status_mut() = http::StatusCode::UNAUTHORIZED;
            Box::pin(async move { Ok(response) })
        }
    }
}

/// The file under `dir` that the URL path `path` names: `None` for anything that could leave the
/// directory (`..`, an encoded character, a backslash, a symbolic link pointing out).
fn resolve(dir: &Path, path: &str) -> Option<PathBuf> {
    if path.contains(['%', '\\', '\0']) {
        return None;
    }
    let relative = Path::new(path.trim_start_matches('/'));
    if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let root = dir.canonicalize().ok()?;
    let mut file = root.join(relative).canonicalize().ok()?;
    if !file.starts_with(&root) {
        return None;
    }
    if file.is_dir() {
        file = file.join("index.html");
    }
    file.is_file().then_some(file)
}

/// Checks a directory before it is served: it holds an `index.html`; it neither lies inside the
/// daemon's home nor holds it (the home's key files and token must never be served); others
/// cannot write to it (whoever replaces a script of the page runs it with the token of whoever
/// opens it). Returns the directory, canonical.
pub fn check_static_dir(dir: &Path, home: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let shown = dir.display();
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("static directory {shown}: {e}"))?;
    if !dir.join("index.html").is_file() {
        return Err(format!(
            "static directory {shown}: no index.html (build the web front-end: `npm run build -w @entente/web`)"
        ));
    }
    if let Ok(home) = home.canonicalize()
        && (dir.starts_with(&home) || home.starts_with(&dir))
    {
        return Err(format!(
            "static directory {shown}: it overlaps the daemon's home {}, whose key files and token must not be served",
            home.display()
        ));
    }
    let mode = std::fs::metadata(&dir)
        .map_err(|e| format!("static directory {shown}: {e}"))?
        .permissions()
        .mode();
    if mode & 0o022 != 0 {
        return Err(format!(
            "static directory {shown}: others may write to it (mode {:o}): `chmod go-w` it",
            mode & 0o777
        ));
    }
    Ok(dir)
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn plain(status: http::StatusCode, text: &'static str) -> HttpResponse {
    let mut response = HttpResponse::new(HttpBody::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A static file's response: the file, 404 when there is none, 500 when it cannot be read.
async fn static_file(dir: &Path, path: &str, head: bool) -> HttpResponse {
    let Some(file) = resolve(dir, path) else {
        return plain(http::StatusCode::NOT_FOUND, "not found\n");
    };
    let body = match tokio::fs::metadata(&file).await {
        Ok(m) if m.len() > MAX_STATIC_FILE => {
            return plain(http::StatusCode::INTERNAL_SERVER_ERROR, "file too large\n");
        }
        Ok(_) if head => Vec::new(),
        Ok(_) => match tokio::fs::read(&file).await {
            Ok(bytes) => bytes,
            Err(_) => return plain(http::StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file\n"),
        },
        Err(_) => return plain(http::StatusCode::NOT_FOUND, "not found\n"),
    };
    let mut response = HttpResponse::new(HttpBody::from(body));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type(&file)),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        http::header::REFERRER_POLICY,
        http::HeaderValue::from_static("no-referrer"),
    );
    // The page talks only to its own origin (the API) and may not be framed (a framing page
    // could trick a click into a move).
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'",
        ),
    );
    response
}

/// Starts the API on `listen` with `token`, serving the files under `static_dir` (if any) beside
/// it; returns its address and handle (the server stops when the handle is stopped or dropped...
/// see [`ServerHandle`]).
pub async fn serve(
    daemon: Arc<Daemon>,
    listen: SocketAddr,
    token: &str,
    static_dir: Option<PathBuf>,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
    // Bound first: the port of `127.0.0.1:0` is known only then.
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    // On loopback the Host must be the API's own address (DNS rebinding); on another address
    // the daemon is reached by names it cannot know, and the token alone guards it.
    let hosts = addr.ip().is_loopback().then(|| {
        let port = addr.port();
        vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ]
    });
    let middleware = tower::ServiceBuilder::new().layer(
        TokenLayer::new(token)
            .with_static_dir(static_dir)
            .with_hosts(hosts),
    );
    let config = jsonrpsee::server::ServerConfig::builder()
        .max_request_body_size(MAX_REQUEST)
        .max_response_body_size(16 * MAX_REQUEST)
        .build();
    let server = Server::builder()
        .set_config(config)
        .set_http_middleware(middleware)
        .build_from_tcp(listener)?;
    let handle = server.start(crate::api::rpc_module(daemon));
    Ok((addr, handle))
}
