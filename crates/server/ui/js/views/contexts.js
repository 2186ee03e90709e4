// Contexts: every context the identity may read, with its revision, entry
// count, active agents, last change and labels; filtered as you type.

import { get, allPages, ctxPath } from '../api.js';
import { h, replace, link, when, labels, errorBox, debounce } from '../dom.js';
import { ctxView, params, setParams } from '../nav.js';

/** Agents that wrote one of the last commits of a context and are active. */
async function activeAgents(ctx, active) {
  const page = await get(`${ctxPath(ctx)}/history`, { limit: 50 });
  const authors = [...new Set(page.commits.map((c) => c.author))];
  return active ? authors.filter((a) => active.has(a)) : authors;
}

export async function render(root) {
  const filter = h('input', { type: 'search', id: 'context-filter', placeholder: 'Filter by id or label (team=research)', value: params().get('q') || '' });
  const count = h('span', { class: 'muted' });
  const tbody = h('tbody');
  const more = h('div');
  replace(root, h('section', { class: 'page' },
    h('div', { class: 'toolbar' }, h('h1', {}, 'Contexts'), filter, count),
    h('table', { class: 'grid', id: 'contexts' },
      h('thead', {}, h('tr', {}, ['context', 'revision', 'entries', 'active agents', 'last change', 'labels'].map((t) => h('th', {}, t)))),
      tbody),
    more));

  let active = null;
  try {
    const agents = await allPages('/v1/agents', 'agents', { status: 'active', limit: 1000 }, { max: 5000 });
    active = new Set(agents.map((a) => a.id));
  } catch { /* an identity that may not list agents sees the writers */ }

  const rows = [];
  const observer = new IntersectionObserver((seen) => {
    for (const s of seen) {
      if (!s.isIntersecting || s.target.dataset.loaded) continue;
      s.target.dataset.loaded = '1';
      const cell = s.target.querySelector('.agents');
      activeAgents(s.target.dataset.ctx, active)
        .then((list) => replace(cell, list.length ? list.map((a) => h('span', { class: 'chip agent' }, a)) : h('span', { class: 'muted' }, '—')))
        .catch(() => replace(cell, h('span', { class: 'muted' }, '?')));
    }
  });

  function matches(c, q) {
    if (!q) return true;
    const needle = q.toLowerCase();
    if (c.id.toLowerCase().includes(needle)) return true;
    return Object.entries(c.labels || {}).some(([k, v]) => `${k}=${v}`.toLowerCase().includes(needle));
  }

  function draw() {
    const q = filter.value.trim();
    const shown = rows.filter((r) => matches(r.c, q));
    replace(tbody, shown.map((r) => r.el));
    replace(count, `${shown.length} of ${rows.length}${cursor ? '+' : ''}`);
  }

  let cursor;
  async function load() {
    try {
      const page = await get('/v1/contexts', { limit: 200, cursor });
      for (const c of page.contexts) {
        const el = h('tr', { data: { ctx: c.id } },
          h('td', {}, link(ctxView(c.id), c.id)),
          h('td', { class: 'num' }, c.revision),
          h('td', { class: 'num' }, c.entry_count),
          h('td', { class: 'agents' }, h('span', { class: 'muted' }, '…')),
          h('td', {}, when(c.updated_at)),
          h('td', {}, labels(c.labels)));
        observer.observe(el);
        rows.push({ c, el });
      }
      cursor = page.next_cursor;
      replace(more, cursor ? h('button', { on: { click: load } }, 'Load more contexts') : null);
      draw();
    } catch (e) {
      replace(more, errorBox(e));
    }
  }
  filter.addEventListener('input', debounce(() => { setParams({ q: filter.value.trim() }); draw(); }, 150));
  await load();
  if (!rows.length) replace(tbody, h('tr', {}, h('td', { attrs: { colspan: 6 }, class: 'muted' }, 'No context this identity may read.')));
  return () => observer.disconnect();
}
