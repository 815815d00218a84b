/* hestia dashboard: reads the server's /api routes every 10 s and fills the
 * page. No framework; uPlot (compiled into the binary with this file) draws
 * the charts. Everything is written with textContent, never as HTML, because
 * alert messages and agent names come from the store.
 *
 * Auth: the /api routes answer loopback clients freely and others only with
 * an admin key. On a 401 or 403 the page shows a key field; the key is kept
 * in sessionStorage (this tab only) and sent as "Authorization: Bearer".
 *
 * The DOM carries what a test needs to read: each card's shown text and its
 * raw value (data-value), each chart's count of drawn points (data-points),
 * and the sum of its first series (data-sum), and the number of finished
 * refreshes (body data-refreshes). */
'use strict';
(function () {
  const REFRESH_MS = 10000;
  const HOURS = 24;
  const BUCKET_S = 3600;
  const KEY_STORE = 'hestia.adminKey';
  const DASH = '\u2014';

  class AuthError extends Error {}

  /* ---- formatting (docs/dashboard.md states these rules) ---- */
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const fmtInt = (v) => (isNum(v) ? String(Math.round(v)) : DASH);
  const fmtMs = (v) => (isNum(v) ? Math.round(v) + ' ms' : DASH);
  const fmtPct = (v) => (isNum(v) ? (v * 100).toFixed(1) + '%' : DASH);
  const fmtNum = (v, d) => (isNum(v) ? v.toFixed(d) : DASH);
  const pad2 = (n) => String(n).padStart(2, '0');
  function fmtTime(ms, withDate) {
    if (!isNum(ms)) return DASH;
    const d = new Date(ms);
    const t = pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
    if (!withDate) return t;
    return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' + t;
  }
  const get = (o, ...path) => path.reduce((x, k) => (x == null ? undefined : x[k]), o);

  /* ---- data ---- */
  async function getJSON(path) {
    const headers = { Accept: 'application/json' };
    const key = sessionStorage.getItem(KEY_STORE);
    if (key) headers.Authorization = 'Bearer ' + key;
    const r = await fetch(path, { headers, cache: 'no-store' });
    if (r.status === 401 || r.status === 403) throw new AuthError(path + ': HTTP ' + r.status);
    if (r.status === 404) return { missing: true }; /* a route this server does not have */
    if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
    return { data: await r.json() };
  }

  /* ---- cards ---- */
  function setCard(name, text, raw, note, state) {
    const card = document.querySelector('[data-card="' + name + '"]');
    if (!card) return;
    card.querySelector('.value').textContent = text;
    card.dataset.value = raw == null ? '' : String(raw);
    if (note !== undefined) card.querySelector('.note').textContent = note;
    if (state !== undefined) card.dataset.state = state;
  }

  function fillCards(ts) {
    const t = ts && ts.data ? ts.data.totals || {} : {};
    const na = ts && ts.missing ? 'not available on this server' : undefined;
    setCard('requests', fmtInt(t.requests), t.requests, na);
    setCard('latency_p50', fmtMs(t.latency_p50), t.latency_p50, na);
    setCard('latency_p95', fmtMs(t.latency_p95), t.latency_p95, na);
    const rated = isNum(t.thumbs_up) && isNum(t.thumbs_down) ? t.thumbs_up + t.thumbs_down : null;
    setCard('satisfaction', fmtPct(t.satisfaction), t.satisfaction,
      na || (rated == null ? 'thumbs up / rated' : t.thumbs_up + ' up of ' + rated + ' rated'));
    setCard('error_rate', fmtPct(t.error_rate), t.error_rate,
      na || (isNum(t.errors) ? t.errors + ' failed' : 'failed / requests'));
    setCard('safety_rate', fmtPct(t.safety_rate), t.safety_rate,
      na || (isNum(t.safety_flagged) ? t.safety_flagged + ' flagged' : 'flagged / requests'));
  }

  function fillDrift(dr) {
    for (const kind of ['concept', 'data']) {
      const card = kind + '_drift';
      if (!dr || dr.missing) {
        setCard(card, DASH, null, 'not available on this server', '');
        continue;
      }
      const run = dr.data ? dr.data[kind] : null;
      if (!run) {
        setCard(card, DASH, null, 'no runs', '');
        continue;
      }
      const bits = [];
      if (isNum(run.score)) bits.push('score ' + fmtNum(run.score, 3));
      if (isNum(run.p_value)) bits.push('p ' + fmtNum(run.p_value, 3));
      bits.push(fmtTime(run.ts_ms, true).slice(5, 16));
      setCard(card, String(run.status), run.status, bits.join(' \u00b7 '), String(run.status));
    }
  }

  function fillLive(m) {
    const set = (k, v) => {
      const el = document.querySelector('[data-live="' + k + '"]');
      if (el) el.textContent = v;
    };
    const h = m && m.data ? m.data.hour : null;
    const b = m && m.data ? m.data.baseline : null;
    set('count', fmtInt(get(h, 'count')));
    set('p95', fmtMs(get(h, 'latency_ms', 'p95')));
    set('error_rate', fmtPct(get(h, 'error_rate')));
    set('down_rate', fmtPct(get(h, 'feedback', 'down_rate')));
    set('confidence', fmtNum(get(h, 'confidence', 'mean'), 2));
    set('baseline_p95', fmtMs(get(b, 'latency_ms', 'p95')));
  }

  /* ---- charts ---- */
  const charts = {};
  const pct = (v) => (isNum(v) ? v * 100 : null);
  const num = (v) => (isNum(v) ? v : null);
  const CHARTS = {
    requests: {
      ints: true, /* counts: no 1.5-request ticks */
      series: [
        { label: 'requests', stroke: '#2f5fd0', fill: 'rgba(47,95,208,0.25)', bars: true, pick: (p) => num(p.requests) },
        { label: 'errors', stroke: '#b42318', fill: 'rgba(180,35,24,0.35)', bars: true, pick: (p) => num(p.errors) },
      ],
    },
    latency: {
      series: [
        { label: 'p50 ms', stroke: '#2f5fd0', pick: (p) => num(p.latency_p50) },
        { label: 'p95 ms', stroke: '#b54708', pick: (p) => num(p.latency_p95) },
      ],
    },
    satisfaction: {
      range: [0, 100],
      series: [{ label: 'satisfaction %', stroke: '#1a7f4b', pick: (p) => pct(p.satisfaction) }],
    },
    error_rate: {
      range: [0, null],
      series: [
        { label: 'errors %', stroke: '#b42318', pick: (p) => pct(p.error_rate) },
        { label: 'safety flags %', stroke: '#7a5af8', pick: (p) => pct(p.safety_rate) },
      ],
    },
  };

  function chartWidth(el) {
    return Math.max(260, el.clientWidth || 400);
  }

  function makeChart(name, el, data) {
    const def = CHARTS[name];
    const bars = window.uPlot.paths && window.uPlot.paths.bars ? window.uPlot.paths.bars({ size: [0.7, 40] }) : null;
    const series = [{ label: 'time' }].concat(def.series.map((s) => ({
      label: s.label,
      stroke: s.stroke,
      fill: s.fill,
      width: 2,
      spanGaps: !s.bars,
      paths: s.bars && bars ? bars : undefined,
      points: { show: !s.bars, size: 5 },
    })));
    const y = def.range ? { range: (u, lo, hi) => [def.range[0], def.range[1] == null ? Math.max(hi, 1) : def.range[1]] } : { auto: true };
    const opts = {
      width: chartWidth(el),
      height: 220,
      series,
      scales: { x: { time: true }, y },
      axes: [{}, def.ints ? { size: 56, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 1e5, 1e6] } : { size: 56 }],
      legend: { show: true },
    };
    return new window.uPlot(opts, data, el);
  }

  function fillCharts(ts) {
    const points = ts && ts.data && Array.isArray(ts.data.points) ? ts.data.points : [];
    const xs = points.map((p) => p.t / 1000);
    for (const name of Object.keys(CHARTS)) {
      const fig = document.querySelector('[data-chart="' + name + '"]');
      const plot = fig.querySelector('.plot');
      const data = [xs].concat(CHARTS[name].series.map((s) => points.map(s.pick)));
      let drawn = 0;
      for (let i = 1; i < data.length; i++) drawn += data[i].filter((v) => v != null).length;
      fig.dataset.points = String(drawn);
      fig.dataset.sum = String(data[1].reduce((a, v) => a + (v == null ? 0 : v), 0));
      fig.dataset.buckets = String(xs.length);
      if (!window.uPlot) continue; /* the library failed to load: the counts still say what there is */
      if (charts[name]) charts[name].setData(data);
      else charts[name] = makeChart(name, plot, data);
    }
  }

  function resizeCharts() {
    for (const name of Object.keys(charts)) {
      const plot = document.querySelector('[data-chart="' + name + '"] .plot');
      charts[name].setSize({ width: chartWidth(plot), height: 220 });
    }
  }

  /* ---- tables ---- */
  function cell(tr, text, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function emptyRow(tbody, cols, text) {
    const tr = document.createElement('tr');
    tr.className = 'empty';
    const td = cell(tr, text);
    td.colSpan = cols;
    tbody.appendChild(tr);
  }

  function fillAlerts(al) {
    const tbody = document.querySelector('#alerts tbody');
    tbody.replaceChildren();
    if (!al || al.missing) return emptyRow(tbody, 5, 'not available on this server');
    const list = Array.isArray(al.data && al.data.data) ? al.data.data.slice(0, 20) : [];
    if (!list.length) return emptyRow(tbody, 5, 'no alerts');
    for (const a of list) {
      const tr = document.createElement('tr');
      tr.dataset.type = String(a.type);
      tr.dataset.severity = String(a.severity);
      cell(tr, fmtTime(a.ts_ms, true));
      cell(tr, String(a.severity), 'sev sev-' + String(a.severity));
      cell(tr, String(a.type));
      cell(tr, String(a.message));
      const c = cell(tr, fmtInt(a.count), 'num');
      if (isNum(a.count) && a.count > 1 && isNum(a.first_ms)) c.title = 'since ' + fmtTime(a.first_ms, true);
      tbody.appendChild(tr);
    }
  }

  function fillAgents(ag) {
    const tbody = document.querySelector('#agents tbody');
    tbody.replaceChildren();
    if (!ag || ag.missing) return emptyRow(tbody, 8, 'not available on this server');
    const list = Array.isArray(ag.data && ag.data.agents) ? ag.data.agents : [];
    if (!list.length) return emptyRow(tbody, 8, 'no requests');
    for (const a of list) {
      const tr = document.createElement('tr');
      tr.dataset.agent = a.agent == null ? '' : String(a.agent);
      cell(tr, a.agent == null ? '(no agent)' : String(a.agent));
      cell(tr, fmtInt(a.requests), 'num').dataset.col = 'requests';
      cell(tr, fmtPct(a.error_rate), 'num').dataset.col = 'error_rate';
      cell(tr, fmtMs(a.latency_p50), 'num').dataset.col = 'latency_p50';
      cell(tr, fmtMs(a.latency_p95), 'num').dataset.col = 'latency_p95';
      cell(tr, fmtPct(a.satisfaction), 'num').dataset.col = 'satisfaction';
      cell(tr, fmtPct(a.safety_rate), 'num').dataset.col = 'safety_rate';
      cell(tr, fmtNum(a.confidence_mean, 2), 'num').dataset.col = 'confidence_mean';
      tbody.appendChild(tr);
    }
  }

  /* ---- refresh loop ---- */
  const status = document.getElementById('status');
  const keyform = document.getElementById('keyform');
  let refreshes = 0;
  let timer = null;

  function setStatus(text, state) {
    status.textContent = text;
    status.dataset.state = state;
  }

  async function refresh() {
    clearTimeout(timer);
    const q = '?hours=' + HOURS;
    const names = ['timeseries', 'agents', 'metrics', 'alerts', 'drift'];
    const paths = ['/api/timeseries' + q + '&bucket=' + BUCKET_S, '/api/agents' + q, '/api/metrics', '/api/alerts', '/api/drift'];
    const got = await Promise.allSettled(paths.map(getJSON));
    const r = {};
    const errors = [];
    let auth = false;
    got.forEach((g, i) => {
      if (g.status === 'fulfilled') r[names[i]] = g.value;
      else if (g.reason instanceof AuthError) auth = true;
      else errors.push(g.reason && g.reason.message ? g.reason.message : String(g.reason));
    });
    if (auth) {
      keyform.hidden = false;
      const had = sessionStorage.getItem(KEY_STORE);
      setStatus(had ? 'the admin key was refused' : 'an admin key is needed', 'error');
    } else {
      keyform.hidden = true;
      const parts = [fillCards, fillDrift, fillLive, fillCharts, fillAlerts, fillAgents];
      const args = [r.timeseries, r.drift, r.metrics, r.timeseries, r.alerts, r.agents];
      parts.forEach((fn, i) => {
        try {
          fn(args[i]);
        } catch (e) {
          errors.push(fn.name + ': ' + e.message);
        }
      });
      const when = 'updated ' + fmtTime(Date.now());
      if (errors.length) setStatus(when + ' \u00b7 ' + errors.join('; '), 'error');
      else setStatus(when, 'ok');
      refreshes++;
      document.body.dataset.refreshes = String(refreshes);
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  keyform.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = document.getElementById('key').value.trim();
    if (v) sessionStorage.setItem(KEY_STORE, v);
    else sessionStorage.removeItem(KEY_STORE);
    refresh();
  });
  if (window.ResizeObserver) new ResizeObserver(resizeCharts).observe(document.querySelector('.charts'));
  refresh();
})();
