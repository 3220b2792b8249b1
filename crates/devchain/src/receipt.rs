use std::collections::BTreeMap;
use std::fmt;

use alloy_dyn_abi::{DynSolValue, JsonAbiExt};
use alloy_json_abi::JsonAbi;
use alloy_primitives::{Address, B256, Bytes, Log, U256};
use alloy_sol_types::SolError;
use entente_contracts::{ManagerError, ManagerEvent, decode_manager_error};

/// Why a transaction or a call failed, decoded with the ABIs the chain knows (the manager, its
/// extension, the example machines, and every machine deployed from an artifact).
#[derive(Debug, Clone, PartialEq)]
pub enum Revert {
    /// `revert("reason")` / `require(cond, "reason")`: `Error(string)`.
    Reason(String),
    /// A Solidity panic (`Panic(uint256)`: assert, overflow, division by zero, ...), with its code.
    Panic(U256),
    /// A custom error of a known ABI, by name, with its decoded arguments.
    Custom {
        /// The error's name (`TooEarly`, `InvalidSignature`, ...).
        name: String,
        /// Its arguments, in order.
        args: Vec<DynSolValue>,
    },
    /// Revert data that matches no known error (empty for a bare `revert()`).
    Raw(Bytes),
    /// Execution halted without a revert (out of gas, invalid opcode, ...): all gas is spent.
    Halt(String),
}

impl Revert {
    /// The custom error's name, if it is one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Revert::Custom { name, .. } => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for Revert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Revert::Reason(r) => write!(f, "reverted: {r}"),
            Revert::Panic(code) => write!(f, "panicked with code {code:#x}"),
            Revert::Custom { name, args } => {
                write!(f, "reverted with {name}(")?;
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{arg:?}")?;
                }
                write!(f, ")")
            }
            Revert::Raw(data) if data.is_empty() => write!(f, "reverted without data"),
            Revert::Raw(data) => write!(f, "reverted with data {data}"),
            Revert::Halt(reason) => write!(f, "halted: {reason}"),
        }
    }
}

/// Custom errors by selector, from every ABI registered with the chain.
#[derive(Debug, Clone, Default)]
pub(crate) struct ErrorDecoder {
    errors: BTreeMap<[u8; 4], alloy_json_abi::Error>,
}

impl ErrorDecoder {
    /// Adds the custom errors of `abi` (an error already known by its selector is kept).
    pub(crate) fn register(&mut self, abi: &JsonAbi) {
        for error in abi.errors() {
            self.errors
                .entry(error.selector().0)
                .or_insert_with(|| error.clone());
        }
    }

    /// Decodes revert data.
    pub(crate) fn decode(&self, data: &Bytes) -> Revert {
        let Some(selector) = data.get(..4).and_then(|s| <[u8; 4]>::try_from(s).ok()) else {
            return Revert::Raw(data.clone());
        };
        if selector == alloy_sol_types::Revert::SELECTOR
            && let Ok(revert) = alloy_sol_types::Revert::abi_decode(data)
        {
            return Revert::Reason(revert.reason);
        }
        if selector == alloy_sol_types::Panic::SELECTOR
            && let Ok(panic) = alloy_sol_types::Panic::abi_decode(data)
        {
            return Revert::Panic(panic.code);
        }
        if let Some(error) = self.errors.get(&selector)
            && let Ok(args) = error.abi_decode_input(&data[4..])
        {
            return Revert::Custom {
                name: error.name.clone(),
                args,
            };
        }
        Revert::Raw(data.clone())
    }
}

/// A log as the chain recorded it: where it was emitted, and, for a log of a StateChannelManager
/// deployed on this chain, its decoded event.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// Number of the block that holds it.
    pub block_number: u64,
    /// That block's timestamp.
    pub timestamp: u64,
    /// Index of the transaction in its block.
    pub transaction_index: u64,
    /// Index of the log in its block.
    pub log_index: u64,
    /// The emitting contract, topics and data.
    pub log: Log,
    /// The manager's event, when the log is one (`None` for other contracts' logs).
    pub event: Option<ManagerEvent>,
}

impl LoggedEvent {
    /// The emitting contract.
    pub fn address(&self) -> Address {
        self.log.address
    }

    /// The log's topics (the event signature first, for non-anonymous events).
    pub fn topics(&self) -> &[B256] {
        self.log.topics()
    }

    /// The log's data.
    pub fn data(&self) -> &Bytes {
        &self.log.data.data
    }
}

/// The outcome of one mined transaction. A failed transaction is mined too: it changes no contract
/// state (only its sender's nonce and, if gas has a price, its balance), and its receipt says why.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// The sender.
    pub from: Address,
    /// The called contract (`None` for a deployment).
    pub to: Option<Address>,
    /// True if the transaction succeeded.
    pub success: bool,
    /// Gas the transaction used (21,000 + calldata + execution, after refunds): what a receipt on
    /// a real chain reports as `gasUsed`.
    pub gas_used: u64,
    /// The gas limit it ran with.
    pub gas_limit: u64,
    /// Its logs (none if it failed), each decoded if it is a manager event.
    pub logs: Vec<LoggedEvent>,
    /// Return data (the revert data if it reverted; empty for a deployment).
    pub output: Bytes,
    /// Why it failed, decoded; `None` if it succeeded.
    pub revert: Option<Revert>,
    /// The contract a deployment created.
    pub contract_address: Option<Address>,
    /// Number of the block that holds it.
    pub block_number: u64,
    /// That block's timestamp.
    pub timestamp: u64,
    /// Index of the transaction in its block.
    pub transaction_index: u64,
}

impl Receipt {
    /// The receipt if the transaction succeeded, else [`crate::DevChainError::Failed`] with it.
    pub fn into_result(self) -> Result<Self, crate::DevChainError> {
        if self.success {
            Ok(self)
        } else {
            Err(crate::DevChainError::Failed(Box::new(self)))
        }
    }

    /// The manager's decoded events, in order.
    pub fn events(&self) -> impl Iterator<Item = &ManagerEvent> {
        self.logs.iter().filter_map(|l| l.event.as_ref())
    }

    /// The custom error's name, if the transaction reverted with one.
    pub fn revert_name(&self) -> Option<&str> {
        self.revert.as_ref().and_then(Revert::name)
    }

    /// The manager's custom error, typed, if the transaction reverted with one.
    pub fn manager_error(&self) -> Option<ManagerError> {
        if self.success {
            return None;
        }
        decode_manager_error(&self.output)
    }

    /// The revert decoded as the error type `E`, if it is one.
    pub fn revert_as<E: SolError>(&self) -> Option<E> {
        if self.success {
            return None;
        }
        E::abi_decode(&self.output).ok()
    }

    /// Why it failed, as text ("succeeded" if it did not).
    pub fn failure(&self) -> String {
        match &self.revert {
            Some(revert) => revert.to_string(),
            None => "succeeded".to_string(),
        }
    }
}
