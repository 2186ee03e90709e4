// Live events: the context's watch stream as it happens, filtered by
// type, key prefix and priority. Pausing closes the stream and keeps its
// position; resuming reopens it from there, so nothing is lost. The page
// holds the newest events only (MAX_SHOWN), so a busy stream runs for
// hours in bounded memory, and rows are added once per frame.

import { ctxPath } from '../api.js';
import { openStream } from '../sse.js';
import { h, replace, time, badge, errorBox } from '../dom.js';
import { preview } from '../json.js';
import { params, setParams } from '../nav.js';

const MAX_SHOWN = 500;
const TYPES = ['context.updated', 'context.rolled_back', 'context.broadcast', 'message', 'conflict.detected', 'conflict.resolved',
  'lock.acquired', 'lock.released', 'lock.expired', 'handoff.requested', 'handoff.accepted', 'handoff.rejected',
  'handoff.completed', 'handoff.expired', 'task.assigned', 'task.completed', 'context.created', 'context.shared', 'context.revoked'];

function describe(e) {
  const d = e.data || {};
  if (e.type === 'context.updated') {
    if (d.value_omitted) return `${d.change || 'changed'} (value omitted)`;
    return `${d.change || 'changed'} v${d.version ?? ''}: ${preview(d.value, 140)}`;
  }
  return preview(d, 160);
}

export async function render(root, ctx, info) {
  const q = params();
  const types = h('input', { type: 'text', id: 'live-types', list: 'event-types', placeholder: 'types: context.updated,message', value: q.get('types') || '' });
  const prefix = h('input', { type: 'text', id: 'live-prefix', placeholder: 'key prefix', value: q.get('prefix') || '' });
  const minPriority = h('select', { id: 'live-priority' }, ['', 'low', 'normal', 'high', 'critical'].map((p) => h('option', { value: p }, p ? `≥ ${p}` : 'any priority')));
  minPriority.value = q.get('min_priority') || '';
  const pause = h('button', { id: 'live-pause' }, 'Pause');
  const state = h('span', { class: 'live-state', id: 'live-state' }, 'connecting');
  const counter = h('span', { class: 'muted', id: 'live-count' }, '0 events');
  const problem = h('div');
  const list = h('ol', { class: 'events', id: 'events', attrs: { 'aria-live': 'polite' } });

  let stream = null;
  let paused = false;
  let received = 0;
  let latest = 0;
  let pending = [];
  let frame = 0;
  // Where to resume: the last revision whose events all arrived, and how
  // many events of the revision after it were already shown.
  let complete = info.revision;
  let partial = { revision: null, count: 0 };
  let skip = { revision: null, count: 0 };

  function flush() {
    frame = 0;
    if (!pending.length) return;
    const rows = pending.reverse().map((e) => h('li', { class: ['event', `type-${e.type.replace(/\./g, '-')}`], data: { revision: e.revision, type: e.type } },
      h('span', { class: 'rev' }, `r${e.revision}`), h('span', { class: 'at' }, time(e.at)), badge(e.type, e.type.split('.')[0]),
      h('span', { class: 'key mono' }, e.key || ''), h('span', { class: 'author' }, e.agent || ''),
      e.priority ? badge(e.priority) : null, h('span', { class: 'what' }, describe(e))));
    pending = [];
    list.prepend(...rows);
    const revision = document.getElementById('ctx-revision');
    if (revision && latest) revision.textContent = `revision ${latest}`;
    while (list.childElementCount > MAX_SHOWN) list.lastElementChild.remove();
    replace(counter, `${received} events received${received > MAX_SHOWN ? `, the newest ${MAX_SHOWN} shown` : ''}`);
  }

  function onEvent(ev) {
    if (ev.event === 'progress') {
      const p = JSON.parse(ev.data);
      if (p.revision !== undefined) { complete = Math.max(complete, p.revision); partial = { revision: null, count: 0 }; }
      return;
    }
    if (ev.event === 'compacted' || ev.event === 'error') {
      const d = JSON.parse(ev.data);
      replace(problem, errorBox(d.error || { code: 'compacted', message: `events before revision ${d.compacted_revision} were compacted away` }));
      return;
    }
    const e = JSON.parse(ev.data);
    if (partial.revision !== e.revision) {
      if (partial.revision !== null) complete = partial.revision;
      partial = { revision: e.revision, count: 0 };
    }
    partial.count++;
    // After a resume, the events of a half-shown revision come again.
    if (skip.revision === e.revision && skip.count > 0) { skip.count--; return; }
    received++;
    latest = Math.max(latest, e.revision);
    pending.push(e);
    if (pending.length > MAX_SHOWN) pending = pending.slice(-MAX_SHOWN);
    if (!frame) frame = requestAnimationFrame(flush);
  }

  // Each (re)connection resumes after the last complete revision.
  function resumePoint() {
    skip = partial.revision !== null ? { ...partial } : { revision: null, count: 0 };
    partial = { revision: skip.revision, count: 0 };
    return complete;
  }

  function connect() {
    replace(problem);
    stream = openStream(`${ctxPath(ctx)}/watch`, {
      params: { types: types.value.trim(), prefix: prefix.value.trim(), min_priority: minPriority.value },
      lastEventId: resumePoint,
      onEvent,
      onState: (s, detail) => {
        if (paused && s === 'closed') return;
        replace(state, s === 'open' ? 'live' : s);
        state.className = `live-state state-${s}`;
        if (s === 'closed' && detail) replace(problem, errorBox({ message: detail }));
      },
    });
  }
  function disconnect() {
    if (stream) { stream.close(); stream = null; }
  }
  function restart() {
    // New filters apply from the next revision.
    if (partial.revision !== null) complete = partial.revision;
    partial = { revision: null, count: 0 };
    setParams({ types: types.value.trim(), prefix: prefix.value.trim(), min_priority: minPriority.value });
    disconnect();
    if (!paused) connect();
  }

  pause.addEventListener('click', () => {
    paused = !paused;
    if (paused) {
      disconnect();
      replace(state, `paused after revision ${partial.revision ?? complete}`);
      state.className = 'live-state state-paused';
      replace(pause, 'Resume');
    } else {
      replace(pause, 'Pause');
      connect();
    }
  });
  for (const input of [types, prefix]) input.addEventListener('change', restart);
  minPriority.addEventListener('change', restart);

  replace(root,
    h('datalist', { id: 'event-types' }, TYPES.map((t) => h('option', { value: t }))),
    h('div', { class: 'toolbar' }, types, prefix, minPriority, pause, state, counter),
    h('p', { class: 'muted' }, `From revision ${info.revision} on. Filters apply from the next event; a paused stream resumes where it stopped.`),
    problem, list);
  connect();
  return () => { disconnect(); cancelAnimationFrame(frame); };
}
