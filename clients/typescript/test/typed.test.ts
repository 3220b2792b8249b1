// Conversions between the ABI's TypeScript types and the daemon's JSON, and the typing of calls and
// views (checked by tsc: a wrong name or argument type below would not compile).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { AbiFunction } from 'viem';

import { decodeResult, encodeArgs, signature, ticTacToeAbi, type EntenteClient } from '../src/index.js';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(_: T): void {}

const fn = (name: string) => ticTacToeAbi.find((x) => x.type === 'function' && x.name === name) as unknown as AbiFunction;

test('bigint arguments go out as decimal strings, small ints as numbers', () => {
  const addr = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';
  assert.deepEqual(encodeArgs(fn('initialState'), [addr, addr, 10n ** 18n]), [addr, addr, '1000000000000000000']);
  assert.deepEqual(encodeArgs(fn('play'), [4]), [4]);
  assert.equal(signature(fn('initialState')), 'initialState(address,address,uint256)');
});

test('tuple arguments (objects with named components) go out as arrays, in component order', () => {
  const f: AbiFunction = {
    type: 'function',
    name: 'f',
    stateMutability: 'nonpayable',
    inputs: [
      { name: 'xs', type: 'tuple[]', components: [{ name: 'who', type: 'address' }, { name: 'amount', type: 'uint256' }] },
    ],
    outputs: [],
  };
  assert.deepEqual(encodeArgs(f, [[{ amount: 5n, who: '0x01' }]]), [[['0x01', '5']]]);
  assert.equal(signature(f), 'f((address,uint256)[])');
});

test("the daemon's JSON comes back in the ABI's types: uint256 as bigint, uint8 as number", () => {
  const json = {
    balances: ['1000000000000000000', '1000'],
    board: [2, 1, 1, 1, 1, 2, 2, 2, 0],
    moves: 8,
    next: 0,
    players: ['0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266', '0x70997970C51812dc3A010C7d01b50e0d17dc79C8'],
    status: 0,
    winner: '0x0000000000000000000000000000000000000000',
  };
  const game = decodeResult(fn('getGame'), json) as Record<string, unknown>;
  assert.deepEqual(game['balances'], [10n ** 18n, 1000n]);
  assert.deepEqual(game['board'], json.board);
  assert.equal(game['moves'], 8);
  assert.deepEqual(
    decodeResult(fn('getExits'), [{ participant: '0x01', amount: '2000' }]),
    [{ participant: '0x01', amount: 2000n }],
  );
  assert.equal(decodeResult(fn('isGameOver'), false), false);
  assert.equal(decodeResult(fn('play'), null), undefined);
});

// Compile-time only: the calls below are type-checked against the TicTacToe ABI, never run.
async function typing(client: EntenteClient): Promise<void> {
  const ch = client.channel('0x01', ticTacToeAbi);
  await ch.call('play', [4]);
  // @ts-expect-error a view is not a move
  await ch.call('getGame');
  // @ts-expect-error play takes a uint8 (a number), not a string
  await ch.call('play', ['4']);
  // @ts-expect-error no such function
  await ch.call('fly', []);
  const game = await ch.view('getGame');
  expectType<Equal<typeof game.balances, readonly bigint[]>>(true);
  expectType<Equal<typeof game.moves, number>>(true);
  expectType<Equal<typeof game.winner, `0x${string}`>>(true);
  const over = await ch.view('isGameOver');
  expectType<Equal<typeof over, boolean>>(true);
  const exits = await ch.view('getExits');
  expectType<Equal<(typeof exits)[number]['amount'], bigint>>(true);
}
void typing;
