// The fernando-cache dashboard: reads /v1/admin/series and /v1/admin/overview (the session cookie
// authenticates them) and draws them with uPlot. Every text from the server goes in with textContent, never as
// markup. Refreshes every 10 s and whenever a filter changes.
"use strict";

const $ = (id) => document.getElementById(id);
const charts = {};
const REFRESH_MS = 10000;

function fmtInt(n) { return n == null ? "–" : Math.round(n).toLocaleString("en"); }
function fmtPct(x) { return x == null ? "–" : (x * 100).toFixed(1) + " %"; }
function fmtSecs(ms) {
  const s = ms / 1000;
  if (s < 120) return s.toFixed(1) + " s";
  if (s < 7200) return (s / 60).toFixed(1) + " min";
  return (s / 3600).toFixed(1) + " h";
}
function fmtTime(t) { return t ? new Date(t).toLocaleString() : "–"; }

async function getJson(path) {
  const r = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (r.status === 401 || r.status === 403) { window.location.assign("/dashboard"); throw new Error("signed out"); }
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

function params() {
  const p = new URLSearchParams({ range: $("range").value });
  if ($("tenant").value) p.set("tenant", $("tenant").value);
  if ($("cache_type").value) p.set("cache_type", $("cache_type").value);
  return p;
}

function draw(id, xs, series, opts = {}) {
  const el = $(id);
  const data = [xs, ...series.map((s) => s.values)];
  const width = Math.max(el.clientWidth, 300);
  const scales = { x: { time: true }, y: opts.y || {} };
  const axes = [{}, { size: 80 }];
  // A series on a scale of its own (tokens beside seconds) gets an axis on the right.
  for (const s of series) {
    if (s.scale && !scales[s.scale]) {
      scales[s.scale] = {};
      axes.push({ scale: s.scale, side: 1, size: 80, grid: { show: false } });
    }
  }
  const options = {
    width, height: 220, scales, axes,
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: s.width || 1.5, dash: s.dash, scale: s.scale || "y" }))],
  };
  if (charts[id]) charts[id].destroy();
  el.textContent = "";
  charts[id] = new uPlot(options, data, el);
  el.dataset.points = String(xs.length);
}

function renderSeries(s) {
  const pts = s.points;
  const xs = pts.map((p) => Date.parse(p.t) / 1000);
  const col = (k, f = (x) => x) => pts.map((p) => (p[k] == null ? null : f(p[k])));
  draw("chart-hit-ratio", xs, [
    { label: "hit ratio %", values: col("hit_ratio", (x) => x * 100), color: "#2e86c1" },
    { label: "target", values: pts.map(() => 80), color: "#c0392b", dash: [6, 4], width: 1 },
  ], { y: { range: [0, 100] } });
  draw("chart-latency", xs, [
    { label: "p50", values: col("p50_ms"), color: "#1e8449" },
    { label: "p95", values: col("p95_ms"), color: "#b9770e" },
    { label: "p99", values: col("p99_ms"), color: "#c0392b" },
  ]);
  draw("chart-traffic", xs, [
    { label: "hits", values: col("hits"), color: "#1e8449" },
    { label: "misses", values: col("misses"), color: "#c0392b" },
    { label: "sets", values: col("sets"), color: "#7d3c98" },
  ]);
  draw("chart-bytes", xs, [
    { label: "raw", values: col("raw_bytes"), color: "#5d6d7e" },
    { label: "stored", values: col("stored_bytes"), color: "#2e86c1" },
  ]);
  draw("chart-saved", xs, [
    { label: "engine s saved", values: col("compute_saved_ms", (x) => x / 1000), color: "#1e8449" },
    { label: "tokens saved", values: col("tokens_saved"), color: "#7d3c98", scale: "tokens" },
  ]);
  const sum = (k) => pts.reduce((a, p) => a + (p[k] || 0), 0);
  const hits = sum("hits"), reads = hits + sum("misses");
  $("tile-hit-ratio").textContent = reads ? fmtPct(hits / reads) : "–";
  $("tile-reads").textContent = fmtInt(reads);
  $("tile-time").textContent = fmtSecs(sum("compute_saved_ms"));
  $("tile-tokens").textContent = fmtInt(sum("tokens_saved"));
  $("tile-money").textContent = (sum("money_saved_micros") / 1e6).toFixed(2) + " " + s.currency;
  const raw = sum("raw_bytes");
  $("tile-compression").textContent = raw ? (sum("stored_bytes") / raw).toFixed(2) : "–";
}

function fillTable(id, rows, cells) {
  const body = $(id).querySelector("tbody");
  body.textContent = "";
  for (const row of rows) {
    const tr = document.createElement("tr");
    for (const [text, cls] of cells(row)) {
      const td = document.createElement("td");
      td.textContent = text == null ? "–" : String(text);
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function setOptions(select, values) {
  const keep = select.value;
  const have = new Set([...select.options].map((o) => o.value));
  for (const v of values) {
    if (have.has(v)) continue;
    const o = document.createElement("option");
    o.value = v;
    o.textContent = v;
    select.appendChild(o);
  }
  select.value = keep;
}

function renderOverview(o) {
  const live = (o.live || []).filter((s) => !s.tenant.startsWith("_"));
  fillTable("live", live, (s) => [[s.tenant], [s.cache_type], [s.isolation], [fmtInt(s.l1_hits), "num"], [fmtInt(s.l2_hits), "num"], [fmtInt(s.misses), "num"], [fmtPct(s.hit_ratio), "num"]]);
  setOptions($("tenant"), [...new Set(live.map((s) => s.tenant))].sort());
  setOptions($("cache_type"), [...new Set(live.map((s) => s.cache_type))].sort());
  const health = [];
  for (const [component, rows] of Object.entries(o.health || {})) if (rows.length) health.push({ component, ...rows[0] });
  fillTable("health", health, (h) => [[h.component], [h.status, "status-" + h.status], [fmtTime(h.t)], [h.latency_us == null ? null : (h.latency_us / 1000).toFixed(2) + " ms", "num"], [h.message]]);
  fillTable("regions", o.regions || [], (r) => [[r.region], [r.behind_seconds == null ? "nothing noted" : r.behind_seconds.toFixed(1) + " s", "num"], [r.behind_entries == null ? null : fmtInt(r.behind_entries), "num"], [r.losses == null ? null : fmtInt(r.losses), "num"], [r.applied]]);
  fillTable("jobs", o.warmup_jobs || [], (j) => [[j.name], [j.strategy], [j.cache_type], [fmtTime(j.last_run)], [j.last_status], [fmtInt(j.keys_warmed), "num"]]);
  fillTable("events", o.events || [], (e) => [[fmtTime(e.t)], [e.severity, "sev-" + e.severity], [e.event_type], [e.tenant], [e.cache_type], [e.details]]);
}

async function refresh() {
  try {
    const [series, overview] = await Promise.all([
      getJson("/v1/admin/series?" + params()),
      getJson("/v1/admin/overview?" + new URLSearchParams({ range: $("range").value })),
    ]);
    renderSeries(series);
    renderOverview(overview);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  } catch (e) {
    $("updated").textContent = "not updated: " + e.message;
  }
}

for (const id of ["range", "tenant", "cache_type"]) $(id).addEventListener("change", refresh);
refresh();
setInterval(refresh, REFRESH_MS);
