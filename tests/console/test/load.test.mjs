// The console under load, in a real headless Chromium: a context of 10,000
// entries opens and scrolls (the tree keeps only the rows in view in the
// page), and 50 events a second for a minute reach the live view, every
// one of them, with the page holding a bounded number of rows. The figures
// (load time, longest main-thread task, heap) are printed for
// docs/benchmarks.md; they are not asserted.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

import { Server } from './server.mjs';

const BROWSER = process.env.CHROMIUM_BIN || ['/usr/bin/chromium', '/usr/lib/chromium/chromium'].find(existsSync);
const ENTRIES = 10_000;
const RATE = 50;
const SECONDS = Number(process.env.CONSOLE_STREAM_SECONDS || 60);

let server;
let browser;
let page;
let cdp;
const figures = {};

async function heap() {
  await cdp.send('HeapProfiler.collectGarbage');
  const { metrics } = await cdp.send('Performance.getMetrics');
  return metrics.find((m) => m.name === 'JSHeapUsedSize').value;
}

async function longestTask() {
  return page.evaluate(() => { const v = window.__longest || 0; window.__longest = 0; return v; });
}

describe('the console under load', () => {
  before(async () => {
    assert.ok(BROWSER, 'Debian\'s chromium is needed (apt-get install chromium), or CHROMIUM_BIN');
    server = await new Server().start();
    browser = await chromium.launch({ executablePath: BROWSER, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    // The longest main-thread task since the last look.
    await context.addInitScript(() => {
      window.__longest = 0;
      new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__longest = Math.max(window.__longest, e.duration); }).observe({ type: 'longtask', buffered: true });
    });
    page = await context.newPage();
    cdp = await context.newCDPSession(page);
    await cdp.send('Performance.enable');
    await page.goto(`${server.url}/ui`);
    await page.fill('#token', server.adminToken);
    await page.click('button[type=submit]');
    await page.waitForSelector('#identity');
  });

  after(async () => {
    if (Object.keys(figures).length) console.log(`console figures: ${JSON.stringify(figures)}`);
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  test('a context of 10,000 entries opens and scrolls, a window of rows at a time', async () => {
    await server.api('POST', '/v1/contexts', { body: { id: 'corpus' } });
    const text = 'Quarterly interview notes: what the team tried, what broke, and what the agents were told at each step. ';
    for (let i = 0; i < ENTRIES; i += 250) {
      const success = [];
      for (let j = i; j < Math.min(i + 250, ENTRIES); j++) {
        const key = `interviews/batch-${String(Math.floor(j / 1000)).padStart(2, '0')}/note-${String(j).padStart(5, '0')}`;
        success.push({ op: 'put', key, value: { n: j, text: text.repeat(2) }, kind: 'note' });
      }
      await server.api('POST', '/v1/contexts/corpus/txn', { body: { success } });
    }
    const started = Date.now();
    await page.goto(`${server.url}/ui/c/corpus`);
    await page.waitForSelector(`.tree-status >> text=${ENTRIES} entries at revision`);
    figures.open_10k_ms = Date.now() - started;
    figures.open_10k_longest_task_ms = await longestTask();

    // Every key at once (a filter lists them flat): still only a window of
    // rows in the page.
    await page.fill('.tree-filter', 'note-');
    await page.waitForSelector('.tree-row[data-key="interviews/batch-00/note-00000"]');
    assert.ok(await page.locator('.tree-row').count() < 120, 'the tree renders only the rows in view');
    const scrolled = Date.now();
    for (const f of [0.25, 0.5, 0.75, 1]) {
      await page.$eval('.vlist', (el, frac) => { el.scrollTop = el.scrollHeight * frac; }, f);
      await page.waitForTimeout(50);
    }
    const last = `interviews/batch-09/note-${String(ENTRIES - 1).padStart(5, '0')}`;
    await page.waitForSelector(`.tree-row[data-key="${last}"]`);
    figures.scroll_10k_ms = Date.now() - scrolled;
    figures.scroll_10k_longest_task_ms = await longestTask();
    assert.ok(await page.locator('.tree-row').count() < 120);
    await page.click(`.tree-row[data-key="${last}"]`);
    await page.waitForSelector(`#entry-detail >> text=${last}`);
    assert.match(await page.textContent('#entry-detail pre.value'), new RegExp(`"n": ${ENTRIES - 1}`));
  });

  test(`${RATE} events a second for ${SECONDS} s all reach the live view, in bounded memory`, { timeout: (SECONDS + 120) * 1000 }, async () => {
    await server.api('POST', '/v1/contexts', { body: { id: 'busy' } });
    await page.goto(`${server.url}/ui/c/busy/live`);
    await page.waitForSelector('#live-state.state-open');
    await longestTask();
    const heapBefore = await heap();
    const total = RATE * SECONDS;
    const start = Date.now();
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / RATE;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await server.api('PUT', `/v1/contexts/busy/entries/agents%2Fworker-${i % 8}%2Fprogress`, { body: { value: { step: i, note: 'working through the queue' } } });
      if (i === Math.floor(total / 2)) {
        // The page answers while the stream runs.
        assert.equal(await page.evaluate(() => document.querySelectorAll('#events li').length <= 500), true);
      }
    }
    figures.stream_events = total;
    figures.stream_seconds = (Date.now() - start) / 1000;
    await page.waitForSelector(`#live-count >> text=${total} events received`, { timeout: 30000 });
    const rows = await page.locator('#events li').count();
    assert.equal(rows, 500, 'the newest 500 events are shown, the rest let go');
    // The newest event is first, with the last step.
    assert.match(await page.textContent('#events li:first-child'), new RegExp(`"step":${total - 1}`));
    const heapAfter = await heap();
    figures.stream_heap_before_mb = +(heapBefore / 2 ** 20).toFixed(1);
    figures.stream_heap_after_mb = +(heapAfter / 2 ** 20).toFixed(1);
    figures.stream_longest_task_ms = await longestTask();
    // Bounded: 3,000 events of ~300 bytes held would be ~1 MB of strings
    // alone, plus their rows; the page keeps 500.
    assert.ok(heapAfter - heapBefore < 16 * 2 ** 20, `the heap grew by ${heapAfter - heapBefore} bytes`);
  });

  test('the audit log shows its newest 1,000 records without reading it all', async () => {
    // Every request above left a record; the log is read oldest first.
    const all = async () => {
      const seqs = [];
      for (let after = 0; ;) {
        const { json } = await server.api('GET', `/v1/audit?after=${after}&limit=1000`);
        seqs.push(...json.records.map((r) => r.seq));
        if (json.records.length < 1000) return seqs;
        after = json.next_after;
      }
    };
    let seqs = await all();
    // A short stream (CONSOLE_STREAM_SECONDS) leaves fewer: more reads, each
    // recorded (within a moment).
    for (let i = seqs.length; i < 1200; i++) await server.api('GET', '/v1/contexts/busy');
    for (let tries = 0; seqs.length <= 1100 && tries < 100; tries++) {
      await new Promise((r) => setTimeout(r, 100));
      seqs = await all();
    }
    assert.ok(seqs.length > 1000, `${seqs.length} records`);
    const requests = [];
    const count = (r) => { if (r.url().includes('/v1/audit')) requests.push(r.url()); };
    page.on('request', count);
    await page.goto(`${server.url}/ui/audit`);
    await page.waitForSelector('#audit tbody tr td');
    page.off('request', count);
    const shown = (await page.locator('#audit tbody tr td:first-child').allTextContents()).map(Number);
    // The newest record is written by the reads of this page, so the first
    // row is at least the newest one before it.
    assert.equal(shown.length, 1000);
    assert.ok(shown[0] >= seqs[seqs.length - 1]);
    assert.deepEqual(shown, [...shown].sort((a, b) => b - a), 'newest first');
    assert.ok(requests.length < 60, `${requests.length} reads of the log for ${seqs.length} records`);
  });
});
