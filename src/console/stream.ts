import type { Context, Hono } from 'hono';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import { setTimeout as sleep } from 'node:timers/promises';
import { summarize } from '../audit/index.ts';
import { sharedSessionEvents, withSharedStore } from '../store/index.ts';
import { agentText } from './html.ts';
import type { ConsoleDeps, ConsoleEnv } from './server.ts';
import { hostsView, sessionParam, type ShownEvent } from './pages/common.ts';
import { isSharedKind, type SharedKind } from './shared-live.ts';

// Live views: Server-Sent Events of new audit events (for one session, or of one type
// prefix). Sessions append from other processes, so the log is polled (it is the only
// source of truth); every stream is bounded in time and ends when the console closes.
// The browser reconnects with Last-Event-ID and continues after it.
//
// Other hosts (with a shared store): `shared=KIND&sharedAfter=N` adds one `shared` event once
// the console's LISTEN saw a change of that kind after the page read the store (the page then
// re-reads it); `host=LOGID&session=ID` streams that host's session from the shared store,
// read on opening and again whenever the LISTEN hears of new events (never from a notification's payload).

const POLL_MS = 300;
const STREAM_LIFETIME_MS = 5 * 60_000;
const BATCH = 200;
const LOG_ID = /^[0-9a-f-]{4,64}$/;

interface StreamQuery {
  session: string | undefined;
  type: string | undefined;
  after: number;
  shared: SharedKind | undefined;
  sharedAfter: number;
  host: string | undefined;
}

const count = (text: string | undefined) => {
  const n = Number(text ?? 0);
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
};

function streamQuery(c: Context<ConsoleEnv>): StreamQuery {
  const shared = c.req.query('shared');
  const host = c.req.query('host')?.toLowerCase();
  return {
    session: c.req.query('session') ? sessionParam(c.req.query('session')) : undefined,
    type: /^[a-z_]{1,40}(\.[a-z_*]{1,40})?$/.test(c.req.query('type') ?? '') ? c.req.query('type') : undefined,
    after: count(c.req.header('last-event-id') ?? c.req.query('after')),
    shared: isSharedKind(shared) ? shared : undefined,
    sharedAfter: count(c.req.query('sharedAfter')),
    host: host && LOG_ID.test(host) ? host : undefined,
  };
}

/** An event as the browser gets it: every string made inert (the page sets it as text). */
function eventMessage(e: ShownEvent) {
  return {
    id: String(e.seq),
    event: 'audit',
    data: JSON.stringify({
      seq: e.seq,
      ts: agentText(e.ts),
      type: agentText(e.type),
      severity: agentText(e.severity),
      decision: agentText(e.decision ?? ''),
      rule: agentText(e.rule ?? ''),
      what: summarize(e, 300, agentText),
    }),
  };
}

/** New events of this host's log (or of another host's session), after `q.after`. */
async function newEvents(deps: ConsoleDeps, q: StreamQuery, seen: { shared: number }): Promise<ShownEvent[]> {
  if (!q.host || !q.session)
    return deps.store.query({ session: q.session, type: q.type, afterSeq: q.after, limit: BATCH });
  const url = hostsView(deps).sharedUrl;
  const now = deps.shared.version('events');
  if (!url || now <= seen.shared) return [];
  seen.shared = now;
  const { host, session, after } = q;
  try {
    const events = await withSharedStore(url, (c) => sharedSessionEvents(c, host, session, after, BATCH));
    if (events.length === BATCH) seen.shared -= 1; // more to read: again on the next tick
    return events;
  } catch {
    return []; // unreachable: the LISTEN's reconnection moves the counter, and this reads again
  }
}

async function follow(deps: ConsoleDeps, q: StreamQuery, stream: SSEStreamingApi, gone: AbortSignal): Promise<void> {
  const until = Date.now() + STREAM_LIFETIME_MS;
  // another host's session: read once on opening (what came after the page, or after its first 500), then on each change
  const seen = { shared: q.host ? -1 : q.sharedAfter };
  for (let i = 0; Date.now() < until && !gone.aborted && i < STREAM_LIFETIME_MS / POLL_MS + 1; i++) {
    for (const e of await newEvents(deps, q, seen)) {
      q.after = e.seq;
      await stream.writeSSE(eventMessage(e));
    }
    if (q.shared && deps.shared.version(q.shared) > seen.shared) {
      seen.shared = deps.shared.version(q.shared);
      await stream.writeSSE({ event: 'shared', data: q.shared });
    }
    await sleep(POLL_MS, undefined, { signal: gone }).catch(() => undefined);
  }
}

export function registerStream(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  app.get('/stream', (c) => {
    const q = streamQuery(c);
    return streamSSE(c, (stream) => follow(deps, q, stream, AbortSignal.any([deps.closing, c.req.raw.signal])));
  });
}
