// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AStateMachine} from "../AStateMachine.sol";
import {Exit} from "../ChannelTypes.sol";

/// @title TicTacToe
/// @notice A two-player tic-tac-toe channel: each player stakes the same amount, the winner takes both
/// stakes, a draw refunds them, and a player removed (timeout, forced exit) or slashed forfeits its stake
/// to the other.
/// @dev State: `abi.encode(Game)`. Player 0 plays X (mark 1) and starts; player 1 plays O (mark 2).
contract TicTacToe is AStateMachine {
    enum Status {
        Playing,
        Won,
        Draw,
        Forfeit
    }

    struct Game {
        address[] players; // two while playing; the remaining one after a forfeit
        uint256[] balances; // what each of `players` takes out, aligned with it
        uint8[9] board; // 0 empty, 1 X (players[0]), 2 O (players[1]); cells 0..8 row by row
        uint8 next; // index in `players` of the next writer
        uint8 moves; // marks on the board
        Status status;
        address winner; // set when Won or Forfeit
    }

    /// @notice The move was made after the game ended.
    error GameIsOver();
    /// @notice The cell index is not in 0..8.
    error CellOutOfRange(uint8 cell);
    /// @notice The cell already holds a mark.
    error CellOccupied(uint8 cell);
    /// @notice The address is not a player of this game.
    error NotAPlayer(address who);
    /// @notice A genesis state needs two distinct non-zero players.
    error InvalidPlayers();

    Game internal game;

    /// @notice The genesis state of a game between `x` (starts) and `o`, each staking `stake`.
    function initialState(address x, address o, uint256 stake) external pure returns (bytes memory) {
        if (x == address(0) || o == address(0) || x == o) revert InvalidPlayers();
        Game memory g;
        g.players = new address[](2);
        g.players[0] = x;
        g.players[1] = o;
        g.balances = new uint256[](2);
        g.balances[0] = stake;
        g.balances[1] = stake;
        return abi.encode(g);
    }

    /// @notice The move: put the issuer's mark on `cell` (0..8, row by row).
    function play(uint8 cell) external onlyTransition {
        Game storage g = game;
        if (g.status != Status.Playing) revert GameIsOver();
        if (cell > 8) revert CellOutOfRange(cell);
        if (g.board[cell] != 0) revert CellOccupied(cell);
        uint8 mover = g.next;
        uint8 mark = mover + 1;
        g.board[cell] = mark;
        g.moves += 1;
        if (_wins(g.board, mark)) {
            g.status = Status.Won;
            g.winner = g.players[mover];
            uint8 loser = 1 - mover;
            g.balances[mover] += g.balances[loser];
            g.balances[loser] = 0;
        } else if (g.moves == 9) {
            g.status = Status.Draw;
        } else {
            g.next = 1 - mover;
        }
    }

    /// @notice The decoded current game.
    function getGame() external view returns (Game memory) {
        return game;
    }

    /// @notice Decodes an encoded state.
    function decode(bytes memory state) public pure returns (Game memory) {
        return abi.decode(state, (Game));
    }

    /// @inheritdoc AStateMachine
    function getState() public view override returns (bytes memory) {
        return abi.encode(game);
    }

    function _setState(bytes memory state) internal override {
        game = abi.decode(state, (Game));
    }

    function _participantsOf(bytes memory state) internal pure override returns (address[] memory) {
        return decode(state).players;
    }

    function _nextToWriteOf(bytes memory state) internal pure override returns (address) {
        Game memory g = decode(state);
        if (g.status != Status.Playing || g.players.length != 2) return address(0);
        return g.players[g.next];
    }

    function _isGameOverOf(bytes memory state) internal pure override returns (bool) {
        return decode(state).status != Status.Playing;
    }

    function _exitsOf(bytes memory state) internal pure override returns (Exit[] memory exits) {
        Game memory g = decode(state);
        exits = new Exit[](g.players.length);
        for (uint256 i = 0; i < exits.length; i++) {
            exits[i] = Exit(g.players[i], g.balances[i]);
        }
    }

    /// @dev Timeout or forced exit: the leaver forfeits its stake to the other player.
    function _removeParticipant(address participant) internal override returns (Exit[] memory) {
        return _forfeit(participant);
    }

    /// @dev Slash: same as a forfeit; the slashed player leaves with nothing.
    function _slashParticipant(address participant) internal override returns (Exit[] memory) {
        return _forfeit(participant);
    }

    function _forfeit(address participant) private returns (Exit[] memory exits) {
        Game storage g = game;
        uint256 n = g.players.length;
        uint256 idx = n;
        for (uint256 i = 0; i < n; i++) {
            if (g.players[i] == participant) idx = i;
        }
        if (idx == n) revert NotAPlayer(participant);
        exits = new Exit[](1);
        exits[0] = Exit(participant, 0);
        if (n == 1) {
            // Last player leaves: it takes what it has.
            exits[0].amount = g.balances[0];
            g.players.pop();
            g.balances.pop();
            return exits;
        }
        uint256 other = 1 - idx;
        address otherPlayer = g.players[other];
        uint256 total = g.balances[0] + g.balances[1];
        delete g.players;
        delete g.balances;
        g.players.push(otherPlayer);
        g.balances.push(total);
        g.next = 0;
        g.status = Status.Forfeit;
        g.winner = otherPlayer;
    }

    function _wins(uint8[9] storage b, uint8 m) private view returns (bool) {
        return (b[0] == m && b[1] == m && b[2] == m) || (b[3] == m && b[4] == m && b[5] == m)
            || (b[6] == m && b[7] == m && b[8] == m) || (b[0] == m && b[3] == m && b[6] == m)
            || (b[1] == m && b[4] == m && b[7] == m) || (b[2] == m && b[5] == m && b[8] == m)
            || (b[0] == m && b[4] == m && b[8] == m) || (b[2] == m && b[4] == m && b[6] == m);
    }
}
