//! A client of a running daemon's API (what the `entente` client commands and the tests use).

use std::path::Path;
use std::time::Duration;

use jsonrpsee::core::client::{ClientT as _, Subscription, SubscriptionClientT as _};
use jsonrpsee::core::params::ObjectParams;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use serde_json::Value;

use crate::config::DaemonConfig;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon could not be reached.
    #[error("cannot reach the daemon at {url}: {reason} (is `entente node` running?)")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        reason: String,
    },
    /// The token file could not be read.
    #[error("API token {path}: {reason}")]
    Token {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The daemon answered with an error.
    #[error("{message} (code {code}{})", data.as_ref().map(|d| format!(", {d}")).unwrap_or_default())]
    Api {
        /// JSON-RPC error code.
        code: i32,
        /// Message.
        message: String,
        /// Data.
        data: Option<Value>,
    },
    /// Something else.
    #[error("{0}")]
    Other(String),
}

impl From<jsonrpsee::core::ClientError> for ClientError {
    fn from(e: jsonrpsee::core::ClientError) -> Self {
        match e {
            jsonrpsee::core::ClientError::Call(o) => Self::Api {
                code: o.code(),
                message: o.message().to_string(),
                data: o.data().and_then(|d| serde_json::from_str(d.get()).ok()),
            },
            other => Self::Other(other.to_string()),
        }
    }
}

/// A connection to the API.
#[derive(Debug)]
pub struct Client {
    ws: WsClient,
}

impl Client {
    /// Connects to `url` (`ws://127.0.0.1:7545`) with `token`.
    pub async fn connect(url: &str, token: &str) -> Result<Self, ClientError> {
        let mut headers = http::HeaderMap::new();
        let value = http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ClientError::Other("the token is not a valid header value".into()))?;
        headers.insert(http::header::AUTHORIZATION, value);
        let ws = WsClientBuilder::default()
            .set_headers(headers)
            .request_timeout(Duration::from_secs(600))
            .max_response_size(64 * 1024 * 1024)
            .build(url)
            .await
            .map_err(|e| ClientError::Unreachable {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self { ws })
    }

    /// Connects to the daemon of the home `home` (its API address and token file).
    pub async fn for_home(home: &Path, url: Option<&str>) -> Result<Self, ClientError> {
        let config = DaemonConfig::load(home).map_err(|e| ClientError::Other(e.to_string()))?;
        let path = config.resolve(&config.api.token_file);
        let token = std::fs::read_to_string(&path).map_err(|e| ClientError::Token {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let url = url.map_or_else(|| format!("ws://{}", config.api.listen), str::to_string);
        Self::connect(&url, token.trim()).await
    }

    /// Calls `method` with named `params` (a JSON object).
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        Ok(self.ws.request(method, object(params)?).await?)
    }

    /// Subscribes with `method` (e.g. `channel_subscribe`), unsubscribing with `unsubscribe`.
    pub async fn subscribe(
        &self,
        method: &str,
        params: Value,
        unsubscribe: &str,
    ) -> Result<Subscription<Value>, ClientError> {
        Ok(self.ws.subscribe(method, object(params)?, unsubscribe).await?)
    }
}

fn object(params: Value) -> Result<ObjectParams, ClientError> {
    let mut p = ObjectParams::new();
    match params {
        Value::Object(o) => {
            for (k, v) in o {
                p.insert(&k, v).map_err(|e| ClientError::Other(e.to_string()))?;
            }
        }
        Value::Null => {}
        other => {
            return Err(ClientError::Other(format!(
                "parameters must be an object, not {other}"
            )));
        }
    }
    Ok(p)
}
