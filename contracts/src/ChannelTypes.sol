// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @notice One state transition of a channel, as every peer signs it (EIP-712 struct `Transaction`).
/// @dev The Rust side (`entente-types`) hashes the identical struct; test vectors in
/// `test/vectors/eip712.json` pin both implementations to the same digests.
struct Transaction {
    /// The channel this transaction belongs to.
    bytes32 channelId;
    /// The fork it builds on (0 from the channel's genesis; +1 for every state the chain enforces).
    uint64 forkCnt;
    /// Number of transitions applied since the channel's genesis, this one included.
    uint64 height;
    /// The issuer (writer) of the transaction.
    address participant;
    /// The issuer's logical time, in seconds, synced to chain time.
    uint64 timestamp;
    /// keccak256 of the encoded state this transaction applies to.
    bytes32 prevStateHash;
    /// keccak256 of the encoded state it claims to produce.
    bytes32 stateHash;
    /// ABI-encoded call of one of the state machine's own functions (the move).
    bytes data;
}

/// @notice A move signed by its issuer alone (EIP-712 struct `Intent`, domain "Entente Intent"), for
/// machines where anyone may write: the issuer asks for `data` (a call of one of the machine's moves) to
/// be applied as its move. Signing an intent is not signing a transaction: an issuer may have many intents
/// under way while the height's sequencer writes them into one transaction (docs/protocol.md, section 11).
struct Intent {
    /// The channel it is for (binds the chain and the manager: a channel id hashes both).
    bytes32 channelId;
    /// Who asks for the move.
    address issuer;
    /// The issuer's intent count in this channel before this one: intents apply in order, once.
    uint64 nonce;
    /// The last transaction timestamp it may be applied at (seconds).
    uint64 notAfter;
    /// ABI-encoded call of one of the machine's moves.
    bytes data;
}

/// @notice EIP-712 hashing of `Intent`, shared by the machines that apply intents and the manager that
/// holds posted ones.
library IntentHashing {
    /// @notice EIP-712 type of `Intent`.
    bytes32 internal constant INTENT_TYPEHASH =
        keccak256("Intent(bytes32 channelId,address issuer,uint64 nonce,uint64 notAfter,bytes data)");
    /// @notice EIP-712 domain of intents: fixed, the channel id inside the struct binds chain and manager.
    bytes32 internal constant DOMAIN_SEPARATOR = keccak256(
        abi.encode(
            keccak256("EIP712Domain(string name,string version)"), keccak256("Entente Intent"), keccak256("1")
        )
    );

    /// @notice The digest an issuer signs for `intent`.
    function digest(Intent memory intent) internal pure returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                INTENT_TYPEHASH,
                intent.channelId,
                intent.issuer,
                intent.nonce,
                intent.notAfter,
                keccak256(intent.data)
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR, structHash));
    }
}

/// @notice A transaction with signatures over its EIP-712 digest (65 bytes each, r || s || v).
struct SignedTransaction {
    Transaction transaction;
    bytes[] signatures;
}

/// @notice EIP-712 type string and hashing of `Transaction`.
library TransactionHashing {
    bytes32 internal constant TRANSACTION_TYPEHASH = keccak256(
        "Transaction(bytes32 channelId,uint64 forkCnt,uint64 height,address participant,uint64 timestamp,bytes32 prevStateHash,bytes32 stateHash,bytes data)"
    );

    /// @notice EIP-712 `hashStruct(transaction)` of a transaction in calldata (no copy of the struct).
    function hashCalldata(Transaction calldata t) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                TRANSACTION_TYPEHASH,
                t.channelId,
                t.forkCnt,
                t.height,
                t.participant,
                t.timestamp,
                t.prevStateHash,
                t.stateHash,
                keccak256(t.data)
            )
        );
    }

    /// @notice EIP-712 `hashStruct(transaction)`.
    function hashStruct(Transaction memory t) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                TRANSACTION_TYPEHASH,
                t.channelId,
                t.forkCnt,
                t.height,
                t.participant,
                t.timestamp,
                t.prevStateHash,
                t.stateHash,
                keccak256(t.data)
            )
        );
    }
}

/// @notice What one participant takes out of a channel: paid by the manager at close, or at once when a
/// participant leaves, is removed or is slashed.
struct Exit {
    address participant;
    uint256 amount;
}

/// @notice The current participants' approval (EIP-712 struct `JoinApproval`) for `participant` to join
/// with `amount`, applied to the state `stateHash` at `height` of fork `forkCnt`, before `deadline`.
struct JoinApproval {
    bytes32 channelId;
    uint64 forkCnt;
    uint64 height;
    bytes32 stateHash;
    address participant;
    uint256 amount;
    bytes data;
    uint64 deadline;
}

/// @notice All participants' approval (EIP-712 struct `LeaveApproval`) for `participant` to leave with its
/// share of the state `stateHash` at `height` of fork `forkCnt`, before `deadline`.
struct LeaveApproval {
    bytes32 channelId;
    uint64 forkCnt;
    uint64 height;
    bytes32 stateHash;
    address participant;
    uint64 deadline;
}

/// @notice EIP-712 type strings and hashing of the membership approvals.
library ApprovalHashing {
    bytes32 internal constant JOIN_APPROVAL_TYPEHASH = keccak256(
        "JoinApproval(bytes32 channelId,uint64 forkCnt,uint64 height,bytes32 stateHash,address participant,uint256 amount,bytes data,uint64 deadline)"
    );
    bytes32 internal constant LEAVE_APPROVAL_TYPEHASH = keccak256(
        "LeaveApproval(bytes32 channelId,uint64 forkCnt,uint64 height,bytes32 stateHash,address participant,uint64 deadline)"
    );

    function hashStruct(JoinApproval memory a) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                JOIN_APPROVAL_TYPEHASH,
                a.channelId,
                a.forkCnt,
                a.height,
                a.stateHash,
                a.participant,
                a.amount,
                keccak256(a.data),
                a.deadline
            )
        );
    }

    function hashStruct(LeaveApproval memory a) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                LEAVE_APPROVAL_TYPEHASH,
                a.channelId,
                a.forkCnt,
                a.height,
                a.stateHash,
                a.participant,
                a.deadline
            )
        );
    }
}

/// @notice Everything fixed when a channel is opened. `channelId = keccak256(abi.encode(block.chainid,
/// manager, spec, keccak256(genesisState)))`.
struct ChannelSpec {
    /// Participants in signing order (signature i must be by participant i).
    address[] participants;
    /// Deposit each participant locks (aligned with `participants`).
    uint256[] deposits;
    /// The deployed state machine (extends AStateMachine).
    address stateMachine;
    /// The channel's asset: address(0) for ETH, otherwise an ERC20.
    address token;
    /// Seconds a writer has to produce and broadcast its transaction.
    uint64 p2pTime;
    /// Seconds allowed for agreement (network delay, execution, clock skew).
    uint64 agreementTime;
    /// Seconds a writer refused off-chain has to post its transaction as calldata.
    uint64 chainFallbackTime;
    /// Seconds a dispute stays open to challenges.
    uint64 challengeTime;
    /// Seconds after `open` within which every participant must deposit.
    uint64 fundingPeriod;
    /// Gas given to each call of the state machine in disputes (and the bound every move must respect).
    uint64 machineGasLimit;
    /// Free value distinguishing channels with the same parameters.
    bytes32 salt;
}

/// @notice How a `StateProof` proves its state is part of the current fork (docs/security.md, R1).
enum ProofKind {
    /// The state is the current fork's genesis (final without signatures). Where a proof stands for the
    /// latest state (`latest` of a dispute), the state must be the fork's head.
    Genesis,
    /// `transaction` produced the state and carries the signatures of all current participants.
    Signed,
    /// The state is the fork's head, which the chain itself computed (a posted transaction it executed);
    /// `transaction` is ignored, the state must hash to the head.
    Posted
}

/// @notice A state of the current fork with the evidence that it exists.
struct StateProof {
    ProofKind kind;
    /// Ignored for `Genesis`.
    Transaction transaction;
    /// For `Signed`: one 65-byte signature per current participant, in participant order. Else empty.
    bytes[] signatures;
    /// The encoded state (`keccak256(state)` is the proven state hash).
    bytes state;
}

/// @notice What a dispute asks the chain to do.
enum DisputeKind {
    None,
    /// The next writer missed its deadline: remove it.
    Timeout,
    /// A participant forces its exit (or settlement of a finished game) through the chain.
    Exit,
    /// A participant signed two different transactions at one fork and height: slash it.
    DoubleSign,
    /// A transaction does not follow from its (proven) previous state: slash its issuer.
    InvalidTransition,
    /// A transaction's timestamp is lower than its parent's: slash its issuer.
    TimestampOutOfOrder,
    /// A transaction's timestamp lies more than `agreementTime` after chain time: slash its issuer.
    TimestampInFuture,
    /// A transaction builds on another state than the final one at its parent height (a fork's genesis
    /// or an N-signed state): slash its issuer.
    WrongParent,
    /// No longer used: a fraud proof whose claim does not hold reverts (`ClaimDoesNotHold`).
    FalseFraudProof,
    /// All participants approved `target`'s leave: it is removed at the head after the challenge period,
    /// unless a later N-signed state shows the approval was stale.
    Leave
}

/// @notice A running dispute. The manager stores only `keccak256(abi.encode(record))`; the record is in
/// the `DisputeStarted` / `DisputeChallenged` events and is passed back to `challenge` and `finalizeDispute`.
struct DisputeRecord {
    DisputeKind kind;
    /// A Timeout or Exit dispute was defeated: `target` is now its submitter, slashed.
    bool challenged;
    /// At finalization `target` is slashed (true) or removed (false).
    bool slash;
    address submitter;
    /// Who the finalization removes or slashes (address(0): nobody).
    address target;
    uint64 forkCnt;
    /// Height and hash of the state the finalization enforces.
    uint64 height;
    bytes32 stateHash;
    /// Timeout only: the accused writer's deadline (the head's `since` plus the three windows).
    uint64 writerDeadline;
    /// End of the challenge period.
    uint64 deadline;
}

/// @notice Two different transactions of one channel at the same fork and height, each with a signature
/// by the same participant (as issuer or confirmer).
struct DoubleSignProof {
    Transaction a;
    bytes sigA;
    Transaction b;
    bytes sigB;
}

/// @notice Life cycle of a channel in the manager.
enum ChannelStatus {
    None,
    Funding,
    Open,
    Disputed,
    Closed,
    Cancelled
}

/// @notice A channel as the manager stores it: ten slots, packed so that each hot path reads few of them
/// (deposit: 0 and 1; the N-of-N check reads slot 5 instead of N member slots; the head: 7 and 8).
struct Channel {
    // slot 0: read by every entry point
    ChannelStatus status;
    uint8 participantCount;
    uint8 fundedCount;
    /// The running dispute ends in a slash: a fraud dispute, or a Timeout/Exit dispute defeated by a
    /// challenge. It must be finalized: neither a new fraud proof nor `close` can replace it.
    bool fraudDispute;
    /// While Funding: the funding deadline. Afterwards: the current fork's genesis timestamp.
    uint64 timestamp;
    uint64 forkCnt;
    uint64 genesisHeight;
    uint32 machineGasLimit;
    // slot 1
    address token;
    /// What the channel holds (deposits while Funding; the locked total while live; the unclaimed
    /// rest once Closed or Cancelled). At most 128 deposits below 2^88 each fit 96 bits; a join that
    /// would overflow it reverts.
    uint96 locked;
    // slot 2
    address stateMachine;
    uint64 challengeTime;
    // slot 3
    uint64 p2pTime;
    uint64 agreementTime;
    uint64 chainFallbackTime;
    // slot 4
    bytes32 genesisStateHash;
    /// slot 5: keccak256 of the current participants in signing order, each as a 32-byte word
    /// (`keccak256(abi.encodePacked(participants))`).
    bytes32 participantsHash;
    /// slot 6: the running dispute's record hash while Disputed; the exits hash once Closed.
    bytes32 commitment;
    // slot 7: the head of the current fork (docs/security.md, R2): the latest state the chain can prove.
    uint64 headHeight;
    /// The timestamp of the head's transaction (the genesis time for a genesis).
    uint64 headTimestamp;
    /// When the next writer's window starts: the genesis time, an N-signed transaction's timestamp, or
    /// `max(timestamp, post time)` for a posted transaction.
    uint64 headSince;
    /// A timeout dispute runs: posts are refused (the accused missed its window).
    bool timeoutDispute;
    /// slot 8: keccak256 of the head state.
    bytes32 headStateHash;
    // slot 9
    /// Height of the latest state the chain took as final: the fork's genesis, an N-signed state or an
    /// agreed approval. Above it, the head's history is made of posts (the head came from a post iff
    /// `headHeight > anchorHeight`), which an N-signed state that conflicts with them replaces
    /// (docs/security.md, R2).
    uint64 anchorHeight;
}
