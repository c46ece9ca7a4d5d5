// Sluice dashboard: reads /ui/api/* and draws everything with plain DOM and inline SVG.
// No libraries, nothing fetched from elsewhere. Data goes in with textContent only (previews
// and names are caller-controlled text), never as HTML.
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PALETTE = [
    "#2563eb", "#f97316", "#10b981", "#a855f7", "#ef4444",
    "#0ea5e9", "#eab308", "#64748b", "#ec4899", "#14b8a6",
  ];
  const REFRESH_MS = 30000;
  const PERIODS = ["1h", "24h", "7d"];

  const state = { period: "24h", seq: 0, info: null, timer: null };
  const $ = (id) => document.getElementById(id);

  // --- exact money: decimal strings as BigInt millionths of a millionth (scale 12) ---------

  const SCALE = 12;
  const ONE = 10n ** BigInt(SCALE);

  function parseDec(text) {
    if (text === null || text === undefined) return 0n;
    let s = String(text).trim();
    const negative = s.startsWith("-");
    if (negative) s = s.slice(1);
    const m = /^(\d*)(?:\.(\d*))?$/.exec(s);
    if (!m) throw new Error(`not a decimal: ${text}`);
    const frac = (m[2] || "").slice(0, SCALE).padEnd(SCALE, "0");
    const value = BigInt(m[1] || "0") * ONE + BigInt(frac);
    return negative ? -value : value;
  }

  // Round half away from zero to `places` decimals; no trailing zeros.
  function formatDec(value, places = SCALE) {
    const negative = value < 0n;
    let v = negative ? -value : value;
    if (places < SCALE) {
      const unit = 10n ** BigInt(SCALE - places);
      v = ((v + unit / 2n) / unit) * unit;
    }
    const frac = (v % ONE).toString().padStart(SCALE, "0").replace(/0+$/, "");
    const text = (v / ONE).toString() + (frac ? `.${frac}` : "");
    return negative && v !== 0n ? `-${text}` : text;
  }

  const sumDec = (values) => values.reduce((acc, v) => acc + parseDec(v), 0n);

  // --- formatting -----------------------------------------------------------------------------

  const fmtInt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
  const fmtUsd = (text) => (text === null || text === undefined ? "unknown" : `$${formatDec(parseDec(text), 6)}`);
  const fmtPct = (r) => (r === null || r === undefined ? "–" : `${(r * 100).toFixed(1)}%`);
  function fmtMs(ms) {
    if (ms === null || ms === undefined) return "–";
    return ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(2)} s`;
  }
  const pad = (n) => String(n).padStart(2, "0");
  const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  function fmtTime(epoch, withDate) {
    const d = new Date(epoch * 1000);
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    if (!withDate) return hm;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}:${pad(d.getSeconds())}`;
  }
  function fmtBucket(epoch, bucketS) {
    const d = new Date(epoch * 1000);
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    return bucketS >= 3 * 3600 ? `${DAYS[d.getDay()]} ${hm}` : hm;
  }

  // --- DOM helpers ----------------------------------------------------------------------------

  function el(tag, attrs = {}, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attrs, parent) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function setText(id, text, value) {
    const node = $(id);
    node.textContent = text;
    if (value !== undefined && value !== null) node.dataset.value = String(value);
    else delete node.dataset.value;
  }

  // --- API ------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path) {
    const resp = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    let body = null;
    try {
      body = await resp.json();
    } catch (_) {
      body = null;
    }
    if (!resp.ok) {
      const err = (body && body.error) || {};
      let message = err.message || `${path}: HTTP ${resp.status}`;
      if (resp.status === 401) message = `Not authorised: ${message}`;
      throw new ApiError(resp.status, err.code || "http_error", message);
    }
    return body;
  }

  // --- charts ---------------------------------------------------------------------------------

  const W = 640;
  const H = 240;
  const M = { l: 64, r: 12, t: 12, b: 28 };
  const PW = W - M.l - M.r;
  const PH = H - M.t - M.b;

  function niceScale(max, ticks = 4) {
    if (!(max > 0)) return { top: 1, step: 0.25 };
    const raw = max / ticks;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / mag;
    const nice = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
    const step = nice * mag;
    return { top: Math.ceil(max / step - 1e-9) * step, step };
  }

  function frame(node, buckets, bucketS, scale, yFormat) {
    clear(node);
    node.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const n = buckets.length;
    const y = (v) => M.t + PH - (v / scale.top) * PH;
    const axis = svg("g", { class: "axis" }, node);
    for (let v = 0; v <= scale.top + scale.step / 2; v += scale.step) {
      const yy = y(v);
      svg("line", { x1: M.l, x2: W - M.r, y1: yy, y2: yy, class: v === 0 ? "baseline" : "grid" }, axis);
      const label = svg("text", { x: M.l - 6, y: yy + 4, "text-anchor": "end" }, axis);
      label.textContent = yFormat(v);
    }
    const every = Math.max(1, Math.ceil(n / 6));
    const bw = PW / n;
    for (let i = 0; i < n; i += every) {
      const label = svg("text", { x: M.l + (i + 0.5) * bw, y: H - 8, "text-anchor": "middle" }, axis);
      label.textContent = fmtBucket(buckets[i], bucketS);
    }
    return { y, bw, x: (i) => M.l + (i + 0.5) * bw };
  }

  function emptyNote(node, text) {
    const note = svg("text", { x: M.l + PW / 2, y: M.t + PH / 2, "text-anchor": "middle", class: "empty" }, node);
    note.textContent = text;
  }

  function legend(container, items) {
    clear(container);
    for (const item of items) {
      const entry = el("span", { class: "legend-item" });
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = item.color;
      entry.appendChild(swatch);
      entry.appendChild(document.createTextNode(item.label));
      container.appendChild(entry);
    }
  }

  const usdTick = (v) => (v === 0 ? "$0" : `$${Number(v.toPrecision(3))}`);

  // Stacked bars of cost per bucket; data-total is the exact sum of every plotted segment.
  function stackedBars(node, legendNode, ts, block, emptyText) {
    const series = block.series;
    const n = ts.buckets.length;
    const numbers = series.map((s) => s.values.map(Number));
    const heights = ts.buckets.map((_, i) => numbers.reduce((acc, vals) => acc + vals[i], 0));
    const scale = niceScale(Math.max(0, ...heights));
    const f = frame(node, ts.buckets, ts.bucket_s, scale, usdTick);
    const bars = svg("g", { class: "bars" }, node);
    let total = 0n;
    series.forEach((s, k) => {
      const color = PALETTE[k % PALETTE.length];
      total += sumDec(s.values);
      s.values.forEach((value, i) => {
        const v = numbers[k][i];
        if (!(v > 0)) return;
        const below = numbers.slice(0, k).reduce((acc, vals) => acc + vals[i], 0);
        const top = f.y(below + v);
        const height = Math.max(1, f.y(below) - top);
        const rect = svg("rect", {
          x: M.l + i * f.bw + f.bw * 0.12, y: top, width: Math.max(1, f.bw * 0.76), height,
          fill: color, "data-series": s.name, "data-value": value,
        }, bars);
        svg("title", {}, rect).textContent = `${s.name} · ${fmtBucket(ts.buckets[i], ts.bucket_s)} · ${fmtUsd(value)}`;
      });
    });
    if (series.length === 0) emptyNote(node, emptyText);
    node.dataset.total = formatDec(total);
    node.dataset.series = String(series.length);
    node.dataset.buckets = String(n);
    legend(legendNode, series.map((s, k) => ({ color: PALETTE[k % PALETTE.length], label: `${s.name} ${fmtUsd(s.total)}` })));
    return total;
  }

  // Lines with gaps where a bucket has no calls; a dot on every point so lone points show.
  function lineChart(node, legendNode, ts, lines, opts) {
    const all = lines.flatMap((l) => l.values).filter((v) => v !== null);
    const scale = opts.fixedTop ? { top: opts.fixedTop, step: opts.fixedTop / 4 } : niceScale(Math.max(0, ...all));
    const f = frame(node, ts.buckets, ts.bucket_s, scale, opts.yFormat);
    for (const line of lines) {
      const g = svg("g", { class: "line", "data-series": line.name }, node);
      let d = "";
      let pen = false;
      line.values.forEach((v, i) => {
        if (v === null) {
          pen = false;
          return;
        }
        d += `${pen ? "L" : "M"}${f.x(i).toFixed(1)},${f.y(v).toFixed(1)}`;
        pen = true;
      });
      if (d) svg("path", { d, fill: "none", stroke: line.color, "stroke-width": 2, "stroke-linejoin": "round" }, g);
      line.values.forEach((v, i) => {
        if (v === null) return;
        const dot = svg("circle", { cx: f.x(i), cy: f.y(v), r: 3, fill: line.color }, g);
        svg("title", {}, dot).textContent = `${line.name} · ${fmtBucket(ts.buckets[i], ts.bucket_s)} · ${opts.yFormat(v)}`;
      });
    }
    if (all.length === 0) emptyNote(node, opts.emptyText);
    legend(legendNode, lines.map((l) => ({ color: l.color, label: l.name })));
  }

  const msTick = (v) => (v >= 1000 ? `${Number((v / 1000).toPrecision(3))} s` : `${Number(v.toPrecision(3))} ms`);
  const pctTick = (v) => `${Number((v * 100).toPrecision(3))}%`;
  const sum = (values) => values.reduce((acc, v) => acc + v, 0);

  function renderTimeseries(ts) {
    const featureTotal = stackedBars($("chart-cost-feature"), $("legend-cost-feature"), ts, ts.cost_by_feature, "No priced calls in this period");
    const modelTotal = stackedBars($("chart-cost-model"), $("legend-cost-model"), ts, ts.cost_by_model, "No priced calls in this period");
    $("cost-feature-total").textContent = `total ${fmtUsd(formatDec(featureTotal))}`;
    $("cost-model-total").textContent = `total ${fmtUsd(formatDec(modelTotal))}`;

    const latency = $("chart-latency");
    lineChart(latency, $("legend-latency"), ts, [
      { name: "p50", values: ts.latency_ms.p50, color: PALETTE[2] },
      { name: "p95", values: ts.latency_ms.p95, color: PALETTE[1] },
      { name: "p99", values: ts.latency_ms.p99, color: PALETTE[4] },
    ], { yFormat: msTick, emptyText: "No calls in this period" });
    latency.dataset.calls = String(sum(ts.calls));
    latency.dataset.points = String(ts.latency_ms.p50.filter((v) => v !== null).length);
    const p99 = ts.latency_ms.p99.filter((v) => v !== null);
    latency.dataset.maxP99 = p99.length ? String(Math.max(...p99)) : "";

    const rates = $("chart-rates");
    lineChart(rates, $("legend-rates"), ts, [
      { name: "cache hit rate", values: ts.cache_hit_rate, color: PALETTE[0] },
      { name: "error rate", values: ts.error_rate, color: PALETTE[4] },
    ], { yFormat: pctTick, fixedTop: 1, emptyText: "No calls in this period" });
    rates.dataset.calls = String(sum(ts.calls));
    rates.dataset.errors = String(sum(ts.errors));
    rates.dataset.hits = String(sum(ts.cache_hits));
  }

  // --- numbers and tables ---------------------------------------------------------------------

  function renderSummary(s) {
    setText("total-calls", fmtInt(s.calls), s.calls);
    setText("total-errors", fmtInt(s.errors), s.errors);
    setText("error-rate", fmtPct(s.error_rate), s.error_rate);
    setText("total-cost", fmtUsd(s.cost_usd), s.cost_usd);
    setText("unpriced-calls", fmtInt(s.unpriced_calls), s.unpriced_calls);
    setText("total-tokens", fmtInt(s.total_tokens), s.total_tokens);
    setText("input-tokens", fmtInt(s.input_tokens), s.input_tokens);
    setText("output-tokens", fmtInt(s.output_tokens), s.output_tokens);
    setText("cache-hit-rate", fmtPct(s.cache_hit_rate), s.cache_hit_rate);
    setText("cache-hits", fmtInt(s.cache_hits), s.cache_hits);
    const tiers = s.cache_hits_by_tier || {};
    const byTier = Object.keys(tiers).filter((k) => tiers[k] > 0)
      .map((k) => k + " " + fmtInt(tiers[k])).join(" · ");
    setText("cache-tiers", byTier || "no hits", byTier);
    setText("guard-blocked", fmtInt(s.guard_blocked), s.guard_blocked);
    setText("guard-flagged", fmtInt(s.guard_flagged), s.guard_flagged);
    setText("guard-masked", fmtInt(s.guard_masked), s.guard_masked);
    setText("total-saved", fmtUsd(s.cost_saved_usd), s.cost_saved_usd);
    setText("latency-p50", fmtMs(s.latency_ms_p50), s.latency_ms_p50);
    setText("latency-p95", fmtMs(s.latency_ms_p95), s.latency_ms_p95);
    setText("latency-p99", fmtMs(s.latency_ms_p99), s.latency_ms_p99);
  }

  function cell(row, text, cls) {
    const td = el("td", cls ? { class: cls } : {}, text);
    row.appendChild(td);
    return td;
  }

  function emptyRow(tbody, columns, text) {
    const row = el("tr", { class: "empty" });
    const td = el("td", { colspan: String(columns) }, text);
    row.appendChild(td);
    tbody.appendChild(row);
  }

  function renderTopUsers(resp) {
    const table = $("top-users");
    const tbody = table.tBodies[0];
    clear(tbody);
    for (const u of resp.users) {
      const row = el("tr");
      cell(row, u.user === null ? "(no user)" : u.user, u.user === null ? "muted" : "");
      cell(row, fmtInt(u.calls), "num");
      cell(row, fmtInt(u.errors), "num");
      cell(row, fmtInt(u.input_tokens + u.output_tokens), "num");
      cell(row, fmtUsd(u.cost_usd), "num").dataset.value = u.cost_usd;
      tbody.appendChild(row);
    }
    if (resp.users.length === 0) emptyRow(tbody, 5, "No calls in this period");
    table.dataset.rows = String(resp.users.length);
    table.dataset.total = formatDec(sumDec(resp.users.map((u) => u.cost_usd)));
  }

  function statusClass(status) {
    return status >= 500 ? "badge bad" : status >= 400 ? "badge warn" : "badge ok";
  }

  function renderCalls(resp) {
    const table = $("recent-calls");
    const tbody = table.tBodies[0];
    clear(tbody);
    for (const c of resp.calls) {
      const row = el("tr", { tabindex: "0", "data-request-id": c.request_id });
      cell(row, fmtTime(c.ts, true), "nowrap");
      cell(row, c.model_requested || "—");
      cell(row, c.deployment || "—", c.deployment ? "" : "muted");
      cell(row, c.user_id || "—", c.user_id ? "" : "muted");
      cell(row, c.feature || "—", c.feature ? "" : "muted");
      const status = cell(row, "", "num");
      status.appendChild(el("span", { class: statusClass(c.status) }, String(c.status)));
      cell(row, fmtMs(c.latency_ms), "num");
      cell(row, fmtInt(c.input_tokens + c.output_tokens), "num");
      cell(row, fmtUsd(c.cost_usd), c.cost_usd === null ? "num muted" : "num");
      cell(row, c.cache_status || "—", c.cache_status ? "" : "muted");
      row.addEventListener("click", () => openRecord(c));
      row.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          openRecord(c);
        }
      });
      tbody.appendChild(row);
    }
    if (resp.calls.length === 0) emptyRow(tbody, 10, "No calls recorded yet");
    table.dataset.rows = String(resp.calls.length);
  }

  function openRecord(record) {
    const tbody = $("record-fields").tBodies[0];
    clear(tbody);
    $("record-title").textContent = `Call ${record.request_id}`;
    for (const [key, value] of Object.entries(record)) {
      const row = el("tr", { "data-field": key });
      row.appendChild(el("th", {}, key));
      let text = value === null ? "—" : typeof value === "object" ? JSON.stringify(value) : String(value);
      if (key === "ts" && value !== null) text = `${value} (${new Date(value * 1000).toISOString()})`;
      const td = cell(row, text, value === null ? "muted" : key.endsWith("_preview") ? "preview" : "");
      td.dataset.raw = value === null ? "" : String(value);
      tbody.appendChild(row);
    }
    const dialog = $("record-dialog");
    if (!dialog.open) dialog.showModal();
  }

  function renderAlerts(resp) {
    const list = $("alerts");
    clear(list);
    list.dataset.count = String(resp.alerts.length);
    if (!resp.available) {
      list.appendChild(el("li", { class: "muted" }, "Alerting is not configured on this gateway."));
      return;
    }
    if (resp.alerts.length === 0) {
      list.appendChild(el("li", { class: "muted" }, "No active alerts."));
      return;
    }
    for (const a of resp.alerts) {
      const item = el("li", { class: "alert" });
      if (a === null || typeof a !== "object") {
        item.appendChild(el("span", {}, String(a)));
      } else {
        const severity = String(a.severity || a.level || "firing");
        item.appendChild(el("span", { class: `badge ${/warn|info/i.test(severity) ? "warn" : "bad"}` }, severity));
        item.appendChild(el("strong", { class: "alert-name" }, String(a.alert || a.name || a.rule || a.title || a.id || "alert")));
        const labels = a.labels && typeof a.labels === "object" ? Object.entries(a.labels) : [];
        if (labels.length) item.appendChild(el("span", { class: "mono" }, labels.map(([k, v]) => `${k}=${v}`).join(" ")));
        const since = a.started_at || a.since || a.fired_at;
        if (typeof since === "number") item.appendChild(el("span", { class: "muted" }, `since ${fmtTime(since, true)}`));
        else if (since) item.appendChild(el("span", { class: "muted" }, `since ${String(since).replace("T", " ").replace(/\.\d+/, "")}`));
        const message = a.summary || a.message || a.description;
        if (message) item.appendChild(el("div", { class: "alert-message" }, String(message)));
      }
      list.appendChild(item);
    }
  }

  function renderBreakers(resp) {
    const list = $("breakers");
    clear(list);
    for (const b of resp.breakers) {
      const item = el("li", { "data-deployment": b.deployment, "data-state": b.state });
      item.appendChild(el("span", { class: "mono" }, b.deployment));
      const cls = b.state === "closed" ? "ok" : b.state === "open" ? "bad" : "warn";
      item.appendChild(el("span", { class: `badge ${cls}` }, b.state.replace("_", "-")));
      list.appendChild(item);
    }
    if (resp.breakers.length === 0) list.appendChild(el("li", { class: "muted" }, "No deployments."));
  }

  function renderBatches(resp) {
    const list = $("batches");
    clear(list);
    for (const b of resp.batches) {
      const item = el("li", { "data-batch": b.id, "data-status": b.status });
      item.appendChild(el("span", { class: "mono" }, `${b.id} (${b.tenant})`));
      const cls = b.status === "completed" ? "ok" : ["failed", "expired", "cancelled"].includes(b.status) ? "bad" : "warn";
      item.appendChild(el("span", { class: `badge ${cls}` }, `${b.status} ${b.done}/${b.total}`));
      list.appendChild(item);
    }
    if (resp.batches.length === 0) list.appendChild(el("li", { class: "muted" }, "No batches."));
  }

  function renderSide(results) {
    const [alerts, breakers, batches] = results;
    if (batches && batches.status === "fulfilled") renderBatches(batches.value);
    if (alerts.status === "fulfilled") renderAlerts(alerts.value);
    else {
      clear($("alerts"));
      $("alerts").appendChild(el("li", { class: "muted" }, alerts.reason.message));
    }
    if (breakers.status === "fulfilled") renderBreakers(breakers.value);
  }

  function clearRecordViews() {
    for (const id of ["chart-cost-feature", "chart-cost-model", "chart-latency", "chart-rates"]) clear($(id));
    for (const id of ["legend-cost-feature", "legend-cost-model", "legend-latency", "legend-rates"]) clear($(id));
    for (const [id, columns] of [["top-users", 5], ["recent-calls", 10]]) {
      const tbody = $(id).tBodies[0];
      clear(tbody);
      emptyRow(tbody, columns, "No call-record store");
    }
  }

  // --- loading --------------------------------------------------------------------------------

  function showMessage(text) {
    const box = $("message");
    box.textContent = text;
    box.hidden = !text;
  }

  function showAuth(info) {
    const banner = $("auth-banner");
    if (info.auth === "admin_key") {
      banner.hidden = true;
      $("logout").hidden = false;
      return;
    }
    banner.textContent =
      "Authentication is off: SLUICE_ADMIN_KEY is not set, so this dashboard is served to " +
      "loopback clients only. Set SLUICE_ADMIN_KEY to require an admin key.";
    banner.hidden = false;
  }

  async function load() {
    const seq = ++state.seq;
    const main = $("dashboard");
    main.dataset.state = "loading";
    const stale = () => seq !== state.seq;
    try {
      if (!state.info) {
        state.info = await api("/ui/api/info");
        showAuth(state.info);
      }
      const side = Promise.allSettled([api("/ui/api/alerts"), api("/ui/api/breakers"), api("/ui/api/batches")]);
      let summary;
      try {
        summary = await api(`/ui/api/summary?period=${state.period}`);
      } catch (err) {
        if (stale()) return;
        renderSide(await side);
        if (err.code !== "no_record_store") throw err;
        clearRecordViews();
        showMessage(err.message);
        main.dataset.state = "no-store";
        loadEval();
        return;
      }
      const q = `period=${state.period}&until=${summary.until}`;
      const [ts, users, calls] = await Promise.all([
        api(`/ui/api/timeseries?${q}`),
        api(`/ui/api/top-users?${q}`),
        api(`/ui/api/calls?until=${summary.until}`),
      ]);
      const sideResults = await side;
      if (stale()) return;
      showMessage("");
      renderSummary(summary);
      renderTimeseries(ts);
      renderTopUsers(users);
      renderCalls(calls);
      renderSide(sideResults);
      main.dataset.period = summary.period;
      main.dataset.since = String(summary.since);
      main.dataset.until = String(summary.until);
      $("updated").textContent = `Updated ${fmtTime(Date.now() / 1000, false)}`;
      main.dataset.state = "ready";
      loadEval();
    } catch (err) {
      if (stale()) return;
      showMessage(err.message || String(err));
      main.dataset.state = "error";
    }
  }

  // --- evaluation (issue 17): runs, shadow traffic, online quality, feedback rates ---------

  function fmtScore(v) {
    return v === null || v === undefined ? "–" : Number(v).toFixed(3);
  }

  function fillTable(id, rows, columns, emptyText, toCells) {
    const table = $(id);
    const tbody = table.tBodies[0];
    clear(tbody);
    for (const r of rows) {
      const row = el("tr");
      for (const [text, cls] of toCells(r)) cell(row, text, cls);
      tbody.appendChild(row);
    }
    if (rows.length === 0) emptyRow(tbody, columns, emptyText);
    table.dataset.rows = String(rows.length);
  }

  function renderEval(ev) {
    $("eval-note").textContent = ev.records ? "" : "(no record store: live counts only)";
    fillTable("eval-runs", ev.runs, 5, "No saved runs", (r) => [
      [r.run_id, ""], [r.target, ""], [fmtInt(r.items), "num"],
      [fmtScore(r.mean_score), "num"], [fmtPct(r.pass_rate), "num"],
    ]);
    const dropped = (route) => ((ev.shadow_live[route] || {}).dropped || 0);
    const shadow = ev.shadow.slice();
    for (const route of Object.keys(ev.shadow_live)) {
      if (!shadow.some((s) => s.route === route)) {
        shadow.push({ route, candidate: "–", pairs: 0, errors: 0, production_ms: null, candidate_ms: null });
      }
    }
    fillTable("eval-shadow", shadow, 7, "No shadow traffic", (r) => [
      [r.route, ""], [r.candidate, ""], [fmtInt(r.pairs), "num"], [fmtInt(r.errors), "num"],
      [r.production_ms === null ? "–" : fmtMs(r.production_ms), "num"],
      [r.candidate_ms === null ? "–" : fmtMs(r.candidate_ms), "num"],
      [fmtInt(dropped(r.route)), "num"],
    ]);
    fillTable("eval-quality", ev.quality, 5, "No online judgements", (r) => [
      [r.route, ""], [r.model, ""], [fmtInt(r.judged), "num"],
      [fmtScore(r.mean_score), "num"], [fmtPct(r.good_rate), "num"],
    ]);
    const fb = ev.feedback.route.map((r) => ({ ...r, kind: "route" }))
      .concat(ev.feedback.model.map((r) => ({ ...r, kind: "model" })));
    fillTable("eval-feedback", fb, 6, "No feedback", (r) => [
      [`${r.kind}: ${r.group === null ? "(none)" : r.group}`, ""], [fmtInt(r.calls), "num"],
      [fmtInt(r.feedback), "num"], [fmtPct(r.feedback_rate), "num"],
      [fmtScore(r.mean_score), "num"], [`${r.thumbs_up} / ${r.thumbs_down}`, "num"],
    ]);
  }

  async function loadEval() {
    try {
      renderEval(await api(`/ui/api/eval?period=${state.period}`));
    } catch (err) {
      $("eval-note").textContent = `(${err.message || String(err)})`;
    }
  }

  function selectPeriod(period, reload) {
    if (!PERIODS.includes(period)) period = "24h";
    state.period = period;
    for (const button of document.querySelectorAll("#period button")) {
      button.classList.toggle("active", button.dataset.period === period);
      button.setAttribute("aria-pressed", String(button.dataset.period === period));
    }
    if (location.hash !== `#period=${period}`) history.replaceState(null, "", `#period=${period}`);
    if (reload) load();
  }

  function start() {
    const fromHash = /period=(\w+)/.exec(location.hash);
    selectPeriod(fromHash ? fromHash[1] : "24h", false);
    for (const button of document.querySelectorAll("#period button")) {
      button.addEventListener("click", () => selectPeriod(button.dataset.period, true));
    }
    $("refresh").addEventListener("click", () => load());
    $("record-close").addEventListener("click", () => $("record-dialog").close());
    $("record-dialog").addEventListener("click", (ev) => {
      if (ev.target === $("record-dialog")) $("record-dialog").close();
    });
    state.timer = setInterval(() => {
      if (!document.hidden) load();
    }, REFRESH_MS);
    load();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
