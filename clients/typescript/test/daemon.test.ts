// Two real `entente` daemons on anvil, driven through the TypeScript client only: bad requests
// answered with their codes; bob, started with no bootstrap peer, reaching alice with peer_add; then
// a whole tic-tac-toe game, proposed while bob listens to his node's events, during which bob's
// daemon is killed (SIGKILL) and restarted on the same API port and home, bob's client reconnecting
// by itself, his channel subscription resuming with no event missed or repeated and his node
// subscription subscribing again; the withdrawals at the end.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  EntenteApiError,
  EntenteClient,
  EntenteConnectionError,
  ErrorCode,
  appliedHeight,
  chainEventKind,
  nodeEventKind,
  proposalOf,
  ticTacToeAbi,
  withdrawnAmount,
  type Address,
  type Artifact,
  type ChannelEvent,
  type ConnectionState,
  type Hex,
  type NodeEvent,
  type NumberedEvent,
} from '../src/index.js';
import { ANVIL_KEYS, Harness, REPO, WAIT_MS, freePort, waitUntil, within, type Daemon } from './harness.js';

const NO_CHANNEL: Hex = '0x0000000000000000000000000000000000000000000000000000000000000001';

/** What a subscription delivered, and a bounded wait for one. */
class Log<T> {
  readonly seen: T[] = [];
  private waiters: (() => void)[] = [];
  errors: Error[] = [];

  constructor(private readonly show: (x: T) => unknown = (x) => x) {}

  readonly onEvent = (n: T) => {
    this.seen.push(n);
    this.wake();
  };
  readonly onError = (e: Error) => {
    this.errors.push(e);
  };

  /** Wakes the waits (for a condition outside `seen`). */
  wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  async untilSeen(what: string, want: (x: T) => boolean, ms = WAIT_MS): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = this.seen.find(want);
      if (hit !== undefined) return hit;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`no ${what} within ${ms} ms; seen: ${JSON.stringify(this.seen.map(this.show))}`);
      }
      await new Promise<void>((res) => {
        const t = setTimeout(res, left);
        this.waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }
}

/** A channel's events. */
class EventLog extends Log<NumberedEvent> {
  constructor() {
    super((n) => [n.seq, Object.keys(n.event)[0]]);
  }

  until(what: string, want: (e: ChannelEvent) => boolean, ms = WAIT_MS): Promise<NumberedEvent> {
    return this.untilSeen(what, (n) => want(n.event), ms);
  }
}

const applied = (h: number) => (e: ChannelEvent) => appliedHeight(e) === h;

async function apiError(p: Promise<unknown>): Promise<EntenteApiError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof EntenteApiError) return e;
    throw new Error(`not an API error: ${String(e)}`);
  }
  throw new Error('the request succeeded');
}

describe('two entente daemons through the TypeScript client', { timeout: 15 * 60_000 }, () => {
  const h = new Harness();
  const clients: EntenteClient[] = [];
  let alice: Daemon;
  let bob: Daemon;
  let bobHome: string;
  let tictactoe: Address;
  let a: EntenteClient;
  let b: EntenteClient;
  const bobStates: ConnectionState[] = [];

  before(async () => {
    await h.startAnvil();
    const [aliceApi, aliceP2p, bobApi, bobP2p] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const aliceHome = await h.init('alice', ANVIL_KEYS[0], aliceApi, aliceP2p);
    const deployed = (await h.entente(['--home', aliceHome, 'deploy', '--machine', 'tictactoe'])).stdout;
    const field = (prefix: string) =>
      deployed
        .split('\n')
        .find((l) => l.startsWith(prefix))
        ?.split(/\s+/)
        .find((w) => w.startsWith('address='))
        ?.slice('address='.length) as Address | undefined;
    const manager = field('manager ');
    const machine = field('machine name=tictactoe');
    assert.ok(manager && machine, `deploy printed no addresses:\n${deployed}`);
    tictactoe = machine;
    alice = await h.startDaemon(aliceHome);
    // no bootstrap peer: bob reaches alice with peer_add (see 'peers')
    bobHome = await h.init('bob', ANVIL_KEYS[1], bobApi, bobP2p, ['--manager', manager]);
    bob = await h.startDaemon(bobHome);
    assert.equal(alice.url, `ws://127.0.0.1:${aliceApi}`);
    assert.equal(bob.url, `ws://127.0.0.1:${bobApi}`);

    a = await EntenteClient.connect({ url: alice.url, token: alice.token });
    b = await EntenteClient.connect({
      url: bob.url,
      token: bob.token,
      reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
      onStateChange: (s) => bobStates.push(s),
    });
    clients.push(a, b);
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await h.cleanup();
  });

  test('bad input: a wrong token, an unknown channel, a wrong argument type, an unknown method', async () => {
    // a wrong token: the daemon refuses the WebSocket upgrade (401), connect says so
    await assert.rejects(EntenteClient.connect({ url: alice.url, token: 'not the token' }), (e: unknown) => {
      assert.ok(e instanceof EntenteConnectionError, String(e));
      assert.match(e.message, /401/);
      assert.match(e.message, /token/);
      return true;
    });
    await assert.rejects(
      EntenteClient.connect({ url: alice.url, token: 'not the token', tokenTransport: 'query' }),
      EntenteConnectionError,
    );
    // the browser's way, the token in the query, with the right token
    const q = await EntenteClient.connect({ url: alice.url, token: alice.token, tokenTransport: 'query' });
    clients.push(q);
    assert.equal((await q.sessionList()).length, 1);
    await q.close();

    // an unknown channel
    let e = await apiError(a.channelInfo(NO_CHANNEL));
    assert.equal(e.code, ErrorCode.UNKNOWN_CHANNEL);
    assert.equal(e.code, 1002);
    assert.equal(e.kind, 'UnknownChannel');
    assert.equal(e.data?.kind, 'UnknownChannel');
    assert.equal(e.codeName, 'UNKNOWN_CHANNEL');
    e = await apiError(a.subscribeChannel(NO_CHANNEL, { onEvent: () => undefined }));
    assert.equal(e.code, 1002);
    // an unknown account
    e = await apiError(a.channelInfo(NO_CHANNEL, { account: 'mallory' }));
    assert.equal(e.code, 1001);

    // arguments of the wrong type for the machine's function: 1005
    const [xa] = await a.sessionList().then((s) => s.map((x) => x.address));
    const [ob] = await b.sessionList().then((s) => s.map((x) => x.address));
    assert.ok(xa && ob);
    e = await apiError(
      a.proposalMake({
        machine: 'tictactoe',
        participants: [xa, ob],
        deposits: [1000n, 1000n],
        genesis: { function: 'initialState', args: [xa, 'bob', 1000n] },
      }),
    );
    assert.equal(e.code, ErrorCode.BAD_ARGUMENTS);
    assert.equal(e.kind, 'BadArgument');
    e = await apiError(
      a.proposalMake({
        machine: 'tictactoe',
        participants: [xa, ob],
        deposits: [1000n, 1000n],
        genesis: { function: 'initialState', args: [xa, ob] },
      }),
    );
    assert.equal(e.code, 1005);
    assert.equal(e.kind, 'ArgumentCount');

    // an unknown method, and parameters the method does not take
    e = await apiError(a.request('channel_fly', {}));
    assert.equal(e.code, ErrorCode.METHOD_NOT_FOUND);
    e = await apiError(a.request('channel_info', { channel: NO_CHANNEL }));
    assert.equal(e.code, ErrorCode.INVALID_PARAMS);

    // the connection is still good after all that
    assert.equal((await a.sessionList()).length, 1);
  });

  test('peers: bob, started with no bootstrap peer, reaches alice with peerAdd, which remembers her', async () => {
    const aliceSession = (await a.sessionList())[0]!;
    const bobSession = (await b.sessionList())[0]!;
    assert.match(alice.listen, /\/p2p\//);
    assert.deepEqual((await b.peerList()).book, []);

    // a malformed address: 1005, nothing dialed or remembered
    let e = await apiError(b.peerAdd('not a multiaddr'));
    assert.equal(e.code, ErrorCode.BAD_ARGUMENTS);
    assert.equal(e.kind, 'BadAddress');
    e = await apiError(b.peerAdd('/ip4/127.0.0.1/tcp/1', { account: 'mallory' }));
    assert.equal(e.code, ErrorCode.UNKNOWN_ACCOUNT);
    assert.deepEqual((await b.peerList()).book, []);

    const added = await b.peerAdd(alice.listen);
    assert.equal(added.peer_id, aliceSession.peer_id);
    assert.equal(added.remembered, true);
    const peers = await b.peerList();
    assert.deepEqual(peers.book, [alice.listen]);
    const seen = await waitUntil('alice among bob\'s connected peers', async () =>
      (await b.peerList()).connected.find((p) => p.peer_id === aliceSession.peer_id),
    );
    assert.equal(typeof seen.relayed, 'boolean');
    assert.equal(seen.relayed, false);
    assert.ok(seen.address === null || seen.address.toLowerCase() === aliceSession.address.toLowerCase());
    await waitUntil('bob among alice\'s connected peers', async () =>
      (await a.peerList()).connected.some((p) => p.peer_id === bobSession.peer_id),
    );
    // added again: connected already, not remembered twice
    const again = await b.peerAdd(alice.listen, { remember: false });
    assert.deepEqual(again, { peer_id: aliceSession.peer_id, remembered: false });
    assert.deepEqual((await b.peerList()).book, [alice.listen]);
  });

  test("a whole game; bob's daemon killed and restarted mid-game, his subscription resumes without a gap", async (t) => {
    try {
      await game((msg) => t.diagnostic(msg));
    } catch (err) {
      throw new Error(`${String(err)}\n\nlogs:\n${h.tail()}`, { cause: err });
    }
  });

  async function game(note: (msg: string) => void): Promise<void> {
    const xa = (await a.sessionList())[0]!.address;
    const ob = (await b.sessionList())[0]!.address;

    // bob registers the machine alice deployed (its artifact checked against the chain's code)
    const artifact = JSON.parse(readFileSync(join(REPO, 'contracts', 'artifacts', 'TicTacToe.json'), 'utf8')) as Artifact;
    const registered = await b.machineRegister('tictactoe', tictactoe, artifact);
    assert.equal(registered.name, 'tictactoe');
    assert.ok((await b.machineList()).some((m) => m.name === 'tictactoe'));

    // bob listens to his node's events: proposals arrive there
    const nb = new Log<NodeEvent>();
    let bobResubscribed = 0;
    const nodeSub = await b.subscribeNode({
      onEvent: nb.onEvent,
      onError: nb.onError,
      onResubscribed: () => {
        bobResubscribed++;
        nb.wake();
      },
    });
    assert.ok(nodeSub.active);

    // alice proposes X (her) against O (bob), 1000 wei each at stake
    const { channel_id: id } = await a.proposalMake({
      machine: 'tictactoe',
      participants: [xa, ob],
      deposits: [1000n, 1000n],
      genesis: { function: 'initialState', args: [xa, ob, 1000n] },
      timing: { p2p: 30, agreement: 10, fallback: 60, challenge: 120 },
    });
    const announced = proposalOf(await nb.untilSeen('the proposal as a node event at bob', (e) => proposalOf(e)?.channel_id === id));
    assert.equal(announced?.from.toLowerCase(), xa.toLowerCase());
    // the proposal is in proposal_list by the time its event is sent
    const proposal = (await b.proposalList()).find((p) => p.channel_id === id);
    assert.ok(proposal, 'the announced proposal is in proposal_list');
    assert.equal(proposal.machine, 'tictactoe');
    assert.equal(proposal.from.toLowerCase(), xa.toLowerCase());

    const la = new EventLog();
    const lb = new EventLog();
    await a.subscribeChannel(id, { onEvent: la.onEvent, onError: la.onError });
    await b.proposalAccept(id);
    const sb = await b.subscribeChannel(id, { onEvent: lb.onEvent, onError: lb.onError });
    await la.until('live (alice)', (e) => 'Live' in e);
    await lb.until('live (bob)', (e) => 'Live' in e);

    const ca = a.channel(id, ticTacToeAbi);
    const cb = b.channel(id, ticTacToeAbi);
    const info = await ca.info();
    assert.equal(info.phase, 'Live');
    assert.equal(info.next_writer?.toLowerCase(), xa.toLowerCase());

    // a move out of turn; a wrong argument type (past the types, through the untyped call)
    assert.equal((await apiError(cb.call('play', [4]))).code, ErrorCode.MOVE_REFUSED);
    assert.equal((await apiError(a.channelCall(id, 'play', ['x']))).code, ErrorCode.BAD_ARGUMENTS);

    await ca.call('play', [0]);
    await lb.until('move 1 at bob', applied(1));
    await cb.call('play', [3]);
    await la.until('move 2 at alice', applied(2));
    await ca.call('play', [1]);
    await lb.until('move 3 at bob', applied(3));

    // bob's daemon dies; his client notices, and a request made meanwhile waits for the new socket
    const lastBeforeKill = sb.lastSeq;
    assert.ok(lastBeforeKill !== undefined);
    await h.kill(bob.process);
    await waitUntil('bob to notice', () => b.state === 'reconnecting', 10_000);
    const meanwhile = b.sessionList();
    bob = await h.startDaemon(bobHome);
    assert.equal(bob.url, b.url, 'the same API address after the restart');
    await waitUntil('bob to reconnect', () => b.state === 'open');
    assert.equal((await within('a request made while reconnecting', meanwhile))[0]!.address, ob);
    assert.deepEqual(bobStates, ['reconnecting', 'open']);
    assert.ok(sb.active);
    // the node subscription is renewed on the new socket (its events are live: nothing replayed)
    await waitUntil('bob\'s node subscription renewed', () => bobResubscribed === 1);
    assert.ok(nodeSub.active);
    // bob's address book survived the restart (his configuration), and he reached alice again through it
    assert.deepEqual((await b.peerList()).book, [alice.listen]);

    // the board, typed from the ABI: uint8[9] as numbers, uint256[] as bigints
    const before = await cb.view('getGame');
    assert.deepEqual(before.board, [1, 1, 0, 2, 0, 0, 0, 0, 0]);
    assert.deepEqual(before.balances, [1000n, 1000n]);
    assert.equal(before.moves, 3);
    assert.equal(typeof before.balances[0], 'bigint');

    await cb.call('play', [4]);
    await la.until('move 4 at alice', applied(4));
    await lb.until('move 4 at bob (resumed subscription)', applied(4));
    await ca.call('play', [2]); // X: 0, 1, 2
    await lb.until('move 5 at bob', applied(5));
    const withdrawn = await la.until("alice's payout", (e) => withdrawnAmount(e) !== undefined);
    await lb.until('the settlement at bob', (e) => chainEventKind(e) === 'ChannelClosed');
    await la.until('the settlement at alice', (e) => chainEventKind(e) === 'ChannelClosed');

    // no event lost or repeated across bob's restart
    const seqs = lb.seen.map((n) => n.seq);
    note(`bob's events: ${lb.seen.map((n) => `${n.seq}:${Object.keys(n.event)[0]}${appliedHeight(n.event) ?? ''}`).join(' ')} (killed after seq ${lastBeforeKill})`);
    assert.equal(seqs[0], 0, 'from the start of the log');
    for (let i = 1; i < seqs.length; i++) {
      assert.equal(seqs[i], seqs[i - 1]! + 1, `bob's events are not contiguous: ${JSON.stringify(seqs)}`);
    }
    assert.ok(seqs.includes(lastBeforeKill + 1), 'events came after the restart');
    for (let height = 1; height <= 5; height++) {
      assert.equal(lb.seen.filter((n) => appliedHeight(n.event) === height).length, 1, `bob saw height ${height} once`);
      assert.equal(la.seen.filter((n) => appliedHeight(n.event) === height).length, 1, `alice saw height ${height} once`);
    }
    assert.deepEqual(lb.errors, []);
    assert.deepEqual(la.errors, []);

    // the winner takes both stakes
    assert.equal(withdrawnAmount(withdrawn.event), 2000n);
    const end = await ca.view('getGame');
    assert.equal(end.winner.toLowerCase(), xa.toLowerCase());
    assert.equal(await ca.view('isGameOver'), true);
    const closed = await waitUntil('the exits in channel_info', async () => {
      const i = await ca.info();
      return i.exits ? i : undefined;
    });
    assert.equal(BigInt(closed.exits![0]!.amount), 2000n);
    assert.equal(BigInt(closed.exits![1]!.amount), 0n);
    assert.equal((await cb.info()).phase, 'Closed');

    // the withdrawals: alice got the 2000 wei, bob nothing
    const wa = await a.channelWithdrawal(id, { wait: 60 });
    assert.deepEqual(wa.withdrawn, ['0x7d0']);
    assert.equal(wa.phase, 'Closed');
    const wb = await b.channelWithdrawal(id);
    assert.deepEqual(wb.withdrawn, []);
    assert.equal(wb.phase, 'Closed');
    assert.equal(typeof wb.calls_outstanding, 'number');

    // the renewed node subscription delivers: alice proposes again, bob hears of it and declines
    const { channel_id: second } = await a.proposalMake({
      machine: 'tictactoe',
      participants: [xa, ob],
      deposits: [1000n, 1000n],
      genesis: { function: 'initialState', args: [xa, ob, 1000n] },
    });
    assert.notEqual(second, id);
    await nb.untilSeen('the second proposal at bob (after the restart)', (e) => proposalOf(e)?.channel_id === second);
    await b.proposalDecline(second, { reason: 'one game is enough' });
    assert.ok(!(await b.proposalList()).some((p) => p.channel_id === second));
    note(`bob's node events: ${nb.seen.map(nodeEventKind).join(' ')}`);
    assert.deepEqual(nb.errors, []);
    await nodeSub.unsubscribe();
    assert.equal(nodeSub.active, false);
  }
});
