// Alerts: newest first, with severity colours, acknowledge and resolve. The list is read from
// GET /alerts and kept current by `alert` events from the live stream; an acknowledge or resolve
// updates the row from the API's answer. An alert that no longer matches the filters (resolved,
// while the list shows open and acknowledged ones) leaves the list at once.

import { api, ApiError, getRole, query } from "./api.js";
import { $, clear, el, fmtAgo, fmtNumber, fmtTime, pill, plural, toast } from "./dom.js";

const PAGE = 100;

// An alert row from a live message (gridmon.domain.alerts: epoch seconds, `episode_id`).
export function alertFromEvent(msg) {
  const iso = (epoch) => (epoch === null || epoch === undefined ? null : new Date(epoch * 1000).toISOString());
  return {
    id: msg.episode_id,
    device_id: msg.device_id,
    metric: msg.metric,
    detector: msg.detector,
    state: msg.state,
    severity: msg.severity,
    opened_at: iso(msg.opened_at),
    last_seen_at: iso(msg.last_seen_at),
    resolved_at: iso(msg.resolved_at),
    value: msg.value,
    value_ts: iso(msg.ts),
    score: msg.score,
    description: msg.description,
    readings_count: msg.readings_count,
  };
}

export class AlertsView {
  constructor({ onAdminNeeded, onChanged }) {
    this.onAdminNeeded = onAdminNeeded;
    this.onChanged = onChanged;
    this.alerts = new Map();
    this.left = new Map(); // alert id -> when it stopped matching the filters (a slower list read must not bring it back)
    this.lastEvent = new Map(); // alert id -> newest event_id applied (publishing is at-least-once)
    this.cursor = null;
    this.generation = 0;
    this.loaded = false;
    this.visible = false;
    this.fresh = new Set();
    for (const id of ["alerts-state", "alerts-severity", "alerts-device"]) {
      $(id).addEventListener("change", () => this.load());
    }
    $("alerts-more").addEventListener("click", () => this.load({ more: true }));
  }

  filters() {
    const state = $("alerts-state").value;
    return {
      state: state === "active" ? ["open", "acknowledged"] : state || undefined,
      severity: $("alerts-severity").value || undefined,
      device: $("alerts-device").value.trim() || undefined,
    };
  }

  matches(alert) {
    const f = this.filters();
    const states = f.state ? [f.state].flat() : null;
    return (
      (!states || states.includes(alert.state)) &&
      (!f.severity || alert.severity === f.severity) &&
      (!f.device || alert.device_id === f.device)
    );
  }

  async show() {
    this.visible = true;
    if (!this.loaded) await this.load();
    else this.render();
  }

  hide() {
    this.visible = false;
  }

  async load({ more = false } = {}) {
    const generation = more ? this.generation : ++this.generation;
    if (!more) this.left.clear(); // other filters: what left the old list may belong in the new one
    try {
      const page = await api("/alerts" + query({ ...this.filters(), limit: PAGE, cursor: more ? this.cursor : null }));
      if (generation !== this.generation) return; // a newer load (other filters) is under way
      const previous = this.alerts;
      if (!more) this.alerts = new Map();
      for (const alert of page.items) {
        const left = this.left.get(alert.id);
        if (left !== undefined && left >= Date.parse(alert.updated_at)) continue;
        // A list read that started before an acknowledge must not undo it: keep the newer row.
        const known = previous.get(alert.id);
        const newer = known && Date.parse(known.updated_at) > Date.parse(alert.updated_at);
        this.alerts.set(alert.id, newer ? known : alert);
      }
      this.cursor = page.next_cursor;
      this.loaded = true;
      this.render();
    } catch (error) {
      clear($("alerts-list"), el("li", { class: "muted empty" }, `alerts unavailable: ${error.detail || error.message}`));
    }
  }

  // A live `alert` event. Returns the merged alert.
  apply(msg) {
    const known = this.lastEvent.get(msg.episode_id) || 0;
    if (msg.event_id && msg.event_id <= known) return null;
    if (msg.event_id) this.lastEvent.set(msg.episode_id, msg.event_id);
    const incoming = alertFromEvent(msg);
    const existing = this.alerts.get(incoming.id);
    const merged = { ...(existing || {}), ...incoming };
    const kept = this.keep(merged);
    if (kept && !existing) this.flash(merged.id);
    if ((kept || existing) && this.visible) this.render();
    return merged;
  }

  // Put `alert` in the list if it matches the filters, take it out if it no longer does.
  keep(alert) {
    if (this.matches(alert)) {
      this.alerts.set(alert.id, alert);
      return true;
    }
    if (this.alerts.delete(alert.id)) {
      this.left.set(alert.id, Date.parse(alert.updated_at || alert.resolved_at || alert.last_seen_at) || Date.now());
    }
    return false;
  }

  flash(id) {
    this.fresh.add(id);
    setTimeout(() => {
      this.fresh.delete(id);
      const node = document.querySelector(`li[data-alert="${id}"]`);
      if (node) node.classList.remove("fresh");
    }, 4000);
  }

  render() {
    // Notes being typed survive a re-render caused by a live event.
    const typed = new Map();
    for (const input of $("alerts-list").querySelectorAll("li[data-alert] input.note")) {
      if (input.value) typed.set(input.closest("li").dataset.alert, input.value);
    }
    const items = [...this.alerts.values()].sort((a, b) => b.id - a.id);
    const now = Date.now();
    clear($("alerts-list"), items.length ? items.map((a) => this.item(a, now)) : el("li", { class: "muted empty" }, "No alerts."));
    for (const [id, value] of typed) {
      const input = $("alerts-list").querySelector(`li[data-alert="${id}"] input.note`);
      if (input) input.value = value;
    }
    $("alerts-more").hidden = !this.cursor;
  }

  item(a, now) {
    const note = el("input", { type: "text", class: "note", placeholder: "note (optional)", maxlength: 2000 });
    const buttons = [];
    if (a.state === "open") {
      buttons.push(note, el("button", { type: "button", class: "ack", onclick: () => this.act(a.id, "ack", note.value) }, "Acknowledge"));
    }
    if (a.state !== "resolved") {
      buttons.push(el("button", { type: "button", class: "ghost resolve", onclick: () => this.act(a.id, "resolve") }, "Resolve"));
    }
    const value = a.value === null || a.value === undefined ? "" : ` = ${fmtNumber(a.value, 2)}`;
    return el(
      "li",
      { class: `alert sev-border-${a.severity}${this.fresh.has(a.id) ? " fresh" : ""}`, dataset: { alert: a.id, state: a.state } },
      el(
        "div",
        { class: "alert-head" },
        pill(a.severity, `sev-${a.severity}`),
        el("a", { href: `#/device/${encodeURIComponent(a.device_id)}`, class: "device" }, a.device_id),
        el("span", { class: "metric" }, `${a.metric}${value}`),
        el("span", { class: "muted small" }, `${a.detector} · #${a.id}`),
        el("span", { class: "spacer" }),
        pill(a.state, `state-${a.state}`),
      ),
      el("div", { class: "alert-desc" }, a.description || ""),
      el(
        "div",
        { class: "alert-meta muted small" },
        el("span", { title: fmtTime(a.opened_at) }, `opened ${fmtAgo(a.opened_at, now)}`),
        el("span", { title: fmtTime(a.last_seen_at) }, ` · last seen ${fmtAgo(a.last_seen_at, now)}`),
        ` · ${a.readings_count === null || a.readings_count === undefined ? "? readings" : plural(a.readings_count, "reading")}`,
        a.acked_at ? ` · acknowledged ${fmtAgo(a.acked_at, now)}` : "",
        a.ack_note ? el("span", { class: "ack-note" }, ` · “${a.ack_note}”`) : "",
        a.resolved_at ? ` · resolved ${fmtAgo(a.resolved_at, now)}${a.resolved_reason ? ` (${a.resolved_reason})` : ""}` : "",
      ),
      buttons.length ? el("div", { class: "alert-actions" }, buttons) : null,
    );
  }

  async act(id, action, note = "") {
    const retry = () => this.act(id, action, note);
    if (!getRole()) {
      toast("Acknowledge and resolve need the admin token.", "warn");
      this.onAdminNeeded(retry);
      return;
    }
    try {
      const body = action === "ack" && note.trim() ? { note: note.trim() } : undefined;
      const alert = await api(`/alerts/${id}/${action}`, { method: "POST", body });
      this.keep(alert);
      this.render();
      this.onChanged(alert);
      toast(`Alert #${id} ${action === "ack" ? "acknowledged" : "resolved"}.`);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        toast("That needs the admin token.", "warn");
        this.onAdminNeeded(retry);
      } else {
        toast(`Could not ${action} alert #${id}: ${error.detail || error.message}`, "error");
      }
    }
  }
}
