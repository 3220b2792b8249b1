// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AChannelCore} from "./AChannelCore.sol";
import {
    Transaction,
    StateProof,
    ProofKind,
    DisputeKind,
    DisputeRecord,
    DoubleSignProof,
    JoinApproval,
    LeaveApproval,
    ApprovalHashing,
    Exit,
    Channel,
    ChannelStatus
} from "../ChannelTypes.sol";
import {IStateMachine} from "../interfaces/IStateMachine.sol";

/// @title ChannelExtension
/// @notice Less frequent entry points of the StateChannelManager (cancelled funding, fraud proofs, forced exit,
/// join, leave);
/// challenges and verdicts are in `VerdictExtension`. The manager
/// deploys it in its constructor and forwards every selector it does not know to it with `delegatecall`,
/// so it runs on the manager's storage, balance and address (EIP-170 caps a contract at 24,576 bytes).
/// Call these functions on the manager (ABI: `IStateChannelManager`), never on this contract.
contract ChannelExtension is AChannelCore {
    /// @notice Called directly instead of through the manager.
    error OnlyThroughManager();

    address private immutable _self = address(this);

    /// @dev Entry points run only by `delegatecall` from the manager.
    modifier onlyDelegated() {
        if (address(this) == _self) revert OnlyThroughManager();
        _;
    }

    // ------------------------------------------------------------------ fraud proofs

    /// @notice The EIP-712 digest of a join approval.
    function joinApprovalDigest(JoinApproval calldata approval) external view returns (bytes32) {
        return _hashTypedDataV4(ApprovalHashing.hashStruct(approval));
    }

    /// @notice The EIP-712 digest of a leave approval.
    function leaveApprovalDigest(LeaveApproval calldata approval) external view returns (bytes32) {
        return _hashTypedDataV4(ApprovalHashing.hashStruct(approval));
    }

    // ------------------------------------------------------------------ cancelled funding

    /// @notice Cancels a channel whose funding deadline passed without all deposits.
    function cancelFunding(bytes32 channelId) external onlyDelegated {
        Channel storage ch = _channel(channelId);
        _requireStatus(channelId, ch, ChannelStatus.Funding);
        if (block.timestamp <= ch.timestamp) revert TooEarly(uint256(ch.timestamp) + 1);
        ch.status = ChannelStatus.Cancelled;
        emit FundingCancelled(channelId);
    }

    /// @notice Pays back participant `index`'s deposit of a cancelled channel (to that participant).
    function reclaimDeposit(bytes32 channelId, uint256 index) external onlyDelegated nonReentrant {
        Channel storage ch = _channel(channelId);
        _requireStatus(channelId, ch, ChannelStatus.Cancelled);
        if (index >= ch.participantCount) revert IndexOutOfRange(index);
        Member storage m = _members[channelId][index];
        uint256 amount = m.deposit;
        if (!m.funded || amount == 0) revert NotFunded(index);
        m.funded = false;
        ch.locked -= uint96(amount);
        address to = m.addr;
        emit DepositReclaimed(channelId, to, amount);
        _pay(ch.token, to, amount);
    }

    // ------------------------------------------------------------------ forced exit

    /// @notice Forces the caller's exit through the chain (R6). `latest` is the head, or an N-signed state
    /// that becomes it. Posts continue while it runs. After the challenge period the caller is removed at
    /// the head (remove hook) and takes its exit, or, if the head is final, the channel settles. Answered
    /// with an N-signed state above the head, the caller is slashed instead.
    function requestExit(bytes32 channelId, StateProof calldata latest) external onlyDelegated nonReentrant {
        Channel storage ch = _channel(channelId);
        _requireOpenNoDispute(channelId, ch);
        _requireMember(channelId, ch, msg.sender);
        _moveHead(channelId, ch, latest);
        DisputeRecord memory d;
        d.kind = DisputeKind.Exit;
        d.submitter = msg.sender;
        d.target = msg.sender;
        _startDispute(channelId, ch, d, latest.state);
    }

    // ------------------------------------------------------------------ fraud proofs

    /// @notice Proves that one participant signed two different transactions of this channel at the same
    /// fork and height (as issuer or as confirmer; any fork up to the current one). The signer is slashed
    /// at the head after the challenge period; `latest` is the head, or an N-signed state that becomes it.
    function proveDoubleSign(bytes32 channelId, StateProof calldata latest, DoubleSignProof calldata proof)
        external
        onlyDelegated
        nonReentrant
    {
        Channel storage ch = _channel(channelId);
        _requireFraudAllowed(channelId, ch);
        address signer = _doubleSigner(channelId, ch, proof);
        _moveHead(channelId, ch, latest);
        _startFraud(channelId, ch, DisputeKind.DoubleSign, signer, latest.state);
    }

    /// @dev The participant that signed both `a` and `b` (two different transactions at one height).
    function _doubleSigner(bytes32 channelId, Channel storage ch, DoubleSignProof calldata proof)
        internal
        view
        returns (address signer)
    {
        Transaction calldata a = proof.a;
        Transaction calldata b = proof.b;
        if (a.channelId != channelId) revert WrongChannel(channelId, a.channelId);
        if (b.channelId != channelId) revert WrongChannel(channelId, b.channelId);
        if (a.forkCnt != b.forkCnt || a.forkCnt > ch.forkCnt) revert WrongFork(a.forkCnt, b.forkCnt);
        if (a.height != b.height) revert WrongHeight(a.height, b.height);
        bytes32 da = transactionDigest(a);
        bytes32 db = transactionDigest(b);
        if (da == db) revert NotADoubleSign();
        signer = _recover(da, proof.sigA, 0);
        address other = _recover(db, proof.sigB, 1);
        if (signer != other) revert SignerMismatch(signer, other);
        _requireMember(channelId, ch, signer);
    }

    /// @notice Proves that `t` (signed by its issuer, a participant; at height `prev.height + 1` of the
    /// current fork) breaks a rule, `kind` telling which (R7):
    ///  - `InvalidTransition`: `t` builds on `prev` but the chain, loading `prev.state` into the channel's
    ///    machine instance and applying `t` with the channel's gas limit, gets a revert or another state;
    ///  - `TimestampOutOfOrder`: `t` builds on `prev` and `t.timestamp` is lower than `prev`'s timestamp
    ///    (its transaction's, or the fork's genesis timestamp, or the head's);
    ///  - `WrongParent`: `prev` is final (the fork's genesis, or N-signed) and `t.prevStateHash` is not its
    ///    hash.
    /// `prev` is any provable state: the fork's genesis, an N-signed state, or the head (`Posted`). The
    /// claim is judged at once: if it holds, a slash dispute against `t`'s issuer starts at the head (moved
    /// up by `prev` if `prev` is N-signed and above it); if it does not hold the call reverts
    /// (`ClaimDoesNotHold`). `TimestampInFuture` is refused (`NotAFraudKind`): the chain judges a future
    /// stamp when it first sees the transaction (`postCalldata`).
    function proveFraud(
        bytes32 channelId,
        DisputeKind kind,
        StateProof calldata prev,
        Transaction calldata t,
        bytes calldata sig
    ) external onlyDelegated nonReentrant {
        Channel storage ch = _channel(channelId);
        _requireFraudAllowed(channelId, ch);
        _requireMember(channelId, ch, msg.sender);
        if (
            kind != DisputeKind.InvalidTransition && kind != DisputeKind.TimestampOutOfOrder
                && kind != DisputeKind.WrongParent
        ) revert NotAFraudKind(kind);
        Proven memory pr = _proveState(channelId, ch, prev);
        _checkCurrentFork(channelId, ch, t);
        if (t.height != pr.height + 1) revert WrongHeight(pr.height + 1, t.height);
        bytes32 digest = transactionDigest(t);
        address issuer = _recover(digest, sig, 0);
        if (issuer != t.participant) revert SignerMismatch(t.participant, issuer);
        _requireMember(channelId, ch, issuer);
        bool holds;
        if (kind == DisputeKind.WrongParent) {
            if (prev.kind == ProofKind.Posted) revert ProofKindNotAllowed(prev.kind);
            holds = t.prevStateHash != pr.stateHash;
        } else {
            if (t.prevStateHash != pr.stateHash) revert NotASuccessor();
            if (kind == DisputeKind.InvalidTransition) {
                (bool ok, bytes32 resultHash) = _execute(channelId, ch, prev.state, t);
                holds = !ok || resultHash != t.stateHash;
            } else {
                holds = t.timestamp < pr.timestamp;
            }
        }
        if (!holds) revert ClaimDoesNotHold(kind);
        if (
            prev.kind == ProofKind.Signed && pr.stateHash != _headHash(ch)
                && _canCheckpoint(channelId, ch, pr)
        ) {
            _checkpoint(channelId, ch, pr, prev.state);
        }
        // The verdict is carried out at the head; the event carries the head state when the caller supplied
        // it (`prev` is the head), else nothing (the record's `stateHash` names it).
        _startFraud(channelId, ch, kind, issuer, pr.stateHash == _headHash(ch) ? prev.state : msg.data[0:0]);
    }

    // ------------------------------------------------------------------ join and leave

    /// @notice Joins a live channel: the caller (`approval.participant`) pays `approval.amount`; every
    /// current participant signed `approval`. The approval must be bound to the latest state (R11): at or
    /// above the head (at its height, the head's state), before its deadline, with no dispute running. The
    /// machine's join hook runs on the approved state in the channel's instance and the result starts a new
    /// fork (`SetState`).
    function joinChannel(JoinApproval calldata approval, bytes calldata state, bytes[] calldata signatures)
        external
        payable
        onlyDelegated
        nonReentrant
    {
        bytes32 channelId = approval.channelId;
        Channel storage ch = _channel(channelId);
        _checkApproval(
            channelId, ch, approval.forkCnt, approval.height, approval.stateHash, approval.deadline, state
        );
        if (msg.sender != approval.participant) revert NotJoiner(approval.participant, msg.sender);
        if (_isMember(channelId, ch, msg.sender)) revert AlreadyParticipant(msg.sender);
        if (ch.participantCount >= MAX_PARTICIPANTS) revert InvalidSpec("too many participants");
        if (approval.amount == 0 || approval.amount > type(uint88).max) revert InvalidSpec("deposit");
        _verifyAll(channelId, ch, _hashTypedDataV4(ApprovalHashing.hashStruct(approval)), signatures);
        _checkConserved(ch, _exitsOfState(ch, state));

        ch.locked += uint96(approval.amount);
        _collect(ch.token, approval.amount);
        IStateMachine m = _instance(channelId, ch);
        uint256 g = ch.machineGasLimit;
        _requireGas(g);
        m.setState{gas: g}(state);
        _requireGas(g);
        Exit[] memory exits = m.joinParticipant{gas: g}(msg.sender, approval.amount, approval.data);
        _creditExits(channelId, ch, exits);
        emit ParticipantJoined(channelId, msg.sender, approval.amount);
        _requireGas(g);
        _startForkOrClose(channelId, ch, m.getState{gas: g}(), approval.height);
    }

    /// @notice Starts an agreed leave: every current participant (the leaver included) signed `approval`,
    /// which must be bound to the latest state (R11) and becomes the head. After the challenge period the
    /// leaver is removed at the head (remove hook, its exit credited) and a new fork starts (or the channel
    /// settles if fewer than two participants remain). An N-signed state above the approval cancels it.
    /// Anyone may submit.
    function leaveChannel(LeaveApproval calldata approval, bytes calldata state, bytes[] calldata signatures)
        external
        onlyDelegated
        nonReentrant
    {
        bytes32 channelId = approval.channelId;
        Channel storage ch = _channel(channelId);
        _checkApproval(
            channelId, ch, approval.forkCnt, approval.height, approval.stateHash, approval.deadline, state
        );
        _requireMember(channelId, ch, approval.participant);
        _verifyAll(channelId, ch, _hashTypedDataV4(ApprovalHashing.hashStruct(approval)), signatures);
        if (approval.height > ch.headHeight) {
            _checkConserved(ch, _exitsOfState(ch, state));
            uint64 nowTs = uint64(block.timestamp);
            _setHead(ch, approval.height, approval.stateHash, nowTs, nowTs, false);
            emit Checkpointed(channelId, ch.forkCnt, approval.height, approval.stateHash);
        }
        DisputeRecord memory d;
        d.kind = DisputeKind.Leave;
        d.submitter = msg.sender;
        d.target = approval.participant;
        _startDispute(channelId, ch, d, state);
    }

    // ------------------------------------------------------------------ internals

    /// @dev Fraud proofs are accepted while Open, or while the running dispute is not a slash (the fraud
    /// dispute replaces it).
    function _requireFraudAllowed(bytes32 channelId, Channel storage ch) internal view {
        if (ch.status == ChannelStatus.Disputed) {
            if (ch.fraudDispute) revert DisputeActive(channelId);
            return;
        }
        _requireStatus(channelId, ch, ChannelStatus.Open);
    }

    function _startFraud(
        bytes32 channelId,
        Channel storage ch,
        DisputeKind kind,
        address target,
        bytes calldata state
    ) internal {
        DisputeRecord memory d;
        d.kind = kind;
        d.slash = true;
        d.submitter = msg.sender;
        d.target = target;
        _startDispute(channelId, ch, d, state);
    }

    /// @dev An approval of the current fork bound to the latest state: at or above the head (at the head's
    /// height, the head's state), before its deadline, with no dispute running.
    function _checkApproval(
        bytes32 channelId,
        Channel storage ch,
        uint64 forkCnt,
        uint64 height,
        bytes32 stateHash,
        uint64 deadline,
        bytes calldata state
    ) private view {
        _requireOpenNoDispute(channelId, ch);
        if (forkCnt != ch.forkCnt) revert WrongFork(ch.forkCnt, forkCnt);
        uint64 headHeight = ch.headHeight;
        if (height < headHeight || (height == headHeight && stateHash != _headHash(ch))) {
            revert StaleProof(headHeight, stateHash);
        }
        if (block.timestamp > deadline) revert TooLate(deadline);
        bytes32 h = keccak256(state);
        if (h != stateHash) revert StateHashMismatch(stateHash, h);
    }
}
