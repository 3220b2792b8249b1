/**
 * The Entente daemon's API over one WebSocket: JSON-RPC 2.0 requests, typed methods, reconnection
 * with backoff and channel event subscriptions that resume where they stopped.
 */

import type { Abi } from 'viem';

import { EntenteApiError, EntenteConnectionError, EntenteError, EntenteTimeoutError } from './errors.js';
import { TypedChannel } from './typed.js';
import type {
  Address,
  Amount,
  Artifact,
  CallResult,
  ChannelInfo,
  Hex,
  MachineInfo,
  NumberedEvent,
  ProposalEntry,
  ProposalParams,
  RegisteredMachine,
  Session,
} from './types.js';

// ------------------------------------------------------------------ WebSocket, browser or `ws`

/** What the client needs of a WebSocket: the browser's and the `ws` package's both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (event: any) => void): void;
}

/** A WebSocket constructor: `globalThis.WebSocket` in a browser, `ws`'s default export in Node. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[], options?: any) => WebSocketLike;

const OPEN = 1;

/** How the token reaches the daemon: an `Authorization: Bearer` header (Node, `ws`) or `?token=` (browsers). */
export type TokenTransport = 'header' | 'query';

/** The connection's state, as {@link ConnectOptions.onStateChange} reports it. */
export type ConnectionState = 'open' | 'reconnecting' | 'closed';

/** Reconnection after the socket drops: exponential backoff from `initialDelayMs` up to `maxDelayMs`. */
export interface ReconnectOptions {
  /** First delay (default 100 ms). */
  initialDelayMs?: number;
  /** Largest delay (default 2000 ms). */
  maxDelayMs?: number;
  /** Give up after this many failed attempts in a row (default: never). */
  maxAttempts?: number;
}

export interface ConnectOptions {
  /** `ws://host:port` of the daemon (`api.listen`; `entente node` prints it as `api url=...`). */
  url: string;
  /** The API token (the home's `api-token` file). */
  token: string;
  /** The WebSocket to use: by default the `ws` package in Node, `globalThis.WebSocket` elsewhere. */
  WebSocket?: WebSocketConstructor;
  /** Header (default with `ws`) or query parameter (default with any other WebSocket). */
  tokenTransport?: TokenTransport;
  /** Bound on opening a connection (default 10 s). */
  connectTimeoutMs?: number;
  /** Bound on each request, time spent waiting for a reconnection included (default 120 s). */
  requestTimeoutMs?: number;
  /** Reconnection after a drop (default on); `false` closes the client when the socket drops. */
  reconnect?: ReconnectOptions | false;
  /** Told when the connection drops, comes back or closes. */
  onStateChange?: (state: ConnectionState, error?: EntenteError) => void;
}

async function defaultWebSocket(): Promise<{ ctor: WebSocketConstructor; transport: TokenTransport }> {
  const g = globalThis as { WebSocket?: WebSocketConstructor; process?: { versions?: { node?: string } } };
  if (g.process?.versions?.node !== undefined) {
    const ws = await import('ws');
    return { ctor: ws.WebSocket as unknown as WebSocketConstructor, transport: 'header' };
  }
  if (g.WebSocket) return { ctor: g.WebSocket, transport: 'query' };
  throw new EntenteError('no WebSocket here: pass one as the WebSocket option');
}

/** The URL without a token in it, for messages. */
function redact(url: string): string {
  return url.replace(/([?&]token=)[^&]*/, '$1***');
}

// ------------------------------------------------------------------ requests

interface Pending {
  method: string;
  payload: string;
  resolve: (result: unknown) => void;
  reject: (error: EntenteError) => void;
  /** Runs synchronously when the result arrives, before any later message is handled. */
  onResult?: ((result: unknown) => void) | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** The socket generation it was sent on (0: not sent yet). */
  sentOn: number;
}

/** Options of every per-account method: `account` names the session (may be left out with one account). */
export interface AccountOption {
  account?: string;
}

export interface SubscribeOptions extends AccountOption {
  /** The first sequence number wanted (default 0: the channel's whole log). */
  from?: number;
  /** Each event, once, in order of `seq`. */
  onEvent: (event: NumberedEvent) => void;
  /**
   * Problems that do not end the subscription (a resubscription refused and retried, an onEvent
   * that threw) and the one that ends it (the client closed, resubscription given up).
   */
  onError?: (error: EntenteError) => void;
}

/** A subscription to a channel's events (see {@link EntenteClient.subscribeChannel}). */
export interface ChannelSubscription {
  readonly channelId: Hex;
  /** The `seq` of the last event delivered (undefined before the first). */
  readonly lastSeq: number | undefined;
  /** Whether it still delivers events. */
  readonly active: boolean;
  /** Ends it (and tells the daemon). */
  unsubscribe(): Promise<void>;
}

const RESUBSCRIBE_ATTEMPTS = 5;

class Subscription implements ChannelSubscription {
  lastSeq: number | undefined;
  active = true;
  /** The daemon's id for it on the current socket. */
  serverId: string | undefined;
  /** The socket generation it is subscribed on (0: none). */
  generation = 0;
  failures = 0;

  constructor(
    private readonly client: EntenteClient,
    readonly channelId: Hex,
    private readonly options: SubscribeOptions,
  ) {
    if (options.from !== undefined) this.lastSeq = options.from - 1;
  }

  /** Where to (re)start: after the last event delivered. */
  get from(): number {
    return this.lastSeq === undefined ? 0 : this.lastSeq + 1;
  }

  get params(): Record<string, unknown> {
    const p: Record<string, unknown> = { channel_id: this.channelId, from: this.from };
    if (this.options.account !== undefined) p['account'] = this.options.account;
    return p;
  }

  deliver(n: NumberedEvent): void {
    if (!this.active) return;
    this.lastSeq = n.seq;
    try {
      this.options.onEvent(n);
    } catch (e) {
      this.error(new EntenteError(`channel ${this.channelId}: onEvent threw: ${String(e)}`, { cause: e }));
    }
  }

  error(e: EntenteError): void {
    if (this.options.onError) this.options.onError(e);
  }

  end(e?: EntenteError): void {
    if (!this.active) return;
    this.active = false;
    this.serverId = undefined;
    if (e) this.error(e);
  }

  async unsubscribe(): Promise<void> {
    await this.client['unsubscribe'](this);
  }
}

// ------------------------------------------------------------------ the client

/** A client of the daemon's API. Make one with {@link EntenteClient.connect}. */
export class EntenteClient {
  readonly url: string;
  private readonly socketUrl: string;
  private readonly headers: Record<string, string> | undefined;
  private readonly WS: WebSocketConstructor;
  private readonly opts: ConnectOptions;
  private readonly reconnectOpts: Required<ReconnectOptions> | false;
  private socket: WebSocketLike | undefined;
  /** Incremented at each socket opened. */
  private generation = 0;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly subscriptions = new Set<Subscription>();
  private readonly byServerId = new Map<string, Subscription>();
  private currentState: ConnectionState = 'open';
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private reconnecting: Promise<void> | undefined;

  private constructor(opts: ConnectOptions, WS: WebSocketConstructor, transport: TokenTransport) {
    this.opts = opts;
    this.url = opts.url;
    this.WS = WS;
    if (transport === 'header') {
      this.socketUrl = opts.url;
      this.headers = { Authorization: `Bearer ${opts.token}` };
    } else {
      const sep = opts.url.includes('?') ? '&' : '?';
      this.socketUrl = `${opts.url}${sep}token=${encodeURIComponent(opts.token)}`;
      this.headers = undefined;
    }
    this.reconnectOpts =
      opts.reconnect === false
        ? false
        : {
            initialDelayMs: opts.reconnect?.initialDelayMs ?? 100,
            maxDelayMs: opts.reconnect?.maxDelayMs ?? 2000,
            maxAttempts: opts.reconnect?.maxAttempts ?? Number.POSITIVE_INFINITY,
          };
  }

  /**
   * Connects to the daemon. Fails with an {@link EntenteConnectionError} when the daemon cannot be
   * reached or refuses the token (it answers the WebSocket upgrade with 401).
   */
  static async connect(opts: ConnectOptions): Promise<EntenteClient> {
    let WS = opts.WebSocket;
    let transport = opts.tokenTransport;
    if (!WS) {
      const d = await defaultWebSocket();
      WS = d.ctor;
      transport ??= d.transport;
    }
    const client = new EntenteClient(opts, WS, transport ?? 'query');
    await client.open();
    return client;
  }

  /** `open`, `reconnecting` (requests wait, subscriptions resume once back) or `closed`. */
  get state(): ConnectionState {
    return this.currentState;
  }

  // -------------------------------------------------------------- the socket

  /** Opens a socket and makes it the current one. */
  private open(): Promise<void> {
    const timeoutMs = this.opts.connectTimeoutMs ?? 10_000;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let ws: WebSocketLike | undefined;
      let detail = '';
      const fail = (why: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        try {
          ws?.close();
        } catch {
          // already closing
        }
        const refused = /\b401\b/.test(why) ? ' (the daemon refused the API token)' : '';
        reject(new EntenteConnectionError(`could not connect to ${redact(this.socketUrl)}: ${why}${refused}`));
      };
      const timer = setTimeout(() => fail(`no connection within ${timeoutMs} ms`), timeoutMs);
      let created: WebSocketLike;
      try {
        created = this.headers
          ? new this.WS(this.socketUrl, undefined, { headers: this.headers })
          : new this.WS(this.socketUrl);
      } catch (e) {
        fail(String(e));
        return;
      }
      ws = created;
      const sock = created;
      sock.addEventListener('error', (ev: { message?: string; error?: unknown }) => {
        detail = ev?.message || (ev?.error ? String(ev.error) : '') || detail || 'WebSocket error';
        if (!settled) fail(detail);
      });
      sock.addEventListener('close', (ev: { code?: number; reason?: string }) => {
        if (!settled) {
          fail(detail || `closed (code ${ev?.code ?? '?'}${ev?.reason ? `: ${ev.reason}` : ''})`);
          return;
        }
        if (this.socket === sock) this.dropped(sock, ev?.code, detail);
      });
      sock.addEventListener('message', (ev: { data: unknown }) => {
        if (this.socket === sock) this.onMessage(ev.data);
      });
      sock.addEventListener('open', () => {
        if (settled) return;
        if (this.currentState === 'closed') {
          fail('the client was closed');
          return;
        }
        settled = true;
        clearTimeout(timer);
        this.socket = sock;
        this.generation++;
        resolve();
      });
    });
  }

  /** The current socket closed under us. */
  private dropped(ws: WebSocketLike, code: number | undefined, detail: string): void {
    if (this.socket !== ws) return;
    this.socket = undefined;
    const gen = this.generation;
    const why = `connection to ${redact(this.url)} lost${code !== undefined ? ` (code ${code}${detail ? `, ${detail}` : ''})` : ''}`;
    // requests sent on the lost socket: their answer will never come
    for (const [id, p] of this.pending) {
      if (p.sentOn === gen) {
        this.pending.delete(id);
        if (p.timer) clearTimeout(p.timer);
        p.reject(new EntenteConnectionError(`${p.method}: ${why} before the answer; it may or may not have been carried out`));
      }
    }
    for (const s of this.subscriptions) s.serverId = undefined;
    this.byServerId.clear();
    if (this.currentState === 'closed') return;
    if (this.reconnectOpts === false) {
      void this.shutdown(new EntenteConnectionError(why));
      return;
    }
    this.setState('reconnecting', new EntenteConnectionError(why));
    this.reconnecting = this.reconnectLoop(this.reconnectOpts);
  }

  private async reconnectLoop(r: Required<ReconnectOptions>): Promise<void> {
    let attempt = 0;
    let last: EntenteError | undefined;
    while (this.currentState === 'reconnecting') {
      if (attempt >= r.maxAttempts) {
        await this.shutdown(new EntenteConnectionError(`gave up reconnecting after ${attempt} attempts: ${last?.message ?? ''}`));
        return;
      }
      const delay = Math.min(r.maxDelayMs, r.initialDelayMs * 2 ** attempt);
      // a little jitter so that many clients of one daemon do not come back all at once
      await new Promise<void>((res) => {
        this.reconnectTimer = setTimeout(res, delay * (0.75 + Math.random() * 0.5));
      });
      this.reconnectTimer = undefined;
      if (this.currentState !== 'reconnecting') return;
      attempt++;
      try {
        await this.open();
      } catch (e) {
        last = e instanceof EntenteError ? e : new EntenteConnectionError(String(e));
        continue;
      }
      this.setState('open');
      this.flush();
      for (const s of this.subscriptions) void this.resubscribe(s);
      return;
    }
  }

  private setState(state: ConnectionState, error?: EntenteError): void {
    if (this.currentState === state) return;
    this.currentState = state;
    this.opts.onStateChange?.(state, error);
  }

  /** Sends the requests that waited for a socket. */
  private flush(): void {
    for (const p of this.pending.values()) if (p.sentOn === 0) this.transmit(p);
  }

  private transmit(p: Pending): void {
    const ws = this.socket;
    if (!ws || ws.readyState !== OPEN || this.currentState !== 'open') return;
    try {
      ws.send(p.payload);
      p.sentOn = this.generation;
    } catch {
      // the socket is going down: the request waits for the next one
    }
  }

  private onMessage(data: unknown): void {
    let msg: any;
    try {
      msg = JSON.parse(typeof data === 'string' ? data : String(data));
    } catch {
      return;
    }
    if (typeof msg !== 'object' || msg === null) return;
    if (typeof msg.method === 'string' && msg.id === undefined) {
      const params = msg.params;
      if (msg.method === 'channel_event' && params && params.subscription !== undefined) {
        const sub = this.byServerId.get(String(params.subscription));
        const result = params.result;
        if (sub && result && typeof result.seq === 'number') sub.deliver(result as NumberedEvent);
      }
      return;
    }
    if (typeof msg.id !== 'number') return;
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (p.timer) clearTimeout(p.timer);
    if (msg.error) {
      const e = msg.error;
      p.reject(new EntenteApiError(p.method, Number(e.code), String(e.message ?? ''), e.data));
    } else {
      p.onResult?.(msg.result);
      p.resolve(msg.result);
    }
  }

  // -------------------------------------------------------------- requests

  /**
   * One JSON-RPC request: `params` named (an object) as the daemon's methods take them. Rejects
   * with {@link EntenteApiError} when the daemon answers with an error, {@link EntenteConnectionError}
   * when the connection is lost before the answer (the request may or may not have been carried
   * out), {@link EntenteTimeoutError} without an answer in time. While the client reconnects,
   * requests wait and go out on the new socket.
   */
  request<T = unknown>(method: string, params: object = {}): Promise<T> {
    return this.send<T>(method, params);
  }

  private send<T>(method: string, params: unknown, onResult?: (result: unknown) => void): Promise<T> {
    if (this.currentState === 'closed') {
      return Promise.reject(new EntenteConnectionError(`${method}: the client is closed`));
    }
    return new Promise<T>((resolve, reject) => {
      const id = this.nextId++;
      const timeoutMs = this.opts.requestTimeoutMs ?? 120_000;
      const p: Pending = {
        method,
        payload: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
        resolve: resolve as (r: unknown) => void,
        reject,
        onResult,
        sentOn: 0,
        timer: setTimeout(() => {
          if (this.pending.delete(id)) {
            reject(new EntenteTimeoutError(`${method}: no answer within ${timeoutMs} ms`));
          }
        }, timeoutMs),
      };
      this.pending.set(id, p);
      this.transmit(p);
    });
  }

  // -------------------------------------------------------------- the methods

  /** `session_list`: the accounts the daemon runs a node for. */
  sessionList(): Promise<Session[]> {
    return this.send('session_list', {});
  }

  /** `machine_register`: registers a deployed state machine by its artifact (checked against the chain's code). */
  machineRegister(name: string, address: Address, artifact: Artifact | string): Promise<RegisteredMachine> {
    return this.send('machine_register', { name, address, artifact });
  }

  /** `machine_list`: the registered machines and their ABIs. */
  machineList(): Promise<MachineInfo[]> {
    return this.send('machine_list', {});
  }

  /** `proposal_make`: proposes a channel; deposits and bigint genesis arguments go as decimal strings. */
  proposalMake(p: ProposalParams): Promise<{ channel_id: Hex }> {
    const params: Record<string, unknown> = {
      machine: p.machine,
      participants: p.participants,
      deposits: p.deposits.map(amountString),
      genesis: { function: p.genesis.function, args: jsonArgs(p.genesis.args ?? []) },
    };
    if (p.account !== undefined) params['account'] = p.account;
    if (p.timing !== undefined) params['timing'] = p.timing;
    if (p.token !== undefined) params['token'] = p.token;
    if (p.salt !== undefined) params['salt'] = p.salt;
    return this.send('proposal_make', params);
  }

  /** `proposal_list`: proposals received and not answered yet. */
  proposalList(opts: AccountOption = {}): Promise<ProposalEntry[]> {
    return this.send('proposal_list', withAccount({}, opts));
  }

  /** `proposal_accept`: accepts a proposal (the node deposits once the channel is open on chain). */
  proposalAccept(channelId: Hex, opts: AccountOption = {}): Promise<{ channel_id: Hex }> {
    return this.send('proposal_accept', withAccount({ channel_id: channelId }, opts));
  }

  /** `proposal_decline`: declines a proposal. */
  async proposalDecline(channelId: Hex, opts: AccountOption & { reason?: string } = {}): Promise<void> {
    const params = withAccount({ channel_id: channelId }, opts);
    if (opts.reason !== undefined) params['reason'] = opts.reason;
    await this.send('proposal_decline', params);
  }

  /** `channel_list`: every channel of the account. */
  channelList(opts: AccountOption = {}): Promise<ChannelInfo[]> {
    return this.send('channel_list', withAccount({}, opts));
  }

  /** `channel_info`: where a channel stands. */
  channelInfo(channelId: Hex, opts: AccountOption = {}): Promise<ChannelInfo> {
    return this.send('channel_info', withAccount({ channel_id: channelId }, opts));
  }

  /**
   * `channel_call`: a move, by function name or signature and JSON arguments (bigints go as decimal
   * strings). Untyped; {@link channel} gives the typed form.
   */
  channelCall(channelId: Hex, fn: string, args: readonly unknown[] = [], opts: AccountOption = {}): Promise<CallResult> {
    return this.send('channel_call', withAccount({ channel_id: channelId, function: fn, args: jsonArgs(args) }, opts));
  }

  /** `channel_call` with raw calldata. */
  channelCallData(channelId: Hex, calldata: Hex, opts: AccountOption = {}): Promise<CallResult> {
    return this.send('channel_call', withAccount({ channel_id: channelId, calldata }, opts));
  }

  /** `channel_view`: a view on the channel's current state, its result as the daemon's JSON. Untyped; see {@link channel}. */
  channelView(channelId: Hex, fn: string, args: readonly unknown[] = [], opts: AccountOption = {}): Promise<unknown> {
    return this.send('channel_view', withAccount({ channel_id: channelId, function: fn, args: jsonArgs(args) }, opts));
  }

  /** `channel_exit`: leaves through the chain with the latest state. */
  async channelExit(channelId: Hex, opts: AccountOption = {}): Promise<void> {
    await this.send('channel_exit', withAccount({ channel_id: channelId }, opts));
  }

  /** `channel_leave`: asks the other participants to let this account leave with its share. */
  async channelLeave(channelId: Hex, opts: AccountOption = {}): Promise<void> {
    await this.send('channel_leave', withAccount({ channel_id: channelId }, opts));
  }

  /** A channel whose calls and views are typed from the machine's ABI (declare it `as const`). */
  channel<const abi extends Abi>(channelId: Hex, abi: abi, opts: AccountOption = {}): TypedChannel<abi> {
    return new TypedChannel(this, channelId, abi, opts.account);
  }

  // -------------------------------------------------------------- subscriptions

  /**
   * `channel_subscribe`: the channel's events from `from` (default 0, the whole log) on, each
   * delivered once and in order. The subscription keeps the last `seq` delivered; when the socket
   * drops (or the daemon restarts on the same URL) the client reconnects and resubscribes from the
   * next one, so no event is missed or repeated. Resolves once the daemon accepted it; rejects with
   * the daemon's error (an unknown channel: code 1002).
   */
  async subscribeChannel(channelId: Hex, opts: SubscribeOptions): Promise<ChannelSubscription> {
    const sub = new Subscription(this, channelId, opts);
    await this.subscribeOn(sub);
    this.subscriptions.add(sub);
    return sub;
  }

  /** Subscribes on the current socket; the daemon's id is recorded before any notification is read. */
  private async subscribeOn(sub: Subscription): Promise<void> {
    await this.send('channel_subscribe', sub.params, (id) => {
      const gen = this.generation;
      if (!sub.active) {
        // ended while the request was under way
        void this.send('channel_unsubscribe', [id]).catch(() => undefined);
        return;
      }
      sub.serverId = String(id);
      sub.generation = gen;
      this.byServerId.set(String(id), sub);
    });
  }

  private async resubscribe(sub: Subscription): Promise<void> {
    const gen = this.generation;
    while (sub.active && this.currentState === 'open' && this.generation === gen && sub.generation !== gen) {
      try {
        await this.subscribeOn(sub);
        sub.failures = 0;
        return;
      } catch (e) {
        if (!(e instanceof EntenteApiError)) return; // the socket went again: the next reconnection retries
        sub.failures++;
        if (sub.failures >= RESUBSCRIBE_ATTEMPTS) {
          this.subscriptions.delete(sub);
          sub.end(new EntenteError(`channel ${sub.channelId}: resubscription refused ${sub.failures} times, giving up: ${e.message}`, { cause: e }));
          return;
        }
        sub.error(e);
        await new Promise((res) => setTimeout(res, 200 * 2 ** sub.failures));
      }
    }
  }

  private async unsubscribe(sub: Subscription): Promise<void> {
    const id = sub.serverId;
    this.subscriptions.delete(sub);
    sub.end();
    if (id === undefined) return;
    this.byServerId.delete(id);
    if (this.currentState !== 'open') return;
    try {
      await this.send('channel_unsubscribe', [id]);
    } catch {
      // the daemon forgets a connection's subscriptions when it goes
    }
  }

  // -------------------------------------------------------------- the end

  /** Closes the connection: pending requests fail, subscriptions end, no reconnection. */
  async close(): Promise<void> {
    await this.shutdown(new EntenteConnectionError('the client is closed'));
  }

  private async shutdown(reason: EntenteConnectionError): Promise<void> {
    if (this.currentState === 'closed') return;
    this.setState('closed', reason);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      if (p.timer) clearTimeout(p.timer);
      p.reject(new EntenteConnectionError(`${p.method}: ${reason.message}`));
    }
    for (const s of this.subscriptions) s.end(reason);
    this.subscriptions.clear();
    this.byServerId.clear();
    const ws = this.socket;
    this.socket = undefined;
    if (ws && ws.readyState <= OPEN) {
      await new Promise<void>((res) => {
        const t = setTimeout(res, 1000);
        ws.addEventListener('close', () => {
          clearTimeout(t);
          res();
        });
        try {
          ws.close(1000, 'client closed');
        } catch {
          clearTimeout(t);
          res();
        }
      });
    }
  }
}

// ------------------------------------------------------------------ helpers

function withAccount(params: Record<string, unknown>, opts: AccountOption): Record<string, unknown> {
  if (opts.account !== undefined) params['account'] = opts.account;
  return params;
}

/** An amount as the decimal string the daemon takes (0x strings pass as they are). */
export function amountString(a: Amount): string {
  if (typeof a === 'bigint') return a.toString();
  if (typeof a === 'number') {
    if (!Number.isSafeInteger(a) || a < 0) throw new EntenteError(`not an amount: ${a} (give a bigint or a string)`);
    return a.toString();
  }
  return a;
}

/** JSON arguments: bigints as decimal strings, everything else as it is (arrays and objects walked). */
export function jsonArgs(args: readonly unknown[]): unknown[] {
  return args.map(jsonValue);
}

function jsonValue(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map(jsonValue);
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonValue(x)]));
  }
  return v;
}
