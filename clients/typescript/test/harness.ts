// Real processes for the tests: anvil and `entente` daemons in temporary homes, every wait bounded,
// every process killed at the end (even when a test fails).

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Bound on every wait (a chain call, a peer's message, a process starting); generous for a loaded machine. */
export const WAIT_MS = 120_000;

/** The repository (this file runs from clients/typescript/dist/test). */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
export const ENTENTE_BIN = process.env['ENTENTE_BIN'] ?? join(REPO, 'target', 'debug', 'entente');
export const ANVIL_BIN =
  process.env['ANVIL_BIN'] ?? join(REPO, 'node_modules', '@foundry-rs', 'anvil-linux-amd64', 'bin', 'anvil');

/** anvil's first two dev keys (anvil derives them from its default mnemonic). */
export const ANVIL_KEYS = [
  '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80',
  '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
] as const;

const PASSWORD = 'test password';

/** Everything started here: killed by {@link Harness.cleanup}, and at exit whatever happens. */
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => res(port));
    });
  });
}

/** Polls `check` until it gives a value other than undefined/false, or fails after `ms`. */
export async function waitUntil<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, ms = WAIT_MS): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A promise bounded by `ms`. */
export async function within<T>(what: string, p: Promise<T>, ms = WAIT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface Output {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Daemon {
  home: string;
  url: string;
  listen: string;
  token: string;
  process: ChildProcess;
}

/** A temporary directory, anvil, and the daemons of the tests. */
export class Harness {
  readonly dir = mkdtempSync(join(tmpdir(), 'entente-ts-'));
  rpcUrl = '';
  private readonly logs: string[] = [];

  /** Runs `entente ARGS` to its end (bounded), `stdin` written to it. */
  async entente(args: string[], stdin?: string): Promise<Output> {
    const p = spawn(ENTENTE_BIN, args, {
      env: { ...process.env, ENTENTE_PASSWORD: PASSWORD, RUST_LOG: 'warn' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.add(p);
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.stdin.end(stdin ?? '');
    const code = await within(
      `entente ${args.join(' ')}`,
      new Promise<number | null>((res, rej) => {
        p.once('error', rej);
        p.once('close', (c) => res(c));
      }),
    ).finally(() => {
      p.kill('SIGKILL');
      children.delete(p);
    });
    const out = { code, stdout, stderr };
    if (code !== 0) throw new Error(`entente ${args.join(' ')} failed (${code}):\n${stdout}\n${stderr}`);
    return out;
  }

  /** Starts anvil on a free port and waits until it answers. */
  async startAnvil(): Promise<string> {
    if (!existsSync(ANVIL_BIN)) throw new Error(`no anvil at ${ANVIL_BIN} (set ANVIL_BIN)`);
    const port = await freePort();
    const log = this.logFile('anvil');
    const p = spawn(ANVIL_BIN, ['--port', String(port), '--host', '127.0.0.1'], { stdio: ['ignore', log, log] });
    closeSync(log);
    children.add(p);
    this.rpcUrl = `http://127.0.0.1:${port}`;
    await waitUntil('anvil', async () => {
      if (p.exitCode !== null) throw new Error(`anvil exited (${p.exitCode})`);
      const r = await fetch(this.rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      });
      return r.ok;
    });
    return this.rpcUrl;
  }

  /** `entente init` of a new home with an anvil key, the API on `apiPort` and p2p on `p2pPort`. */
  async init(name: string, key: string, apiPort: number, p2pPort: number, extra: string[] = []): Promise<string> {
    const home = join(this.dir, name);
    await this.entente(
      [
        '--home', home, 'init', '--import-key-stdin', '--light-kdf',
        '--rpc-url', this.rpcUrl,
        '--api', `127.0.0.1:${apiPort}`,
        '--listen', `/ip4/127.0.0.1/tcp/${p2pPort}`,
        ...extra,
      ],
      `${key}\n`,
    );
    return home;
  }

  /** `entente node` on `home`: waits for its `api url=` line. */
  async startDaemon(home: string): Promise<Daemon> {
    const log = this.logFile(`node-${home.split('/').pop()}`);
    const p = spawn(ENTENTE_BIN, ['--home', home, 'node'], {
      env: { ...process.env, ENTENTE_PASSWORD: PASSWORD, RUST_LOG: 'warn' },
      stdio: ['ignore', 'pipe', log],
    });
    closeSync(log);
    children.add(p);
    const lines = createInterface({ input: p.stdout! });
    let listen: string | undefined;
    const url = await within(
      `the daemon of ${home} to start`,
      new Promise<string>((res, rej) => {
        p.once('exit', (c, s) => rej(new Error(`the daemon of ${home} exited (${c ?? s}) before serving:\n${this.tail()}`)));
        lines.on('line', (line) => {
          if (line.startsWith('session ')) {
            listen = line.split(/\s+/).find((w) => w.startsWith('listen='))?.slice('listen='.length);
          }
          if (line.startsWith('api url=')) res(line.slice('api url='.length).trim());
        });
      }),
    );
    // the line listener stays: stdout is read to the end, so the daemon never blocks on a full pipe
    if (!listen) throw new Error(`the daemon of ${home} printed no session line`);
    return { home, url, listen, token: readFileSync(join(home, 'api-token'), 'utf8').trim(), process: p };
  }

  /** SIGKILL, and wait for the process to be gone. */
  async kill(p: ChildProcess): Promise<void> {
    if (p.exitCode === null && p.signalCode === null) {
      const gone = new Promise<void>((res) => p.once('exit', () => res()));
      p.kill('SIGKILL');
      await within('a killed process to exit', gone, 10_000);
    }
    children.delete(p);
  }

  /** Kills every process and removes the temporary directory. */
  async cleanup(): Promise<void> {
    await Promise.all([...children].map((c) => this.kill(c).catch(() => undefined)));
    if (!process.env['ENTENTE_KEEP_TMP']) rmSync(this.dir, { recursive: true, force: true });
  }

  /** The last lines of every daemon's log, for a failure's message. */
  tail(lines = 25): string {
    return this.logs
      .filter((f) => !f.includes('/anvil-'))
      .map((f) => {
        const text = existsSync(f) ? readFileSync(f, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') : '';
        return `--- ${f}\n${text}`;
      })
      .join('\n');
  }

  private logFile(name: string): number {
    const f = join(this.dir, `${name}-${this.logs.length}.log`);
    this.logs.push(f);
    return openSync(f, 'a');
  }
}
