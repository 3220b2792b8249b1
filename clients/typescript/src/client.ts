/**
 * The Entente daemon's API over one WebSocket: JSON-RPC 2.0 requests, typed methods, reconnection
 * with backoff and channel event subscriptions that resume where they stopped.
 */

import type { Abi } from 'viem';

import { EntenteApiError, EntenteConnectionError, EntenteError, EntenteTimeoutError } from './errors.js';
import { TypedChannel } from './typed.js';
import type {
  AccountBalance,
  Address,
  Amount,
  Artifact,
  CallResult,
  ChannelInfo,
  Hex,
  MachineInfo,
  NodeEvent,
  NumberedEvent,
  PeerAdded,
  PeerList,
  ProposalEntry,
  ProposalParams,
  RegisteredMachine,
  Session,
  Withdrawal,
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

/** Options of {@link EntenteClient.subscribeNode}. */
export interface NodeSubscribeOptions extends AccountOption {
  /** Each node event as it happens (live only: what happened while disconnected is not replayed). */
  onEvent: (event: NodeEvent) => void;
  /**
   * Problems that do not end the subscription (a resubscription refused and retried, an onEvent
   * that threw) and the one that ends it (the client closed, resubscription given up).
   */
  onError?: (error: EntenteError) => void;
  /**
   * Called each time the subscription is renewed on a new socket after a reconnection. Node events
   * of the time in between are lost: call {@link EntenteClient.proposalList} to catch up.
   */
  onResubscribed?: () => void;
}

/** A subscription to an account's node events (see {@link EntenteClient.subscribeNode}). */
export interface NodeSubscription {
  /** The account named when subscribing (undefined: the daemon's only one). */
  readonly account: string | undefined;
  /** Whether it still delivers events. */
  readonly active: boolean;
  /** Ends it (and tells the daemon). */
  unsubscribe(): Promise<void>;
}

const RESUBSCRIBE_ATTEMPTS = 5;

/** The JSON-RPC names of one kind of subscription. */
interface SubscriptionKind {
  subscribe: string;
  notification: string;
  unsubscribe: string;
}

const CHANNEL_KIND: SubscriptionKind = {
  subscribe: 'channel_subscribe',
  notification: 'channel_event',
  unsubscribe: 'channel_unsubscribe',
};

const NODE_KIND: SubscriptionKind = {
  subscribe: 'node_subscribe',
  notification: 'node_event',
  unsubscribe: 'node_unsubscribe',
};

/** What channel and node subscriptions share: the daemon's id, the socket it is on, resubscription. */
abstract class BaseSubscription {
  active = true;
  /** The daemon's id for it on the current socket. */
  serverId: string | undefined;
  /** The socket generation it is subscribed on (0: none). */
  generation = 0;
  failures = 0;

  constructor(
    protected readonly client: EntenteClient,
    readonly kind: SubscriptionKind,
    private readonly onErrorCb: ((error: EntenteError) => void) | undefined,
  ) {}

  /** The parameters of the (re)subscription request. */
  abstract get params(): Record<string, unknown>;
  /** What it is about, for messages. */
  abstract get what(): string;
  /** A notification's `result`. */
  abstract deliver(result: unknown): void;
  /** Renewed on a new socket after a reconnection. */
  resubscribed(): void {}

  error(e: EntenteError): void {
    if (this.onErrorCb) this.onErrorCb(e);
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

class Subscription extends BaseSubscription implements ChannelSubscription {
  lastSeq: number | undefined;

  constructor(
    client: EntenteClient,
    readonly channelId: Hex,
    private readonly options: SubscribeOptions,
  ) {
    super(client, CHANNEL_KIND, options.onError);
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

  get what(): string {
    return `channel ${this.channelId}`;
  }

  deliver(result: unknown): void {
    if (!this.active) return;
    const n = result as NumberedEvent | undefined;
    if (!n || typeof n.seq !== 'number') return;
    this.lastSeq = n.seq;
    try {
      this.options.onEvent(n);
    } catch (e) {
      this.error(new EntenteError(`channel ${this.channelId}: onEvent threw: ${String(e)}`, { cause: e }));
    }
  }
}

class NodeSub extends BaseSubscription implements NodeSubscription {
  constructor(
    client: EntenteClient,
    private readonly options: NodeSubscribeOptions,
  ) {
    super(client, NODE_KIND, options.onError);
  }

  get account(): string | undefined {
    return this.options.account;
  }

  get params(): Record<string, unknown> {
    return withAccount({}, this.options);
  }

  get what(): string {
    return `node events${this.options.account !== undefined ? ` of ${this.options.account}` : ''}`;
  }

  deliver(result: unknown): void {
    if (!this.active || result === undefined || result === null) return;
    try {
      this.options.onEvent(result as NodeEvent);
    } catch (e) {
      this.error(new EntenteError(`${this.what}: onEvent threw: ${String(e)}`, { cause: e }));
    }
  }

  override resubscribed(): void {
    try {
      this.options.onResubscribed?.();
    } catch (e) {
      this.error(new EntenteError(`${this.what}: onResubscribed threw: ${String(e)}`, { cause: e }));
    }
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
  private readonly subscriptions = new Set<BaseSubscription>();
  /** By notification method and the daemon's id (`channel_event:3`). */
  private readonly byServerId = new Map<string, BaseSubscription>();
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
      if (params && params.subscription !== undefined) {
        this.byServerId.get(`${msg.method}:${String(params.subscription)}`)?.deliver(params.result);
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

  private send<T>(method: string, params: unknown, onResult?: (result: unknown) => void, timeoutMs?: number): Promise<T> {
    if (this.currentState === 'closed') {
      return Promise.reject(new EntenteConnectionError(`${method}: the client is closed`));
    }
    return new Promise<T>((resolve, reject) => {
      const id = this.nextId++;
      const limit = timeoutMs ?? this.opts.requestTimeoutMs ?? 120_000;
      const p: Pending = {
        method,
        payload: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
        resolve: resolve as (r: unknown) => void,
        reject,
        onResult,
        sentOn: 0,
        timer: setTimeout(() => {
          if (this.pending.delete(id)) {
            reject(new EntenteTimeoutError(`${method}: no answer within ${limit} ms`));
          }
        }, limit),
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

  /** `account_balance`: the account's address and its ether balance on chain (wei, `0x` hex: `BigInt(b.balance)`). */
  accountBalance(opts: AccountOption = {}): Promise<AccountBalance> {
    return this.send('account_balance', withAccount({}, opts));
  }

  /**
   * `peer_add`: dials a node (`/ip4/.../tcp/.../p2p/<peer id>`) and, unless `remember` is false, adds
   * it to the account's address book (its `bootstrap` list, dialed at every start). A malformed
   * address: code 1005 (`BAD_ARGUMENTS`).
   */
  peerAdd(address: string, opts: AccountOption & { remember?: boolean } = {}): Promise<PeerAdded> {
    const params = withAccount({ address }, opts);
    if (opts.remember !== undefined) params['remember'] = opts.remember;
    return this.send('peer_add', params);
  }

  /** `peer_list`: the account's address book and the peers its node is connected to. */
  peerList(opts: AccountOption = {}): Promise<PeerList> {
    return this.send('peer_list', withAccount({}, opts));
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

  /**
   * `channel_withdrawal`: what the account got back from the channel (the node withdraws on its own
   * once the channel is settled, left or cancelled): the amounts withdrawn so far (`0x` hex), the
   * phase and the chain calls still under way. With `wait` (seconds, at most 3600) the daemon first
   * waits up to that long for a withdrawal; the request's timeout is stretched to cover it.
   */
  channelWithdrawal(channelId: Hex, opts: AccountOption & { wait?: number } = {}): Promise<Withdrawal> {
    const params = withAccount({ channel_id: channelId }, opts);
    let timeoutMs: number | undefined;
    if (opts.wait !== undefined) {
      params['wait'] = opts.wait;
      timeoutMs = Math.max(this.opts.requestTimeoutMs ?? 120_000, opts.wait * 1000 + 30_000);
    }
    return this.send('channel_withdrawal', params, undefined, timeoutMs);
  }

  /** `channel_allow_join`: lets `joiner` join when another participant proposes it (this account co-signs). */
  async channelAllowJoin(channelId: Hex, joiner: Address, opts: AccountOption = {}): Promise<void> {
    await this.send('channel_allow_join', withAccount({ channel_id: channelId, joiner }, opts));
  }

  /**
   * `channel_propose_join`: proposes that `joiner` join with a deposit of `amount` at the current
   * (final) state; `data` goes to the machine's join hook. Every other participant must have allowed
   * it ({@link channelAllowJoin}) and the newcomer must expect it ({@link channelExpectJoin}).
   */
  async channelProposeJoin(channelId: Hex, joiner: Address, amount: Amount, opts: AccountOption & { data?: Hex } = {}): Promise<void> {
    const params = withAccount({ channel_id: channelId, joiner, amount: amountString(amount) }, opts);
    if (opts.data !== undefined) params['data'] = opts.data;
    await this.send('channel_propose_join', params);
  }

  /**
   * `channel_expect_join`: prepares this account to join a running channel with a deposit of
   * `amount`, sponsored by the participant `sponsor`; `machine` names the channel's registered machine.
   */
  channelExpectJoin(channelId: Hex, sponsor: Address, amount: Amount, machine: string, opts: AccountOption = {}): Promise<{ channel_id: Hex }> {
    return this.send('channel_expect_join', withAccount({ channel_id: channelId, sponsor, amount: amountString(amount), machine }, opts));
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

  /**
   * `node_subscribe`: what happens to the account's node beside its channels' logs, live (not
   * replayed): `{"Proposal": {"from", "channel_id"}}` when a proposal arrives,
   * `{"ChainUnavailable": {"error"}}`, `"ChainRecovered"`, and `{"Lagged": {"missed"}}` when this
   * reader fell behind and events were dropped. When the socket drops the client reconnects and
   * subscribes again (calling `onResubscribed`); events of the time in between are lost:
   * {@link proposalList} catches up on proposals. Resolves once the daemon accepted it.
   */
  async subscribeNode(opts: NodeSubscribeOptions): Promise<NodeSubscription> {
    const sub = new NodeSub(this, opts);
    await this.subscribeOn(sub);
    this.subscriptions.add(sub);
    return sub;
  }

  /** Subscribes on the current socket; the daemon's id is recorded before any notification is read. */
  private async subscribeOn(sub: BaseSubscription): Promise<void> {
    await this.send(sub.kind.subscribe, sub.params, (id) => {
      const gen = this.generation;
      if (!sub.active) {
        // ended while the request was under way
        void this.send(sub.kind.unsubscribe, [id]).catch(() => undefined);
        return;
      }
      sub.serverId = String(id);
      sub.generation = gen;
      this.byServerId.set(`${sub.kind.notification}:${String(id)}`, sub);
    });
  }

  private async resubscribe(sub: BaseSubscription): Promise<void> {
    const gen = this.generation;
    while (sub.active && this.currentState === 'open' && this.generation === gen && sub.generation !== gen) {
      try {
        await this.subscribeOn(sub);
        sub.failures = 0;
        if (sub.active) sub.resubscribed();
        return;
      } catch (e) {
        if (!(e instanceof EntenteApiError)) return; // the socket went again: the next reconnection retries
        sub.failures++;
        if (sub.failures >= RESUBSCRIBE_ATTEMPTS) {
          this.subscriptions.delete(sub);
          sub.end(new EntenteError(`${sub.what}: resubscription refused ${sub.failures} times, giving up: ${e.message}`, { cause: e }));
          return;
        }
        sub.error(e);
        await new Promise((res) => setTimeout(res, 200 * 2 ** sub.failures));
      }
    }
  }

  private async unsubscribe(sub: BaseSubscription): Promise<void> {
    const id = sub.serverId;
    this.subscriptions.delete(sub);
    sub.end();
    if (id === undefined) return;
    this.byServerId.delete(`${sub.kind.notification}:${id}`);
    if (this.currentState !== 'open') return;
    try {
      await this.send(sub.kind.unsubscribe, [id]);
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
