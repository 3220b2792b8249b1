// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AChannelCore} from "./AChannelCore.sol";
import {
    Transaction,
    Exit,
    StateProof,
    ProofKind,
    DisputeKind,
    DisputeRecord,
    Channel,
    ChannelStatus
} from "../ChannelTypes.sol";
import {IStateMachine} from "../interfaces/IStateMachine.sol";

/// @title ADisputeManager
/// @notice The court: the head of each fork, calldata posts (executed and linked to the head),
/// checkpoints, timeout disputes, challenges and finalization. At most one dispute runs per channel; it is
/// stored as the hash of its `DisputeRecord`, which callers pass back. The rules and why they hold against
/// N-1 colluding participants are in docs/security.md (R1-R12).
/// @dev Dispute state machine (per channel):
///   Open --disputeTimeout/requestExit/prove*/leaveChannel--> Disputed
///   Disputed --challenge (an N-signed state above the head)--> Disputed (head moved; a Timeout or Exit is
///     defeated and its submitter slashed, a Leave is cancelled; challenge period restarted)
///   Disputed --prove* (only while the running dispute is not a slash)--> Disputed (fraud replaces it)
///   Disputed --finalizeDispute (after the challenge period)--> Open (new fork, SetState) or Closed
///   Open|Disputed --close (N-signed final state, not during a slash)--> Closed
/// `challenge` and `finalizeDispute` are in `VerdictExtension` (run by `delegatecall`, for the size limit).
abstract contract ADisputeManager is AChannelCore {
    // ------------------------------------------------------------------ calldata and the head

    /// @notice Posts an issuer-signed transaction of the current fork as calldata (R3). `parent` is the head
    /// (`Genesis`/`Posted`: its state), or an N-signed state that first becomes the head (a checkpoint in the
    /// same call). The chain checks that `transaction` links to the head (next height, builds on its state),
    /// that its timestamp is not below the head's nor above chain time plus `agreementTime`,
    /// and runs it in the channel's machine instance: the machine's write rule and the move must accept it
    /// and give exactly `transaction.stateHash`, whose exits conserve value. The posted state becomes the
    /// head; the next writer's window starts at `max(timestamp, now)`. Anyone may post it; refused while a
    /// timeout dispute runs, once an intent the court holds is due (`forceIntent` first), and with a
    /// timestamp that would expire one.
    function postCalldata(
        Transaction calldata transaction,
        bytes calldata signature,
        StateProof calldata parent
    ) external nonReentrant {
        bytes32 channelId = transaction.channelId;
        Channel storage ch = _channel(channelId);
        _requireLive(channelId, ch);
        if (ch.timeoutDispute) revert DisputeActive(channelId);
        _checkCurrentFork(channelId, ch, transaction);
        _moveHead(channelId, ch, parent);
        bytes32 digest = _checkPost(ch, transaction, signature);
        _checkOpenPost(channelId, ch, transaction, parent.state);
        (bool ok, bytes32 resultHash) = _execute(channelId, ch, parent.state, transaction);
        if (!ok || resultHash != transaction.stateHash) {
            revert InvalidTransition(transaction.stateHash, resultHash);
        }
        _checkConserved(ch, _instanceExits(channelId, ch));
        uint64 nowTs = uint64(block.timestamp);
        if (_postedAt[digest] == 0) _postedAt[digest] = nowTs;
        _postedState[_postKey(channelId, transaction.forkCnt, transaction.height)] = resultHash;
        uint64 ts = transaction.timestamp;
        _setHead(ch, transaction.height, resultHash, ts, ts > nowTs ? ts : nowTs, true);
        emit CalldataPosted(channelId, transaction.forkCnt, transaction.height, transaction, signature);
    }

    /// @dev The checks of `postCalldata` before execution; returns the transaction's digest.
    function _checkPost(Channel storage ch, Transaction calldata transaction, bytes calldata signature)
        private
        view
        returns (bytes32 digest)
    {
        uint64 headHeight = ch.headHeight;
        if (transaction.height != headHeight + 1) revert WrongHeight(headHeight + 1, transaction.height);
        if (transaction.prevStateHash != _headHash(ch)) revert NotASuccessor();
        digest = transactionDigest(transaction);
        address signer = _recover(digest, signature, 0);
        if (signer != transaction.participant) revert SignerMismatch(transaction.participant, signer);
        uint64 ts = transaction.timestamp;
        uint64 latestOk = uint64(block.timestamp) + ch.agreementTime;
        if (ts < _headTimestamp(ch) || ts > latestOk) revert BadTimestamp(ts, _headTimestamp(ch), latestOk);
    }

    /// @notice Moves the head up to an N-signed state (R2): a later state than the head, or one at its
    /// height replacing a posted head. Only while no dispute runs (during a dispute, `challenge`).
    function checkpoint(bytes32 channelId, StateProof calldata proof) external nonReentrant {
        Channel storage ch = _channel(channelId);
        _requireOpenNoDispute(channelId, ch);
        if (proof.kind != ProofKind.Signed) revert ProofKindNotAllowed(proof.kind);
        Proven memory pr = _proveState(channelId, ch, proof);
        if (pr.height == ch.headHeight && pr.stateHash == _headHash(ch)) revert NotAChallenge();
        _checkpoint(channelId, ch, pr, proof.state);
    }

    // ------------------------------------------------------------------ disputes

    /// @notice Accuses the head's next writer of missing its deadline (`since` of the head plus
    /// `p2pTime + agreementTime + chainFallbackTime`, R4, R5). `latest` is the head, or an N-signed state
    /// that becomes it. While the dispute runs, posts are refused. After the challenge period the accused is
    /// removed (remove hook). Answered with an N-signed state above the head, the caller is slashed instead.
    function disputeTimeout(bytes32 channelId, StateProof calldata latest) external nonReentrant {
        Channel storage ch = _channel(channelId);
        _requireOpenNoDispute(channelId, ch);
        _requireMember(channelId, ch, msg.sender);
        _moveHead(channelId, ch, latest);
        address accused = _machine(ch).nextToWriteOf{gas: ch.machineGasLimit}(latest.state);
        if (accused == address(0)) revert NoWriterExpected();
        if (accused == msg.sender) revert CannotAccuseSelf();
        uint64 writerDeadline = _writerDeadline(ch);
        if (block.timestamp <= writerDeadline) revert TooEarly(uint256(writerDeadline) + 1);
        DisputeRecord memory d;
        d.kind = DisputeKind.Timeout;
        d.submitter = msg.sender;
        d.target = accused;
        d.writerDeadline = writerDeadline;
        _startDispute(channelId, ch, d, latest.state);
    }

    // ------------------------------------------------------------------ internals
}
