// Types of scripts/schema.mjs, for the tests that import it.

/** The package's directory (sdk/typescript). */
export declare const PACKAGE_DIR: string;
/** Where the generated types live (src/schema.ts). */
export declare const SCHEMA_FILE: string;
/** The server binary: $CTXMESH_BIN, else the repository's debug build. */
export declare function serverBinary(): string;
/** The text of src/schema.ts for an OpenAPI document. */
export declare function generateSchemaSource(document: object): Promise<string>;
/** Fetches a server's OpenAPI document. */
export declare function fetchDocument(url: string): Promise<object>;
/** Runs `ctxmesh serve` on a temporary data directory while `fn` runs. */
export declare function withServer<T>(fn: (url: string) => Promise<T>, binary?: string): Promise<T>;
