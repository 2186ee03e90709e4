// `npm run generate`: writes src/schema.ts from the OpenAPI document of a
// ctxmesh server started for the purpose ($CTXMESH_BIN, default
// ../../target/debug/ctxmesh).

import { writeFileSync } from "node:fs";

import { SCHEMA_FILE, fetchDocument, generateSchemaSource, serverBinary, withServer } from "./schema.mjs";

const binary = serverBinary();
const source = await withServer(async (url) => generateSchemaSource(await fetchDocument(url)), binary);
writeFileSync(SCHEMA_FILE, source);
console.log(`wrote ${SCHEMA_FILE} from the OpenAPI document of ${binary}`);
