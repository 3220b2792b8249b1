// The page's pure parts, in Node: amounts, the move checks, and channel events in plain words
// (the JSON shapes are the daemon's: serde's externally tagged enums of crates/channel/src/event.rs).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { bannerOf, describe } from '../src/events.js';
import { ether, formatEther, parseEther, sameAddress, shortAddress } from '../src/format.js';
import { outcome, refuseMove, roleOf, Status, type GameState, type MoveContext } from '../src/game.js';

const ALICE = '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266';
const BOB = '0x70997970c51812dc3a010c7d01b50e0d17dc79c8';

test('ether amounts: typed in, shown', () => {
  assert.equal(parseEther('1'), 10n ** 18n);
  assert.equal(parseEther('0.5'), 5n * 10n ** 17n);
  assert.equal(parseEther(' .25 '), 25n * 10n ** 16n);
  assert.equal(parseEther('0.000000000000000001'), 1n);
  for (const bad of ['', '.', '-1', '1e18', 'abc', '1.2.3', '0.0000000000000000001']) {
    assert.throws(() => parseEther(bad), Error, bad);
  }
  assert.equal(formatEther(10n ** 18n), '1');
  assert.equal(formatEther('0xde0b6b3a7640000'), '1');
  assert.equal(formatEther(2n * 10n ** 18n + 5n * 10n ** 17n), '2.5');
  assert.equal(formatEther(0n), '0');
  assert.equal(formatEther(1000n), '<0.000001');
  assert.equal(ether(123456789n * 10n ** 10n), '1.234567 ETH');
  assert.equal(shortAddress('0x70997970C51812dc3A010C7d01b50e0d17dc79C8'), '0x7099…79C8');
  assert.ok(sameAddress(BOB, '0x70997970C51812dc3A010C7d01b50e0d17dc79C8'));
});

function game(board: number[], status: number = Status.Playing, winner = '0x0000000000000000000000000000000000000000'): GameState {
  return { players: [ALICE, BOB], balances: [1n, 1n], board, next: 0, moves: board.filter((c) => c).length, status, winner };
}

test('a click becomes a move only in turn, on an empty cell, in a live game', () => {
  const base: MoveContext = { connected: true, phase: 'Live', me: ALICE, nextWriter: ALICE, game: game([1, 2, 0, 0, 0, 0, 0, 0, 0]), busy: false };
  assert.equal(refuseMove(2, base), undefined);
  assert.match(refuseMove(0, base)!, /taken/);
  assert.match(refuseMove(2, { ...base, nextWriter: BOB })!, /Not your turn/);
  assert.match(refuseMove(2, { ...base, connected: false })!, /Not connected/);
  assert.match(refuseMove(2, { ...base, phase: 'Funding' })!, /not started/);
  assert.match(refuseMove(2, { ...base, phase: 'Closed' })!, /over/);
  assert.match(refuseMove(2, { ...base, game: game([1, 1, 1, 2, 2, 0, 0, 0, 0], Status.Won, ALICE) })!, /over/);
  assert.equal(roleOf(ALICE, [ALICE, BOB]), 'X');
  assert.equal(roleOf(BOB.toUpperCase().replace('0X', '0x'), [ALICE, BOB]), 'O');
});

test('the winner in words, for each player', () => {
  const won = game([1, 1, 1, 2, 2, 0, 0, 0, 0], Status.Won, ALICE);
  assert.equal(outcome(won, ALICE, [ALICE, BOB]).kind, 'won');
  assert.match(outcome(won, ALICE, [ALICE, BOB]).text, /^You won/);
  assert.equal(outcome(won, BOB, [ALICE, BOB]).kind, 'lost');
  assert.match(outcome(won, BOB, [ALICE, BOB]).text, /^You lost/);
  assert.equal(outcome(game([1, 2, 1, 1, 2, 2, 2, 1, 1], Status.Draw), BOB, [ALICE, BOB]).kind, 'draw');
  const forfeit = { ...game([1, 0, 0, 0, 0, 0, 0, 0, 0], Status.Forfeit, ALICE), players: [ALICE] };
  assert.match(outcome(forfeit, ALICE, [ALICE, BOB]).text, /forfeited/);
});

test('every event in plain words', () => {
  const who = { me: ALICE };
  const cases: [unknown, RegExp][] = [
    [{ Answered: { from: BOB, accepted: true, reason: '' } }, /opponent 0x7099…79c8 accepted/],
    [{ Live: { genesis_timestamp: 1 } }, /live/],
    [{ Turn: { fork: 0, height: 3 } }, /Your turn \(move 3\)/],
    [{ Protocol: { Applied: { fork: 0, height: 2, issuer: BOB, digest: '0x', state_hash: '0x' } } }, /Move 2 by your opponent .* applied/],
    [{ Protocol: { Finalized: { fork: 0, height: 2, state_hash: '0x' } } }, /Final: every move up to 2/],
    [{ Protocol: { GameOver: { fork: 0, height: 5 } } }, /game is over/],
    [{ Protocol: { ForkStarted: { fork: 1, genesis_height: 3, participants: [ALICE] } } }, /Forked: .*fork 1 starts at move 3 with you/],
    [{ Protocol: { Equivocation: { signer: BOB, fork: 0, height: 4 } } }, /signed two different moves/],
    [{ Chain: { Deposited: { participant: BOB, amount: '0xde0b6b3a7640000' } } }, /opponent .* deposited 1 ETH/],
    [{ Chain: 'FundingCancelled' }, /cancelled the channel/],
    [{ Chain: { DisputeStarted: { record: { kind: 'Timeout', submitter: ALICE, target: BOB }, state: '0x' } } }, /^Dispute raised on chain by you: your opponent 0x7099…79c8 did not move in time \(a timeout dispute\)\.$/],
    [{ Chain: { DisputeChallenged: { challenger: BOB, record: {}, state: '0x' } } }, /Dispute answered on chain by your opponent/],
    [{ Chain: { ParticipantRemoved: { participant: BOB, slashed: false } } }, /removed your opponent/],
    [{ Chain: { ParticipantRemoved: { participant: BOB, slashed: true } } }, /slashed your opponent .* for fraud/],
    [{ Chain: { ChannelClosed: { fork: 1, height: 3, exits: [[ALICE, '0x1bc16d674ec80000']] } } }, /Settled on chain; payouts: you 2 ETH/],
    [{ ChainCall: { what: 'disputeTimeout', outcome: { Ok: 90000 } } }, /called disputeTimeout on chain: done \(gas 90000\)/],
    [{ ChainCall: { what: 'close', outcome: { Err: 'reverted' } } }, /close on chain: it failed \(reverted\)/],
    [{ ChainCall: { what: 'withdrawPending', outcome: { Err: 'reverted: NothingToWithdraw(NothingToWithdraw)' } } }, /nothing was left to withdraw/],
    [{ Withdrawn: { amount: '0x1bc16d674ec80000' } }, /Payout: 2 ETH withdrawn/],
    [{ Cancelled: { reason: 'declined' } }, /cancelled: declined/],
  ];
  for (const [event, want] of cases) assert.match(describe(event, who).text, want, JSON.stringify(event));
  assert.equal(describe({ Chain: { Block: { timestamp: 1 } } }, who).quiet, true);
});

test('the banner: a timeout dispute, then the removal; a fraud proof', () => {
  const timeout = [
    { Protocol: { Applied: { fork: 0, height: 1, issuer: ALICE } } },
    { Chain: { DisputeStarted: { record: { kind: 'Timeout', submitter: ALICE, target: BOB }, state: '0x' } } },
  ];
  assert.equal(bannerOf(timeout.slice(0, 1), { me: ALICE }), undefined);
  assert.match(bannerOf(timeout, { me: ALICE })!.text, /did not move in time: a timeout dispute is on chain/);
  assert.match(bannerOf(timeout, { me: BOB })!.text, /You did not move in time/);
  const removed = [...timeout, { Chain: { ParticipantRemoved: { participant: BOB, slashed: false } } }];
  assert.equal(
    bannerOf(removed, { me: ALICE })!.text,
    'Your opponent 0x7099…79c8 did not move in time; the chain removed them; you win by timeout.',
  );
  assert.equal(bannerOf(removed, { me: BOB })!.text, 'You did not move in time; the chain removed you; you lose by timeout.');
  const answered = [...timeout, { Chain: { DisputeChallenged: { challenger: BOB, record: {}, state: '0x' } } }];
  assert.match(bannerOf(answered, { me: ALICE })!.text, /answered the dispute on chain in time/);
  const fraud = [
    { Chain: { DisputeStarted: { record: { kind: 'InvalidTransition', submitter: ALICE, target: BOB }, state: '0x' } } },
    { Chain: { ParticipantRemoved: { participant: BOB, slashed: true } } },
  ];
  assert.match(bannerOf(fraud.slice(0, 1), { me: ALICE })!.text, /cheated; your node proved fraud on chain/);
  assert.match(bannerOf(fraud, { me: ALICE })!.text, /proved fraud, slashed them and removed them; you win by fraud proof/);
  assert.match(bannerOf(fraud, { me: BOB })!.text, /proved fraud by you/);
});
