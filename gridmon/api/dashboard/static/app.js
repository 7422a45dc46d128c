// The dashboard's entry point: hash routes (#/fleet, #/device/<id>, #/alerts, #/models), the
// summary strip, the token dialog, and the live stream wired to the views.

import { getRole, loadSession, setToken } from "./api.js";
import { AlertsView } from "./alerts.js";
import { DeviceView } from "./device.js";
import { $, fmtNumber, plural, toast } from "./dom.js";
import { FleetView } from "./fleet.js";
import { LiveConnection } from "./live.js";
import { ModelsView } from "./models.js";

// What the user was doing when the token was asked for: done once it is accepted (not on cancel).
let afterToken = null;

const openTokenDialog = (then = null) => {
  afterToken = then;
  $("token-input").value = ""; // the token is never kept: enter it to start a new session
  $("token-dialog").showModal();
  $("token-input").focus();
};

const fleet = new FleetView();
const device = new DeviceView();
const views = {
  fleet,
  device,
  alerts: new AlertsView({
    onAdminNeeded: openTokenDialog,
    // An operator's acknowledge or resolve changes that device's counts and its chart.
    onChanged: (alert) => {
      fleet.refreshDevice(alert.device_id);
      device.alertFor(alert.device_id);
    },
  }),
  models: new ModelsView({ onAdminNeeded: openTokenDialog }),
};

function route() {
  const hash = location.hash || "#/fleet";
  const [, name = "fleet", arg] = hash.match(/^#\/([a-z]+)(?:\/(.*))?$/) || [];
  const view = views[name] ? name : "fleet";
  for (const [key, v] of Object.entries(views)) {
    $(`view-${key}`).hidden = key !== view;
    if (key !== view) v.hide();
  }
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    link.classList.toggle("active", link.dataset.view === view || (view === "device" && link.dataset.view === "fleet"));
  }
  document.body.dataset.view = view;
  if (view === "device") {
    const id = decodeURIComponent(arg || "");
    document.title = `${id} · gridmon`;
    views.device.show(id);
  } else {
    document.title = `${view[0].toUpperCase()}${view.slice(1)} · gridmon`;
    views[view].show();
  }
}

function renderSummary(s) {
  $("sum-devices").textContent = fmtNumber(s.devices.total, 0);
  $("sum-devices-sub").textContent = `${s.devices.online} online · ${s.devices.stale} stale`;
  $("sum-rate").textContent = fmtNumber(s.readings_per_s, 1);
  $("sum-rate-sub").textContent = `${plural(s.devices_reporting, "device")} reporting (last ${s.window_s} s)`;
  let open = 0;
  for (const level of ["critical", "high", "medium", "low"]) {
    const n = s.open_alerts[level] || 0;
    open += n;
    $(`sum-${level}`).textContent = n;
    $(`sum-${level}`).parentElement.classList.toggle("zero", n === 0);
  }
  $("sum-acked").textContent = `${s.acknowledged_alerts} acknowledged`;
  const badge = $("nav-alert-count");
  badge.hidden = open === 0;
  badge.textContent = open;
}

function setLiveState(state, text) {
  const node = $("live-state");
  node.dataset.state = state;
  node.textContent = text;
}

let bannerKind = "";

function showBanner(text, kind = "status") {
  if (!text && kind !== bannerKind) return; // only the same kind of news clears a banner
  bannerKind = text ? kind : "";
  $("banner").hidden = !text;
  $("banner").textContent = text || "";
}

const live = new LiveConnection({
  onState: setLiveState,
  // (Re)connected: anything published while disconnected is in the tables, so re-read them.
  onOpen: () => {
    if (views.alerts.loaded) views.alerts.load();
  },
  onEvent: (name, data) => {
    if (name === "summary") {
      renderSummary(data);
      showBanner("", "access"); // the stream reads with the token: access is fine now
    }
    else if (name === "alert") {
      const alert = views.alerts.apply(data);
      if (!alert) return;
      views.fleet.refreshDevice(data.device_id);
      views.device.alertFor(data.device_id);
      if (data.event === "opened" || data.event === "escalated") {
        toast(`${data.severity} alert: ${data.device_id} ${data.metric} — ${data.description}`, `sev-${data.severity}`);
      }
    } else if (name === "status") {
      const problems = Object.values(data.problems || {});
      showBanner(problems.length ? `Live updates degraded: ${problems.join("; ")}` : "");
    } else if (name === "resync") {
      views.alerts.load();
    }
  },
});

function bindTokenDialog() {
  const dialog = $("token-dialog");
  $("token-button").addEventListener("click", () => openTokenDialog());
  $("token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    $("token-input").value = "";
    const then = afterToken;
    try {
      await setToken(token);
      afterToken = null;
      dialog.close();
      toast(`Signed in (${getRole()} access) for this browser session.`);
      if (token && then) then();
    } catch (error) {
      toast(`Token refused: ${error.detail || error.message}`, "warn");
    }
  });
  // Cancelled or forgotten: nothing to do afterwards (unless the dialog was opened again meanwhile).
  dialog.addEventListener("close", () => {
    if (!dialog.open) afterToken = null;
  });
  $("token-forget").addEventListener("click", async () => {
    await setToken("");
    dialog.close();
    toast("Signed out.");
  });
  $("token-cancel").addEventListener("click", () => dialog.close());
  const label = () => {
    $("token-button").textContent = getRole() ? "Token ✓" : "Token";
  };
  label();
  window.addEventListener("gridmon:session", label);
  window.addEventListener("gridmon:token", () => {
    label();
    live.start();
    route();
  });
  window.addEventListener("gridmon:unauthorized", (event) => {
    if (event.detail.status === 401) showBanner(`Access refused: ${event.detail.detail}. Enter a token (top right).`, "access");
  });
}

bindTokenDialog();
window.addEventListener("hashchange", route);
route();
live.start();
loadSession(); // the cookie needs no loading; this only tells the token button what it allows
