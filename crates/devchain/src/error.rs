use entente_contracts::ContractsError;

use crate::{Receipt, Revert};

/// Errors of the in-process chain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DevChainError {
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The chain refused the transaction before executing it (insufficient funds for value and
    /// gas, gas limit above the block's, ...): like a node's refusal, there is no receipt.
    #[error("transaction rejected before execution: {0}")]
    Rejected(String),
    /// A transaction was mined but failed (reverted or halted); its receipt says why.
    #[error("transaction failed in block {}: {}", .0.block_number, .0.failure())]
    Failed(Box<Receipt>),
    /// A read-only call reverted.
    #[error("call {0}")]
    Reverted(Revert),
    /// Time cannot go back: blocks carry non-decreasing timestamps.
    #[error("chain time cannot go back from {now} to {requested}")]
    TimeGoesBack {
        /// The chain's current time.
        now: u64,
        /// The time asked for.
        requested: u64,
    },
    /// A timestamp, balance or counter would overflow.
    #[error("overflow: {0}")]
    Overflow(&'static str),
    /// A manager helper was called on a chain without a StateChannelManager.
    #[error("no StateChannelManager deployed on this chain")]
    NoManager,
    /// An artifact could not be read.
    #[error(transparent)]
    Artifact(#[from] ContractsError),
    /// A deployment succeeded without creating a contract (should not happen).
    #[error("the deployment created no contract")]
    NoContractCreated,
    /// A call's return data did not decode as its ABI says.
    #[error("unexpected return data from {call}: {reason}")]
    BadReturn {
        /// The function called.
        call: &'static str,
        /// The decoding error.
        reason: String,
    },
    /// revm failed for a reason of its own (a bug of ours, not of the contracts).
    #[error("EVM error: {0}")]
    Evm(String),
}
