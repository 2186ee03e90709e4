// A server-sent events reader over fetch, so that the stream carries the
// token in the Authorization header (the browser's EventSource cannot set
// headers and would need the token in the URL). It resumes after a drop
// from the last event id it saw (`Last-Event-ID`), so no event is lost.

import { authHeaders, query } from './api.js';

/**
 * Opens `path` as an SSE stream. `onEvent({id, event, data})` per event,
 * `onState(state, detail)` with `connecting`, `open`, `retrying` or
 * `closed`. `lastEventId` resumes after that id; given as a function, it
 * is asked at each (re)connection, for streams whose ids are shared by
 * several events (a context's: the revision). Answers `{close(),
 * lastEventId}`; closing stops for good.
 */
export function openStream(path, { params = {}, lastEventId = null, onEvent, onState = () => {} } = {}) {
  const resumeFrom = typeof lastEventId === 'function' ? lastEventId : () => stream.lastEventId;
  const stream = { lastEventId: typeof lastEventId === 'function' ? null : lastEventId, closed: false, controller: null };
  let delay = 500;

  async function connect() {
    while (!stream.closed) {
      stream.controller = new AbortController();
      onState('connecting');
      try {
        const headers = { Accept: 'text/event-stream', ...authHeaders() };
        const from = resumeFrom();
        if (from !== null && from !== undefined) headers['Last-Event-ID'] = String(from);
        const res = await fetch(path + query(params), { headers, signal: stream.controller.signal, cache: 'no-store', credentials: 'omit' });
        if (!res.ok) {
          let message = res.statusText;
          try { const j = await res.json(); message = j.error ? `${j.error.code}: ${j.error.message}` : message; } catch { /* keep */ }
          // Refusals (bad filter, no access, gone) are final.
          if (res.status >= 400 && res.status < 500 && res.status !== 429) { onState('closed', message); return; }
          throw new Error(message);
        }
        onState('open');
        delay = 500;
        await read(res.body, (ev) => {
          if (ev.id !== null) stream.lastEventId = ev.id;
          onEvent(ev);
        });
        if (stream.closed) return;
        onState('retrying', 'the stream ended');
      } catch (e) {
        if (stream.closed) return;
        onState('retrying', e.message);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }

  stream.close = () => {
    stream.closed = true;
    if (stream.controller) stream.controller.abort();
    onState('closed');
  };
  connect();
  return stream;
}

/** Parses an SSE body (text/event-stream) into events. */
async function read(body, emit) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let ev = { id: null, event: 'message', data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let nl;
    while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer[nl] === '\r' && buffer[nl + 1] === '\n' ? 2 : 1));
      if (line === '') {
        if (ev.data.length) emit({ id: ev.id, event: ev.event, data: ev.data.join('\n') });
        ev = { id: ev.id, event: 'message', data: [] };
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let v = colon < 0 ? '' : line.slice(colon + 1);
      if (v.startsWith(' ')) v = v.slice(1);
      if (field === 'data') ev.data.push(v);
      else if (field === 'event') ev.event = v;
      else if (field === 'id') ev.id = v;
    }
  }
}
