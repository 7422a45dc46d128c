// Models: the anomaly model versions with their training figures, and a retrain button that
// follows the Celery task through GET /admin/tasks/{id} until it is done. Without the admin
// token the button asks for it, and the retrain starts once it is saved.

import { api, ApiError, getRole } from "./api.js";
import { $, clear, el, fmtNumber, fmtTime, pill, plural, toast } from "./dom.js";

const POLL_MS = 1000;

function describeParams(m) {
  const p = m.params || {};
  const parts = [];
  if (p.n_estimators) parts.push(`${p.n_estimators} trees`);
  if (p.target_false_alarm_rate !== undefined) parts.push(`target FAR ${fmtNumber(p.target_false_alarm_rate * 100, 3)} %`);
  if (Array.isArray(m.features)) parts.push(`${m.features.length} features`);
  if (m.note) parts.push(m.note);
  return parts.join(" · ") || "–";
}

export class ModelsView {
  constructor({ onAdminNeeded }) {
    this.onAdminNeeded = onAdminNeeded;
    this.polling = null;
    $("retrain-button").addEventListener("click", () => this.retrain());
  }

  async show() {
    await this.load();
  }

  hide() {}

  async load() {
    const body = $("models-table").querySelector("tbody");
    try {
      const versions = await api("/models?limit=50");
      clear(body, versions.length ? versions.map((m) => this.row(m)) : el("tr", {}, el("td", { colspan: 11, class: "muted empty" }, "No model trained yet.")));
    } catch (error) {
      clear(body, el("tr", {}, el("td", { colspan: 11, class: "muted empty" }, `models unavailable: ${error.detail || error.message}`)));
    }
  }

  row(m) {
    const q = (m.metrics && m.metrics.score_quantiles) || {};
    const window = m.window_start ? `${fmtTime(m.window_start)} → ${fmtTime(m.window_end)}` : "–";
    const activate =
      m.status === "active"
        ? null
        : el("button", { type: "button", class: "ghost small", onclick: () => this.activate(m.id) }, "Activate");
    return el(
      "tr",
      { dataset: { model: m.id } },
      el("td", {}, `v${m.id}`),
      el("td", {}, pill(m.status, m.status === "active" ? "online" : "stale")),
      el("td", {}, fmtTime(m.trained_at)),
      el("td", { class: "small" }, window),
      el("td", {}, fmtNumber(m.n_samples, 0)),
      el("td", {}, fmtNumber(m.threshold, 4)),
      el("td", {}, m.metrics && m.metrics.calibrated_far !== undefined ? `${fmtNumber(m.metrics.calibrated_far * 100, 3)} %` : "–"),
      el("td", {}, `${fmtNumber(q.p50, 3)} / ${fmtNumber(q.p99, 3)}`),
      el("td", {}, m.metrics && m.metrics.n_trimmed !== undefined ? fmtNumber(m.metrics.n_trimmed, 0) : "–"),
      el("td", { class: "small" }, describeParams(m)),
      el("td", {}, activate),
    );
  }

  async activate(id) {
    try {
      await api(`/models/${id}/activate`, { method: "POST" });
      toast(`Model v${id} is now active.`);
      await this.load();
    } catch (error) {
      this.failed(error, "activate", () => this.activate(id));
    }
  }

  async retrain() {
    const retry = () => this.retrain();
    if (!getRole()) {
      toast("Retraining needs the admin token.", "warn");
      this.onAdminNeeded(retry);
      return;
    }
    $("retrain-button").disabled = true;
    try {
      const task = await api("/admin/retrain", { method: "POST" });
      this.follow(task.task_id);
    } catch (error) {
      $("retrain-button").disabled = false;
      this.failed(error, "retrain", retry);
    }
  }

  follow(taskId) {
    const status = $("retrain-status");
    status.textContent = `retrain ${taskId.slice(0, 8)}: queued`;
    const poll = async () => {
      try {
        const state = await api(`/admin/tasks/${taskId}`);
        status.textContent = `retrain ${taskId.slice(0, 8)}: ${state.state}`;
        if (!state.ready) {
          this.polling = setTimeout(poll, POLL_MS);
          return;
        }
        $("retrain-button").disabled = false;
        if (state.state === "SUCCESS") {
          const r = state.result || {};
          if (r.status === "trained") status.textContent += ` — model v${r.model_id} on ${plural(r.n_samples, "reading")}`;
          else if (r.reason) status.textContent += ` — skipped: ${r.reason}`;
          await this.load();
        } else {
          status.textContent += state.error ? ` — ${state.error}` : "";
        }
      } catch (error) {
        $("retrain-button").disabled = false;
        status.textContent = `retrain ${taskId.slice(0, 8)}: status unavailable (${error.detail || error.message})`;
      }
    };
    clearTimeout(this.polling);
    this.polling = setTimeout(poll, POLL_MS);
  }

  failed(error, what, retry = undefined) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      toast(`To ${what}, enter the admin token.`, "warn");
      this.onAdminNeeded(retry);
    } else {
      toast(`Could not ${what}: ${error.detail || error.message}`, "error");
    }
  }
}
