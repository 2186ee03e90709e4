// The audit log (admins only, as in the API): every access decision, by
// agent, context, outcome and time, newest first.

import { get } from '../api.js';
import { h, replace, when, badge, errorBox } from '../dom.js';
import { params, setParams } from '../nav.js';

const SHOWN = 1000;

/** Whether a record matching `q` comes after position `after`. */
async function anyAfter(q, after) {
  return (await get('/v1/audit', { ...q, after, limit: 1 })).records.length > 0;
}

/** The matching records with positions in (from, to], oldest first. */
async function between(q, from, to) {
  const out = [];
  let after = from;
  for (;;) {
    const page = await get('/v1/audit', { ...q, after, limit: 1000 });
    out.push(...page.records.filter((r) => r.seq <= to));
    if (!page.records.length || page.records[page.records.length - 1].seq >= to) return out;
    after = page.next_after;
  }
}

/**
 * The newest `want` records matching `q`, oldest first, without reading
 * the whole log (which is read oldest first): the last matching position
 * is found by doubling then halving (a few dozen one-record reads), then
 * windows before it are read, each twice as long, until enough match.
 */
async function newest(q, want) {
  if (!(await anyAfter(q, 0))) return { records: [], more: false };
  let lo = 0;
  let hi = 1024;
  while (await anyAfter(q, hi)) { lo = hi; hi *= 2; }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (await anyAfter(q, mid)) lo = mid; else hi = mid;
  }
  // `lo + 1` is the position of the last matching record.
  let end = lo + 1;
  let window = want;
  let records = [];
  while (records.length < want && end > 0) {
    const start = Math.max(0, end - window);
    records = (await between(q, start, end)).concat(records);
    end = start;
    window *= 2;
  }
  return { records: records.slice(-want), more: records.length > want || end > 0 };
}

export async function render(root) {
  const q = params();
  const agent = h('input', { type: 'text', id: 'audit-agent', placeholder: 'agent', value: q.get('agent') || '' });
  const context = h('input', { type: 'text', id: 'audit-context', placeholder: 'context', value: q.get('context') || '' });
  const allowed = h('select', { id: 'audit-allowed' }, [['', 'allowed and refused'], ['true', 'allowed'], ['false', 'refused']].map(([v, t]) => h('option', { value: v }, t)));
  allowed.value = q.get('allowed') || '';
  const since = h('input', { type: 'datetime-local', id: 'audit-since', value: q.get('since') || '' });
  const tbody = h('tbody');
  const note = h('div', { class: 'muted' });

  /** The filters of the form, as query parameters. */
  function filters() {
    return {
      agent: agent.value.trim(), context: context.value.trim(), allowed: allowed.value,
      since: since.value ? new Date(since.value).toISOString() : undefined,
    };
  }

  async function load() {
    setParams({ agent: agent.value.trim(), context: context.value.trim(), allowed: allowed.value, since: since.value });
    replace(note, 'Loading…');
    try {
      const { records, more } = await newest(filters(), SHOWN);
      replace(tbody, records.reverse().map((r) => h('tr', { class: r.allowed ? '' : 'refused' },
        h('td', { class: 'num' }, r.seq), h('td', {}, when(r.at)), h('td', {}, r.agent), h('td', {}, r.action),
        h('td', { class: 'mono small' }, r.resource), h('td', {}, r.context), h('td', {}, badge(r.allowed ? 'allowed' : 'refused')),
        h('td', {}, r.reason))));
      replace(note, records.length ? `${records.length}${more ? ' newest' : ''} records.` : 'No record matches.');
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
