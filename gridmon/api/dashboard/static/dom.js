// DOM and formatting helpers. Text always goes in through textContent, never as HTML, so values
// from devices (ids, locations, alert descriptions) cannot inject markup.

export const SEVERITIES = ["low", "medium", "high", "critical"];

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function $(id) {
  return document.getElementById(id);
}

export function clear(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

export function severityRank(level) {
  const rank = SEVERITIES.indexOf(level);
  return rank < 0 ? -1 : rank;
}

export function pill(text, kind) {
  return el("span", { class: `pill pill-${kind}` }, text);
}

export function fmtNumber(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function fmtTime(value) {
  if (!value) return "–";
  const date = value instanceof Date ? value : new Date(value);
  return date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

export function fmtAgo(value, now = Date.now()) {
  if (!value) return "–";
  const seconds = Math.max(0, Math.round((now - new Date(value).getTime()) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h ago`;
  return `${(seconds / 86400).toFixed(1)} d ago`;
}

export function toast(text, kind = "info") {
  const node = el("div", { class: `toast toast-${kind}` }, text);
  document.getElementById("toasts").append(node);
  setTimeout(() => node.remove(), 6000);
}

// A definition list from [label, value] pairs; values may be nodes.
export function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.filter(Boolean).map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

// "1 reading", "2 readings" (numbers formatted; `many` for irregular plurals).
export function plural(n, one, many = `${one}s`) {
  return `${fmtNumber(n, 0)} ${n === 1 ? one : many}`;
}
