// How the console signs in and out: a server without tokens opens without
// asking, a wrong token is refused in place, and a token the server stops
// accepting brings back the sign-in page.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

import { Server } from './server.mjs';

const BROWSER = process.env.CHROMIUM_BIN || ['/usr/bin/chromium', '/usr/lib/chromium/chromium'].find(existsSync);

describe('signing in', () => {
  const servers = [];
  let browser;

  async function page() {
    assert.ok(BROWSER, 'Debian\'s chromium is needed (apt-get install chromium), or CHROMIUM_BIN');
    browser ||= await chromium.launch({ executablePath: BROWSER, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    return (await browser.newContext()).newPage();
  }

  after(async () => {
    if (browser) await browser.close();
    for (const s of servers) await s.stop();
  });

  test('a server without tokens opens the console without asking', async () => {
    const server = await new Server({ args: ['--auth', 'off'] }).start();
    servers.push(server);
    await server.api('POST', '/v1/contexts', { body: { id: 'open-run' } });
    const p = await page();
    await p.goto(`${server.url}/ui`);
    await p.waitForSelector('#contexts tr[data-ctx="open-run"]');
    assert.equal(await p.locator('#token').count(), 0);
  });

  test('a wrong token is refused in place; a revoked one signs the tab out', async () => {
    const server = await new Server().start();
    servers.push(server);
    const { json: agent } = await server.api('POST', '/v1/agents', { body: { id: 'temp' } });
    const p = await page();
    await p.goto(`${server.url}/ui`);
    await p.fill('#token', 'cmt_not-a-token');
    await p.click('button[type=submit]');
    await p.waitForSelector('.signin .error');
    assert.match(await p.textContent('.signin .error'), /not valid/);

    await p.fill('#token', agent.token);
    await p.click('button[type=submit]');
    await p.waitForSelector('#identity >> text=temp');
    // The token is in the tab's session storage, not in a cookie or the address.
    assert.equal(await p.evaluate(() => sessionStorage.getItem('ctxmesh.token')), agent.token);
    assert.deepEqual(await p.context().cookies(), []);

    await server.api('DELETE', '/v1/agents/temp/token');
    await p.goto(`${server.url}/ui/contexts`);
    await p.waitForSelector('#token');
    assert.match(await p.textContent('.signin'), /sign in again/);
    assert.equal(await p.evaluate(() => sessionStorage.getItem('ctxmesh.token')), null);
  });
});
