// Recur's dashboard: polls the coordinator's api/status (typed JSON, see
// internal/dashboard/status.go) and draws it. Hand-written, no libraries:
// the curves are SVG built here.
'use strict';
(function () {
  const SVG = 'http://www.w3.org/2000/svg'; // the SVG namespace, not a fetch
  const POLL_MS = 1500, ENDED_MS = 5000, RETRY_MS = 3000;
  const $ = (id) => document.getElementById(id);

  // ---- formatting ----
  function num(x, digits) {
    if (x === undefined || x === null || !isFinite(x)) return '–';
    const a = Math.abs(x);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return x.toExponential(2);
    return x.toLocaleString('en-US', { maximumSignificantDigits: digits || 4 });
  }
  function int(x) { return isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–'; }
  function dur(s) {
    if (s === undefined || s === null || !isFinite(s)) return '–';
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h > 0) return h + 'h' + String(m).padStart(2, '0') + 'm';
    if (m > 0) return m + 'm' + String(sec).padStart(2, '0') + 's';
    return sec + 's';
  }
  function ms(s) { return isFinite(s) && s > 0 ? (s * 1000).toFixed(s < 0.1 ? 1 : 0) + ' ms' : '–'; }
  function clock(t) { const d = new Date(t); return isNaN(d) ? '' : d.toLocaleTimeString('en-GB'); }
  function text(id, v) { const e = $(id); if (e.textContent !== v) e.textContent = v; }

  // ---- SVG charts ----
  function svgEl(tag, attrs, parent) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  // ticks returns about n round values covering [lo, hi] and their spacing.
  function ticks(lo, hi, n, integer) {
    let step = (hi - lo) / Math.max(1, n);
    const p = Math.pow(10, Math.floor(Math.log10(step)));
    const f = step / p;
    step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
    if (integer) step = Math.max(1, Math.round(step));
    const out = [];
    for (let i = Math.ceil(lo / step); i * step <= hi + step * 1e-9; i++) out.push(i * step);
    return { values: out, step: step };
  }
  // tickLabel writes v with as many digits as ticks step apart need.
  function tickLabel(v, step) {
    const a = Math.abs(v);
    if (a < step * 1e-6) return '0';
    if (a >= 1e6 || a < 1e-4) return v.toExponential(Math.max(0, Math.min(6, Math.ceil(Math.log10(a) - Math.log10(step) - 1e-9))));
    const d = Math.max(0, Math.min(8, Math.ceil(-Math.log10(step) - 1e-9)));
    return v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
  }
  // chart draws series ({name, cls, points, band, dots}) into svg: steps
  // on x, values on y (from 0 when zero is set). points are
  // [step, mean, min, max].
  function chart(svg, series, zero) {
    const W = svg.clientWidth || 640, H = svg.clientHeight || 240;
    const m = { l: 58, r: 14, t: 10, b: 26 };
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    let total = 0, x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const s of series) {
      svg.setAttribute('data-' + s.name + '-points', s.points.length);
      total += s.points.length;
      for (const p of s.points) {
        x0 = Math.min(x0, p[0]); x1 = Math.max(x1, p[0]);
        y0 = Math.min(y0, s.band ? p[2] : p[1]); y1 = Math.max(y1, s.band ? p[3] : p[1]);
      }
    }
    svg.setAttribute('data-points', total);
    if (total === 0) {
      svgEl('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, svg).textContent = 'no data yet';
      return;
    }
    if (x1 - x0 < 1) { x1 = x0 + 1; }
    if (zero) { y0 = Math.min(0, y0); y1 = Math.max(0, y1); }
    if (y1 - y0 < 1e-12) { const d = Math.abs(y0) * 0.05 || 1; y0 -= d; y1 += d; }
    const pad = (y1 - y0) * 0.05; y1 += pad;
    if (!zero || y0 < 0) y0 -= pad;
    const X = (x) => m.l + (x - x0) / (x1 - x0) * (W - m.l - m.r);
    const Y = (y) => H - m.b - (y - y0) / (y1 - y0) * (H - m.t - m.b);
    const yt = ticks(y0, y1, Math.max(2, Math.min(5, Math.floor(H / 45))));
    for (const v of yt.values) {
      svgEl('line', { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v), class: 'grid' }, svg);
      svgEl('text', { x: m.l - 6, y: Y(v) + 4, 'text-anchor': 'end' }, svg).textContent = tickLabel(v, yt.step);
    }
    for (const v of ticks(x0, x1, Math.max(2, Math.floor(W / 110)), true).values) {
      svgEl('line', { x1: X(v), x2: X(v), y1: H - m.b, y2: H - m.b + 4, class: 'axis' }, svg);
      svgEl('text', { x: X(v), y: H - m.b + 16, 'text-anchor': 'middle' }, svg).textContent = int(v);
    }
    svgEl('line', { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, class: 'axis' }, svg);
    svgEl('line', { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b, class: 'axis' }, svg);
    for (const s of series) {
      if (s.points.length === 0) continue;
      const pts = s.points;
      if (s.band && pts.some((p) => p[2] !== p[3])) {
        const up = pts.map((p) => X(p[0]).toFixed(1) + ',' + Y(p[3]).toFixed(1));
        const down = pts.slice().reverse().map((p) => X(p[0]).toFixed(1) + ',' + Y(p[2]).toFixed(1));
        svgEl('polygon', { points: up.concat(down).join(' '), class: 'band ' + s.cls }, svg);
      }
      svgEl('polyline', {
        points: pts.map((p) => X(p[0]).toFixed(1) + ',' + Y(p[1]).toFixed(1)).join(' '),
        class: s.cls, 'data-series': s.name, 'data-points': pts.length,
      }, svg);
      if (s.dots) {
        const g = svgEl('g', { 'data-series': s.name }, svg);
        for (const p of pts) svgEl('circle', { cx: X(p[0]).toFixed(1), cy: Y(p[1]).toFixed(1), r: 3, class: s.cls }, g);
      }
    }
  }

  // ---- tables (built as DOM nodes: the page's policy allows no inline style or markup) ----
  function node(tag, cls, content) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (content instanceof Node) e.appendChild(content);
    else if (content !== undefined) e.textContent = content;
    return e;
  }
  const td = (v, cls) => node('td', cls, v);
  function rows(id, items, cells) {
    const body = $(id);
    body.setAttribute('data-count', items.length);
    const frag = document.createDocumentFragment();
    for (const it of items) {
      const tr = node('tr');
      for (const c of cells(it)) tr.appendChild(c);
      frag.appendChild(tr);
    }
    body.replaceChildren(frag);
  }

  function members(list) {
    let most = 0;
    for (const w of list) most = Math.max(most, w.step_seconds + w.wait_seconds);
    rows('members', list, (w) => {
      const compute = Math.max(0, w.step_seconds - w.allreduce_seconds);
      const split = node('div', 'split');
      for (const [cls, x] of [['compute', compute], ['ring', w.allreduce_seconds], ['wait', w.wait_seconds]]) {
        const part = node('span', cls);
        part.style.width = (most > 0 ? (100 * x / most).toFixed(1) : 0) + '%';
        split.appendChild(part);
      }
      return [td(w.id), td(w.rank >= 0 ? String(w.rank) : '–'), td(w.step >= 0 ? int(w.step) : '–'),
        td(ms(w.step_seconds), 'num'), td(ms(compute), 'num'), td(ms(w.allreduce_seconds), 'num'), td(ms(w.wait_seconds), 'num'),
        td(w.steps > 0 ? split : '', 'time'), td(w.report_age_seconds >= 0 ? dur(w.report_age_seconds) + ' ago' : 'none yet', 'num')];
    });
  }

  // ---- the page ----
  function render(s) {
    const st = $('state');
    st.setAttribute('data-state', s.state);
    text('state', s.state);
    text('job', [s.task, s.job ? 'job ' + s.job.slice(0, 12) : '', s.coordinator_processes > 1 ? s.coordinator_processes + ' coordinator processes' : '']
      .filter(Boolean).join(' · '));
    text('updated', 'updated ' + clock(s.time));
    const msg = s.waiting ? 'waiting: ' + s.waiting : s.message || '';
    $('message').hidden = !msg;
    text('message', msg);

    text('step', int(s.step) + (s.total_steps ? ' / ' + int(s.total_steps) : ''));
    let frac = s.total_steps ? s.step / s.total_steps : 0;
    if (s.minutes) frac = Math.max(frac, s.elapsed_seconds / (s.minutes * 60));
    if (s.state === 'finished') frac = 1;
    $('progress').style.width = (100 * Math.min(1, frac)).toFixed(1) + '%';
    text('budget', [s.total_steps ? (100 * Math.min(1, frac)).toFixed(0) + '% of the budget' : 'no step budget',
      s.minutes ? 'time budget ' + num(s.minutes) + ' min' : ''].filter(Boolean).join(' · '));
    text('loss', s.step > 0 ? num(s.train_loss) : '–');
    text('loss-sub', s.step > 0 ? 'step ' + int(s.step) : '');
    text('val', s.val_loss !== undefined ? num(s.val_loss) : '–');
    text('val-sub', s.val_loss !== undefined ? 'step ' + int(s.val_step) + ' · best ' + num(s.best_val_loss) : 'none yet');
    text('tps', s.tokens_per_second > 0 ? int(s.tokens_per_second) : '–');
    text('tps-sub', s.steps_per_second > 0 ? num(s.steps_per_second, 3) + ' steps/s' : '');
    text('eta', s.eta_seconds !== undefined ? dur(s.eta_seconds) : s.state === 'running' ? '–' : s.state);
    text('elapsed', 'trained ' + dur(s.elapsed_seconds));
    text('lr', s.step > 0 ? num(s.lr, 3) : '–');
    text('gen', s.generation ? String(s.generation) : '–');
    text('gen-sub', s.world + ' in the ring · ' + s.workers + ' known');
    const last = s.checkpoints.length ? s.checkpoints[s.checkpoints.length - 1] : null;
    text('ckpt', int(s.checkpoints_total));
    text('ckpt-sub', (last ? 'newest: step ' + int(last.step) : 'none yet') + (s.checkpoint_failures ? ' · ' + s.checkpoint_failures + ' failed' : ''));

    chart($('loss-chart'), [
      { name: 'train', cls: 'train', points: s.series.train, band: true },
      { name: 'val', cls: 'val', points: s.series.val, dots: true },
    ], false);
    chart($('tps-chart'), [{ name: 'tps', cls: 'tps', points: s.series.tokens_per_second, band: true }], true);
    chart($('lr-chart'), [{ name: 'lr', cls: 'lr', points: s.series.lr }], true);

    members(s.members);
    rows('generations', s.generations.slice().reverse(), (g) =>
      [td(String(g.generation)), td(int(g.step)), td(String(g.members)), td(clock(g.time))]);
    text('gens-total', s.generations_total > s.generations.length ? 'newest ' + s.generations.length + ' of ' + s.generations_total : '');
    rows('checkpoints', s.checkpoints.slice().reverse(), (c) => [td(int(c.step)), td(clock(c.time))]);
    text('ckpts-total', s.checkpoints_total > s.checkpoints.length ? 'newest ' + s.checkpoints.length + ' of ' + s.checkpoints_total : '');
    const ev = $('events');
    ev.setAttribute('data-count', s.events.length);
    ev.replaceChildren(...s.events.slice().reverse().map((e) => {
      const li = node('li', e.kind);
      li.append(node('span', 't', clock(e.time)), node('span', 'kind', e.kind), e.text);
      return li;
    }));
  }

  let lastOK = null;
  function poll() {
    fetch('api/status', { cache: 'no-store' })
      .then((r) => { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })
      .then((s) => {
        lastOK = new Date();
        $('offline').hidden = true;
        render(s);
        const ended = s.state === 'finished' || s.state === 'diverged' || s.state === 'interrupted';
        setTimeout(poll, ended ? ENDED_MS : POLL_MS);
      })
      .catch((err) => {
        $('offline').hidden = false;
        text('offline', 'The coordinator does not answer (' + err.message + ')' +
          (lastOK ? '; showing what it said at ' + lastOK.toLocaleTimeString('en-GB') : '') + '. Retrying.');
        setTimeout(poll, RETRY_MS);
      });
  }
  poll();
})();
