use entente_types::{Address, B256};

/// Why a node or channel operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The data directory could not be used (missing, corrupt, locked, ...).
    #[error("data directory: {0}")]
    Store(#[from] entente_store::StoreError),
    /// The chain could not be reached or refused a call.
    #[error("chain: {0}")]
    Chain(#[from] entente_chain::ChainError),
    /// The peer-to-peer layer failed.
    #[error("p2p: {0}")]
    P2p(#[from] entente_p2p::P2pError),
    /// The node's transport failed.
    #[error("{0}")]
    Transport(#[from] crate::TransportError),
    /// The state machine's code could not be loaded or run.
    #[error("state machine: {0}")]
    Machine(#[from] entente_evm_runtime::EvmError),
    /// No channel (or pending proposal) with this id on this node.
    #[error("unknown channel {0}")]
    UnknownChannel(B256),
    /// The channel is not live yet (waiting for answers or deposits).
    #[error("channel {0} is not live yet")]
    NotLive(B256),
    /// The channel has closed.
    #[error("channel {0} is closed")]
    ChannelClosed(B256),
    /// The proposal is not acceptable.
    #[error("proposal refused: {0}")]
    BadProposal(String),
    /// This node is not a participant of the channel.
    #[error("{0} is not a participant of this channel")]
    NotAParticipant(Address),
    /// The move was refused by the channel (not our turn, invalid move, game over, ...).
    #[error("move refused: {0}")]
    Move(#[from] entente_state_manager::SubmitError),
    /// The channel refused the command for another reason (not final yet, a membership change
    /// it cannot make, the signer gave no signature, ...).
    #[error("refused: {0}")]
    Refused(entente_channel::ChannelError),
    /// The node's event loop has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// Waiting for something took too long.
    #[error("timed out waiting for {0}")]
    Timeout(String),
}
