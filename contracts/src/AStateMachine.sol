// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Transaction, Exit} from "./ChannelTypes.sol";
import {IStateMachine} from "./interfaces/IStateMachine.sol";

/// @title AStateMachine
/// @notice The abstract base a game or dApp author extends to run it in an Entente channel.
/// @dev The contract's storage is the channel state. The author implements:
///  - `getState()` / `_setState(bytes)`: encode and restore the whole state (usually `abi.encode` of a
///    struct); `stateHash = keccak256(getState())`;
///  - the decoders `_participantsOf`, `_nextToWriteOf`, `_isGameOverOf`, `_exitsOf` over an encoded state;
///  - the hooks `_joinParticipant`, `_removeParticipant`, `_slashParticipant`;
///  - the moves: ordinary external functions marked `onlyTransition`, reading `_issuer()` and
///    `_timestamp()` instead of `msg.sender` / `block.timestamp`.
///
/// Rules a machine must follow (the chain and every peer must compute the same thing):
///  1. Determinism: a move depends only on the state and the transaction. No `block.*`, `msg.sender`,
///     `tx.origin`, `gasleft()`, balances or external calls; use `_issuer()` and `_timestamp()`.
///  2. Canonical encoding: `_setState(getState())` must not change `getState()`, and `getState()` after
///     `_setState(s)` must equal `s` for every state the machine produces.
///  3. Value conservation: the exits of every state sum to the channel's locked total; a hook's returned
///     exits plus the exits of the resulting state sum to the total before the hook (plus a joiner's
///     deposit). The manager refuses a state that breaks this.
///  4. Bounded cost: every move and hook must succeed within the channel's `machineGasLimit`; a move that
///     needs more is invalid (the chain cannot execute it in a dispute).
///  5. A machine has a constructor without arguments; its storage is scratch space, so nothing may depend
///     on storage that `_setState` does not restore. The manager never writes to a deployed machine: it
///     runs each channel's disputes in a clone of its own (EIP-1167, made by the manager and initialized
///     with the manager as owner). The storage-changing entry points (`setState`, `stateTransition`, the
///     hooks) answer only to the owner: the deployer for a deployed machine, the manager for a clone, so
///     an outsider cannot fill the storage a channel's disputes depend on.
///  6. Hooks never lower the exit of a participant other than their target (the manager checks it and
///     settles at the last state instead).
abstract contract AStateMachine is IStateMachine {
    /// @notice The transaction's issuer may not write in the current state.
    error NotYourTurn(address issuer, address expected);
    /// @notice A move function was called outside `stateTransition`.
    error OnlyTransition();
    /// @notice `stateTransition`, `setState` or a hook was called while a transition is running.
    error TransitionInProgress();
    /// @notice The transaction's data did not call a move (a function marked `onlyTransition`).
    error NotAMove();
    /// @notice The machine does not support the hook.
    error HookNotSupported();
    /// @notice A storage-changing entry point was called by someone other than the machine's owner.
    error NotOwner(address caller, address owner);
    /// @notice `initialize` was called on a machine that already has an owner.
    error AlreadyInitialized();

    // Scratch slot, not part of the state: the running transaction's issuer and timestamp.
    address private _txIssuer;
    uint64 private _txTimestamp;
    bool private _inTransition;
    bool private _moveRan;
    // The account allowed to change the storage: the deployer, or (for a clone) whoever initialized it.
    address private _owner;
    // The running transaction's channel (transient: lives for one call, costs no storage).
    bytes32 private transient _txChannel;

    constructor() {
        _owner = msg.sender;
    }

    /// @dev Only the owner may load states, apply transitions and run hooks.
    modifier onlyOwner() {
        if (msg.sender != _owner) revert NotOwner(msg.sender, _owner);
        _;
    }

    /// @dev Guards the external entry points against being re-entered from a move.
    modifier notInTransition() {
        if (_inTransition) revert TransitionInProgress();
        _;
    }

    /// @notice Marks a move: callable only by `stateTransition` (through a call to itself).
    modifier onlyTransition() {
        if (msg.sender != address(this) || !_inTransition) revert OnlyTransition();
        _moveRan = true;
        _;
    }

    // ------------------------------------------------------------------ author's part

    /// @inheritdoc IStateMachine
    function getState() public view virtual returns (bytes memory);

    /// @dev Restores the storage from an encoded state.
    function _setState(bytes memory state) internal virtual;

    /// @dev Participants of an encoded state, in signing order.
    function _participantsOf(bytes memory state) internal view virtual returns (address[] memory);

    /// @dev Next writer of an encoded state (address(0) when nobody may write).
    function _nextToWriteOf(bytes memory state) internal view virtual returns (address);

    /// @dev Whether an encoded state is final (no move possible; settle it).
    function _isGameOverOf(bytes memory state) internal view virtual returns (bool);

    /// @dev Payouts of an encoded state.
    function _exitsOf(bytes memory state) internal view virtual returns (Exit[] memory);

    /// @dev Adds a participant to the current state. Default: not supported.
    function _joinParticipant(address participant, uint256 amount, bytes memory data)
        internal
        virtual
        returns (Exit[] memory)
    {
        participant;
        amount;
        data;
        revert HookNotSupported();
    }

    /// @dev Removes a participant from the current state (timeout, forced exit, agreed leave).
    function _removeParticipant(address participant) internal virtual returns (Exit[] memory);

    /// @dev Removes a participant as a punishment.
    function _slashParticipant(address participant) internal virtual returns (Exit[] memory);

    /// @dev Who may issue a transaction now. Default: only the participant the court names for the
    /// current state (`_nextToWriteOf(getState())`, what `nextToWriteOf` answers), whatever an
    /// override of `getNextToWrite()` says: the court accuses that participant of silence, so the
    /// same participant must be the one whose move the machine takes.
    function _mayWrite(address issuer) internal view virtual returns (bool) {
        return issuer != address(0) && issuer == _nextToWriteOf(getState());
    }

    // ------------------------------------------------------------------ for moves

    /// @notice Issuer of the transaction being applied (use it instead of `msg.sender`).
    function _issuer() internal view returns (address) {
        return _txIssuer;
    }

    /// @notice Timestamp of the transaction being applied (use it instead of `block.timestamp`).
    function _timestamp() internal view returns (uint64) {
        return _txTimestamp;
    }

    /// @notice Channel of the transaction being applied.
    function _channelId() internal view returns (bytes32) {
        return _txChannel;
    }

    /// @dev Runs `data` (a call of a move) as a move issued by `issuer`, inside the running transition:
    /// for machines that apply moves their issuers signed elsewhere (`AIntentMachine`). Reverts as the
    /// move reverts, and with `NotAMove` if `data` does not call a move.
    function _runAs(address issuer, bytes memory data) internal {
        if (!_inTransition) revert OnlyTransition();
        address outer = _txIssuer;
        _txIssuer = issuer;
        _moveRan = false;
        (bool ok, bytes memory ret) = address(this).call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        if (!_moveRan) revert NotAMove();
        _txIssuer = outer;
    }

    // ------------------------------------------------------------------ interface

    /// @inheritdoc IStateMachine
    function initialize() external {
        if (_owner != address(0)) revert AlreadyInitialized();
        _owner = msg.sender;
    }

    /// @inheritdoc IStateMachine
    function owner() external view returns (address) {
        return _owner;
    }

    /// @inheritdoc IStateMachine
    function setState(bytes calldata state) external onlyOwner notInTransition {
        _setState(state);
    }

    /// @inheritdoc IStateMachine
    function stateTransition(Transaction calldata transaction) external onlyOwner notInTransition {
        address issuer = transaction.participant;
        if (!_mayWrite(issuer)) revert NotYourTurn(issuer, _nextToWriteOf(getState()));
        _txIssuer = issuer;
        _txTimestamp = transaction.timestamp;
        _txChannel = transaction.channelId;
        _inTransition = true;
        _moveRan = false;
        (bool ok, bytes memory ret) = address(this).call(transaction.data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        if (!_moveRan) revert NotAMove();
        _inTransition = false;
        _moveRan = false;
        // Transient storage lives for the whole chain transaction: nothing after the move reads it.
        _txChannel = bytes32(0);
    }

    /// @inheritdoc IStateMachine
    function joinParticipant(address participant, uint256 amount, bytes calldata data)
        external
        onlyOwner
        notInTransition
        returns (Exit[] memory)
    {
        return _joinParticipant(participant, amount, data);
    }

    /// @inheritdoc IStateMachine
    function removeParticipant(address participant)
        external
        onlyOwner
        notInTransition
        returns (Exit[] memory)
    {
        return _removeParticipant(participant);
    }

    /// @inheritdoc IStateMachine
    function slashParticipant(address participant)
        external
        onlyOwner
        notInTransition
        returns (Exit[] memory)
    {
        return _slashParticipant(participant);
    }

    /// @inheritdoc IStateMachine
    function getParticipants() public view virtual returns (address[] memory) {
        return _participantsOf(getState());
    }

    /// @inheritdoc IStateMachine
    function getNextToWrite() public view virtual returns (address) {
        return _nextToWriteOf(getState());
    }

    /// @inheritdoc IStateMachine
    function isGameOver() public view virtual returns (bool) {
        return _isGameOverOf(getState());
    }

    /// @inheritdoc IStateMachine
    function getExits() public view virtual returns (Exit[] memory) {
        return _exitsOf(getState());
    }

    /// @inheritdoc IStateMachine
    function participantsOf(bytes calldata state) external view returns (address[] memory) {
        return _participantsOf(state);
    }

    /// @inheritdoc IStateMachine
    function nextToWriteOf(bytes calldata state) external view returns (address) {
        return _nextToWriteOf(state);
    }

    /// @inheritdoc IStateMachine
    function isGameOverOf(bytes calldata state) external view returns (bool) {
        return _isGameOverOf(state);
    }

    /// @inheritdoc IStateMachine
    function exitsOf(bytes calldata state) external view returns (Exit[] memory) {
        return _exitsOf(state);
    }
}
