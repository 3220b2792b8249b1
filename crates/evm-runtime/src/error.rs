use std::fmt;

use alloy_json_abi::JsonAbi;
use alloy_primitives::{B256, Bytes, U256};
use alloy_sol_types::{SolError, decode_revert_reason};

/// A decoded revert of a state-machine call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revert {
    /// `revert("reason")` / `require(cond, "reason")`.
    Reason(String),
    /// A Solidity panic (assert, overflow, division by zero, ...), with its code.
    Panic(U256),
    /// A custom error of the machine's ABI, with its decoded arguments.
    Custom {
        /// The error's name.
        name: String,
        /// The arguments, formatted.
        args: Vec<String>,
    },
    /// Revert data that matches no known error.
    Raw(Bytes),
}

impl Revert {
    /// Decodes revert data, using `abi` for the machine's custom errors.
    pub(crate) fn decode(data: &Bytes, abi: Option<&JsonAbi>) -> Self {
        if data.len() >= 4 {
            let selector: [u8; 4] = [data[0], data[1], data[2], data[3]];
            if selector == alloy_sol_types::Revert::SELECTOR
                && let Some(reason) = decode_revert_reason(data)
            {
                return Revert::Reason(reason);
            }
            if selector == alloy_sol_types::Panic::SELECTOR
                && let Ok(panic) = alloy_sol_types::Panic::abi_decode(data)
            {
                return Revert::Panic(panic.code);
            }
            if let Some(abi) = abi {
                for error in abi.errors() {
                    if error.selector().as_slice() == selector {
                        use alloy_dyn_abi::JsonAbiExt;
                        let args = match error.abi_decode_input(&data[4..]) {
                            Ok(values) => values.iter().map(|v| format!("{v:?}")).collect(),
                            Err(_) => vec![format!("<undecodable {} bytes>", data.len() - 4)],
                        };
                        return Revert::Custom {
                            name: error.name.clone(),
                            args,
                        };
                    }
                }
            }
        }
        Revert::Raw(data.clone())
    }
}

impl fmt::Display for Revert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Revert::Reason(r) => write!(f, "reverted: {r}"),
            Revert::Panic(code) => write!(f, "panicked with code {code:#x}"),
            Revert::Custom { name, args } => write!(f, "reverted with {name}({})", args.join(", ")),
            Revert::Raw(data) if data.is_empty() => write!(f, "reverted without data"),
            Revert::Raw(data) => write!(f, "reverted with data {data}"),
        }
    }
}

/// Errors of running a state machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvmError {
    /// The artifact JSON could not be read.
    #[error("invalid machine artifact: {0}")]
    Artifact(String),
    /// Deploying the machine failed.
    #[error("deploying the state machine failed: {0}")]
    Deploy(String),
    /// The call reverted.
    #[error("state machine {0}")]
    Reverted(Revert),
    /// The call ran out of gas or hit an invalid opcode.
    #[error("state machine halted: {reason} (gas limit {gas_limit})")]
    Halted {
        /// What stopped it.
        reason: String,
        /// The gas limit of the call.
        gas_limit: u64,
    },
    /// The call's return data did not decode.
    #[error("unexpected return data from {call}: {reason}")]
    BadReturn {
        /// The function called.
        call: &'static str,
        /// The decoding error.
        reason: String,
    },
    /// The transition produced another state than the transaction claims.
    #[error("transition produced state {actual}, the transaction claims {claimed}")]
    StateHashMismatch {
        /// Claimed by the transaction.
        claimed: B256,
        /// Produced by execution.
        actual: B256,
    },
    /// revm itself refused the call (a bug of ours, not of the machine).
    #[error("EVM error: {0}")]
    Internal(String),
}
