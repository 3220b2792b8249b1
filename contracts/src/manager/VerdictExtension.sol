// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AChannelCore} from "./AChannelCore.sol";
import {
    Transaction,
    Intent,
    IntentHashing,
    Exit,
    StateProof,
    ProofKind,
    DisputeKind,
    DisputeRecord,
    Channel
} from "../ChannelTypes.sol";
import {IStateMachine} from "../interfaces/IStateMachine.sol";
import {AIntentMachine} from "../AIntentMachine.sol";

/// @title VerdictExtension
/// @notice The end of a dispute: challenges (an N-signed state that moves the head) and finalization (the
/// verdict carried out on the head, with the fallback of docs/security.md, R10); and the intents the court
/// holds for machines where anyone may write (`postIntent`, `forceIntent`, O9). The manager forwards
/// these selectors to it with `delegatecall`.
/// @dev Every machine call of a verdict is a low-level call whose return data is checked before it is
/// decoded: a hook that reverts, runs out of gas, or returns malformed or oversized data makes the channel
/// settle at the head's exits; it can never make `finalizeDispute` revert for ever.
contract VerdictExtension is AChannelCore {
    /// @notice Called directly instead of through the manager.
    error OnlyThroughManager();

    /// @notice Largest return data a verdict accepts from a machine call (a larger state cannot be
    /// enforced by a verdict: the channel settles at the head instead).
    uint256 public constant MAX_RETURN = 128 * 1024;

    address private immutable _self = address(this);

    /// @dev Entry points run only by `delegatecall` from the manager.
    modifier onlyDelegated() {
        if (address(this) == _self) revert OnlyThroughManager();
        _;
    }

    // ------------------------------------------------------------------ posted intents

    /// @notice The posted intent the court holds for participant `index` of the current fork (zeros: none).
    function postedIntent(bytes32 channelId, uint256 index)
        external
        view
        returns (bytes32 digest, uint64 dueAt, uint64 notAfter)
    {
        bytes32 key = _forkKey(channelId, _channels[channelId].forkCnt);
        if (index > 255 || _dueMask[key] & (1 << index) == 0) return (bytes32(0), 0, 0);
        DueIntent storage d = _dueIntents[key][index];
        return (d.digest, d.dueAt, d.notAfter);
    }

    /// @notice Gives the court an intent a sequencer left out (docs/security.md O9). Anyone may post a
    /// participant's signed intent; it takes no state (so a post landing first cannot make it stale). The
    /// court checks the issuer's signature and that the intent lives at least until it is due (`notAfter` at
    /// least chain time plus `agreementTime`, and the head's timestamp), and holds it, one per participant:
    /// until `now + agreementTime` the peers may include it as they like (no post may stamp it expired);
    /// from then on, for one more `agreementTime`, no post is taken in a state that names no writer until
    /// it is forced (`forceIntent`), in the order the held intents fall due. A held intent is replaced only
    /// by its issuer, or once it can no longer apply.
    function postIntent(Intent calldata intent, bytes calldata signature)
        external
        onlyDelegated
        nonReentrant
    {
        bytes32 channelId = intent.channelId;
        Channel storage ch = _channel(channelId);
        _requireLive(channelId, ch);
        if (ch.timeoutDispute) revert DisputeActive(channelId);
        uint256 index = _memberIndex(channelId, ch, intent.issuer);
        address signer = _recover(IntentHashing.digest(intent), signature, index);
        if (signer != intent.issuer) revert SignerMismatch(intent.issuer, signer);
        uint64 dueAt = _holdIntent(channelId, ch, index, intent, _headTimestamp(ch));
        emit IntentPosted(channelId, ch.forkCnt, index, intent, signature, dueAt);
    }

    /// @dev Holds a posted intent (see `postIntent`) of participant `index` on a head with timestamp
    /// `headTs`; returns when it is due.
    function _holdIntent(
        bytes32 channelId,
        Channel storage ch,
        uint256 index,
        Intent calldata intent,
        uint64 headTs
    ) private returns (uint64 dueAt) {
        uint64 notAfter = intent.notAfter;
        dueAt = uint64(block.timestamp) + ch.agreementTime;
        if (notAfter < dueAt || notAfter < headTs) {
            revert IntentExpired(notAfter, headTs > dueAt ? headTs : dueAt);
        }
        bytes32 key = _forkKey(channelId, ch.forkCnt);
        DueIntent storage d = _dueIntents[key][index];
        if (
            _dueMask[key] & (1 << index) != 0 && msg.sender != intent.issuer && d.notAfter >= headTs
                && block.timestamp < d.dueAt + ch.agreementTime
        ) {
            revert IntentAlreadyPosted(index);
        }
        _dueMask[key] |= 1 << index;
        d.digest = IntentHashing.digest(intent);
        d.dueAt = dueAt;
        d.notAfter = notAfter;
    }

    /// @notice Applies the posted intent of participant `index` on the head, from its `dueAt` on. `parent` is
    /// the head, or an N-signed state that becomes it. The court writes the transaction itself (writer: the
    /// issuer; timestamp: the head's; data: `applyIntents` of this one intent) and runs it in the machine:
    /// if it applies and the exits conserve value it becomes the head as a posted transaction would
    /// (`IntentForced`); if not (applied already, expired, refused) the intent is dropped (`IntentVoided`).
    /// Either way the court no longer holds it. Anyone may call it.
    function forceIntent(
        bytes32 channelId,
        uint256 index,
        Intent calldata intent,
        bytes calldata signature,
        StateProof calldata parent
    ) external onlyDelegated nonReentrant {
        Channel storage ch = _channel(channelId);
        _requireLive(channelId, ch);
        if (ch.timeoutDispute) revert DisputeActive(channelId);
        bytes32 digest = _takePostedIntent(channelId, ch, index, intent, signature);
        Proven memory h = _moveHead(channelId, ch, parent);
        uint64 fork = ch.forkCnt;
        // A state that names a writer is that writer's to move, with a transaction the peers may have
        // confirmed already: a forced intent there could land beside it. Let it go.
        if (!_namesNoWriter(ch, parent.state)) {
            emit IntentVoided(channelId, fork, index, digest);
            return;
        }
        Transaction memory t = _forcedTransaction(channelId, fork, h, intent, signature);
        bytes32 resultHash = _runForced(channelId, ch, parent.state, t);
        if (resultHash == bytes32(0)) {
            emit IntentVoided(channelId, fork, index, digest);
            return;
        }
        t.stateHash = resultHash;
        _postedState[_postKey(channelId, fork, t.height)] = resultHash;
        uint64 nowTs = uint64(block.timestamp);
        _setHead(ch, t.height, resultHash, t.timestamp, t.timestamp > nowTs ? t.timestamp : nowTs, true);
        emit IntentForced(channelId, fork, t.height, t);
    }

    /// @dev Checks that the court holds `intent` for participant `index`, signed by its issuer with
    /// `signature` (a force never drops an intent for a bad signature: it reverts), that it is due and that
    /// no other held intent that can still apply fell due before it; lets go of it and returns its digest.
    function _takePostedIntent(
        bytes32 channelId,
        Channel storage ch,
        uint256 index,
        Intent calldata intent,
        bytes calldata signature
    ) private returns (bytes32 digest) {
        bytes32 key = _forkKey(channelId, ch.forkCnt);
        digest = IntentHashing.digest(intent);
        uint256 mask = _dueMask[key];
        if (index > 255 || mask & (1 << index) == 0 || _dueIntents[key][index].digest != digest) {
            revert NoPostedIntent(index);
        }
        address signer = _recover(digest, signature, index);
        if (signer != intent.issuer) revert SignerMismatch(intent.issuer, signer);
        uint64 dueAt = _dueIntents[key][index].dueAt;
        if (block.timestamp < dueAt) revert IntentNotDue(dueAt);
        // Forced only within its window: after it, posts are taken again and a late force could replace a
        // height the peers confirmed meanwhile.
        if (block.timestamp >= dueAt + ch.agreementTime) revert IntentLapsed(dueAt + ch.agreementTime);
        uint64 headTs = _headTimestamp(ch);
        for (uint256 j = 0; mask != 0; ++j) {
            if (mask & 1 != 0 && j != index) {
                DueIntent storage o = _dueIntents[key][j];
                // Held intents go in due order; one that lapsed (or can no longer apply) holds nobody up.
                if (
                    o.notAfter >= headTs && block.timestamp < o.dueAt + ch.agreementTime
                        && (o.dueAt < dueAt || (o.dueAt == dueAt && j < index))
                ) {
                    revert IntentDue(j, o.digest);
                }
            }
            mask >>= 1;
        }
        _dueMask[key] &= ~(1 << index);
        delete _dueIntents[key][index];
    }

    /// @dev True when `state` names no next writer (by a bounded call: a machine that fails or answers
    /// garbage counts as naming one).
    function _namesNoWriter(Channel storage ch, bytes calldata state) private returns (bool) {
        (bool ok, bytes memory ret) = _call(
            ch.stateMachine, abi.encodeCall(IStateMachine.nextToWriteOf, (state)), ch.machineGasLimit, true
        );
        return ok && ret.length == 32 && abi.decode(ret, (address)) == address(0);
    }

    /// @dev The transaction the court writes for a forced intent on head `h` (its `stateHash` left zero).
    function _forcedTransaction(
        bytes32 channelId,
        uint64 fork,
        Proven memory h,
        Intent calldata intent,
        bytes calldata signature
    ) private pure returns (Transaction memory t) {
        t.channelId = channelId;
        t.forkCnt = fork;
        t.height = h.height + 1;
        t.participant = intent.issuer;
        t.timestamp = h.timestamp;
        t.prevStateHash = h.stateHash;
        Intent[] memory intents = new Intent[](1);
        intents[0] = intent;
        bytes[] memory signatures = new bytes[](1);
        signatures[0] = signature;
        t.data = abi.encodeCall(AIntentMachine.applyIntents, (intents, signatures));
    }

    /// @dev Runs a forced transaction on `state`; the resulting state's hash, or zero when the machine refused
    /// it, answered with malformed data, or gave exits that do not conserve value. Every machine call is a
    /// bounded low-level call (`_call`): nothing a machine does makes `forceIntent` revert but too little gas
    /// from its caller, so a held intent can always be let go.
    function _runForced(bytes32 channelId, Channel storage ch, bytes calldata state, Transaction memory t)
        private
        returns (bytes32)
    {
        address inst = address(_instance(channelId, ch));
        uint256 g = ch.machineGasLimit;
        (bool ok, bytes memory ret) = _call(inst, abi.encodeCall(IStateMachine.setState, (state)), g, false);
        if (ok) (ok,) = _call(inst, abi.encodeCall(IStateMachine.stateTransition, (t)), g, false);
        if (ok) (ok, ret) = _call(inst, abi.encodeCall(IStateMachine.getState, ()), g, true);
        if (!ok || !_isBytes(ret)) return bytes32(0);
        bytes32 resultHash = keccak256(abi.decode(ret, (bytes)));
        (ok, ret) = _call(inst, abi.encodeCall(IStateMachine.getExits, ()), g, true);
        if (!ok || !_isExits(ret) || _sumExits(abi.decode(ret, (Exit[]))) != ch.locked) return bytes32(0);
        return resultHash;
    }

    function _memberIndex(bytes32 channelId, Channel storage ch, address account)
        private
        view
        returns (uint256)
    {
        mapping(uint256 => Member) storage m = _members[channelId];
        uint256 n = ch.participantCount;
        for (uint256 i = 0; i < n; ++i) {
            if (m[i].addr == account) return i;
        }
        revert NotAParticipant(account);
    }

    // ------------------------------------------------------------------ challenge and finalize

    /// @notice Answers the running dispute `d` before its deadline with an N-signed state that moves the
    /// head (above it, or replacing posted states it conflicts with: R2), or, for a Leave, any N-signed
    /// state above the approved one. A Timeout or Exit dispute is thereby defeated and its submitter is
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
        bool moves = !(pr.height == ch.headHeight && pr.stateHash == _headHash(ch))
            && _canCheckpoint(channelId, ch, pr);
        bool cancelsLeave = d.kind == DisputeKind.Leave && !d.challenged && pr.height > d.height;
        if (!moves && !cancelsLeave) revert NotAChallenge();
        if (moves) _checkpoint(channelId, ch, pr, proof.state);
        DisputeRecord memory next = d;
        if (!d.challenged) {
            if (d.kind == DisputeKind.Timeout || d.kind == DisputeKind.Exit) {
                next.challenged = true;
                next.slash = true;
                next.target = d.submitter;
                // The verdict is now a slash: it can be neither replaced nor closed over.
                ch.fraudDispute = true;
            } else if (cancelsLeave) {
                next.challenged = true;
                next.target = address(0);
            }
        }
        next.height = ch.headHeight;
        next.stateHash = _headHash(ch);
        next.deadline = uint64(block.timestamp) + ch.challengeTime;
        ch.commitment = keccak256(abi.encode(next));
        emit DisputeChallenged(channelId, msg.sender, next, moves ? proof.state : msg.data[0:0]);
    }

    /// @notice Carries out dispute `d` after its challenge period on the head (`state` must be the head
    /// state, R10): applies the hook to `d.target` (remove or slash) in the channel's machine instance,
    /// credits the hook's exits, and starts a new fork from the result (`SetState`), or settles if the
    /// result is final or fewer than two participants remain. A forced exit or agreed leave on a finished
    /// game settles for everyone. If the hook fails, or its result does not decode or conserve value, or
    /// it lowers another participant's exit, the channel settles at the head's exits instead
    /// (`HookFailed`). Anyone may call it.
    function finalizeDispute(bytes32 channelId, DisputeRecord calldata d, bytes calldata state)
        external
        onlyDelegated
        nonReentrant
    {
        Channel storage ch = _channel(channelId);
        _requireDispute(channelId, ch, d);
        if (block.timestamp <= d.deadline) revert TooEarly(uint256(d.deadline) + 1);
        bytes32 h = keccak256(state);
        if (h != _headHash(ch)) revert StateHashMismatch(_headHash(ch), h);
        uint64 height = ch.headHeight;
        emit DisputeFinalized(channelId, d);
        // The head always decodes and conserves value (R2): its exits are the fallback verdict.
        Exit[] memory before = _exitsOfState(ch, state);
        if (d.target == address(0)) {
            // A cancelled leave: a new fork from the head, nobody removed.
            _startForkOrClose(channelId, ch, state, height);
            return;
        }
        if ((d.kind == DisputeKind.Exit || d.kind == DisputeKind.Leave) && !d.challenged) {
            // A finished game settles for everyone; nobody needs removing.
            (bool ok, bytes memory ret) = _call(
                ch.stateMachine, abi.encodeCall(IStateMachine.isGameOverOf, (state)), ch.machineGasLimit, true
            );
            // A view that fails or answers garbage counts as "not over": the verdict then runs (and
            // falls back to settling at the head if it cannot be enforced).
            if (ok && ret.length == 32 && uint256(bytes32(ret)) == 1) {
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
        _forkOrClose(channelId, ch, result, height, exits, participants, over);
    }

    /// @dev Loads `state` into the channel's instance and runs the hook; `ok` is false if any call failed or
    /// returned data that does not decode.
    function _runHook(bytes32 channelId, Channel storage ch, bytes calldata state, address target, bool slash)
        internal
        returns (bool ok, Exit[] memory hookExits, bytes memory result)
    {
        address m = address(_instance(channelId, ch));
        uint256 g = ch.machineGasLimit;
        bytes memory ret;
        (ok,) = _call(m, abi.encodeCall(IStateMachine.setState, (state)), g, false);
        if (!ok) return (false, hookExits, result);
        bytes memory hook = slash
            ? abi.encodeCall(IStateMachine.slashParticipant, (target))
            : abi.encodeCall(IStateMachine.removeParticipant, (target));
        (ok, ret) = _call(m, hook, g, false);
        if (!ok || !_isExits(ret)) return (false, hookExits, result);
        hookExits = abi.decode(ret, (Exit[]));
        (ok, ret) = _call(m, abi.encodeCall(IStateMachine.getState, ()), g, true);
        if (!ok || !_isBytes(ret)) return (false, hookExits, result);
        return (true, hookExits, abi.decode(ret, (bytes)));
    }

    /// @dev Decodes the exits, participants and finality of `state`; `ok` is false if a view failed or
    /// returned data that does not decode.
    function _inspect(Channel storage ch, bytes memory state)
        internal
        returns (bool ok, Exit[] memory exits, address[] memory participants, bool over)
    {
        address m = ch.stateMachine;
        uint256 g = ch.machineGasLimit;
        bytes memory ret;
        (ok, ret) = _call(m, abi.encodeCall(IStateMachine.exitsOf, (state)), g, true);
        if (!ok || !_isExits(ret)) return (false, exits, participants, over);
        exits = abi.decode(ret, (Exit[]));
        (ok, ret) = _call(m, abi.encodeCall(IStateMachine.participantsOf, (state)), g, true);
        if (!ok || !_isAddresses(ret)) return (false, exits, participants, over);
        participants = abi.decode(ret, (address[]));
        if (participants.length < 2) return (true, exits, participants, true);
        (ok, ret) = _call(m, abi.encodeCall(IStateMachine.isGameOverOf, (state)), g, true);
        if (!ok || ret.length != 32 || uint256(bytes32(ret)) > 1) return (false, exits, participants, over);
        over = uint256(bytes32(ret)) == 1;
        ok = true;
    }

    /// @dev A call to a machine with exactly `g` gas (the caller must send enough: `InsufficientGas`), whose
    /// return data is copied only up to `MAX_RETURN` bytes (more counts as a failure).
    function _call(address to, bytes memory data, uint256 g, bool isView)
        internal
        returns (bool ok, bytes memory ret)
    {
        _requireGas(g);
        uint256 cap = MAX_RETURN;
        assembly ("memory-safe") {
            switch isView
            case 0 { ok := call(g, to, 0, add(data, 32), mload(data), 0, 0) }
            default { ok := staticcall(g, to, add(data, 32), mload(data), 0, 0) }
            let size := returndatasize()
            if gt(size, cap) {
                ok := 0
                size := 0
            }
            ret := mload(0x40)
            mstore(ret, size)
            returndatacopy(add(ret, 32), 0, size)
            mstore(0x40, add(add(ret, 32), and(add(size, 31), not(31))))
        }
    }

    /// @dev `ret` is the ABI encoding of one `Exit[]` (so decoding it cannot revert).
    function _isExits(bytes memory ret) internal pure returns (bool) {
        return _isArray(ret, 2);
    }

    /// @dev `ret` is the ABI encoding of one `address[]`.
    function _isAddresses(bytes memory ret) internal pure returns (bool) {
        return _isArray(ret, 1);
    }

    /// @dev `ret` is `[0x20][n][n elements of `words` words]`, the first word of each an address.
    function _isArray(bytes memory ret, uint256 words) internal pure returns (bool) {
        if (ret.length < 64 || _word(ret, 0) != 0x20) return false;
        uint256 n = _word(ret, 1);
        if (n > MAX_PARTICIPANTS || ret.length != 64 + n * words * 32) return false;
        for (uint256 i = 0; i < n; i++) {
            if (_word(ret, 2 + i * words) >> 160 != 0) return false;
        }
        return true;
    }

    /// @dev `ret` is the ABI encoding of one `bytes`.
    function _isBytes(bytes memory ret) internal pure returns (bool) {
        if (ret.length < 64 || _word(ret, 0) != 0x20) return false;
        uint256 len = _word(ret, 1);
        return len <= ret.length - 64;
    }

    function _word(bytes memory ret, uint256 i) private pure returns (uint256 w) {
        assembly ("memory-safe") {
            w := mload(add(add(ret, 32), mul(i, 32)))
        }
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
