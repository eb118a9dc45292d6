import type { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { setTimeout as sleep } from 'node:timers/promises';
import { summarize } from '../audit/index.ts';
import { agentText } from './html.ts';
import type { ConsoleDeps, ConsoleEnv } from './server.ts';
import { sessionParam } from './pages/common.ts';

// Live views: Server-Sent Events of new audit events (for one session, or of one type
// prefix). Sessions append from other processes, so the log is polled (it is the only
// source of truth); every stream is bounded in time and ends when the console closes.
// The browser reconnects with Last-Event-ID and continues after it.

const POLL_MS = 300;
const STREAM_LIFETIME_MS = 5 * 60_000;
const BATCH = 200;

export function registerStream(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  app.get('/stream', (c) => {
    const session = c.req.query('session') ? sessionParam(c.req.query('session')) : undefined;
    const type = /^[a-z_]{1,40}(\.[a-z_*]{1,40})?$/.test(c.req.query('type') ?? '') ? c.req.query('type') : undefined;
    const from = Number(c.req.header('last-event-id') ?? c.req.query('after') ?? 0);
    let after = Number.isSafeInteger(from) && from >= 0 ? from : 0;
    return streamSSE(c, async (stream) => {
      const until = Date.now() + STREAM_LIFETIME_MS;
      const gone = AbortSignal.any([deps.closing, c.req.raw.signal]);
      for (let i = 0; Date.now() < until && !gone.aborted && i < STREAM_LIFETIME_MS / POLL_MS + 1; i++) {
        for (const e of deps.store.query({ session, type, afterSeq: after, limit: BATCH })) {
          after = e.seq;
          await stream.writeSSE({
            id: String(e.seq),
            event: 'audit',
            data: JSON.stringify({
              seq: e.seq,
              ts: e.ts,
              type: e.type,
              severity: e.severity,
              decision: e.decision ?? '',
              rule: agentText(e.rule ?? ''),
              what: summarize(e, 300, agentText),
            }),
          });
        }
        await sleep(POLL_MS, undefined, { signal: gone }).catch(() => undefined);
      }
    });
  });
}
