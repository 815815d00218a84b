// The dashboard in headless chromium (run by tests/integration/dashboard_e2e.sh,
// which seeds the store and starts the server).
//
// Every expected value is computed here from the seed records the runner
// imported (HS_SEED_RECORDS) with the formatting rules of docs/dashboard.md,
// never read back from the server: the page must show what the data says.
//
// (issue 7) The experiment the server's config defines (HS_EXPERIMENT, JSON:
// name, route, mode, a, b, weight) gets two weight changes and a rollback
// through the admin routes before the page is loaded; the experiments view
// must show them and the per-variant numbers of the seed's tagged records.
//
// Environment: HS_DASH_URL (the server), HS_SEED_RECORDS, HS_SEED_ALERTS,
// HS_EXPECT_DATA_DRIFT / HS_EXPECT_CONCEPT_DRIFT (STABLE, DRIFTED or none),
// HS_EXPERIMENT, HS_CHROMIUM (the browser binary), HS_SCREENSHOT and
// HS_SCREENSHOT_EXPERIMENTS (where the PNGs go).
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
const EXP = JSON.parse(process.env.HS_EXPERIMENT || 'null');
assert.ok(EXP && EXP.name, 'HS_EXPERIMENT must describe the configured experiment');

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
// Per variant, by the rules of the experiment statistics (docs/rollouts.md),
// which differ from the cards': an error is a non-2xx status or an error
// text, and latency quantiles take every timed record, failed ones too.
function variantStats(recs) {
  const errors = recs.filter((r) => r.status < 200 || r.status > 299 || r.error != null).length;
  const lat = recs.map((r) => r.latency_ms).filter((v) => typeof v === 'number');
  const up = recs.filter((r) => r.feedback && r.feedback.value === 1).length;
  const down = recs.filter((r) => r.feedback && r.feedback.value === -1).length;
  const flagged = recs.filter((r) => r.safety_flags != null && r.safety_flags !== '').length;
  const conf = recs.map((r) => r.confidence).filter((c) => typeof c === 'number' && c >= 0);
  return {
    requests: recs.length,
    error_rate: recs.length ? errors / recs.length : null,
    p50_ms: quantile(lat, 0.5),
    p95_ms: quantile(lat, 0.95),
    p99_ms: quantile(lat, 0.99),
    up_rate: up + down ? up / (up + down) : null,
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

const byVariant = {
  A: variantStats(records.filter((r) => r.experiment === EXP.name && r.variant === 'A')),
  B: variantStats(records.filter((r) => r.experiment === EXP.name && r.variant === 'B')),
};
const VARIANT_COLS = {
  requests: fmtInt, error_rate: fmtPct, p50_ms: fmtMs, p95_ms: fmtMs, p99_ms: fmtMs,
  up_rate: fmtPct, safety_rate: fmtPct, confidence_mean: (v) => fmtNum(v, 2),
};

// The changes the test makes through the admin routes, in order. The weight
// reason has markup in it: the page must show it as text.
const WEIGHT_CHANGES = [
  { weight: 0.5, reason: 'ramp to <b>50%</b> & watch' },
  { weight: 0.8, reason: 'ramp to 80%' },
];
const ROLLBACK_REASON = 'B p95 too slow: "e2e" rollback';

async function post(path, body) {
  const r = await fetch(URL_BASE + path, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const text = await r.text();
  assert.equal(r.status, 200, `POST ${path}: HTTP ${r.status} ${text.slice(0, 300)}`);
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
  // real changes of B's weight and a rollback, before the page is loaded
  for (const c of WEIGHT_CHANGES) await post(`/admin/experiments/${EXP.name}/weight`, c);
  await post('/admin/rollback', { experiment: EXP.name, reason: ROLLBACK_REASON });
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
  // the rollback made in before() raised a critical alert just now: the newest
  assert.equal(await rows.count(), want.length + 1);
  const first = (await rows.nth(0).locator('td').allTextContents()).map((s) => s.trim());
  assert.equal(first[1], 'critical');
  assert.equal(first[2], 'experiment_rollback');
  assert.ok(first[3].includes(EXP.name), `rollback alert message: ${first[3]}`);
  for (let i = 0; i < want.length; i++) {
    const cells = (await rows.nth(i + 1).locator('td').allTextContents()).map((s) => s.trim());
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

test('the experiments view: header, per-variant numbers, weight chart, events', async () => {
  const section = page.locator('#experiments');
  assert.ok(await section.isVisible());
  assert.ok(await section.locator('.exp-empty').isHidden(), 'the "no experiments" note shows');
  const art = section.locator(`article[data-exp="${EXP.name}"]`);
  assert.equal(await art.count(), 1);
  const field = async (k) => (await art.locator(`[data-field="${k}"]`).textContent()).trim();
  assert.equal(await art.locator('h3').textContent(), EXP.name);
  assert.equal(await field('route'), EXP.route);
  assert.equal(await field('mode'), EXP.mode);
  assert.equal(await field('targets'), `${EXP.a} \u2192 ${EXP.b}`);
  // rolled back: status and B's weight at 0
  assert.equal(await art.getAttribute('data-status'), 'rolled_back');
  assert.equal(await field('status'), 'rolled back');
  assert.equal(Number(await art.getAttribute('data-weight')), 0);
  assert.equal(await field('weight'), fmtPct(0));

  // the seed's tagged records, per variant; the two differ, so a swap shows
  assert.ok(byVariant.A.requests > 0 && byVariant.B.requests > 0);
  assert.notEqual(fmtPct(byVariant.A.error_rate), fmtPct(byVariant.B.error_rate));
  assert.notEqual(fmtPct(byVariant.A.safety_rate), fmtPct(byVariant.B.safety_rate));
  for (const v of ['A', 'B']) {
    assert.equal((await art.locator(`thead th[data-variant="${v}"]`).textContent()).trim(), `${v}: ${EXP[v.toLowerCase()]}`);
    for (const [col, fmt] of Object.entries(VARIANT_COLS)) {
      const td = art.locator(`td[data-variant="${v}"][data-col="${col}"]`);
      assert.equal(await td.count(), 1, `${v} ${col}`);
      assert.equal((await td.textContent()).trim(), fmt(byVariant[v][col]), `${v} ${col}`);
    }
  }
  // no expert scores were imported: no expert rows
  assert.equal(await art.locator('td[data-col="accuracy_mean"]').count(), 0);

  // the events, newest first: the rollback, the two weights, the creation
  const want = [
    { kind: 'rollback', weight: 0, reason: ROLLBACK_REASON },
    ...[...WEIGHT_CHANGES].reverse().map((c) => ({ kind: 'weight', weight: c.weight, reason: c.reason })),
    { kind: 'created', weight: EXP.weight, reason: null },
  ];
  const rows = art.locator('.exp-events-table tbody tr');
  assert.equal(await rows.count(), want.length);
  for (let i = 0; i < want.length; i++) {
    const row = rows.nth(i);
    assert.equal(await row.getAttribute('data-kind'), want[i].kind, `event ${i}`);
    const cells = (await row.locator('td').allTextContents()).map((s) => s.trim());
    assert.equal(cells[1], want[i].kind);
    assert.equal(cells[2], fmtPct(want[i].weight), `event ${i} weight`);
    // the server may prefix how the change came (e.g. "manual: "); the text given must be there, as text
    if (want[i].reason) assert.ok(cells[3].includes(want[i].reason), `event ${i} reason: ${cells[3]}`);
    assert.equal(await row.locator('td b').count(), 0, 'a reason was inserted as HTML');
  }
  assert.match(await rows.nth(0).getAttribute('class'), /ev-rollback/);
  assert.equal(await art.locator('tr.ev-rollback').count(), 1);

  // the weight chart: a step per event (and one at now), the rollback marked
  const fig = art.locator('.exp-chart');
  const points = Number(await fig.getAttribute('data-points'));
  assert.ok(points >= want.length, `weight chart: ${points} points for ${want.length} events`);
  assert.equal(Number(await fig.getAttribute('data-rollbacks')), 1);
  assert.equal(await fig.locator('canvas').count(), 1, 'uPlot drew no weight chart');
});

test('screenshots', async () => {
  assert.ok(SHOT, 'HS_SCREENSHOT');
  await page.screenshot({ path: SHOT, fullPage: true });
  assert.ok(fs.statSync(SHOT).size > 10000);
  const shotExp = process.env.HS_SCREENSHOT_EXPERIMENTS;
  assert.ok(shotExp, 'HS_SCREENSHOT_EXPERIMENTS');
  await page.locator('#experiments').screenshot({ path: shotExp });
  assert.ok(fs.statSync(shotExp).size > 5000);
});

test('it refreshes by itself every 10 s', async () => {
  const t0 = Date.now();
  await page.waitForFunction(() => Number(document.body.dataset.refreshes || 0) >= 2, null, { timeout: 15000 });
  const dt = Date.now() - t0;
  assert.ok(dt < 14000, `second refresh after ${dt} ms`);
  assert.equal(await cardText('requests'), fmtInt(total.requests));
  // the experiments are refreshed in place: still one card, the same state
  const art = page.locator(`#experiments article[data-exp="${EXP.name}"]`);
  assert.equal(await art.count(), 1);
  assert.equal(await art.getAttribute('data-status'), 'rolled_back');
  assert.equal(await art.locator('.exp-chart canvas').count(), 1);
});

test('no experiments: the section says so; a server without the route: not available', async () => {
  for (const [answer, text] of [
    [{ status: 200, body: '{"object":"list","data":[]}' }, 'no experiments'],
    [{ status: 404, body: '{"error":{"message":"not found","type":"not_found_error"}}' }, 'not available on this server'],
  ]) {
    await page.route('**/api/experiments', (route) => route.fulfill({ ...answer, contentType: 'application/json' }));
    await page.reload({ waitUntil: 'load' });
    await page.waitForFunction(() => Number(document.body.dataset.refreshes || 0) >= 1, null, { timeout: 15000 });
    const note = page.locator('#experiments .exp-empty');
    assert.ok(await note.isVisible(), text);
    assert.equal((await note.textContent()).trim(), text);
    assert.equal(await page.locator('#experiments article').count(), 0);
    assert.equal(await page.locator('#status').getAttribute('data-state'), 'ok');
    await page.unroute('**/api/experiments');
  }
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
