// Agents (status, lease, capabilities, needs, heartbeat, inbox), a
// context's locks (holder, fencing token, expiry), and its handoffs and
// tasks as boards by state.

import { get, allPages, ctxPath } from '../api.js';
import { h, replace, link, when, relative, badge, errorBox } from '../dom.js';
import { preview } from '../json.js';
import { ctxView, params, setParams } from '../nav.js';

const HANDOFF_STATES = ['requested', 'accepted', 'completed', 'rejected', 'expired'];
const TASK_STATES = ['assigned', 'completed'];

function needs(map) {
  if (!map) return '';
  const parts = [];
  if (map.kinds && map.kinds.length) parts.push(`kinds: ${map.kinds.join(', ')}`);
  if (map.tags && map.tags.length) parts.push(`tags: ${map.tags.join(', ')}`);
  if (map.keys && map.keys.length) parts.push(`keys: ${map.keys.join(', ')}`);
  if (map.exclude) parts.push(`not ${needs(map.exclude)}`);
  return parts.join(' · ');
}

function capabilities(c) {
  if (!c) return '';
  const rights = ['read', 'write', 'share'].filter((r) => c[`can_${r}`]);
  return [...rights, ...(c.custom || [])].join(', ');
}

/** A table of agents; picking one shows its inbox in `inbox`. */
function agentsTable(agents, inbox) {
  return h('table', { class: 'grid', id: 'agents' },
    h('thead', {}, h('tr', {}, ['agent', 'status', 'lease', 'capabilities', 'needs', 'produces', 'last heartbeat', ''].map((t) => h('th', {}, t)))),
    h('tbody', {}, agents.map((a) => h('tr', { data: { agent: a.id } },
      h('td', {}, h('strong', {}, a.id), a.name && a.name !== a.id ? h('div', { class: 'muted' }, a.name) : null, a.objective ? h('div', { class: 'muted small' }, preview(a.objective, 80)) : null),
      h('td', {}, badge(a.status)),
      h('td', {}, a.status === 'active' ? `expires ${relative(a.lease_expires_at)}` : '', h('div', { class: 'muted small' }, `${Math.round(a.lease_ms / 1000)} s lease`)),
      h('td', {}, capabilities(a.capabilities)),
      h('td', { class: 'small' }, needs(a.needs)),
      h('td', { class: 'small' }, needs(a.produces)),
      h('td', {}, when(a.last_heartbeat_at)),
      h('td', {}, h('button', { class: 'link', on: { click: () => showInbox(inbox, a.id) } }, 'inbox'))))));
}

async function showInbox(box, agent) {
  setParams({ inbox: agent });
  replace(box, h('h2', {}, `Inbox of ${agent}`), h('p', { class: 'muted' }, 'Loading…'));
  try {
    const page = await get(`/v1/agents/${encodeURIComponent(agent)}/inbox`, { limit: 100 });
    replace(box, h('h2', {}, `Inbox of ${agent}`),
      page.events.length ? h('ol', { class: 'events', id: 'inbox' }, page.events.slice().reverse().map((e) => h('li', { class: 'event' },
        h('span', { class: 'rev' }, `#${e.revision}`), when(e.at), badge(e.type, e.type.split('.')[0]),
        e.context ? link(ctxView(e.context), e.context) : null, h('span', { class: 'author' }, e.agent || ''),
        h('span', { class: 'what' }, preview(e.data, 160)))))
        : h('p', { class: 'muted' }, 'Empty.'));
  } catch (e) { replace(box, h('h2', {}, `Inbox of ${agent}`), errorBox(e)); }
}

/** Cards in columns, one per state. */
function board(id, states, items, card) {
  return h('div', { class: 'board', id }, states.map((s) => {
    const mine = items.filter((i) => i.status === s);
    return h('div', { class: 'column', data: { status: s } }, h('h3', {}, badge(s), ` ${mine.length}`), mine.map(card));
  }));
}

function handoffCard(x) {
  return h('div', { class: 'card', data: { id: x.id } },
    h('div', {}, h('strong', {}, x.source), ' → ', h('strong', {}, x.target)),
    x.handoff && x.handoff.user_intent ? h('div', {}, preview(x.handoff.user_intent, 120)) : null,
    x.note ? h('div', { class: 'muted' }, preview(x.note, 120)) : null,
    x.keys && x.keys.length ? h('div', { class: 'mono small' }, x.keys.join(', ')) : null,
    h('div', { class: 'muted small' }, `r${x.revision} · `, when(x.created_at), x.status === 'requested' ? ` · deadline ${relative(x.deadline)}` : ''),
    x.outcome !== undefined && x.outcome !== null ? h('div', { class: 'small' }, 'outcome: ', preview(x.outcome, 100)) : null);
}

function taskCard(t) {
  return h('div', { class: 'card', data: { id: t.id } },
    h('strong', {}, t.title), h('div', {}, `${t.assigned_by} → ${t.assignee}`, ' ', badge(t.priority)),
    t.input !== undefined && t.input !== null ? h('div', { class: 'small mono' }, preview(t.input, 100)) : null,
    h('div', { class: 'muted small' }, 'assigned ', when(t.created_at), t.completed_at ? [' · done ', when(t.completed_at)] : null),
    t.output !== undefined && t.output !== null ? h('div', { class: 'small' }, 'output: ', preview(t.output, 100)) : null);
}

function locksTable(locks) {
  if (!locks.length) return h('p', { class: 'muted' }, 'No lock is held.');
  return h('table', { class: 'grid', id: 'locks' },
    h('thead', {}, h('tr', {}, ['lock', 'holder', 'fencing token', 'acquired', 'expires'].map((t) => h('th', {}, t)))),
    h('tbody', {}, locks.map((l) => h('tr', { data: { lock: l.name } },
      h('td', { class: 'mono' }, l.name), h('td', {}, l.holder || h('span', { class: 'muted' }, 'free')),
      h('td', { class: 'num' }, l.fencing_token), h('td', {}, when(l.acquired_at)),
      h('td', {}, l.expires_at ? [when(l.expires_at), ` (${relative(l.expires_at)})`] : '')))));
}

/** A section that loads on its own, showing its error in place. */
function section(title, id, load) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  load().then((node) => replace(body, node)).catch((e) => replace(body, errorBox(e)));
  return h('section', { class: 'panel', id }, h('h2', {}, title), body);
}

export async function render(root, ctx) {
  const inbox = h('div', { class: 'panel', id: 'inbox-panel' });
  replace(root,
    section('Locks', 'locks-panel', async () => locksTable((await get(`${ctxPath(ctx)}/locks`)).locks)),
    section('Handoffs', 'handoffs-panel', async () => board('handoffs', HANDOFF_STATES, await allPages('/v1/handoffs', 'handoffs', { context: ctx, limit: 200 }, { max: 2000 }), handoffCard)),
    section('Tasks', 'tasks-panel', async () => board('tasks', TASK_STATES, await allPages(`${ctxPath(ctx)}/tasks`, 'tasks', { limit: 200 }, { max: 2000 }), taskCard)),
    section('Agents', 'agents-panel', async () => agentsTable(await allPages('/v1/agents', 'agents', { limit: 200 }, { max: 2000 }), inbox)),
    inbox);
  const pick = params().get('inbox');
  if (pick) showInbox(inbox, pick);
}

export async function renderAgents(root) {
  const inbox = h('div', { class: 'panel', id: 'inbox-panel' });
  replace(root, h('section', { class: 'page' }, h('h1', {}, 'Agents'),
    section('Registered agents', 'agents-panel', async () => agentsTable(await allPages('/v1/agents', 'agents', { limit: 200 }, { max: 5000 }), inbox)),
    inbox));
  const pick = params().get('inbox');
  if (pick) showInbox(inbox, pick);
}
