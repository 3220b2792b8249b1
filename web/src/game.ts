// Tic-tac-toe as the page sees it: the machine's `getGame` view, whose mark is whose, whether a
// click may become a move, and who won. No DOM here: the unit tests run these in Node.

import { sameAddress, shortAddress } from './format.js';

/** TicTacToe.sol's `Status`. */
export const Status = { Playing: 0, Won: 1, Draw: 2, Forfeit: 3 } as const;

/** TicTacToe.sol's `Game`, as the typed view `getGame` gives it. */
export interface GameState {
  /** Two while playing (X first, then O); the one left after a forfeit. */
  players: readonly string[];
  balances: readonly bigint[];
  /** 0 empty, 1 X, 2 O; cells 0..8 row by row. */
  board: readonly number[];
  next: number;
  moves: number;
  status: number;
  winner: string;
}

export type Mark = 'X' | 'O';

/** The mark of a cell's value. */
export function markOfCell(value: number | undefined): Mark | '' {
  return value === 1 ? 'X' : value === 2 ? 'O' : '';
}

/**
 * X and O: the players in the proposal's order (X proposed and starts). `order` is the channel's
 * participants as the proposal had them (`channel_info.deposits`), or the game's players.
 */
export function roleOf(me: string, order: readonly string[]): Mark | undefined {
  if (sameAddress(order[0], me)) return 'X';
  if (sameAddress(order[1], me)) return 'O';
  return undefined;
}

/** What the page knows when a cell is clicked. */
export interface MoveContext {
  connected: boolean;
  phase: string | undefined;
  me: string;
  /** `channel_info.next_writer` (null: nobody / anyone). */
  nextWriter: string | null | undefined;
  game: GameState | undefined;
  /** A move of ours is under way. */
  busy: boolean;
}

/** Why a click on `cell` cannot be a move (a sentence for the player), or undefined when it can. */
export function refuseMove(cell: number, c: MoveContext): string | undefined {
  if (!c.connected) return 'Not connected to the daemon: wait until it is back.';
  if (c.busy) return 'Your previous move is still being made: wait a moment.';
  if (c.phase !== 'Live') {
    if (c.phase === 'Proposed' || c.phase === 'Funding' || c.phase === 'Joining') {
      return 'The game has not started yet: it starts once both deposits are in.';
    }
    return 'This game is over: no more moves.';
  }
  const g = c.game;
  if (!g) return 'The board is not loaded yet.';
  if (g.status !== Status.Playing) return 'The game is over: no more moves.';
  if (!sameAddress(c.nextWriter, c.me)) return 'Not your turn: wait for your opponent to move.';
  if (cell < 0 || cell > 8) return `There is no cell ${cell}.`;
  if ((g.board[cell] ?? 0) !== 0) return `That cell is taken (${markOfCell(g.board[cell])} is there): pick an empty one.`;
  return undefined;
}

export type OutcomeKind = 'playing' | 'won' | 'lost' | 'draw';

/** Who won, in words for `me`. */
export function outcome(g: GameState, me: string, order: readonly string[]): { kind: OutcomeKind; text: string } {
  const mark = (who: string) => roleOf(who, order) ?? '?';
  switch (g.status) {
    case Status.Won:
      return sameAddress(g.winner, me)
        ? { kind: 'won', text: `You won (${mark(me)}, three in a row)!` }
        : { kind: 'lost', text: `You lost: your opponent ${shortAddress(g.winner)} (${mark(g.winner)}) has three in a row.` };
    case Status.Draw:
      return { kind: 'draw', text: 'Draw: the board is full; each player gets the stake back.' };
    case Status.Forfeit:
      return sameAddress(g.winner, me)
        ? { kind: 'won', text: 'You won: your opponent forfeited (the chain removed them).' }
        : { kind: 'lost', text: `You lost: the chain removed you; ${shortAddress(g.winner)} takes both stakes.` };
    default:
      return { kind: 'playing', text: '' };
  }
}
