// The API client of the console. The token lives in this tab's
// sessionStorage only and goes out as `Authorization: Bearer`: never in a
// URL, never in a cookie (so there is nothing for another site to forge).

const TOKEN = 'ctxmesh.token';
const ACT_AS = 'ctxmesh.actAs';

/** An error answer of the API: `status`, stable `code`, `details`. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN) || ''; },
  get actAs() { return sessionStorage.getItem(ACT_AS) || ''; },
  /** Who the credentials are (`GET /v1/whoami`), once signed in. */
  identity: null,
  save(token, actAs) {
    sessionStorage.setItem(TOKEN, token);
    if (actAs) sessionStorage.setItem(ACT_AS, actAs); else sessionStorage.removeItem(ACT_AS);
  },
  clear() {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(ACT_AS);
    this.identity = null;
  },
};

/** The request headers that carry the session's credentials. */
export function authHeaders(token = session.token, actAs = session.actAs) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (actAs) headers['X-Agent-Id'] = actAs;
  return headers;
}

/** `?a=1&b=2` from an object, leaving out empty values. */
export function query(params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** The path of a context (ids are URL-safe, encoded anyway). */
export function ctxPath(ctx) {
  return `/v1/contexts/${encodeURIComponent(ctx)}`;
}

/** The path of an entry: every `/` of the key encoded, so that a key
 * ending in `history` is the entry and not its history. */
export function entryPath(ctx, key) {
  return `${ctxPath(ctx)}/entries/${encodeURIComponent(key)}`;
}

/**
 * Calls the API. `opts`: `query`, `body` (JSON), `headers`, `signal`,
 * `token`/`actAs` (defaults: the session's). Answers the parsed JSON (or
 * null for 204); throws an ApiError for an error answer.
 */
export async function api(method, path, opts = {}) {
  const headers = { Accept: 'application/json', ...authHeaders(opts.token ?? session.token, opts.actAs ?? session.actAs), ...(opts.headers || {}) };
  let body;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  let res;
  try {
    res = await fetch(path + query(opts.query), { method, headers, body, signal: opts.signal, cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'unavailable', `the server did not answer (${e.message})`);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    const e = json && json.error;
    throw new ApiError(res.status, e ? e.code : 'http_' + res.status, e ? e.message : text || res.statusText, e && e.details);
  }
  return json;
}

export const get = (path, q, opts = {}) => api('GET', path, { ...opts, query: q });
export const post = (path, body, opts = {}) => api('POST', path, { ...opts, body });

/**
 * Reads a cursor-paged listing (`{items..., next_cursor}`), calling
 * `onPage(items, page)` per page, until the end or `max` items.
 */
export async function allPages(path, field, q = {}, { onPage, max = Infinity, signal } = {}) {
  const out = [];
  let cursor;
  do {
    const page = await get(path, { ...q, cursor }, { signal });
    const items = page[field] || [];
    out.push(...items);
    if (onPage) onPage(items, page);
    cursor = page.next_cursor;
  } while (cursor && out.length < max);
  return out;
}
