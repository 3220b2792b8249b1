/** Types of the daemon API's parameters and results, as docs/daemon.md describes them. */

import type { Abi, Address, Hex } from 'viem';

export type { Abi, Address, Hex };

/** An amount in wei (or token units): the client sends it as a decimal string. */
export type Amount = bigint | number | string;

/** `account_balance`'s result: the account's address and its ether balance on chain (wei, `0x` hex). */
export interface AccountBalance {
  address: Address;
  balance: Hex;
}

/** `session_list`: one account the daemon runs a node for. */
export interface Session {
  account: string;
  address: Address;
  peer_id: string;
  listen: string[];
}

/** `peer_add`'s result: the peer dialed, and whether its address was added to the address book. */
export interface PeerAdded {
  peer_id: string;
  remembered: boolean;
}

/** A peer the node is connected to (`peer_list`). */
export interface ConnectedPeer {
  peer_id: string;
  /** Its Ethereum address once it authenticated as a channel participant. */
  address: Address | null;
  /** Reached through a relay. */
  relayed: boolean;
}

/** `peer_list`'s result: the address book (multiaddresses) and the connected peers. */
export interface PeerList {
  book: string[];
  connected: ConnectedPeer[];
}

/** `machine_register`'s result. */
export interface RegisteredMachine {
  name: string;
  address: Address;
}

/** `machine_list`: a registered machine with its ABI. */
export interface MachineInfo {
  name: string;
  address: Address;
  abi: Abi;
}

/** A contract artifact: what `machine_register` takes (contracts/artifacts/*.json fit). */
export interface Artifact {
  abi: Abi | readonly unknown[];
  bytecode: Hex | string | { object: string };
  [other: string]: unknown;
}

/** Channel timing, in seconds. */
export interface Timing {
  p2p: number;
  agreement: number;
  fallback: number;
  challenge: number;
}

/** A machine function and its JSON arguments. */
export interface CallSpec {
  function: string;
  args?: readonly unknown[];
}

/** `proposal_make`'s parameters (the proposer first among the participants). */
export interface ProposalParams {
  account?: string;
  machine: string;
  participants: readonly Address[];
  deposits: readonly Amount[];
  genesis: CallSpec;
  timing?: Timing;
  token?: Address;
  salt?: Hex;
}

/** `proposal_list`: a proposal received and not answered yet. */
export interface ProposalEntry {
  channel_id: Hex;
  from: Address;
  machine: string | null;
  proposal: Record<string, unknown>;
}

/** An amount for one participant (`channel_info`'s `deposits` and `exits`): `0x` hex. */
export interface ParticipantAmount {
  participant: Address;
  amount: Hex;
}

export type Phase = 'Proposed' | 'Funding' | 'Joining' | 'Live' | 'Closed' | 'Left' | 'Cancelled';

/** `channel_info` (and each entry of `channel_list`). Amounts are 0x hex strings. */
export interface ChannelInfo {
  channel_id: Hex;
  phase: Phase;
  machine: string | null;
  state_machine: Address;
  token: Address;
  fork: number;
  tip: number;
  finalized: number;
  tip_state_hash: Hex;
  tip_timestamp: number;
  participants: Address[];
  next_writer: Address | null;
  game_over: boolean;
  disputed: boolean;
  /** Each participant's deposit, in participant order (the proposal's). */
  deposits: ParticipantAmount[];
  /** Payouts, once settled. */
  exits: ParticipantAmount[] | null;
  calls_outstanding: number;
}

/** `channel_withdrawal`'s result: the amounts withdrawn so far (`0x` hex), the phase, chain calls under way. */
export interface Withdrawal {
  withdrawn: Hex[];
  phase: Phase;
  calls_outstanding: number;
}

/** `channel_call`'s result: the digest of the applied transaction. */
export interface CallResult {
  digest: Hex;
}

/** The protocol core's events (`Applied` typed; the others as the daemon sends them). */
export type ProtocolEvent =
  | { Applied: { fork: number; height: number; issuer: Address; digest: Hex; [more: string]: unknown } }
  | { [kind: string]: unknown }
  | string;

/** The chain's events about a channel (`ChannelClosed`, deposits, disputes, ...). */
export type ChainEvent = { [kind: string]: unknown } | string;

/** One event of a channel's log: an object with one key naming its kind. */
export type ChannelEvent =
  | { Answered: { from: Address; accepted: boolean; reason: string } }
  | { Live: { genesis_timestamp: number } }
  | { Turn: { fork: number; height: number } }
  | { Protocol: ProtocolEvent }
  | { Chain: ChainEvent }
  | { ChainCall: { what: string; outcome: { Ok: number } | { Err: string } } }
  | { Withdrawn: { amount: Hex } }
  | { Cancelled: { reason: string } };

/** A `channel_event` notification: the event and its sequence number in the channel's log. */
export interface NumberedEvent {
  seq: number;
  event: ChannelEvent;
}

/** The height of an `Applied` protocol event, or undefined for any other event. */
export function appliedHeight(event: ChannelEvent): number | undefined {
  if (!('Protocol' in event)) return undefined;
  const p = event.Protocol;
  if (typeof p !== 'object' || p === null || !('Applied' in p)) return undefined;
  const applied = (p as { Applied: { height?: unknown } }).Applied;
  return typeof applied?.height === 'number' ? applied.height : undefined;
}

/** The kind of a chain event (`ChannelClosed`, ...), or undefined when the event is not from the chain. */
export function chainEventKind(event: ChannelEvent): string | undefined {
  if (!('Chain' in event)) return undefined;
  const c = event.Chain;
  return typeof c === 'string' ? c : Object.keys(c)[0];
}

/** The amount of a `Withdrawn` event, or undefined for any other event. */
export function withdrawnAmount(event: ChannelEvent): bigint | undefined {
  return 'Withdrawn' in event ? BigInt(event.Withdrawn.amount) : undefined;
}

/** The kind of an event: its single key (`Live`, `Protocol`, `Chain`, `Withdrawn`, ...). */
export function eventKind(event: ChannelEvent): string {
  return Object.keys(event)[0] ?? '';
}

/**
 * A `node_event` notification (`node_subscribe`): a proposal arrived, the chain became unreachable
 * or came back, or this reader fell behind and `missed` events were dropped (proposal_list has the
 * proposals).
 */
export type NodeEvent =
  | { Proposal: { from: Address; channel_id: Hex } }
  | { ChainUnavailable: { error: string } }
  | 'ChainRecovered'
  | { Lagged: { missed: number } };

/** The kind of a node event: `Proposal`, `ChainUnavailable`, `ChainRecovered` or `Lagged`. */
export function nodeEventKind(event: NodeEvent): string {
  return typeof event === 'string' ? event : (Object.keys(event)[0] ?? '');
}

/** The proposal a node event announces (`{from, channel_id}`), or undefined for any other event. */
export function proposalOf(event: NodeEvent): { from: Address; channel_id: Hex } | undefined {
  return typeof event === 'object' && 'Proposal' in event ? event.Proposal : undefined;
}
