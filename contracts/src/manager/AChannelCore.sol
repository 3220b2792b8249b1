// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";

import {
    Transaction,
    TransactionHashing,
    Exit,
    StateProof,
    ProofKind,
    DisputeRecord,
    DisputeKind,
    JoinApproval,
    LeaveApproval,
    ApprovalHashing,
    ChannelSpec,
    ChannelStatus,
    Channel
} from "../ChannelTypes.sol";
import {IStateMachine} from "../interfaces/IStateMachine.sol";
import {IStateChannelEvents} from "../interfaces/IStateChannelEvents.sol";

/// @title AChannelCore
/// @notice Storage, events, errors and the shared machinery of the StateChannelManager: EIP-712 digests,
/// N-of-N signature checks, state proofs, calls into the state machine, forks, settlement and payouts.
abstract contract AChannelCore is EIP712, ReentrancyGuardTransient, IStateChannelEvents {
    using SafeERC20 for IERC20;

    // ------------------------------------------------------------------ types

    /// @dev A state proven to be part of the current fork.
    struct Proven {
        uint64 height;
        bytes32 stateHash;
        uint64 timestamp;
    }

    /// @dev An intent posted with `postIntent`: the digest its issuer signed, when it may be forced onto the
    /// head (`dueAt`) and the last head timestamp it may still apply at (`notAfter`).
    struct DueIntent {
        bytes32 digest;
        uint64 dueAt;
        uint64 notAfter;
    }

    /// @dev One slot per participant (index = signing order; the count is `Channel.participantCount`).
    struct Member {
        address addr;
        uint88 deposit;
        bool funded;
    }

    // ------------------------------------------------------------------ constants

    /// @notice Largest number of participants a channel may have.
    uint256 public constant MAX_PARTICIPANTS = 128;
    /// @notice Largest gas limit per state-machine call.
    uint256 public constant MAX_MACHINE_GAS = 30_000_000;
    /// @notice Smallest gas limit per state-machine call: `MIN_MACHINE_GAS + N * MACHINE_GAS_PER_PARTICIPANT`
    /// (loading a state of N participants into a fresh instance and running a hook must fit).
    uint256 public constant MIN_MACHINE_GAS = 200_000;
    /// @notice See `MIN_MACHINE_GAS`.
    uint256 public constant MACHINE_GAS_PER_PARTICIPANT = 50_000;
    /// @dev Gas kept back for the caller's own work after a machine call.
    uint256 internal constant CALL_MARGIN = 40_000;

    // ------------------------------------------------------------------ storage

    mapping(bytes32 channelId => Channel) internal _channels;
    mapping(bytes32 channelId => mapping(uint256 index => Member)) internal _members;
    /// @dev EIP-712 digest of a transaction posted as calldata (and executed by the chain) => chain time
    /// of the post.
    mapping(bytes32 digest => uint64) internal _postedAt;
    /// @dev Exits already claimed after a close: bit i of word i/256.
    mapping(bytes32 channelId => mapping(uint256 => uint256)) internal _claimed;
    /// @dev Credited exits (departures, removals, slashes), withdrawn with `withdrawPending`.
    mapping(address account => mapping(address token => uint256)) internal _pending;
    /// @dev State hash of the posted head at `keccak256(abi.encode(channelId, forkCnt, height))`: the history
    /// of the head above its anchor, against which a conflicting N-signed state is recognised.
    mapping(bytes32 key => bytes32 stateHash) internal _postedState;
    /// @dev Posted intents the court holds (docs/security.md O9): bit i of the word at
    /// `keccak256(abi.encode(channelId, forkCnt))` is set while participant i has one.
    mapping(bytes32 forkKey => uint256 mask) internal _dueMask;
    /// @dev The posted intent of participant `index` in a fork (see `_dueMask`).
    mapping(bytes32 forkKey => mapping(uint256 index => DueIntent)) internal _dueIntents;

    constructor() EIP712("Entente", "1") {}

    // ------------------------------------------------------------------ views

    /// @notice The EIP-712 digest every participant signs for `transaction`.
    function transactionDigest(Transaction calldata transaction) public view returns (bytes32) {
        return _hashTypedDataV4(TransactionHashing.hashCalldata(transaction));
    }

    /// @notice The EIP-712 domain separator (name "Entente", version "1", chain id, this contract).
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice A channel's stored record, with the head filled in when it is the fork's genesis.
    function getChannel(bytes32 channelId) external view returns (Channel memory c) {
        c = _channels[channelId];
        if (uint8(c.status) >= uint8(ChannelStatus.Open) && c.headStateHash == bytes32(0)) {
            c.headStateHash = c.genesisStateHash;
            c.headTimestamp = c.timestamp;
            c.headSince = c.timestamp;
        }
    }

    /// @notice A channel's current participants (signing order).
    function getParticipants(bytes32 channelId) external view returns (address[] memory out) {
        mapping(uint256 => Member) storage m = _members[channelId];
        out = new address[](_channels[channelId].participantCount);
        for (uint256 i = 0; i < out.length; ++i) {
            out[i] = m[i].addr;
        }
    }

    /// @notice The address of the channel's own machine instance (an EIP-1167 clone of its state machine,
    /// made by the manager on first need; it may not exist yet).
    function machineInstance(bytes32 channelId) public view returns (address) {
        return Clones.predictDeterministicAddress(_channels[channelId].stateMachine, channelId);
    }

    /// @notice Chain time at which the transaction with this digest was posted as calldata (0: never).
    function postedAt(bytes32 digest) external view returns (uint64) {
        return _postedAt[digest];
    }

    /// @notice Credited exits `account` can withdraw in `token`.
    function pendingBalance(address account, address token) external view returns (uint256) {
        return _pending[account][token];
    }

    /// @notice Whether exit `index` of a closed channel was claimed.
    function isClaimed(bytes32 channelId, uint256 index) public view returns (bool) {
        return _claimed[channelId][index >> 8] & (1 << (index & 255)) != 0;
    }

    // ------------------------------------------------------------------ signatures

    function _recover(bytes32 digest, bytes calldata signature, uint256 index)
        internal
        pure
        returns (address)
    {
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (err != ECDSA.RecoverError.NoError) revert InvalidSignature(index);
        return signer;
    }

    /// @dev Signature i must be by current participant i, for every participant. The recovered signers are
    /// checked against `participantsHash` (one slot instead of N); only a failing check reads the member
    /// slots, to name the first wrong signature.
    function _verifyAll(bytes32 channelId, Channel storage ch, bytes32 digest, bytes[] calldata signatures)
        internal
        view
    {
        uint256 n = ch.participantCount;
        if (signatures.length != n) revert SignatureCountMismatch(n, signatures.length);
        address[] memory signers = new address[](n);
        for (uint256 i = 0; i < n; ++i) {
            signers[i] = _recover(digest, signatures[i], i);
        }
        if (_hashAddresses(signers) == ch.participantsHash) return;
        mapping(uint256 => Member) storage m = _members[channelId];
        for (uint256 i = 0; i < n; ++i) {
            if (signers[i] != m[i].addr) revert InvalidSignature(i);
        }
        revert InvalidSignature(0);
    }

    /// @dev keccak256 of the addresses, each as a 32-byte word (= `keccak256(abi.encodePacked(a))`).
    function _hashAddresses(address[] memory a) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            h := keccak256(add(a, 0x20), shl(5, mload(a)))
        }
    }

    function _requireMember(bytes32 channelId, Channel storage ch, address account) internal view {
        if (!_isMember(channelId, ch, account)) revert NotAParticipant(account);
    }

    function _isMember(bytes32 channelId, Channel storage ch, address account) internal view returns (bool) {
        mapping(uint256 => Member) storage m = _members[channelId];
        uint256 n = ch.participantCount;
        for (uint256 i = 0; i < n; ++i) {
            if (m[i].addr == account) return true;
        }
        return false;
    }

    // ------------------------------------------------------------------ state proofs and the head

    /// @dev Checks that `p` proves a state of the current fork (docs/security.md, R1): the fork's genesis,
    /// an N-signed state, or the head (`Posted`). Returns its height, hash and timestamp.
    function _proveState(bytes32 channelId, Channel storage ch, StateProof calldata p)
        internal
        view
        returns (Proven memory r)
    {
        r.stateHash = keccak256(p.state);
        if (p.kind == ProofKind.Genesis) {
            if (r.stateHash != ch.genesisStateHash) {
                revert StateHashMismatch(ch.genesisStateHash, r.stateHash);
            }
            r.height = ch.genesisHeight;
            r.timestamp = ch.timestamp;
            return r;
        }
        if (p.kind == ProofKind.Posted) {
            if (r.stateHash != _headHash(ch)) revert StateHashMismatch(_headHash(ch), r.stateHash);
            r.height = ch.headHeight;
            r.timestamp = _headTimestamp(ch);
            return r;
        }
        Transaction calldata t = p.transaction;
        _checkCurrentFork(channelId, ch, t);
        if (t.stateHash != r.stateHash) revert StateHashMismatch(t.stateHash, r.stateHash);
        _verifyAll(channelId, ch, transactionDigest(t), p.signatures);
        r.height = t.height;
        r.timestamp = t.timestamp;
    }

    /// @dev Makes the head at least as recent as `p` (R2) and returns the head. A `Genesis` or `Posted`
    /// proof must be the head itself; a `Signed` one moves the head up to it (or replaces a posted head at
    /// its height). A proof below the head is stale.
    function _moveHead(bytes32 channelId, Channel storage ch, StateProof calldata p)
        internal
        returns (Proven memory head)
    {
        if (p.kind != ProofKind.Signed) {
            bytes32 h = keccak256(p.state);
            if (h != _headHash(ch)) revert StaleProof(ch.headHeight, h);
            return Proven(ch.headHeight, h, _headTimestamp(ch));
        }
        Proven memory pr = _proveState(channelId, ch, p);
        _checkpoint(channelId, ch, pr, p.state);
        return pr;
    }

    /// @dev Makes the proven N-signed state `pr` (with its encoded `state`) the head: when it is above the head,
    /// or when the head's history above the last anchor came from posts that conflict with it (a posted state
    /// at its height that is not it: a writer equivocated, and the N-signed state carries the honest
    /// participant's signature). Reverts `StaleProof` otherwise.
    function _checkpoint(bytes32 channelId, Channel storage ch, Proven memory pr, bytes calldata state)
        internal
    {
        if (!_canCheckpoint(channelId, ch, pr)) revert StaleProof(ch.headHeight, pr.stateHash);
        if (pr.height == ch.headHeight && pr.stateHash == _headHash(ch)) return;
        _checkConserved(ch, _exitsOfState(ch, state));
        // Replacing posted states: the next writer may have been kept from posting on the real history,
        // so its window starts now.
        uint64 since = pr.timestamp;
        if (pr.height <= ch.headHeight && since < block.timestamp) since = uint64(block.timestamp);
        _setHead(ch, pr.height, pr.stateHash, pr.timestamp, since, false);
        emit Checkpointed(channelId, ch.forkCnt, pr.height, pr.stateHash);
    }

    /// @dev Whether the N-signed state `pr` may become the head (see `_checkpoint`); true also when it is
    /// the head already.
    function _canCheckpoint(bytes32 channelId, Channel storage ch, Proven memory pr)
        internal
        view
        returns (bool)
    {
        uint64 headHeight = ch.headHeight;
        if (pr.height > headHeight) return true;
        if (pr.height == headHeight && pr.stateHash == _headHash(ch)) return true;
        if (pr.height <= ch.anchorHeight) return false;
        bytes32 posted = _postedState[_postKey(channelId, ch.forkCnt, pr.height)];
        return posted != bytes32(0) && posted != pr.stateHash;
    }

    function _forkKey(bytes32 channelId, uint64 forkCnt) internal pure returns (bytes32) {
        return keccak256(abi.encode(channelId, forkCnt));
    }

    /// @dev The checks a post makes in an open state (the parent names no writer, docs/protocol.md section 11):
    /// the height is its sequencer's alone (`participants[height % n]`: a conflicting post is then the
    /// sequencer's own double sign, not anyone's); and while a held intent can still be forced (until one
    /// `agreementTime` after its `dueAt`), no post stamps it expired, and from its `dueAt` no post is taken
    /// until it is forced. A state that names a writer is moved by that writer alone: held intents hold
    /// nothing up there (a force there is let go), and a lapsed one holds nothing up anywhere.
    function _checkOpenPost(
        bytes32 channelId,
        Channel storage ch,
        Transaction calldata t,
        bytes calldata state
    ) internal view {
        if (_machine(ch).nextToWriteOf{gas: ch.machineGasLimit}(state) != address(0)) {
            return;
        }
        address sequencer = _members[channelId][t.height % ch.participantCount].addr;
        if (t.participant != sequencer) revert NotSequencer(sequencer, t.participant);
        bytes32 key = _forkKey(channelId, ch.forkCnt);
        uint256 mask = _dueMask[key];
        if (mask == 0) return;
        uint64 headTs = _headTimestamp(ch);
        for (uint256 i = 0; mask != 0; ++i) {
            if (mask & 1 != 0) {
                DueIntent storage d = _dueIntents[key][i];
                uint64 notAfter = d.notAfter;
                uint64 dueAt = d.dueAt;
                if (notAfter >= headTs && block.timestamp < dueAt + ch.agreementTime) {
                    if (block.timestamp >= dueAt) revert IntentDue(i, d.digest);
                    if (t.timestamp > notAfter) revert BadTimestamp(t.timestamp, headTs, notAfter);
                }
            }
            mask >>= 1;
        }
    }

    function _postKey(bytes32 channelId, uint64 forkCnt, uint64 height) internal pure returns (bytes32) {
        return keccak256(abi.encode(channelId, forkCnt, height));
    }

    /// @dev The head state's hash. A zero stored hash stands for the fork's genesis (so that activating a
    /// channel and starting a fork write no head slots).
    function _headHash(Channel storage ch) internal view returns (bytes32 h) {
        h = ch.headStateHash;
        if (h == bytes32(0)) h = ch.genesisStateHash;
    }

    /// @dev The head's transaction timestamp (the genesis time for the genesis).
    function _headTimestamp(Channel storage ch) internal view returns (uint64 t) {
        t = ch.headTimestamp;
        if (t == 0) t = ch.timestamp;
    }

    /// @dev When the head's next writer's window starts (the genesis time for the genesis).
    function _headSince(Channel storage ch) internal view returns (uint64 t) {
        t = ch.headSince;
        if (t == 0) t = ch.timestamp;
    }

    function _setHead(Channel storage ch, uint64 height, bytes32 h, uint64 ts, uint64 since, bool posted)
        internal
    {
        ch.headHeight = height;
        ch.headTimestamp = ts;
        ch.headSince = since;
        if (!posted) ch.anchorHeight = height;
        ch.headStateHash = h;
    }

    /// @dev The head's writer deadline: its `since` plus the three windows (R4).
    function _writerDeadline(Channel storage ch) internal view returns (uint64) {
        return _headSince(ch) + ch.p2pTime + ch.agreementTime + ch.chainFallbackTime;
    }

    /// @dev The transaction belongs to this channel's current fork, above its genesis.
    function _checkCurrentFork(bytes32 channelId, Channel storage ch, Transaction calldata t) internal view {
        if (t.channelId != channelId) revert WrongChannel(channelId, t.channelId);
        if (t.forkCnt != ch.forkCnt) revert WrongFork(ch.forkCnt, t.forkCnt);
        if (t.height <= ch.genesisHeight) revert WrongHeight(ch.genesisHeight + 1, t.height);
    }

    // ------------------------------------------------------------------ channel lookup

    function _channel(bytes32 channelId) internal view returns (Channel storage ch) {
        ch = _channels[channelId];
        if (ch.status == ChannelStatus.None) revert UnknownChannel(channelId);
    }

    function _requireStatus(bytes32 channelId, Channel storage ch, ChannelStatus s) internal view {
        if (ch.status != s) revert WrongStatus(channelId, ch.status);
    }

    /// @dev Open or Disputed.
    function _requireLive(bytes32 channelId, Channel storage ch) internal view {
        ChannelStatus s = ch.status;
        if (s != ChannelStatus.Open && s != ChannelStatus.Disputed) revert WrongStatus(channelId, s);
    }

    // ------------------------------------------------------------------ machine

    /// @dev The shared machine: only its views over encoded states are called on it.
    function _machine(Channel storage ch) internal view returns (IStateMachine) {
        return IStateMachine(ch.stateMachine);
    }

    /// @dev The channel's own machine instance (R9): an EIP-1167 clone of its machine made with the channel
    /// id as salt and owned by this manager; created on first need.
    function _instance(bytes32 channelId, Channel storage ch) internal returns (IStateMachine) {
        address impl = ch.stateMachine;
        address inst = Clones.predictDeterministicAddress(impl, channelId);
        if (inst.code.length == 0) {
            Clones.cloneDeterministic(impl, channelId);
            IStateMachine(inst).initialize();
        }
        return IStateMachine(inst);
    }

    /// @dev Reverts unless a call with `g` gas can be given all of it (EIP-150 keeps 1/64 back): otherwise a
    /// caller could make a machine call fail by sending too little gas.
    function _requireGas(uint256 g) internal view {
        if (gasleft() < g + g / 63 + CALL_MARGIN) revert InsufficientGas();
    }

    /// @dev The exits of an encoded state (the shared machine's view, with the channel's gas limit).
    function _exitsOfState(Channel storage ch, bytes memory state) internal view returns (Exit[] memory) {
        return _machine(ch).exitsOf{gas: ch.machineGasLimit}(state);
    }

    /// @dev Runs `t` on `prevState` in the channel's instance with the full gas limit; returns whether it
    /// succeeded and the hash of the resulting state (zero on failure).
    function _execute(bytes32 channelId, Channel storage ch, bytes calldata prevState, Transaction calldata t)
        internal
        returns (bool ok, bytes32 resultHash)
    {
        // Encode first, then check the gas: encoding large move data costs gas of its own.
        return _executeCall(channelId, ch, prevState, abi.encodeCall(IStateMachine.stateTransition, (t)));
    }

    /// @dev Sets `prevState` in the channel's instance and runs `call` (an encoded `stateTransition`) on it.
    function _executeCall(bytes32 channelId, Channel storage ch, bytes calldata prevState, bytes memory call)
        internal
        returns (bool ok, bytes32 resultHash)
    {
        IStateMachine m = _instance(channelId, ch);
        uint256 g = ch.machineGasLimit;
        _requireGas(g);
        m.setState{gas: g}(prevState);
        _requireGas(g);
        (ok,) = address(m).call{gas: g}(call);
        if (!ok) return (false, bytes32(0));
        _requireGas(g);
        resultHash = keccak256(m.getState{gas: g}());
    }

    /// @dev The exits of the state the channel's instance holds (right after an execution).
    function _instanceExits(bytes32 channelId, Channel storage ch) internal view returns (Exit[] memory) {
        return IStateMachine(machineInstance(channelId)).getExits{gas: ch.machineGasLimit}();
    }

    /// @dev Credits hook exits to the pending ledger, out of the channel's locked total.
    function _creditExits(bytes32 channelId, Channel storage ch, Exit[] memory exits) internal {
        uint256 sum;
        address token = ch.token;
        for (uint256 i = 0; i < exits.length; i++) {
            uint256 amount = exits[i].amount;
            if (amount == 0) continue;
            sum += amount;
            if (sum > ch.locked) revert ExitsNotConserved(ch.locked, sum);
            _pending[exits[i].participant][token] += amount;
            emit ExitCredited(channelId, exits[i].participant, amount);
        }
        ch.locked -= uint96(sum);
    }

    /// @dev Makes `state` (at `height`) the genesis of a new fork, or settles the channel if the state is
    /// final or fewer than two participants remain. The state's exits must conserve value.
    function _startForkOrClose(bytes32 channelId, Channel storage ch, bytes memory state, uint64 height)
        internal
    {
        IStateMachine m = _machine(ch);
        uint256 g = ch.machineGasLimit;
        Exit[] memory exits = m.exitsOf{gas: g}(state);
        _checkConserved(ch, exits);
        address[] memory participants = m.participantsOf{gas: g}(state);
        bool over = participants.length < 2 || m.isGameOverOf{gas: g}(state);
        _forkOrClose(channelId, ch, state, height, exits, participants, over);
    }

    /// @dev `_startForkOrClose` with the state's exits, participants and finality already known.
    function _forkOrClose(
        bytes32 channelId,
        Channel storage ch,
        bytes memory state,
        uint64 height,
        Exit[] memory exits,
        address[] memory participants,
        bool over
    ) internal {
        if (over || participants.length > MAX_PARTICIPANTS) {
            _close(channelId, ch, exits, height);
            return;
        }
        mapping(uint256 => Member) storage mem = _members[channelId];
        uint256 old = ch.participantCount;
        uint256 n = participants.length;
        for (uint256 i = 0; i < n; ++i) {
            if (i >= old) {
                mem[i] = Member(participants[i], 0, true);
            } else if (mem[i].addr != participants[i]) {
                mem[i].addr = participants[i];
            }
        }
        for (uint256 i = n; i < old; ++i) {
            delete mem[i];
        }
        uint64 fork = ch.forkCnt + 1;
        uint64 nowTs = uint64(block.timestamp);
        bytes32 h = keccak256(state);
        ch.forkCnt = fork;
        ch.genesisHeight = height;
        ch.timestamp = nowTs;
        ch.participantCount = uint8(n);
        ch.genesisStateHash = h;
        ch.participantsHash = _hashAddresses(participants);
        ch.status = ChannelStatus.Open;
        ch.fraudDispute = false;
        ch.timeoutDispute = false;
        ch.commitment = bytes32(0);
        // The head is the new genesis (zeros stand for it: see `_headHash`).
        _setHead(ch, height, bytes32(0), 0, 0, false);
        emit SetState(channelId, fork, height, nowTs, state, participants);
    }

    function _checkConserved(Channel storage ch, Exit[] memory exits) internal view {
        uint256 sum = _sumExits(exits);
        if (sum != ch.locked) revert ExitsNotConserved(ch.locked, sum);
    }

    function _sumExits(Exit[] memory exits) internal pure returns (uint256 sum) {
        for (uint256 i = 0; i < exits.length; i++) {
            sum += exits[i].amount;
        }
    }

    /// @dev Settles: records a commitment to the exits; each is claimed with `withdraw`.
    function _close(bytes32 channelId, Channel storage ch, Exit[] memory exits, uint64 height) internal {
        ch.status = ChannelStatus.Closed;
        ch.fraudDispute = false;
        ch.timeoutDispute = false;
        ch.commitment = keccak256(abi.encode(exits));
        emit ChannelClosed(channelId, ch.forkCnt, height, exits);
    }

    // ------------------------------------------------------------------ value

    /// @dev Takes `amount` of the channel's asset from msg.sender (ETH: exactly msg.value).
    function _collect(address token, uint256 amount) internal {
        if (token == address(0)) {
            if (msg.value != amount) revert WrongAmount(amount, msg.value);
            return;
        }
        if (msg.value != 0) revert UnexpectedValue();
        if (amount == 0) return;
        IERC20 t = IERC20(token);
        uint256 before = t.balanceOf(address(this));
        t.safeTransferFrom(msg.sender, address(this), amount);
        if (t.balanceOf(address(this)) - before != amount) revert UnsupportedToken();
    }

    /// @dev Pays `amount` of `token` to `to` (effects must be done before).
    function _pay(address token, address to, uint256 amount) internal {
        if (amount == 0) return;
        if (token == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert TransferFailed();
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }

    // ------------------------------------------------------------------ disputes

    function _requireOpenNoDispute(bytes32 channelId, Channel storage ch) internal view {
        if (ch.status == ChannelStatus.Disputed) revert DisputeActive(channelId);
        _requireStatus(channelId, ch, ChannelStatus.Open);
    }

    function _requireDispute(bytes32 channelId, Channel storage ch, DisputeRecord calldata d) internal view {
        _requireStatus(channelId, ch, ChannelStatus.Disputed);
        if (keccak256(abi.encode(d)) != ch.commitment) revert DisputeMismatch();
    }

    /// @dev Starts dispute `d` about the head (`d.height`, `d.stateHash` are set from it); `state` is the
    /// head state.
    function _startDispute(
        bytes32 channelId,
        Channel storage ch,
        DisputeRecord memory d,
        bytes calldata state
    ) internal {
        d.forkCnt = ch.forkCnt;
        d.height = ch.headHeight;
        d.stateHash = _headHash(ch);
        d.deadline = uint64(block.timestamp) + ch.challengeTime;
        ch.status = ChannelStatus.Disputed;
        ch.timeoutDispute = d.kind == DisputeKind.Timeout;
        ch.fraudDispute = d.slash;
        ch.commitment = keccak256(abi.encode(d));
        emit DisputeStarted(channelId, d, state);
    }
}
