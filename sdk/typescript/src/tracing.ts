// W3C trace context on every request, when the application uses
// OpenTelemetry.
//
// `@opentelemetry/api` is an optional peer dependency, loaded on the first
// request. When it is there and the active context holds a valid span, each
// request carries that context (`traceparent`, `tracestate`, and whatever
// else the propagator the application registered writes), so that the
// server's spans continue the caller's trace. Without the package (or where
// it cannot be loaded, such as a browser without an import map for it), or
// outside a span, nothing is added. The package's own types are not
// referenced, so that the client's types do not need it either.

/** What the client uses of `@opentelemetry/api`. */
export interface OtelApi {
  context: {
    active(): unknown;
    with<R>(context: unknown, fn: () => R): R;
  };
  propagation: {
    inject(context: unknown, carrier: Record<string, string>): void;
  };
  trace: {
    getSpanContext(context: unknown): unknown;
    isSpanContextValid(spanContext: never): boolean;
  };
  ROOT_CONTEXT: unknown;
}

// In a variable, and marked, so that bundlers leave the import to the
// runtime instead of failing when the package is not installed.
const OTEL_API = "@opentelemetry/api";

/** `null`: not installed; `undefined`: not looked for yet. */
let api: OtelApi | null | undefined;
let loading: Promise<OtelApi | null> | undefined;

/** The OpenTelemetry API: at once once it was looked for, else a promise of it. */
export function otelApi(): OtelApi | null | Promise<OtelApi | null> {
  if (api !== undefined) return api;
  loading ??= import(/* webpackIgnore: true */ /* @vite-ignore */ OTEL_API).then(
    (module: { default?: unknown } & Record<string, unknown>) => {
      const found = (isApi(module) ? module : isApi(module.default) ? module.default : null) as OtelApi | null;
      api = found;
      return found;
    },
    () => {
      api = null;
      return null;
    },
  );
  return loading;
}

function isApi(value: unknown): boolean {
  const v = value as Partial<Record<keyof OtelApi, unknown>> | null | undefined;
  return typeof v?.context === "object" && typeof v.propagation === "object" && typeof v.trace === "object";
}

/**
 * Adds the trace context of the active span to `headers` (names in lower
 * case), leaving alone any header already there: one the caller set wins.
 * Answers a promise only while the API is being looked for (the first
 * request).
 */
export function addTraceHeaders(headers: Record<string, string>): Promise<void> | undefined {
  const otel = otelApi();
  if (otel instanceof Promise) return otel.then(() => void addTraceHeaders(headers));
  if (otel === null) return undefined;
  const active = otel.context.active();
  const spanContext = otel.trace.getSpanContext(active);
  if (spanContext === undefined || !otel.trace.isSpanContextValid(spanContext as never)) return undefined;
  const carrier: Record<string, string> = {};
  otel.propagation.inject(active, carrier);
  for (const [name, value] of Object.entries(carrier)) {
    const key = name.toLowerCase();
    if (!(key in headers)) headers[key] = value;
  }
  return undefined;
}

/**
 * Runs `fn` outside any trace: for the client's own background requests
 * (the keepalive's heartbeats), which belong to no caller's span even when
 * one was active where their timer was set.
 */
export async function untraced<T>(fn: () => Promise<T>): Promise<T> {
  let otel = otelApi();
  if (otel instanceof Promise) otel = await otel;
  return otel === null ? fn() : otel.context.with(otel.ROOT_CONTEXT, fn);
}
