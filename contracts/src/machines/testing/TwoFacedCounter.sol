// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {RoundRobinCounter} from "../RoundRobinCounter.sol";

/// @title TwoFacedCounter
/// @notice For tests only: a RoundRobinCounter whose views of its own storage disagree with the views
/// the court asks of an encoded state. `getNextToWrite()` names the participant after the real next
/// writer and `isGameOver()` answers the opposite of `isGameOverOf(getState())`. A participant may
/// propose a channel on such a machine; the peers must read the turn as the court does (from
/// `nextToWriteOf(state)` and `isGameOverOf(state)`, which the court asks before it accuses a
/// participant of silence), or the court and the peers disagree on whose turn it is and an honest
/// peer waits while the chain's timeout runs against it. The moves themselves follow the court's
/// turn (`AStateMachine._mayWrite`).
contract TwoFacedCounter is RoundRobinCounter {
    /// @notice The participant after the one whose turn it is.
    function getNextToWrite() public view override returns (address) {
        uint256 n = s.participants.length;
        if (n == 0) return address(0);
        return s.participants[(s.next + 1) % n];
    }

    /// @notice The opposite of the truth.
    function isGameOver() public view override returns (bool) {
        return s.counter < s.target;
    }
}
