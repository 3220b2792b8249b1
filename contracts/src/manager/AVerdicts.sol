// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AChannelCore} from "./AChannelCore.sol";
import {Exit, StateProof, ProofKind, DisputeKind, DisputeRecord, Channel} from "../ChannelTypes.sol";
import {IStateMachine} from "../interfaces/IStateMachine.sol";

/// @title AVerdicts
/// @notice The end of a dispute: challenges (an N-signed state above the head) and finalization (the
/// verdict carried out on the head, with the fallback of docs/security.md, R10). Part of the extension.
abstract contract AVerdicts is AChannelCore {
    /// @notice Called directly instead of through the manager.
    error OnlyThroughManager();

    address private immutable _self = address(this);

    /// @dev The extension's entry points run only by `delegatecall` from the manager.
    modifier onlyDelegated() {
        if (address(this) == _self) revert OnlyThroughManager();
        _;
    }

    // ------------------------------------------------------------------ challenge and finalize

    /// @notice Answers the running dispute `d` before its deadline with an N-signed state above the head,
    /// which becomes the head (R2, R8). A Timeout or Exit dispute is thereby defeated and its submitter is
    /// slashed instead; a Leave is cancelled (the approval was stale); a slash verdict stands. The
    /// challenge period restarts.
    function challenge(bytes32 channelId, DisputeRecord calldata d, StateProof calldata proof)
        external
        onlyDelegated
        nonReentrant
    {
        Channel storage ch = _channel(channelId);
        _requireDispute(channelId, ch, d);
        if (block.timestamp > d.deadline) revert TooLate(d.deadline);
        if (proof.kind != ProofKind.Signed) revert ProofKindNotAllowed(proof.kind);
        Proven memory pr = _proveState(channelId, ch, proof);
        if (pr.height <= ch.headHeight) revert NotAChallenge();
        _checkpoint(channelId, ch, pr, proof.state);
        DisputeRecord memory next = d;
        if (!d.challenged) {
            if (d.kind == DisputeKind.Timeout || d.kind == DisputeKind.Exit) {
                next.challenged = true;
                next.slash = true;
                next.target = d.submitter;
                // The verdict is now a slash: it can be neither replaced nor closed over.
                ch.fraudDispute = true;
            } else if (d.kind == DisputeKind.Leave) {
                next.challenged = true;
                next.target = address(0);
            }
        }
        next.height = pr.height;
        next.stateHash = pr.stateHash;
        next.deadline = uint64(block.timestamp) + ch.challengeTime;
        ch.commitment = keccak256(abi.encode(next));
        emit DisputeChallenged(channelId, msg.sender, next, proof.state);
    }

    /// @notice Carries out dispute `d` after its challenge period on the head (`state` must be the head
    /// state, R10): applies the hook to `d.target` (remove or slash) in the channel's machine instance,
    /// credits the hook's exits, and starts a new fork from the result (`SetState`), or settles if the
    /// result is final or fewer than two participants remain. If the hook fails, or its result does not
    /// decode or conserve value, or it lowers another participant's exit, the channel settles at the head's
    /// exits instead (`HookFailed`). Anyone may call it.
    function finalizeDispute(bytes32 channelId, DisputeRecord calldata d, bytes calldata state)
        external
        onlyDelegated
        nonReentrant
    {
        Channel storage ch = _channel(channelId);
        _requireDispute(channelId, ch, d);
        if (block.timestamp <= d.deadline) revert TooEarly(uint256(d.deadline) + 1);
        bytes32 h = keccak256(state);
        if (h != ch.headStateHash) revert StateHashMismatch(ch.headStateHash, h);
        uint64 height = ch.headHeight;
        emit DisputeFinalized(channelId, d);
        // The head always decodes and conserves value (R2): its exits are the fallback verdict.
        Exit[] memory before = _exitsOfState(ch, state);
        if (d.target == address(0)) {
            // A cancelled leave: a new fork from the head, nobody removed.
            _startForkOrClose(channelId, ch, state, height);
            return;
        }
        if (d.kind == DisputeKind.Exit && !d.challenged) {
            // A finished game settles for everyone; nobody needs removing.
            if (_machine(ch).isGameOverOf{gas: ch.machineGasLimit}(state)) {
                _close(channelId, ch, before, height);
                return;
            }
        }
        _verdict(channelId, ch, state, height, d.target, d.slash, before);
    }

    // ------------------------------------------------------------------ internals

    /// @dev Applies the remove or slash hook to `target` on `state` (exits `before`), or settles at
    /// `before` if the hook's outcome cannot be enforced (R10).
    function _verdict(
        bytes32 channelId,
        Channel storage ch,
        bytes calldata state,
        uint64 height,
        address target,
        bool slash,
        Exit[] memory before
    ) internal {
        (bool ok, Exit[] memory hookExits, bytes memory result) =
            _runHook(channelId, ch, state, target, slash);
        Exit[] memory exits;
        address[] memory participants;
        bool over;
        if (ok) (ok, exits, participants, over) = _inspect(ch, result);
        ok = ok && _sumIs(hookExits, exits, ch.locked) && _othersKeep(before, hookExits, exits, target);
        if (!ok) {
            emit HookFailed(channelId, target, slash);
            _close(channelId, ch, before, height);
            return;
        }
        _creditExits(channelId, ch, hookExits);
        emit ParticipantRemoved(channelId, target, slash);
        _forkOrClose(channelId, ch, result, height, exits, participants, over || participants.length < 2);
    }

    /// @dev Loads `state` into the channel's instance and runs the hook; `ok` is false if any call failed.
    function _runHook(bytes32 channelId, Channel storage ch, bytes calldata state, address target, bool slash)
        internal
        returns (bool ok, Exit[] memory hookExits, bytes memory result)
    {
        IStateMachine m = _instance(channelId, ch);
        uint256 g = ch.machineGasLimit;
        _requireGas(g);
        try m.setState{gas: g}(state) {}
        catch {
            return (false, hookExits, result);
        }
        _requireGas(g);
        if (slash) {
            try m.slashParticipant{gas: g}(target) returns (Exit[] memory e) {
                hookExits = e;
            } catch {
                return (false, hookExits, result);
            }
        } else {
            try m.removeParticipant{gas: g}(target) returns (Exit[] memory e) {
                hookExits = e;
            } catch {
                return (false, hookExits, result);
            }
        }
        _requireGas(g);
        try m.getState{gas: g}() returns (bytes memory r) {
            return (true, hookExits, r);
        } catch {
            return (false, hookExits, result);
        }
    }

    /// @dev Decodes the exits, participants and finality of `state`; `ok` is false if a view failed.
    function _inspect(Channel storage ch, bytes memory state)
        internal
        view
        returns (bool ok, Exit[] memory exits, address[] memory participants, bool over)
    {
        IStateMachine m = _machine(ch);
        uint256 g = ch.machineGasLimit;
        _requireGas(g);
        try m.exitsOf{gas: g}(state) returns (Exit[] memory e) {
            exits = e;
        } catch {
            return (false, exits, participants, over);
        }
        _requireGas(g);
        try m.participantsOf{gas: g}(state) returns (address[] memory p) {
            participants = p;
        } catch {
            return (false, exits, participants, over);
        }
        if (participants.length < 2) return (true, exits, participants, true);
        _requireGas(g);
        try m.isGameOverOf{gas: g}(state) returns (bool o) {
            over = o;
        } catch {
            return (false, exits, participants, over);
        }
        ok = true;
    }

    /// @dev Whether the amounts of `a` and `b` together sum to exactly `total` (without overflowing on
    /// whatever a machine returns).
    function _sumIs(Exit[] memory a, Exit[] memory b, uint256 total) internal pure returns (bool) {
        uint256 s;
        for (uint256 i = 0; i < a.length; i++) {
            if (a[i].amount > total - s) return false;
            s += a[i].amount;
        }
        for (uint256 i = 0; i < b.length; i++) {
            if (b[i].amount > total - s) return false;
            s += b[i].amount;
        }
        return s == total;
    }

    /// @dev Every participant other than `target` gets at least as much after the hook (its hook exit plus
    /// its exit in the result) as before it.
    function _othersKeep(Exit[] memory before, Exit[] memory hookExits, Exit[] memory exits, address target)
        internal
        pure
        returns (bool)
    {
        for (uint256 i = 0; i < before.length; i++) {
            address p = before[i].participant;
            if (p == target) continue;
            uint256 got;
            for (uint256 j = 0; j < hookExits.length; j++) {
                if (hookExits[j].participant == p) got += hookExits[j].amount;
            }
            for (uint256 j = 0; j < exits.length; j++) {
                if (exits[j].participant == p) got += exits[j].amount;
            }
            if (got < before[i].amount) return false;
        }
        return true;
    }
}
