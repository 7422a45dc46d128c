// Fleet overview: every device with status, last reading, open alerts, maintenance risk and
// missing readings (counted from `seq`, or an interval-based estimate labelled as such).
// The list is read in pages of 500 (GET /devices), kept in memory, and shown a page at a time:
// filtering and sorting 1,000 devices in the browser is instant, and the DOM only ever holds
// one page of rows.

import { allPages, api } from "./api.js";
import { $, clear, el, fmtAgo, fmtNumber, fmtTime, pill, severityRank } from "./dom.js";

const REFRESH_MS = 30000;
const NATURAL = new Intl.Collator(undefined, { numeric: true });
const SORTERS = {
  device_id: (d) => d.device_id,
  status: (d) => (d.status === "online" ? 1 : 0),
  last_seen: (d) => Date.parse(d.last_seen),
  alerts: (d) => d.open_alerts * 1000 + d.acknowledged_alerts,
  risk: (d) => (d.risk_level ? severityRank(d.risk_level) * 1000 + (d.risk_score || 0) : -1),
  missing: (d) => (d.readings_missing_estimate == null ? d.readings_missing : d.readings_missing_estimate),
  kind: (d) => d.profile.kind || "",
  location: (d) => d.profile.location || "",
};

export class FleetView {
  constructor() {
    this.devices = new Map();
    this.complete = true;
    this.sortKey = "device_id";
    this.sortDir = 1;
    this.page = 0;
    this.visible = false;
    this.pendingRefresh = new Map();
    this.loaded = false;
    this.bind();
    setInterval(() => this.visible && this.load(), REFRESH_MS);
    setInterval(() => this.visible && this.render(), 5000); // keeps "s ago" honest
  }

  bind() {
    for (const id of ["fleet-filter", "fleet-status", "fleet-risk", "fleet-alerting", "fleet-size"]) {
      $(id).addEventListener("input", () => {
        this.page = 0;
        this.render();
      });
    }
    $("fleet-prev").addEventListener("click", () => this.turn(-1));
    $("fleet-next").addEventListener("click", () => this.turn(1));
    for (const th of $("fleet-table").querySelectorAll("th[data-sort]")) {
      th.addEventListener("click", () => {
        const key = th.dataset.sort;
        this.sortDir = this.sortKey === key ? -this.sortDir : key === "device_id" ? 1 : -1;
        this.sortKey = key;
        this.render();
      });
    }
  }

  async show() {
    this.visible = true;
    if (!this.loaded) await this.load();
    else this.render();
  }

  hide() {
    this.visible = false;
  }

  async load() {
    try {
      const { items, complete } = await allPages("/devices", {});
      this.devices = new Map(items.map((d) => [d.device_id, d]));
      this.complete = complete;
      this.loaded = true;
      this.render();
    } catch (error) {
      $("fleet-count").textContent = `devices unavailable: ${error.detail || error.message}`;
    }
  }

  // After an alert event: re-read that one device (at most once per two seconds per device).
  refreshDevice(deviceId) {
    if (this.pendingRefresh.has(deviceId)) return;
    this.pendingRefresh.set(
      deviceId,
      setTimeout(async () => {
        this.pendingRefresh.delete(deviceId);
        try {
          const device = await api(`/devices/${encodeURIComponent(deviceId)}?window=15m`);
          this.devices.set(deviceId, device);
          if (this.visible) this.render();
        } catch {
          // the periodic reload will catch up
        }
      }, 2000),
    );
  }

  filtered() {
    const text = $("fleet-filter").value.trim().toLowerCase();
    const status = $("fleet-status").value;
    const minRisk = $("fleet-risk").value === "" ? -1 : Number($("fleet-risk").value);
    const alerting = $("fleet-alerting").checked;
    const rows = [];
    for (const d of this.devices.values()) {
      if (status && d.status !== status) continue;
      if (alerting && d.open_alerts + d.acknowledged_alerts === 0) continue;
      if (minRisk >= 0 && severityRank(d.risk_level) < minRisk) continue;
      if (text) {
        const hay = `${d.device_id} ${d.profile.kind || ""} ${d.profile.location || ""}`.toLowerCase();
        if (!hay.includes(text)) continue;
      }
      rows.push(d);
    }
    const key = SORTERS[this.sortKey];
    const dir = this.sortDir;
    rows.sort((a, b) => {
      const x = key(a);
      const y = key(b);
      // Strings in natural order (sensor_2 before sensor_10); ties by device id.
      const order = typeof x === "string" ? NATURAL.compare(x, y) : x < y ? -1 : x > y ? 1 : 0;
      return order * dir || NATURAL.compare(a.device_id, b.device_id);
    });
    return rows;
  }

  turn(step) {
    this.page += step;
    this.render();
  }

  render() {
    const rows = this.filtered();
    const size = Number($("fleet-size").value);
    const pages = Math.max(1, Math.ceil(rows.length / size));
    this.page = Math.min(Math.max(0, this.page), pages - 1);
    const slice = rows.slice(this.page * size, (this.page + 1) * size);
    const now = Date.now();
    clear($("fleet-table").querySelector("tbody"), slice.map((d) => this.row(d, now)));
    if (slice.length === 0) {
      $("fleet-table").querySelector("tbody").append(
        el("tr", {}, el("td", { colspan: 8, class: "muted empty" }, this.loaded ? "No devices match." : "Loading…")),
      );
    }
    for (const th of $("fleet-table").querySelectorAll("th[data-sort]")) {
      th.dataset.dir = th.dataset.sort === this.sortKey ? (this.sortDir > 0 ? "asc" : "desc") : "";
    }
    $("fleet-page").textContent = `page ${this.page + 1} of ${pages}`;
    $("fleet-prev").disabled = this.page === 0;
    $("fleet-next").disabled = this.page >= pages - 1;
    const total = this.devices.size;
    $("fleet-count").textContent =
      `${rows.length} of ${total} ${total === 1 ? "device" : "devices"}` +
      (this.complete ? "" : " (list capped; filter to narrow)");
  }

  row(d, now) {
    const href = `#/device/${encodeURIComponent(d.device_id)}`;
    const alerts = [];
    if (d.open_alerts) alerts.push(pill(`${d.open_alerts} open`, "alert"));
    if (d.acknowledged_alerts) alerts.push(pill(`${d.acknowledged_alerts} ack`, "ack"));
    const risk = d.risk_level
      ? [pill(d.risk_level, `sev-${d.risk_level}`), el("span", { class: "muted small" }, ` ${fmtNumber(d.risk_score, 0)}`)]
      : el("span", { class: "muted" }, "–");
    // Counted from the device's seq, or (no seq) estimated from its usual interval, and labelled so.
    const missing =
      d.readings_missing_estimate == null
        ? el("span", { class: d.readings_missing ? "" : "muted", title: "counted from the device's seq" }, fmtNumber(d.readings_missing, 0))
        : [
            el("span", { class: "muted" }, `≈ ${fmtNumber(d.readings_missing_estimate, 0)} `),
            el("span", { class: "muted small", title: "no seq: estimated from the device's usual interval over the 15 min before its latest reading" }, "estimate"),
          ];
    return el(
      "tr",
      { dataset: { device: d.device_id }, class: d.open_alerts ? "has-alerts" : "" },
      el("td", {}, el("a", { href }, d.device_id)),
      el("td", {}, pill(d.status, d.status)),
      el("td", { title: fmtTime(d.last_seen) }, fmtAgo(d.last_seen, now)),
      el("td", {}, alerts.length ? alerts : el("span", { class: "muted" }, "0")),
      el("td", {}, risk),
      el("td", {}, missing),
      el("td", {}, d.profile.kind || ""),
      el("td", {}, d.profile.location || ""),
    );
  }
}
