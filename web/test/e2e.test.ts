// The web page end to end: anvil, two real `entente` daemons serving the built page beside their API
// (`entente node --static-dir web/dist`), and Debian's Chromium driven by playwright-core with one
// page per daemon. Alice proposes by filling the form, Bob accepts with a click, they play a whole
// game by clicking cells (a click out of turn and one on a taken cell are refused in words); Bob's
// daemon is killed mid-game and restarted on the same port, his page says so and carries on. Then a
// game where Bob goes silent: the chain removes him by timeout and Alice's page says she wins. The
// payouts are checked on chain (balances, gas and value accounted, and the manager's events), not
// only on the pages. Screenshots go to target/web-e2e/.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';

import { EntenteClient } from '@entente/client';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { createPublicClient, http, type Abi, type Address, type Hex } from 'viem';

import type * as HarnessModule from '../../clients/typescript/dist/test/harness.js';

// The client's test harness (anvil, `entente init`/`deploy`, bounded waits), compiled by the
// client's build; this file runs from web/dist-test/test.
const harness = (await import(new URL('../../../clients/typescript/dist/test/harness.js', import.meta.url).href)) as typeof HarnessModule;
const { ANVIL_KEYS, ENTENTE_BIN, Harness, REPO, WAIT_MS, freePort, waitUntil, within } = harness;

const CHROMIUM = process.env['CHROMIUM_BIN'] ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const STATIC_DIR = join(REPO, 'web', 'dist');
const SHOTS = join(REPO, 'target', 'web-e2e');
/** The harness's password for the homes it makes (its `init` imports the keys with it). */
const PASSWORD = 'test password';
const ETHER = 10n ** 18n;

// ------------------------------------------------------------------ daemons serving the page

interface WebDaemon {
  name: string;
  home: string;
  port: number;
  address: Address;
  listen: string;
  token: string;
  process: ChildProcess;
}

/** The daemons started here: killed in `after`, and at exit whatever happens. */
const daemons = new Set<ChildProcess>();
process.on('exit', () => {
  for (const d of daemons) if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
});
const logs: string[] = [];

/** `entente node --static-dir web/dist` on `home`: waits for its `api url=` line. */
async function startDaemon(dir: string, name: string, home: string): Promise<WebDaemon> {
  const logFile = join(dir, `web-node-${name}-${logs.length}.log`);
  logs.push(logFile);
  const log = openSync(logFile, 'a');
  const p = spawn(ENTENTE_BIN, ['--home', home, 'node', '--static-dir', STATIC_DIR], {
    env: { ...process.env, ENTENTE_PASSWORD: PASSWORD, RUST_LOG: 'warn' },
    stdio: ['ignore', 'pipe', log],
  });
  closeSync(log);
  daemons.add(p);
  const lines = createInterface({ input: p.stdout! });
  let session = '';
  const url = await within(
    `${name}'s daemon to start`,
    new Promise<string>((res, rej) => {
      p.once('exit', (c, s) => rej(new Error(`${name}'s daemon exited (${c ?? s}) before serving:\n${tail()}`)));
      lines.on('line', (line) => {
        if (line.startsWith('session ')) session = line;
        if (line.startsWith('api url=')) res(line.slice('api url='.length).trim());
      });
    }),
  );
  const field = (k: string) => session.split(/\s+/).find((w) => w.startsWith(`${k}=`))?.slice(k.length + 1) ?? '';
  return {
    name,
    home,
    port: Number(new URL(url).port),
    address: field('address') as Address,
    listen: field('listen'),
    token: readFileSync(join(home, 'api-token'), 'utf8').trim(),
    process: p,
  };
}

async function killDaemon(d: WebDaemon): Promise<void> {
  const p = d.process;
  if (p.exitCode === null && p.signalCode === null) {
    const gone = new Promise<void>((res) => p.once('exit', () => res()));
    p.kill('SIGKILL');
    await within(`${d.name}'s daemon to exit`, gone, 10_000);
  }
  daemons.delete(p);
}

function tail(lines = 30): string {
  return logs
    .map((f) => `--- ${f}\n${existsSync(f) ? readFileSync(f, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') : ''}`)
    .join('\n');
}

// ------------------------------------------------------------------ the pages

/** Waits until the element's text matches; fails saying what it showed last. */
async function expectText(page: Page, who: string, testid: string, want: RegExp, ms = WAIT_MS): Promise<string> {
  let last: string | null = null;
  try {
    return await waitUntil(
      `${who}: ${testid} ~ ${want}`,
      async () => {
        last = await page.getByTestId(testid).first().textContent({ timeout: 2000 });
        return last !== null && want.test(last) ? last : undefined;
      },
      ms,
    );
  } catch {
    throw new Error(`${who}'s page: [data-testid=${testid}] did not match ${want} within ${ms} ms; it showed ${JSON.stringify(last)}`);
  }
}

/** Waits until an attribute of the element has the value. */
async function expectAttr(page: Page, who: string, testid: string, attr: string, want: string, ms = WAIT_MS): Promise<void> {
  let last: string | null = null;
  try {
    await waitUntil(
      `${who}: ${testid}[${attr}] = ${want}`,
      async () => {
        last = await page.getByTestId(testid).first().getAttribute(attr, { timeout: 2000 });
        return last === want;
      },
      ms,
    );
  } catch {
    throw new Error(`${who}'s page: [data-testid=${testid}] ${attr}=${JSON.stringify(last)}, not ${JSON.stringify(want)} after ${ms} ms`);
  }
}

/** The board as nine characters: X, O or `.`. */
async function boardOf(page: Page): Promise<string> {
  const cells = await page.locator('[data-testid^="cell-"]').allTextContents();
  return cells.map((c) => c.trim() || '.').join('');
}

async function expectBoard(page: Page, who: string, want: string, ms = WAIT_MS): Promise<void> {
  let last = '';
  try {
    await waitUntil(`${who}'s board ${want}`, async () => (last = await boardOf(page)) === want, ms);
  } catch {
    throw new Error(`${who}'s board shows ${last}, not ${want}, after ${ms} ms`);
  }
}

function pageUrl(d: WebDaemon, token = d.token): string {
  return `http://127.0.0.1:${d.port}/#token=${encodeURIComponent(token)}`;
}

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, name), fullPage: true });
}

// ------------------------------------------------------------------ the chain

const managerEvents = (JSON.parse(readFileSync(join(REPO, 'contracts', 'artifacts', 'IStateChannelEvents.json'), 'utf8')) as { abi: Abi }).abi;

/** What `account` received on chain between two blocks: the balance change with its gas fees and the value it sent added back. */
async function received(rpcUrl: string, account: Address, from: bigint, to: bigint): Promise<{ received: bigint; sent: bigint; fees: bigint }> {
  const chain = createPublicClient({ transport: http(rpcUrl) });
  const [before, afterwards] = await Promise.all([
    chain.getBalance({ address: account, blockNumber: from }),
    chain.getBalance({ address: account, blockNumber: to }),
  ]);
  let fees = 0n;
  let sent = 0n;
  for (let n = from + 1n; n <= to; n++) {
    const block = await chain.getBlock({ blockNumber: n, includeTransactions: true });
    for (const tx of block.transactions) {
      if (tx.from.toLowerCase() !== account.toLowerCase()) continue;
      const receipt = await chain.getTransactionReceipt({ hash: tx.hash });
      fees += receipt.gasUsed * receipt.effectiveGasPrice;
      if (receipt.status === 'success') sent += tx.value;
    }
  }
  return { received: afterwards - before + fees + sent, sent, fees };
}

async function blockNumber(rpcUrl: string): Promise<bigint> {
  return createPublicClient({ transport: http(rpcUrl) }).getBlockNumber();
}

/** The payouts of the channel's `ChannelClosed` event, and what its `Withdrawn` events paid. */
async function settledOnChain(rpcUrl: string, manager: Address, channelId: Hex, fromBlock: bigint) {
  const chain = createPublicClient({ transport: http(rpcUrl) });
  const closed = await chain.getContractEvents({ address: manager, abi: managerEvents, eventName: 'ChannelClosed', args: { channelId }, fromBlock });
  const withdrawn = await chain.getContractEvents({ address: manager, abi: managerEvents, eventName: 'Withdrawn', args: { channelId }, fromBlock });
  const exits = closed.flatMap((l) => ((l as unknown as { args: { exits: { participant: Address; amount: bigint }[] } }).args.exits ?? []));
  const paid = withdrawn.map((l) => (l as unknown as { args: { participant: Address; amount: bigint } }).args);
  return {
    closed: closed.length,
    exits: exits.map((e) => [e.participant.toLowerCase(), e.amount] as const),
    paid: paid.map((p) => [p.participant.toLowerCase(), p.amount] as const),
  };
}

// ------------------------------------------------------------------ the test

describe('the web page against two real daemons, in Chromium', { timeout: 10 * 60_000 }, () => {
  const h = new Harness();
  let alice: WebDaemon;
  let bob: WebDaemon;
  let bobHome: string;
  let manager: Address;
  let browser: Browser | undefined;
  let contextA: BrowserContext;
  let contextB: BrowserContext;
  let pageA: Page;
  let pageB: Page;
  /** Uncaught exceptions of the pages and content security policy violations: none expected. */
  const pageErrors: string[] = [];

  before(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `no Chromium at ${CHROMIUM}: install Debian's (apt-get install -y --no-install-recommends chromium) or set CHROMIUM_BIN. ` +
          'This test never downloads a browser.',
      );
    }
    if (!existsSync(join(STATIC_DIR, 'index.html')) || !existsSync(join(STATIC_DIR, 'app.js'))) {
      throw new Error(`the page is not built in ${STATIC_DIR}: run \`npm run build -w @entente/web\``);
    }
    if (!existsSync(ENTENTE_BIN)) throw new Error(`no entente binary at ${ENTENTE_BIN} (cargo build -p entente-daemon, or set ENTENTE_BIN)`);

    await h.startAnvil();
    const [aliceApi, aliceP2p, bobApi, bobP2p] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const aliceHome = await h.init('alice', ANVIL_KEYS[0], aliceApi, aliceP2p);
    const deployed = (await h.entente(['--home', aliceHome, 'deploy', '--machine', 'tictactoe'])).stdout;
    const field = (prefix: string) =>
      deployed
        .split('\n')
        .find((l) => l.startsWith(prefix))
        ?.split(/\s+/)
        .find((w) => w.startsWith('address='))
        ?.slice('address='.length) as Address | undefined;
    const m = field('manager ');
    const machine = field('machine name=tictactoe');
    assert.ok(m && machine, `deploy printed no addresses:\n${deployed}`);
    manager = m;
    alice = await startDaemon(h.dir, 'alice', aliceHome);
    bobHome = await h.init('bob', ANVIL_KEYS[1], bobApi, bobP2p, ['--manager', manager, '--bootstrap', alice.listen]);
    bob = await startDaemon(h.dir, 'bob', bobHome);
    await h.entente(['--home', bobHome, 'register', 'tictactoe', machine]);

    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 60_000 });
    // a context each: a fresh profile of its own (launch makes a temporary user-data-dir)
    contextA = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    contextB = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    pageA = await contextA.newPage();
    pageB = await contextB.newPage();
    for (const [page, who] of [[pageA, 'alice'], [pageB, 'bob']] as const) {
      page.on('pageerror', (e) => pageErrors.push(`${who}: ${e.message}`));
      page.on('console', (m) => {
        if (/Content.Security.Policy/i.test(m.text())) pageErrors.push(`${who}: ${m.text()}`);
      });
    }
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    for (const p of [...daemons]) {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    }
    daemons.clear();
    await h.cleanup();
  });

  /** Runs a scenario; on failure, screenshots of both pages and the daemons' logs in the message. */
  async function scenario(name: string, body: () => Promise<void>): Promise<void> {
    try {
      await body();
      assert.deepEqual(pageErrors, [], 'the pages threw or broke their content security policy');
    } catch (err) {
      await Promise.all([
        pageA ? shot(pageA, `failed-${name}-alice.png`).catch(() => undefined) : undefined,
        pageB ? shot(pageB, `failed-${name}-bob.png`).catch(() => undefined) : undefined,
      ]);
      throw new Error(`${String(err)}\n\n(screenshots in ${SHOTS})\nlogs:\n${tail()}`, { cause: err });
    }
  }

  test('a wrong token: the page says the daemon refused it', async () => {
    const context = await browser!.newContext();
    try {
      const page = await context.newPage();
      await page.goto(pageUrl(alice, 'not-the-token'));
      await expectText(page, 'mallory', 'connect-error', /refused this token: it is wrong/, 30_000);
      await expectText(page, 'mallory', 'connection', /wrong token/, 5_000);
      assert.equal(new URL(page.url()).hash, '', 'the token left the address bar');
      await shot(page, 'wrong-token.png');
    } finally {
      await context.close();
    }
  });

  test('a whole game by clicks; Bob\'s daemon killed and restarted mid-game; payouts on chain', () =>
    scenario('game', async () => {
      const stake = ETHER / 2n; // "0.5"
      for (const [page, d, who] of [[pageA, alice, 'alice'], [pageB, bob, 'bob']] as const) {
        await page.goto(pageUrl(d));
        await expectText(page, who, 'connection', /^connected/);
        await expectText(page, who, 'account-address', new RegExp(d.address, 'i'));
        await expectText(page, who, 'account-balance', /ETH$/);
        assert.equal(new URL(page.url()).hash, '', `${who}: the token left the address bar`);
      }
      // the token is kept for the session: a reload connects without it in the address
      await pageA.reload();
      await expectText(pageA, 'alice', 'connection', /^connected/);

      const start = await blockNumber(h.rpcUrl);

      // Alice proposes through the form
      await pageA.getByTestId('opponent').fill(bob.address);
      await pageA.getByTestId('stake').fill('0.5');
      await pageA.getByTestId('propose').click();
      await expectText(pageA, 'alice', 'propose-status', /^Proposed game/);
      const id = (await pageA.getByTestId('propose-status').getAttribute('data-channel')) as Hex;
      assert.match(id, /^0x[0-9a-f]{64}$/);

      // Bob sees the invitation (a node event) and accepts it
      // Bob sees every term before he accepts: both stakes and the deadlines, no warning
      await expectText(pageB, 'bob', `terms-${id}`, /^your stake 0\.5 ETH; 0x.* stakes 0\.5 ETH; 30 s per move, 10 s to sign, 60 s before the chain, 120 s to challenge$/);
      assert.equal(await pageB.getByTestId(`warning-${id}`).count(), 0, 'no warning on fair terms');
      await pageB.getByTestId(`accept-${id}`).click({ timeout: WAIT_MS });
      for (const [page, who] of [[pageA, 'alice'], [pageB, 'bob']] as const) {
        await expectAttr(page, who, 'phase', 'data-phase', 'Live');
        await expectText(page, who, 'deposits', /0\.5 ETH .* 0\.5 ETH/);
      }
      await expectText(pageA, 'alice', 'role', /^You play X/);
      await expectText(pageB, 'bob', 'role', /^You play O/);
      await expectText(pageA, 'alice', 'turn', /^Your turn/);
      await expectText(pageB, 'bob', 'turn', /^Your opponent's turn/);

      // a click out of turn: refused in words, nothing sent
      await pageB.getByTestId('cell-4').click();
      await expectText(pageB, 'bob', 'move-message', /Not your turn/, 5_000);

      const marks: string[] = Array(9).fill('.');
      const move = async (page: Page, who: string, cell: number, mark: 'X' | 'O') => {
        await expectText(page, who, 'turn', /^Your turn/);
        await page.getByTestId(`cell-${cell}`).click();
        marks[cell] = mark;
        const want = marks.join('');
        await expectBoard(pageA, 'alice', want);
        await expectBoard(pageB, 'bob', want);
      };

      await move(pageA, 'alice', 0, 'X');
      await move(pageB, 'bob', 3, 'O');
      // a taken cell: refused in words, the board unchanged
      await expectText(pageA, 'alice', 'turn', /^Your turn/);
      await pageA.getByTestId('cell-3').click();
      await expectText(pageA, 'alice', 'move-message', /taken/, 5_000);
      assert.equal(await boardOf(pageA), 'X..O.....');
      await move(pageA, 'alice', 1, 'X');

      // Bob's daemon dies on his turn: his page says so, then carries on once it is back
      await killDaemon(bob);
      await expectText(pageB, 'bob', 'connection', /daemon unreachable, reconnecting/, 15_000);
      await expectText(pageB, 'bob', 'turn', /daemon is unreachable/, 5_000);
      await shot(pageB, 'bob-daemon-unreachable.png');
      bob = await startDaemon(h.dir, 'bob', bobHome);
      await expectText(pageB, 'bob', 'connection', /^connected/);
      await expectBoard(pageB, 'bob', 'XX.O.....');
      await Promise.all([shot(pageA, 'alice-mid-game.png'), shot(pageB, 'bob-mid-game-reconnected.png')]);

      await move(pageB, 'bob', 4, 'O');
      await move(pageA, 'alice', 2, 'X'); // X: 0, 1, 2

      await expectText(pageA, 'alice', 'winner', /^You won/);
      await expectText(pageB, 'bob', 'winner', /^You lost/);
      await expectText(pageA, 'alice', 'turn', /^Game over/);

      // payouts: what the pages show
      await expectAttr(pageA, 'alice', 'payouts', 'data-mine', String(2n * stake));
      await expectText(pageA, 'alice', 'payouts', /you 1 ETH .* 0 ETH/);
      await expectAttr(pageA, 'alice', 'withdrawn', 'data-wei', String(2n * stake));
      await expectText(pageA, 'alice', 'withdrawn', /^1 ETH back in your account/);
      await expectAttr(pageB, 'bob', 'payouts', 'data-mine', '0');
      await expectAttr(pageB, 'bob', 'withdrawn', 'data-done', 'true');
      await expectAttr(pageB, 'bob', 'withdrawn', 'data-wei', '0');
      await expectText(pageA, 'alice', 'event-log', /Payout: 1 ETH withdrawn to your account/);

      // Bob's page saw every event once, across the restart (the client resumed after the last seq)
      const seqs = (await pageB.locator('[data-testid="event-log"] li').evaluateAll((lis) => lis.map((li) => Number(li.getAttribute('data-seq'))))).reverse();
      assert.ok(seqs.length > 5, `bob's log: ${JSON.stringify(seqs)}`);
      assert.equal(seqs[0], 0, `bob's log starts at the channel's first event: ${JSON.stringify(seqs)}`);
      for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, `bob's log repeats or reorders events: ${JSON.stringify(seqs)}`);

      // payouts: what the daemon and the chain say
      const client = await EntenteClient.connect({ url: `ws://127.0.0.1:${alice.port}`, token: alice.token });
      try {
        const w = await client.channelWithdrawal(id, { wait: 30 });
        assert.deepEqual(w.withdrawn.map((x) => BigInt(x)), [2n * stake]);
        const info = await client.channelInfo(id);
        assert.deepEqual(info.exits?.map((x) => [x.participant.toLowerCase(), BigInt(x.amount)]), [
          [alice.address.toLowerCase(), 2n * stake],
          [bob.address.toLowerCase(), 0n],
        ]);
      } finally {
        await client.close();
      }
      await checkChain(start, id, {
        exits: [
          [alice.address, 2n * stake],
          [bob.address, 0n],
        ],
        alice: 2n * stake,
        bob: 0n,
        stake,
      });

      await Promise.all([shot(pageA, 'alice-won.png'), shot(pageB, 'bob-lost.png')]);
    }));

  test('Bob goes silent on his turn: the chain removes him by timeout, Alice\'s page says she wins; payouts on chain', () =>
    scenario('timeout', async () => {
      const stake = ETHER / 4n; // "0.25"
      const start = await blockNumber(h.rpcUrl);
      await pageA.getByTestId('opponent').fill(bob.address);
      await pageA.getByTestId('stake').fill('0.25');
      await pageA.locator('#new-game summary').click();
      for (const [k, v] of [['p2p', 3], ['agreement', 2], ['fallback', 3], ['challenge', 4]] as const) {
        await pageA.getByTestId(`timing-${k}`).fill(String(v));
      }
      await pageA.getByTestId('propose').click();
      await waitUntil('the second proposal', async () =>
        /^Proposed game/.test((await pageA.getByTestId('propose-status').textContent()) ?? '') &&
        (await pageA.getByTestId('propose-status').getAttribute('data-channel')) !== null,
      );
      const id = (await pageA.getByTestId('propose-status').getAttribute('data-channel')) as Hex;
      await expectAttr(pageA, 'alice', 'game', 'data-channel', id);
      // a challenge window of seconds is pointed out before he accepts
      await expectText(pageB, 'bob', `warning-${id}`, /challenge window under a minute/);
      await pageB.getByTestId(`accept-${id}`).click({ timeout: WAIT_MS });
      await expectAttr(pageB, 'bob', 'game', 'data-channel', id);
      for (const [page, who] of [[pageA, 'alice'], [pageB, 'bob']] as const) {
        await expectAttr(page, who, 'phase', 'data-phase', 'Live');
        await expectBoard(page, who, '.........');
      }
      await expectText(pageA, 'alice', 'turn', /^Your turn/);
      await pageA.getByTestId('cell-4').click();
      await expectBoard(pageA, 'alice', '....X....');
      await expectBoard(pageB, 'bob', '....X....');
      await expectText(pageB, 'bob', 'turn', /^Your turn/);
      // ... and Bob does not click again.

      await expectText(pageA, 'alice', 'banner', /did not move in time/);
      await expectText(pageA, 'alice', 'banner', /did not move in time; the chain removed them; you win by timeout\.$/);
      await expectText(pageA, 'alice', 'winner', /^You won/);
      await expectText(pageA, 'alice', 'event-log', /Dispute raised on chain by you: your opponent .* did not move in time/);
      await expectText(pageA, 'alice', 'event-log', /The chain removed your opponent/);
      await expectText(pageB, 'bob', 'banner', /^You did not move in time; the chain removed you; you lose by timeout\.$/);
      await expectText(pageB, 'bob', 'winner', /^You lost/);

      await expectAttr(pageA, 'alice', 'withdrawn', 'data-wei', String(2n * stake));
      await expectText(pageA, 'alice', 'withdrawn', /^0\.5 ETH back in your account/);
      await checkChain(start, id, { exits: [[alice.address, 2n * stake]], alice: 2n * stake, bob: 0n, stake });
      await Promise.all([shot(pageA, 'alice-won-by-timeout.png'), shot(pageB, 'bob-timed-out.png')]);
    }));

  /** The settlement and the payouts on chain: the manager's events, and each account's balance change. */
  async function checkChain(
    start: bigint,
    id: Hex,
    want: { exits: (readonly [Address, bigint])[]; alice: bigint; bob: bigint; stake: bigint },
  ): Promise<void> {
    const settled = await waitUntil('the settlement and the withdrawal on chain', async () => {
      const s = await settledOnChain(h.rpcUrl, manager, id, start);
      return s.closed > 0 && s.paid.some(([who]) => who === alice.address.toLowerCase()) ? s : undefined;
    }, 60_000);
    assert.deepEqual(settled.exits, want.exits.map(([a, v]) => [a.toLowerCase(), v]), 'the exits of ChannelClosed');
    assert.deepEqual(settled.paid.filter(([, v]) => v > 0n), [[alice.address.toLowerCase(), want.alice]], 'what Withdrawn paid');
    // balances: what each account got back, with the gas it paid and the deposit it sent added back
    let last = '';
    await waitUntil('the balances on chain', async () => {
      const end = await blockNumber(h.rpcUrl);
      const a = await received(h.rpcUrl, alice.address, start, end);
      const b = await received(h.rpcUrl, bob.address, start, end);
      last = `alice received ${a.received} (sent ${a.sent}, fees ${a.fees}), bob received ${b.received} (sent ${b.sent}, fees ${b.fees}), blocks ${start}..${end}`;
      return a.received === want.alice && b.received === want.bob && a.sent === want.stake && b.sent === want.stake;
    }, 30_000).catch(() => {
      throw new Error(`the balances on chain are not the payouts: want alice ${want.alice}, bob ${want.bob}, each sent ${want.stake}; ${last}`);
    });
  }
});
