// What an agent sees: the package the router builds for an agent and a
// budget, with each entry's reason to be in or out (its signals and
// score), how it went in, and the tokens against the budget.

import { get, allPages, ctxPath } from '../api.js';
import { h, replace, link, badge, errorBox } from '../dom.js';
import { ctxView, params, setParams } from '../nav.js';

const TOPICAL = ['explicit', 'needs', 'dependency', 'text', 'semantic'];
const QUALITY = ['recency', 'confidence', 'priority'];
const WORDS = {
  explicit: 'marked relevant to this agent', needs: 'named by its needs', dependency: 'a dependency of what it needs',
  text: 'matches its objective\'s words', semantic: 'close in meaning to its objective',
};

const fixed = (n) => (typeof n === 'number' ? n.toFixed(2) : '');

/** Why an entry is in or out, in words, from its signals. */
export function reason(x) {
  const s = x.explain || {};
  const topical = TOPICAL.filter((k) => typeof s[k] === 'number' && s[k] > 0).sort((a, b) => s[b] - s[a]);
  const why = topical.length ? topical.map((k) => WORDS[k]).join('; ') : 'about nothing the agent needs';
  if (x.reason === 'budget') return `relevant (${why}) but no room left in the budget`;
  if (x.reason === 'threshold') return `below the threshold: ${why}`;
  if (x.reason === 'excluded') return 'excluded by the agent\'s needs';
  return why;
}

function signals(s) {
  if (!s) return h('span', { class: 'muted' }, '—');
  return h('span', { class: 'signals' }, [...TOPICAL, ...QUALITY].filter((k) => s[k] !== undefined && s[k] !== null).map((k) => {
    const bar = h('span', { class: 'bar' }, h('span', { class: 'fill' }));
    bar.firstChild.style.width = `${Math.round(Math.max(0, Math.min(1, s[k])) * 100)}%`;
    return h('span', { class: ['signal', TOPICAL.includes(k) ? 'topical' : 'quality'], title: `${k} ${fixed(s[k])}` }, h('span', { class: 'name' }, k), bar, h('span', { class: 'v' }, fixed(s[k])));
  }));
}

export async function render(root, ctx) {
  const q = params();
  const agent = h('select', { id: 'package-agent' });
  const budget = h('input', { type: 'number', id: 'package-budget', min: 1, value: q.get('budget') || '' });
  const out = h('div', { id: 'package' });
  let agents = [];
  try {
    agents = await allPages('/v1/agents', 'agents', { limit: 1000 }, { max: 5000 });
  } catch { /* an identity that may not list agents can still ask for its own package */ }
  const me = (await get('/v1/whoami')).agent;
  const ids = [...new Set([...agents.map((a) => a.id), me])].sort();
  replace(agent, ids.map((id) => h('option', { value: id }, id)));
  agent.value = q.get('agent') || (agents.find((a) => a.id === me) ? me : ids[0] || me);

  async function build() {
    const a = agents.find((x) => x.id === agent.value);
    if (!budget.value && a) budget.value = a.token_budget;
    setParams({ agent: agent.value, budget: budget.value });
    replace(out, h('p', { class: 'muted' }, 'Building…'));
    try {
      const p = await get(`${ctxPath(ctx)}/package`, { agent: agent.value, budget: budget.value || undefined, explain: true });
      const meter = h('div', { class: 'meter' }, h('span', { class: 'fill' }));
      meter.firstChild.style.width = `${Math.min(100, (100 * p.tokens) / Math.max(1, p.budget))}%`;
      const out_ = p.dropped.filter((d) => d.reason === 'budget');
      const below = p.dropped.filter((d) => d.reason !== 'budget');
      replace(out,
        h('div', { class: 'package-summary' },
          h('strong', { id: 'package-tokens' }, `${p.tokens} of ${p.budget} tokens`), ` (${p.encoding}) at revision ${p.revision}: `,
          `${p.items.length} entries in, ${p.dropped_total} relevant left out for the budget`, meter),
        h('h3', {}, 'In the package'),
        p.items.length ? h('table', { class: 'grid', id: 'package-items' },
          h('thead', {}, h('tr', {}, ['#', 'entry', 'went in', 'score', 'tokens', 'why', 'signals'].map((t) => h('th', {}, t)))),
          h('tbody', {}, p.items.map((x, i) => h('tr', { data: { key: x.key } },
            h('td', { class: 'num' }, i + 1), h('td', { class: 'mono' }, link(ctxView(ctx, '', { key: x.key }), x.key), h('div', { class: 'muted small' }, `r${x.revision}${x.kind ? ' · ' + x.kind : ''}`)),
            h('td', {}, badge(x.status === 'included' ? 'whole' : x.status === 'compressed' ? 'summarized' : 'referenced', x.status)),
            h('td', { class: 'num' }, fixed(x.score)), h('td', { class: 'num' }, x.tokens),
            h('td', { class: 'reason' }, reason(x)), h('td', {}, signals(x.explain))))))
          : h('p', { class: 'muted' }, 'Nothing is relevant to this agent.'),
        h('h3', {}, 'Left out'),
        out_.length || below.length ? h('table', { class: 'grid', id: 'package-dropped' },
          h('thead', {}, h('tr', {}, ['entry', 'reason', 'score', 'why', 'signals'].map((t) => h('th', {}, t)))),
          h('tbody', {}, [...out_, ...below].map((x) => h('tr', { data: { key: x.key } },
            h('td', { class: 'mono' }, link(ctxView(ctx, '', { key: x.key }), x.key)), h('td', {}, badge(x.reason)),
            h('td', { class: 'num' }, fixed(x.score)), h('td', { class: 'reason' }, reason(x)), h('td', {}, signals(x.explain))))))
          : h('p', { class: 'muted' }, 'Nothing was left out.'),
        h('h3', {}, 'The text the agent is given'), h('pre', { class: 'value package-text' }, p.text));
    } catch (e) { replace(out, errorBox(e)); }
  }
  replace(root,
    h('form', { class: 'toolbar', on: { submit: (e) => { e.preventDefault(); build(); } } },
      h('label', { for: 'package-agent' }, 'Agent'), agent, h('label', { for: 'package-budget' }, 'Budget (tokens)'), budget,
      h('button', { type: 'submit', class: 'primary' }, 'Show the package')),
    out);
  agent.addEventListener('change', () => { budget.value = ''; build(); });
  if (ids.length) await build();
}
