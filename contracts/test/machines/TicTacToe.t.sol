// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Test} from "../utils/Test.sol";
import {TicTacToe} from "../../src/machines/TicTacToe.sol";
import {AStateMachine} from "../../src/AStateMachine.sol";
import {Transaction, Exit} from "../../src/ChannelTypes.sol";

contract TicTacToeTest is Test {
    TicTacToe internal ttt;
    address internal constant X = address(0xA11CE);
    address internal constant O = address(0xB0B);
    uint256 internal constant STAKE = 1 ether;
    uint64 internal height;

    function setUp() public {
        ttt = new TicTacToe();
        ttt.setState(ttt.initialState(X, O, STAKE));
    }

    function _move(address who, uint8 cell) internal {
        height++;
        ttt.stateTransition(_tx(who, cell));
    }

    function _tx(address who, uint8 cell) internal view returns (Transaction memory t) {
        t.channelId = keccak256("c");
        t.height = height;
        t.participant = who;
        t.timestamp = 1000 + height;
        t.data = abi.encodeCall(TicTacToe.play, (cell));
    }

    function test_genesis() public view {
        address[] memory p = ttt.getParticipants();
        vm.assertEq(p.length, 2);
        vm.assertEq(p[0], X);
        vm.assertEq(p[1], O);
        vm.assertEq(ttt.getNextToWrite(), X);
        vm.assertFalse(ttt.isGameOver());
        Exit[] memory e = ttt.getExits();
        vm.assertEq(e[0].amount, STAKE);
        vm.assertEq(e[1].amount, STAKE);
    }

    function test_stateRoundTrip() public {
        _move(X, 4);
        bytes memory s = ttt.getState();
        TicTacToe other = new TicTacToe();
        other.setState(s);
        vm.assertEq(keccak256(other.getState()), keccak256(s));
        vm.assertEq(other.getNextToWrite(), O);
    }

    function test_rowWin() public {
        _move(X, 0);
        _move(O, 3);
        _move(X, 1);
        _move(O, 4);
        _move(X, 2);
        _assertWinner(X);
    }

    function test_columnWin() public {
        _move(X, 0);
        _move(O, 1);
        _move(X, 3);
        _move(O, 4);
        _move(X, 8);
        _move(O, 7);
        _assertWinner(O);
    }

    function test_diagonalWins() public {
        _move(X, 0);
        _move(O, 1);
        _move(X, 4);
        _move(O, 2);
        _move(X, 8);
        _assertWinner(X);
        ttt.setState(ttt.initialState(X, O, STAKE));
        _move(X, 2);
        _move(O, 0);
        _move(X, 4);
        _move(O, 1);
        _move(X, 6);
        _assertWinner(X);
    }

    function test_draw_refunds() public {
        // X O X / X O O / O X X
        uint8[9] memory order = [0, 1, 2, 4, 3, 5, 7, 6, 8];
        for (uint256 i = 0; i < 9; i++) {
            _move(i % 2 == 0 ? X : O, order[i]);
        }
        vm.assertTrue(ttt.isGameOver());
        TicTacToe.Game memory g = ttt.getGame();
        vm.assertEq(uint256(g.status), uint256(TicTacToe.Status.Draw));
        Exit[] memory e = ttt.getExits();
        vm.assertEq(e[0].amount, STAKE);
        vm.assertEq(e[1].amount, STAKE);
        vm.assertEq(ttt.getNextToWrite(), address(0));
    }

    function test_revert_wrongTurn() public {
        vm.expectRevert(abi.encodeWithSelector(AStateMachine.NotYourTurn.selector, O, X));
        ttt.stateTransition(_tx(O, 0));
    }

    function test_revert_outsider() public {
        vm.expectRevert(abi.encodeWithSelector(AStateMachine.NotYourTurn.selector, address(7), X));
        ttt.stateTransition(_tx(address(7), 0));
    }

    function test_revert_occupied() public {
        _move(X, 4);
        vm.expectRevert(abi.encodeWithSelector(TicTacToe.CellOccupied.selector, uint8(4)));
        ttt.stateTransition(_tx(O, 4));
    }

    function test_revert_outOfRange() public {
        vm.expectRevert(abi.encodeWithSelector(TicTacToe.CellOutOfRange.selector, uint8(9)));
        ttt.stateTransition(_tx(X, 9));
    }

    function test_revert_afterGameOver() public {
        test_rowWin();
        // Nobody may write after the game ended.
        vm.expectRevert(abi.encodeWithSelector(AStateMachine.NotYourTurn.selector, O, address(0)));
        ttt.stateTransition(_tx(O, 8));
    }

    function test_revert_moveCalledDirectly() public {
        vm.expectRevert(AStateMachine.OnlyTransition.selector);
        ttt.play(0);
    }

    function test_revert_dataNotAMove() public {
        Transaction memory t = _tx(X, 0);
        t.data = abi.encodeCall(TicTacToe.getState, ());
        vm.expectRevert(AStateMachine.NotAMove.selector);
        ttt.stateTransition(t);
    }

    function test_revert_dataReentersSetState() public {
        Transaction memory t = _tx(X, 0);
        // the move runs as a call from the machine to itself, which is not its owner
        t.data = abi.encodeCall(AStateMachine.setState, (ttt.initialState(O, X, 5 ether)));
        vm.expectRevert(abi.encodeWithSelector(AStateMachine.NotOwner.selector, address(ttt), address(this)));
        ttt.stateTransition(t);
        t.data = abi.encodeCall(AStateMachine.slashParticipant, (O));
        vm.expectRevert(abi.encodeWithSelector(AStateMachine.NotOwner.selector, address(ttt), address(this)));
        ttt.stateTransition(t);
    }

    /// Only the owner (the deployer here) may change the machine's storage (R9, attack 6).
    function test_onlyOwnerChangesStorage() public {
        address outsider = address(0xBAD);
        bytes memory s = ttt.initialState(O, X, 5 ether);
        bytes memory err = abi.encodeWithSelector(AStateMachine.NotOwner.selector, outsider, address(this));
        vm.startPrank(outsider);
        vm.expectRevert(err);
        ttt.setState(s);
        vm.expectRevert(err);
        ttt.stateTransition(_tx(X, 0));
        vm.expectRevert(err);
        ttt.removeParticipant(O);
        vm.expectRevert(err);
        ttt.slashParticipant(O);
        vm.expectRevert(err);
        ttt.joinParticipant(outsider, 1, "");
        // a deployed machine has an owner: nobody can take it over
        vm.expectRevert(AStateMachine.AlreadyInitialized.selector);
        ttt.initialize();
        vm.stopPrank();
        vm.assertEq(ttt.owner(), address(this));
    }

    function test_revert_garbageData() public {
        Transaction memory t = _tx(X, 0);
        t.data = hex"deadbeef";
        vm.expectRevert();
        ttt.stateTransition(t);
    }

    function test_remove_forfeitsToOther() public {
        _move(X, 0);
        Exit[] memory out = ttt.removeParticipant(O);
        vm.assertEq(out.length, 1);
        vm.assertEq(out[0].participant, O);
        vm.assertEq(out[0].amount, 0);
        vm.assertTrue(ttt.isGameOver());
        Exit[] memory e = ttt.getExits();
        vm.assertEq(e.length, 1);
        vm.assertEq(e[0].participant, X);
        vm.assertEq(e[0].amount, 2 * STAKE);
        vm.assertEq(ttt.getParticipants().length, 1);
    }

    function test_slash_afterWin_givesToOther() public {
        test_rowWin();
        ttt.slashParticipant(X);
        Exit[] memory e = ttt.getExits();
        vm.assertEq(e[0].participant, O);
        vm.assertEq(e[0].amount, 2 * STAKE);
    }

    function test_revert_removeStranger() public {
        vm.expectRevert(abi.encodeWithSelector(TicTacToe.NotAPlayer.selector, address(9)));
        ttt.removeParticipant(address(9));
    }

    function test_revert_joinNotSupported() public {
        vm.expectRevert(AStateMachine.HookNotSupported.selector);
        ttt.joinParticipant(address(9), 1, "");
    }

    function test_revert_invalidPlayers() public {
        vm.expectRevert(TicTacToe.InvalidPlayers.selector);
        ttt.initialState(X, X, 1);
    }

    function test_decodersMatchStorage() public {
        _move(X, 4);
        bytes memory s = ttt.getState();
        vm.assertEq(ttt.nextToWriteOf(s), ttt.getNextToWrite());
        vm.assertEq(ttt.isGameOverOf(s), ttt.isGameOver());
        vm.assertEq(ttt.participantsOf(s).length, 2);
        vm.assertEq(ttt.exitsOf(s)[1].amount, STAKE);
    }

    /// Any sequence of moves keeps the total of the exits equal to both stakes.
    function testFuzz_conservation(uint8[9] memory cells) public {
        for (uint256 i = 0; i < 9; i++) {
            if (ttt.isGameOver()) break;
            address who = ttt.getNextToWrite();
            height++;
            try ttt.stateTransition(_tx(who, cells[i] % 10)) {} catch {}
            Exit[] memory e = ttt.getExits();
            uint256 sum;
            for (uint256 j = 0; j < e.length; j++) {
                sum += e[j].amount;
            }
            vm.assertEq(sum, 2 * STAKE);
        }
    }

    function _assertWinner(address w) internal view {
        vm.assertTrue(ttt.isGameOver());
        TicTacToe.Game memory g = ttt.getGame();
        vm.assertEq(uint256(g.status), uint256(TicTacToe.Status.Won));
        vm.assertEq(g.winner, w);
        Exit[] memory e = ttt.getExits();
        uint256 wi = e[0].participant == w ? 0 : 1;
        vm.assertEq(e[wi].amount, 2 * STAKE);
        vm.assertEq(e[1 - wi].amount, 0);
        vm.assertEq(ttt.getNextToWrite(), address(0));
    }
}
