// Plays one tic-tac-toe game by clicks on two running daemons' pages, in Debian's Chromium:
//
//   node web/scripts/play.mjs 'http://127.0.0.1:7545/#token=...' 'http://127.0.0.1:7546/#token=...'
//
// The first page proposes to the second page's account and plays X (cells 0, 1, 2), the second
// accepts and plays O (cells 3, 4). It prints what the pages show and writes screenshots to
// target/web-play/. A check of a running set-up (the README's two shells, the compose demo); the
// tests are in web/test.
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [urlA, urlB] = process.argv.slice(2);
if (!urlA || !urlB) {
  console.error('usage: node web/scripts/play.mjs <page of player X> <page of player O>');
  process.exit(2);
}
const WAIT = 120_000;
const out = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'target', 'web-play');
mkdirSync(out, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_BIN ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const text = async (page, id, re) => {
  const el = page.getByTestId(id);
  const deadline = Date.now() + WAIT;
  for (;;) {
    const t = ((await el.textContent().catch(() => null)) ?? '').trim();
    if (re.test(t)) return t;
    if (Date.now() > deadline) throw new Error(`${id}: wanted ${re}, the page shows "${t}"`);
    await page.waitForTimeout(100);
  }
};
try {
  const a = await (await browser.newContext({ viewport: { width: 1200, height: 1000 } })).newPage();
  const b = await (await browser.newContext({ viewport: { width: 1200, height: 1000 } })).newPage();
  await a.goto(urlA);
  await b.goto(urlB);
  await text(a, 'connection', /^connected/);
  await text(b, 'connection', /^connected/);
  const addrB = (await b.getByTestId('account-address').textContent())?.trim() ?? '';
  console.log(`X: ${await a.getByTestId('account-address').textContent()}  O: ${addrB}`);
  await a.getByTestId('opponent').fill(addrB);
  await a.getByTestId('stake').fill('1');
  await a.getByTestId('propose').click();
  await text(a, 'propose-status', /^Proposed game/);
  const id = await a.getByTestId('propose-status').getAttribute('data-channel');
  console.log(`proposed ${id}`);
  await b.getByTestId(`accept-${id}`).click({ timeout: WAIT });
  await text(a, 'turn', /^Your turn/);
  for (const [page, cell] of [[a, 0], [b, 3], [a, 1], [b, 4], [a, 2]]) {
    await text(page, 'turn', /^Your turn/);
    await page.getByTestId(`cell-${cell}`).click();
    console.log(`${page === a ? 'X' : 'O'} plays ${cell}`);
  }
  console.log(`X's page: ${await text(a, 'winner', /^You won/)}`);
  console.log(`O's page: ${await text(b, 'winner', /^You lost/)}`);
  console.log(`X's page: ${await text(a, 'withdrawn', /back in your account/)}`);
  await a.screenshot({ path: join(out, 'x.png'), fullPage: true });
  await b.screenshot({ path: join(out, 'o.png'), fullPage: true });
  console.log(`screenshots in ${out}`);
} finally {
  await browser.close();
}
