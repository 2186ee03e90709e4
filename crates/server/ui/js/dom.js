// DOM helpers. Everything a server or an agent wrote is put in the page
// as text (textContent / text nodes), never parsed as markup.

/**
 * Makes an element. `props`: `class`, `text`, `title`, `href`, `on`
 * ({event: handler}), `attrs` ({name: value}), `data` ({key: value}), and
 * any property of the element (`value`, `type`, `checked`...). Children
 * are nodes, strings (as text), numbers, arrays of those, or null.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'attrs') for (const [a, av] of Object.entries(v)) { if (av !== null && av !== undefined && av !== false) el.setAttribute(a, av === true ? '' : String(av)); }
    else if (k === 'data') for (const [d, dv] of Object.entries(v)) el.dataset[d] = String(dv);
    else if (k === 'href' || k === 'title' || k === 'role' || k === 'for' || k === 'list') el.setAttribute(k, String(v));
    else el[k] = v;
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A link inside the console (handled by the router, no reload). */
export function link(path, ...children) {
  return h('a', { href: path, data: { internal: '1' } }, ...children);
}

/** A status badge. */
export function badge(text, kind = text) {
  return h('span', { class: ['badge', `badge-${String(kind).replace(/[^a-z0-9-]/gi, '')}`] }, text);
}

/** A short, human time: "12:03:04" today, else the date too. */
export function time(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const now = new Date();
  return d.toDateString() === now.toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}

/** "3 min ago", "in 20 s". */
export function relative(iso) {
  if (!iso) return '';
  const ms = new Date(iso).getTime() - Date.now();
  if (Number.isNaN(ms)) return '';
  const abs = Math.abs(ms);
  const [n, unit] = abs < 60e3 ? [Math.round(abs / 1e3), 's'] : abs < 3600e3 ? [Math.round(abs / 60e3), 'min']
    : abs < 86400e3 ? [Math.round(abs / 3600e3), 'h'] : [Math.round(abs / 86400e3), 'd'];
  return ms < 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`;
}

/** A `<time>` element with the full date as its title. */
export function when(iso) {
  return h('time', { attrs: { datetime: iso }, title: iso || '' }, time(iso));
}

/** A message box for an error of the API or the network. */
export function errorBox(err) {
  const code = err && err.code ? `${err.code}: ` : '';
  return h('div', { class: 'error', role: 'alert' }, code + (err && err.message ? err.message : String(err)));
}

/** A key=value label list as chips. */
export function labels(obj) {
  return Object.entries(obj || {}).map(([k, v]) => h('span', { class: 'chip' }, `${k}=${v}`));
}

/** Debounces `fn` by `ms`. */
export function debounce(fn, ms) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

/**
 * A virtualized list of fixed-height rows: only the rows in view (and a
 * margin) are in the DOM, so 10,000 rows scroll as smoothly as 10.
 * `render(i)` makes row i; `setCount(n)` and `refresh()` redraw.
 */
export class VirtualList {
  constructor({ rowHeight = 26, render, count = 0, className = '' }) {
    this.rowHeight = rowHeight;
    this.render = render;
    this.count = count;
    this.el = h('div', { class: ['vlist', className], attrs: { tabindex: 0, role: 'list' } });
    this.spacer = h('div', { class: 'vlist-spacer' });
    this.rows = h('div', { class: 'vlist-rows' });
    this.spacer.appendChild(this.rows);
    this.el.appendChild(this.spacer);
    this.frame = 0;
    this.el.addEventListener('scroll', () => this.schedule());
    this.observer = new ResizeObserver(() => this.schedule());
    this.observer.observe(this.el);
    this.setCount(count);
  }

  setCount(n) {
    this.count = n;
    this.spacer.style.height = `${n * this.rowHeight}px`;
    this.refresh();
  }

  refresh() {
    this.first = -1;
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  draw() {
    const top = this.el.scrollTop;
    const height = this.el.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - 10);
    const last = Math.min(this.count, Math.ceil((top + height) / this.rowHeight) + 10);
    if (first === this.first && last === this.last) return;
    this.first = first;
    this.last = last;
    const nodes = [];
    for (let i = first; i < last; i++) {
      const row = this.render(i);
      row.classList.add('vlist-row');
      row.style.transform = `translateY(${i * this.rowHeight}px)`;
      row.style.height = `${this.rowHeight}px`;
      nodes.push(row);
    }
    this.rows.replaceChildren(...nodes);
  }

  /** Scrolls row i into view. */
  reveal(i) {
    const y = i * this.rowHeight;
    if (y < this.el.scrollTop || y > this.el.scrollTop + this.el.clientHeight - this.rowHeight) {
      this.el.scrollTop = Math.max(0, y - this.el.clientHeight / 3);
    }
    this.refresh();
  }

  destroy() {
    this.observer.disconnect();
    cancelAnimationFrame(this.frame);
  }
}
