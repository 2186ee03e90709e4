// A context with real-looking content: a research, writing and review run
// over a product launch brief, with a handoff, a lock, a task, a pending
// conflict, and a value an agent scraped from the web that holds markup.

export const CTX = 'launch-brief';
export const XSS = '<img src=x onerror=alert(1)>';

const AGENTS = {
  researcher: {
    name: 'Researcher', objective: 'find what developers need from a context store for AI agents', token_budget: 3000,
    needs: { kinds: ['objective'], tags: ['market'] }, produces: { kinds: ['finding', 'source'], keys: ['research/**'] },
    capabilities: { custom: ['web-search', 'summarize'] },
  },
  writer: {
    name: 'Writer', objective: 'write the launch post for developers from the findings', token_budget: 1200,
    needs: { kinds: ['finding', 'objective'], keys: ['brand/**'], exclude: { keys: ['review/**'] } }, produces: { keys: ['draft/**'] },
    capabilities: { custom: ['drafting'] },
  },
  reviewer: {
    name: 'Reviewer', objective: 'check the draft for accuracy against the sources and brand voice', token_budget: 2000,
    needs: { keys: ['draft/**', 'brand/**'], kinds: ['source'] }, produces: { keys: ['review/**'] },
    capabilities: { custom: ['fact-check'] },
  },
  intern: { name: 'Intern', objective: 'learn', token_budget: 500, needs: { kinds: ['objective'] } },
};

/** Seeds the run; answers the agents' tokens and the revisions that matter. */
export async function seed(server) {
  const tokens = {};
  for (const [id, spec] of Object.entries(AGENTS)) {
    const { json } = await server.api('POST', '/v1/agents', { body: { id, ...spec, lease_ms: 3600000 } });
    tokens[id] = json.token;
  }
  await server.api('POST', '/v1/contexts', {
    body: {
      id: CTX, labels: { team: 'growth', run: 'launch-2026-12' },
      policy: { strategy: 'reject', overrides: [{ pattern: 'draft/headline', strategy: 'manual' }] },
    },
  });
  await server.api('POST', `/v1/contexts/${CTX}/grants`, { body: { agents: ['researcher', 'writer', 'reviewer'], permissions: ['read', 'write'] } });
  const as = (agent) => ({ token: tokens[agent] });
  const put = async (agent, key, value, meta = {}, headers = {}) => (await server.api('PUT', `/v1/contexts/${CTX}/entries/${encodeURIComponent(key)}`, { ...as(agent), body: { value, ...meta }, headers })).json;

  await put('writer', 'brief/objective', { goal: 'Launch post announcing the ctxmesh console', audience: 'developers building multi-agent systems', due: '2026-12-10' }, { kind: 'objective', priority: 'high', tags: ['market'] });
  await put('writer', 'brand/voice', { tone: 'plain, confident, no hype', banned_words: ['revolutionary', 'magic'] }, { kind: 'guideline' });
  await put('researcher', 'research/sources/letta-ade', { url: 'https://docs.letta.com/', note: 'context window viewer is the feature users praise' }, { kind: 'source', tags: ['competitor'] });
  await put('researcher', 'research/sources/langgraph-studio', { url: 'https://langchain-ai.github.io/langgraph/', note: 'time travel over checkpoints' }, { kind: 'source', tags: ['competitor'] });
  await put('researcher', 'research/findings/debugging', { claim: 'Developers debugging multi-agent runs first ask what each agent saw and who changed what.', confidence: 'high', sources: ['letta-ade', 'langgraph-studio'] }, { kind: 'finding', tags: ['market'], confidence: 0.9, priority: 'high' });
  await put('researcher', 'research/findings/lost-updates', { claim: 'Parallel agents overwrite each other\'s state in last-write-wins stores.', sources: ['adk-python#1733'] }, { kind: 'finding', tags: ['market'], confidence: 0.8 });
  await put('researcher', 'research/scraped-snippet', XSS, { kind: 'note', tags: ['raw'] });
  const early = await put('researcher', 'research/status', { state: 'in progress', findings: 2 }, { kind: 'status' });
  await put('researcher', 'research/status', { state: 'done', findings: 2 }, { kind: 'status' }, { 'If-Match': `"${early.revision}"` });

  const handoff = (await server.api('POST', '/v1/handoffs', {
    ...as('researcher'),
    body: { target: 'writer', context: CTX, keys: ['research/findings/*', 'brief/objective'], user_intent: 'a launch post for developers', note: 'findings are under research/findings/' },
  })).json;
  await server.api('POST', `/v1/handoffs/${handoff.id}/accept`, { ...as('writer'), body: {} });

  const lock = (await server.api('POST', `/v1/contexts/${CTX}/locks/draft`, { ...as('writer'), body: { ttl_ms: 3600000 } })).json;
  const fence = { 'X-Fencing-Token': `draft=${lock.fencing_token}` };
  const outline = await put('writer', 'draft/outline', { status: 'draft', sections: ['problem', 'what the console shows', 'try it'] }, { kind: 'draft', depends_on: ['research/findings/debugging'] }, fence);
  const headline = await put('writer', 'draft/headline', 'See what your agents saw', { kind: 'draft' }, fence);
  const outlineV2 = await put('writer', 'draft/outline', { status: 'ready for review', sections: ['problem', 'what the console shows', 'try it'] }, { kind: 'draft', depends_on: ['research/findings/debugging'] }, { ...fence, 'If-Match': `"${outline.revision}"` });
  await server.api('POST', `/v1/contexts/${CTX}/tasks`, { ...as('writer'), body: { assignee: 'reviewer', title: 'Review the launch draft', input: { keys: ['draft/**'] }, priority: 'high' } });
  await put('reviewer', 'review/notes', { verdict: 'changes requested', comments: ['cite the LangGraph Studio finding', 'headline is good'] }, { kind: 'review' });
  // The writer retitles; the reviewer, who read the first headline, proposes
  // another: the manual policy keeps it aside as a pending conflict.
  await put('writer', 'draft/headline', 'See what every agent saw, and who changed what', { kind: 'draft' }, { ...fence, 'If-Match': `"${headline.revision}"` });
  const stale = await server.api('PUT', `/v1/contexts/${CTX}/entries/draft%2Fheadline`, {
    ...as('reviewer'), body: { value: 'Debug multi-agent runs by what each agent saw', kind: 'draft' }, headers: { 'If-Match': `"${headline.revision}"` }, expect: 202,
  });

  // Other runs on the same server.
  const others = [
    ['support-triage-4411', { team: 'support', run: 'ticket-4411' }, 'researcher', [['ticket/summary', { customer: 'Acme', issue: 'webhook retries duplicate orders' }], ['ticket/plan', ['reproduce', 'patch idempotency key', 'reply']]]],
    ['pricing-review-q1', { team: 'growth', run: 'pricing-q1' }, 'reviewer', [['pricing/tiers', { free: 0, team: 49, enterprise: 'custom' }]]],
    ['onboarding-faq', { team: 'docs' }, 'writer', [['faq/what-is-a-context', 'A versioned store of what the agents of one task share.'], ['faq/who-can-read', 'The creator, the admin, and agents with a grant.']]],
  ];
  for (const [id, labels, agent, entries] of others) {
    await server.api('POST', '/v1/contexts', { body: { id, labels } });
    await server.api('POST', `/v1/contexts/${id}/grants`, { body: { agents: [agent], permissions: ['read', 'write'] } });
    for (const [key, value] of entries) await server.api('PUT', `/v1/contexts/${id}/entries/${encodeURIComponent(key)}`, { token: tokens[agent], body: { value } });
  }
  await server.api('POST', '/v1/contexts/onboarding-faq/grants', { body: { agents: ['intern'], permissions: ['read'] } });
  return { tokens, outline, outlineV2, conflict: stale.json, lock };
}
