// The JSON the framework adapters send and receive, and small helpers over
// it: transaction operations, comparisons and answers (docs/api.md,
// "Transactions"), serialized values, times.

/** An entry as the server sends it (the fields the adapters read). */
export interface WireEntry {
  key: string;
  value: unknown;
  revision: number;
  version?: number;
  updated_at: string;
  author?: string;
  kind?: string | null;
  tags?: string[];
  [field: string]: unknown;
}

/** One comparison of a transaction: one target (`revision`, `version`, `exists` or `value`). */
export interface Compare {
  key: string;
  revision?: number;
  version?: number;
  exists?: boolean;
  value?: unknown;
  op?: "eq" | "ne" | "lt" | "gt";
}

/** One operation of a transaction. */
export type TxnOp =
  | {
      op: "put";
      key: string;
      value: unknown;
      kind?: string;
      tags?: string[];
      ttl_ms?: number;
      [metadata: string]: unknown;
    }
  | { op: "delete"; key: string }
  | { op: "delete_prefix"; prefix: string }
  | { op: "get"; key: string }
  | { op: "get"; prefix: string };

/** A transaction's body. */
export interface TxnBody {
  compare?: Compare[];
  success: TxnOp[];
  failure?: TxnOp[];
}

/** One result of a transaction's operation (only `get` results carry entries). */
export interface TxnResult {
  op: string;
  entries?: WireEntry[];
  entry?: WireEntry;
  [field: string]: unknown;
}

/** A transaction's answer. */
export interface TxnAnswer {
  succeeded: boolean;
  revision: number;
  results: TxnResult[];
}

/** The entries of the `index`-th result of a transaction's answer. */
export function entriesOf(answer: TxnAnswer, index: number): WireEntry[] {
  return answer.results[index]?.entries ?? [];
}

/** `items` in consecutive chunks of at most `size`. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  const step = Math.max(1, size);
  for (let start = 0; start < items.length; start += step) out.push(items.slice(start, start + step));
  return out;
}

/** A serialized value as the adapters store it: the serializer's type and its bytes in base64. */
export interface Serialized {
  type: string;
  data: string;
}

/** Base64 of `bytes` (standard alphabet, padded), without `Buffer` so that it runs in browsers too. */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  const step = 0x8000;
  for (let start = 0; start < bytes.length; start += step) {
    binary += String.fromCharCode(...bytes.subarray(start, start + step));
  }
  return btoa(binary);
}

/** Inverse of {@link toBase64}. */
export function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * Microseconds since the Unix epoch of an RFC 3339 time as the server writes
 * it (`...Z` or an offset, any number of fractional digits).
 */
export function parseMicros(text: string): number {
  const match = /^(.*?T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?$/.exec(text.trim());
  if (!match) {
    const ms = Date.parse(text);
    if (Number.isNaN(ms)) throw new RangeError(`not an RFC 3339 time: ${JSON.stringify(text)}`);
    return ms * 1000;
  }
  const [, head, fraction = "", zone = "Z"] = match;
  const seconds = Date.parse(`${head}${zone.toUpperCase() === "Z" ? "Z" : zone}`);
  if (Number.isNaN(seconds)) throw new RangeError(`not an RFC 3339 time: ${JSON.stringify(text)}`);
  return seconds * 1000 + Number((fraction + "000000").slice(0, 6));
}

/** The `Date` of a number of microseconds since the Unix epoch (to the millisecond). */
export function dateOfMicros(micros: number): Date {
  return new Date(Math.floor(micros / 1000));
}

/** Structural equality of JSON-like values (objects by their own keys, arrays item by item). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const keys = Object.keys(left);
  if (keys.length !== Object.keys(right).length) return false;
  return keys.every((k) => Object.prototype.hasOwnProperty.call(right, k) && deepEqual(left[k], right[k]));
}

/** `value` as plain JSON: what JSON cannot hold is dropped or becomes a string, as `JSON.stringify` does. */
export function toPlainJson(value: unknown): unknown {
  const text = JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
  return text === undefined ? null : (JSON.parse(text) as unknown);
}
