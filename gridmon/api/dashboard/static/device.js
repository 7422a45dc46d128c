// Device view: voltage, current and temperature over a chosen range from the bucketed readings
// endpoint (avg line, min–max band), the safe ranges as bands, the anomaly detector's expected
// value and band (`/devices/{id}/band`), buckets with readings missing by the device's seq as
// dashed lines, alert episodes marked on the chart, the latest maintenance prediction, the
// profile and the range statistics.
//
// The default range ("auto") is the device's data, up to the last 24 hours, with a bucket that
// draws a readable line however little data there is: raw readings for up to half an hour
// (one point each), 1-minute buckets up to 6 hours, 5-minute buckets beyond.

import { api, query } from "./api.js";
import { $, clear, el, facts, fmtAgo, fmtNumber, fmtTime, pill, plural } from "./dom.js";

const AUTO_MAX_MS = 86400e3;
const RAW_UP_TO_MS = 30 * 60e3;
const RAW_LIMIT = 5000;

// The range "auto" resolves to for a device first seen at `firstSeen` (ms).
function autoRange(firstSeen, now) {
  const ms = Math.max(Math.min(now - firstSeen, AUTO_MAX_MS), 60e3);
  if (ms <= RAW_UP_TO_MS) return { ms, bucket: "raw", bucketMs: null };
  if (ms <= 6 * 3600e3) return { ms, bucket: "1m", bucketMs: 60e3 };
  return { ms, bucket: "5m", bucketMs: 300e3 };
}

// Raw readings as one-reading buckets (the chart draws both alike).
function rawAsBuckets(rows) {
  const one = (v) => ({ avg: v, min: v, max: v });
  return rows.map((r) => ({ start: r.ts, count: 1, voltage: one(r.voltage), current: one(r.current), temperature: one(r.temperature) }));
}

// Lines break across a pause longer than five usual intervals between raw readings.
function rawGapMs(buckets) {
  const gaps = [];
  for (let k = 1; k < buckets.length; k++) gaps.push(Date.parse(buckets[k].start) - Date.parse(buckets[k - 1].start));
  gaps.sort((a, b) => a - b);
  return gaps.length ? Math.max(5 * gaps[Math.floor(gaps.length / 2)], 1000) : 60e3;
}

// Range -> bucket width: between 60 and 720 points per metric.
const RANGES = {
  "1h": { ms: 3600e3, bucket: "1m", bucketMs: 60e3 },
  "6h": { ms: 6 * 3600e3, bucket: "5m", bucketMs: 300e3 },
  "24h": { ms: 86400e3, bucket: "5m", bucketMs: 300e3 },
  "7d": { ms: 7 * 86400e3, bucket: "1h", bucketMs: 3600e3 },
  "30d": { ms: 30 * 86400e3, bucket: "1h", bucketMs: 3600e3 },
};
const METRICS = [
  { key: "voltage", title: "Voltage (V)", color: "#2f6fdb", axis: "y", domain: [0.69, 1] },
  { key: "current", title: "Current (A)", color: "#8a4fd3", axis: "y2", domain: [0.35, 0.64] },
  { key: "temperature", title: "Temperature (°C)", color: "#d9480f", axis: "y3", domain: [0, 0.3] },
];
const SEVERITY_COLORS = { low: "#5c940d", medium: "#e0a800", high: "#f76707", critical: "#e03131" };
const REFRESH_MS = 30000;

let plotlyLoading = null;

// plotly.js is 4.8 MB: fetched the first time a chart is drawn, not with the page.
function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!plotlyLoading) {
    plotlyLoading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "/ui/vendor/plotly.min.js";
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => {
        plotlyLoading = null;
        reject(new Error("the chart library did not load"));
      };
      document.head.append(script);
    });
  }
  return plotlyLoading;
}

function rgba(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

// Bucket rows with `null` rows inserted across gaps, so lines break where data is missing.
function withGaps(buckets, bucketMs) {
  const out = [];
  let previous = null;
  for (const b of buckets) {
    const t = Date.parse(b.start);
    if (previous !== null && t - previous > 1.5 * bucketMs) out.push({ gap: true, start: new Date(previous + bucketMs).toISOString() });
    out.push(b);
    previous = t;
  }
  return out;
}

export class DeviceView {
  constructor() {
    this.deviceId = null;
    this.generation = 0;
    this.visible = false;
    this.reloadTimer = null;
    $("device-range").addEventListener("change", () => this.load());
    setInterval(() => this.visible && this.load(), REFRESH_MS);
  }

  async show(deviceId) {
    this.visible = true;
    if (deviceId !== this.deviceId) {
      this.deviceId = deviceId;
      for (const id of ["device-prediction", "device-profile", "device-stats", "device-alerts", "device-chart-note"]) clear($(id));
      $("device-title").textContent = deviceId;
      $("device-status").textContent = "";
    }
    await this.load();
  }

  hide() {
    this.visible = false;
  }

  // An alert event for the shown device: redraw soon (episodes and counts changed).
  alertFor(deviceId) {
    if (!this.visible || deviceId !== this.deviceId) return;
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => this.load(), 1000);
  }

  async load() {
    const generation = ++this.generation;
    const id = this.deviceId;
    const path = `/devices/${encodeURIComponent(id)}`;
    const rangeKey = $("device-range").value;
    const end = new Date();
    let detail;
    try {
      detail = await api(`${path}?window=${rangeKey === "auto" ? "24h" : rangeKey}`);
    } catch (error) {
      if (generation === this.generation) {
        $("device-chart-note").textContent = `device unavailable: ${error.detail || error.message}`;
      }
      return;
    }
    const range = rangeKey === "auto" ? autoRange(Date.parse(detail.first_seen), end.getTime()) : RANGES[rangeKey];
    const start = new Date(end.getTime() - range.ms);
    const [readings, limits, recent, active, prediction, band, Plotly] = await Promise.all([
      this.readings(path, start, end, range),
      api(`/ui/limits/${encodeURIComponent(id)}`),
      api("/alerts" + query({ device: id, since: start.toISOString(), limit: 500 })),
      api("/alerts" + query({ device: id, state: ["open", "acknowledged"], limit: 100 })),
      // Only ask when one exists: the summary says so, and a 404 would only add noise.
      detail.risk_computed_at ? api(`${path}/prediction`) : Promise.resolve(null),
      // The detector's expectation (`scored: false` until the first scan has scored this device).
      api(`${path}/band` + query({ start: start.toISOString(), end: end.toISOString(), points: 288 })).then((b) => (b.scored ? b : null)),
      loadPlotly(),
    ]).catch((error) => {
      if (generation === this.generation) $("device-chart-note").textContent = `could not load: ${error.detail || error.message}`;
      return [];
    });
    if (generation !== this.generation || !readings) return;
    const episodes = new Map();
    for (const a of [...recent.items, ...active.items]) episodes.set(a.id, a);
    const alerts = [...episodes.values()].sort((a, b) => b.id - a.id);
    $("device-status").replaceWith(Object.assign(pill(detail.status, detail.status), { id: "device-status" }));
    this.renderChart(Plotly, readings, limits, alerts, band, start, end, range);
    this.renderPrediction(prediction);
    this.renderProfile(detail, limits);
    this.renderStats(detail);
    this.renderAlerts(alerts);
  }

  // Buckets of the range (raw ranges: one bucket per reading; too many raw rows: 1-minute buckets).
  async readings(path, start, end, range) {
    const span = { start: start.toISOString(), end: end.toISOString() };
    if (range.bucket === "raw") {
      const raw = await api(`${path}/readings` + query({ ...span, bucket: "raw", limit: RAW_LIMIT }));
      if (!raw.truncated) {
        const buckets = rawAsBuckets(raw.readings || []);
        range.bucketMs = rawGapMs(buckets);
        return { ...raw, buckets };
      }
      Object.assign(range, { bucket: "1m", bucketMs: 60e3 });
    }
    return api(`${path}/readings` + query({ ...span, bucket: range.bucket }));
  }

  renderChart(Plotly, readings, limits, alerts, band, start, end, range) {
    const rows = withGaps(readings.buckets || [], range.bucketMs);
    const x = rows.map((b) => b.start);
    const traces = [];
    const shapes = [];
    METRICS.forEach((m, index) => {
      const pick = (field) => rows.map((b) => (b.gap ? null : b[m.key][field]));
      const xaxisY = m.axis;
      traces.push(
        { x, y: pick("min"), yaxis: xaxisY, type: "scatter", mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false, connectgaps: false },
        {
          x, y: pick("max"), yaxis: xaxisY, type: "scatter", mode: "lines", line: { width: 0 }, fill: "tonexty",
          fillcolor: rgba(m.color, 0.18), name: "min–max", legendgroup: "band", showlegend: index === 0, hoverinfo: "skip", connectgaps: false,
        },
        { x, y: pick("avg"), yaxis: xaxisY, type: "scatter", mode: "lines", line: { color: m.color, width: 1.6 }, name: m.key, connectgaps: false },
      );
      const expected = band && band.metrics.find((b) => b.metric === m.key);
      if (expected) {
        // What the anomaly detector expects now at each time of day, and the band it tolerates.
        const common = { x: band.ts, yaxis: xaxisY, type: "scatter", mode: "lines", legendgroup: "expected", connectgaps: false };
        traces.push(
          { ...common, y: expected.low, line: { color: "rgba(116, 192, 252, 0.8)", width: 1, dash: "dash" }, hoverinfo: "skip", showlegend: false },
          {
            ...common, y: expected.high, line: { color: "rgba(116, 192, 252, 0.8)", width: 1, dash: "dash" }, fill: "tonexty",
            fillcolor: "rgba(116, 192, 252, 0.08)", name: "expected band", showlegend: !traces.some((t) => t.name === "expected band"), hoverinfo: "skip",
          },
          { ...common, y: expected.expected, line: { color: "rgba(116, 192, 252, 0.9)", width: 1, dash: "dot" }, name: "expected", showlegend: false },
        );
      }
      const [low, high] = limits[m.key];
      const ref = m.axis;
      shapes.push(
        { type: "rect", xref: "paper", x0: 0, x1: 1, yref: ref, y0: low, y1: high, fillcolor: "rgba(47, 158, 68, 0.07)", line: { width: 0 }, layer: "below" },
        { type: "line", xref: "paper", x0: 0, x1: 1, yref: ref, y0: low, y1: low, line: { color: "rgba(47, 158, 68, 0.7)", width: 1, dash: "dot" } },
        { type: "line", xref: "paper", x0: 0, x1: 1, yref: ref, y0: high, y1: high, line: { color: "rgba(47, 158, 68, 0.7)", width: 1, dash: "dot" } },
      );
      // Episodes of this metric (and those not tied to one, e.g. no_data) as shaded spans.
      const mine = alerts.filter((a) => a.metric === m.key || !METRICS.some((n) => n.key === a.metric));
      for (const a of mine) {
        const from = Date.parse(a.opened_at);
        const to = Date.parse(a.resolved_at || a.last_seen_at);
        const pad = to - from < range.bucketMs ? range.bucketMs / 2 : 0;
        shapes.push({
          type: "rect", xref: "x", yref: `${ref} domain`, x0: new Date(from - pad).toISOString(), x1: new Date(to + pad).toISOString(),
          y0: 0, y1: 1, fillcolor: rgba(SEVERITY_COLORS[a.severity] || "#868e96", 0.22), line: { width: 0 }, layer: "below",
        });
      }
      const marked = mine.filter((a) => a.metric === m.key && a.value !== null && a.value_ts);
      if (marked.length) {
        traces.push({
          x: marked.map((a) => a.value_ts), y: marked.map((a) => a.value), yaxis: xaxisY, type: "scatter", mode: "markers",
          marker: { color: marked.map((a) => SEVERITY_COLORS[a.severity]), size: 10, symbol: "diamond", line: { color: "#fff", width: 1 } },
          text: marked.map((a) => `#${a.id} ${a.severity}: ${a.description}`), hoverinfo: "text+x+y", name: "anomaly", legendgroup: "anomaly",
          showlegend: !traces.some((t) => t.legendgroup === "anomaly"),
        });
      }
    });
    // Readings the device's seq says never arrived: a dashed line at each bucket that counted some.
    const lossy = (readings.buckets || []).filter((b) => b.missing > 0);
    for (const b of lossy) {
      const at = new Date(Date.parse(b.start) + (range.bucketMs || 0) / 2).toISOString();
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: at, x1: at, y0: 0, y1: 1, line: { color: "rgba(245, 159, 0, 0.8)", width: 1, dash: "dash" } });
    }
    const layout = {
      height: 640,
      margin: { l: 64, r: 16, t: 30, b: 40 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, sans-serif", size: 12, color: "#d0d7e2" },
      legend: { orientation: "h", x: 0, y: 1.07 },
      hovermode: "x",
      xaxis: { type: "date", range: [start.toISOString(), end.toISOString()], anchor: "y3", gridcolor: "#2a3342" },
      shapes,
    };
    for (const m of METRICS) {
      const name = m.axis === "y" ? "yaxis" : `yaxis${m.axis.slice(1)}`;
      layout[name] = { title: { text: m.title }, domain: m.domain, anchor: "x", gridcolor: "#2a3342", zeroline: false };
    }
    Plotly.react($("device-chart"), traces, layout, { displaylogo: false, responsive: true });
    const count = (readings.buckets || []).reduce((n, b) => n + b.count, 0);
    const shown =
      range.bucket === "raw"
        ? `${plural(count, "reading")}, each drawn · line: the readings`
        : `${plural(count, "reading")} in ${plural((readings.buckets || []).length, "bucket")} of ${range.bucket}` +
          " · line: average, shade: min–max";
    const expectation = band ? " · dashed blue band: what the detector expects" : " · no expected band yet (the detector has not scored this device)";
    const missing = lossy.reduce((n, b) => n + b.missing, 0);
    const gaps = missing ? ` · dashed orange lines: ${plural(missing, "reading")} missing by the device's seq` : "";
    $("device-chart-note").textContent = `${shown} · green band: safe range${expectation} · coloured spans: alert episodes${gaps}`;
  }

  renderPrediction(p) {
    if (!p) {
      clear($("device-prediction"), el("p", { class: "muted" }, "No maintenance prediction yet (computed every 15 minutes once a day of history exists)."));
      return;
    }
    const ttl = (p.inputs && p.inputs.time_to_limit) || {};
    const aging = (p.inputs && p.inputs.aging) || {};
    const failure = p.predicted_failure_date
      ? el("span", {}, fmtTime(p.predicted_failure_date), el("span", { class: "muted small" }, ` (${fmtNumber(ttl.days, 1)} days)`))
      : el("span", { class: "muted" }, `none expected${ttl.status ? ` (${ttl.status})` : ""}`);
    const interval = p.interval ? `${fmtTime(p.interval[0])} – ${fmtTime(p.interval[1])}` : "–";
    const factors = (p.risk_factors || []).map((f) =>
      el("li", {}, el("b", {}, f.factor || "factor"), f.points !== undefined ? ` +${fmtNumber(f.points, 0)}` : "", f.detail ? ` — ${f.detail}` : ""),
    );
    const actions = (p.recommended_actions || []).map((a) => el("li", {}, a));
    clear(
      $("device-prediction"),
      el("div", { class: "risk-line" }, pill(`${p.risk_level} risk`, `sev-${p.risk_level}`), el("span", { class: "muted" }, ` score ${fmtNumber(p.risk_score, 0)} / 100`)),
      facts([
        ["Temperature limit reached", failure],
        ["Interval", interval],
        ["Confidence", `${fmtNumber(p.confidence * 100, 0)} %`],
        ["Aging factor (F_EQA)", fmtNumber(aging.equivalent_aging_factor, 3)],
        ["Loss of life", aging.loss_of_life_hours !== undefined ? `${fmtNumber(aging.loss_of_life_hours, 2)} h over ${fmtNumber(aging.observed_hours, 0)} h observed` : "–"],
        ["Life used per year", aging.life_pct_per_year !== undefined ? `${fmtNumber(aging.life_pct_per_year, 2)} %` : "–"],
        ["Computed", fmtTime(p.computed_at)],
      ]),
      factors.length ? [el("h3", {}, "Risk factors"), el("ul", { class: "factors" }, factors)] : el("p", { class: "muted small" }, "No risk factors."),
      actions.length ? [el("h3", {}, "Recommended"), el("ul", {}, actions)] : null,
    );
  }

  renderProfile(d, limits) {
    const p = d.profile;
    const band = (metric, unit) => {
      const [lo, hi] = limits[metric];
      const source = limits.from_profile.includes(metric) ? "profile" : "default";
      return `${fmtNumber(lo, 1)} – ${fmtNumber(hi, 1)} ${unit} (${source})`;
    };
    clear(
      $("device-profile"),
      facts([
        ["Kind", p.kind || "–"],
        ["Location", p.location || "–"],
        ["Nominal voltage", p.nominal_voltage ? `${fmtNumber(p.nominal_voltage)} V` : "default"],
        ["Rated current", p.rated_current ? `${fmtNumber(p.rated_current)} A` : "default"],
        ["Temperature limit", p.temperature_limit ? `${fmtNumber(p.temperature_limit)} °C` : "default"],
        ["Safe voltage", band("voltage", "V")],
        ["Safe current", band("current", "A")],
        ["Safe temperature", band("temperature", "°C")],
        ["First seen", fmtTime(d.first_seen)],
        ["Last seen", `${fmtTime(d.last_seen)} (${fmtAgo(d.last_seen)})`],
      ]),
    );
  }

  renderStats(d) {
    const latest = d.latest_reading;
    const s = d.stats;
    const row = (metric, unit) =>
      el(
        "tr",
        {},
        el("th", {}, metric),
        el("td", {}, latest ? `${fmtNumber(latest[metric], 2)} ${unit}` : "–"),
        el("td", {}, fmtNumber(s[metric].avg, 2)),
        el("td", {}, fmtNumber(s[metric].min, 2)),
        el("td", {}, fmtNumber(s[metric].max, 2)),
      );
    clear(
      $("device-stats"),
      el(
        "table",
        { class: "grid compact" },
        el("thead", {}, el("tr", {}, el("th", {}), el("th", {}, "latest"), el("th", {}, "avg"), el("th", {}, "min"), el("th", {}, "max"))),
        el("tbody", {}, row("voltage", "V"), row("current", "A"), row("temperature", "°C")),
      ),
      el("p", { class: "muted small" }, `${fmtNumber(s.count, 0)} readings in the last ${s.window}` + (latest ? ` · latest at ${fmtTime(latest.ts)}` : "")),
    );
  }

  renderAlerts(alerts) {
    if (!alerts.length) {
      clear($("device-alerts"), el("p", { class: "muted" }, "No alert episodes in this range."));
      return;
    }
    clear(
      $("device-alerts"),
      el(
        "table",
        { class: "grid compact" },
        el("thead", {}, el("tr", {}, ["", "Metric", "Detector", "State", "Opened", "Last seen", "Value", "Description"].map((h) => el("th", {}, h)))),
        el(
          "tbody",
          {},
          alerts.map((a) =>
            el(
              "tr",
              {},
              el("td", {}, pill(a.severity, `sev-${a.severity}`)),
              el("td", {}, a.metric),
              el("td", {}, a.detector),
              el("td", {}, pill(a.state, `state-${a.state}`)),
              el("td", {}, fmtTime(a.opened_at)),
              el("td", {}, fmtTime(a.last_seen_at)),
              el("td", {}, a.value === null ? "–" : fmtNumber(a.value, 2)),
              el("td", { class: "small" }, a.description),
            ),
          ),
        ),
      ),
    );
  }
}
