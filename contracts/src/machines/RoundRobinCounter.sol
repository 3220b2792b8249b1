// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AStateMachine} from "../AStateMachine.sol";
import {Exit} from "../ChannelTypes.sol";

/// @title RoundRobinCounter
/// @notice An N-party machine for simulations and benchmarks: participants take turns in order, each
/// adding 1..MAX_STEP to a shared counter; the game is over when the counter reaches the target. Every
/// participant keeps its own deposit. Participants may join (appended at the end of the turn order)
/// and leave (taking their deposit); a slashed participant's deposit is shared by the others.
/// @dev State: `abi.encode(State)`.
contract RoundRobinCounter is AStateMachine {
    struct State {
        address[] participants; // turn order and signing order
        uint256[] balances; // aligned with `participants`
        uint64 counter;
        uint64 target;
        uint64 next; // index in `participants` of the next writer
    }

    /// @notice Largest step one move may add.
    uint64 public constant MAX_STEP = 10;

    /// @notice The step is 0 or above MAX_STEP.
    error InvalidStep(uint64 step);
    /// @notice The counter already reached the target.
    error TargetReached();
    /// @notice The address is not a participant.
    error NotAParticipant(address who);
    /// @notice The address is already a participant.
    error AlreadyParticipant(address who);
    /// @notice A genesis state needs aligned, non-empty, duplicate-free lists and a non-zero target.
    error InvalidGenesis();

    State internal s;

    /// @notice The genesis state: `participants` with their `deposits`, playing up to `target`.
    function initialState(address[] calldata participants, uint256[] calldata deposits, uint64 target)
        external
        pure
        returns (bytes memory)
    {
        if (participants.length == 0 || participants.length != deposits.length || target == 0) {
            revert InvalidGenesis();
        }
        for (uint256 i = 0; i < participants.length; i++) {
            if (participants[i] == address(0)) revert InvalidGenesis();
            for (uint256 j = 0; j < i; j++) {
                if (participants[i] == participants[j]) revert InvalidGenesis();
            }
        }
        return abi.encode(State(participants, deposits, 0, target, 0));
    }

    /// @notice The move: add `step` (1..MAX_STEP) to the counter and pass the turn on.
    function add(uint64 step) external onlyTransition {
        if (s.counter >= s.target) revert TargetReached();
        if (step == 0 || step > MAX_STEP) revert InvalidStep(step);
        s.counter += step;
        s.next = uint64((s.next + 1) % s.participants.length);
    }

    /// @notice The decoded current state.
    function getCounterState() external view returns (State memory) {
        return s;
    }

    /// @notice Decodes an encoded state.
    function decode(bytes memory state) public pure returns (State memory) {
        return abi.decode(state, (State));
    }

    /// @inheritdoc AStateMachine
    function getState() public view override returns (bytes memory) {
        return abi.encode(s);
    }

    function _setState(bytes memory state) internal override {
        s = abi.decode(state, (State));
    }

    function _participantsOf(bytes memory state) internal pure override returns (address[] memory) {
        return decode(state).participants;
    }

    function _nextToWriteOf(bytes memory state) internal pure override returns (address) {
        State memory st = decode(state);
        if (st.counter >= st.target || st.participants.length == 0) return address(0);
        return st.participants[st.next];
    }

    function _isGameOverOf(bytes memory state) internal pure override returns (bool) {
        State memory st = decode(state);
        return st.counter >= st.target;
    }

    function _exitsOf(bytes memory state) internal pure override returns (Exit[] memory exits) {
        State memory st = decode(state);
        exits = new Exit[](st.participants.length);
        for (uint256 i = 0; i < exits.length; i++) {
            exits[i] = Exit(st.participants[i], st.balances[i]);
        }
    }

    /// @dev Appends the joiner at the end of the turn order with its deposit.
    function _joinParticipant(address participant, uint256 amount, bytes memory)
        internal
        override
        returns (Exit[] memory exits)
    {
        if (participant == address(0)) revert NotAParticipant(participant);
        for (uint256 i = 0; i < s.participants.length; i++) {
            if (s.participants[i] == participant) revert AlreadyParticipant(participant);
        }
        s.participants.push(participant);
        s.balances.push(amount);
        return exits;
    }

    /// @dev The leaver takes its deposit.
    function _removeParticipant(address participant) internal override returns (Exit[] memory exits) {
        uint256 amount = _drop(participant);
        exits = new Exit[](1);
        exits[0] = Exit(participant, amount);
    }

    /// @dev The slashed participant leaves with nothing; its deposit is shared by the others (the first
    /// ones get the remainder).
    function _slashParticipant(address participant) internal override returns (Exit[] memory exits) {
        uint256 amount = _drop(participant);
        uint256 n = s.participants.length;
        exits = new Exit[](1);
        exits[0] = Exit(participant, 0);
        if (n == 0) {
            exits[0].amount = amount; // nobody to share with
            return exits;
        }
        uint256 share = amount / n;
        uint256 rest = amount % n;
        for (uint256 i = 0; i < n; i++) {
            s.balances[i] += share + (i < rest ? 1 : 0);
        }
    }

    /// @dev Removes `participant` keeping the order; returns its balance.
    function _drop(address participant) private returns (uint256 amount) {
        uint256 n = s.participants.length;
        uint256 idx = n;
        for (uint256 i = 0; i < n; i++) {
            if (s.participants[i] == participant) {
                idx = i;
                break;
            }
        }
        if (idx == n) revert NotAParticipant(participant);
        amount = s.balances[idx];
        for (uint256 i = idx; i + 1 < n; i++) {
            s.participants[i] = s.participants[i + 1];
            s.balances[i] = s.balances[i + 1];
        }
        s.participants.pop();
        s.balances.pop();
        if (n == 1) {
            s.next = 0;
        } else if (idx < s.next) {
            s.next -= 1;
        } else if (s.next >= n - 1) {
            s.next = 0;
        }
    }
}
