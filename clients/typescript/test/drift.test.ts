// The client against the API reference: every method docs/daemon.md documents (its headings
// "### `name`", generated from the daemon's method table) has a client method, and that method sends
// the documented JSON-RPC name (subscriptions: ended with the documented unsubscribe method). A
// method added to the daemon without one in the client fails here.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { EntenteClient, type WebSocketConstructor, type WebSocketLike } from '../src/index.js';

/** The package (this file runs from clients/typescript/dist/test). */
const PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const REFERENCE = join(PACKAGE, '..', '..', 'docs', 'daemon.md');

interface Documented {
  name: string;
  /** The text under the heading, up to the next one. */
  body: string;
}

function documentedMethods(): Documented[] {
  const text = readFileSync(REFERENCE, 'utf8');
  const out: Documented[] = [];
  const heading = /^### `([a-z0-9_]+)`\s*$/gm;
  const hits = [...text.matchAll(heading)];
  hits.forEach((m, i) => {
    const end = hits[i + 1]?.index ?? text.indexOf('\n## ', m.index!);
    out.push({ name: m[1]!, body: text.slice(m.index!, end < 0 ? undefined : end) });
  });
  return out;
}

/** The client method of an API method: snake_case to camelCase, `x_subscribe` to `subscribeX`. */
export function clientMethodName(api: string): string {
  const camel = (parts: string[]) => parts.map((p, i) => (i === 0 ? p : p.charAt(0).toUpperCase() + p.slice(1))).join('');
  const parts = api.split('_');
  if (parts.length > 1 && parts[parts.length - 1] === 'subscribe') return camel(['subscribe', ...parts.slice(0, -1)]);
  return camel(parts);
}

const CHANNEL = `0x${'11'.repeat(32)}`;
const ADDRESS = `0x${'22'.repeat(20)}`;
const noop = () => undefined;

/** Arguments to call each client method with (against a stand-in socket that answers anything). */
const SAMPLE_ARGS: Record<string, unknown[]> = {
  sessionList: [],
  accountBalance: [],
  peerAdd: ['/ip4/127.0.0.1/tcp/4001/p2p/16Uiu2HAmMUjGmiUhJeiZgu6ZZnLRkE2VViR2JgjqtW9aTZnHQqgg'],
  peerList: [],
  machineRegister: ['tictactoe', ADDRESS, { abi: [], bytecode: '0x' }],
  machineList: [],
  proposalMake: [{ machine: 'm', participants: [ADDRESS, ADDRESS], deposits: [1n, 1n], genesis: { function: 'f' } }],
  proposalList: [],
  proposalAccept: [CHANNEL],
  proposalDecline: [CHANNEL],
  channelList: [],
  channelInfo: [CHANNEL],
  channelCall: [CHANNEL, 'play', [4]],
  channelView: [CHANNEL, 'getGame'],
  channelExit: [CHANNEL],
  channelLeave: [CHANNEL],
  channelWithdrawal: [CHANNEL, { wait: 1 }],
  channelAllowJoin: [CHANNEL, ADDRESS],
  channelProposeJoin: [CHANNEL, ADDRESS, 1000n],
  channelExpectJoin: [CHANNEL, ADDRESS, 1000n, 'payments'],
  subscribeNode: [{ onEvent: noop }],
  subscribeChannel: [CHANNEL, { onEvent: noop }],
};

/** A WebSocket that opens at once, records what is sent and answers every request (`"sub1"` to a subscription). */
function recordingSocket(sent: { method: string; params: unknown }[]): WebSocketConstructor {
  return class implements WebSocketLike {
    readyState = 0;
    private readonly listeners = new Map<string, ((ev: any) => void)[]>();
    constructor() {
      setImmediate(() => {
        this.readyState = 1;
        this.emit('open', {});
      });
    }
    addEventListener(type: string, listener: (ev: any) => void): void {
      this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
    }
    send(data: string): void {
      const req = JSON.parse(data) as { id: number; method: string; params: unknown };
      sent.push({ method: req.method, params: req.params });
      const result = req.method.endsWith('_subscribe') ? 'sub1' : null;
      setImmediate(() => this.emit('message', { data: JSON.stringify({ jsonrpc: '2.0', id: req.id, result }) }));
    }
    close(): void {
      this.readyState = 3;
      setImmediate(() => this.emit('close', { code: 1000 }));
    }
    private emit(type: string, ev: unknown): void {
      for (const l of this.listeners.get(type) ?? []) l(ev);
    }
  };
}

test('docs/daemon.md lists the API methods', () => {
  const names = documentedMethods().map((m) => m.name);
  assert.ok(names.length >= 20, `only ${names.length} methods found in ${REFERENCE}`);
  assert.ok(names.includes('channel_subscribe') && names.includes('session_list'));
  assert.equal(clientMethodName('channel_subscribe'), 'subscribeChannel');
  assert.equal(clientMethodName('node_subscribe'), 'subscribeNode');
  assert.equal(clientMethodName('channel_allow_join'), 'channelAllowJoin');
});

test('every method of docs/daemon.md has a client method', () => {
  const missing = documentedMethods()
    .map((m) => ({ api: m.name, client: clientMethodName(m.name) }))
    .filter(({ client }) => typeof (EntenteClient.prototype as unknown as Record<string, unknown>)[client] !== 'function');
  assert.deepEqual(
    missing,
    [],
    `the client lacks ${missing.map((m) => `${m.client} (for ${m.api})`).join(', ')}: add it to src/client.ts`,
  );
});

test("each client method sends its documented method's name; subscriptions end with the documented unsubscribe", async () => {
  const sent: { method: string; params: unknown }[] = [];
  const client = await EntenteClient.connect({ url: 'ws://stand-in', token: 't', WebSocket: recordingSocket(sent) });
  try {
    for (const { name, body } of documentedMethods()) {
      const method = clientMethodName(name);
      const args = SAMPLE_ARGS[method];
      assert.ok(args, `no sample arguments for ${method} in SAMPLE_ARGS (test/drift.test.ts)`);
      sent.length = 0;
      const fn = (client as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[method]!;
      const result = await fn.apply(client, args);
      assert.equal(sent[0]?.method, name, `${method} sent ${sent[0]?.method ?? 'nothing'}, not ${name}`);
      const params = sent[0]!.params as Record<string, unknown>;
      assert.equal(typeof params, 'object', `${method}: params not named`);
      if (name.endsWith('_subscribe')) {
        const unsubscribe = /Ends with `([a-z_]+)`/.exec(body)?.[1];
        assert.ok(unsubscribe, `docs/daemon.md does not say how ${name} ends`);
        await (result as { unsubscribe(): Promise<void> }).unsubscribe();
        assert.deepEqual(sent[1], { method: unsubscribe, params: ['sub1'] });
      }
    }
  } finally {
    await client.close();
  }
});
