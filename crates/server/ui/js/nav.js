// Navigation between the console's views: each view has its own address
// (`/ui/c/<context>/timeline?rev=12`), so it can be linked and reloaded.

let renderCurrent = () => {};

/** Set by main.js: renders the view of the current address. */
export function onNavigate(fn) {
  renderCurrent = fn;
}

/** Goes to `path` (a console address) and renders its view. */
export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  renderCurrent();
}

/** The current address's query parameters. */
export function params() {
  return new URLSearchParams(location.search);
}

/** Updates the address's query parameters in place (no new view). */
export function setParams(values) {
  const q = params();
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined || v === null || v === '') q.delete(k);
    else q.set(k, String(v));
  }
  const s = q.toString();
  history.replaceState(null, '', location.pathname + (s ? `?${s}` : ''));
}

/** The console address of a context's view. */
export function ctxView(ctx, view = '', q = {}) {
  const s = new URLSearchParams(Object.entries(q).filter(([, v]) => v !== undefined && v !== null && v !== '')).toString();
  return `/ui/c/${encodeURIComponent(ctx)}${view ? '/' + view : ''}${s ? '?' + s : ''}`;
}
