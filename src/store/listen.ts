import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { redactedUrl } from './connect.ts';

// One LISTEN connection to the shared store that outlives PostgreSQL restarts: when the
// connection drops it says so (onState), reconnects with backoff (100 ms → maxBackoffMs) and
// says so again. Notifications sent while it was away are lost (PostgreSQL does not queue them
// for a listener that is gone), so a caller re-reads whatever it shows on every (re)connect.
// Payloads are whatever a writer sent (any writer may NOTIFY any channel): a caller re-reads the
// store and never takes a payload for a fact.

export interface SharedListenerOptions {
  /** channel names (constants of this module's schema, never user text) */
  channels: readonly string[];
  onNotify: (channel: string, payload: string) => void;
  /** connected (`up`) or lost, with why; called on every change */
  onState?: (up: boolean, error: string | null) => void;
  /** longest wait between reconnection attempts (default 5 s) */
  maxBackoffMs?: number;
}

export interface SharedListener {
  readonly connected: boolean;
  /** why the last connection failed or dropped; null while connected */
  readonly lastError: string | null;
  close(): Promise<void>;
}

/** Listens on `channels` of the store at `url` until close(), reconnecting whenever the connection is lost. */
export function listenShared(url: string, opts: SharedListenerOptions): SharedListener {
  const closing = new AbortController();
  let connected = false;
  let lastError: string | null = null;
  const state = (up: boolean, error: string | null) => {
    connected = up;
    lastError = error;
    opts.onState?.(up, error);
  };

  /** One connection's life: connect, LISTEN, wait until it drops or we close. */
  const session = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000, keepAlive: true });
    let failure: Error | null = null;
    const lost = new Promise<void>((resolve) => {
      c.on('error', (e) => {
        failure = e;
        resolve();
      });
      c.on('end', () => resolve());
      closing.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    try {
      c.on('notification', (n) => opts.onNotify(n.channel, n.payload ?? ''));
      await c.connect();
      for (const ch of opts.channels) await c.query(`LISTEN ${c.escapeIdentifier(ch)}`);
      state(true, null);
      await lost;
      if (!closing.signal.aborted) throw failure ?? new Error('the connection ended');
    } finally {
      await c.end().catch(() => {
        /* already closed */
      });
    }
  };

  const loop = (async () => {
    let backoff = 100;
    while (!closing.signal.aborted) {
      try {
        await session();
      } catch (e) {
        if (closing.signal.aborted) break;
        if (connected) backoff = 100;
        state(
          false,
          `cannot listen on the shared store ${redactedUrl(url)}: ${e instanceof Error ? e.message : String(e)}`,
        );
        await sleep(backoff, undefined, { signal: closing.signal }).catch(() => undefined);
        backoff = Math.min(backoff * 2, opts.maxBackoffMs ?? 5000);
      }
    }
  })();

  return {
    get connected() {
      return connected;
    },
    get lastError() {
      return lastError;
    },
    async close() {
      closing.abort();
      await loop;
    },
  };
}
