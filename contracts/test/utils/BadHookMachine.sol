// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AStateMachine} from "../../src/AStateMachine.sol";
import {Exit} from "../../src/ChannelTypes.sol";

/// @notice A round-robin counter (every participant keeps its deposit) whose remove and slash hooks misbehave
/// in the way the state's `mode` chooses, to check that a verdict can never lock a channel
/// (docs/security.md, R10). The mode is part of the state, so one deployment serves every case.
contract BadHookMachine is AStateMachine {
    enum Mode {
        /// The hooks work (the target leaves with its balance).
        Honest,
        /// The hooks revert.
        Revert,
        /// The target takes another participant's balance too (value is conserved, the other loses).
        LowerOthers,
        /// The hook pays the target one unit more than it had (value not conserved).
        Unconserved,
        /// The hooks burn all the gas they are given.
        BurnGas,
        /// After the hook, `getState` returns bytes that do not decode.
        UndecodableResult,
        /// The hooks return data that is not an ABI-encoded `Exit[]`.
        MalformedReturn,
        /// The hooks work, but `isGameOverOf` reverts once a move was made.
        GameOverReverts
    }

    struct State {
        address[] participants;
        uint256[] balances;
        uint64 counter;
        uint64 next;
        Mode mode;
    }

    State internal s;
    /// Set by the hook in mode `UndecodableResult`; cleared by `setState`.
    bool internal broken;

    function initialState(address[] calldata participants, uint256[] calldata deposits, Mode mode)
        external
        pure
        returns (bytes memory)
    {
        return abi.encode(State(participants, deposits, 0, 0, mode));
    }

    /// @notice The move: add 1..10 to the counter and pass the turn on.
    function add(uint64 step) external onlyTransition {
        require(step >= 1 && step <= 10, "step");
        s.counter += step;
        s.next = uint64((s.next + 1) % s.participants.length);
    }

    function decode(bytes memory state) public pure returns (State memory) {
        return abi.decode(state, (State));
    }

    function getState() public view override returns (bytes memory) {
        if (broken) return hex"deadbeef";
        return abi.encode(s);
    }

    function _setState(bytes memory state) internal override {
        s = abi.decode(state, (State));
        broken = false;
    }

    function _participantsOf(bytes memory state) internal pure override returns (address[] memory) {
        return decode(state).participants;
    }

    function _nextToWriteOf(bytes memory state) internal pure override returns (address) {
        State memory st = decode(state);
        return st.participants.length == 0 ? address(0) : st.participants[st.next];
    }

    function _isGameOverOf(bytes memory state) internal pure override returns (bool) {
        State memory st = decode(state);
        if (st.mode == Mode.GameOverReverts && st.counter > 0) revert("isGameOverOf refuses");
        return false;
    }

    function _exitsOf(bytes memory state) internal pure override returns (Exit[] memory exits) {
        State memory st = decode(state);
        exits = new Exit[](st.participants.length);
        for (uint256 i = 0; i < exits.length; i++) {
            exits[i] = Exit(st.participants[i], st.balances[i]);
        }
    }

    function _removeParticipant(address participant) internal override returns (Exit[] memory) {
        return _hook(participant);
    }

    function _slashParticipant(address participant) internal override returns (Exit[] memory) {
        return _hook(participant);
    }

    function _hook(address participant) private returns (Exit[] memory exits) {
        Mode mode = s.mode;
        if (mode == Mode.Revert) revert("hook refuses");
        if (mode == Mode.BurnGas) {
            uint256 x;
            while (gasleft() > 0) {
                x++;
            }
        }
        if (mode == Mode.MalformedReturn) {
            assembly {
                mstore(0, 0x20)
                mstore(0x20, 0xffffffffffff)
                return(0, 0x40)
            }
        }
        uint256 n = s.participants.length;
        uint256 idx = n;
        for (uint256 i = 0; i < n; i++) {
            if (s.participants[i] == participant) idx = i;
        }
        require(idx < n, "not a participant");
        uint256 amount = s.balances[idx];
        if (mode == Mode.LowerOthers) {
            uint256 other = idx == 0 ? 1 : 0;
            amount += s.balances[other];
            s.balances[other] = 0;
        }
        for (uint256 i = idx; i + 1 < n; i++) {
            s.participants[i] = s.participants[i + 1];
            s.balances[i] = s.balances[i + 1];
        }
        s.participants.pop();
        s.balances.pop();
        s.next = 0;
        exits = new Exit[](1);
        exits[0] = Exit(participant, mode == Mode.Unconserved ? amount + 1 : amount);
        if (mode == Mode.UndecodableResult) broken = true;
    }
}
