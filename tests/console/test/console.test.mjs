// End-to-end tests of the console in a real headless Chromium (Debian's
// `chromium`, driven by playwright-core): a server seeded with a research,
// writing and review run, then each view used as a person would. Every
// view's screenshot is saved under artifacts/ (and, with
// CONSOLE_SCREENSHOTS=docs, into docs/console/ for docs/console.md).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { Server, REPO } from './server.mjs';
import { seed, CTX, XSS } from './seed.mjs';

const ARTIFACTS = join(REPO, 'tests', 'console', 'artifacts');
const DOCS = join(REPO, 'docs', 'console');
const BROWSER = process.env.CHROMIUM_BIN || ['/usr/bin/chromium', '/usr/lib/chromium/chromium'].find(existsSync);

let server;
let browser;
let page;
let run;
const dialogs = [];
const pageErrors = [];
const urls = [];

async function shot(name, { fullPage = false } = {}) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage });
  if (process.env.CONSOLE_SCREENSHOTS === 'docs') {
    mkdirSync(DOCS, { recursive: true });
    await page.screenshot({ path: join(DOCS, `${name}.png`), fullPage });
  }
}

async function signIn(token) {
  await page.goto(`${server.url}/ui/contexts`);
  await page.fill('#token', token);
  await page.click('button[type=submit]');
  await page.waitForSelector('#identity');
}

async function signOut() {
  await page.click('#sign-out');
  await page.waitForSelector('#token');
}

describe('the console', () => {
  before(async () => {
    assert.ok(BROWSER, 'Debian\'s chromium is needed (apt-get install chromium), or CHROMIUM_BIN');
    server = await new Server().start();
    run = await seed(server);
    browser = await chromium.launch({ executablePath: BROWSER, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    page = await context.newPage();
    page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('request', (r) => urls.push(r.url()));
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  test('/ui is served from the binary with a strict Content-Security-Policy', async () => {
    const res = await fetch(`${server.url}/ui`);
    assert.equal(res.status, 200);
    const csp = res.headers.get('content-security-policy');
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
    assert.match(await res.text(), /<script type="module" src="\/ui\/js\/main.js">/);
  });

  test('signs in with the admin token and lists the contexts', async () => {
    await page.goto(`${server.url}/ui`);
    await page.waitForSelector('#token');
    await shot('sign-in');
    await signIn(server.adminToken);
    await page.waitForSelector(`#contexts tr[data-ctx="${CTX}"]`);
    const row = page.locator(`#contexts tr[data-ctx="${CTX}"]`);
    assert.match(await row.textContent(), /team=growth/);
    // The active agents are those that wrote to it.
    await page.waitForSelector(`#contexts tr[data-ctx="${CTX}"] .chip.agent`);
    assert.match(await row.locator('.agents').textContent(), /writer/);
    // The token is in neither the address nor a cookie.
    assert.ok(!page.url().includes(server.adminToken));
    assert.deepEqual(await page.context().cookies(), []);
    await shot('contexts');
  });

  test('shows the entries as a tree, with value, metadata and author', async () => {
    await page.goto(`${server.url}/ui/c/${CTX}?key=research/findings/debugging`);
    await page.waitForSelector('#entry-detail');
    const detail = await page.textContent('#entry-detail');
    assert.match(detail, /Developers debugging multi-agent runs/);
    assert.match(detail, /researcher/);
    assert.match(detail, /finding/);
    assert.ok(await page.locator('.tree-row[data-key="research/findings"]').count() === 1, 'the tree has the branch');
    await page.waitForSelector('#entry-detail .versions table');
    await shot('entries');
  });

  test('searches the values and opens a hit', async () => {
    await page.goto(`${server.url}/ui/c/${CTX}`);
    await page.fill('#entry-search', 'overwrite');
    await page.press('#entry-search', 'Enter');
    await page.waitForSelector('#search-hits li[data-key="research/findings/lost-updates"]');
    await page.click('#search-hits li[data-key="research/findings/lost-updates"] button');
    await page.waitForSelector('#entry-detail >> text=research/findings/lost-updates');
    assert.match(await page.textContent('#entry-detail pre.value'), /overwrite each other/);
    assert.match(page.url(), /key=research%2Ffindings%2Flost-updates|key=research\/findings\/lost-updates/);
  });

  test('renders a value holding markup as text, running nothing', async () => {
    await page.goto(`${server.url}/ui/c/${CTX}?key=research/scraped-snippet`);
    await page.waitForSelector('#entry-detail pre.value');
    assert.equal(await page.textContent('#entry-detail pre.value'), JSON.stringify(XSS));
    assert.equal(await page.locator('#entry-detail img, .tree-row img').count(), 0);
    const row = page.locator('.tree-row[data-key="research/scraped-snippet"] .preview');
    assert.equal(await row.textContent(), XSS);
    assert.deepEqual(dialogs, []);
  });

  test('shows a write made through the API in the live view, without a reload', async () => {
    await page.goto(`${server.url}/ui/c/${CTX}/live`);
    await page.waitForSelector('#live-state.state-open');
    await page.evaluate(() => { window.__notReloaded = true; });
    const token = run.tokens.researcher;
    await server.api('PUT', `/v1/contexts/${CTX}/entries/research%2Ffindings%2Fpricing`, {
      token, body: { value: { claim: 'Teams pay for debugging time saved, not for storage.' }, kind: 'finding', tags: ['market'] },
    });
    await page.waitForSelector('#events li[data-type="context.updated"] >> text=research/findings/pricing');
    assert.equal(await page.evaluate(() => window.__notReloaded), true);
    // Coordination events go to the same log.
    await server.api('POST', `/v1/contexts/${CTX}/locks/review`, { token: run.tokens.reviewer, body: { ttl_ms: 600000 } });
    await page.waitForSelector('#events li[data-type="lock.acquired"]');
    assert.match(await page.textContent('#ctx-revision'), new RegExp(`revision ${(await server.api('GET', `/v1/contexts/${CTX}`)).json.revision}`));

    // Paused, then resumed: the writes made meanwhile all arrive.
    await page.click('#live-pause');
    await page.waitForSelector('#live-state.state-paused');
    for (const n of [1, 2, 3]) {
      await server.api('PUT', `/v1/contexts/${CTX}/entries/research%2Fnotes%2F${n}`, { token, body: { value: `note ${n}` } });
    }
    assert.equal(await page.locator('#events >> text=research/notes/').count(), 0);
    await page.click('#live-pause');
    for (const n of [1, 2, 3]) await page.waitForSelector(`#events li >> text=research/notes/${n}`);
    assert.equal(await page.locator('#events li >> text=research/notes/').count(), 3);
    await shot('live');
  });

  test('the timeline shows the whole context as of an older revision', async () => {
    const old = run.outline.revision;
    await page.goto(`${server.url}/ui/c/${CTX}/timeline?rev=${old}`);
    await page.waitForSelector('#as-of-title');
    assert.equal(await page.textContent('#as-of-title'), `The context as of revision ${old}`);
    assert.equal(await page.inputValue('#revision-slider'), String(old));
    // At that revision the outline is still the first draft, and the review
    // written later does not exist.
    await page.waitForSelector('.as-of .tree-row[data-key="draft/outline"]');
    assert.match(await page.textContent('.as-of .tree-row[data-key="draft/outline"] .preview'), /"status":"draft"/);
    assert.equal(await page.locator('.as-of .tree-row[data-key="review/notes"]').count(), 0);
    assert.equal(await page.locator(`#commits li.selected[data-rev="${old}"]`).count(), 1);
    await shot('timeline');
  });

  test('a diff between two versions of an entry shows the changed field', async () => {
    await page.goto(`${server.url}/ui/c/${CTX}/diff?key=draft/outline&from=${run.outline.revision}&to=${run.outlineV2.revision}`);
    await page.waitForSelector('#diff-result table.diff');
    const rows = await page.locator('#diff-result table.diff tbody tr').allTextContents();
    assert.equal(rows.length, 1, rows.join('\n'));
    assert.match(rows[0], /\/status/);
    assert.match(rows[0], /"draft"/);
    assert.match(rows[0], /"ready for review"/);
    // Between two revisions of the context, every key that changed.
    await page.goto(`${server.url}/ui/c/${CTX}/diff?from=${run.outline.revision}&to=${run.outlineV2.revision}`);
    await page.waitForSelector('#diff-result .change[data-key="draft/outline"]');
    assert.equal(await page.locator('#diff-result .change[data-key="draft/headline"]').count(), 1);
    assert.match(await page.textContent('#diff-result .change[data-key="draft/outline"]'), /\/status/);
    await shot('diff');
  });

  test('shows what an agent sees: its package, each entry with its reason', async () => {
    await page.goto(`${server.url}/ui/c/${CTX}/package?agent=writer`);
    await page.waitForSelector('#package-items');
    const row = page.locator('#package-items tr[data-key="research/findings/debugging"]');
    assert.equal(await row.count(), 1);
    assert.match(await row.textContent(), /named by its needs/);
    assert.match(await page.textContent('#package-tokens'), /of 1200 tokens/);
    // The writer's needs exclude the review.
    assert.match(await page.locator('#package-dropped tr[data-key="review/notes"]').textContent(), /excluded/);

    // On a tight budget, entries go in summarized or as references, or are
    // left out for the budget, and the package stays within it.
    await page.goto(`${server.url}/ui/c/${CTX}/package?agent=writer&budget=150`);
    await page.waitForSelector('#package-items');
    const tokens = Number((await page.textContent('#package-tokens')).match(/^(\d+) of 150 tokens/)[1]);
    assert.ok(tokens <= 150, `${tokens} tokens`);
    const wentIn = await page.locator('#package-items td:nth-child(3)').allTextContents();
    const budgetOut = await page.locator('#package-dropped .badge-budget').count();
    assert.ok(wentIn.some((w) => w !== 'whole') || budgetOut > 0, wentIn.join(','));
    await shot('package');
  });

  test('shows agents, locks, handoffs and tasks', async () => {
    await page.goto(`${server.url}/ui/c/${CTX}/coordination`);
    await page.waitForSelector('#locks tr[data-lock="draft"]');
    const lock = await page.textContent('#locks tr[data-lock="draft"]');
    assert.match(lock, /writer/);
    assert.match(lock, new RegExp(String(run.lock.fencing_token)));
    await page.waitForSelector('#handoffs .column[data-status="accepted"] .card');
    assert.match(await page.textContent('#handoffs .column[data-status="accepted"]'), /researcher → writer/);
    await page.waitForSelector('#tasks .column[data-status="assigned"] .card');
    assert.match(await page.textContent('#tasks'), /Review the launch draft/);
    await page.waitForSelector('#agents tr[data-agent="reviewer"]');
    await shot('coordination', { fullPage: true });
    await page.click('#agents tr[data-agent="reviewer"] button');
    await page.waitForSelector('#inbox');
    assert.match(await page.textContent('#inbox'), /task\.assigned/);
  });

  test('resolving a conflict from the console resolves it in the API', async () => {
    const id = run.conflict.conflict;
    assert.equal(run.conflict.outcome, 'pending');
    await page.goto(`${server.url}/ui/c/${CTX}/conflicts?status=pending`);
    await page.click(`#conflicts tr[data-id="${id}"]`);
    await page.waitForSelector('#conflict-detail[data-status="pending"]');
    assert.match(await page.textContent('#candidate-proposed'), /Debug multi-agent runs/);
    await shot('conflicts');
    await page.click('#apply-proposed');
    await page.waitForSelector('#conflict-detail[data-status="resolved"]');
    const { json } = await server.api('GET', `/v1/contexts/${CTX}/conflicts/${encodeURIComponent(id)}`);
    assert.equal(json.status, 'resolved');
    assert.equal(json.resolution.chose, 'proposed');
    const entry = await server.api('GET', `/v1/contexts/${CTX}/entries/draft%2Fheadline`);
    assert.equal(entry.json.value, 'Debug multi-agent runs by what each agent saw');
  });

  test('the audit log lists the access decisions, with filters', async () => {
    await page.goto(`${server.url}/ui/audit?agent=reviewer`);
    await page.waitForSelector('#audit tbody tr td');
    const agents = await page.locator('#audit tbody tr td:nth-child(3)').allTextContents();
    assert.ok(agents.length > 0);
    assert.ok(agents.every((a) => a === 'reviewer'), agents.join(','));
    await page.goto(`${server.url}/ui/audit`);
    await page.waitForSelector('#audit tbody tr td');
    await shot('audit');
  });

  test('rollback and fork from the timeline', async () => {
    await page.goto(`${server.url}/ui/c/${CTX}/timeline?rev=${run.outline.revision}`);
    await page.waitForSelector('#fork');
    await page.fill('#fork-id', 'launch-brief-early');
    await page.click('#fork');
    await page.waitForSelector('#ctx-revision');
    assert.match(page.url(), /\/ui\/c\/launch-brief-early$/);
    const fork = await server.api('GET', '/v1/contexts/launch-brief-early/entries/draft%2Foutline');
    assert.equal(fork.json.value.status, 'draft');

    // The fork starts at its revision 1; a later write, then a rollback to 1.
    await server.api('PUT', '/v1/contexts/launch-brief-early/entries/draft%2Foutline', { body: { value: { status: 'abandoned' } } });
    await page.goto(`${server.url}/ui/c/launch-brief-early/timeline`);
    await page.waitForSelector('#commits li');
    const before = (await server.api('GET', '/v1/contexts/launch-brief-early')).json.revision;
    assert.equal(await page.isDisabled('#rollback'), true, 'nothing to roll back at the newest revision');
    await page.fill('#revision-input', '1');
    await page.press('#revision-input', 'Enter');
    await page.click('#rollback');
    await page.click('#confirm-rollback');
    await page.waitForSelector(`#as-of-title >> text=revision ${before + 1}`);
    const after_ = (await server.api('GET', '/v1/contexts/launch-brief-early')).json;
    assert.equal(after_.revision, before + 1);
    const restored = await server.api('GET', '/v1/contexts/launch-brief-early/entries/draft%2Foutline');
    assert.equal(restored.json.value.status, 'draft');
  });

  test('an agent\'s token sees only what that agent may read', async () => {
    await signOut();
    await signIn(run.tokens.intern);
    assert.match(await page.textContent('#identity'), /intern/);
    await page.waitForSelector('#contexts tr[data-ctx="onboarding-faq"]');
    assert.deepEqual(await page.locator('#contexts tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.ctx)), ['onboarding-faq']);
    await shot('agent-contexts');
    await page.goto(`${server.url}/ui/c/${CTX}`);
    await page.waitForSelector('.error');
    assert.match(await page.textContent('.error'), /forbidden|not_found/);
    await shot('agent-without-grant');
    // The reviewer, granted read, sees it.
    await signOut();
    await signIn(run.tokens.reviewer);
    await page.waitForSelector(`#contexts tr[data-ctx="${CTX}"]`);
    await signOut();
  });

  test('no view threw an error in the page, and no address carried a token', () => {
    assert.deepEqual(pageErrors, []);
    assert.ok(urls.some((u) => u.includes('/watch')), 'the live view streamed');
    for (const token of [server.adminToken, ...Object.values(run.tokens)]) {
      assert.deepEqual(urls.filter((u) => u.includes(token)), []);
    }
  });
});
