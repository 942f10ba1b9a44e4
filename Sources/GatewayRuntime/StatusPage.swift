/// The admin listener's `GET /`: a live status page in the spirit of varnishstat's screen and the
/// NGINX Plus dashboard. One self-contained document (inline CSS and JS, no URL outside this
/// listener, so it works offline and behind any firewall) that polls `/stats` every second and
/// computes rates, ratios and latency percentiles from the deltas between two polls.
///
/// A string literal rather than a SwiftPM resource: resources need Foundation's `Bundle` and a file
/// next to the binary at run time; a literal is compiled in and cannot go missing.
enum StatusPage {
    /// Allows inline script and style and same-origin fetches only: the page can load nothing else.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:"

    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CacheGateway status</title>
<style>
:root {
  --bg: #f6f7f9; --card: #ffffff; --ink: #1f2933; --muted: #66788a; --line: #e3e8ee;
  --accent: #2f7d8c; --accent-soft: #d7ecef; --good: #2e8b57; --warn: #c98a1b; --bad: #c0392b;
  --mono: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
header { display: flex; align-items: baseline; gap: 16px; padding: 14px 24px; background: var(--card);
  border-bottom: 1px solid var(--line); }
header h1 { font-size: 18px; margin: 0; font-weight: 600; letter-spacing: .2px; }
header .meta { color: var(--muted); font-size: 13px; }
header .spacer { flex: 1; }
.pill { font-size: 12px; padding: 2px 10px; border-radius: 999px; background: var(--accent-soft); color: var(--accent); }
.pill.stale { background: #f8e1de; color: var(--bad); }
main { padding: 18px 24px 28px; max-width: 1400px; }
main.stale > :not(#banner) { opacity: .5; transition: opacity .3s; }
#banner { display: none; margin: 0 0 14px; padding: 8px 12px; border-radius: 6px; background: #fbeae7;
  color: var(--bad); border: 1px solid #efc5bf; }
#banner.on { display: block; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 12px; margin-bottom: 18px; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-height: 86px; }
.tile .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .6px; }
.tile .value { font-size: 24px; font-weight: 600; font-variant-numeric: tabular-nums; margin-top: 2px; }
.tile .sub { color: var(--muted); font-size: 12px; font-variant-numeric: tabular-nums; }
.tile canvas { width: 100%; height: 28px; display: block; margin-top: 4px; }
.ok { color: var(--good); } .warn { color: var(--warn); } .bad { color: var(--bad); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; margin-bottom: 18px; }
section h2 { font-size: 13px; margin: 0; padding: 10px 14px; border-bottom: 1px solid var(--line);
  text-transform: uppercase; letter-spacing: .6px; color: var(--muted); font-weight: 600; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 14px; text-align: right; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { font-size: 12px; color: var(--muted); font-weight: 500; }
th:first-child, td:first-child, td.name, th.name { text-align: left; }
td.name { font-family: var(--mono); font-size: 13px; }
td canvas { width: 120px; height: 22px; vertical-align: middle; }
tr:last-child td { border-bottom: none; }
td.empty { text-align: center; color: var(--muted); padding: 18px; }
.bar { display: inline-block; width: 54px; height: 6px; background: var(--line); border-radius: 3px; margin-left: 8px;
  vertical-align: middle; overflow: hidden; }
.bar i { display: block; height: 100%; background: var(--accent); }
.cols { display: grid; grid-template-columns: 2fr 1fr; gap: 18px; }
.cols section { margin-bottom: 0; }
footer { color: var(--muted); font-size: 12px; padding: 0 24px 18px; }
</style>
</head>
<body>
<header>
  <h1>CacheGateway</h1>
  <span class="meta" id="version">version –</span>
  <span class="meta" id="uptime">up –</span>
  <span class="spacer"></span>
  <span class="meta" id="clock"></span>
  <span class="pill" id="live">connecting…</span>
</header>
<main id="main">
  <div id="banner"></div>
  <div class="tiles">
    <div class="tile"><div class="label">Requests</div><div class="value" id="t-rate">–</div>
      <div class="sub" id="t-rate-sub">req/s, all routes</div><canvas id="s-rate"></canvas></div>
    <div class="tile"><div class="label">Hit ratio</div><div class="value" id="t-hit">–</div>
      <div class="sub" id="t-hit-sub">last second</div><canvas id="s-hit"></canvas></div>
    <div class="tile"><div class="label">Latency p99</div><div class="value" id="t-p99">–</div>
      <div class="sub" id="t-p50">p50 –</div><canvas id="s-p99"></canvas></div>
    <div class="tile"><div class="label">In-flight keys</div><div class="value" id="t-flight">–</div>
      <div class="sub" id="t-flight-sub">uncacheable –</div><canvas id="s-flight"></canvas></div>
    <div class="tile"><div class="label">Connections</div><div class="value" id="t-conn">–</div>
      <div class="sub">open client connections</div><canvas id="s-conn"></canvas></div>
    <div class="tile"><div class="label">Upstream</div><div class="value" id="t-up">–</div>
      <div class="sub" id="t-up-sub">in flight / queued</div></div>
    <div class="tile"><div class="label">Redis</div><div class="value" id="t-redis">–</div>
      <div class="sub" id="t-redis-sub">event loops connected</div></div>
    <div class="tile"><div class="label">Local tier</div><div class="value" id="t-local">–</div>
      <div class="sub" id="t-local-sub">entries</div></div>
    <div class="tile"><div class="label">Invalidation stream</div><div class="value" id="t-stream">–</div>
      <div class="sub" id="t-stream-sub"></div></div>
    <div class="tile"><div class="label">Last reload</div><div class="value" id="t-reload">–</div>
      <div class="sub" id="t-reload-sub"></div></div>
  </div>
  <section>
    <h2>Routes</h2>
    <table>
      <thead><tr><th>route</th><th>req/s</th><th></th><th>hit ratio</th><th>stale</th><th>collapsed</th>
        <th>p50</th><th>p90</th><th>p99</th><th>requests</th><th>errors</th></tr></thead>
      <tbody id="routes"><tr><td class="empty" colspan="11">no data yet</td></tr></tbody>
    </table>
  </section>
  <div class="cols">
    <section>
      <h2>Counters</h2>
      <table><thead><tr><th>counter</th><th>total</th><th>per second</th><th class="name">counter</th><th>total</th><th>per second</th></tr></thead>
        <tbody id="totals"><tr><td class="empty" colspan="6">no data yet</td></tr></tbody></table>
    </section>
    <section>
      <h2>Outcomes, last second</h2>
      <table><tbody id="mix"><tr><td class="empty">no data yet</td></tr></tbody></table>
    </section>
  </div>
</main>
<footer>Polls <code>/stats</code> on this admin listener every second; rates and percentiles are over the last poll interval.</footer>
<script>
"use strict";
const HISTORY = 90;
const OUTCOMES = ["hit", "local", "miss", "stale", "collapsed", "revalidated", "bypass", "error", "rejected"];
let previous = null, lastOk = 0, failures = 0;
const history = { rate: [], hit: [], p99: [], flight: [], conn: [] };
const routeHistory = new Map();

const $ = (id) => document.getElementById(id);
function push(list, value) { list.push(value); if (list.length > HISTORY) list.shift(); }
function num(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return Math.abs(n) >= 100 || Number.isInteger(n) ? Math.round(n).toLocaleString("en") : n.toFixed(1);
}
function pct(part, whole) { return whole > 0 ? (100 * part / whole) : null; }
function pctText(p) { return p === null ? "–" : (p >= 99.95 || p === 0 ? p.toFixed(0) : p.toFixed(1)) + " %"; }
function ms(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (typeof seconds === "string") return seconds;
  const m = seconds * 1000;
  return m < 1 ? m.toFixed(2) + " ms" : m < 10 ? m.toFixed(1) + " ms" : Math.round(m) + " ms";
}
function duration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
}
function ago(timeMs, nowMs) { return timeMs ? duration((nowMs - timeMs) / 1000) + " ago" : "–"; }
function esc(text) { return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }
function sum(o) { let t = 0; for (const k in o) t += o[k] || 0; return t; }
function delta(now, before) { const d = {}; for (const k in now) d[k] = Math.max(0, (now[k] || 0) - ((before && before[k]) || 0)); return d; }

// Percentile from the cumulative histogram's growth since the last poll, interpolated inside the bucket.
function quantile(q, latency, before) {
  if (!latency || !latency.le_seconds) return null;
  const le = latency.le_seconds, counts = latency.counts, prior = before ? before.counts : null;
  const total = latency.count - (before ? before.count : 0);
  if (!(total > 0)) return null;
  const target = q * total;
  let lowerCount = 0;
  for (let i = 0; i < le.length; i++) {
    const c = counts[i] - (prior ? prior[i] : 0);
    if (c >= target) {
      const lower = i === 0 ? 0 : le[i - 1], inBucket = c - lowerCount;
      return inBucket > 0 ? lower + (le[i] - lower) * ((target - lowerCount) / inBucket) : le[i];
    }
    lowerCount = c;
  }
  return "> " + ms(le[le.length - 1]);
}

function mergedLatency(routes) {
  let merged = null;
  for (const r of routes) {
    const l = r.latency;
    if (!l || !l.le_seconds) continue;
    if (!merged) merged = { le_seconds: l.le_seconds, counts: l.counts.slice(), count: l.count, sum_seconds: l.sum_seconds };
    else if (merged.le_seconds.length === l.le_seconds.length) {
      for (let i = 0; i < l.counts.length; i++) merged.counts[i] += l.counts[i];
      merged.count += l.count; merged.sum_seconds += l.sum_seconds;
    }
  }
  return merged;
}

function spark(canvas, values, color, fixedMax) {
  if (!canvas) return;
  const ratio = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * ratio)) { canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio); }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  const points = values.filter((v) => typeof v === "number");
  if (points.length < 2) return;
  const max = fixedMax || Math.max(...points) || 1;
  // Newest point at the right edge; a short history is spread over at least a third of the width.
  const step = w / (Math.max(values.length, HISTORY / 3) - 1), start = w - step * (values.length - 1);
  g.beginPath();
  let first = true;
  values.forEach((v, i) => {
    if (typeof v !== "number") { first = true; return; }
    const x = start + i * step, y = h - 2 - (h - 4) * Math.min(v, max) / max;
    if (first) { g.moveTo(x, y); first = false; } else g.lineTo(x, y);
  });
  g.strokeStyle = color; g.lineWidth = 1.5; g.stroke();
  g.lineTo(w, h); g.lineTo(start, h); g.closePath();
  g.globalAlpha = 0.12; g.fillStyle = color; g.fill(); g.globalAlpha = 1;
}

function routeRow(r, before, dt) {
  const now = r.requests || {}, d = delta(now, before ? before.requests : null);
  const total = sum(now), dTotal = before ? sum(d) : null;
  const served = (x) => (x.hit || 0) + (x.local || 0) + (x.stale || 0);
  const cacheable = (x) => served(x) + (x.miss || 0) + (x.collapsed || 0) + (x.revalidated || 0);
  const rate = before && dt > 0 ? dTotal / dt : null;
  const window = before ? d : now;  // before the second poll: since start
  const hit = pct(served(window), cacheable(window)), stale = pct(window.stale || 0, sum(window)),
    collapsed = pct(window.collapsed || 0, sum(window));
  let h = routeHistory.get(r.name);
  if (!h) { h = []; routeHistory.set(r.name, h); }
  if (rate !== null) push(h, rate);
  const latencyBefore = before ? before.latency : null;
  const p = (q) => before ? quantile(q, r.latency, latencyBefore) : null;
  const errors = (now.error || 0) + (now.rejected || 0);
  const bar = (v) => v === null ? "" : `<span class="bar"><i style="width:${Math.min(100, v).toFixed(0)}%"></i></span>`;
  // "-" is the metrics' label for the gateway's own answers and refusals (no route).
  const label = r.name === "-" ? `<span title="answers no route took: refusals, /healthz, /readyz">(no route)</span>` : esc(r.name);
  return `<tr><td class="name">${label}</td><td>${rate === null ? "…" : num(rate)}</td>` +
    `<td><canvas data-route="${esc(r.name)}"></canvas></td>` +
    `<td>${pctText(hit)}${bar(hit)}</td><td>${pctText(stale)}</td><td>${pctText(collapsed)}</td>` +
    `<td>${ms(p(0.5))}</td><td>${ms(p(0.9))}</td><td>${ms(p(0.99))}</td>` +
    `<td>${num(total)}</td><td class="${errors ? "bad" : ""}">${num(errors)}</td></tr>`;
}

function render(s) {
  const before = previous, dt = before ? (s.time_ms - before.time_ms) / 1000 : 0;
  $("version").textContent = "version " + (s.version || "–");
  $("uptime").textContent = "up " + duration(s.uptime_seconds);
  $("clock").textContent = new Date(s.time_ms).toLocaleTimeString("en-GB");

  const routes = s.routes || [];
  const beforeRoutes = new Map((before ? before.routes || [] : []).map((r) => [r.name, r]));
  const all = { requests: {} }, allBefore = { requests: {} };
  for (const r of routes) {
    for (const k in r.requests) all.requests[k] = (all.requests[k] || 0) + r.requests[k];
    const b = beforeRoutes.get(r.name);
    if (b) for (const k in b.requests) allBefore.requests[k] = (allBefore.requests[k] || 0) + b.requests[k];
  }
  // Without per-route rows (a gateway whose stats have none), the totals give the same outcomes.
  const fromTotals = (t) => t ? { hit: t.hits, miss: t.misses, stale: t.stale, collapsed: t.collapsed,
    revalidated: t.revalidated, bypass: t.bypassed } : {};
  const dAll = routes.length ? delta(all.requests, allBefore.requests)
    : delta(fromTotals(s.totals), fromTotals(before && before.totals));
  const rate = before && dt > 0 ? sum(dAll) / dt : null;
  const served = (dAll.hit || 0) + (dAll.local || 0) + (dAll.stale || 0);
  const cacheable = served + (dAll.miss || 0) + (dAll.collapsed || 0) + (dAll.revalidated || 0);
  const hit = before ? pct(served, cacheable) : null;
  const latency = mergedLatency(routes), latencyBefore = before ? mergedLatency(before.routes || []) : null;
  const p99 = before ? quantile(0.99, latency, latencyBefore) : null, p50 = before ? quantile(0.5, latency, latencyBefore) : null;

  if (before) {
    push(history.rate, rate); push(history.hit, hit); push(history.p99, typeof p99 === "number" ? p99 : null);
  }
  push(history.flight, s.in_flight_keys); push(history.conn, s.open_connections);

  $("t-rate").textContent = rate === null ? "…" : num(rate);
  $("t-rate-sub").textContent = routes.length ? "req/s, all routes" : "req/s of the cached routes' outcomes";
  $("t-hit").textContent = pctText(hit);
  $("t-hit-sub").textContent = cacheable ? `${num(served)} of ${num(cacheable)} cacheable, last second` : "no cacheable requests in the last second";
  $("t-p99").textContent = ms(p99);
  $("t-p50").textContent = "p50 " + ms(p50);
  $("t-flight").textContent = num(s.in_flight_keys);
  $("t-flight-sub").textContent = "uncacheable keys " + num(s.uncacheable_keys);
  $("t-conn").textContent = num(s.open_connections);

  const up = s.upstream || {};
  $("t-up").textContent = up.in_flight === null || up.in_flight === undefined ? "–" : `${num(up.in_flight)} / ${num(up.queued)}`;
  $("t-up-sub").textContent = `in flight / queued, of ${num(up.max_connections)} connections`;
  const redis = s.redis || {};
  const redisEl = $("t-redis");
  redisEl.textContent = `${num(redis.connected_loops)} / ${num(redis.loops)}`;
  redisEl.className = "value " + (redis.loops && redis.connected_loops === redis.loops ? "ok" : "bad");
  $("t-redis-sub").textContent = `event loops connected · ${num(redis.errors)} errors`;
  const local = s.local_tier;
  $("t-local").textContent = local ? num(local.entries) : "off";
  $("t-local-sub").textContent = local ? `entries · ${num(local.bytes / 1024)} KiB · ${num(local.hits)} hits · ${num(local.evictions)} evicted` : "no in-process tier";
  const stream = s.stream;
  const streamEl = $("t-stream");
  if (stream) {
    streamEl.textContent = stream.connected ? "lag " + (stream.lag === null ? "–" : num(stream.lag)) : "disconnected";
    streamEl.className = "value " + (stream.connected ? "ok" : "bad");
    $("t-stream-sub").textContent = `${num(stream.applied)} applied · ${num(stream.retried)} retried · ${num(stream.poison)} poison`;
  } else { streamEl.textContent = "off"; streamEl.className = "value"; $("t-stream-sub").textContent = "not configured"; }
  const reload = s.last_reload, reloadEl = $("t-reload");
  if (reload) {
    reloadEl.textContent = reload.ok ? "ok" : "failed";
    reloadEl.className = "value " + (reload.ok ? "ok" : "bad");
    $("t-reload-sub").textContent = ago(reload.time_ms, s.time_ms) + (reload.errors && reload.errors.length ? " · " + reload.errors[0] : "");
    $("t-reload-sub").title = (reload.errors || []).join("\n");
  } else { reloadEl.textContent = "none"; reloadEl.className = "value"; $("t-reload-sub").textContent = "since start"; }

  $("routes").innerHTML = routes.length
    ? routes.filter((r) => r.name !== "-" || sum(r.requests || {}) > 0).map((r) => routeRow(r, beforeRoutes.get(r.name), dt)).join("")
    : `<tr><td class="empty" colspan="11">${sum(s.totals || {}) > 0 ? "this gateway's stats have no per-route figures (totals below)"
        : "no data yet: no route has answered a request"}</td></tr>`;
  document.querySelectorAll("canvas[data-route]").forEach((c) => spark(c, routeHistory.get(c.dataset.route) || [], "#2f7d8c"));

  const totals = s.totals || {}, dTotals = delta(totals, before ? before.totals : null);
  const names = Object.keys(totals);
  let rows = "";
  for (let i = 0; i < names.length; i += 2) {
    const cell = (k) => k === undefined ? "<td></td><td></td><td></td>"
      : `<td class="name">${esc(k)}</td><td>${num(totals[k])}</td><td>${before && dt > 0 ? num(dTotals[k] / dt) : "…"}</td>`;
    rows += `<tr>${cell(names[i])}${cell(names[i + 1])}</tr>`;
  }
  $("totals").innerHTML = rows || `<tr><td class="empty" colspan="6">no data yet</td></tr>`;
  const mixTotal = sum(dAll);
  $("mix").innerHTML = before && mixTotal > 0
    ? OUTCOMES.filter((k) => dAll[k]).map((k) => { const p = pct(dAll[k], mixTotal);
        return `<tr><td class="name">${k}</td><td>${num(dAll[k] / dt)}/s</td><td>${pctText(p)}<span class="bar"><i style="width:${p.toFixed(0)}%"></i></span></td></tr>`; }).join("")
    : `<tr><td class="empty">${before ? "no requests in the last second" : "no data yet"}</td></tr>`;

  spark($("s-rate"), history.rate, "#2f7d8c");
  spark($("s-hit"), history.hit, "#2e8b57", 100);
  spark($("s-p99"), history.p99, "#8e6bb8");
  spark($("s-flight"), history.flight, "#c98a1b");
  spark($("s-conn"), history.conn, "#4a6fa5");
  previous = s;
}

function showState() {
  const stale = failures > 0;
  $("main").classList.toggle("stale", stale && previous !== null);
  const live = $("live");
  live.className = "pill" + (stale ? " stale" : "");
  live.textContent = stale ? (lastOk ? "stale · no answer for " + duration((Date.now() - lastOk) / 1000) : "no answer yet") : "live";
  const banner = $("banner");
  banner.className = stale ? "on" : "";
  banner.textContent = stale ? `The gateway did not answer the last ${failures} poll${failures > 1 ? "s" : ""} (restarting?). ` +
    (previous ? "The figures below are from " + new Date(previous.time_ms).toLocaleTimeString("en-GB") + "; retrying every second." : "Retrying every second.") : "";
}

async function poll() {
  const controller = new AbortController(), timer = setTimeout(() => controller.abort(), 2000);
  try {
    const response = await fetch("stats", { cache: "no-store", signal: controller.signal });
    if (!response.ok) throw new Error("status " + response.status);
    const stats = await response.json();
    // A restarted gateway starts its counters again: begin a new series instead of negative rates.
    if (previous && (stats.uptime_seconds < previous.uptime_seconds)) previous = null;
    render(stats);
    failures = 0; lastOk = Date.now();
  } catch (e) {
    failures += 1;
  } finally {
    clearTimeout(timer);
    showState();
    setTimeout(poll, 1000);
  }
}
poll();
</script>
</body>
</html>
"""#
}
