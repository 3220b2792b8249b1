/// Errors of reading an exported artifact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractsError {
    /// The artifact is not the JSON `{"abi": [...], "bytecode": "0x...", ...}` the build exports.
    #[error("invalid artifact JSON: {0}")]
    Json(String),
    /// The artifact has no ABI.
    #[error("the artifact has no ABI")]
    NoAbi,
    /// The artifact has no creation bytecode (an interface or an abstract contract).
    #[error("the artifact has no creation bytecode (an interface or an abstract contract?)")]
    NoBytecode,
    /// A `uint8` that is not a value of the Solidity enum it encodes.
    #[error("{value} is not a {name}")]
    UnknownEnumValue {
        /// The enum.
        name: &'static str,
        /// The value.
        value: u8,
    },
}
