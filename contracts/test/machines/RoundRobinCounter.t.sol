// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Test} from "../utils/Test.sol";
import {RoundRobinCounter} from "../../src/machines/RoundRobinCounter.sol";
import {AStateMachine} from "../../src/AStateMachine.sol";
import {Transaction, Exit} from "../../src/ChannelTypes.sol";

contract RoundRobinCounterTest is Test {
    RoundRobinCounter internal rr;
    address[] internal ps;
    uint256[] internal deps;

    function setUp() public {
        rr = new RoundRobinCounter();
        for (uint256 i = 0; i < 4; i++) {
            ps.push(address(uint160(0x100 + i)));
            deps.push(1 ether + i);
        }
        rr.setState(rr.initialState(ps, deps, 20));
    }

    function _tx(address who, uint64 step) internal pure returns (Transaction memory t) {
        t.participant = who;
        t.data = abi.encodeCall(RoundRobinCounter.add, (step));
    }

    function test_turnsInOrder_untilTarget() public {
        for (uint256 i = 0; i < 4; i++) {
            vm.assertEq(rr.getNextToWrite(), ps[i]);
            rr.stateTransition(_tx(ps[i], 5));
        }
        vm.assertTrue(rr.isGameOver());
        vm.assertEq(rr.getNextToWrite(), address(0));
        vm.expectRevert(abi.encodeWithSelector(AStateMachine.NotYourTurn.selector, ps[0], address(0)));
        rr.stateTransition(_tx(ps[0], 1));
        Exit[] memory e = rr.getExits();
        for (uint256 i = 0; i < 4; i++) {
            vm.assertEq(e[i].participant, ps[i]);
            vm.assertEq(e[i].amount, deps[i]);
        }
    }

    function test_revert_invalidStep() public {
        vm.expectRevert(abi.encodeWithSelector(RoundRobinCounter.InvalidStep.selector, uint64(0)));
        rr.stateTransition(_tx(ps[0], 0));
        vm.expectRevert(abi.encodeWithSelector(RoundRobinCounter.InvalidStep.selector, uint64(11)));
        rr.stateTransition(_tx(ps[0], 11));
    }

    function test_revert_wrongTurn() public {
        vm.expectRevert(abi.encodeWithSelector(AStateMachine.NotYourTurn.selector, ps[1], ps[0]));
        rr.stateTransition(_tx(ps[1], 1));
    }

    function test_join_appends() public {
        address n = address(0x999);
        Exit[] memory out = rr.joinParticipant(n, 3 ether, "");
        vm.assertEq(out.length, 0);
        address[] memory p = rr.getParticipants();
        vm.assertEq(p.length, 5);
        vm.assertEq(p[4], n);
        vm.assertEq(rr.getExits()[4].amount, 3 ether);
        vm.expectRevert(abi.encodeWithSelector(RoundRobinCounter.AlreadyParticipant.selector, n));
        rr.joinParticipant(n, 1, "");
    }

    function test_remove_keepsOrderAndTurn() public {
        rr.stateTransition(_tx(ps[0], 1));
        rr.stateTransition(_tx(ps[1], 1));
        // next is ps[2]; remove ps[0] (before it): next stays ps[2]
        Exit[] memory out = rr.removeParticipant(ps[0]);
        vm.assertEq(out[0].participant, ps[0]);
        vm.assertEq(out[0].amount, deps[0]);
        vm.assertEq(rr.getNextToWrite(), ps[2]);
        // remove the next writer: the turn passes to the one after it
        rr.removeParticipant(ps[2]);
        vm.assertEq(rr.getNextToWrite(), ps[3]);
        // remove the last one while it is next: wraps to the first
        rr.removeParticipant(ps[3]);
        vm.assertEq(rr.getNextToWrite(), ps[1]);
    }

    function test_slash_sharesDeposit() public {
        uint256 before;
        Exit[] memory e0 = rr.getExits();
        for (uint256 i = 0; i < e0.length; i++) {
            before += e0[i].amount;
        }
        Exit[] memory out = rr.slashParticipant(ps[1]);
        vm.assertEq(out[0].amount, 0);
        Exit[] memory e = rr.getExits();
        uint256 sum;
        for (uint256 i = 0; i < e.length; i++) {
            sum += e[i].amount;
            vm.assertTrue(e[i].participant != ps[1]);
        }
        vm.assertEq(sum, before);
    }

    function test_revert_removeStranger() public {
        vm.expectRevert(abi.encodeWithSelector(RoundRobinCounter.NotAParticipant.selector, address(1)));
        rr.removeParticipant(address(1));
    }

    function test_revert_badGenesis() public {
        address[] memory p = new address[](2);
        p[0] = address(1);
        p[1] = address(1);
        uint256[] memory d = new uint256[](2);
        vm.expectRevert(RoundRobinCounter.InvalidGenesis.selector);
        rr.initialState(p, d, 10);
    }

    function test_sixtyFourParties() public {
        address[] memory p = new address[](64);
        uint256[] memory d = new uint256[](64);
        for (uint256 i = 0; i < 64; i++) {
            p[i] = address(uint160(0x1000 + i));
            d[i] = i;
        }
        rr.setState(rr.initialState(p, d, 64));
        for (uint256 i = 0; i < 64; i++) {
            rr.stateTransition(_tx(p[i], 1));
        }
        vm.assertTrue(rr.isGameOver());
    }
}
