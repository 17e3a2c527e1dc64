// End-to-end tests of the web UI in Chromium (playwright-core), against `featurectl serve`
// started by the Rust test `crates/featurectl/tests/ui_browser.rs`, which also answers the
// CHECK lines this script prints: an application Client on the same SQLite store must see each
// change within 1 s.
//
// Environment: UI_BASE (http://127.0.0.1:PORT), ADMIN_TOKEN (the server's bootstrap token),
// CHROMIUM (the browser's executable), FEATURECTL (the binary, for `eval --explain`),
// SCREENSHOTS (directory for the README's screenshots).

import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync, mkdtempSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const BASE = process.env.UI_BASE;
const ADMIN = process.env.ADMIN_TOKEN;
const SHOTS = process.env.SCREENSHOTS;
for (const v of ['UI_BASE', 'ADMIN_TOKEN', 'CHROMIUM', 'FEATURECTL', 'SCREENSHOTS']) {
  if (!process.env[v]) throw new Error(`${v} is not set`);
}
mkdirSync(SHOTS, { recursive: true });

// ---------- talking to the Rust side ----------

const replies = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function check(what) {
  process.stdout.write(`CHECK ${JSON.stringify(what)}\n`);
  const { value, done } = await replies.next();
  if (done || value !== 'ok') throw new Error(`the application client disagrees: ${done ? 'no answer' : value} for ${JSON.stringify(what)}`);
}

// ---------- the API, with the bootstrap token ----------

async function admin(method, path, body) {
  const r = await fetch(`${BASE}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

async function token(name, scope) {
  const r = await admin('POST', '/tokens', { name, scope });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return r.json.token;
}

// The server's /api/v1/evaluate (its own client, on the same store) agrees within 1 s.
async function evaluateAgrees(what) {
  const deadline = Date.now() + 1000;
  for (;;) {
    const ok = await (async () => {
      if (what.context) {
        const r = await admin('POST', '/evaluate', { flags: [what.flag], context: what.context });
        return JSON.stringify(r.json.evaluations[0].value) === JSON.stringify(what.value);
      }
      let hits = 0;
      const n = 400;
      for (let i = 0; i < n; i += 1) {
        const r = await admin('POST', '/evaluate', { flags: [what.flag], context: { key: `user-${i}` } });
        if (JSON.stringify(r.json.evaluations[0].value) === JSON.stringify(what.value)) hits += 1;
      }
      return Math.abs((100 * hits) / n - what.percent) <= 7;
    })();
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`/api/v1/evaluate does not show ${JSON.stringify(what)} within 1 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function sees(what) {
  await check(what);
  await evaluateAgrees(what);
}

// ---------- the browser ----------

// One browser per session, each with a fresh profile directory (its own cookies).
const browsers = [];
async function newContext(viewport) {
  const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'feature-ui-chromium-')), {
    executablePath: process.env.CHROMIUM,
    headless: true,
    viewport,
    // axe-core is injected as an inline script, which the pages' CSP forbids otherwise
    bypassCSP: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  browsers.push(context);
  return context;
}

async function session(tokenText, viewport = { width: 1280, height: 800 }) {
  const context = await newContext(viewport);
  const page = context.pages()[0] || await context.newPage();
  page.on('pageerror', (e) => { throw new Error(`page error: ${e.message}`); });
  await page.goto(`${BASE}/ui/`);
  await page.getByLabel('Server token').fill(tokenText);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Flags' }).waitFor();
  return page;
}

const scanned = [];
async function axe(page, name) {
  await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(async () => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`), [], `axe on ${name}`);
  scanned.push(name);
}

async function noHorizontalScroll(page, name) {
  const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(scroll <= width, `${name}: the page is ${scroll}px wide in a ${width}px window`);
}

const step = (name) => process.stderr.write(`ui: ${name}\n`);

// ---------- the tests ----------

const aliceToken = await token('alice', 'write');
const bobToken = await token('bob', 'write');
const readerToken = await token('reader', 'read');

step('sign-in page passes axe, a wrong token is refused');
{
  const context = await newContext({ width: 1280, height: 800 });
  const page = context.pages()[0] || await context.newPage();
  await page.goto(`${BASE}/ui/`);
  await axe(page, 'sign-in');
  await page.getByLabel('Server token').fill('feat_wrong');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Sign-in refused').waitFor();
  const cookies = await context.cookies();
  assert.equal(cookies.length, 0);
  await context.close();
}

step('sign in; the session cookie is HttpOnly and SameSite=Strict, the token is not in the page');
const alice = await session(aliceToken);
{
  const [cookie] = await alice.context().cookies();
  assert.equal(cookie.name, 'feature_ui_session');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.notEqual(cookie.value, aliceToken);
  const html = await alice.content();
  assert.ok(!html.includes(aliceToken));
  await alice.getByRole('link', { name: 'new-checkout', exact: true }).waitFor();
  await alice.getByRole('switch', { name: 'new-checkout', exact: true }).waitFor();
  // who changed it last, and when
  await alice.locator('tr[data-key="new-checkout"] td[data-label="Last change"]', { hasText: /^demo, \d{4}-/ }).waitFor();
  await axe(alice, 'flags list');
}

step('create a flag from each template');
async function create(page, template, key, extra = async () => {}) {
  await page.goto(`${BASE}/ui/#/new`);
  await page.getByRole('heading', { name: 'New flag' }).waitFor();
  await page.getByLabel(template).check();
  await page.getByLabel('Key', { exact: true }).fill(key);
  await page.getByLabel('Name', { exact: true }).fill(`${template} ${key}`);
  await extra();
  await page.getByRole('button', { name: 'Create flag' }).click();
  await page.getByRole('heading', { name: `Flag ${key}` }).waitFor();
}
await alice.goto(`${BASE}/ui/#/new`);
await alice.getByRole('heading', { name: 'New flag' }).waitFor();
await axe(alice, 'new flag');
await create(alice, 'Kill switch (on/off)', 'kill-payments', async () => {
  await alice.getByLabel('Tags (comma-separated)').fill('billing, incident');
});
await sees({ flag: 'kill-payments', context: { key: 'user-1' }, value: true });
await create(alice, 'Percentage rollout', 'new-search', async () => {
  await alice.getByLabel('Rollout: percentage on').fill('10');
});
await sees({ flag: 'new-search', value: true, percent: 10 });
await create(alice, 'A/B experiment with N variants', 'checkout-exp', async () => {
  await alice.getByLabel('Experiment: number of variants').fill('3');
});
await sees({ flag: 'checkout-exp', value: 'control', percent: 100 / 3 });
await axe(alice, 'flag editor');

step('the list filters by tag, state and text');
await alice.goto(`${BASE}/ui/#/flags`);
await alice.getByRole('switch', { name: 'checkout-exp' }).waitFor();
await alice.getByLabel('Tag').selectOption('incident');
await alice.locator('#count', { hasText: /^1 of 7 flags$/ }).waitFor();
assert.equal(await alice.getByRole('switch').count(), 1);
await alice.getByRole('switch', { name: 'kill-payments' }).waitFor();
await alice.getByLabel('Tag').selectOption('');
await alice.getByLabel('Search flags').fill('Percentage rollout');
await alice.locator('#count', { hasText: /^1 of 7 flags$/ }).waitFor();
await alice.getByRole('switch', { name: 'new-search' }).waitFor();
await alice.getByLabel('Search flags').fill('');
await alice.getByLabel('State').selectOption('off');
await alice.locator('#count', { hasText: /^0 of 7 flags$/ }).waitFor();
assert.deepEqual((await admin('GET', '/flags/kill-payments')).json.tags, ['billing', 'incident']);

step('add a rule with two clauses');
await alice.goto(`${BASE}/ui/#/flags/kill-payments`);
await alice.getByRole('button', { name: 'Add rule' }).click();
await alice.getByLabel('Rule 1 clause 1 attribute').fill('country');
await alice.getByLabel('Rule 1 clause 1 operator').selectOption('eq');
await alice.getByLabel('Rule 1 clause 1 values (comma-separated)').fill('NZ');
await alice.getByRole('button', { name: 'Add clause to rule 1' }).click();
await alice.getByLabel('Rule 1 clause 2 attribute').fill('plan');
await alice.getByLabel('Rule 1 clause 2 operator').selectOption('in');
await alice.getByLabel('Rule 1 clause 2 values (comma-separated)').fill('pro, enterprise');
await alice.getByLabel('Rule 1: variation').selectOption({ label: '#0 off' });
{
  const ops = await alice.getByLabel('Rule 1 clause 1 operator').locator('option').allTextContents();
  for (const op of ['eq', 'neq', 'in', 'notIn', 'contains', 'startsWith', 'endsWith', 'matches', 'gt', 'gte', 'lt', 'lte',
    'semver', 'semVerEqual', 'semVerLessThan', 'semVerGreaterThan', 'before', 'after', 'segmentMatch']) {
    assert.ok(ops.includes(op), `operator ${op} offered`);
  }
}
await alice.getByRole('button', { name: 'Save' }).click();
await alice.locator('#save-state', { hasText: 'Saved version 2' }).waitFor();
await sees({ flag: 'kill-payments', context: { key: 'user-1', country: 'NZ', plan: 'pro' }, value: false });
await sees({ flag: 'kill-payments', context: { key: 'user-1', country: 'NZ', plan: 'free' }, value: true });

step('a validation error shows next to its field');
await alice.getByRole('button', { name: 'Add variant' }).click();
await alice.getByLabel('Variant 2 value (JSON)').fill('"not a bool"');
await alice.getByRole('button', { name: 'Save' }).click();
{
  // the diagnostic's path (flags.kill-payments.variants[2].value) puts it next to that field
  const err = alice.locator('[data-path="variants[2].value"] .error');
  await err.waitFor();
  assert.match(await err.textContent(), /error: value "not a bool" is not of the flag's type bool/);
  assert.equal(await alice.getByLabel('Variant 2 value (JSON)').getAttribute('aria-invalid'), 'true');
  assert.equal((await admin('GET', '/flags/kill-payments')).json.version, 2, 'nothing written');
}
await alice.reload();
await alice.getByRole('heading', { name: 'Flag kill-payments' }).waitFor();
await alice.screenshot({ path: join(SHOTS, 'editor.png'), fullPage: true });

step('move a rollout to 30 %');
await alice.goto(`${BASE}/ui/#/flags/new-search`);
{
  const on = alice.getByLabel('Percent for #1 on');
  const off = alice.getByLabel('Percent for #0 off');
  assert.equal(await on.inputValue(), '10');
  await on.fill('30');
  await on.press('Tab');
  assert.equal(await off.inputValue(), '70');
  await alice.getByText('Total: 100 %').waitFor();
}
// the draft's split, previewed before saving
await alice.getByLabel('Preview contexts, one JSON object per line').fill(Array.from({ length: 1000 }, (_, i) => JSON.stringify({ key: `user-${i}` })).join('\n'));
await alice.getByRole('button', { name: 'Preview draft split' }).click();
{
  const row = alice.locator('#preview-split tr', { hasText: 'true (on)' });
  await row.waitFor();
  const share = Number((await row.locator('td').nth(2).textContent()).replace(' %', ''));
  assert.ok(Math.abs(share - 30) <= 5, `draft split ${share} %`);
  const stored = await admin('GET', '/flags/new-search');
  assert.deepEqual(stored.json.fallthrough.rollout.variations.map((v) => v.weight), [90000, 10000], 'nothing saved by a preview');
}
await alice.getByRole('button', { name: 'Save' }).click();
await alice.locator('#save-state', { hasText: 'Saved version 2' }).waitFor();
await sees({ flag: 'new-search', value: true, percent: 30 });
{
  const r = await admin('GET', '/flags/new-search');
  assert.deepEqual(r.json.fallthrough.rollout.variations.map((v) => v.weight), [70000, 30000]);
}

step('keyboard only: turn the flag off (confirmed) and on; another session sees it live');
const bob = await session(bobToken);
await alice.goto(`${BASE}/ui/#/flags`);
await alice.getByRole('switch', { name: 'kill-payments' }).waitFor();
{
  const page = alice;
  await page.locator('body').focus();
  for (let i = 0; i < 30 && !(await page.evaluate(() => document.activeElement && document.activeElement.id === 'search')); i += 1) {
    await page.keyboard.press('Tab');
  }
  await page.keyboard.type('kill-pay');
  for (let i = 0; i < 30 && (await page.evaluate(() => document.activeElement.getAttribute('aria-label'))) !== 'kill-payments'; i += 1) {
    await page.keyboard.press('Tab');
  }
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('role')), 'switch');
  await page.keyboard.press('Space');
  await page.getByRole('dialog').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Turn off');
  await page.keyboard.press('Enter');
  await page.locator('#live', { hasText: 'kill-payments is off' }).waitFor({ state: 'attached' });
  await sees({ flag: 'kill-payments', context: { key: 'user-1' }, value: false });
  assert.equal(await page.getByRole('switch', { name: 'kill-payments' }).isChecked(), false);
  // bob's list shows it without a reload
  await bob.waitForFunction(() => {
    const s = document.querySelector('input[role=switch][aria-label="kill-payments"]');
    return s && !s.checked;
  }, null, { timeout: 5000 });
  await page.keyboard.press('Space');
  await page.locator('#live', { hasText: 'kill-payments is on' }).waitFor({ state: 'attached' });
  await sees({ flag: 'kill-payments', context: { key: 'user-1' }, value: true });
  await bob.waitForFunction(() => document.querySelector('input[role=switch][aria-label="kill-payments"]').checked, null, { timeout: 5000 });
  // cancelling the confirmation leaves it on
  await page.keyboard.press('Space');
  await page.getByRole('dialog').waitFor();
  await page.keyboard.press('Escape');
  await page.waitForTimeout(300);
  assert.equal((await admin('GET', '/flags/kill-payments')).json.enabled, undefined);
}

step('history shows every change with the token name; restore');
await alice.goto(`${BASE}/ui/#/flags/kill-payments/history`);
await alice.getByRole('heading', { name: /Version 4: enable by alice/ }).waitFor();
for (const text of ['Version 1: create by alice', 'Version 2: update by alice', 'Version 3: disable by alice', 'Version 4: enable by alice']) {
  await alice.getByRole('heading', { name: new RegExp(text) }).waitFor();
}
assert.ok(await alice.locator('.diff ins').count() > 0, 'the diff marks added lines');
await axe(alice, 'history');
await alice.getByRole('button', { name: 'Restore version 1' }).click();
await alice.getByRole('heading', { name: /Version 5: / }).waitFor();
await sees({ flag: 'kill-payments', context: { key: 'user-1', country: 'NZ', plan: 'pro' }, value: true });

step('two sessions editing the same flag: conflict, shown and re-applied');
await alice.goto(`${BASE}/ui/#/flags/new-search`);
await bob.goto(`${BASE}/ui/#/flags/new-search`);
await alice.getByLabel('Description', { exact: true }).fill('by alice');
await bob.getByLabel('Name', { exact: true }).fill('Search, by bob');
await alice.getByRole('button', { name: 'Save' }).click();
await alice.locator('#save-state', { hasText: 'Saved version 3' }).waitFor();
await bob.getByRole('button', { name: 'Save' }).click();
await bob.getByRole('heading', { name: /Conflict: alice .* saved version 3 first/ }).waitFor();
assert.ok((await bob.locator('#conflict').textContent()).includes('by alice'), 'their change is shown');
await axe(bob, 'conflict');
await bob.getByRole('button', { name: 'Re-apply my changes on top' }).click();
assert.equal(await bob.getByLabel('Name', { exact: true }).inputValue(), 'Search, by bob');
assert.equal(await bob.getByLabel('Description', { exact: true }).inputValue(), 'by alice');
await bob.getByRole('button', { name: 'Save' }).click();
await bob.locator('#save-state', { hasText: 'Saved version 4' }).waitFor();
{
  const r = await admin('GET', '/flags/new-search');
  assert.equal(r.json.name, 'Search, by bob');
  assert.equal(r.json.description, 'by alice');
}
await sees({ flag: 'new-search', value: true, percent: 30 });

step('a read token sees no edit controls; forged posts are refused');
const reader = await session(readerToken);
{
  await reader.getByRole('link', { name: 'kill-payments', exact: true }).waitFor();
  assert.equal(await reader.getByRole('switch').count(), 0);
  assert.equal(await reader.getByRole('link', { name: /New flag/ }).count(), 0);
  await reader.goto(`${BASE}/ui/#/flags/kill-payments`);
  await reader.getByText('Your token can read flags, not change them.').waitFor();
  assert.equal(await reader.getByRole('button', { name: 'Save' }).count(), 0);
  assert.equal(await reader.locator('input, select, textarea').count(), 0);
  await axe(reader, 'read-only flag');
  // the API refuses the reader's change even with its own CSRF token
  const own = await reader.evaluate(async () => {
    const s = await (await fetch('/ui/session')).json();
    const r = await fetch('/ui/api/v1/flags/kill-payments/disable', { method: 'POST', headers: { 'x-csrf-token': s.csrf, 'if-match': '*' } });
    return [r.status, r.headers.get('content-type'), s.csrf];
  });
  assert.equal(own[0], 403);
  assert.equal(own[1], 'application/problem+json');
  // alice's session: a form post without the CSRF token, and one with another session's token
  const forged = await alice.evaluate(async (foreign) => {
    const form = await fetch('/ui/api/v1/flags/kill-payments/disable', {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'x=1',
    });
    const other = await fetch('/ui/api/v1/flags/kill-payments/disable', { method: 'POST', headers: { 'x-csrf-token': foreign, 'if-match': '*' } });
    return [form.status, other.status];
  }, own[2]);
  assert.deepEqual(forged, [403, 403]);
  // a real HTML form submitted from the page (what a cross-site form would send)
  const answer = alice.waitForResponse((r) => r.url().endsWith('/kill-payments/disable'));
  await alice.evaluate(() => {
    const f = document.createElement('form');
    f.method = 'POST'; f.action = '/ui/api/v1/flags/kill-payments/disable';
    document.body.append(f); f.submit();
  });
  const refused = await answer;
  assert.equal(refused.status(), 403);
  assert.match(await refused.text(), /CSRF/);
  assert.equal((await admin('GET', '/flags/kill-payments')).json.enabled, undefined, 'still on');
  await sees({ flag: 'kill-payments', context: { key: 'user-1' }, value: true });
}

step('an evaluate token is shown the debugger only');
{
  const evalToken = await token('probe', 'evaluate');
  const context = await newContext({ width: 1280, height: 800 });
  const page = context.pages()[0] || await context.newPage();
  await page.goto(`${BASE}/ui/`);
  await page.getByLabel('Server token').fill(evalToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Debugger' }).waitFor();
  assert.deepEqual(await page.locator('#nav a').allTextContents(), ['Debugger']);
  await page.getByLabel('Flag').fill('kill-payments');
  await page.getByLabel('Context (JSON)').fill('{"key": "user-1"}');
  await page.getByRole('button', { name: 'Evaluate' }).click();
  await page.locator('#dbg-value').waitFor();
  assert.equal(await page.locator('#dbg-value').textContent(), 'true');
  await axe(page, 'debugger for an evaluate token');
}

step('the debugger answers as featurectl eval --explain');
{
  const context = { key: 'user-7', country: 'NZ', plan: 'enterprise' };
  await alice.goto(`${BASE}/ui/#/debugger/premium-features`);
  await alice.getByRole('heading', { name: 'Debugger' }).waitFor();
  await alice.getByLabel('Context (JSON)').fill(JSON.stringify(context));
  await alice.getByRole('button', { name: 'Evaluate' }).click();
  await alice.locator('#dbg-explain li').first().waitFor();
  const shown = {
    value: JSON.parse(await alice.locator('#dbg-value').textContent()),
    variation: await alice.locator('#dbg-variation').textContent(),
    reason: await alice.locator('#dbg-reason').textContent(),
    explain: await alice.locator('#dbg-explain li').allTextContents(),
  };
  // the same flags as a file, evaluated by the command line
  const list = await admin('GET', '/flags?limit=1000');
  const segs = await admin('GET', '/segments?limit=1000');
  const strip = (items) => Object.fromEntries(items.map((i) => {
    const { key, version, updatedAt, createdAt, ...rest } = i;
    void version; void updatedAt; void createdAt;
    return [key, rest];
  }));
  const dir = mkdtempSync(join(tmpdir(), 'feature-ui-eval-'));
  const file = join(dir, 'flags.json');
  writeFileSync(file, JSON.stringify({ flags: strip(list.json.items), segments: strip(segs.json.items) }));
  const cli = JSON.parse(execFileSync(process.env.FEATURECTL, ['eval', '--file', file, '--flag', 'premium-features',
    '--context', JSON.stringify(context), '--json', '--explain'], { encoding: 'utf8' }).trim());
  assert.deepEqual(shown.value, cli.value);
  assert.ok(shown.variation.startsWith(String(cli.variationIndex)), `${shown.variation} vs ${cli.variationIndex}`);
  assert.ok(shown.reason.startsWith(cli.reason), `${shown.reason} vs ${cli.reason}`);
  assert.deepEqual(shown.explain, cli.explain);
  await axe(alice, 'debugger');
  // a list of contexts previews the split of the 30 % rollout
  await alice.goto(`${BASE}/ui/#/debugger/new-search`);
  await alice.getByLabel('Contexts, one JSON object per line').fill(Array.from({ length: 200 }, (_, i) => JSON.stringify({ key: `user-${i}` })).join('\n'));
  await alice.getByRole('button', { name: 'Preview split' }).click();
  const row = alice.locator('#dbg-split tr', { hasText: 'true' });
  await row.waitFor();
  const share = Number((await row.locator('td').nth(2).textContent()).replace(' %', ''));
  assert.ok(Math.abs(share - 30) <= 8, `split ${share} %`);
  await alice.goto(`${BASE}/ui/#/debugger/premium-features`);
  await alice.getByLabel('Context (JSON)').fill(JSON.stringify(context));
  await alice.getByRole('button', { name: 'Evaluate' }).click();
  await alice.locator('#dbg-explain li').first().waitFor();
  await alice.screenshot({ path: join(SHOTS, 'debugger.png'), fullPage: true });
}

step('segments: create one with keys and a rule, then a flag rule that uses it');
await alice.goto(`${BASE}/ui/#/segments`);
await alice.getByRole('heading', { name: 'Segments' }).waitFor();
await axe(alice, 'segments');
await alice.getByLabel('Segment key').fill('beta-testers');
await alice.getByRole('button', { name: 'Create segment' }).click();
await alice.getByRole('heading', { name: 'Segment beta-testers' }).waitFor();
await alice.getByLabel('Included keys (comma-separated)').fill('user-42, user-43');
await alice.getByLabel('Excluded keys (comma-separated)').fill('user-44');
await alice.getByRole('button', { name: 'Add rule' }).click();
await alice.getByLabel('Rule 1 clause 1 attribute').fill('email');
await alice.getByLabel('Rule 1 clause 1 operator').selectOption('endsWith');
await alice.getByLabel('Rule 1 clause 1 values (comma-separated)').fill('@example.com');
await axe(alice, 'segment editor');
await alice.getByRole('button', { name: 'Save' }).click();
await alice.locator('#save-state', { hasText: 'Saved version 1' }).waitFor();
{
  const r = await admin('GET', '/segments/beta-testers');
  assert.deepEqual(r.json.included, ['user-42', 'user-43']);
  assert.deepEqual(r.json.excluded, ['user-44']);
  assert.equal(r.json.rules[0].clauses[0].operator, 'endsWith');
}
await alice.goto(`${BASE}/ui/#/flags/checkout-exp`);
await alice.getByRole('button', { name: 'Add rule' }).click();
await alice.getByLabel('Rule 1 clause 1 attribute').fill('key');
await alice.getByLabel('Rule 1 clause 1 operator').selectOption('segmentMatch');
await alice.getByLabel('Rule 1 clause 1 values (comma-separated)').fill('beta-testers');
await alice.getByLabel('Rule 1: variation').selectOption({ label: '#2 variant-c' });
await alice.getByRole('button', { name: 'Save' }).click();
await alice.locator('#save-state', { hasText: 'Saved version 2' }).waitFor();
await sees({ flag: 'checkout-exp', context: { key: 'user-42' }, value: 'variant-c' });
await sees({ flag: 'checkout-exp', context: { key: 'user-9', email: 'x@example.com' }, value: 'variant-c' });

step('live: a change by someone else shows in the open editor and history without a reload');
{
  await alice.goto(`${BASE}/ui/#/flags/checkout-exp`);
  await alice.getByRole('button', { name: 'Save' }).waitFor();
  await bob.goto(`${BASE}/ui/#/flags/checkout-exp/history`);
  await bob.getByRole('heading', { name: /Version 2: update by alice/ }).waitFor();
  const cur = await admin('GET', '/flags/checkout-exp');
  const { key, version, updatedAt, ...def } = cur.json;
  void key; void version; void updatedAt;
  const r = await fetch(`${BASE}/api/v1/flags/checkout-exp`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json', 'if-match': `"${cur.json.version}"` },
    body: JSON.stringify({ ...def, description: 'changed elsewhere' }),
  });
  assert.equal(r.status, 200);
  await alice.locator('#notices', { hasText: 'was changed by someone else; showing version 3' }).waitFor({ timeout: 5000 });
  assert.equal(await alice.getByLabel('Description', { exact: true }).inputValue(), 'changed elsewhere');
  await bob.getByRole('heading', { name: /Version 3: update by bootstrap/ }).waitFor({ timeout: 5000 });
}

step('layouts: 1280x800 and phone width');
{
  await alice.goto(`${BASE}/ui/#/flags`);
  await alice.getByRole('switch', { name: 'kill-payments' }).waitFor();
  await noHorizontalScroll(alice, 'list at 1280x800');
  await alice.screenshot({ path: join(SHOTS, 'list.png') });
  await alice.goto(`${BASE}/ui/#/flags/kill-payments`);
  await alice.getByRole('button', { name: 'Save' }).waitFor();
  await noHorizontalScroll(alice, 'editor at 1280x800');
  const phone = await session(aliceToken, { width: 390, height: 844 });
  const sw = phone.getByRole('switch', { name: 'kill-payments' });
  await sw.waitFor();
  assert.ok(await sw.isVisible());
  await noHorizontalScroll(phone, 'list at phone width');
  await axe(phone, 'list at phone width');
  await phone.goto(`${BASE}/ui/#/flags/kill-payments`);
  await phone.getByRole('button', { name: 'Save' }).waitFor();
  await noHorizontalScroll(phone, 'editor at phone width');
  await phone.goto(`${BASE}/ui/#/debugger`);
  await phone.getByRole('heading', { name: 'Debugger' }).waitFor();
  await noHorizontalScroll(phone, 'debugger at phone width');
}

step('sign out ends the session');
{
  await alice.goto(`${BASE}/ui/#/flags`);
  await alice.getByRole('button', { name: 'Sign out' }).click();
  await alice.getByRole('heading', { name: 'Sign in' }).waitFor();
  const status = await alice.evaluate(async () => (await fetch('/ui/api/v1/flags')).status);
  assert.equal(status, 401);
}

for (const b of browsers) await b.close();
process.stdout.write(`DONE ${JSON.stringify(scanned)}\n`);
process.exit(0);
