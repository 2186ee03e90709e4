// A real `ctxmesh serve` process for the tests.
//
// The binary comes from $CTXMESH_BIN (default: <repo>/target/debug/ctxmesh;
// build it with `cargo build -p ctxmesh`). It is started with
// `serve --listen 127.0.0.1:0 --data-dir <tmp>` and a random
// CTXMESH_ADMIN_TOKEN; its address is read from its log line
// `listening on http://ADDR` (`https://` with `--tls-cert`).

import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { get as httpsGet } from "node:https";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const LISTENING = /listening on (https?:\/\/\S+)/;

/** The ctxmesh binary the tests run ($CTXMESH_BIN). */
export function serverBinary(): string {
  return process.env.CTXMESH_BIN || join(REPO, "target", "debug", "ctxmesh");
}

/** A fresh id such as `ctx-3f2a9c1b0e`. */
export function unique(prefix: string): string {
  return `${prefix}-${randomUUID().replace(/-/g, "").slice(0, 10)}`;
}

export interface ServerOptions {
  /** Extra arguments of `ctxmesh serve`. */
  args?: string[];
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** The CA certificate (PEM) of a server started with `--tls-cert`, for the readiness check. */
  ca?: string;
}

/** A ctxmesh server process on a data directory of its own. */
export class CtxmeshServer {
  readonly binary = serverBinary();
  readonly dataDir: string;
  readonly adminToken = "cmt_" + randomBytes(32).toString("hex");
  url = "";
  port: number | undefined;
  log: string[] = [];
  private process: ChildProcess | undefined;
  private readonly options: ServerOptions;

  constructor(options: ServerOptions = {}) {
    this.options = options;
    this.dataDir = mkdtempSync(join(tmpdir(), "ctxmesh-ts-"));
  }

  /** Starts a server on a fresh data directory and waits until it is ready. */
  static async start(options: ServerOptions = {}): Promise<CtxmeshServer> {
    const server = new CtxmeshServer(options);
    await server.start();
    return server;
  }

  /** Starts the server (on its previous port when it had one). */
  async start(): Promise<this> {
    if (!existsSync(this.binary)) {
      throw new Error(
        `the ctxmesh server binary ${this.binary} does not exist: build it with ` +
          `\`cargo build -p ctxmesh\` in ${REPO}, or point CTXMESH_BIN at one`,
      );
    }
    if (this.port !== undefined) {
      try {
        await this.spawn(`127.0.0.1:${this.port}`);
        return this;
      } catch {
        // the port is taken now: take any
      }
    }
    await this.spawn("127.0.0.1:0");
    return this;
  }

  private async spawn(listen: string): Promise<void> {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (v !== undefined && !k.startsWith("CTXMESH_")) env[k] = v;
    }
    Object.assign(env, { CTXMESH_ADMIN_TOKEN: this.adminToken, CTXMESH_LOG: "info" }, this.options.env ?? {});
    const args = ["serve", "--listen", listen, "--data-dir", this.dataDir, ...(this.options.args ?? [])];
    const child = spawn(this.binary, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    const url = await new Promise<string>((resolvePromise, reject) => {
      let found = false;
      const timer = setTimeout(() => {
        if (!found) reject(new Error(`ctxmesh did not start on ${listen}:\n${this.log.slice(-20).join("\n")}`));
      }, 60_000);
      const onData = (chunk: Buffer) => {
        for (const line of chunk.toString("utf8").split("\n")) {
          if (!line) continue;
          this.log.push(line);
          const match = !found && LISTENING.exec(line);
          if (match && match[1]) {
            found = true;
            clearTimeout(timer);
            resolvePromise(match[1]);
          }
        }
      };
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
      child.on("exit", (code, signal) => {
        clearTimeout(timer);
        if (!found) reject(new Error(`ctxmesh exited (${code ?? signal}) on ${listen}:\n${this.log.slice(-20).join("\n")}`));
      });
    });
    this.process = child;
    this.url = url.replace(/\/$/, "");
    this.port = Number(this.url.slice(this.url.lastIndexOf(":") + 1));
    await this.waitReady();
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        if (await this.ready()) return;
      } catch {
        // not yet
      }
      if (Date.now() > deadline) throw new Error(`ctxmesh at ${this.url} did not become ready`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Whether `/readyz` answers 200 (over https with the CA of the options). */
  private async ready(): Promise<boolean> {
    if (!this.url.startsWith("https://")) return (await fetch(`${this.url}/readyz`)).ok;
    return new Promise((resolvePromise, reject) => {
      // The chain is checked, not the name: a test may give the server a
      // certificate for another host.
      httpsGet(`${this.url}/readyz`, { ca: this.options.ca, checkServerIdentity: () => undefined }, (answer) => {
        answer.resume();
        resolvePromise(answer.statusCode === 200);
      }).on("error", reject);
    });
  }

  get running(): boolean {
    return this.process !== undefined && this.process.exitCode === null && this.process.signalCode === null;
  }

  /** Stops the server gracefully (SIGTERM), killing it if it takes longer than 20 s. */
  async stop(): Promise<void> {
    await this.end("SIGTERM");
  }

  /** Kills the server at once (SIGKILL), as a crash would. */
  async kill(): Promise<void> {
    await this.end("SIGKILL");
  }

  private async end(signal: NodeJS.Signals): Promise<void> {
    const child = this.process;
    this.process = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    await exited;
    clearTimeout(timer);
  }

  /** Stops (or kills) the server and starts it again on the same data directory. */
  async restart(options: { kill?: boolean } = {}): Promise<this> {
    await (options.kill ? this.kill() : this.stop());
    return this.start();
  }

  /** Stops the server and removes its data directory. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** Registers an agent (a unique id unless given) with the admin token and returns its id and token. */
  async registerAgent(id: string = unique("agent"), spec: Record<string, unknown> = {}): Promise<{ id: string; token: string }> {
    const answer = await fetch(`${this.url}/v1/agents`, {
      method: "POST",
      headers: { authorization: `Bearer ${this.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ id, ...spec }),
    });
    const body = (await answer.json()) as { id: string; token: string };
    if (!answer.ok) throw new Error(`registering ${id}: ${answer.status} ${JSON.stringify(body)}`);
    return { id: body.id, token: body.token };
  }
}
