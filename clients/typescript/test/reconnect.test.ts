// The client against a small stand-in daemon (a `ws` server speaking the API's JSON-RPC): requests
// under way when the socket drops fail with a clear error, later ones go through the new socket,
// subscriptions resume after the last event delivered, close() ends everything.

import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { afterEach, test } from 'node:test';

import { WebSocketServer, type WebSocket } from 'ws';

import {
  EntenteClient,
  EntenteConnectionError,
  EntenteTimeoutError,
  nodeEventKind,
  proposalOf,
  type ConnectionState,
  type NodeEvent,
  type NumberedEvent,
} from '../src/index.js';
import { waitUntil } from './harness.js';

const TOKEN = 'secret';
const CHANNEL = '0x00000000000000000000000000000000000000000000000000000000000000aa';

/** A fake daemon: `echo` answers, `hang` never does; `channel_subscribe` serves a log of `events` numbered events. */
class FakeDaemon {
  server!: WebSocketServer;
  port = 0;
  /** The `from` of every channel_subscribe received. */
  readonly froms: number[] = [];
  readonly sockets = new Set<WebSocket>();
  /** Events the log holds, pushed to subscribers as they are appended. */
  events = 0;
  private subs: { ws: WebSocket; id: string; next: number }[] = [];
  /** node_subscribe subscriptions, and how many node_subscribe / node_unsubscribe requests came. */
  private nodeSubs: { ws: WebSocket; id: string }[] = [];
  nodeSubscribes = 0;
  nodeUnsubscribes = 0;
  private nextSub = 1;

  async start(port = 0): Promise<this> {
    this.server = new WebSocketServer({
      host: '127.0.0.1',
      port,
      verifyClient: (info, cb) => {
        const ok =
          info.req.headers.authorization === `Bearer ${TOKEN}` || (info.req.url ?? '').includes(`token=${TOKEN}`);
        if (ok) cb(true);
        else cb(false, 401, 'Unauthorized');
      },
    });
    await new Promise<void>((res) => this.server.once('listening', () => res()));
    this.port = (this.server.address() as AddressInfo).port;
    this.server.on('connection', (ws) => {
      this.sockets.add(ws);
      ws.on('close', () => {
        this.sockets.delete(ws);
        this.subs = this.subs.filter((s) => s.ws !== ws);
        this.nodeSubs = this.nodeSubs.filter((s) => s.ws !== ws);
      });
      ws.on('message', (raw) => this.onRequest(ws, JSON.parse(String(raw))));
    });
    return this;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  private onRequest(ws: WebSocket, req: { id: number; method: string; params: any }): void {
    const reply = (result: unknown) => ws.send(JSON.stringify({ jsonrpc: '2.0', id: req.id, result }));
    switch (req.method) {
      case 'echo':
        return reply(req.params);
      case 'hang':
        return;
      case 'channel_subscribe': {
        const from = req.params.from ?? 0;
        this.froms.push(from);
        const id = `sub${this.nextSub++}`;
        reply(id);
        const s = { ws, id, next: from };
        this.subs.push(s);
        this.pump(s);
        return;
      }
      case 'node_subscribe': {
        this.nodeSubscribes++;
        // the same id space as channel subscriptions: notifications are told apart by their method
        const id = `sub${this.nextSub++}`;
        reply(id);
        this.nodeSubs.push({ ws, id });
        return;
      }
      case 'node_unsubscribe':
        this.nodeUnsubscribes++;
        this.nodeSubs = this.nodeSubs.filter((s) => s.id !== req.params[0]);
        return reply(true);
      case 'channel_unsubscribe':
        this.subs = this.subs.filter((s) => s.id !== req.params[0]);
        return reply(true);
      default:
        ws.send(JSON.stringify({ jsonrpc: '2.0', id: req.id, error: { code: -32601, message: 'Method not found' } }));
    }
  }

  private pump(s: { ws: WebSocket; id: string; next: number }): void {
    while (s.next < this.events) {
      const result: NumberedEvent = { seq: s.next, event: { Turn: { fork: 0, height: s.next } } };
      s.ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'channel_event', params: { subscription: s.id, result } }));
      s.next++;
    }
  }

  /** Sends a node event to the node subscribers (live: nothing kept for later ones). */
  nodeEvent(result: NodeEvent): void {
    for (const s of this.nodeSubs) {
      s.ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'node_event', params: { subscription: s.id, result } }));
    }
  }

  /** Appends events to the log and sends them to the subscribers. */
  append(n: number): void {
    this.events += n;
    for (const s of this.subs) this.pump(s);
  }

  /** Drops every connection at once, as a dying process does. */
  dropAll(): void {
    for (const ws of this.sockets) ws.terminate();
  }

  async stop(): Promise<void> {
    this.dropAll();
    await new Promise<void>((res) => this.server.close(() => res()));
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function setup(opts: { reconnect?: false } = {}) {
  const daemon = await new FakeDaemon().start();
  cleanups.push(() => daemon.stop());
  const states: ConnectionState[] = [];
  const client = await EntenteClient.connect({
    url: daemon.url,
    token: TOKEN,
    reconnect: opts.reconnect ?? { initialDelayMs: 20, maxDelayMs: 200 },
    requestTimeoutMs: 5_000,
    onStateChange: (s) => states.push(s),
  });
  cleanups.push(() => client.close());
  return { daemon, client, states };
}

test('a request under way when the socket drops fails clearly; later requests go through the new socket', async () => {
  const { daemon, client, states } = await setup();
  assert.deepEqual(await client.request('echo', { x: 1 }), { x: 1 });
  const hanging = client.request('hang', {});
  await waitUntil('the request to reach the daemon', () => daemon.sockets.size === 1, 5_000);
  daemon.dropAll();
  await assert.rejects(hanging, (e: unknown) => {
    assert.ok(e instanceof EntenteConnectionError);
    assert.match(e.message, /^hang: connection to ws:\/\/127\.0\.0\.1:\d+ lost/);
    assert.match(e.message, /may or may not have been carried out/);
    return true;
  });
  // made while reconnecting: waits, then goes out on the new socket
  assert.deepEqual(await client.request('echo', { y: 2 }), { y: 2 });
  assert.deepEqual(states, ['reconnecting', 'open']);
});

test('a subscription resumes after the last event delivered, across a drop and a restart on the same port', async () => {
  const { daemon, client } = await setup();
  const seen: number[] = [];
  daemon.append(3);
  const sub = await client.subscribeChannel(CHANNEL, { onEvent: (n) => seen.push(n.seq) });
  await waitUntil('3 events', () => seen.length === 3, 5_000);
  daemon.append(2);
  await waitUntil('5 events', () => seen.length === 5, 5_000);

  // the connection drops: resubscribed from 5
  daemon.dropAll();
  await waitUntil('the resubscription', () => daemon.froms.length === 2, 5_000);
  daemon.append(2);
  await waitUntil('7 events', () => seen.length === 7, 5_000);

  // the daemon goes and comes back on the same port (its log kept): resubscribed from 7
  const port = daemon.port;
  await daemon.stop();
  daemon.append(1); // logged while no one listened
  await daemon.start(port);
  await waitUntil('8 events', () => seen.length === 8, 5_000);
  daemon.append(2);
  await waitUntil('10 events', () => seen.length === 10, 5_000);

  assert.deepEqual(daemon.froms, [0, 5, 7]);
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(sub.lastSeq, 9);
  await sub.unsubscribe();
  assert.equal(sub.active, false);
});

test('a subscription from a given seq starts there', async () => {
  const { daemon, client } = await setup();
  daemon.append(6);
  const seen: number[] = [];
  await client.subscribeChannel(CHANNEL, { from: 4, onEvent: (n) => seen.push(n.seq) });
  await waitUntil('2 events', () => seen.length === 2, 5_000);
  daemon.dropAll();
  await waitUntil('the resubscription', () => daemon.froms.length === 2, 5_000);
  assert.deepEqual(daemon.froms, [4, 6]);
});

test('a node subscription subscribes again after a drop (live events: those of the gap are lost)', async () => {
  const { daemon, client } = await setup();
  const seen: NodeEvent[] = [];
  let resubscribed = 0;
  const sub = await client.subscribeNode({ onEvent: (e) => seen.push(e), onResubscribed: () => resubscribed++ });
  const proposal = (n: number): NodeEvent => ({ Proposal: { from: `0x${'aa'.repeat(20)}`, channel_id: `0x${n.toString(16).padStart(64, '0')}` } });
  daemon.nodeEvent(proposal(1));
  daemon.nodeEvent('ChainRecovered');
  await waitUntil('2 node events', () => seen.length === 2, 5_000);

  daemon.dropAll();
  await waitUntil('the resubscription', () => resubscribed === 1, 5_000);
  assert.equal(daemon.nodeSubscribes, 2);
  daemon.nodeEvent({ Lagged: { missed: 3 } });
  daemon.nodeEvent(proposal(2));
  await waitUntil('4 node events', () => seen.length === 4, 5_000);
  assert.deepEqual(seen.map(nodeEventKind), ['Proposal', 'ChainRecovered', 'Lagged', 'Proposal']);
  assert.equal(proposalOf(seen[3]!)?.channel_id, `0x${'2'.padStart(64, '0')}`);
  assert.equal(proposalOf(seen[1]!), undefined);

  // a channel subscription beside it: each notification goes to its own kind
  const seqs: number[] = [];
  daemon.append(1);
  await client.subscribeChannel(CHANNEL, { onEvent: (n) => seqs.push(n.seq) });
  await waitUntil('the channel event', () => seqs.length === 1, 5_000);
  assert.equal(seen.length, 4);

  await sub.unsubscribe();
  assert.equal(sub.active, false);
  assert.equal(daemon.nodeUnsubscribes, 1);
  daemon.nodeEvent(proposal(3));
  assert.equal((await client.request('echo', [1]) as unknown[]).length, 1); // a round trip after it
  assert.equal(seen.length, 4);
});

test('close() fails what is under way and does not reconnect', async () => {
  const { client, states } = await setup();
  const hanging = assert.rejects(client.request('hang', {}), /^EntenteConnectionError: hang: the client is closed$/);
  await client.close();
  await hanging;
  await assert.rejects(client.request('echo', {}), EntenteConnectionError);
  assert.equal(client.state, 'closed');
  assert.deepEqual(states, ['closed']);
});

test('without reconnection a drop closes the client', async () => {
  const { daemon, client } = await setup({ reconnect: false });
  daemon.dropAll();
  await waitUntil('the client to close', () => client.state === 'closed', 5_000);
  await assert.rejects(client.request('echo', {}), EntenteConnectionError);
});

test('no answer in time: a timeout error', async () => {
  const daemon = await new FakeDaemon().start();
  cleanups.push(() => daemon.stop());
  const client = await EntenteClient.connect({ url: daemon.url, token: TOKEN, requestTimeoutMs: 200 });
  cleanups.push(() => client.close());
  await assert.rejects(client.request('hang', {}), EntenteTimeoutError);
});

test('a wrong token: connect fails and says why; the token in the query works too', async () => {
  const daemon = await new FakeDaemon().start();
  cleanups.push(() => daemon.stop());
  await assert.rejects(EntenteClient.connect({ url: daemon.url, token: 'nope' }), /401.*refused the API token/);
  const q = await EntenteClient.connect({ url: daemon.url, token: TOKEN, tokenTransport: 'query' });
  cleanups.push(() => q.close());
  assert.deepEqual(await q.request('echo', [1]), [1]);
  // nothing listening
  await daemon.stop();
  await assert.rejects(EntenteClient.connect({ url: daemon.url, token: TOKEN }), EntenteConnectionError);
});
