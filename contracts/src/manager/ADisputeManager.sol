// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AChannelCore} from "./AChannelCore.sol";
import {
    Transaction,
    StateProof,
    ProofKind,
    DisputeKind,
    DisputeRecord,
    Channel,
    ChannelStatus
} from "../ChannelTypes.sol";
import {IStateMachine} from "../interfaces/IStateMachine.sol";

/// @title ADisputeManager
/// @notice The court: calldata posts (data availability), timeout disputes, forced exits, fraud proofs,
/// challenges and finalization. At most one dispute runs per channel; it is stored as the hash of its
/// `DisputeRecord`, which callers pass back.
/// @dev Dispute state machine (per channel):
///   Open --disputeTimeout/requestExit/prove*--> Disputed
///   Disputed --challenge (later N-signed state, or the accused's timely calldata)--> Disputed (record
///     updated, challenge period restarted)
///   Disputed --prove* (only while the running dispute is a Timeout or Exit)--> Disputed (fraud replaces it)
///   Disputed --finalizeDispute (after the challenge period)--> Open (new fork, SetState) or Closed
///   Open|Disputed --close (N-signed final state)--> Closed
abstract contract ADisputeManager is AChannelCore {
    // ------------------------------------------------------------------ calldata

    /// @notice Posts an issuer-signed transaction of the current fork as calldata. The chain records the
    /// time of the post (`postedAt`), which defeats a timeout dispute if it is within the writer's
    /// deadline, and makes the transaction usable as a `Posted` state proof. Anyone may post it.
    function postCalldata(Transaction calldata transaction, bytes calldata signature) external {
        bytes32 channelId = transaction.channelId;
        Channel storage ch = _channel(channelId);
        _requireLive(channelId, ch);
        _checkCurrentFork(channelId, ch, transaction);
        bytes32 digest = transactionDigest(transaction);
        address signer = _recover(digest, signature, 0);
        if (signer != transaction.participant) revert SignerMismatch(transaction.participant, signer);
        _requireMember(channelId, ch, signer);
        if (_postedAt[digest] != 0) revert AlreadyPosted(digest);
        uint64 nowTs = uint64(block.timestamp);
        _postedAt[digest] = nowTs;
        _emitPosted(channelId, transaction.forkCnt, transaction.height, transaction.data.length);
    }

    /// @dev Emits `CalldataPosted(channelId, forkCnt, height, transaction, signature)` with the call's own
    /// arguments (`msg.data[4:]`, the ABI encoding of `(Transaction, bytes)`) as the log data: the same
    /// bytes the event's ABI encoding would produce, without re-encoding the struct in memory. Only the
    /// canonical encoding is accepted (offsets, length, zero padding), so every ABI decoder, strict or
    /// lenient, reads from the log exactly the transaction the manager checked. The signature is 65 bytes
    /// (`_recover` refused any other length).
    function _emitPosted(bytes32 channelId, uint64 forkCnt, uint64 height, uint256 dataLen) private {
        bool bad;
        assembly ("memory-safe") {
            let padded := and(add(dataLen, 31), not(31))
            // Arguments (after the selector): [0x40][sigOffset], the transaction tuple at 0x40 (seven
            // words, the data offset 0x100, the data length, the data padded), the signature at sigOffset
            // (length 65, 96 bytes).
            let sigOffset := add(0x160, padded)
            bad := or(iszero(eq(calldataload(0x04), 0x40)), iszero(eq(calldataload(0x24), sigOffset)))
            bad := or(bad, iszero(eq(calldataload(0x124), 0x100)))
            bad := or(bad, iszero(eq(calldatasize(), add(sigOffset, 0x84))))
            // Zero padding after the data and after the signature's 65 bytes.
            let k := sub(padded, dataLen)
            if k {
                bad := or(bad, iszero(iszero(shl(sub(256, shl(3, k)), calldataload(add(0x144, padded))))))
            }
            bad := or(bad, iszero(iszero(shl(8, calldataload(add(sigOffset, 0x64))))))
        }
        if (bad) revert NonCanonicalEncoding();
        bytes32 topic = CalldataPosted.selector;
        assembly ("memory-safe") {
            let len := sub(calldatasize(), 4)
            let ptr := mload(0x40)
            calldatacopy(ptr, 4, len)
            log4(ptr, len, topic, channelId, forkCnt, height)
        }
    }

    // ------------------------------------------------------------------ disputes

    /// @notice Accuses the next writer after `latest` of missing its deadline
    /// `ts(latest) + p2pTime + agreementTime + chainFallbackTime`. After the challenge period the accused is
    /// removed (remove hook). If it is answered with a later N-signed state or the accused's calldata post
    /// within its deadline, the caller is slashed instead.
    function disputeTimeout(bytes32 channelId, StateProof calldata latest) external nonReentrant {
        Channel storage ch = _channel(channelId);
        _requireOpenNoDispute(channelId, ch);
        _requireMember(channelId, ch, msg.sender);
        Proven memory pr = _proveState(channelId, ch, latest);
        address accused = _machine(ch).nextToWriteOf{gas: ch.machineGasLimit}(latest.state);
        if (accused == address(0)) revert NoWriterExpected();
        if (accused == msg.sender) revert CannotAccuseSelf();
        uint64 writerDeadline = pr.timestamp + ch.p2pTime + ch.agreementTime + ch.chainFallbackTime;
        if (block.timestamp <= writerDeadline) revert TooEarly(uint256(writerDeadline) + 1);
        DisputeRecord memory d = DisputeRecord({
            kind: DisputeKind.Timeout,
            challenged: false,
            slash: false,
            submitter: msg.sender,
            target: accused,
            forkCnt: ch.forkCnt,
            height: pr.height,
            stateHash: pr.stateHash,
            writerDeadline: writerDeadline,
            deadline: 0
        });
        _startDispute(channelId, ch, d, latest.state);
    }

    // ------------------------------------------------------------------ challenge and finalize

    /// @notice Answers the running dispute `d` before its deadline with `proof`:
    ///  - a Signed state of the current fork higher than `d.height`: it becomes the enforced state; a
    ///    Timeout or Exit dispute is thereby defeated and its submitter is slashed instead;
    ///  - for a Timeout dispute, the accused's Posted transaction at `d.height + 1` built on the disputed
    ///    state and posted at or before its deadline: the accuser is slashed, the posted state enforced.
    /// The challenge period restarts.
    function challenge(bytes32 channelId, DisputeRecord calldata d, StateProof calldata proof)
        external
        nonReentrant
    {
        Channel storage ch = _channel(channelId);
        _requireDispute(channelId, ch, d);
        if (block.timestamp > d.deadline) revert TooLate(d.deadline);
        if (proof.kind == ProofKind.Genesis) revert ProofKindNotAllowed(proof.kind);
        Proven memory pr = _proveState(channelId, ch, proof);
        DisputeRecord memory next = d;
        bool defeats = (d.kind == DisputeKind.Timeout || d.kind == DisputeKind.Exit) && !d.challenged;
        if (proof.kind == ProofKind.Signed) {
            if (pr.height <= d.height) revert NotAChallenge();
        } else {
            Transaction calldata t = proof.transaction;
            if (
                d.kind != DisputeKind.Timeout || d.challenged || t.participant != d.target
                    || pr.height != d.height + 1 || t.prevStateHash != d.stateHash
                    || _postedAt[transactionDigest(t)] > d.writerDeadline
            ) revert NotAChallenge();
        }
        if (defeats) {
            next.challenged = true;
            next.slash = true;
            next.target = d.submitter;
            // The verdict is now a slash: it can be neither replaced nor closed over.
            ch.fraudDispute = true;
        }
        next.height = pr.height;
        next.stateHash = pr.stateHash;
        next.deadline = uint64(block.timestamp) + ch.challengeTime;
        ch.commitment = keccak256(abi.encode(next));
        emit DisputeChallenged(channelId, msg.sender, next, proof.state);
    }

    /// @notice Carries out dispute `d` after its challenge period: applies the hook to `d.target` (remove
    /// or slash) on `state` (hash `d.stateHash`), pays the hook's exits to the pending ledger, and starts a
    /// new fork from the result (`SetState`), or settles the channel if the result is final or fewer than
    /// two participants remain. Anyone may call it.
    function finalizeDispute(bytes32 channelId, DisputeRecord calldata d, bytes calldata state)
        external
        nonReentrant
    {
        Channel storage ch = _channel(channelId);
        _requireDispute(channelId, ch, d);
        if (block.timestamp <= d.deadline) revert TooEarly(uint256(d.deadline) + 1);
        bytes32 h = keccak256(state);
        if (h != d.stateHash) revert StateHashMismatch(d.stateHash, h);
        bytes memory result = state;
        bool applyHook = d.target != address(0);
        if (d.kind == DisputeKind.Exit && !d.challenged) {
            // A finished game settles for everyone; nobody needs removing.
            applyHook = !_machine(ch).isGameOverOf{gas: ch.machineGasLimit}(state);
        }
        emit DisputeFinalized(channelId, d);
        if (applyHook) result = _applyHook(channelId, ch, state, d.target, d.slash);
        _startForkOrClose(channelId, ch, result, d.height);
    }

    // ------------------------------------------------------------------ internals

    function _requireDispute(bytes32 channelId, Channel storage ch, DisputeRecord calldata d) internal view {
        _requireStatus(channelId, ch, ChannelStatus.Disputed);
        if (keccak256(abi.encode(d)) != ch.commitment) revert DisputeMismatch();
    }
}
