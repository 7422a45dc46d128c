// Calls to the gridmon API. The token is never stored by this page: it is sent once to
// /ui/session, which answers with an HttpOnly, SameSite=Strict session cookie that the browser
// then sends with every request (and with the live stream). Errors carry the API's one-line
// `detail` so the page can show what went wrong.

let sessionRole = null; // "admin", "read" or null: what the cookie allows (the page cannot read it)

export function getRole() {
  return sessionRole;
}

export async function loadSession() {
  try {
    const response = await fetch("/ui/session", { cache: "no-store" });
    sessionRole = response.ok ? (await response.json()).role : null;
  } catch {
    sessionRole = null;
  }
  window.dispatchEvent(new CustomEvent("gridmon:session"));
  return sessionRole;
}

// Trade a token for the session cookie (or forget the session when `token` is empty).
export async function setToken(token) {
  const init = token
    ? { method: "POST", headers: { Authorization: `Bearer ${token}` } }
    : { method: "DELETE" };
  const response = await fetch("/ui/session", { ...init, cache: "no-store" });
  if (token && !response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail || detail;
    } catch {
      // not JSON: keep the status text
    }
    throw new ApiError(response.status, detail);
  }
  await loadSession();
  window.dispatchEvent(new CustomEvent("gridmon:token"));
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(key, item);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export async function api(path, { method = "GET", body } = {}) {
  // The header a cross-site form cannot set: the API wants it on writes made with the cookie.
  const headers = { Accept: "application/json", "X-Requested-With": "gridmon" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail || detail;
    } catch {
      // not JSON: keep the status text
    }
    if (response.status === 401 || response.status === 403) {
      window.dispatchEvent(new CustomEvent("gridmon:unauthorized", { detail: { status: response.status, detail } }));
    }
    throw new ApiError(response.status, detail);
  }
  return response.status === 204 ? null : response.json();
}

// Every item of a keyset-paginated list, page by page, up to `maxItems`.
export async function allPages(path, params, { pageSize = 500, maxItems = 20000 } = {}) {
  const items = [];
  let cursor = null;
  do {
    const page = await api(path + query({ ...params, limit: pageSize, cursor }));
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < maxItems);
  return { items, complete: !cursor };
}
