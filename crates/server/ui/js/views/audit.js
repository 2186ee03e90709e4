// The audit log (admins only, as in the API): every access decision, by
// agent, context, outcome and time, newest first.

import { get } from '../api.js';
import { h, replace, when, badge, errorBox } from '../dom.js';
import { params, setParams } from '../nav.js';

const SHOWN = 1000;

export async function render(root) {
  const q = params();
  const agent = h('input', { type: 'text', id: 'audit-agent', placeholder: 'agent', value: q.get('agent') || '' });
  const context = h('input', { type: 'text', id: 'audit-context', placeholder: 'context', value: q.get('context') || '' });
  const allowed = h('select', { id: 'audit-allowed' }, [['', 'allowed and refused'], ['true', 'allowed'], ['false', 'refused']].map(([v, t]) => h('option', { value: v }, t)));
  allowed.value = q.get('allowed') || '';
  const since = h('input', { type: 'datetime-local', id: 'audit-since', value: q.get('since') || '' });
  const tbody = h('tbody');
  const note = h('div', { class: 'muted' });

  async function load() {
    setParams({ agent: agent.value.trim(), context: context.value.trim(), allowed: allowed.value, since: since.value });
    replace(note, 'Loading…');
    try {
      // The log is read oldest first: read to its end, keep the newest.
      let after;
      let total = 0;
      let newest = [];
      for (;;) {
        const page = await get('/v1/audit', {
          agent: agent.value.trim(), context: context.value.trim(), allowed: allowed.value,
          since: since.value ? new Date(since.value).toISOString() : undefined, after, limit: 1000,
        });
        total += page.records.length;
        newest = newest.concat(page.records).slice(-SHOWN);
        if (page.records.length < 1000) break;
        after = page.next_after;
      }
      replace(tbody, newest.reverse().map((r) => h('tr', { class: r.allowed ? '' : 'refused' },
        h('td', { class: 'num' }, r.seq), h('td', {}, when(r.at)), h('td', {}, r.agent), h('td', {}, r.action),
        h('td', { class: 'mono small' }, r.resource), h('td', {}, r.context), h('td', {}, badge(r.allowed ? 'allowed' : 'refused')),
        h('td', {}, r.reason))));
      replace(note, total ? `${total} records${total > SHOWN ? `, the newest ${SHOWN} shown` : ''}.` : 'No record matches.');
    } catch (e) { replace(note, errorBox(e)); }
  }
  replace(root, h('section', { class: 'page' },
    h('h1', {}, 'Audit log'),
    h('form', { class: 'toolbar', on: { submit: (e) => { e.preventDefault(); load(); } } }, agent, context, allowed, since, h('button', { type: 'submit', class: 'primary' }, 'Filter')),
    note,
    h('table', { class: 'grid', id: 'audit' },
      h('thead', {}, h('tr', {}, ['#', 'at', 'agent', 'action', 'request', 'context', 'decision', 'reason'].map((t) => h('th', {}, t)))), tbody)));
  await load();
}
