/**
 * Calls and views typed from a state machine's ABI (viem/abitype): function names, argument and
 * result types are inferred from an ABI declared `as const`; values are converted between the ABI's
 * TypeScript types and the daemon's JSON (integers above 48 bits as decimal strings there, bigint
 * here; tuples as arrays on the way out, objects with named components on the way back).
 */

import type {
  Abi,
  AbiFunction,
  AbiParameter,
  ContractFunctionArgs,
  ContractFunctionName,
  ContractFunctionReturnType,
} from 'viem';

import type { AccountOption, ChannelSubscription, EntenteClient, SubscribeOptions } from './client.js';
import { EntenteError } from './errors.js';
import type { CallResult, ChannelInfo, Hex } from './types.js';

/** Functions that make moves. */
export type MoveMutability = 'nonpayable' | 'payable';
/** Functions that only read. */
export type ViewMutability = 'pure' | 'view';

/** The arguments of `fn`: optional when it takes none. */
export type ArgsOf<
  abi extends Abi,
  mutability extends MoveMutability | ViewMutability,
  fn extends ContractFunctionName<abi, mutability>,
> = ContractFunctionArgs<abi, mutability, fn> extends readonly []
  ? [args?: readonly []]
  : [args: ContractFunctionArgs<abi, mutability, fn>];

/** A channel seen through its machine's ABI; make one with `client.channel(channelId, abi)`. */
export class TypedChannel<const abi extends Abi> {
  constructor(
    readonly client: EntenteClient,
    readonly channelId: Hex,
    readonly abi: abi,
    readonly account?: string,
  ) {}

  private get opts(): AccountOption {
    return this.account === undefined ? {} : { account: this.account };
  }

  /** A move: `call('play', [4])`. Resolves once applied locally (final later: watch the events). */
  async call<fn extends ContractFunctionName<abi, MoveMutability>>(
    functionName: fn,
    ...rest: ArgsOf<abi, MoveMutability, fn>
  ): Promise<CallResult> {
    const args = (rest[0] ?? []) as readonly unknown[];
    const f = findFunction(this.abi, functionName, args.length, ['nonpayable', 'payable']);
    return this.client.channelCall(this.channelId, f.name, encodeArgs(f, args), this.opts);
  }

  /** A view on the channel's current state, its result in the ABI's types: `view('getGame')`. */
  async view<fn extends ContractFunctionName<abi, ViewMutability>>(
    functionName: fn,
    ...rest: ArgsOf<abi, ViewMutability, fn>
  ): Promise<ContractFunctionReturnType<abi, ViewMutability, fn>> {
    const args = (rest[0] ?? []) as readonly unknown[];
    const f = findFunction(this.abi, functionName, args.length, ['pure', 'view']);
    const out = await this.client.channelView(this.channelId, f.name, encodeArgs(f, args), this.opts);
    return decodeResult(f, out) as ContractFunctionReturnType<abi, ViewMutability, fn>;
  }

  /** `channel_info`. */
  info(): Promise<ChannelInfo> {
    return this.client.channelInfo(this.channelId, this.opts);
  }

  /** The channel's events (see `EntenteClient.subscribeChannel`). */
  subscribe(opts: Omit<SubscribeOptions, 'account'>): Promise<ChannelSubscription> {
    return this.client.subscribeChannel(this.channelId, { ...opts, ...this.opts });
  }
}

// ------------------------------------------------------------------ the ABI at run time

interface Found {
  /** What the daemon is sent: the name, or the signature when the name is overloaded. */
  name: string;
  fn: AbiFunction;
}

function findFunction(abi: Abi, name: string, argc: number, mutability: readonly string[]): Found {
  const named = abi.filter((x): x is AbiFunction => x.type === 'function' && x.name === name);
  const candidates = named.filter((f) => mutability.includes(f.stateMutability) && f.inputs.length === argc);
  const fn = candidates[0];
  if (!fn || candidates.length > 1) {
    throw new EntenteError(
      candidates.length > 1
        ? `${name}: ${candidates.length} functions take ${argc} arguments; call the daemon with a signature (client.channelCall)`
        : `${name}: the ABI has no ${mutability.join('/')} function of that name with ${argc} arguments`,
    );
  }
  return { name: named.length > 1 ? signature(fn) : name, fn };
}

/** `name(type,...)`, tuples spelt out: the function's canonical signature. */
export function signature(fn: AbiFunction): string {
  return `${fn.name}(${fn.inputs.map(canonicalType).join(',')})`;
}

function canonicalType(p: AbiParameter): string {
  if (p.type.startsWith('tuple')) {
    const components = 'components' in p ? p.components : [];
    return `(${components.map(canonicalType).join(',')})${p.type.slice('tuple'.length)}`;
  }
  return p.type;
}

/** The element of an array type (`uint8[9]` -> `uint8`), or undefined when `p` is not an array. */
function element(p: AbiParameter): AbiParameter | undefined {
  const m = /^(.*)\[\d*\]$/.exec(p.type);
  if (!m || m[1] === undefined) return undefined;
  return { ...p, type: m[1] } as AbiParameter;
}

function intBits(type: string): number | undefined {
  const m = /^u?int(\d*)$/.exec(type);
  if (!m) return undefined;
  return m[1] ? Number(m[1]) : 256;
}

/** Arguments as the daemon's JSON: bigints as decimal strings, tuples (objects or arrays) as arrays. */
export function encodeArgs(f: Found | AbiFunction, args: readonly unknown[]): unknown[] {
  const fn = 'fn' in f ? f.fn : f;
  return fn.inputs.map((p, i) => toJson(p, args[i]));
}

function toJson(p: AbiParameter, v: unknown): unknown {
  const e = element(p);
  if (e) {
    if (!Array.isArray(v)) throw new EntenteError(`${p.name || p.type}: expected an array for ${p.type}`);
    return v.map((x) => toJson(e, x));
  }
  if (p.type === 'tuple') {
    const components = ('components' in p ? p.components : []) as readonly AbiParameter[];
    if (Array.isArray(v)) return components.map((c, i) => toJson(c, v[i]));
    if (typeof v === 'object' && v !== null) {
      const o = v as Record<string, unknown>;
      return components.map((c, i) => toJson(c, c.name ? o[c.name] : o[i]));
    }
    throw new EntenteError(`${p.name || 'tuple'}: expected an object or array`);
  }
  if (typeof v === 'bigint') return v.toString();
  return v;
}

/** The daemon's JSON result of `f` in the ABI's TypeScript types (none: undefined; one: it; several: an array). */
export function decodeResult(f: Found | AbiFunction, out: unknown): unknown {
  const fn = 'fn' in f ? f.fn : f;
  const outputs = fn.outputs;
  if (outputs.length === 0) return undefined;
  if (outputs.length === 1) return fromJson(outputs[0] as AbiParameter, out);
  if (!Array.isArray(out)) throw new EntenteError(`${fn.name}: expected ${outputs.length} results, got ${JSON.stringify(out)}`);
  return outputs.map((p, i) => fromJson(p, out[i]));
}

function fromJson(p: AbiParameter, v: unknown): unknown {
  const e = element(p);
  if (e) {
    if (!Array.isArray(v)) throw new EntenteError(`${p.name || p.type}: expected an array, got ${JSON.stringify(v)}`);
    return v.map((x) => fromJson(e, x));
  }
  if (p.type === 'tuple') {
    const components = ('components' in p ? p.components : []) as readonly AbiParameter[];
    const named = components.length > 0 && components.every((c) => c.name);
    if (named && typeof v === 'object' && v !== null && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      return Object.fromEntries(components.map((c) => [c.name as string, fromJson(c, o[c.name as string])]));
    }
    if (Array.isArray(v)) return components.map((c, i) => fromJson(c, v[i]));
    throw new EntenteError(`${p.name || 'tuple'}: expected an object or array, got ${JSON.stringify(v)}`);
  }
  const bits = intBits(p.type);
  if (bits !== undefined) {
    if (typeof v !== 'number' && typeof v !== 'string' && typeof v !== 'bigint') {
      throw new EntenteError(`${p.name || p.type}: expected an integer, got ${JSON.stringify(v)}`);
    }
    return bits > 48 ? BigInt(v) : Number(v);
  }
  return v;
}
