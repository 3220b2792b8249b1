// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ADisputeManager} from "./manager/ADisputeManager.sol";
import {VerdictExtension} from "./manager/VerdictExtension.sol";
import {ChannelSpec, Exit, StateProof, ProofKind, Channel, ChannelStatus} from "./ChannelTypes.sol";
import {IStateMachine} from "./interfaces/IStateMachine.sol";

/// @title StateChannelManager
/// @notice Entente's on-chain court and bank for N-party state channels running arbitrary EVM state
/// machines. Channels open atomically (funding phase), live off-chain, and come here only to post
/// calldata, dispute, join or leave, and settle. Payouts are pull payments.
/// @dev See docs/contracts.md for the protocol rules, the EIP-712 types and the dispute state machine.
contract StateChannelManager is ADisputeManager {
    /// @notice The contract holding the manager's less frequent entry points (fraud proofs, forced exit,
    /// join, leave), run with `delegatecall` on the manager's storage.
    address public immutable extension;
    /// @notice The contract holding `challenge`, `finalizeDispute` and the posted intents (`postIntent`,
    /// `forceIntent`, `postedIntent`), run the same way.
    address public immutable verdicts;

    /// @param extension_ A deployed `ChannelExtension`.
    /// @param verdicts_ A deployed `VerdictExtension`.
    /// @dev The two extensions are deployed first and passed in: together with the manager they exceed the
    /// EIP-3860 limit on one creation's init code. They hold no state of their own.
    constructor(address extension_, address verdicts_) {
        if (extension_.code.length == 0 || verdicts_.code.length == 0) {
            revert InvalidSpec("extension has no code");
        }
        extension = extension_;
        verdicts = verdicts_;
    }

    /// @dev Plain ETH transfers are refused (deposits go through `open`, `deposit` and `joinChannel`).
    receive() external payable {
        revert UnexpectedValue();
    }

    /// @dev Forwards the extensions' selectors (see `IStateChannelManager`).
    fallback() external payable {
        address ext = extension;
        if (
            msg.sig == VerdictExtension.challenge.selector
                || msg.sig == VerdictExtension.finalizeDispute.selector
                || msg.sig == VerdictExtension.postIntent.selector
                || msg.sig == VerdictExtension.forceIntent.selector
                || msg.sig == VerdictExtension.postedIntent.selector
        ) {
            ext = verdicts;
        }
        assembly ("memory-safe") {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), ext, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    // ------------------------------------------------------------------ open

    /// @notice The id `open(spec, genesisState)` gives a channel on this chain and manager.
    function computeChannelId(ChannelSpec calldata spec, bytes calldata genesisState)
        public
        view
        returns (bytes32)
    {
        return keccak256(abi.encode(block.chainid, address(this), spec, keccak256(genesisState)));
    }

    /// @notice Opens a channel: records the spec and the genesis state, and takes the caller's deposit (the
    /// caller must be a participant). Every deposit is non-zero (everyone has something to lose). The channel is
    /// live once every deposit is in (`ChannelActivated`); if that does not happen within `fundingPeriod`,
    /// anyone may cancel it and every depositor reclaims its deposit.
    /// @dev The genesis state must list exactly `spec.participants` and its exits must be exactly
    /// `(participants[i], deposits[i])`.
    function open(ChannelSpec calldata spec, bytes calldata genesisState)
        external
        payable
        nonReentrant
        returns (bytes32 channelId)
    {
        uint256 n = spec.participants.length;
        _validateSpec(spec, n);
        channelId = computeChannelId(spec, genesisState);
        Channel storage ch = _channels[channelId];
        if (ch.status != ChannelStatus.None) revert ChannelExists(channelId);
        _validateGenesis(spec, genesisState, n);

        mapping(uint256 => Member) storage mem = _members[channelId];
        uint256 funded;
        uint256 openerDeposit;
        bool openerFound;
        for (uint256 i = 0; i < n; ++i) {
            address p = spec.participants[i];
            uint256 dep = spec.deposits[i];
            bool isOpener = p == msg.sender;
            if (isOpener) {
                openerFound = true;
                openerDeposit = dep;
            }
            bool f = isOpener;
            if (f) funded++;
            mem[i] = Member(p, uint88(dep), f);
        }
        if (!openerFound) revert NotAParticipant(msg.sender);

        ch.status = ChannelStatus.Funding;
        ch.participantCount = uint8(n);
        ch.fundedCount = uint8(funded);
        ch.timestamp = uint64(block.timestamp) + spec.fundingPeriod;
        ch.locked = uint96(openerDeposit);
        ch.stateMachine = spec.stateMachine;
        ch.machineGasLimit = uint32(spec.machineGasLimit);
        ch.token = spec.token;
        ch.p2pTime = spec.p2pTime;
        ch.agreementTime = spec.agreementTime;
        ch.chainFallbackTime = spec.chainFallbackTime;
        ch.challengeTime = spec.challengeTime;
        ch.genesisStateHash = keccak256(genesisState);
        address[] memory ps = spec.participants;
        ch.participantsHash = _hashAddresses(ps);

        emit ChannelOpened(channelId, msg.sender, spec, genesisState);
        _collect(spec.token, openerDeposit);
        if (openerDeposit != 0) emit Deposited(channelId, msg.sender, openerDeposit);
        if (funded == n) _activate(channelId, ch);
    }

    /// @notice Pays participant `index`'s deposit into a channel in its funding phase (anyone may pay it;
    /// ETH: exactly `msg.value`; ERC20: approved beforehand). The last deposit makes the channel live.
    function deposit(bytes32 channelId, uint256 index) external payable nonReentrant {
        Channel storage ch = _channel(channelId);
        _requireStatus(channelId, ch, ChannelStatus.Funding);
        if (block.timestamp > ch.timestamp) revert TooLate(ch.timestamp);
        if (index >= ch.participantCount) revert IndexOutOfRange(index);
        Member storage m = _members[channelId][index];
        if (m.funded) revert AlreadyFunded(index);
        uint256 amount = m.deposit;
        m.funded = true;
        uint8 funded = ch.fundedCount + 1;
        ch.fundedCount = funded;
        ch.locked += uint96(amount);
        emit Deposited(channelId, m.addr, amount);
        if (funded == ch.participantCount) _activate(channelId, ch);
        _collect(ch.token, amount);
    }

    // ------------------------------------------------------------------ close and payouts

    /// @notice Settles at once on a final (game-over) state signed by all current participants
    /// (`proof.kind == Signed`), at or above the head. Allowed while a Timeout, Exit or Leave dispute runs
    /// (it ends the dispute), but not
    /// while the running dispute ends in a slash (a fraud dispute, or a Timeout/Exit defeated by a
    /// challenge): the slashed participant would escape its verdict. Each exit is then claimed with
    /// `withdraw`.
    function close(bytes32 channelId, StateProof calldata proof) external nonReentrant {
        Channel storage ch = _channel(channelId);
        _requireLive(channelId, ch);
        if (ch.fraudDispute) revert DisputeActive(channelId);
        if (proof.kind != ProofKind.Signed) revert ProofKindNotAllowed(proof.kind);
        Proven memory pr = _proveState(channelId, ch, proof);
        if (!_canCheckpoint(channelId, ch, pr)) revert StaleProof(ch.headHeight, pr.stateHash);
        uint64 height = pr.height;
        IStateMachine m = _machine(ch);
        uint256 g = ch.machineGasLimit;
        if (!m.isGameOverOf{gas: g}(proof.state)) revert NotFinal();
        Exit[] memory exits = m.exitsOf{gas: g}(proof.state);
        _checkConserved(ch, exits);
        _close(channelId, ch, exits, height);
    }

    /// @notice Pays exit `index` of a closed channel to its participant. `exits` is the list from
    /// `ChannelClosed`. Anyone may trigger it; each exit is paid once.
    function withdraw(bytes32 channelId, Exit[] calldata exits, uint256 index) external nonReentrant {
        _withdraw(channelId, exits, index, exits[index < exits.length ? index : 0].participant);
    }

    /// @notice Pays exit `index` of a closed channel to `recipient`; only its participant may call it (for a
    /// participant that cannot receive ETH itself).
    function withdrawTo(bytes32 channelId, Exit[] calldata exits, uint256 index, address recipient)
        external
        nonReentrant
    {
        if (index < exits.length && exits[index].participant != msg.sender) {
            revert NotYourExit(exits[index].participant, msg.sender);
        }
        _withdraw(channelId, exits, index, recipient);
    }

    function _withdraw(bytes32 channelId, Exit[] calldata exits, uint256 index, address to) private {
        Channel storage ch = _channel(channelId);
        _requireStatus(channelId, ch, ChannelStatus.Closed);
        if (keccak256(abi.encode(exits)) != ch.commitment) {
            revert StateHashMismatch(ch.commitment, keccak256(abi.encode(exits)));
        }
        if (index >= exits.length) revert IndexOutOfRange(index);
        uint256 word = index >> 8;
        uint256 bit = 1 << (index & 255);
        uint256 claimed = _claimed[channelId][word];
        if (claimed & bit != 0) revert AlreadyClaimed(index);
        _claimed[channelId][word] = claimed | bit;
        uint256 amount = exits[index].amount;
        ch.locked -= uint96(amount);
        emit Withdrawn(channelId, to, amount);
        _pay(ch.token, to, amount);
    }

    /// @notice Pays the caller everything credited to it in `token` (departures, removals, slashes).
    function withdrawPending(address token) external nonReentrant {
        _withdrawPending(token, msg.sender);
    }

    /// @notice Pays everything credited to the caller in `token` to `recipient`.
    function withdrawPendingTo(address token, address recipient) external nonReentrant {
        _withdrawPending(token, recipient);
    }

    function _withdrawPending(address token, address to) private {
        uint256 amount = _pending[msg.sender][token];
        if (amount == 0) revert NothingToWithdraw();
        _pending[msg.sender][token] = 0;
        emit PendingWithdrawn(msg.sender, token, amount);
        _pay(token, to, amount);
    }

    // ------------------------------------------------------------------ internals

    function _activate(bytes32 channelId, Channel storage ch) private {
        uint64 nowTs = uint64(block.timestamp);
        ch.status = ChannelStatus.Open;
        ch.timestamp = nowTs;
        emit ChannelActivated(channelId, nowTs);
    }

    function _validateSpec(ChannelSpec calldata spec, uint256 n) private view {
        if (n < 2 || n > MAX_PARTICIPANTS) revert InvalidSpec("participant count");
        if (spec.deposits.length != n) revert InvalidSpec("deposits length");
        if (spec.stateMachine.code.length == 0) revert InvalidSpec("state machine has no code");
        if (spec.token != address(0) && spec.token.code.length == 0) revert InvalidSpec("token has no code");
        if (
            spec.p2pTime == 0 || spec.agreementTime == 0 || spec.chainFallbackTime == 0
                || spec.challengeTime == 0
        ) {
            revert InvalidSpec("zero time parameter");
        }
        if (spec.fundingPeriod == 0) revert InvalidSpec("zero funding period");
        if (
            spec.machineGasLimit < MIN_MACHINE_GAS + n * MACHINE_GAS_PER_PARTICIPANT
                || spec.machineGasLimit > MAX_MACHINE_GAS
        ) {
            revert InvalidSpec("machine gas");
        }
        uint256 total;
        for (uint256 i = 0; i < n; i++) {
            address p = spec.participants[i];
            if (p == address(0)) revert InvalidSpec("zero participant");
            for (uint256 j = 0; j < i; j++) {
                if (spec.participants[j] == p) revert InvalidSpec("duplicate participant");
            }
            if (spec.deposits[i] == 0) revert InvalidSpec("zero deposit");
            if (spec.deposits[i] > type(uint88).max) revert InvalidSpec("deposit too large");
            total += spec.deposits[i];
        }
        // n <= 128 deposits below 2^88 each: the total fits `Channel.locked` (uint96).
    }

    function _validateGenesis(ChannelSpec calldata spec, bytes calldata genesisState, uint256 n)
        private
        view
    {
        IStateMachine m = IStateMachine(spec.stateMachine);
        uint256 g = spec.machineGasLimit;
        address[] memory ps = m.participantsOf{gas: g}(genesisState);
        Exit[] memory exits = m.exitsOf{gas: g}(genesisState);
        if (ps.length != n) revert InvalidGenesis("participants");
        if (exits.length != n) revert InvalidGenesis("exits");
        for (uint256 i = 0; i < n; i++) {
            if (ps[i] != spec.participants[i]) revert InvalidGenesis("participants");
            if (exits[i].participant != spec.participants[i] || exits[i].amount != spec.deposits[i]) {
                revert InvalidGenesis("exits");
            }
        }
        if (m.isGameOverOf{gas: g}(genesisState)) revert InvalidGenesis("game over");
    }
}
