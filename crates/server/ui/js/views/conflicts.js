// Conflicts: what a stale write met, the candidates side by side, and the
// resolve action for a pending one (keep the current value, apply the
// proposed one, or write a merged value).

import { get, post, ctxPath } from '../api.js';
import { h, replace, link, when, badge, errorBox } from '../dom.js';
import { diffTable, fieldDiff, valueBlock, pretty } from '../json.js';
import { ctxView, params, setParams } from '../nav.js';

function conflictPath(ctx, id) {
  return `${ctxPath(ctx)}/conflicts/${encodeURIComponent(id)}`;
}

async function detail(box, ctx, id, reload) {
  setParams({ id });
  replace(box, h('p', { class: 'muted' }, 'Loading…'));
  try {
    const c = await get(conflictPath(ctx, id));
    const current = c.current;
    const proposed = c.proposed;
    const status = h('div', { id: 'resolve-status' });
    const merged = h('textarea', { id: 'merged-value', rows: 8, spellcheck: false }, pretty(proposed ? proposed.value : current ? current.value : null));
    async function resolve(body) {
      try {
        const r = await post(`${conflictPath(ctx, id)}/resolve`, body);
        replace(status, h('div', { class: 'ok' }, `Resolved (${r.resolution ? r.resolution.chose : 'done'}) at revision ${r.resolution ? r.resolution.revision : ''}.`));
        await reload();
        await detail(box, ctx, id, reload);
      } catch (e) { replace(status, errorBox(e)); }
    }
    const pending = c.status === 'pending';
    replace(box, h('div', { class: 'conflict-detail', id: 'conflict-detail', data: { status: c.status } },
      h('h2', {}, `Conflict ${c.id} on `, link(ctxView(ctx, '', { key: c.key }), c.key), ' ', badge(c.status)),
      h('p', {}, `${c.author} wrote `, c.base_revision ? `from revision ${c.base_revision} ` : '', `while the entry was at revision ${c.current_revision}`,
        c.current_author ? ` (by ${c.current_author})` : '', `. Strategy ${c.strategy}, outcome ${c.outcome}, severity ${c.severity}, detected `, when(c.detected_at), '.'),
      c.fields && c.fields.length ? h('p', {}, 'Fields both sides changed: ', h('span', { class: 'mono' }, c.fields.join(', '))) : null,
      h('div', { class: 'candidates' },
        h('div', { class: 'candidate', id: 'candidate-current' }, h('h3', {}, `Current${c.current_author ? ` (${c.current_author})` : ''}`), current ? valueBlock(current.value) : h('p', { class: 'muted' }, 'absent')),
        proposed ? h('div', { class: 'candidate', id: 'candidate-proposed' }, h('h3', {}, `Proposed (${c.author})`), proposed.deleted ? h('p', {}, 'delete the entry') : valueBlock(proposed.value)) : null),
      current && proposed && !proposed.deleted ? [h('h3', {}, 'What differs'), diffTable(fieldDiff(current.value, proposed.value))] : null,
      c.candidates && c.candidates.length ? [h('h3', {}, 'Consensus candidates'), h('table', { class: 'grid' },
        h('thead', {}, h('tr', {}, ['value', 'weight', 'agreement', 'agents'].map((t) => h('th', {}, t)))),
        h('tbody', {}, c.candidates.map((x) => h('tr', {}, h('td', {}, valueBlock(x.value)), h('td', { class: 'num' }, x.weight.toFixed(2)),
          h('td', { class: 'num' }, `${Math.round(x.agreement * 100)}%`), h('td', {}, x.agents.join(', '))))))] : null,
      c.resolution ? h('p', { id: 'resolution' }, `Resolved by ${c.resolution.by}: chose ${c.resolution.chose}, revision ${c.resolution.revision}, `, when(c.resolution.at), '.') : null,
      pending ? h('div', { class: 'resolve' },
        h('h3', {}, 'Resolve'),
        h('button', { id: 'keep-current', on: { click: () => resolve({ choose: 'current' }) } }, 'Keep the current value'), ' ',
        proposed ? h('button', { id: 'apply-proposed', class: 'primary', on: { click: () => resolve({ choose: 'proposed' }) } }, 'Apply the proposed write') : null,
        h('label', { for: 'merged-value' }, 'Or write a merged value (JSON):'), merged,
        h('button', { id: 'write-merged', on: { click: () => {
          let value;
          try { value = JSON.parse(merged.value); } catch (e) { replace(status, errorBox({ code: 'invalid_json', message: e.message })); return; }
          resolve({ value, if_match: c.current_revision });
        } } }, 'Write the merged value')) : null,
      status));
  } catch (e) { replace(box, errorBox(e)); }
}

export async function render(root, ctx) {
  const q = params();
  const status = h('select', { id: 'conflict-status' }, ['pending', 'resolved', 'all'].map((s) => h('option', { value: s }, s)));
  status.value = q.get('status') || 'all';
  const tbody = h('tbody');
  const box = h('div', { class: 'panel' });
  async function load() {
    setParams({ status: status.value });
    try {
      const page = await get(`${ctxPath(ctx)}/conflicts`, { status: status.value, limit: 200 });
      replace(tbody, page.conflicts.length ? page.conflicts.map((c) => h('tr', { data: { id: c.id, key: c.key }, class: 'clickable', on: { click: () => detail(box, ctx, c.id, load) } },
        h('td', { class: 'mono' }, c.id), h('td', { class: 'mono' }, c.key), h('td', {}, badge(c.status)), h('td', {}, c.strategy),
        h('td', {}, badge(c.severity)), h('td', {}, c.author), h('td', {}, c.current_author || ''), h('td', {}, when(c.detected_at))))
        : h('tr', {}, h('td', { attrs: { colspan: 8 }, class: 'muted' }, `No ${status.value === 'all' ? '' : status.value + ' '}conflict.`)));
    } catch (e) { replace(tbody, h('tr', {}, h('td', { attrs: { colspan: 8 } }, errorBox(e)))); }
  }
  status.addEventListener('change', load);
  replace(root,
    h('div', { class: 'toolbar' }, h('label', { for: 'conflict-status' }, 'Status'), status),
    h('table', { class: 'grid', id: 'conflicts' },
      h('thead', {}, h('tr', {}, ['id', 'key', 'status', 'strategy', 'severity', 'stale writer', 'current by', 'detected'].map((t) => h('th', {}, t)))), tbody),
    box);
  await load();
  if (q.get('id')) await detail(box, ctx, q.get('id'), load);
}
