//! The artifact JSON files (`abi`, `bytecode`, `deployedBytecode`), as exported by the build, and
//! a reader for them.

use alloy_json_abi::{ContractObject, JsonAbi};
use alloy_primitives::Bytes;

use crate::ContractsError;

/// `TicTacToe`: the two-player game.
pub const TIC_TAC_TOE: &str = include_str!("../../../contracts/artifacts/TicTacToe.json");
/// `RoundRobinCounter`: the N-party round-robin machine used by the simulations.
pub const ROUND_ROBIN_COUNTER: &str = include_str!("../../../contracts/artifacts/RoundRobinCounter.json");
/// `TwoFacedCounter`: for tests only, a `RoundRobinCounter` whose `getNextToWrite()` and
/// `isGameOver()` disagree with what the court reads of its state (`nextToWriteOf`,
/// `isGameOverOf`).
pub const TWO_FACED_COUNTER: &str = include_str!("../../../contracts/artifacts/TwoFacedCounter.json");
/// `Payments`: the N-party payment machine in which anyone may write (signed intents).
pub const PAYMENTS: &str = include_str!("../../../contracts/artifacts/Payments.json");
/// `StateChannelManager`: the on-chain court. Its creation code deploys `ChannelExtension` from
/// its constructor (the extension's creation code is embedded in it), so deploying this one
/// artifact gives the whole manager.
pub const STATE_CHANNEL_MANAGER: &str = include_str!("../../../contracts/artifacts/StateChannelManager.json");
/// `ChannelExtension`: fraud proofs, forced exit, join and leave, run by the manager with
/// `delegatecall`. Deployed before the manager, whose constructor takes its address.
pub const CHANNEL_EXTENSION: &str = include_str!("../../../contracts/artifacts/ChannelExtension.json");
/// `VerdictExtension`: challenges and verdicts, run by the manager with `delegatecall`. Deployed
/// before the manager, whose constructor takes its address.
pub const VERDICT_EXTENSION: &str = include_str!("../../../contracts/artifacts/VerdictExtension.json");
/// `IStateChannelManager`: the whole ABI of the manager (no bytecode).
pub const I_STATE_CHANNEL_MANAGER: &str =
    include_str!("../../../contracts/artifacts/IStateChannelManager.json");
/// `IStateChannelEvents`: every event and custom error of the manager (no bytecode).
pub const I_STATE_CHANNEL_EVENTS: &str =
    include_str!("../../../contracts/artifacts/IStateChannelEvents.json");

/// An artifact read from its JSON: the ABI and the bytecode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The contract's ABI.
    pub abi: JsonAbi,
    /// Creation bytecode (constructor + runtime code); empty for interfaces and abstract contracts.
    pub bytecode: Bytes,
    /// Runtime bytecode; empty for interfaces and abstract contracts.
    pub deployed_bytecode: Bytes,
}

impl Artifact {
    /// Reads an exported artifact (one of the constants of this module, or any file of the same
    /// shape).
    pub fn parse(json: &str) -> Result<Self, ContractsError> {
        let object: ContractObject =
            serde_json::from_str(json).map_err(|e| ContractsError::Json(e.to_string()))?;
        Ok(Self {
            abi: object.abi.ok_or(ContractsError::NoAbi)?,
            bytecode: object.bytecode.unwrap_or_default(),
            deployed_bytecode: object.deployed_bytecode.unwrap_or_default(),
        })
    }

    /// The creation bytecode, refusing an artifact that has none.
    pub fn creation_code(&self) -> Result<&Bytes, ContractsError> {
        if self.bytecode.is_empty() {
            return Err(ContractsError::NoBytecode);
        }
        Ok(&self.bytecode)
    }
}
