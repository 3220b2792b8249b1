//! What can go wrong talking to a chain, typed.

use std::fmt;
use std::time::Duration;

use alloy::primitives::{Bytes, TxHash};
use alloy::transports::{RpcError, TransportErrorKind};
use entente_contracts::{ManagerError, decode_manager_error};

/// Why a revert happened: the manager's custom error when the data decodes as one, else the raw
/// revert data (a machine's own error, `Error(string)`, a panic, or nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revert {
    /// A custom error of the StateChannelManager.
    Manager(ManagerError),
    /// Revert data that is not one of the manager's errors (possibly empty).
    Raw(Bytes),
    /// The transaction failed on chain, but replaying it at its parent block did not reproduce
    /// the failure (another transaction of the same block changed the state it read, or it ran
    /// out of gas); the reason is what the replay said.
    NotReproduced(String),
}

impl Revert {
    /// Classifies revert data.
    pub fn from_data(data: Bytes) -> Self {
        match decode_manager_error(&data) {
            Some(error) => Self::Manager(error),
            None => Self::Raw(data),
        }
    }

    /// The manager's error, if the revert is one.
    pub fn manager_error(&self) -> Option<&ManagerError> {
        match self {
            Self::Manager(error) => Some(error),
            _ => None,
        }
    }
}

impl fmt::Display for Revert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Manager(error) => write!(f, "{error:?}"),
            Self::Raw(data) if data.is_empty() => f.write_str("no revert data"),
            Self::Raw(data) => write!(f, "revert data {data}"),
            Self::NotReproduced(reason) => {
                write!(f, "failed on chain, not reproduced by a replay ({reason})")
            }
        }
    }
}

/// Why a call to the chain failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The endpoint is not a valid URL.
    #[error("invalid chain endpoint {url:?}: {reason}")]
    BadUrl {
        /// The endpoint as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The chain could not be reached: connection refused or reset, HTTP error status, request
    /// timeout.
    #[error("chain at {url} is unreachable ({method}): {reason}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// The JSON-RPC method that failed.
        method: &'static str,
        /// The transport's error.
        reason: String,
    },
    /// The node answered with a JSON-RPC error that is not a revert (a transaction it refused:
    /// nonce, funds, gas cap; an unknown method).
    #[error("chain at {url} refused {method}: {message} (code {code})")]
    Rpc {
        /// The endpoint.
        url: String,
        /// The JSON-RPC method.
        method: &'static str,
        /// The JSON-RPC error code.
        code: i64,
        /// The node's message.
        message: String,
    },
    /// A call or transaction reverted.
    #[error("{what} reverted: {revert}")]
    Reverted {
        /// What reverted: a transaction (by hash) or a call.
        what: String,
        /// Why.
        revert: Revert,
    },
    /// No receipt arrived in time for a sent transaction (it may still be mined later).
    #[error("no receipt for transaction {tx_hash} after {waited:?}")]
    Timeout {
        /// The transaction.
        tx_hash: TxHash,
        /// How long we waited.
        waited: Duration,
    },
    /// The node's answer could not be understood (malformed, null where a value was due,
    /// inconsistent).
    #[error("chain at {url} gave a bad answer to {method}: {reason}")]
    BadResponse {
        /// The endpoint.
        url: String,
        /// The JSON-RPC method.
        method: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The operation needs a StateChannelManager and none was deployed or set.
    #[error("no StateChannelManager: deploy one or set its address first")]
    NoManager,
    /// A local failure before anything was sent (signing, encoding).
    #[error("{0}")]
    Local(String),
}

impl ChainError {
    /// The manager's custom error, if this is a revert with one.
    pub fn manager_error(&self) -> Option<&ManagerError> {
        match self {
            Self::Reverted { revert, .. } => revert.manager_error(),
            _ => None,
        }
    }

    /// True for failures of the connection (worth retrying later), false for answers.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }

    /// Classifies an alloy RPC error of `method` sent to `url`. A revert (an error response
    /// whose message says so) becomes [`ChainError::Reverted`] with its data.
    pub(crate) fn from_rpc(url: &str, method: &'static str, error: RpcError<TransportErrorKind>) -> Self {
        let error = match revert_data(error) {
            Ok(data) => {
                return Self::Reverted {
                    what: method.to_string(),
                    revert: Revert::from_data(data),
                };
            }
            Err(error) => error,
        };
        match error {
            RpcError::ErrorResp(payload) => Self::Rpc {
                url: url.to_string(),
                method,
                code: payload.code,
                message: payload.message.to_string(),
            },
            RpcError::Transport(kind) => Self::Unreachable {
                url: url.to_string(),
                method,
                reason: with_causes(&kind),
            },
            RpcError::NullResp => Self::BadResponse {
                url: url.to_string(),
                method,
                reason: "null where a value was expected".into(),
            },
            RpcError::DeserError { err, text } => Self::BadResponse {
                url: url.to_string(),
                method,
                reason: format!("{err}: {}", truncate(&text, 200)),
            },
            other => Self::Local(format!("{method}: {other}")),
        }
    }
}

/// The revert data of an error response that reports a revert (possibly empty), else the error.
pub(crate) fn revert_data(
    error: RpcError<TransportErrorKind>,
) -> Result<Bytes, RpcError<TransportErrorKind>> {
    match error {
        RpcError::ErrorResp(payload) if payload.message.contains("revert") => {
            Ok(payload.as_revert_data().unwrap_or_default())
        }
        other => Err(other),
    }
}

/// `error` with its chain of causes ("error sending request: connection refused"), without
/// repeating a cause that its parent already printed.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = e.source();
    }
    text
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
