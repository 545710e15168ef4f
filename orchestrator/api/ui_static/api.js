// The canonical API over fetch, with the key from this tab's sessionStorage as the X-API-Key header:
// the key is the only credential sent (never a cookie) and never goes into a URL.

export const KEY_STORE = "orchestrator.apiKey";
// The API sits one level above /ui/, also behind a proxy that mounts the app under a prefix.
const API_ROOT = new URL("..", document.baseURI);

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function url(path, query) {
  const target = new URL(path, API_ROOT);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== "" && value !== null && value !== undefined) target.searchParams.set(name, value);
  }
  return target;
}

export function keyHeaders(extra) {
  return { "X-API-Key": sessionStorage.getItem(KEY_STORE) || "", ...(extra || {}) };
}

function describe(body, status) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((item) => `${(item.loc || []).join(".")}: ${item.msg}`).join("; ");
  }
  return `HTTP ${status}`;
}

export async function api(path, { query, method = "GET", headers } = {}) {
  // credentials "omit": the key header is the only credential, whatever cookies the browser holds.
  const response = await fetch(url(path, query), {
    method, headers: keyHeaders({ Accept: "application/json", ...(headers || {}) }), credentials: "omit", cache: "no-store",
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, describe(body, response.status));
  return body;
}
