// Calls to the gridmon API with the token kept in this browser. Errors carry the API's one-line
// `detail` so the page can show what went wrong.

const TOKEN_KEY = "gridmon.token";

export function getToken() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
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
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
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
