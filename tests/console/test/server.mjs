// A real `ctxmesh serve` for the console tests, on a data directory of its
// own, with a random admin token. The binary is $CTXMESH_BIN (default:
// <repo>/target/debug/ctxmesh).

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export class Server {
  /** `args`: more arguments of `ctxmesh serve` (`['--auth', 'off']`). */
  constructor({ args = [] } = {}) {
    this.args = args;
    this.binary = process.env.CTXMESH_BIN || join(REPO, 'target', 'debug', 'ctxmesh');
    this.adminToken = 'cmt_' + randomBytes(32).toString('hex');
    this.dataDir = mkdtempSync(join(tmpdir(), 'ctxmesh-console-'));
    this.log = [];
  }

  async start() {
    if (!existsSync(this.binary)) throw new Error(`no ctxmesh binary at ${this.binary}: run \`cargo build -p ctxmesh\` or set CTXMESH_BIN`);
    this.process = spawn(this.binary, ['serve', '--listen', '127.0.0.1:0', '--data-dir', this.dataDir, ...this.args], {
      env: { ...process.env, CTXMESH_ADMIN_TOKEN: this.adminToken, RUST_LOG: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.url = await new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`the server did not start:\n${this.log.join('')}`)), 30000);
      const read = (chunk) => {
        const text = chunk.toString();
        this.log.push(text);
        const m = /listening on (http:\/\/\S+)/.exec(this.log.join(''));
        if (m) { clearTimeout(timer); ok(m[1]); }
      };
      this.process.stdout.on('data', read);
      this.process.stderr.on('data', read);
      this.process.on('exit', (code) => { clearTimeout(timer); fail(new Error(`the server exited (${code}):\n${this.log.join('')}`)); });
    });
    return this;
  }

  async stop() {
    if (this.process && this.process.exitCode === null) {
      const exited = new Promise((r) => this.process.once('exit', r));
      this.process.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** Calls the API with a token (default: the admin's). */
  async api(method, path, { body, token = this.adminToken, headers = {}, expect } = {}) {
    const res = await fetch(this.url + path, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    const json = text ? JSON.parse(text) : null;
    if (expect !== undefined ? res.status !== expect : !res.ok) {
      throw new Error(`${method} ${path}: ${res.status} ${text}`);
    }
    return { status: res.status, json, headers: res.headers };
  }
}
