// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {
    Transaction,
    Intent,
    Exit,
    DisputeRecord,
    DisputeKind,
    ProofKind,
    ChannelSpec,
    ChannelStatus
} from "../ChannelTypes.sol";

/// @title IStateChannelEvents
/// @notice Every event and custom error of the StateChannelManager.
interface IStateChannelEvents {
    // ------------------------------------------------------------------ events

    /// @notice A channel was opened (funding phase). Fork 0's genesis state is `genesisState`.
    event ChannelOpened(
        bytes32 indexed channelId, address indexed opener, ChannelSpec spec, bytes genesisState
    );
    /// @notice A participant's deposit arrived.
    event Deposited(bytes32 indexed channelId, address indexed participant, uint256 amount);
    /// @notice Every deposit is in: the channel is live; fork 0's genesis timestamp is `genesisTimestamp`.
    event ChannelActivated(bytes32 indexed channelId, uint64 genesisTimestamp);
    /// @notice The funding deadline passed without all deposits: the channel is cancelled.
    event FundingCancelled(bytes32 indexed channelId);
    /// @notice A deposit of a cancelled channel was paid back.
    event DepositReclaimed(bytes32 indexed channelId, address indexed participant, uint256 amount);
    /// @notice A transaction was posted as calldata (data availability): peers pick it up from here.
    event CalldataPosted(
        bytes32 indexed channelId,
        uint64 indexed forkCnt,
        uint64 indexed height,
        Transaction transaction,
        bytes signature
    );
    /// @notice The court holds `intent` of participant `index` (`postIntent`): from `dueAt` on it is forced onto
    /// the head (`forceIntent`) before any other post.
    event IntentPosted(
        bytes32 indexed channelId,
        uint64 indexed forkCnt,
        uint256 index,
        Intent intent,
        bytes signature,
        uint64 dueAt
    );
    /// @notice A posted intent was applied on the head: `transaction` (by the intent's issuer, signed by
    /// nobody: the court wrote it) is the head at `height`, as if posted. Peers pick it up from here.
    event IntentForced(
        bytes32 indexed channelId, uint64 indexed forkCnt, uint64 indexed height, Transaction transaction
    );
    /// @notice A posted intent did not apply on the head (already applied, expired, refused by the machine):
    /// the court no longer holds it.
    event IntentVoided(bytes32 indexed channelId, uint64 indexed forkCnt, uint256 index, bytes32 digest);
    /// @notice A dispute started; `state` is the state it will enforce (hash `dispute.stateHash`).
    event DisputeStarted(bytes32 indexed channelId, DisputeRecord dispute, bytes state);
    /// @notice A dispute was answered; `dispute` is the new record, `state` the state it now enforces.
    event DisputeChallenged(
        bytes32 indexed channelId, address indexed challenger, DisputeRecord dispute, bytes state
    );
    /// @notice A dispute's challenge period ended and it was carried out.
    event DisputeFinalized(bytes32 indexed channelId, DisputeRecord dispute);
    /// @notice A participant left the channel (removed, slashed, or by agreement).
    event ParticipantRemoved(bytes32 indexed channelId, address indexed participant, bool slashed);
    /// @notice A participant joined the channel with `amount`.
    event ParticipantJoined(bytes32 indexed channelId, address indexed participant, uint256 amount);
    /// @notice An exit was credited to `participant` (withdraw it with `withdrawPending`).
    event ExitCredited(bytes32 indexed channelId, address indexed participant, uint256 amount);
    /// @notice The chain enforced `state`: it is the genesis of fork `forkCnt` (final without signatures);
    /// the fork's first transaction has height `genesisHeight + 1`.
    event SetState(
        bytes32 indexed channelId,
        uint64 forkCnt,
        uint64 genesisHeight,
        uint64 genesisTimestamp,
        bytes state,
        address[] participants
    );
    /// @notice The head of fork `forkCnt` moved to an N-signed state (a checkpoint, a dispute's latest state,
    /// a challenge or a leave approval). Posted states are announced by `CalldataPosted`.
    event Checkpointed(bytes32 indexed channelId, uint64 forkCnt, uint64 height, bytes32 stateHash);
    /// @notice A verdict's hook failed or gave a state the chain cannot enforce: the channel settled at the
    /// head's exits instead.
    event HookFailed(bytes32 indexed channelId, address indexed target, bool slash);
    /// @notice The channel settled; each exit is claimed with `withdraw(channelId, exits, index)`.
    event ChannelClosed(bytes32 indexed channelId, uint64 forkCnt, uint64 height, Exit[] exits);
    /// @notice An exit of a closed channel was paid.
    event Withdrawn(bytes32 indexed channelId, address indexed participant, uint256 amount);
    /// @notice Credited exits were paid.
    event PendingWithdrawn(address indexed account, address indexed token, uint256 amount);

    // ------------------------------------------------------------------ errors

    error ChannelExists(bytes32 channelId);
    error UnknownChannel(bytes32 channelId);
    error WrongStatus(bytes32 channelId, ChannelStatus status);
    error InvalidSpec(string reason);
    error InvalidGenesis(string reason);
    error NotAParticipant(address account);
    error AlreadyParticipant(address account);
    error AlreadyFunded(uint256 index);
    error NotFunded(uint256 index);
    error IndexOutOfRange(uint256 index);
    error WrongAmount(uint256 expected, uint256 received);
    error UnexpectedValue();
    error TooEarly(uint256 notBefore);
    error TooLate(uint256 deadline);
    error WrongChannel(bytes32 expected, bytes32 got);
    error WrongFork(uint64 expected, uint64 got);
    error WrongHeight(uint64 expected, uint64 got);
    error StateHashMismatch(bytes32 expected, bytes32 got);
    error SignatureCountMismatch(uint256 expected, uint256 got);
    error InvalidSignature(uint256 index);
    error SignerMismatch(address expected, address got);
    error NotPosted(bytes32 digest);
    error AlreadyPosted(bytes32 digest);
    error NotFinal();
    error ExitsNotConserved(uint256 expected, uint256 got);
    error DisputeActive(bytes32 channelId);
    error DisputeMismatch();
    error NoWriterExpected();
    error CannotAccuseSelf();
    error NotAChallenge();
    error NotASuccessor();
    error NotADoubleSign();
    error NotAFraudKind(DisputeKind kind);
    error ProofKindNotAllowed(ProofKind kind);
    error InsufficientGas();
    error MachineCallFailed(bytes reason);
    error AlreadyClaimed(uint256 index);
    error NothingToWithdraw();
    error TransferFailed();
    error UnsupportedToken();
    error NotJoiner(address expected, address got);
    /// @notice `postCalldata` arguments not in the canonical ABI encoding (no longer raised).
    error NonCanonicalEncoding();
    /// @notice The proof is below the head (or conflicts with an N-signed head at its height).
    error StaleProof(uint64 headHeight, bytes32 stateHash);
    /// @notice A posted transaction's timestamp is below its parent's or too far in the future.
    error BadTimestamp(uint64 timestamp, uint64 earliest, uint64 latest);
    /// @notice A posted transaction does not execute to its claimed state.
    error InvalidTransition(bytes32 claimed, bytes32 computed);
    /// @notice A fraud proof's claim does not hold.
    error ClaimDoesNotHold(DisputeKind kind);
    /// @notice The court holds a posted intent that is due (`digest`, of participant `index`): force it first.
    error IntentDue(uint256 index, bytes32 digest);
    /// @notice The court holds no such posted intent of participant `index`.
    error NoPostedIntent(uint256 index);
    /// @notice The court already holds a posted intent of participant `index`.
    error IntentAlreadyPosted(uint256 index);
    /// @notice The posted intent may be forced only from `dueAt` on.
    error IntentNotDue(uint64 dueAt);
    /// @notice The posted intent could be forced only until `until`: it lapsed (its issuer may post it again).
    error IntentLapsed(uint64 until);
    /// @notice After a state that names no writer, height `height % n` is its sequencer's (`sequencer`) alone.
    error NotSequencer(address sequencer, address writer);
    /// @notice The intent expired (`notAfter` below `earliest`, the later of chain time and the head's timestamp).
    error IntentExpired(uint64 notAfter, uint64 earliest);
    /// @notice The head names a writer: intents are posted only in states where nobody is obliged to write.
    error WriterExpected(address writer);
    /// @notice Only an exit's participant may send it elsewhere.
    error NotYourExit(address participant, address caller);
}
