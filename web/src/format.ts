// Amounts and addresses as people read them. No DOM here: the unit tests run these in Node.

const WEI_PER_ETHER = 10n ** 18n;

/** Wei (a bigint, a decimal string or a `0x` hex string) as a bigint. */
export function toWei(amount: bigint | string | number): bigint {
  if (typeof amount === 'bigint') return amount;
  return BigInt(amount);
}

/**
 * An amount of ether typed by a person ("1", "0.5", ".25") in wei. Throws an Error saying what is
 * wrong for anything else (negative, more than 18 decimals, not a number).
 */
export function parseEther(text: string): bigint {
  const s = text.trim();
  const m = /^(\d*)(?:\.(\d*))?$/.exec(s);
  if (!m || s === '' || s === '.' || (m[1] === '' && (m[2] ?? '') === '')) {
    throw new Error(`"${text}" is not an amount of ether (write it like 1 or 0.5)`);
  }
  const whole = m[1] ?? '';
  const fraction = m[2] ?? '';
  if (fraction.length > 18) throw new Error(`"${text}" has more than 18 decimals (the smallest unit is 1 wei = 0.000000000000000001 ether)`);
  return BigInt(whole || '0') * WEI_PER_ETHER + BigInt(fraction.padEnd(18, '0') || '0');
}

/** Wei as ether, with at most `decimals` decimals (cut, not rounded) and no trailing zeros: "0.5", "2", "0.000001". */
export function formatEther(wei: bigint | string, decimals = 6): string {
  let v = toWei(wei);
  const negative = v < 0n;
  if (negative) v = -v;
  const whole = v / WEI_PER_ETHER;
  const fraction = (v % WEI_PER_ETHER).toString().padStart(18, '0').slice(0, decimals).replace(/0+$/, '');
  if (fraction === '' && v % WEI_PER_ETHER !== 0n && whole === 0n) {
    // smaller than the shown precision: say so rather than print 0
    return `${negative ? '-' : ''}<0.${'0'.repeat(Math.max(0, decimals - 1))}1`;
  }
  const text = fraction ? `${whole}.${fraction}` : `${whole}`;
  return negative ? `-${text}` : text;
}

/** `formatEther` with the unit: "0.5 ETH". */
export function ether(wei: bigint | string, decimals = 6): string {
  return `${formatEther(wei, decimals)} ETH`;
}

/** `0x7099…79C8`. */
export function shortAddress(address: string): string {
  if (!/^0x[0-9a-fA-F]{40}$/.test(address)) return address;
  return `${address.slice(0, 6)}…${address.slice(-4)}`;
}

/** `0xa184…0ae8` for a channel id (or any 32-byte hash). */
export function shortHash(hash: string): string {
  if (!/^0x[0-9a-fA-F]{64}$/.test(hash)) return hash;
  return `${hash.slice(0, 6)}…${hash.slice(-4)}`;
}

/** Two addresses are the same account (the daemon answers in lower case, people type checksums). */
export function sameAddress(a: string | null | undefined, b: string | null | undefined): boolean {
  return typeof a === 'string' && typeof b === 'string' && a.toLowerCase() === b.toLowerCase();
}

/** A well-formed address (`0x` and 40 hex digits). */
export function isAddress(text: string): boolean {
  return /^0x[0-9a-fA-F]{40}$/.test(text.trim());
}

/** A sentence's first letter in upper case. */
export function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
