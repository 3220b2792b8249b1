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
/// @notice The less frequent half of the StateChannelManager (fraud proofs, join, leave). The manager
/// deploys it in its constructor and forwards every selector it does not know to it with `delegatecall`,
/// so it runs on the manager's storage, balance and address (EIP-170 caps a contract at 24,576 bytes).
/// Call these functions on the manager (ABI: `IStateChannelManager`), never on this contract.
contract ChannelExtension is AChannelCore {
    /// @notice Called directly instead of through the manager.
    error OnlyThroughManager();

    address private immutable _self = address(this);

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

    // ------------------------------------------------------------------ forced exit

    /// @notice Forces the caller's exit through the chain from `latest` (its latest state). After the
    /// challenge period the caller is removed (remove hook) and takes its exit, or, if the state is final,
    /// the channel settles. Answered with a later N-signed state, the caller is slashed instead.
    function requestExit(bytes32 channelId, StateProof calldata latest) external onlyDelegated nonReentrant {
        Channel storage ch = _channel(channelId);
        _requireOpenNoDispute(channelId, ch);
        _requireMember(channelId, ch, msg.sender);
        Proven memory pr = _proveState(channelId, ch, latest);
        DisputeRecord memory d = DisputeRecord({
            kind: DisputeKind.Exit,
            challenged: false,
            slash: false,
            submitter: msg.sender,
            target: msg.sender,
            forkCnt: ch.forkCnt,
            height: pr.height,
            stateHash: pr.stateHash,
            writerDeadline: 0,
            deadline: 0
        });
        _startDispute(channelId, ch, d, latest.state);
    }

    // ------------------------------------------------------------------ fraud proofs

    /// @notice Proves that one participant signed two different transactions of this channel at the same
    /// fork and height (as issuer or as confirmer; any fork up to the current one). The signer is slashed
    /// after the challenge period; `latest` is the state the chain enforces.
    function proveDoubleSign(bytes32 channelId, StateProof calldata latest, DoubleSignProof calldata proof)
        external
        onlyDelegated
        nonReentrant
    {
        Channel storage ch = _channel(channelId);
        _requireFraudAllowed(channelId, ch);
        address signer = _doubleSigner(channelId, ch, proof);
        _startFraud(
            channelId, ch, DisputeKind.DoubleSign, signer, _proveState(channelId, ch, latest), latest.state
        );
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
    /// current fork) breaks a rule, `kind` telling which:
    ///  - `InvalidTransition`: `t` builds on `prev` but the chain, loading `prev.state` into the machine and
    ///    applying `t` with the channel's gas limit, gets a revert or another state than `t.stateHash`;
    ///  - `TimestampOutOfOrder`: `t` builds on `prev` and `t.timestamp` is lower than `prev`'s timestamp
    ///    (its transaction's, or the fork's genesis timestamp);
    ///  - `TimestampInFuture`: `t` builds on `prev` and `t.timestamp` exceeds `agreementTime` plus the chain
    ///    time at which `t` was first seen on chain (its calldata post, else this call);
    ///  - `WrongParent`: `prev` is final (Genesis: "wrong genesis", or Signed) and `t.prevStateHash` is not
    ///    its hash.
    /// If the claim holds, `t`'s issuer is slashed after the challenge period; if the proof is well formed
    /// but the claim does not hold, the caller (who must be a participant) is slashed instead. Either way
    /// `prev` is the state the chain enforces. Malformed input reverts.
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
                holds = !_transitionIsValid(ch, prev.state, t);
            } else if (kind == DisputeKind.TimestampOutOfOrder) {
                holds = t.timestamp < pr.timestamp;
            } else if (kind == DisputeKind.TimestampInFuture) {
                uint256 seenAt = _postedAt[digest];
                if (seenAt == 0) seenAt = block.timestamp;
                holds = t.timestamp > seenAt + ch.agreementTime;
            } else {
                revert NotAFraudKind(kind);
            }
        }
        if (holds) {
            _startFraud(channelId, ch, kind, issuer, pr, prev.state);
        } else {
            _startFraud(channelId, ch, DisputeKind.FalseFraudProof, msg.sender, pr, prev.state);
        }
    }

    // ------------------------------------------------------------------ join and leave

    /// @notice Joins a live channel: the caller (`approval.participant`) pays `approval.amount`; every
    /// current participant signed `approval`. The machine's join hook runs on the approved state and the
    /// result starts a new fork (`SetState`).
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
        if (approval.amount > type(uint88).max) revert InvalidSpec("deposit too large");
        _verifyAll(channelId, ch, _hashTypedDataV4(ApprovalHashing.hashStruct(approval)), signatures);

        ch.locked += uint96(approval.amount);
        _collect(ch.token, approval.amount);
        IStateMachine m = _machine(ch);
        uint256 g = ch.machineGasLimit;
        m.setState{gas: g}(state);
        Exit[] memory exits = m.joinParticipant{gas: g}(msg.sender, approval.amount, approval.data);
        _creditExits(channelId, ch, exits);
        emit ParticipantJoined(channelId, msg.sender, approval.amount);
        _startForkOrClose(channelId, ch, m.getState{gas: g}(), approval.height);
    }

    /// @notice Leaves a live channel by agreement: every current participant (the leaver included) signed
    /// `approval`. The machine's remove hook runs on the approved state, the leaver's exit is credited, and
    /// the result starts a new fork (or settles if fewer than two participants remain). Anyone may submit.
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
        bytes memory result = _applyHook(channelId, ch, state, approval.participant, false);
        _startForkOrClose(channelId, ch, result, approval.height);
    }

    // ------------------------------------------------------------------ internals

    /// @dev Fraud proofs are accepted while Open, or while the running dispute is a Timeout or Exit that was
    /// not defeated (the fraud dispute replaces it).
    function _requireFraudAllowed(bytes32 channelId, Channel storage ch) internal view {
        if (ch.status == ChannelStatus.Disputed) {
            if (ch.fraudDispute) revert DisputeActive(channelId);
            return;
        }
        _requireStatus(channelId, ch, ChannelStatus.Open);
    }

    /// @dev Re-executes `t` on `prevState` in the machine with the channel's gas limit.
    function _transitionIsValid(Channel storage ch, bytes calldata prevState, Transaction calldata t)
        internal
        returns (bool)
    {
        IStateMachine m = _machine(ch);
        uint256 g = ch.machineGasLimit;
        m.setState{gas: g}(prevState);
        // The transition must get its full gas limit: otherwise a caller could make a valid transition
        // fail by sending too little gas (EIP-150 keeps 1/64 back).
        if (gasleft() < g + g / 63 + 20_000) revert InsufficientGas();
        (bool ok,) = address(m).call{gas: g}(abi.encodeCall(IStateMachine.stateTransition, (t)));
        if (!ok) return false;
        return keccak256(m.getState{gas: g}()) == t.stateHash;
    }

    function _startFraud(
        bytes32 channelId,
        Channel storage ch,
        DisputeKind kind,
        address target,
        Proven memory pr,
        bytes calldata state
    ) internal {
        DisputeRecord memory d = DisputeRecord({
            kind: kind,
            challenged: false,
            slash: true,
            submitter: msg.sender,
            target: target,
            forkCnt: ch.forkCnt,
            height: pr.height,
            stateHash: pr.stateHash,
            writerDeadline: 0,
            deadline: 0
        });
        ch.fraudDispute = true;
        _startDispute(channelId, ch, d, state);
    }

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
        if (height < ch.genesisHeight) revert WrongHeight(ch.genesisHeight, height);
        if (block.timestamp > deadline) revert TooLate(deadline);
        bytes32 h = keccak256(state);
        if (h != stateHash) revert StateHashMismatch(stateHash, h);
    }
}
