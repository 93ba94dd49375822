// Browser tests of the support console (docs/console.md): a generated history, served by
// `campaign-history serve --roles support`, driven through headless chromium with playwright-core.
// Every answer the console shows is checked against the CLI's --json for the same question.
//
// Environment (run_console_test.sh sets the first two): CH_BINARY (campaign-history), CH_CHROMIUM
// (the browser), CH_CONSOLE_SCREENSHOTS (optional: a directory for screenshots of the main views).
import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {execFileSync, spawn} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {chromium} from 'playwright-core';

const BIN = process.env.CH_BINARY;
const SHOTS = process.env.CH_CONSOLE_SCREENSHOTS || '';
const TOKEN = process.env.CH_CONSOLE_TEST_TOKEN || 'console-test-token-' + Math.random().toString(36).slice(2, 12);
// The console's default page is 50; the test picks 20 a page, so the demo's big customer (about
// 40 campaigns) spans pages.
const PAGE_SIZE = 20;

let dir, server, base, browser;
const pageErrors = [];

function cli(...args) {
  return execFileSync(BIN, ['--data', path.join(dir, 'data'), ...args],
      {encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'pipe']});
}
const cliJson = (...args) => JSON.parse(cli(...args, '--json'));

// The demo's history: a simulated week of six customers, one of them big (many shift-only
// versions), with edits of long texts.
function makeHistory() {
  cli('demo', '--ops', '1500', '--seed', '7', '--no-serve');
}

function startServer() {
  return new Promise((resolve, reject) => {
    server = spawn(BIN, ['--data', path.join(dir, 'data'), 'serve', '--roles', 'support',
      '--listen', '127.0.0.1:0'], {env: {...process.env, CAMPAIGN_HISTORY_SUPPORT_TOKENS: TOKEN},
      stdio: ['ignore', 'ignore', 'pipe']});
    let err = '';
    const timer = setTimeout(() => reject(new Error('serve did not start in 30 s:\n' + err)), 30000);
    server.stderr.on('data', (d) => {
      err += d;
      const m = /support API on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    server.on('exit', (code) => reject(new Error(`serve exited with ${code}:\n${err}`)));
  });
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ch-console-test-'));
  if (process.env.CH_CONSOLE_TEST_DEV) {
    // Development only: a server and history already running (CH_CONSOLE_TEST_DEV=URL,DATA_DIR).
    [base, dir] = process.env.CH_CONSOLE_TEST_DEV.split(',');
  } else {
    makeHistory();
    base = await startServer();
  }
  browser = await chromium.launch({executablePath: process.env.CH_CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']});
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.kill('SIGTERM');
  if (dir && !process.env.CH_CONSOLE_TEST_DEV) fs.rmSync(dir, {recursive: true, force: true});
});

async function newPage() {
  const context = await browser.newContext({viewport: {width: 1600, height: 1000}, timezoneId: 'Europe/Berlin'});
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });
  return page;
}

async function signIn(page, token = TOKEN) {
  await page.fill('#token', token);
  await page.click('#signin-submit');
}

async function shot(page, name) {
  if (!SHOTS) return;
  await page.waitForSelector('#scrub, #scrubber .notice, #signin', {timeout: 10000}).catch(() => {});
  fs.mkdirSync(SHOTS, {recursive: true});
  await page.screenshot({path: path.join(SHOTS, name + '.png')});
}

// The rows of the campaign table as "id@vN" in order.
async function shownRows(page) {
  return page.$$eval('#campaign-table tbody tr', (trs) => trs.map((tr) => `${tr.dataset.campaignId}@v${tr.dataset.version}`));
}
const cliRows = (campaigns) => campaigns.map((s) => `${s.id}@v${s.version}`);

// The big customer (most campaigns) and a moment in the middle of its history.
function pickCustomerAndMoment() {
  let best = null;
  for (let c = 1; c <= 6; ++c) {
    const r = cliJson('as-of', '--customer', String(c), '--at', 'now');
    if (!best || r.existing > best.existing) best = {customer: c, existing: r.existing};
  }
  const tl = cliJson('timeline', '--customer', String(best.customer), '--from', '1970-01-01', '--limit', '100000');
  const txs = tl.transactions;
  const mid = txs[Math.floor(txs.length * 0.6)];
  return {customer: best.customer, at: mid.time.replace(/\.\d+Z$/, 'Z')};
}

// A campaign of `customer` with an edit of a string field before `at` and a shift-only version.
function pickCampaign(customer, at) {
  const r = cliJson('as-of', '--customer', String(customer), '--at', at);
  for (const s of r.campaigns) {
    const log = cliJson('log', '--campaign', String(s.id));
    const edit = log.versions.find((v) => v.kind === 'edited' &&
        v.changes.some((c) => typeof c.before === 'string' && typeof c.after === 'string'));
    const shift = log.versions.find((v) => v.kind === 'shifted');
    if (edit && shift) return {id: s.id, log, edit, shift};
  }
  throw new Error(`no campaign of customer ${customer} has both a string edit and a shift`);
}

test('security headers on console pages, and the SPA fallback', async () => {
  for (const p of ['/console/', '/console/customers/2', '/console/app.js']) {
    const res = await fetch(base + p);
    assert.equal(res.status, 200, p);
    const csp = res.headers.get('content-security-policy');
    assert.match(csp, /default-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.ok(res.headers.get('referrer-policy'));
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
  }
  assert.match(await (await fetch(base + '/console/customers/2')).text(), /<title>/);
  assert.equal((await fetch(base + '/console/nope.js')).status, 404);
});

test('a wrong token is refused with an explanation', async () => {
  const page = await newPage();
  await page.goto(base + '/console/');
  await signIn(page, 'not-the-right-token-at-all');
  const text = await page.textContent('#signin-status .notice');
  assert.match(text, /not accepted/);
  assert.match(text, /401/);
  await shot(page, 'signin-error');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('ch-console-token')), null);
  await page.context().close();
});

test('find a customer, pick a moment: the campaigns equal the CLI as-of, page by page', async () => {
  const {customer, at} = pickCustomerAndMoment();
  const want = cliJson('as-of', '--customer', String(customer), '--at', at);
  assert.ok(want.campaigns.length > PAGE_SIZE, 'the big customer needs more than one page');
  const page = await newPage();
  await page.goto(base + '/console/');
  await signIn(page);
  await page.fill('#search-q', String(customer));
  await page.click('#search-go');
  await page.click(`#search-results li.customer[data-customer="${customer}"] a`);
  await page.waitForSelector('#campaign-table');
  // The moment, typed in UTC.
  await page.fill('#at-input', at.slice(0, 19));
  await page.click('#at-go');
  await page.waitForURL((u) => u.searchParams.get('at') === at);
  await page.waitForSelector('#page-size');
  await page.selectOption('#page-size', String(PAGE_SIZE));
  await page.waitForURL((u) => u.searchParams.get('limit') === String(PAGE_SIZE));
  await page.waitForFunction((n) => document.querySelectorAll('#campaign-table tbody tr').length === n,
      Math.min(PAGE_SIZE, want.campaigns.length));
  assert.deepEqual(await shownRows(page), cliRows(want.campaigns.slice(0, PAGE_SIZE)));
  assert.match(await page.textContent('#campaign-count'), new RegExp(`^${want.existing.toLocaleString('en-US')} campaigns`));
  // Cells of the first row: name, status, trigger, audience as the CLI has them.
  const first = want.campaigns[0];
  const cells = await page.$$eval('#campaign-table tbody tr:first-child td', (tds) => tds.map((td) => td.textContent));
  assert.equal(cells[0], String(first.priority));
  assert.equal(cells[2], first.name);
  assert.equal(cells[3], first.status);
  assert.equal(cells[5], first.trigger_event || '—');
  assert.equal(cells[6], first.audience_segment || '—');
  await shot(page, 'customer');
  // The next page continues where the CLI's whole answer does.
  await page.click('#page-next');
  await page.waitForFunction((id) => document.querySelector('#campaign-table tbody tr')?.dataset.campaignId === id,
      String(want.campaigns[PAGE_SIZE].id));
  assert.deepEqual(await shownRows(page), cliRows(want.campaigns.slice(PAGE_SIZE, 2 * PAGE_SIZE)));
  // The scrubber: a step back shows the state right after the previous transaction.
  await page.click('#scrub-prev');
  await page.waitForURL((u) => u.searchParams.get('at') !== at);
  const prevAt = new URL(page.url()).searchParams.get('at');
  const wantPrev = cliJson('as-of', '--customer', String(customer), '--at', prevAt);
  await page.waitForFunction((id) => document.querySelector('#campaign-table tbody tr')?.dataset.campaignId === id,
      String(wantPrev.campaigns[0].id));
  assert.deepEqual(await shownRows(page), cliRows(wantPrev.campaigns.slice(0, PAGE_SIZE)));
  await page.context().close();
});

test('open a campaign: highlighted diff, folded shift, full snapshot', async () => {
  const {customer, at} = pickCustomerAndMoment();
  const c = pickCampaign(customer, at);
  const page = await newPage();
  await page.goto(base + '/console/');
  await signIn(page);
  await page.goto(`${base}/console/customers/${customer}?at=${encodeURIComponent(at)}`);
  await page.click(`#campaign-table tbody tr[data-campaign-id="${c.id}"]`).catch(async () => {
    // Not on the first page: open it through the URL instead.
    await page.goto(`${base}/console/customers/${customer}?at=${encodeURIComponent(at)}&campaign=${c.id}`);
  });
  await page.waitForSelector('#versions');
  assert.equal(new URL(page.url()).searchParams.get('campaign'), String(c.id));
  // Every version of the log is there, shown or folded.
  const versions = await page.$$eval('#versions [data-version]', (els) => els.map((e) => Number(e.dataset.version)));
  assert.deepEqual([...new Set(versions)].sort((a, b) => a - b), c.log.versions.map((v) => v.version));
  // The edit's string change is highlighted: the old part in <del>, the new in <ins>.
  const change = c.edit.changes.find((x) => typeof x.before === 'string' && typeof x.after === 'string');
  const row = page.locator(`#versions li.version[data-version="${c.edit.version}"] tr.change[data-path="${change.path}"]`);
  const del = await row.locator('del').allTextContents();
  const ins = await row.locator('ins').allTextContents();
  assert.ok(del.length + ins.length > 0, 'a highlighted part');
  // Long texts show the change with some context around it ("…" where cut).
  const cut = (t) => t.split('…').filter(Boolean);
  for (const part of cut(await row.locator('td').nth(1).textContent())) assert.ok(change.before.includes(part));
  for (const part of cut(await row.locator('td').nth(3).textContent())) assert.ok(change.after.includes(part));
  for (const t of del) assert.ok(change.before.includes(t));
  for (const t of ins) assert.ok(change.after.includes(t));
  // The shift-only version is folded under its cause.
  const group = page.locator(`#versions li.shift-group:has(li.shift[data-version="${c.shift.version}"])`);
  assert.match(await group.locator('summary').textContent(), /because/);
  const shiftLine = group.locator(`li.shift[data-version="${c.shift.version}"] .cause`);
  if (!(await group.locator('details').getAttribute('open'))) {
    assert.equal(await shiftLine.isVisible(), false, 'folded until opened');
    await group.locator('summary').click();
  }
  assert.equal(await shiftLine.textContent(), c.shift.cause.summary);
  await shot(page, 'campaign');
  // The full snapshot of the edited version equals the one the CLI's as-of at its time shows.
  await page.click(`#versions li.version[data-version="${c.edit.version}"] .snapshot-btn`);
  const snap = JSON.parse(await page.textContent('#snapshot-json'));
  const then = cliJson('as-of', '--customer', String(customer), '--at', c.edit.event_time);
  const want = then.campaigns.find((s) => s.id === c.id);
  if (want && want.version === c.edit.version) assert.deepEqual(snap, want);
  assert.equal(snap.version, c.edit.version);
  await page.context().close();
});

test('a pasted deep link reopens the same view after sign-in', async () => {
  const {customer, at} = pickCustomerAndMoment();
  const want = cliJson('as-of', '--customer', String(customer), '--at', at);
  const campaign = want.campaigns[1].id;
  const link = `${base}/console/customers/${customer}?at=${encodeURIComponent(at)}&campaign=${campaign}&limit=${PAGE_SIZE}`;
  const page = await newPage();
  await page.goto(link);
  await page.waitForSelector('#token');
  assert.match(await page.textContent('#signin'), new RegExp(`/console/customers/${customer}`));
  await signIn(page);
  await page.waitForSelector('#campaign-title');
  assert.equal(page.url(), link);
  assert.match(await page.textContent('#campaign-title'), new RegExp(`^Campaign ${campaign} `));
  assert.equal(await page.inputValue('#at-input'), at.slice(0, 19));
  await page.waitForSelector('#campaign-table');
  assert.deepEqual(await shownRows(page), cliRows(want.campaigns.slice(0, PAGE_SIZE)));
  // Local time: the same moment, shown in the browser's zone (Europe/Berlin here).
  await page.click('#tz-toggle');
  await page.waitForSelector('#tz-toggle:text("Times: local")');
  assert.match(await page.textContent('#moment-label'), /UTC\+0[12]:00/);
  await page.click('#tz-toggle');
  await page.context().close();
});

test('compare two moments: created, deleted and changed campaigns', async () => {
  const {customer, at} = pickCustomerAndMoment();
  const from = cliJson('timeline', '--customer', String(customer), '--from', '1970-01-01', '--limit', '1')
      .transactions[0].time.replace(/\.\d+Z$/, 'Z');
  const a = cliJson('as-of', '--customer', String(customer), '--at', from);
  const b = cliJson('as-of', '--customer', String(customer), '--at', at);
  const ids = (r) => new Set(r.campaigns.map((s) => s.id));
  const created = [...ids(b)].filter((id) => !ids(a).has(id)).sort((x, y) => x - y);
  const page = await newPage();
  await page.goto(base + '/console/');
  await signIn(page);
  await page.goto(`${base}/console/customers/${customer}/compare?from=${encodeURIComponent(from)}&to=${encodeURIComponent(at)}`);
  await page.waitForSelector('#compare-summary');
  const shown = (await page.$$eval('#compare-created li', (lis) => lis.map((li) => Number(li.dataset.campaignId))))
      .sort((x, y) => x - y);
  assert.deepEqual(shown, created);
  await shot(page, 'compare');
  await page.context().close();
});

test('a moment past what the history is complete through says so', async () => {
  const {customer} = pickCustomerAndMoment();
  const future = '2099-01-01T00:00:00Z';
  const want = cliJson('as-of', '--customer', String(customer), '--at', future);
  assert.equal(want.complete, false);
  const page = await newPage();
  await page.goto(base + '/console/');
  await signIn(page);
  await page.goto(`${base}/console/customers/${customer}?at=${future}&limit=${PAGE_SIZE}`);
  await page.waitForSelector('#incomplete-banner');
  const text = await page.textContent('#incomplete-banner');
  assert.match(text, /complete through \d{4}-\d\d-\d\d /);
  assert.match(text, /not 2099-01-01 00:00:00Z/);
  assert.deepEqual(await shownRows(page), cliRows(want.campaigns.slice(0, PAGE_SIZE)));
  await page.context().close();
});

test('empty states are explained', async () => {
  const page = await newPage();
  await page.goto(base + '/console/');
  await signIn(page);
  await page.goto(`${base}/console/customers/999999?at=2020-01-01T00:00:00Z`);
  await page.waitForSelector('#campaigns .notice');
  assert.match(await page.textContent('#campaigns .notice'), /customer 999999/i);
  await page.goto(`${base}/console/?q=${encodeURIComponent('no campaign is called this')}`);
  await page.waitForSelector('#search-results .notice');
  assert.match(await page.textContent('#search-results .notice'), /Nothing matches/);
  await page.context().close();
});

test('the demo prints a console address and a token that signs in', async (t) => {
  const demoDir = path.join(dir, 'demo-served');
  const demo = spawn(BIN, ['--data', demoDir, 'demo', '--ops', '200', '--listen', '127.0.0.1:0'],
      {stdio: ['ignore', 'pipe', 'pipe']});
  t.after(() => demo.kill('SIGTERM'));
  let out = '';
  const [url, token] = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('demo printed no console address in 60 s:\n' + out)), 60000);
    const seen = (d) => {
      out += d;
      const u = /console: +(http:\/\/\S+\/console\/)/.exec(out);
      const k = /sign-in token[^:]*: *(\S+)/.exec(out);
      if (u && k) {
        clearTimeout(timer);
        resolve([u[1], k[1]]);
      }
    };
    demo.stdout.on('data', seen);
    demo.stderr.on('data', seen);
  });
  const page = await newPage();
  await page.goto(url);
  await signIn(page, token);
  await page.waitForSelector('#search-q');
  await page.fill('#search-q', '2');
  await page.click('#search-go');
  await page.waitForSelector('#search-results li.customer[data-customer="2"]');
  await page.context().close();
});

// Page through the table until its last page; return every row shown ("id@vN").
async function allShownRows(page) {
  const rows = [];
  for (;;) {
    await page.waitForSelector('#campaign-table, #campaigns .notice');
    rows.push(...await shownRows(page));
    if (await page.$('#campaigns .notice') || await page.isDisabled('#page-next')) return rows;
    const first = await page.getAttribute('#campaign-table tbody tr', 'data-campaign-id');
    await page.click('#page-next');
    await page.waitForFunction((id) => document.querySelector('#campaign-table tbody tr')?.dataset.campaignId !== id, first);
  }
}

// A word of an active campaign's name (so the filters together match something) in other case.
function pickNameFilter(campaigns) {
  for (const s of campaigns) {
    if (s.status !== 'active') continue;
    const word = (s.name || '').split(/[^A-Za-z]+/).find((w) => w.length >= 4);
    if (word) return word.slice(1, 4).toUpperCase();
  }
  throw new Error('no active campaign with a name word of 4+ letters');
}

test('the status and name filters of the table equal the CLI as-of --status --name', async () => {
  const {customer, at} = pickCustomerAndMoment();
  const all = cliJson('as-of', '--customer', String(customer), '--at', at);
  const name = pickNameFilter(all.campaigns);
  const page = await newPage();
  await page.goto(base + '/console/');
  await signIn(page);
  await page.goto(`${base}/console/customers/${customer}?at=${encodeURIComponent(at)}&limit=${PAGE_SIZE}`);
  await page.waitForSelector('#campaign-table');
  // Status alone, chosen in the form.
  const active = cliJson('as-of', '--customer', String(customer), '--at', at, '--status', 'active');
  assert.ok(active.matching > 0 && active.matching < all.existing, 'some campaigns are active, not all');
  await page.selectOption('#filter-status', 'active');
  await page.click('#filter-go');
  await page.waitForURL((u) => u.searchParams.get('status') === 'active');
  await page.waitForSelector('#campaign-count:text("match the filters")');
  assert.equal(await page.textContent('#campaign-count'),
      `${active.matching.toLocaleString('en-US')} of ${all.existing.toLocaleString('en-US')} match the filters`);
  assert.deepEqual(await allShownRows(page), cliRows(active.campaigns));
  // Status and name together (the name compared without case).
  const both = cliJson('as-of', '--customer', String(customer), '--at', at, '--status', 'active', '--name', name);
  assert.ok(both.matching > 0, `active campaigns named *${name}*`);
  await page.fill('#filter-name', name);
  await page.click('#filter-go');
  await page.waitForURL((u) => u.searchParams.get('name') === name && u.searchParams.get('status') === 'active');
  await page.waitForSelector(`#campaign-count:text("${both.matching.toLocaleString('en-US')} of")`);
  assert.deepEqual(await allShownRows(page), cliRows(both.campaigns));
  for (const cell of await page.$$eval('#campaign-table tbody td.name', (tds) => tds.map((td) => td.textContent))) {
    assert.ok(cell.toLowerCase().includes(name.toLowerCase()), cell);
  }
  // Name alone, from the address (a pasted link keeps its filters).
  const named = cliJson('as-of', '--customer', String(customer), '--at', at, '--name', name);
  await page.goto(`${base}/console/customers/${customer}?at=${encodeURIComponent(at)}&name=${name}&limit=${PAGE_SIZE}`);
  await page.waitForSelector('#campaign-table');
  assert.equal(await page.inputValue('#filter-name'), name);
  assert.equal(await page.inputValue('#filter-status'), '');
  assert.deepEqual(await allShownRows(page), cliRows(named.campaigns));
  // Filters that match nothing say so.
  await page.goto(`${base}/console/customers/${customer}?at=${encodeURIComponent(at)}&status=ended&name=zzqqzz`);
  await page.waitForSelector('#campaigns .notice');
  assert.match(await page.textContent('#campaigns .notice'), /none of the \d+ campaigns/i);
  await page.context().close();
});

// A campaign of `customer` at `at` whose blame has a field last set by a shift-only version.
function pickBlamed(customer, at) {
  const r = cliJson('as-of', '--customer', String(customer), '--at', at);
  for (const s of r.campaigns) {
    const blame = cliJson('blame', '--campaign', String(s.id), '--at', at);
    if (blame.fields.some((f) => f.cause) && blame.fields.some((f) => !f.cause)) return {id: s.id, blame};
  }
  throw new Error(`no campaign of customer ${customer} has a field set by a shift at ${at}`);
}

test('blame: who set each field, shift-only versions annotated, as the CLI blame', async () => {
  const {customer, at} = pickCustomerAndMoment();
  const {id, blame} = pickBlamed(customer, at);
  const page = await newPage();
  await page.goto(base + '/console/');
  await signIn(page);
  await page.goto(`${base}/console/customers/${customer}?at=${encodeURIComponent(at)}&campaign=${id}`);
  await page.waitForSelector('#versions');
  // Reached from the campaign view; the address keeps it.
  await page.click('#tab-blame');
  await page.waitForURL((u) => u.searchParams.get('tab') === 'blame');
  await page.waitForSelector('#blame-table');
  const rows = await page.$$eval('#blame-table tbody tr', (trs) => trs.map((tr) => ({
    path: tr.dataset.path, version: Number(tr.dataset.version), kind: tr.dataset.kind,
    who: tr.querySelector('td.actor').firstChild.textContent,
    cause: tr.querySelector('.why .cause')?.textContent ?? null})));
  assert.deepEqual(rows, blame.fields.map((f) => ({path: f.path, version: f.version, kind: f.kind, who: f.actor,
    cause: f.cause ? f.cause.summary : null})));
  assert.match(await page.textContent('#blame-heading'), new RegExp(`: v${blame.version}\\b`));
  assert.match(await page.textContent('#blame-shift-note'), /shift-only/);
  const shifted = blame.fields.find((f) => f.cause);
  assert.match(await page.textContent(`#blame-table tr[data-path="${shifted.path}"] .why`), /^shifted: /);
  await shot(page, 'blame');
  // A pasted link opens the blame directly (after signing in).
  const link = page.url();
  const fresh = await newPage();
  await fresh.goto(link);
  await signIn(fresh);
  await fresh.waitForSelector('#blame-table');
  assert.equal(await fresh.getAttribute('#tab-blame', 'aria-selected'), 'true');
  assert.equal(await fresh.$$eval('#blame-table tbody tr', (trs) => trs.length), blame.fields.length);
  await fresh.context().close();
  // A field's version opens the list of versions at that version.
  await page.click(`#blame-table tr[data-path="${shifted.path}"] .vlink`);
  await page.waitForURL((u) => !u.searchParams.get('tab') && u.searchParams.get('version') === String(shifted.version));
  await page.waitForSelector(`#versions .focused[data-version="${shifted.version}"]`);
  assert.equal(await page.isVisible(`#versions .focused[data-version="${shifted.version}"]`), true);
  await page.context().close();
});

test('no script error or CSP violation on any page', () => {
  assert.deepEqual(pageErrors.filter((e) => !/status of 40[14]/.test(e)), []);
});
