// The page: connects to the daemon that serves it (same host and port as the API), with the token
// from the address's fragment (`#token=...`, as `entente web` prints it) or typed in; shows the
// account, proposes and accepts games, and plays them.

import {
  EntenteApiError,
  EntenteClient,
  EntenteConnectionError,
  ErrorCode,
  ticTacToeAbi,
  type Address,
  type ChannelInfo,
  type ChannelSubscription,
  type ConnectionState,
  type Hex,
  type NodeSubscription,
  type NumberedEvent,
  type ProposalEntry,
  type Session,
  type Timing,
  type Withdrawal,
} from '@entente/client';

import { bannerOf, describe, variant } from './events.js';
import { ether, isAddress, parseEther, sameAddress, shortAddress, shortHash } from './format.js';
import { markOfCell, outcome, refuseMove, roleOf, Status, type GameState } from './game.js';

const MACHINE = 'tictactoe';
const TOKEN_KEY = 'entente.token';
const ACCOUNT_KEY = 'entente.account';
const CHANNEL_KEY = 'entente.channel';
/** How often the lists and the game are re-read beside the events (a dispute's deadline, a new channel). */
const POLL_MS = 3000;

// ------------------------------------------------------------------ the elements

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e as T;
}

function make<K extends keyof HTMLElementTagNameMap>(tag: K, props: { text?: string; cls?: string; testid?: string } = {}): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (props.text !== undefined) e.textContent = props.text;
  if (props.cls) e.className = props.cls;
  if (props.testid) e.dataset['testid'] = props.testid;
  return e;
}

// ------------------------------------------------------------------ what the page knows

interface PageState {
  token: string | undefined;
  client: EntenteClient | undefined;
  connected: boolean;
  sessions: Session[];
  account: string | undefined;
  me: Address | undefined;
  nodeSub: NodeSubscription | undefined;
  proposals: ProposalEntry[];
  channels: ChannelInfo[];
  selected: Hex | undefined;
  channelSub: ChannelSubscription | undefined;
  events: NumberedEvent[];
  info: ChannelInfo | undefined;
  game: GameState | undefined;
  withdrawal: Withdrawal | undefined;
  /** A move of ours is under way. */
  busy: boolean;
}

const s: PageState = {
  token: undefined,
  client: undefined,
  connected: false,
  sessions: [],
  account: undefined,
  me: undefined,
  nodeSub: undefined,
  proposals: [],
  channels: [],
  selected: undefined,
  channelSub: undefined,
  events: [],
  info: undefined,
  game: undefined,
  withdrawal: undefined,
  busy: false,
};

function opts(): { account?: string } {
  return s.account === undefined ? {} : { account: s.account };
}

// ------------------------------------------------------------------ messages

function setConnection(state: 'connecting' | 'open' | 'reconnecting' | 'unreachable' | 'closed' | 'token', text: string): void {
  const c = el('connection');
  c.dataset['state'] = state;
  c.textContent = text;
}

function notice(text: string | undefined): void {
  const n = el('notice');
  n.textContent = text ?? '';
  n.hidden = !text;
}

function moveMessage(text: string, tone: 'warn' | 'bad' | 'info' = 'warn'): void {
  const m = el('move-message');
  m.textContent = text;
  m.dataset['tone'] = tone;
}

/** An error in a sentence (the daemon's message, without the method's prefix). */
function errorText(e: unknown): string {
  if (e instanceof EntenteApiError) {
    switch (e.code) {
      case ErrorCode.UNKNOWN_MACHINE:
        return `this daemon has no "${MACHINE}" machine registered (run "entente deploy --machine tictactoe", or "entente register tictactoe ADDRESS")`;
      case ErrorCode.CHAIN:
        return `the chain could not be reached or refused the call: ${e.message}`;
      default:
        return e.message;
    }
  }
  if (e instanceof EntenteConnectionError) return 'the daemon is unreachable; the page reconnects by itself';
  return e instanceof Error ? e.message : String(e);
}

/** Runs `f`, showing a failure in the notice instead of throwing. */
async function guarded(what: string, f: () => Promise<void>): Promise<void> {
  try {
    await f();
  } catch (e) {
    if (e instanceof EntenteConnectionError && !s.connected) return; // the connection line says it
    notice(`${what}: ${errorText(e)}`);
  }
}

// ------------------------------------------------------------------ connecting

/** The token: from `#token=...` (then kept in sessionStorage and removed from the address bar), or stored. */
function takeToken(): string | undefined {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ''));
  const fromHash = hash.get('token');
  if (fromHash) {
    sessionStorage.setItem(TOKEN_KEY, fromHash);
    history.replaceState(null, '', location.pathname + location.search);
    return fromHash;
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

/**
 * Why a connection failed. A browser's WebSocket does not show the HTTP status of a refused upgrade,
 * so the same request goes as a plain HTTP POST: no answer at all means the daemon is unreachable,
 * 401 that it refused the token.
 */
async function diagnose(token: string): Promise<'unreachable' | 'token' | 'other'> {
  let r: Response;
  try {
    r = await fetch('/', {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'session_list' }),
    });
  } catch {
    return 'unreachable';
  }
  return r.status === 401 ? 'token' : 'other';
}

let retryTimer: ReturnType<typeof setTimeout> | undefined;

function showConnectPanel(error: string | undefined): void {
  el('connect-panel').hidden = false;
  const e = el('connect-error');
  e.textContent = error ?? '';
  e.hidden = !error;
}

async function connect(token: string): Promise<void> {
  if (retryTimer) clearTimeout(retryTimer);
  retryTimer = undefined;
  s.token = token;
  setConnection('connecting', 'connecting…');
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
  let client: EntenteClient;
  try {
    client = await EntenteClient.connect({
      url,
      token,
      WebSocket: globalThis.WebSocket,
      tokenTransport: 'query',
      connectTimeoutMs: 10_000,
      reconnect: { initialDelayMs: 250, maxDelayMs: 2000 },
      onStateChange: onConnectionState,
    });
  } catch (e) {
    const why = await diagnose(token);
    if (why === 'token') {
      sessionStorage.removeItem(TOKEN_KEY);
      setConnection('token', 'wrong token');
      showConnectPanel('The daemon refused this token: it is wrong. Open the link that "entente web" prints, or paste the token from the api-token file in the daemon\'s home.');
    } else if (why === 'unreachable') {
      setConnection('unreachable', 'daemon unreachable, retrying…');
      showConnectPanel(`The daemon at ${location.host} is unreachable: is "entente node" running? Retrying every few seconds…`);
      retryTimer = setTimeout(() => void connect(token), 3000);
    } else {
      setConnection('closed', 'not connected');
      showConnectPanel(`Could not connect to the daemon at ${location.host}: ${errorText(e)}`);
      retryTimer = setTimeout(() => void connect(token), 5000);
    }
    return;
  }
  s.client = client;
  s.connected = true;
  setConnection('open', `connected to ${location.host}`);
  el('connect-panel').hidden = true;
  el('app').hidden = false;
  await guarded('Loading the accounts', loadSessions);
}

function onConnectionState(state: ConnectionState): void {
  if (state === 'reconnecting') {
    s.connected = false;
    setConnection('reconnecting', 'daemon unreachable, reconnecting…');
    moveMessage('');
    renderGame();
  } else if (state === 'open') {
    s.connected = true;
    setConnection('open', `connected to ${location.host}`);
    notice(undefined);
    // the client resubscribed by itself (the channel's events resume after the last one seen)
    void refreshAll();
  } else {
    s.connected = false;
    setConnection('closed', 'disconnected');
  }
}

// ------------------------------------------------------------------ the account

async function loadSessions(): Promise<void> {
  const client = s.client!;
  s.sessions = await client.sessionList();
  const select = el<HTMLSelectElement>('account-select');
  select.replaceChildren(
    ...s.sessions.map((x) => {
      const o = make('option', { text: `${x.account} (${shortAddress(x.address)})` });
      o.value = x.account;
      return o;
    }),
  );
  el('account-choice').hidden = s.sessions.length < 2;
  const stored = sessionStorage.getItem(ACCOUNT_KEY);
  const chosen = s.sessions.find((x) => x.account === stored) ?? s.sessions[0];
  if (!chosen) {
    notice('This daemon runs no account: add one with "entente account new NAME" and restart it.');
    return;
  }
  select.value = chosen.account;
  await selectAccount(chosen.account);
}

async function selectAccount(account: string): Promise<void> {
  const client = s.client!;
  const session = s.sessions.find((x) => x.account === account);
  if (!session) return;
  const stored = sessionStorage.getItem(CHANNEL_KEY) as Hex | null;
  sessionStorage.setItem(ACCOUNT_KEY, account);
  await s.nodeSub?.unsubscribe().catch(() => undefined);
  await selectChannel(undefined);
  s.account = account;
  s.me = session.address;
  s.proposals = [];
  s.channels = [];
  el('account-address').textContent = session.address;
  el('account-balance').textContent = '…';
  s.nodeSub = await client.subscribeNode({
    ...opts(),
    onEvent: (event) => {
      const [kind] = variant(event);
      if (kind === 'Proposal' || kind === 'Lagged') void guarded('Reading the invitations', refreshProposals);
      if (kind === 'ChainUnavailable') notice('Your daemon cannot reach the chain at the moment; it keeps trying.');
      if (kind === 'ChainRecovered') notice(undefined);
    },
    onResubscribed: () => void guarded('Reading the invitations', refreshProposals),
  });
  await refreshAll();
  if (stored && s.channels.some((c) => c.channel_id === stored)) await selectChannel(stored);
}

async function refreshBalance(): Promise<void> {
  if (!s.client || !s.me) return;
  const b = await s.client.accountBalance(opts());
  el('account-balance').textContent = ether(BigInt(b.balance), 6);
  el('account-balance').dataset['wei'] = BigInt(b.balance).toString();
}

/** Everything again (after connecting, reconnecting, or switching accounts). */
async function refreshAll(): Promise<void> {
  await Promise.all([
    guarded('Reading the balance', refreshBalance),
    guarded('Reading the invitations', refreshProposals),
    guarded('Reading your games', refreshChannels),
    guarded('Reading the game', refreshGame),
  ]);
}

// ------------------------------------------------------------------ proposing

function timingFromForm(): Timing {
  const read = (id: string, name: string) => {
    const v = Number(el<HTMLInputElement>(id).value);
    if (!Number.isInteger(v) || v < 1) throw new Error(`the ${name} time must be a whole number of seconds, at least 1`);
    return v;
  };
  return {
    p2p: read('timing-p2p', 'move'),
    agreement: read('timing-agreement', 'signatures'),
    fallback: read('timing-fallback', 'fallback'),
    challenge: read('timing-challenge', 'challenge'),
  };
}

async function propose(): Promise<void> {
  const status = el('propose-status');
  const client = s.client;
  const me = s.me;
  if (!client || !me || !s.connected) {
    status.textContent = 'Not connected to the daemon.';
    return;
  }
  const opponent = el<HTMLInputElement>('opponent').value.trim();
  let stake: bigint;
  let timing: Timing;
  try {
    if (!isAddress(opponent)) throw new Error('the opponent must be an address: 0x and 40 hexadecimal digits');
    if (sameAddress(opponent, me)) throw new Error('you cannot play against yourself: give your opponent\'s address');
    stake = parseEther(el<HTMLInputElement>('stake').value);
    if (stake <= 0n) throw new Error('the stake must be more than 0');
    timing = timingFromForm();
  } catch (e) {
    status.textContent = `Cannot propose: ${errorText(e)}.`;
    status.dataset['tone'] = 'bad';
    return;
  }
  const button = document.querySelector<HTMLButtonElement>('[data-testid="propose"]')!;
  button.disabled = true;
  status.dataset['tone'] = 'info';
  status.textContent = 'Proposing…';
  try {
    const { channel_id } = await client.proposalMake({
      ...opts(),
      machine: MACHINE,
      participants: [me, opponent as Address],
      deposits: [stake, stake],
      genesis: { function: 'initialState', args: [me, opponent, stake] },
      timing,
    });
    status.textContent = `Proposed game ${shortHash(channel_id)} to ${shortAddress(opponent)} (${ether(stake)} each); it starts once they accept and both deposits are in.`;
    status.dataset['channel'] = channel_id;
    await guarded('Reading your games', refreshChannels);
    await selectChannel(channel_id);
  } catch (e) {
    status.dataset['tone'] = 'bad';
    status.textContent = `The proposal failed: ${errorText(e)}.`;
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------------ invitations

async function refreshProposals(): Promise<void> {
  if (!s.client || !s.account) return;
  s.proposals = await s.client.proposalList(opts());
  renderProposals();
}

/** Every term a proposal sets, in words, and whether the page can vouch for it (Accept is
 *  offered only then): the stakes of both sides, the asset, every deadline. */
function proposalTerms(p: ProposalEntry): { text: string; warnings: string[]; readable: boolean } {
  const prop = p.proposal;
  const deposits = Array.isArray(prop['deposits']) ? (prop['deposits'] as unknown[]) : [];
  const participants = Array.isArray(prop['participants']) ? (prop['participants'] as unknown[]) : [];
  const mine = participants.findIndex((x) => sameAddress(String(x), s.me));
  const amount = (v: unknown): bigint | undefined => {
    try {
      return BigInt(String(v));
    } catch {
      return undefined;
    }
  };
  const stakes = deposits.map(amount);
  const warnings: string[] = [];
  let readable = mine >= 0 && stakes.length === participants.length && stakes.every((x) => x !== undefined);
  if (mine < 0) warnings.push('you are not among its players');
  if (!readable) warnings.push('the page cannot read its stakes: use the command line to look at it');
  const parts: string[] = [];
  const myStake = stakes[mine];
  if (myStake !== undefined) parts.push(`your stake ${ether(myStake)}`);
  stakes.forEach((x, i) => {
    if (i !== mine && x !== undefined) parts.push(`${shortAddress(String(participants[i]))} stakes ${ether(x)}`);
  });
  if (readable && stakes.some((x) => x !== myStake)) warnings.push('the stakes differ');
  const token = String(prop['token'] ?? '');
  if (!/^0x0{40}$/i.test(token)) {
    warnings.push(`the stakes are in the token ${token}, not ether`);
  }
  const t = (prop['timing'] ?? {}) as Record<string, unknown>;
  const secs = (k: string) => (typeof t[k] === 'number' ? (t[k] as number) : undefined);
  const timing = [
    ['per move', secs('p2p_time')],
    ['to sign', secs('agreement_time')],
    ['before the chain', secs('chain_fallback_time')],
    ['to challenge', secs('challenge_time')],
  ] as const;
  parts.push(timing.map(([what, v]) => `${v ?? '?'} s ${what}`).join(', '));
  const challenge = secs('challenge_time');
  if (challenge === undefined || challenge < 60) {
    warnings.push('a challenge window under a minute: your node must be online to answer a false claim in time');
  }
  if (timing.some(([, v]) => v === undefined)) readable = false;
  return { text: parts.join('; '), warnings, readable };
}

function renderProposals(): void {
  const list = el('proposals');
  list.replaceChildren(
    ...s.proposals.map((p) => {
      const li = make('li', { testid: `proposal-${p.channel_id}` });
      li.dataset['channel'] = p.channel_id;
      const what = p.machine === MACHINE ? 'Tic-tac-toe' : p.machine ? `A "${p.machine}" game` : 'A game of an unregistered machine';
      const terms = proposalTerms(p);
      li.append(
        make('div', { text: `${what} from ${shortAddress(p.from)}` }),
        make('div', { text: terms.text, cls: 'empty', testid: `terms-${p.channel_id}` }),
        make('div', { text: shortHash(p.channel_id), cls: 'mono empty' }),
      );
      if (terms.warnings.length > 0) {
        li.append(make('div', { text: `Look before you accept: ${terms.warnings.join('; ')}.`, cls: 'warning', testid: `warning-${p.channel_id}` }));
      }
      const actions = make('div', { cls: 'actions' });
      const accept = make('button', { text: 'Accept', testid: `accept-${p.channel_id}` });
      accept.classList.add('accept');
      accept.disabled = !terms.readable;
      const decline = make('button', { text: 'Decline', cls: 'secondary decline', testid: `decline-${p.channel_id}` });
      accept.addEventListener('click', () => void answer(p.channel_id, true, accept, decline));
      decline.addEventListener('click', () => void answer(p.channel_id, false, accept, decline));
      actions.append(accept, decline);
      li.append(actions);
      return li;
    }),
  );
  el('proposals-empty').hidden = s.proposals.length > 0;
}

async function answer(id: Hex, accept: boolean, ...buttons: HTMLButtonElement[]): Promise<void> {
  const client = s.client;
  if (!client) return;
  for (const b of buttons) b.disabled = true;
  try {
    if (accept) {
      await client.proposalAccept(id, opts());
      await refreshChannels();
      await selectChannel(id);
    } else {
      await client.proposalDecline(id, { ...opts(), reason: 'declined on the web page' });
    }
    notice(undefined);
  } catch (e) {
    notice(`${accept ? 'Accepting' : 'Declining'} the invitation failed: ${errorText(e)}`);
    for (const b of buttons) b.disabled = false;
  }
  await guarded('Reading the invitations', refreshProposals);
}

// ------------------------------------------------------------------ the games

async function refreshChannels(): Promise<void> {
  if (!s.client || !s.account) return;
  s.channels = await s.client.channelList(opts());
  renderChannels();
}

function opponentOf(c: ChannelInfo): string | undefined {
  const order = c.deposits?.length ? c.deposits.map((d) => d.participant) : c.participants;
  return order.find((a) => !sameAddress(a, s.me));
}

function renderChannels(): void {
  const list = el('channels');
  list.replaceChildren(
    ...s.channels.map((c) => {
      const li = make('li', { testid: `channel-${c.channel_id}` });
      li.dataset['channel'] = c.channel_id;
      if (c.channel_id === s.selected) li.classList.add('selected');
      const b = make('button', { cls: 'channel-button', testid: `open-${c.channel_id}` });
      const opp = opponentOf(c);
      const turn =
        c.phase === 'Live' && !c.game_over ? (sameAddress(c.next_writer, s.me) ? ' · your turn' : ' · their turn') : '';
      b.append(
        make('div', { text: `${c.machine === MACHINE ? 'Tic-tac-toe' : (c.machine ?? 'unknown machine')} vs ${opp ? shortAddress(opp) : '?'}` }),
        make('div', { text: `${c.phase}${c.game_over ? ' · over' : ''}${c.disputed ? ' · dispute on chain' : ''}${turn}`, cls: 'empty' }),
        make('div', { text: shortHash(c.channel_id), cls: 'mono empty' }),
      );
      b.addEventListener('click', () => void selectChannel(c.channel_id));
      li.append(b);
      return li;
    }),
  );
  el('channels-empty').hidden = s.channels.length > 0;
}

/** Incremented at each selection: events and subscriptions of an older one are dropped. */
let selection = 0;

async function selectChannel(id: Hex | undefined): Promise<void> {
  if (id === s.selected && id !== undefined) return; // already shown (or being subscribed to)
  const mine = ++selection;
  const old = s.channelSub;
  s.channelSub = undefined;
  s.selected = id;
  s.events = [];
  s.info = undefined;
  s.game = undefined;
  s.withdrawal = undefined;
  moveMessage('');
  if (id) sessionStorage.setItem(CHANNEL_KEY, id);
  else sessionStorage.removeItem(CHANNEL_KEY);
  renderChannels();
  renderEvents(); // and the game
  await old?.unsubscribe().catch(() => undefined);
  if (!id || !s.client) return;
  await guarded('Reading the game', refreshGame);
  try {
    const sub = await s.client.subscribeChannel(id, {
      ...opts(),
      from: 0,
      onEvent: (n) => {
        if (selection !== mine) return;
        s.events.push(n);
        onChannelEvent(n);
      },
      onError: (e) => {
        if (selection === mine) notice(`The game's events: ${errorText(e)}`);
      },
    });
    if (selection !== mine) await sub.unsubscribe();
    else s.channelSub = sub;
  } catch (e) {
    if (selection !== mine) return;
    // shown again on the next pick
    s.selected = undefined;
    notice(`Following the game's events failed: ${errorText(e)}`);
  }
}

function onChannelEvent(n: NumberedEvent): void {
  renderEvents();
  const [kind, , inner] = variant(n.event);
  if (kind === 'Withdrawn' || kind === 'Live') void guarded('Reading the balance', refreshBalance);
  if (kind === 'Chain') {
    const [k] = variant(inner);
    if (k === 'ChannelClosed' || k === 'Deposited' || k === 'ParticipantRemoved') void guarded('Reading the balance', refreshBalance);
  }
  scheduleRefresh();
}

let refreshing: Promise<void> | undefined;
let again = false;

/** Reads the game again soon; one read at a time, the last request always served. */
function scheduleRefresh(): void {
  if (refreshing) {
    again = true;
    return;
  }
  refreshing = (async () => {
    do {
      again = false;
      await guarded('Reading the game', refreshGame);
    } while (again);
  })().finally(() => {
    refreshing = undefined;
  });
}

async function refreshGame(): Promise<void> {
  const id = s.selected;
  const client = s.client;
  if (!id || !client) return;
  const info = await client.channelInfo(id, opts());
  let game: GameState | undefined = s.game;
  if (info.machine === MACHINE || info.machine === null) {
    try {
      game = (await client.channel(id, ticTacToeAbi, opts()).view('getGame')) as GameState;
    } catch {
      // no state to run the view on yet (a proposal): the board stays empty
    }
  }
  let withdrawal = s.withdrawal;
  if (info.phase === 'Closed' || info.phase === 'Left' || info.phase === 'Cancelled') {
    withdrawal = await client.channelWithdrawal(id, opts());
  }
  if (s.selected !== id) return;
  s.info = info;
  s.game = game;
  s.withdrawal = withdrawal;
  const i = s.channels.findIndex((c) => c.channel_id === id);
  if (i >= 0) {
    s.channels[i] = info;
    renderChannels();
  }
  renderGame();
}

/** X then O: the proposal's participants (they stay after a removal), else the game's players. */
function order(): string[] {
  const d = s.info?.deposits;
  if (d && d.length === 2) return d.map((x) => x.participant);
  if (s.game && s.game.players.length === 2) return [...s.game.players];
  return s.info?.participants ?? [];
}

function renderGame(): void {
  const id = s.selected;
  el('game').hidden = !id;
  el('no-game').hidden = !!id;
  if (!id) return;
  const info = s.info;
  const game = s.game;
  const me = s.me ?? '';
  el('game-channel').textContent = shortHash(id);
  el('game-channel').title = id;
  el('game').dataset['channel'] = id;

  const xo = order();
  const role = roleOf(me, xo);
  const opp = xo.find((a) => !sameAddress(a, me));
  el('role').textContent = role
    ? `You play ${role}${role === 'X' ? ' (you start)' : ''}; your opponent ${opp ? shortAddress(opp) : '?'} plays ${role === 'X' ? 'O' : 'X'}.`
    : '';
  el('role').dataset['role'] = role ?? '';

  // whose turn
  const turn = el('turn');
  let turnText = '';
  const mine = info?.phase === 'Live' && !info.game_over && sameAddress(info.next_writer, me);
  if (!info) turnText = 'Loading…';
  else if (info.phase === 'Proposed') turnText = 'Waiting for your opponent to accept the proposal.';
  else if (info.phase === 'Funding' || info.phase === 'Joining') turnText = 'Waiting for both deposits on chain.';
  else if (info.phase === 'Live' && !info.game_over) {
    turnText = mine ? `Your turn (${role ?? '?'}).` : `Your opponent's turn${opp ? ` (${shortAddress(opp)})` : ''}.`;
    if (info.disputed) turnText += ' A dispute is running on chain.';
  } else if (info.phase === 'Cancelled') turnText = 'This game was cancelled.';
  else turnText = 'Game over.';
  if (!s.connected) turnText += ' (The daemon is unreachable: the page reconnects by itself.)';
  turn.textContent = turnText;
  turn.dataset['mine'] = String(mine && s.connected);

  // the board
  const board = el('board');
  if (board.children.length !== 9) {
    board.replaceChildren(
      ...Array.from({ length: 9 }, (_, cell) => {
        const b = make('button', { cls: 'cell', testid: `cell-${cell}` });
        b.type = 'button';
        b.addEventListener('click', () => void play(cell));
        return b;
      }),
    );
  }
  board.dataset['playable'] = String(mine && s.connected);
  for (let cell = 0; cell < 9; cell++) {
    const b = board.children[cell] as HTMLButtonElement;
    const mark = markOfCell(game?.board[cell]);
    b.textContent = mark;
    b.dataset['mark'] = mark;
    b.setAttribute('aria-label', `cell ${cell + 1}: ${mark || 'empty'}`);
  }

  // the outcome
  const winner = el('winner');
  const result = outcomeText(game, me, xo, info);
  winner.textContent = result.text;
  winner.dataset['outcome'] = result.kind;

  // the banner: a dispute, a removal, a fraud proof
  const banner = el('banner');
  const b = bannerOf(
    s.events.map((n) => n.event),
    { me },
  );
  banner.hidden = !b;
  banner.textContent = b?.text ?? '';
  banner.dataset['tone'] = b?.tone ?? '';

  // facts
  el('phase').textContent = info ? `${info.phase}${info.disputed ? ' (dispute on chain)' : ''}` : '…';
  el('phase').dataset['phase'] = info?.phase ?? '';
  el('heights').textContent = info ? `${info.tip} applied, ${info.finalized} final${info.fork > 0 ? ` (fork ${info.fork})` : ''}` : '…';
  const name = (a: string) => (sameAddress(a, me) ? 'you' : shortAddress(a));
  el('deposits').textContent = info?.deposits?.length ? info.deposits.map((d) => `${name(d.participant)} ${ether(BigInt(d.amount))}`).join(' · ') : '…';
  const payouts = el('payouts');
  if (info?.exits) {
    payouts.textContent = info.exits.map((x) => `${name(x.participant)} ${ether(BigInt(x.amount))}`).join(' · ') || 'none';
    const own = info.exits.find((x) => sameAddress(x.participant, me));
    payouts.dataset['mine'] = own ? BigInt(own.amount).toString() : '0';
  } else {
    payouts.textContent = info && (info.phase === 'Left' || info.phase === 'Cancelled') ? 'see withdrawn' : 'once the game settles on chain';
    delete payouts.dataset['mine'];
  }
  const withdrawn = el('withdrawn');
  const w = s.withdrawal;
  if (w) {
    const total = w.withdrawn.reduce((acc, x) => acc + BigInt(x), 0n);
    withdrawn.dataset['wei'] = total.toString();
    withdrawn.dataset['done'] = String(w.calls_outstanding === 0);
    withdrawn.textContent =
      total > 0n
        ? `${ether(total)} back in your account${w.calls_outstanding > 0 ? ' (more on the way)' : ''}`
        : w.calls_outstanding > 0
          ? 'on the way…'
          : 'nothing for you';
  } else {
    withdrawn.textContent = '—';
    delete withdrawn.dataset['wei'];
    delete withdrawn.dataset['done'];
  }
}

/** The winner line: from the board once decided, else from a removal the chain made. */
function outcomeText(game: GameState | undefined, me: string, xo: string[], info: ChannelInfo | undefined): { kind: string; text: string } {
  if (game && game.status !== Status.Playing) return outcome(game, me, xo);
  for (let i = s.events.length - 1; i >= 0; i--) {
    const [kind, , inner] = variant(s.events[i]!.event);
    if (kind !== 'Chain') continue;
    const [k, b] = variant(inner);
    if (k === 'ParticipantRemoved') {
      const gone = String(b['participant'] ?? '');
      return sameAddress(gone, me)
        ? { kind: 'lost', text: 'You lost: the chain removed you from the game.' }
        : { kind: 'won', text: `You won: the chain removed your opponent ${shortAddress(gone)}.` };
    }
  }
  if (info?.phase === 'Cancelled') return { kind: 'draw', text: 'No game: it was cancelled; deposits go back.' };
  return { kind: 'playing', text: '' };
}

function renderEvents(): void {
  const log = el('event-log');
  const me = s.me ?? '';
  const items: HTMLLIElement[] = [];
  for (const n of s.events.slice(-300)) {
    const d = describe(n.event, { me });
    if (d.quiet) continue;
    const li = make('li', { text: d.text });
    li.value = n.seq + 1;
    li.dataset['seq'] = String(n.seq);
    li.dataset['kind'] = d.kind;
    li.dataset['tone'] = d.tone;
    items.push(li);
  }
  log.replaceChildren(...items.reverse());
  renderGame();
}

// ------------------------------------------------------------------ moves

async function play(cell: number): Promise<void> {
  const id = s.selected;
  const client = s.client;
  const refusal = refuseMove(cell, {
    connected: s.connected,
    phase: s.info?.phase,
    me: s.me ?? '',
    nextWriter: s.info?.next_writer,
    game: s.game,
    busy: s.busy,
  });
  if (refusal || !id || !client) {
    moveMessage(refusal ?? 'No game selected.');
    return;
  }
  s.busy = true;
  moveMessage(`Playing cell ${cell + 1}…`, 'info');
  try {
    await client.channel(id, ticTacToeAbi, opts()).call('play', [cell]);
    moveMessage('');
  } catch (e) {
    if (e instanceof EntenteApiError && e.code === ErrorCode.MOVE_REFUSED) {
      moveMessage(`The daemon refused the move: ${refusalWords(e.message)}`, 'bad');
    } else if (e instanceof EntenteApiError && e.code === ErrorCode.NOT_LIVE) {
      moveMessage('The game is not running: no more moves.', 'bad');
    } else if (e instanceof EntenteConnectionError) {
      moveMessage('The daemon went away during the move: it may or may not have been made; the board shows it once the daemon is back.', 'bad');
    } else {
      moveMessage(`The move failed: ${errorText(e)}`, 'bad');
    }
  } finally {
    s.busy = false;
  }
  scheduleRefresh();
}

/** The machine's revert in words (the daemon's message names the Solidity error). */
function refusalWords(message: string): string {
  if (/CellOccupied/.test(message)) return 'that cell is taken.';
  if (/NotYourTurn|not the next writer|turn/i.test(message)) return 'it is not your turn.';
  if (/GameIsOver|game over/i.test(message)) return 'the game is over.';
  if (/CellOutOfRange/.test(message)) return 'there is no such cell.';
  return message;
}

// ------------------------------------------------------------------ start

function start(): void {
  el('connect-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = el<HTMLInputElement>('token').value.trim();
    if (!token) {
      showConnectPanel('Paste the token first.');
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    el('connect-error').hidden = true;
    void connect(token);
  });
  el('propose-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void propose();
  });
  el<HTMLSelectElement>('account-select').addEventListener('change', (ev) => {
    void guarded('Switching accounts', () => selectAccount((ev.target as HTMLSelectElement).value));
  });
  setInterval(() => {
    if (!s.connected || document.hidden || !s.account) return;
    void guarded('Reading your games', refreshChannels);
    void guarded('Reading the balance', refreshBalance);
    if (s.selected) scheduleRefresh();
  }, POLL_MS);

  const token = takeToken();
  if (!token) {
    setConnection('closed', 'not connected');
    showConnectPanel(undefined);
    return;
  }
  void connect(token);
}

start();
