//! The API server: a WebSocket JSON-RPC endpoint (jsonrpsee) behind a check of the API token.
//!
//! A client presents the token as `Authorization: Bearer <token>` or, where it cannot set headers
//! (a browser's WebSocket), as the query parameter `?token=<token>`. A request without the right
//! token is answered with HTTP 401 before any JSON-RPC is read.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse, Server, ServerHandle};
use tower::{Layer, Service};

use crate::daemon::Daemon;

/// The largest request the API reads (a machine's artifact fits).
const MAX_REQUEST: u32 = 4 * 1024 * 1024;

/// Checks the token of every HTTP request (a WebSocket upgrade or a plain JSON-RPC POST).
#[derive(Clone)]
pub struct TokenLayer {
    token: Arc<str>,
}

impl TokenLayer {
    /// Requests must present `token`.
    pub fn new(token: &str) -> Self {
        Self { token: token.into() }
    }
}

impl<S> Layer<S> for TokenLayer {
    type Service = TokenCheck<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TokenCheck {
            inner,
            token: self.token.clone(),
        }
    }
}

/// The service [`TokenLayer`] wraps around the API.
#[derive(Clone)]
pub struct TokenCheck<S> {
    inner: S,
    token: Arc<str>,
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

/// Starts the API on `listen` with `token`; returns its address and handle (the server stops when
/// the handle is stopped or dropped... see [`ServerHandle`]).
pub async fn serve(
    daemon: Arc<Daemon>,
    listen: SocketAddr,
    token: &str,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let middleware = tower::ServiceBuilder::new().layer(TokenLayer::new(token));
    let config = jsonrpsee::server::ServerConfig::builder()
        .max_request_body_size(MAX_REQUEST)
        .max_response_body_size(16 * MAX_REQUEST)
        .build();
    let server = Server::builder()
        .set_config(config)
        .set_http_middleware(middleware)
        .build(listen)
        .await?;
    let addr = server.local_addr()?;
    let handle = server.start(crate::api::rpc_module(daemon));
    Ok((addr, handle))
}
