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
 * refreshes (body data-refreshes). (issue 7) Each experiment is an
 * <article data-exp=NAME> with data-status and data-weight (B's raw weight),
 * its fields under [data-field], its metrics as td[data-variant][data-col],
 * its weight chart's point and rollback counts (data-points, data-rollbacks)
 * and its events as rows with data-kind. */
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
    for (const entry of exps.values()) {
      if (entry.chart) entry.chart.setSize({ width: chartWidth(entry.el.querySelector('.exp-chart .plot')), height: 200 });
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

  /* ---- experiments (issue 7) ---- */
  const STATUS_TEXT = { active: 'active', rolled_back: 'rolled back', promoted: 'promoted', stopped: 'stopped' };
  const EVENTS_SHOWN = 50;
  /* A metric row: key in variants.A/B, label, formatter, and a tooltip of the counts behind it. */
  const EXP_ROWS = [
    { col: 'requests', label: 'Requests', fmt: (v) => fmtInt(v.requests) },
    { col: 'error_rate', label: 'Error rate', fmt: (v) => fmtPct(v.error_rate), title: (v) => fmtInt(v.errors) + ' failed' },
    { col: 'p50_ms', label: 'Latency p50', fmt: (v) => fmtMs(v.p50_ms), title: (v) => fmtInt(v.n_latency) + ' timed' },
    { col: 'p95_ms', label: 'Latency p95', fmt: (v) => fmtMs(v.p95_ms), title: (v) => fmtInt(v.n_latency) + ' timed' },
    { col: 'p99_ms', label: 'Latency p99', fmt: (v) => fmtMs(v.p99_ms), title: (v) => fmtInt(v.n_latency) + ' timed' },
    { col: 'up_rate', label: 'Thumbs-up rate', fmt: (v) => fmtPct(v.up_rate),
      title: (v) => fmtInt(v.thumbs_up) + ' up, ' + fmtInt(v.thumbs_down) + ' down' },
    { col: 'safety_rate', label: 'Safety-flag rate', fmt: (v) => fmtPct(v.safety_rate),
      title: (v) => fmtInt(v.safety_flagged) + ' flagged' },
    { col: 'confidence_mean', label: 'Confidence', fmt: (v) => fmtNum(v.confidence_mean, 2),
      title: (v) => fmtInt(v.n_confidence) + ' with a confidence' },
    /* expert scores (hestia eval import): shown only when there are some */
    { col: 'accuracy_mean', label: 'Expert accuracy (1\u20135)', fmt: (v) => fmtNum(v.accuracy_mean, 2),
      title: (v) => fmtInt(v.n_scored) + ' scored', scored: true },
    { col: 'safety_score_mean', label: 'Expert safety (1\u20135)', fmt: (v) => fmtNum(v.safety_score_mean, 2),
      title: (v) => fmtInt(v.n_scored) + ' scored', scored: true },
  ];
  const exps = new Map(); /* name -> { el, chart, rollbacks (x of each rollback, for the draw hook) } */

  function node(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /* B's weight (%) as a step line: one point per event, at the weight it
   * left behind (an event without a weight keeps the one before), and one at
   * now with the current weight so that the last step reaches the present.
   * Rollbacks are a second, point-only series at the weight B had just
   * before (the top of the drop), and a dashed vertical line (drawHook). */
  function weightData(events, state, nowMs) {
    const xs = [];
    const ws = [];
    const marks = [];
    const rollbacks = [];
    let w = null;
    for (const ev of events) {
      if (!isNum(ev.ts_ms)) continue;
      const before = w;
      if (isNum(ev.weight_b)) w = ev.weight_b;
      const x = ev.ts_ms / 1000;
      xs.push(x);
      ws.push(w == null ? null : w * 100);
      if (ev.kind === 'rollback') {
        marks.push(before == null ? (w == null ? null : w * 100) : before * 100);
        rollbacks.push(x);
      } else {
        marks.push(null);
      }
    }
    const cur = isNum(get(state, 'weight_b')) ? state.weight_b : w;
    const now = nowMs / 1000;
    if (cur != null && (!xs.length || now > xs[xs.length - 1])) {
      xs.push(now);
      ws.push(cur * 100);
      marks.push(null);
    }
    return { data: [xs, ws, marks], rollbacks };
  }

  function drawRollbacks(entry) {
    return (u) => {
      const ctx = u.ctx;
      ctx.save();
      ctx.strokeStyle = '#b42318';
      ctx.lineWidth = 1.5 * (window.devicePixelRatio || 1);
      ctx.setLineDash([5, 4]);
      for (const x of entry.rollbacks) {
        const cx = u.valToPos(x, 'x', true);
        if (!(cx >= u.bbox.left && cx <= u.bbox.left + u.bbox.width)) continue;
        ctx.beginPath();
        ctx.moveTo(cx, u.bbox.top);
        ctx.lineTo(cx, u.bbox.top + u.bbox.height);
        ctx.stroke();
      }
      ctx.restore();
    };
  }

  function makeWeightChart(entry, el, data) {
    const P = window.uPlot.paths || {};
    const step = P.stepped ? P.stepped({ align: 1 }) : undefined;
    const opts = {
      width: chartWidth(el),
      height: 200,
      series: [
        { label: 'time' },
        { label: 'B weight %', stroke: '#2f5fd0', fill: 'rgba(47,95,208,0.12)', width: 2, paths: step,
          points: { show: true, size: 6 } },
        { label: 'rollback', stroke: '#b42318', fill: '#b42318', width: 0, paths: () => null,
          points: { show: true, size: 11, width: 2, fill: '#b42318' } },
      ],
      scales: { x: { time: true }, y: { range: [0, 100] } },
      axes: [{}, { size: 50, values: (u, vals) => vals.map((v) => v + '%') }],
      legend: { show: true },
      hooks: { draw: [drawRollbacks(entry)] },
    };
    return new window.uPlot(opts, data, el);
  }

  function makeExperiment(name) {
    const art = node('article', 'exp');
    art.dataset.exp = name;
    const head = node('div', 'exp-head');
    head.appendChild(node('h3', 'exp-name', name));
    const badge = node('span', 'badge');
    badge.dataset.field = 'status';
    head.appendChild(badge);
    const meta = node('span', 'exp-meta');
    const field = (label, key) => {
      const wrap = node('span', 'exp-field');
      wrap.appendChild(node('span', 'label', label));
      const v = node('span', 'v');
      v.dataset.field = key;
      wrap.appendChild(v);
      meta.appendChild(wrap);
    };
    field('route', 'route');
    field('mode', 'mode');
    field('A \u2192 B', 'targets');
    head.appendChild(meta);
    const wt = node('span', 'exp-weight');
    wt.appendChild(node('span', 'label', 'B weight'));
    const wv = node('strong');
    wv.dataset.field = 'weight';
    wt.appendChild(wv);
    head.appendChild(wt);
    art.appendChild(head);
    const counters = node('div', 'exp-counters');
    counters.dataset.field = 'counters';
    art.appendChild(counters);

    const body = node('div', 'exp-body');
    const fig = node('figure', 'chart exp-chart');
    fig.appendChild(node('figcaption', null, 'B\u2019s weight over time (%)'));
    fig.appendChild(node('div', 'plot'));
    body.appendChild(fig);
    const mt = node('div', 'exp-metrics');
    const table = node('table', 'exp-table');
    const thead = node('thead');
    const hr = node('tr');
    hr.appendChild(node('th', null, 'Variant (all records)'));
    for (const v of ['A', 'B']) {
      const th = node('th', 'num');
      th.dataset.variant = v;
      hr.appendChild(th);
    }
    thead.appendChild(hr);
    table.appendChild(thead);
    table.appendChild(node('tbody'));
    mt.appendChild(table);
    body.appendChild(mt);
    art.appendChild(body);

    const evs = node('div', 'exp-events');
    evs.appendChild(node('h4', null, 'Events'));
    const et = node('table', 'exp-events-table');
    const eh = node('thead');
    const ehr = node('tr');
    for (const [t, c] of [['Time'], ['Kind'], ['B weight', 'num'], ['Reason']]) ehr.appendChild(node('th', c, t));
    eh.appendChild(ehr);
    et.appendChild(eh);
    et.appendChild(node('tbody'));
    evs.appendChild(et);
    art.appendChild(evs);
    return { el: art, chart: null, rollbacks: [] };
  }

  function setField(art, key, text) {
    const e = art.querySelector('[data-field="' + key + '"]');
    if (e) e.textContent = text;
    return e;
  }

  function fillExperiment(entry, x, nowMs) {
    const art = entry.el;
    const def = x.definition || {};
    const st = x.state || {};
    const status = st.status == null ? '' : String(st.status);
    art.dataset.status = status;
    art.dataset.weight = isNum(st.weight_b) ? String(st.weight_b) : '';
    const badge = setField(art, 'status', STATUS_TEXT[status] || status || DASH);
    badge.className = 'badge badge-' + (STATUS_TEXT[status] ? status : 'unknown');
    setField(art, 'route', def.route == null ? DASH : String(def.route));
    setField(art, 'mode', def.mode == null ? DASH : String(def.mode));
    setField(art, 'targets', String(def.a == null ? DASH : def.a) + ' \u2192 ' + String(def.b == null ? DASH : def.b));
    setField(art, 'weight', fmtPct(st.weight_b));
    const c = x.counters || {};
    const bits = ['since start: A ' + fmtInt(c.requests_a), 'B ' + fmtInt(c.requests_b),
      'fallbacks ' + fmtInt(c.fallbacks)];
    if (def.mode === 'shadow') {
      bits.push('shadow done ' + fmtInt(c.shadow_done), 'failed ' + fmtInt(c.shadow_failed),
        'dropped ' + fmtInt(c.shadow_dropped));
    }
    setField(art, 'counters', bits.join(' \u00b7 '));

    /* metrics, A against B */
    const va = get(x, 'variants', 'A') || {};
    const vb = get(x, 'variants', 'B') || {};
    art.querySelector('thead th[data-variant="A"]').textContent = 'A: ' + String(def.a == null ? DASH : def.a);
    art.querySelector('thead th[data-variant="B"]').textContent = 'B: ' + String(def.b == null ? DASH : def.b);
    const scored = (isNum(va.n_scored) && va.n_scored > 0) || (isNum(vb.n_scored) && vb.n_scored > 0);
    const tbody = art.querySelector('.exp-table tbody');
    tbody.replaceChildren();
    for (const row of EXP_ROWS) {
      if (row.scored && !scored) continue;
      const tr = document.createElement('tr');
      tr.dataset.col = row.col;
      cell(tr, row.label);
      for (const [name, v] of [['A', va], ['B', vb]]) {
        const td = cell(tr, row.fmt(v), 'num');
        td.dataset.variant = name;
        td.dataset.col = row.col;
        if (row.title) td.title = row.title(v);
      }
      tbody.appendChild(tr);
    }

    /* the events, newest first; rollbacks stand out */
    const events = Array.isArray(x.events) ? x.events : [];
    const eb = art.querySelector('.exp-events-table tbody');
    eb.replaceChildren();
    if (!events.length) emptyRow(eb, 4, 'no events');
    const shown = events.slice(-EVENTS_SHOWN).reverse();
    for (const ev of shown) {
      const tr = document.createElement('tr');
      const kind = ev.kind == null ? '' : String(ev.kind);
      tr.dataset.kind = kind;
      if (kind === 'rollback') tr.className = 'ev-rollback';
      cell(tr, fmtTime(ev.ts_ms, true));
      cell(tr, kind, 'ev-kind');
      cell(tr, fmtPct(ev.weight_b), 'num');
      cell(tr, ev.reason == null ? '' : String(ev.reason), 'ev-reason');
      eb.appendChild(tr);
    }
    if (events.length > shown.length) emptyRow(eb, 4, (events.length - shown.length) + ' older events not shown');

    /* the weight chart */
    const w = weightData(events, st, nowMs);
    entry.rollbacks = w.rollbacks;
    const fig = art.querySelector('.exp-chart');
    fig.dataset.points = String(w.data[1].filter((v) => v != null).length);
    fig.dataset.rollbacks = String(w.rollbacks.length);
    fig.dataset.events = String(events.length);
    if (!window.uPlot) return;
    if (entry.chart) entry.chart.setData(w.data);
    else entry.chart = makeWeightChart(entry, fig.querySelector('.plot'), w.data);
  }

  function fillExperiments(ex) {
    const section = document.getElementById('experiments');
    const note = section.querySelector('.exp-empty');
    const box = section.querySelector('.exp-list');
    const list = ex && ex.data && Array.isArray(ex.data.data) ? ex.data.data : [];
    const names = new Set(list.map((x) => String(x.name)));
    for (const [name, entry] of exps) {
      if (names.has(name)) continue;
      if (entry.chart) entry.chart.destroy();
      entry.el.remove();
      exps.delete(name);
    }
    section.dataset.count = String(list.length);
    note.hidden = list.length > 0;
    note.textContent = !ex || ex.missing ? 'not available on this server' : 'no experiments';
    const now = Date.now();
    for (const x of list) {
      const name = String(x.name);
      let entry = exps.get(name);
      if (!entry) {
        entry = makeExperiment(name);
        exps.set(name, entry);
      }
      box.appendChild(entry.el); /* (re)appended: the page keeps the server's order */
      fillExperiment(entry, x, now);
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
    const names = ['timeseries', 'agents', 'metrics', 'alerts', 'drift', 'experiments'];
    const paths = ['/api/timeseries' + q + '&bucket=' + BUCKET_S, '/api/agents' + q, '/api/metrics', '/api/alerts', '/api/drift',
      '/api/experiments'];
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
      const parts = [fillCards, fillDrift, fillLive, fillCharts, fillAlerts, fillAgents, fillExperiments];
      const args = [r.timeseries, r.drift, r.metrics, r.timeseries, r.alerts, r.agents, r.experiments];
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
  /* .charts spans the page's width as the experiments do: one observer resizes both */
  if (window.ResizeObserver) new ResizeObserver(resizeCharts).observe(document.querySelector('.charts'));
  refresh();
})();
