// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Transaction, Exit} from "../ChannelTypes.sol";

/// @title IStateMachine
/// @notice The interface the StateChannelManager (and the Rust runtime) uses to drive a channel's state
/// machine. The machine's storage is scratch space: every caller first loads a state with `setState`,
/// then applies a transition or a hook, then reads the result with `getState`, all in one transaction.
/// The `...Of(bytes)` views decode a state passed as bytes without touching storage. The
/// storage-changing functions answer only to the machine's owner (its deployer; for a clone made by the
/// manager, the manager): see `docs/security.md`, R9.
interface IStateMachine {
    /// @notice Makes the caller the owner of a machine that has none (a fresh EIP-1167 clone).
    function initialize() external;

    /// @notice The account allowed to change this machine's storage.
    function owner() external view returns (address);

    /// @notice Replaces the machine's storage with the decoded `state`.
    function setState(bytes calldata state) external;

    /// @notice The encoded current state; `stateHash = keccak256(getState())`.
    function getState() external view returns (bytes memory);

    /// @notice Applies `transaction` (its `data` is a call of one of the machine's moves) to the current
    /// state. Reverts when the issuer may not write now or the move is invalid.
    function stateTransition(Transaction calldata transaction) external;

    /// @notice Adds `participant` with `amount` deposited; returns what leaves the channel at once.
    function joinParticipant(address participant, uint256 amount, bytes calldata data)
        external
        returns (Exit[] memory exits);

    /// @notice Removes `participant` (timeout, forced exit or agreed leave); returns what leaves at once.
    function removeParticipant(address participant) external returns (Exit[] memory exits);

    /// @notice Removes `participant` as a punishment; returns what leaves at once (usually nothing for it).
    function slashParticipant(address participant) external returns (Exit[] memory exits);

    /// @notice Participants of the current state, in signing order.
    function getParticipants() external view returns (address[] memory);

    /// @notice The participant expected to write the next transaction, or address(0) if nobody is.
    function getNextToWrite() external view returns (address);

    /// @notice True when no further transition is possible and the state can be settled.
    function isGameOver() external view returns (bool);

    /// @notice Payouts if the channel settled in the current state; sums to the locked total.
    function getExits() external view returns (Exit[] memory);

    /// @notice `getParticipants` of an encoded state.
    function participantsOf(bytes calldata state) external view returns (address[] memory);

    /// @notice `getNextToWrite` of an encoded state.
    function nextToWriteOf(bytes calldata state) external view returns (address);

    /// @notice `isGameOver` of an encoded state.
    function isGameOverOf(bytes calldata state) external view returns (bool);

    /// @notice `getExits` of an encoded state.
    function exitsOf(bytes calldata state) external view returns (Exit[] memory);
}
