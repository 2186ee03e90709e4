// The timeline of a context's revisions (who, when, which keys), the
// whole context as of any revision, diffs between revisions or between
// two versions of an entry, and rollback and fork.

import { get, post, ctxPath, entryPath } from '../api.js';
import { h, replace, link, when, badge, errorBox, debounce } from '../dom.js';
import { entryDiff, diffTable, valueBlock } from '../json.js';
import { ctxView, navigate, params, setParams } from '../nav.js';
import { entryTree, entryDetail } from './context.js';

const CHANGE_PAGE = 200;

/** The changes between two revisions, field by field. */
function changesList(ctx, changes) {
  const box = h('div', { class: 'changes' });
  let shown = 0;
  const more = h('div');
  function next() {
    const slice = changes.slice(shown, shown + CHANGE_PAGE);
    shown += slice.length;
    box.append(...slice.map((c) => h('article', { class: 'change', data: { key: c.key } },
      h('h3', {}, badge(c.change), ' ', link(ctxView(ctx, '', { key: c.key }), c.key),
        c.after ? h('span', { class: 'muted' }, ` by ${c.after.author}`) : c.before ? h('span', { class: 'muted' }, ` (was by ${c.before.author})`) : null),
      c.change === 'modified' ? diffTable(entryDiff(c.before, c.after))
        : c.change === 'added' ? valueBlock(c.after && c.after.value, 'value after')
          : valueBlock(c.before && c.before.value, 'value before'))));
    replace(more, shown < changes.length ? h('button', { on: { click: next } }, `Show ${Math.min(CHANGE_PAGE, changes.length - shown)} more of ${changes.length - shown}`) : null);
  }
  if (!changes.length) box.append(h('p', { class: 'muted' }, 'Nothing changed.'));
  next();
  return h('div', {}, box, more);
}

/** Rollback and fork, each confirmed in place. */
function actions(ctx, rev, info) {
  const status = h('div', { class: 'action-status' });
  const forkId = h('input', { type: 'text', id: 'fork-id', placeholder: 'new context id', value: `${ctx}-r${rev}`.slice(0, 128) });
  const confirmRollback = h('button', { class: 'danger hidden', id: 'confirm-rollback', on: { click: async () => {
    try {
      const r = await post(`${ctxPath(ctx)}/rollback`, { to: rev });
      replace(status, h('div', { class: 'ok' }, `Rolled back: revision ${r.revision} restores revision ${r.restored_from}.`));
      navigate(ctxView(ctx, 'timeline', { rev: r.revision }), { replace: true });
    } catch (e) { replace(status, errorBox(e)); }
  } } }, `Confirm: write revision ${rev}'s state as a new revision`);
  const rollback = h('button', { id: 'rollback', disabled: rev >= info.revision, on: { click: () => confirmRollback.classList.toggle('hidden') } }, `Roll back to r${rev}…`);
  const fork = h('button', { id: 'fork', on: { click: async () => {
    try {
      const c = await post(`${ctxPath(ctx)}/fork`, { id: forkId.value.trim(), at: rev });
      navigate(ctxView(c.id));
    } catch (e) { replace(status, errorBox(e)); }
  } } }, `Fork at r${rev}`);
  return h('div', { class: 'actions' },
    link(ctxView(ctx, 'diff', { from: rev, to: info.revision }), `Diff r${rev} → now`), ' ',
    rollback, confirmRollback, ' ', forkId, fork, status);
}

export async function render(root, ctx, info) {
  const first = Math.max(1, info.compacted_revision || 1);
  let rev = Math.min(Math.max(Number(params().get('rev')) || info.revision, first), info.revision);
  const slider = h('input', { type: 'range', id: 'revision-slider', min: first, max: info.revision, value: rev, attrs: { 'aria-label': 'revision' } });
  const number = h('input', { type: 'number', id: 'revision-input', min: first, max: info.revision, value: rev });
  const commits = h('ol', { class: 'commits', id: 'commits' });
  const olderBox = h('div');
  const side = h('div', { class: 'as-of' });
  replace(root,
    h('div', { class: 'toolbar' }, h('label', { for: 'revision-slider' }, 'Revision'), slider, number, h('span', { class: 'muted' }, `of ${info.revision}`)),
    h('div', { class: 'split timeline' }, h('div', { class: 'commit-box' }, commits, olderBox), side));

  let tree = null;
  let before;
  async function older() {
    try {
      const page = await get(`${ctxPath(ctx)}/history`, { limit: 100, before });
      commits.append(...page.commits.map((c) => h('li', {
        class: ['commit', c.revision === rev ? 'selected' : null], data: { rev: c.revision },
        on: { click: () => select(c.revision) },
      },
      h('span', { class: 'rev' }, `r${c.revision}`), badge(c.kind), h('span', { class: 'author' }, c.author), when(c.at),
      h('div', { class: 'keys mono' }, c.keys.slice(0, 6).join('  '), c.keys.length > 6 ? ` +${c.keys.length - 6}` : ''))));
      before = page.next_before;
      replace(olderBox, before ? h('button', { on: { click: older } }, 'Older revisions') : null);
    } catch (e) { replace(olderBox, errorBox(e)); }
  }

  function show() {
    if (tree) tree.destroy();
    const changes = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
    const treeBox = h('div', { class: 'tree-box' });
    const detail = h('div', { class: 'detail' });
    replace(side,
      h('h2', { id: 'as-of-title' }, `The context as of revision ${rev}`),
      actions(ctx, rev, info),
      h('h3', {}, `What revision ${rev} changed`), changes,
      h('h3', {}, `Every entry at revision ${rev}`),
      h('div', { class: 'split nested' }, treeBox, detail));
    entryDetail(detail, ctx, null);
    tree = entryTree(treeBox, ctx, { at: rev, onSelect: (e, key) => entryDetail(detail, ctx, e, { at: rev, key }) });
    get(`${ctxPath(ctx)}/diff`, { from: rev - 1, to: rev })
      .then((d) => replace(changes, changesList(ctx, d.changes)))
      .catch((e) => replace(changes, errorBox(e)));
  }

  function select(r) {
    rev = Math.min(Math.max(Number(r) || first, first), info.revision);
    slider.value = rev;
    number.value = rev;
    setParams({ rev });
    for (const li of commits.children) li.classList.toggle('selected', Number(li.dataset.rev) === rev);
    show();
  }

  const later = debounce((v) => select(v), 250);
  slider.addEventListener('input', () => { number.value = slider.value; later(slider.value); });
  number.addEventListener('change', () => select(number.value));
  await older();
  show();
  return () => { if (tree) tree.destroy(); };
}

/** Reads an entry at a revision, or null where it did not exist. */
async function entryAt(ctx, key, at) {
  if (Number(at) === 0) return null;
  try { return await get(entryPath(ctx, key), { at }); } catch (e) { if (e.status === 404) return null; throw e; }
}

export async function renderDiff(root, ctx, info) {
  const q = params();
  const to = h('input', { type: 'number', id: 'diff-to', min: 0, max: info.revision, value: q.get('to') || info.revision });
  const from = h('input', { type: 'number', id: 'diff-from', min: 0, max: info.revision, value: q.get('from') || Math.max(0, info.revision - 1) });
  const key = h('input', { type: 'text', id: 'diff-key', placeholder: 'one entry (optional)', value: q.get('key') || '' });
  const out = h('div', { id: 'diff-result' });
  async function compare() {
    setParams({ from: from.value, to: to.value, key: key.value.trim() });
    replace(out, h('p', { class: 'muted' }, 'Comparing…'));
    try {
      if (key.value.trim()) {
        const k = key.value.trim();
        const [a, b] = await Promise.all([entryAt(ctx, k, from.value), entryAt(ctx, k, to.value)]);
        const change = !a && !b ? null : !a ? 'added' : !b ? 'removed' : 'modified';
        replace(out, h('h2', {}, `${k}: revision ${from.value} → ${to.value}`),
          !change ? h('p', { class: 'muted' }, 'The entry exists at neither revision.')
            : changesList(ctx, [{ key: k, change, before: a, after: b }].filter((c) => c.change !== 'modified' || entryDiff(a, b).length)));
      } else {
        const d = await get(`${ctxPath(ctx)}/diff`, { from: from.value, to: to.value });
        replace(out, h('h2', {}, `Revision ${d.from} → ${d.to}: ${d.changes.length} keys changed`), changesList(ctx, d.changes));
      }
    } catch (e) { replace(out, errorBox(e)); }
  }
  replace(root,
    h('form', { class: 'toolbar', on: { submit: (e) => { e.preventDefault(); compare(); } } },
      h('label', { for: 'diff-from' }, 'From revision'), from, h('label', { for: 'diff-to' }, 'to'), to, key,
      h('button', { type: 'submit', class: 'primary' }, 'Compare')),
    out);
  await compare();
}
