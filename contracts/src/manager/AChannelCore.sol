// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

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

    // ------------------------------------------------------------------ storage

    mapping(bytes32 channelId => Channel) internal _channels;
    mapping(bytes32 channelId => mapping(uint256 index => Member)) internal _members;
    /// @dev EIP-712 digest of a transaction posted as calldata => chain time of the post.
    mapping(bytes32 digest => uint64) internal _postedAt;
    /// @dev Exits already claimed after a close: bit i of word i/256.
    mapping(bytes32 channelId => mapping(uint256 => uint256)) internal _claimed;
    /// @dev Credited exits (departures, removals, slashes), withdrawn with `withdrawPending`.
    mapping(address account => mapping(address token => uint256)) internal _pending;

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

    /// @notice A channel's stored record.
    function getChannel(bytes32 channelId) external view returns (Channel memory) {
        return _channels[channelId];
    }

    /// @notice A channel's current participants (signing order).
    function getParticipants(bytes32 channelId) external view returns (address[] memory out) {
        mapping(uint256 => Member) storage m = _members[channelId];
        out = new address[](_channels[channelId].participantCount);
        for (uint256 i = 0; i < out.length; ++i) {
            out[i] = m[i].addr;
        }
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

    // ------------------------------------------------------------------ state proofs

    /// @dev Checks that `p` proves a state of the current fork; returns its height, hash and timestamp.
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
        Transaction calldata t = p.transaction;
        _checkCurrentFork(channelId, ch, t);
        if (t.stateHash != r.stateHash) revert StateHashMismatch(t.stateHash, r.stateHash);
        bytes32 digest = transactionDigest(t);
        if (p.kind == ProofKind.Signed) {
            _verifyAll(channelId, ch, digest, p.signatures);
        } else if (_postedAt[digest] == 0) {
            revert NotPosted(digest);
        }
        r.height = t.height;
        r.timestamp = t.timestamp;
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

    function _machine(Channel storage ch) internal view returns (IStateMachine) {
        return IStateMachine(ch.stateMachine);
    }

    /// @dev Loads `state` into the machine, applies the remove or slash hook to `target`, credits the
    /// exits it returns, and returns the resulting state.
    function _applyHook(bytes32 channelId, Channel storage ch, bytes memory state, address target, bool slash)
        internal
        returns (bytes memory)
    {
        IStateMachine m = _machine(ch);
        uint256 g = ch.machineGasLimit;
        m.setState{gas: g}(state);
        Exit[] memory exits = slash ? m.slashParticipant{gas: g}(target) : m.removeParticipant{gas: g}(target);
        _creditExits(channelId, ch, exits);
        emit ParticipantRemoved(channelId, target, slash);
        return m.getState{gas: g}();
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
    /// final or fewer than two participants remain.
    function _startForkOrClose(bytes32 channelId, Channel storage ch, bytes memory state, uint64 height)
        internal
    {
        IStateMachine m = _machine(ch);
        uint256 g = ch.machineGasLimit;
        Exit[] memory exits = m.exitsOf{gas: g}(state);
        _checkConserved(ch, exits);
        address[] memory participants = m.participantsOf{gas: g}(state);
        if (participants.length < 2 || m.isGameOverOf{gas: g}(state)) {
            _close(channelId, ch, exits, height);
            return;
        }
        if (participants.length > MAX_PARTICIPANTS) revert InvalidGenesis("too many participants");
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
        ch.forkCnt = fork;
        ch.genesisHeight = height;
        ch.timestamp = nowTs;
        ch.participantCount = uint8(n);
        ch.genesisStateHash = keccak256(state);
        ch.participantsHash = _hashAddresses(participants);
        ch.status = ChannelStatus.Open;
        ch.fraudDispute = false;
        ch.commitment = bytes32(0);
        emit SetState(channelId, fork, height, nowTs, state, participants);
    }

    function _checkConserved(Channel storage ch, Exit[] memory exits) internal view {
        uint256 sum;
        for (uint256 i = 0; i < exits.length; i++) {
            sum += exits[i].amount;
        }
        if (sum != ch.locked) revert ExitsNotConserved(ch.locked, sum);
    }

    /// @dev Settles: records a commitment to the exits; each is claimed with `withdraw`.
    function _close(bytes32 channelId, Channel storage ch, Exit[] memory exits, uint64 height) internal {
        ch.status = ChannelStatus.Closed;
        ch.fraudDispute = false;
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

    function _startDispute(
        bytes32 channelId,
        Channel storage ch,
        DisputeRecord memory d,
        bytes calldata state
    ) internal {
        d.deadline = uint64(block.timestamp) + ch.challengeTime;
        ch.status = ChannelStatus.Disputed;
        ch.commitment = keccak256(abi.encode(d));
        emit DisputeStarted(channelId, d, state);
    }
}
