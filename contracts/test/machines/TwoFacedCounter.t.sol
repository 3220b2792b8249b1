// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Test} from "../utils/Test.sol";
import {RoundRobinCounter} from "../../src/machines/RoundRobinCounter.sol";
import {TwoFacedCounter} from "../../src/machines/testing/TwoFacedCounter.sol";
import {AStateMachine} from "../../src/AStateMachine.sol";
import {Transaction} from "../../src/ChannelTypes.sol";

/// A machine whose own views lie still takes moves by the turn the court reads of its state.
contract TwoFacedCounterTest is Test {
    TwoFacedCounter internal m;
    address[] internal ps;
    uint256[] internal deps;

    function setUp() public {
        m = new TwoFacedCounter();
        ps.push(address(0x100));
        ps.push(address(0x101));
        deps.push(1 ether);
        deps.push(1 ether);
        m.setState(m.initialState(ps, deps, 3));
    }

    function _tx(address who) internal pure returns (Transaction memory t) {
        t.participant = who;
        t.data = abi.encodeCall(RoundRobinCounter.add, (1));
    }

    function test_ownViewsLie() public view {
        bytes memory state = m.getState();
        vm.assertEq(m.nextToWriteOf(state), ps[0]);
        vm.assertEq(m.getNextToWrite(), ps[1]);
        vm.assertFalse(m.isGameOverOf(state));
        vm.assertTrue(m.isGameOver());
    }

    function test_movesFollowTheCourtsTurn() public {
        // The participant the machine's own view names may not move: the court would not accuse it.
        vm.expectRevert(abi.encodeWithSelector(AStateMachine.NotYourTurn.selector, ps[1], ps[0]));
        m.stateTransition(_tx(ps[1]));
        // The one `nextToWriteOf` names moves.
        m.stateTransition(_tx(ps[0]));
        vm.assertEq(m.nextToWriteOf(m.getState()), ps[1]);
        m.stateTransition(_tx(ps[1]));
        vm.assertEq(m.nextToWriteOf(m.getState()), ps[0]);
    }
}
