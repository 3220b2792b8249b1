// A channel's events (`channel_subscribe`) in plain words, and the banner the page shows for what
// matters most: a timeout dispute, a fraud proof, a removal. The events are the daemon's JSON of
// `ChannelEvent` (crates/channel/src/event.rs): serde's externally tagged enums, one key naming the
// kind (`{"Protocol": {"Applied": {...}}}`, `{"Chain": "FundingCancelled"}`). No DOM here: the unit
// tests run these in Node.

import { capitalize, ether, sameAddress, shortAddress } from './format.js';

/** Who is who, for the sentences. */
export interface Who {
  /** This page's account. */
  me: string;
}

export type Tone = 'info' | 'good' | 'warn' | 'bad';

/** One event in words. */
export interface Described {
  /** The kind, for a CSS class and tests (`Applied`, `DisputeStarted`, `Withdrawn`, ...). */
  kind: string;
  text: string;
  tone: Tone;
  /** Not worth a line of the log (a new block). */
  quiet?: boolean;
}

/** The prominent message above the board. */
export interface Banner {
  text: string;
  tone: Tone;
}

type Obj = Record<string, unknown>;

function isObj(x: unknown): x is Obj {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * The single key of an externally tagged enum value, its content as an object (a struct variant's
 * fields; `{value}` for a newtype variant holding something else) and its content as it is (a
 * nested enum: `{"Chain": "FundingCancelled"}`). A unit variant is a plain string.
 */
export function variant(x: unknown): [string, Obj, unknown] {
  if (typeof x === 'string') return [x, {}, undefined];
  if (isObj(x)) {
    const key = Object.keys(x)[0];
    if (key !== undefined) {
      const v = x[key];
      return [key, isObj(v) ? v : { value: v }, v];
    }
  }
  return ['Unknown', {}, undefined];
}

function str(x: unknown): string {
  return typeof x === 'string' ? x : typeof x === 'number' || typeof x === 'bigint' ? String(x) : '';
}

function num(x: unknown): number | undefined {
  return typeof x === 'number' ? x : typeof x === 'string' && /^\d+$/.test(x) ? Number(x) : undefined;
}

/** "you" or "your opponent 0x7099…79C8" (or just the short address of a third participant). */
export function nameOf(address: unknown, who: Who): string {
  const a = str(address);
  if (!a) return 'someone';
  if (sameAddress(a, who.me)) return 'you';
  return `your opponent ${shortAddress(a)}`;
}

/** An amount of the JSON (`0x` hex or decimal) as ether. */
function amount(x: unknown): string {
  try {
    return ether(BigInt(str(x) || '0'));
  } catch {
    return `${str(x)} wei`;
  }
}

/** `DisputeKind` in words. */
export function disputeKindWords(kind: string): string {
  switch (kind) {
    case 'Timeout':
      return 'a timeout (a player did not move in time)';
    case 'Exit':
      return 'a forced exit';
    case 'DoubleSign':
      return 'fraud: two different moves signed at one height';
    case 'InvalidTransition':
      return 'fraud: a move that breaks the rules';
    case 'TimestampOutOfOrder':
      return 'fraud: a move dated before the one it follows';
    default:
      return kind || 'a dispute';
  }
}

const FRAUD_KINDS = new Set(['DoubleSign', 'InvalidTransition', 'TimestampOutOfOrder']);

/** One event in words for the log. */
export function describe(event: unknown, who: Who): Described {
  const [kind, body, inner] = variant(event);
  const name = (a: unknown) => nameOf(a, who);
  const Name = (a: unknown) => capitalize(nameOf(a, who));
  switch (kind) {
    case 'Answered':
      return body['accepted']
        ? { kind, text: `${Name(body['from'])} accepted the proposal.`, tone: 'good' }
        : { kind, text: `${Name(body['from'])} declined the proposal${str(body['reason']) ? `: ${str(body['reason'])}` : ''}.`, tone: 'warn' };
    case 'Live':
      return { kind, text: 'Both deposits are in: the game is live.', tone: 'good' };
    case 'Turn':
      return { kind, text: `Your turn (move ${num(body['height']) ?? '?'}).`, tone: 'info' };
    case 'Protocol':
      return describeProtocol(inner);
    case 'Chain':
      return describeChain(inner);
    case 'ChainCall': {
      const what = str(body['what']) || 'a call';
      const [result, detail] = variant(body['outcome']);
      if (result === 'Ok') return { kind, text: `Your node called ${what} on chain: done (gas ${str(detail['value'])}).`, tone: 'info' };
      if (/NothingToWithdraw/.test(str(detail['value']))) {
        return { kind, text: `Your node called ${what} on chain: nothing was left to withdraw.`, tone: 'info' };
      }
      return { kind, text: `Your node called ${what} on chain: it failed (${str(detail['value'])}); it will retry if it can.`, tone: 'bad' };
    }
    case 'Withdrawn':
      return { kind, text: `Payout: ${amount(body['amount'])} withdrawn to your account.`, tone: 'good' };
    case 'Cancelled':
      return { kind, text: `The game was cancelled: ${str(body['reason']) || 'no reason given'}.`, tone: 'warn' };
    default:
      return { kind, text: `${kind}: ${JSON.stringify(body)}`, tone: 'info' };
  }
  function describeProtocol(p: unknown): Described {
    const [k, b] = variant(p);
    switch (k) {
      case 'Applied':
        return { kind: k, text: `Move ${num(b['height']) ?? '?'} by ${name(b['issuer'])} applied (not final yet).`, tone: 'info' };
      case 'Finalized':
        return { kind: k, text: `Final: every move up to ${num(b['height']) ?? '?'} is signed by both players.`, tone: 'info' };
      case 'GameOver':
        return { kind: k, text: `The game is over (after move ${num(b['height']) ?? '?'}); the channel settles on chain.`, tone: 'good' };
      case 'Rejected':
        return { kind: k, text: `A message from ${name(b['from'])} was refused: ${str(b['reason'])}.`, tone: 'bad' };
      case 'ForkStarted': {
        const ps = Array.isArray(b['participants']) ? (b['participants'] as unknown[]).map(name).join(' and ') : '?';
        return { kind: k, text: `Forked: the chain enforced a state; fork ${num(b['fork']) ?? '?'} starts at move ${num(b['genesis_height']) ?? '?'} with ${ps}.`, tone: 'warn' };
      }
      case 'IntentDropped':
        return { kind: k, text: `A move signed by ${name(b['issuer'])} was left out: ${str(b['reason'])}.`, tone: 'warn' };
      case 'Equivocation':
        return { kind: k, text: `${Name(b['signer'])} signed two different moves at height ${num(b['height']) ?? '?'} (fraud).`, tone: 'bad' };
      default:
        return { kind: k, text: `${k}: ${JSON.stringify(b)}`, tone: 'info' };
    }
  }
  function describeChain(c: unknown): Described {
    const [k, b] = variant(c);
    switch (k) {
      case 'ChannelOpened':
        return { kind: k, text: `Opened on chain by ${name(b['opener'])}.`, tone: 'info' };
      case 'Deposited':
        return { kind: k, text: `${Name(b['participant'])} deposited ${amount(b['amount'])} on chain.`, tone: 'info' };
      case 'ChannelActivated':
        return { kind: k, text: 'The chain has every deposit: the channel is open.', tone: 'good' };
      case 'FundingCancelled':
        return { kind: k, text: 'The deposits did not all arrive in time: the chain cancelled the channel; deposits go back.', tone: 'warn' };
      case 'Block':
        return { kind: k, text: 'A new block.', tone: 'info', quiet: true };
      case 'Checkpointed':
        return { kind: k, text: `Checkpoint on chain at move ${num(b['height']) ?? '?'}.`, tone: 'info' };
      case 'CalldataPosted': {
        const t = isObj(b['transaction']) ? b['transaction'] : {};
        return { kind: k, text: `Move ${num(t['height']) ?? '?'} by ${name(t['participant'])} was posted on chain (the other player did not sign in time).`, tone: 'warn' };
      }
      case 'IntentPosted':
        return { kind: k, text: 'A move was handed to the chain to be forced in.', tone: 'warn' };
      case 'IntentForced':
        return { kind: k, text: 'The chain forced a held move in.', tone: 'warn' };
      case 'IntentVoided':
        return { kind: k, text: 'The chain let a held move go (it no longer applies).', tone: 'info' };
      case 'DisputeStarted': {
        const r = isObj(b['record']) ? b['record'] : {};
        const dk = str(r['kind']);
        if (dk === 'Timeout') {
          return {
            kind: k,
            text: `Dispute raised on chain by ${name(r['submitter'])}: ${name(r['target'])} did not move in time (a timeout dispute).`,
            tone: 'bad',
          };
        }
        return { kind: k, text: `Dispute raised on chain by ${name(r['submitter'])} against ${name(r['target'])}: ${disputeKindWords(dk)}.`, tone: 'bad' };
      }
      case 'DisputeChallenged':
        return { kind: k, text: `Dispute answered on chain by ${name(b['challenger'])}.`, tone: 'warn' };
      case 'SetState':
        return { kind: k, text: `The chain enforced a state: fork ${num(b['fork']) ?? '?'} starts at move ${num(b['genesis_height']) ?? '?'}.`, tone: 'warn' };
      case 'ParticipantRemoved':
        return b['slashed']
          ? { kind: k, text: `The chain slashed ${name(b['participant'])} for fraud and removed them from the game.`, tone: 'bad' }
          : { kind: k, text: `The chain removed ${name(b['participant'])} from the game.`, tone: 'bad' };
      case 'ChannelClosed': {
        const exits = Array.isArray(b['exits']) ? (b['exits'] as unknown[]) : [];
        const parts = exits.map((e) => (Array.isArray(e) ? `${name(e[0])} ${amount(e[1])}` : JSON.stringify(e)));
        return { kind: k, text: `Settled on chain; payouts: ${parts.join(', ') || 'none'}.`, tone: 'good' };
      }
      default:
        return { kind: k, text: `Chain: ${k} ${JSON.stringify(b)}`, tone: 'info' };
    }
  }
}

/**
 * The banner after a channel's events so far (in order): the last dispute, removal or slash in
 * plain words ("Your opponent 0x… did not move in time; the chain removed them; you win by
 * timeout."), or undefined while nothing of the kind happened.
 */
export function bannerOf(events: readonly unknown[], who: Who): Banner | undefined {
  let banner: Banner | undefined;
  let dispute: { kind: string; target: string; submitter: string } | undefined;
  for (const event of events) {
    const [kind, , inner] = variant(event);
    if (kind === 'Protocol') {
      const [k, b] = variant(inner);
      if (k === 'Equivocation') {
        const signer = str(b['signer']);
        banner = sameAddress(signer, who.me)
          ? { text: 'Your node signed two different moves at one height: that is fraud the chain punishes.', tone: 'bad' }
          : { text: `Your opponent ${shortAddress(signer)} signed two different moves at one height: that is fraud; your node proves it on chain.`, tone: 'bad' };
      }
      continue;
    }
    if (kind !== 'Chain') continue;
    const [k, b] = variant(inner);
    if (k === 'DisputeStarted') {
      const r = isObj(b['record']) ? b['record'] : {};
      dispute = { kind: str(r['kind']), target: str(r['target']), submitter: str(r['submitter']) };
      const target = dispute.target;
      const mine = sameAddress(target, who.me);
      if (dispute.kind === 'Timeout') {
        banner = mine
          ? { text: 'You did not move in time: your opponent raised a timeout dispute on chain. Move now to answer it, or the chain removes you and you lose your stake.', tone: 'bad' }
          : { text: `Your opponent ${shortAddress(target)} did not move in time: a timeout dispute is on chain. If they still do not move, the chain removes them and you win by timeout.`, tone: 'warn' };
      } else if (FRAUD_KINDS.has(dispute.kind)) {
        banner = mine
          ? { text: `Your opponent proved fraud by you on chain (${disputeKindWords(dispute.kind)}): you will be slashed.`, tone: 'bad' }
          : { text: `Your opponent ${shortAddress(target)} cheated; your node proved fraud on chain (${disputeKindWords(dispute.kind)}): they will be slashed and you win.`, tone: 'warn' };
      } else if (dispute.kind === 'Exit') {
        banner = { text: `${capitalize(nameOf(dispute.submitter, who))} asked the chain to leave the game (forced exit).`, tone: 'warn' };
      } else {
        banner = { text: `A dispute is on chain: ${disputeKindWords(dispute.kind)}.`, tone: 'warn' };
      }
    } else if (k === 'DisputeChallenged') {
      const by = str(b['challenger']);
      banner = sameAddress(by, who.me)
        ? { text: 'You answered the dispute on chain in time: the game goes on.', tone: 'info' }
        : { text: `Your opponent ${shortAddress(by)} answered the dispute on chain in time: the game goes on.`, tone: 'info' };
      dispute = undefined;
    } else if (k === 'ParticipantRemoved') {
      const gone = str(b['participant']);
      const mine = sameAddress(gone, who.me);
      const slashed = b['slashed'] === true;
      const fraud = slashed || (dispute !== undefined && FRAUD_KINDS.has(dispute.kind));
      const timeout = !fraud && (dispute === undefined || dispute.kind === 'Timeout');
      if (fraud) {
        banner = mine
          ? { text: 'The chain proved fraud by you: it slashed you and removed you from the game; you lose your stake.', tone: 'bad' }
          : { text: `Your opponent ${shortAddress(gone)} cheated: the chain proved fraud, slashed them and removed them; you win by fraud proof.`, tone: 'good' };
      } else if (timeout) {
        banner = mine
          ? { text: 'You did not move in time; the chain removed you; you lose by timeout.', tone: 'bad' }
          : { text: `Your opponent ${shortAddress(gone)} did not move in time; the chain removed them; you win by timeout.`, tone: 'good' };
      } else {
        banner = mine
          ? { text: 'You left the game through the chain.', tone: 'info' }
          : { text: `Your opponent ${shortAddress(gone)} left the game through the chain; you win.`, tone: 'good' };
      }
      dispute = undefined;
    } else if (k === 'FundingCancelled') {
      banner = { text: 'The game never started: the deposits did not all arrive in time; deposits go back.', tone: 'warn' };
    }
  }
  return banner;
}
