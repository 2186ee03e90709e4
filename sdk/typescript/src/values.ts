// Checks of arguments at the edge, before any request: what the server
// would store differently from what the caller gave (a `Map` sent as `{}`,
// `NaN` sent as `null`, a string split into tags) is refused, naming the
// parameter.

/** `value` when it is JSON as given: null, booleans, finite numbers, strings, arrays and plain objects of them. */
export function checkJson<T>(value: T, name: string): T {
  check(value, name, 0);
  return value;
}

function check(value: unknown, where: string, depth: number): void {
  if (value === null || typeof value === "string" || typeof value === "boolean") return;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`${where} is ${value}, which JSON cannot hold: pass a finite number or null`);
    return;
  }
  if (value === undefined) throw new TypeError(`${where} is undefined, which JSON cannot hold: pass null, or leave the field out`);
  if (depth > 512) throw new TypeError(`${where} is nested more than 512 levels deep`);
  if (Array.isArray(value)) {
    value.forEach((item, i) => check(item, `${where}[${i}]`, depth + 1));
    return;
  }
  if (typeof value === "object") {
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      const kind = (value as object).constructor?.name ?? "object";
      const hint =
        value instanceof Date
          ? "pass its toISOString()"
          : value instanceof Map || value instanceof Set
            ? "pass a plain object or an array"
            : "pass plain objects, arrays, strings, numbers, booleans or null";
      throw new TypeError(`${where} holds a ${kind}, which is not JSON: ${hint}`);
    }
    for (const [k, item] of Object.entries(value)) {
      // A property set to undefined is left out, as JSON.stringify does.
      if (item !== undefined) check(item, `${where}[${JSON.stringify(k)}]`, depth + 1);
    }
    return;
  }
  throw new TypeError(`${where} holds a ${typeof value}, which is not JSON`);
}

/** A list of strings (`undefined` passes); a bare string is refused, not split. */
export function strList(value: unknown, name: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") throw new TypeError(`${name} takes an array of strings, not a string: pass [${JSON.stringify(value)}]`);
  if (!Array.isArray(value)) throw new TypeError(`${name} takes an array of strings`);
  value.forEach((item, i) => {
    if (typeof item !== "string") throw new TypeError(`${name}[${i}] is a ${typeof item}, not a string`);
  });
  return [...(value as string[])];
}

/** A number (`undefined` passes). */
export function num(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value)) throw new TypeError(`${name} takes a finite number`);
  return value;
}

/** A non-negative integer (`undefined` passes). */
export function int(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) throw new TypeError(`${name} takes a non-negative integer`);
  return value;
}

/** A timestamp as sent: a `Date` as RFC 3339, a string as it is (`undefined` passes). */
export function timestamp(value: unknown, name: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (value instanceof Date) return value.toISOString();
  if (typeof value !== "string") throw new TypeError(`${name} takes a Date or an RFC 3339 string`);
  return value;
}

/** The fields that were given (not `undefined`). */
export function given<T extends Record<string, unknown>>(fields: T): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) out[k] = v;
  return out as Partial<T>;
}

/** A deep copy of a JSON value (what `update()` hands its function). */
export function copyJson<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}
