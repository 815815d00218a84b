// The dashboard in headless chromium (run by tests/integration/dashboard_e2e.sh,
// which seeds the store and starts the server).
//
// Every expected value is computed here from the seed records the runner
// imported (HS_SEED_RECORDS) with the formatting rules of docs/dashboard.md,
// never read back from the server: the page must show what the data says.
//
// Environment: HS_DASH_URL (the server), HS_SEED_RECORDS, HS_SEED_ALERTS,
// HS_EXPECT_DATA_DRIFT / HS_EXPECT_CONCEPT_DRIFT (STABLE, DRIFTED or none),
// HS_CHROMIUM (the browser binary), HS_SCREENSHOT (where the PNG goes).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { chromium } from 'playwright-core';

const URL_BASE = process.env.HS_DASH_URL;
const SHOT = process.env.HS_SCREENSHOT;
const DASH = '\u2014';
assert.ok(URL_BASE, 'HS_DASH_URL must name the server');

const records = fs.readFileSync(process.env.HS_SEED_RECORDS, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const seededAlerts = JSON.parse(fs.readFileSync(process.env.HS_SEED_ALERTS, 'utf8'));

// ---- expectations, from the seed ----
// Quantile as R's type 7 (the store's rule): position q(n-1), interpolated.
function quantile(values, q) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  const pos = q * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}
function stats(recs) {
  const ok = recs.filter((r) => r.status >= 200 && r.status < 300);
  const lat = ok.map((r) => r.latency_ms);
  const up = recs.filter((r) => r.feedback && r.feedback.value === 1).length;
  const down = recs.filter((r) => r.feedback && r.feedback.value === -1).length;
  const flagged = recs.filter((r) => r.safety_flags).length;
  const conf = recs.map((r) => r.confidence).filter((c) => typeof c === 'number');
  return {
    requests: recs.length,
    errors: recs.length - ok.length,
    error_rate: recs.length ? (recs.length - ok.length) / recs.length : null,
    latency_p50: quantile(lat, 0.5),
    latency_p95: quantile(lat, 0.95),
    satisfaction: up + down ? up / (up + down) : null,
    up,
    down,
    safety_rate: recs.length ? flagged / recs.length : null,
    confidence_mean: conf.length ? conf.reduce((a, b) => a + b, 0) / conf.length : null,
  };
}
// the page's formatting rules (docs/dashboard.md)
const fmtInt = (v) => (v == null ? DASH : String(Math.round(v)));
const fmtMs = (v) => (v == null ? DASH : Math.round(v) + ' ms');
const fmtPct = (v) => (v == null ? DASH : (v * 100).toFixed(1) + '%');
const fmtNum = (v, d) => (v == null ? DASH : v.toFixed(d));

const total = stats(records);
const byAgent = new Map();
for (const r of records) {
  const k = r.agent == null ? '' : r.agent;
  if (!byAgent.has(k)) byAgent.set(k, []);
  byAgent.get(k).push(r);
}

// ---- the browser ----
let browser;
let page;
const consoleErrors = [];
const foreign = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.HS_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // root in a container has no user namespaces for chromium's sandbox
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 1100 } });
  // Offline: anything not from this server is refused and remembered.
  await context.route('**/*', (route) => {
    const u = route.request().url();
    if (u.startsWith(URL_BASE + '/')) return route.continue();
    foreign.push(u);
    return route.abort();
  });
  page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
});

after(async () => {
  if (browser) await browser.close();
});

async function cardText(name) {
  return (await page.locator(`[data-card="${name}"] .value`).textContent()).trim();
}

test('the page loads from this server only, with no script error', async () => {
  const resp = await page.goto(URL_BASE + '/dashboard', { waitUntil: 'load' });
  assert.equal(resp.status(), 200);
  await page.waitForFunction(() => Number(document.body.dataset.refreshes || 0) >= 1, null, { timeout: 30000 });
  assert.equal(await page.locator('#status').getAttribute('data-state'), 'ok',
    'status line: ' + (await page.locator('#status').textContent()));
  assert.ok(await page.locator('#keyform').isHidden(), 'no key is needed from loopback');
  assert.deepEqual(foreign, [], 'requests to other origins');
  assert.deepEqual(consoleErrors, [], 'console errors (a CSP violation shows here too)');
});

test('every card shows the seeded value', async () => {
  assert.equal(await cardText('requests'), fmtInt(total.requests));
  assert.equal(await cardText('latency_p50'), fmtMs(total.latency_p50));
  assert.equal(await cardText('latency_p95'), fmtMs(total.latency_p95));
  assert.equal(await cardText('satisfaction'), fmtPct(total.satisfaction));
  assert.equal(await cardText('error_rate'), fmtPct(total.error_rate));
  assert.equal(await cardText('safety_rate'), fmtPct(total.safety_rate));
  // the seed is made so that these are plain numbers; a formatting slip shows here
  assert.equal(fmtInt(total.requests), '40');
  assert.equal(fmtMs(total.latency_p50), '300 ms');
  assert.equal(fmtMs(total.latency_p95), '900 ms');
  assert.equal(fmtPct(total.satisfaction), '70.0%');
  assert.equal(fmtPct(total.error_rate), '10.0%');
  assert.equal(fmtPct(total.safety_rate), '7.5%');
  for (const [card, env] of [['data_drift', 'HS_EXPECT_DATA_DRIFT'], ['concept_drift', 'HS_EXPECT_CONCEPT_DRIFT']]) {
    const want = process.env[env] || 'none';
    const shown = await cardText(card);
    if (want === 'none') assert.equal(shown, DASH, card);
    else assert.equal(shown, want, card);
  }
});

test('every chart has points', async () => {
  for (const name of ['requests', 'latency', 'satisfaction', 'error_rate']) {
    const fig = page.locator(`[data-chart="${name}"]`);
    const points = Number(await fig.getAttribute('data-points'));
    assert.ok(points > 0, `${name}: ${points} points`);
    assert.equal(await fig.locator('canvas').count(), 1, `${name}: uPlot drew no canvas`);
  }
  // the requests chart's bars add up to the seeded records
  assert.equal(Number(await page.locator('[data-chart="requests"]').getAttribute('data-sum')), total.requests);
  // satisfaction is drawn only where feedback arrived: at most one point per rated record
  const sat = Number(await page.locator('[data-chart="satisfaction"]').getAttribute('data-points'));
  assert.ok(sat <= total.up + total.down, `satisfaction points ${sat}`);
});

test('the recent alerts, newest first', async () => {
  const rows = page.locator('#alerts tbody tr');
  const want = [...seededAlerts].sort((a, b) => b.ts_ms - a.ts_ms);
  assert.equal(await rows.count(), want.length);
  for (let i = 0; i < want.length; i++) {
    const cells = (await rows.nth(i).locator('td').allTextContents()).map((s) => s.trim());
    assert.equal(cells[1], want[i].severity);
    assert.equal(cells[2], want[i].type);
    assert.equal(cells[3], want[i].message);
    assert.equal(cells[4], fmtInt(want[i].count));
  }
});

test('the per-agent breakdown', async () => {
  const rows = page.locator('#agents tbody tr');
  assert.equal(await rows.count(), byAgent.size);
  for (const [agent, recs] of byAgent) {
    const row = page.locator(`#agents tbody tr[data-agent="${agent}"]`);
    assert.equal(await row.count(), 1, `agent row '${agent}'`);
    const s = stats(recs);
    const col = async (c) => (await row.locator(`td[data-col="${c}"]`).textContent()).trim();
    assert.equal(await col('requests'), fmtInt(s.requests), `${agent} requests`);
    assert.equal(await col('error_rate'), fmtPct(s.error_rate), `${agent} error rate`);
    assert.equal(await col('satisfaction'), fmtPct(s.satisfaction), `${agent} satisfaction`);
    assert.equal(await col('safety_rate'), fmtPct(s.safety_rate), `${agent} safety`);
    assert.equal(await col('confidence_mean'), fmtNum(s.confidence_mean, 2), `${agent} confidence`);
    // quantiles by the store's rule (type 7): these need not be robust to another rule
    assert.equal(await col('latency_p50'), fmtMs(s.latency_p50), `${agent} p50`);
    assert.equal(await col('latency_p95'), fmtMs(s.latency_p95), `${agent} p95`);
  }
  const none = page.locator('#agents tbody tr[data-agent=""] td').first();
  assert.equal((await none.textContent()).trim(), '(no agent)');
});

test('screenshot', async () => {
  assert.ok(SHOT, 'HS_SCREENSHOT');
  await page.screenshot({ path: SHOT, fullPage: true });
  assert.ok(fs.statSync(SHOT).size > 10000);
});

test('it refreshes by itself every 10 s', async () => {
  const t0 = Date.now();
  await page.waitForFunction(() => Number(document.body.dataset.refreshes || 0) >= 2, null, { timeout: 15000 });
  const dt = Date.now() - t0;
  assert.ok(dt < 14000, `second refresh after ${dt} ms`);
  assert.equal(await cardText('requests'), fmtInt(total.requests));
});

test('refused data asks for an admin key, kept for the tab and sent as Bearer', async () => {
  // From loopback the server needs no key; stand in for a remote client by
  // answering 401 to any /api request without the right Bearer header.
  const KEY = 'hs-test-admin-key';
  const seen = [];
  await page.route('**/api/**', (route) => {
    const auth = route.request().headers().authorization || '';
    seen.push(auth);
    if (auth === 'Bearer ' + KEY) return route.continue();
    return route.fulfill({ status: 401, contentType: 'application/json',
      body: '{"error":{"message":"an API key is needed","type":"authentication_error"}}' });
  });
  await page.reload({ waitUntil: 'load' });
  await page.locator('#keyform').waitFor({ state: 'visible', timeout: 10000 });
  assert.equal(await page.locator('#status').getAttribute('data-state'), 'error');
  await page.fill('#key', KEY);
  await page.click('#keyform button[type=submit]');
  await page.waitForFunction(() => Number(document.body.dataset.refreshes || 0) >= 1, null, { timeout: 15000 });
  assert.ok(await page.locator('#keyform').isHidden());
  assert.equal(await cardText('requests'), fmtInt(total.requests));
  assert.ok(seen.includes('Bearer ' + KEY));
  assert.equal(await page.evaluate(() => sessionStorage.getItem('hestia.adminKey')), KEY);
  // a reload in the same tab keeps the key: no form this time
  seen.length = 0;
  await page.reload({ waitUntil: 'load' });
  await page.waitForFunction(() => Number(document.body.dataset.refreshes || 0) >= 1, null, { timeout: 15000 });
  assert.ok(await page.locator('#keyform').isHidden());
  assert.ok(seen.length > 0 && seen.every((a) => a === 'Bearer ' + KEY), 'every /api request carried the key');
  await page.unroute('**/api/**');
});
