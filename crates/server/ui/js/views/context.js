// A context's entries as a tree of keys (virtualized: 10,000 entries
// scroll like 10), with the selected entry's value, metadata, author and
// versions. `?at=REV` shows the context as of that revision.

import { get, ctxPath, entryPath } from '../api.js';
import { h, replace, link, when, badge, errorBox, debounce, VirtualList } from '../dom.js';
import { preview, valueBlock } from '../json.js';
import { ctxView, navigate, params, setParams } from '../nav.js';

/** The keys of a context as a tree of `/`-separated segments. */
class KeyTree {
  constructor() {
    this.root = { name: '', path: '', children: new Map(), entry: null, size: 0 };
    this.entries = [];
  }

  add(entries) {
    for (const e of entries) {
      this.entries.push(e);
      let node = this.root;
      node.size++;
      const parts = e.key.split('/');
      parts.forEach((part, i) => {
        const path = parts.slice(0, i + 1).join('/');
        let next = node.children.get(part);
        if (!next) { next = { name: part, path, children: new Map(), entry: null, size: 0 }; node.children.set(part, next); }
        next.size++;
        node = next;
      });
      node.entry = e;
    }
  }

  /** The visible rows: expanded nodes' children, or the keys matching `filter`. */
  rows(expanded, filter) {
    if (filter) {
      const f = filter.toLowerCase();
      return this.entries.filter((e) => e.key.toLowerCase().includes(f)).map((e) => ({ node: { name: e.key, path: e.key, children: new Map(), entry: e, size: 1 }, depth: 0 }));
    }
    const out = [];
    const walk = (node, depth) => {
      const kids = [...node.children.values()].sort((a, b) => a.name.localeCompare(b.name));
      for (const k of kids) {
        out.push({ node: k, depth });
        if (k.children.size && expanded.has(k.path)) walk(k, depth + 1);
      }
    };
    walk(this.root, 0);
    return out;
  }
}

/**
 * Loads and shows a context's entries (at `at`, or now) as a tree in
 * `container`. `onSelect(entry)` when a key is picked. Answers
 * `{destroy(), select(key)}`.
 */
export function entryTree(container, ctx, { at, selected, filterText = '', onSelect = () => {}, onFilter = () => {} } = {}) {
  const tree = new KeyTree();
  const expanded = new Set();
  let rows = [];
  let current = selected || null;
  let stopped = false;
  const status = h('span', { class: 'muted tree-status' }, 'Loading…');
  const filter = h('input', { type: 'search', class: 'tree-filter', placeholder: 'Filter keys', value: filterText });
  const list = new VirtualList({
    rowHeight: 26,
    className: 'tree',
    render: (i) => {
      const { node, depth } = rows[i];
      const hasKids = node.children.size > 0;
      const open = expanded.has(node.path);
      const row = h('div', {
        class: ['tree-row', node.entry && node.path === current ? 'selected' : null, node.entry ? 'leaf' : 'branch'],
        data: { key: node.path },
        attrs: { role: 'listitem' },
        on: { click: () => {
          if (hasKids && (!node.entry || node.path === current)) toggle(node.path);
          if (node.entry) { current = node.path; onSelect(node.entry); list.refresh(); }
        } },
      },
      h('span', { class: 'twisty' }, hasKids ? (open ? '▾' : '▸') : ''),
      h('span', { class: 'key' }, node.name),
      hasKids ? h('span', { class: 'count' }, String(node.size)) : null,
      node.entry ? h('span', { class: 'preview' }, preview(node.entry.value, 80)) : null,
      node.entry ? h('span', { class: 'author' }, node.entry.author) : null,
      node.entry ? h('span', { class: 'rev' }, `r${node.entry.revision}`) : null);
      row.style.paddingLeft = `${6 + depth * 16}px`;
      return row;
    },
  });

  function redraw() {
    rows = tree.rows(expanded, filter.value.trim());
    list.setCount(rows.length);
  }
  function toggle(path) {
    if (expanded.has(path)) expanded.delete(path); else expanded.add(path);
    redraw();
  }
  function reveal(key) {
    const parts = key.split('/');
    for (let i = 1; i < parts.length; i++) expanded.add(parts.slice(0, i).join('/'));
    redraw();
    const i = rows.findIndex((r) => r.node.path === key);
    if (i >= 0) list.reveal(i);
  }

  filter.addEventListener('input', debounce(() => { onFilter(filter.value.trim()); redraw(); }, 120));
  replace(container, h('div', { class: 'tree-panel' }, h('div', { class: 'toolbar' }, filter, status), list.el));

  (async () => {
    let cursor;
    let revision;
    try {
      do {
        const page = await get(`${ctxPath(ctx)}/entries`, { limit: 1000, at, cursor });
        if (stopped) return;
        revision = page.revision;
        tree.add(page.entries);
        cursor = page.next_cursor;
        // A small context opens fully; a large one by its top level.
        if (!cursor && tree.entries.length <= 300) for (const e of tree.entries) { const p = e.key.split('/'); for (let i = 1; i < p.length; i++) expanded.add(p.slice(0, i).join('/')); }
        redraw();
        replace(status, `${tree.entries.length} entries${cursor ? ' (loading…)' : ''} at revision ${revision}`);
      } while (cursor);
      if (current) {
        reveal(current);
        const e = tree.entries.find((x) => x.key === current);
        onSelect(e || null, current);
      }
    } catch (e) {
      replace(status, errorBox(e));
    }
  })();

  return { destroy() { stopped = true; list.destroy(); }, select(key) { current = key; reveal(key); } };
}

const META = [
  ['kind', (e) => e.kind], ['tags', (e) => (e.tags || []).join(', ')], ['priority', (e) => e.priority],
  ['confidence', (e) => e.confidence], ['author', (e) => e.author], ['version', (e) => e.version],
  ['revision', (e) => e.revision], ['created at revision', (e) => e.created_revision], ['updated', (e) => when(e.updated_at)],
  ['depends on', (e) => (e.depends_on || []).join(', ')], ['relevance', (e) => (e.relevance && Object.keys(e.relevance).length ? JSON.stringify(e.relevance) : '')],
  ['expires', (e) => (e.expires_at ? when(e.expires_at) : '')], ['confidential', (e) => (e.confidential ? 'yes' : '')],
  ['vclock', (e) => (e.vclock && Object.keys(e.vclock).length ? JSON.stringify(e.vclock) : '')],
];

/** The detail of one entry: value, metadata, versions. */
export function entryDetail(panel, ctx, entry, { at, key } = {}) {
  if (!entry) {
    replace(panel, key ? h('p', { class: 'muted' }, `No entry ${key}${at ? ` at revision ${at}` : ''}.`) : h('p', { class: 'muted' }, 'Pick a key to see its value, metadata and versions.'));
    return;
  }
  const versions = h('div', { class: 'versions' }, h('p', { class: 'muted' }, 'Loading versions…'));
  replace(panel, h('div', { class: 'entry-detail', id: 'entry-detail' },
    h('h2', { class: 'mono' }, entry.key),
    h('h3', {}, 'Value'), valueBlock(entry.value),
    h('h3', {}, 'Metadata'),
    h('table', { class: 'meta' }, h('tbody', {}, META.map(([name, f]) => {
      const v = f(entry);
      return v === undefined || v === null || v === '' ? null : h('tr', {}, h('th', {}, name), h('td', {}, v));
    }))),
    h('h3', {}, 'Versions'), versions));
  get(`${entryPath(ctx, entry.key)}/history`, { limit: 50 }).then((page) => {
    const list = page.versions;
    const from = h('select', { id: 'version-from' }, list.map((v) => h('option', { value: v.revision }, `r${v.revision} ${v.change}`)));
    const to = h('select', { id: 'version-to' }, list.map((v) => h('option', { value: v.revision }, `r${v.revision} ${v.change}`)));
    if (list.length > 1) from.value = String(list[1].revision);
    replace(versions,
      h('table', { class: 'grid compact' }, h('tbody', {}, list.map((v, i) => h('tr', {},
        h('td', { class: 'mono' }, `r${v.revision}`), h('td', {}, badge(v.change)),
        h('td', {}, v.entry ? v.entry.author : ''), h('td', {}, v.entry ? when(v.entry.updated_at) : ''),
        h('td', { class: 'preview' }, v.entry ? preview(v.entry.value, 60) : ''),
        h('td', {}, list[i + 1] ? link(ctxView(ctx, 'diff', { key: entry.key, from: list[i + 1].revision, to: v.revision }), 'diff with previous') : ''))))),
      list.length > 1 ? h('div', { class: 'toolbar' }, 'Compare ', from, ' with ', to,
        h('button', { on: { click: () => { navigate(ctxView(ctx, 'diff', { key: entry.key, from: from.value, to: to.value })); } } }, 'Diff')) : null,
      page.next_before ? h('p', { class: 'muted' }, 'Older versions: see the timeline.') : null);
  }).catch((e) => replace(versions, errorBox(e)));
}

/** Search of the entries' text (the API's search: keyword, semantic or hybrid). */
function searchBox(ctx, open) {
  const input = h('input', { type: 'search', id: 'entry-search', placeholder: 'Search the values (what the API\'s search finds)', value: params().get('q') || '' });
  const mode = h('select', { id: 'search-mode' }, ['keyword', 'hybrid', 'semantic'].map((m) => h('option', { value: m }, m)));
  const hits = h('div', { id: 'search-hits' });
  async function run() {
    const text = input.value.trim();
    setParams({ q: text });
    if (!text) { replace(hits); return; }
    try {
      const r = await get(`${ctxPath(ctx)}/search`, { q: text, mode: mode.value, limit: 20 });
      replace(hits, r.hits.length ? h('ol', { class: 'hits' }, r.hits.map((x) => h('li', { data: { key: x.key } },
        h('button', { class: 'link mono', on: { click: () => open(x.key) } }, x.key), ' ',
        h('span', { class: 'muted' }, x.score.toFixed(2)), ' ', h('span', { class: 'preview' }, preview(x.entry.value, 140)))))
        : h('p', { class: 'muted' }, `Nothing matches "${text}".`));
    } catch (e) { replace(hits, errorBox(e)); }
  }
  const form = h('form', { class: 'toolbar', on: { submit: (e) => { e.preventDefault(); run(); } } }, input, mode, h('button', { type: 'submit' }, 'Search'));
  if (input.value) run();
  return h('div', { class: 'search' }, form, hits);
}

export async function render(root, ctx, info) {
  const q = params();
  const at = q.get('at') || undefined;
  const panel = h('div', { class: 'detail' });
  const treeBox = h('div', { class: 'tree-box' });
  let tree = null;
  const open = async (key) => {
    tree.select(key);
    setParams({ key });
    try { entryDetail(panel, ctx, await get(entryPath(ctx, key), { at }), { at, key }); } catch (e) { replace(panel, errorBox(e)); }
  };
  replace(root,
    at ? h('div', { class: 'banner', id: 'as-of-banner' }, `As of revision ${at} (the context is at ${info.revision}). `, link(ctxView(ctx), 'Back to now'), ' · ', link(ctxView(ctx, 'timeline', { rev: at }), 'See it on the timeline')) : searchBox(ctx, open),
    h('div', { class: 'split' }, treeBox, panel));
  entryDetail(panel, ctx, null);
  tree = entryTree(treeBox, ctx, {
    at,
    selected: q.get('key') || null,
    filterText: q.get('filter') || '',
    onFilter: (f) => setParams({ filter: f }),
    onSelect: (entry, key) => { setParams({ key: entry ? entry.key : key }); entryDetail(panel, ctx, entry, { at, key }); },
  });
  return () => tree.destroy();
}
