// The console's shell: sign-in, the header, and the router that renders
// each view from the address.

import { api, session, ApiError, ctxPath } from './api.js';
import { h, replace, link, errorBox, labels, when } from './dom.js';
import { onNavigate, navigate, ctxView } from './nav.js';
import * as contexts from './views/contexts.js';
import * as context from './views/context.js';
import * as timeline from './views/timeline.js';
import * as live from './views/live.js';
import * as coordination from './views/coordination.js';
import * as pkg from './views/package.js';
import * as conflicts from './views/conflicts.js';
import * as audit from './views/audit.js';

const TABS = [
  ['', 'Entries'], ['timeline', 'Timeline'], ['diff', 'Diff'], ['live', 'Live events'],
  ['coordination', 'Agents & work'], ['package', 'What an agent sees'], ['conflicts', 'Conflicts'],
];

const CONTEXT_VIEWS = {
  '': context.render, timeline: timeline.render, diff: timeline.renderDiff, live: live.render,
  coordination: coordination.render, package: pkg.render, conflicts: conflicts.render,
};

const TOP_VIEWS = { contexts: contexts.render, agents: coordination.renderAgents, audit: audit.render };

const app = document.getElementById('app');
let cleanup = null;
let generation = 0;

/** Signs in: checks the token with `GET /v1/whoami` and keeps it. */
async function signIn(token, actAs) {
  const identity = await api('GET', '/v1/whoami', { token, actAs });
  session.save(token, actAs);
  session.identity = identity;
  return identity;
}

function signInView(message) {
  const token = h('input', { type: 'password', id: 'token', autocomplete: 'off', placeholder: 'cmt_… or the admin token', attrs: { required: true } });
  const actAs = h('input', { type: 'text', id: 'act-as', autocomplete: 'off', placeholder: 'optional: the agent id the admin writes as' });
  const status = h('div', { class: 'signin-status' }, message ? errorBox({ message }) : null);
  const form = h('form', { class: 'signin', on: { submit: async (e) => {
    e.preventDefault();
    replace(status, 'Checking…');
    try {
      await signIn(token.value.trim(), actAs.value.trim());
      token.value = '';
      render();
    } catch (err) {
      replace(status, errorBox(err.status === 401 ? { code: 'unauthenticated', message: 'this token is not valid on this server' } : err));
    }
  } } },
  h('h1', {}, 'ctxmesh console'),
  h('p', { class: 'muted' }, 'Sign in with the admin token or an agent\'s token. The console shows what that identity may read, as the API does. The token stays in this tab (session storage) and is sent only in the Authorization header.'),
  h('label', { for: 'token' }, 'Token'), token,
  h('label', { for: 'act-as' }, 'Act as (admin only)'), actAs,
  h('button', { type: 'submit', class: 'primary' }, 'Sign in'), status);
  replace(app, h('div', { class: 'signin-page' }, form));
  token.focus();
}

function header() {
  const who = session.identity || {};
  const nav = h('nav', { class: 'top-nav' },
    link('/ui/contexts', 'Contexts'), link('/ui/agents', 'Agents'), link('/ui/audit', 'Audit log'));
  for (const a of nav.querySelectorAll('a')) if (location.pathname.startsWith(a.getAttribute('href'))) a.classList.add('active');
  return h('header', { class: 'top' },
    link('/ui/contexts', h('span', { class: 'brand' }, 'ctxmesh')), nav,
    h('span', { class: 'identity', id: 'identity' }, 'signed in as ', h('strong', {}, who.agent || '?'), who.admin ? ' (admin)' : ''),
    h('button', { class: 'link', id: 'sign-out', on: { click: () => { session.clear(); history.pushState(null, '', '/ui/contexts'); render(); } } }, 'Sign out'));
}

/** The header of a context's views: its counters and tabs. */
async function contextFrame(ctx, tab, body) {
  const info = h('div', { class: 'ctx-info' }, h('h1', {}, ctx));
  const tabs = h('nav', { class: 'tabs', role: 'tablist' }, TABS.map(([view, name]) => {
    const a = link(ctxView(ctx, view), name);
    a.setAttribute('role', 'tab');
    if (view === tab) { a.classList.add('active'); a.setAttribute('aria-selected', 'true'); }
    return a;
  }));
  const frame = h('section', { class: 'context-frame' }, info, tabs, body);
  const c = await api('GET', ctxPath(ctx));
  replace(info, h('h1', {}, c.id),
    h('span', { class: 'stat', id: 'ctx-revision' }, `revision ${c.revision}`),
    h('span', { class: 'stat' }, `${c.entry_count} entries`),
    h('span', { class: 'stat' }, 'changed ', when(c.updated_at)),
    c.forked_from ? h('span', { class: 'stat' }, 'forked from ', link(ctxView(c.forked_from.context), c.forked_from.context), ` @${c.forked_from.revision}`) : null,
    c.parent ? h('span', { class: 'stat' }, 'child of ', link(ctxView(c.parent), c.parent)) : null,
    labels(c.labels));
  return { frame, info: c };
}

async function render() {
  const mine = ++generation;
  if (cleanup) { try { cleanup(); } catch { /* ignore */ } cleanup = null; }
  if (!session.identity) {
    try {
      // A token from earlier in this tab, or a server without auth.
      session.identity = await api('GET', '/v1/whoami');
    } catch (err) {
      const had = Boolean(session.token);
      if (had) session.clear();
      if (!(err instanceof ApiError) || err.status !== 401) signInView(err.message);
      else signInView(had ? 'the server refused the token: sign in again' : null);
      return;
    }
  }
  const path = location.pathname.replace(/\/+$/, '');
  const view = h('main', { id: 'view' });
  replace(app, header(), view);
  try {
    let m;
    if (path === '/ui' || path === '') { navigate('/ui/contexts', { replace: true }); return; }
    if ((m = path.match(/^\/ui\/([a-z]+)$/)) && TOP_VIEWS[m[1]]) {
      cleanup = await TOP_VIEWS[m[1]](view) || null;
    } else if ((m = path.match(/^\/ui\/c\/([^/]+)(?:\/([a-z]+))?$/)) && (m[2] || '') in CONTEXT_VIEWS) {
      const ctx = decodeURIComponent(m[1]);
      const tab = m[2] || '';
      const body = h('div', { class: 'ctx-body' });
      const { frame, info } = await contextFrame(ctx, tab, body);
      if (mine !== generation) return;
      replace(view, frame);
      cleanup = await CONTEXT_VIEWS[tab](body, ctx, info) || null;
    } else {
      replace(view, errorBox({ code: 'not_found', message: `no console view at ${location.pathname}` }), link('/ui/contexts', 'All contexts'));
    }
    if (mine !== generation && cleanup) { cleanup(); cleanup = null; }
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) { session.clear(); signInView('the server refused the token: sign in again'); return; }
    if (mine === generation) replace(view, errorBox(err), h('p', {}, link('/ui/contexts', 'All contexts')));
  }
}

// Links inside the console change the view without a reload.
document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[data-internal]');
  if (!a || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', () => render());
onNavigate(render);
render();
