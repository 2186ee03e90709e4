// Escaping of free-form names into ctxmesh key segments.
//
// A ctxmesh key is `/`-separated segments of `[A-Za-z0-9._~:@-]+`
// (docs/api.md). Framework names (namespace labels, item keys, thread ids,
// checkpoint namespaces, channel names, task ids, session ids) are arbitrary
// strings, so each is escaped into exactly one segment, as the Python SDK
// does (`ctxmesh.langgraph._keys`), so that both read each other's keys:
//
// - `A-Z a-z 0-9 _ : . -` stay as they are (a segment made only of dots is
//   escaped whole, so that no `.` or `..` segment reaches a URL);
// - every other character becomes `~XX` per UTF-8 byte (upper-case hex),
//   `~` and `@` included, so `@` never appears in an escaped name and can
//   mark a segment's role;
// - the empty string becomes `~` alone.
//
// `descending` encodes a string into a segment whose byte order is the
// reverse of the string's, so that listing keys in ascending order (the only
// order ctxmesh lists in) yields the newest checkpoint first.

const KEEP = /^[A-Za-z0-9_:.-]$/;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** The segment of the empty string. */
export const EMPTY = "~";

/** Escapes `name` into one non-empty key segment. */
export function escape(name: string): string {
  if (name === "") return EMPTY;
  const bytes = encoder.encode(name);
  if (bytes.every((b) => b === 0x2e)) return "~2E".repeat(bytes.length);
  let out = "";
  for (const byte of bytes) {
    const ch = String.fromCharCode(byte);
    out += byte < 0x80 && KEEP.test(ch) ? ch : `~${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Inverse of {@link escape}; throws a `RangeError` on a segment `escape` cannot produce. */
export function unescape(segment: string): string {
  if (segment === EMPTY) return "";
  const bytes: number[] = [];
  for (let i = 0; i < segment.length; ) {
    const ch = segment[i]!;
    if (ch === "~") {
      const hex = segment.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new RangeError(`malformed escaped segment ${JSON.stringify(segment)}`);
      bytes.push(parseInt(hex, 16));
      i += 3;
    } else {
      bytes.push(ch.charCodeAt(0));
      i += 1;
    }
  }
  try {
    return decoder.decode(new Uint8Array(bytes));
  } catch {
    throw new RangeError(`malformed escaped segment ${JSON.stringify(segment)}`);
  }
}

/**
 * Encodes `value` so that ascending segment order is descending value order.
 *
 * Each UTF-8 byte `b` becomes the two hex digits of `255 - b`, and a final
 * `z` (greater than any hex digit) makes a longer string sort before its own
 * prefixes, as it must when the order is reversed.
 */
export function descending(value: string): string {
  let out = "";
  for (const byte of encoder.encode(value)) out += (255 - byte).toString(16).padStart(2, "0");
  return out + "z";
}

/** Inverse of {@link descending}. */
export function fromDescending(segment: string): string {
  if (!segment.endsWith("z") || segment.length % 2 !== 1 || !/^[0-9a-f]*z$/.test(segment)) {
    throw new RangeError(`malformed descending segment ${JSON.stringify(segment)}`);
  }
  const bytes = new Uint8Array((segment.length - 1) / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = 255 - parseInt(segment.slice(2 * i, 2 * i + 2), 16);
  return decoder.decode(bytes);
}

/** Validates a root key prefix and returns it with its trailing `/` (or `""`). */
export function checkPrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, "");
  if (trimmed === "") return "";
  for (const segment of trimmed.split("/")) {
    if (!/^[A-Za-z0-9._~:@-]+$/.test(segment)) {
      throw new RangeError(
        `prefix ${JSON.stringify(prefix)} is not a ctxmesh key prefix: use segments of A-Z a-z 0-9 . _ ~ : @ -`,
      );
    }
  }
  return trimmed + "/";
}
