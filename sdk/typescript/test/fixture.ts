// A test file's server: started before its tests, with a client holding
// the admin token, and both ended after them.

import { afterAll, beforeAll } from "vitest";

import { Client } from "../src/index.js";
import { CtxmeshServer, type ServerOptions } from "./server.js";

/**
 * Registers the hooks that start a server (with `options`) and an admin
 * client before the file's tests, hand both to `ready`, and close the
 * client, the `clients` made by the tests, and the server after them.
 */
export function serverWithAdmin(
  ready: (server: CtxmeshServer, admin: Client) => void,
  options: { server?: ServerOptions; clients?: Client[] } = {},
): void {
  let server: CtxmeshServer | undefined;
  let admin: Client | undefined;
  beforeAll(async () => {
    server = await CtxmeshServer.start(options.server);
    admin = new Client({ url: server.url, token: server.adminToken });
    ready(server, admin);
  });
  afterAll(async () => {
    for (const c of options.clients ?? []) c.close();
    admin?.close();
    await server?.dispose();
  });
}
