import { EVENTS_CHANNEL, listenShared, type SharedListener } from '../store/index.ts';

// The console's one listening connection to the shared store (per console process): other
// hosts' shipped rows wake the live views. Each kind of change has a counter; a page records
// the counter before it reads the store, and its SSE stream tells the browser to re-read once
// the counter moved past it, so no change between the read and the stream is missed. The
// payload ('<log id> <kind>', sent by the events trigger of schema v8) only says which views
// to re-read: any writer may NOTIFY anything, so nothing on a page comes from it. Losing the
// connection and getting it back move every counter: notifications sent meanwhile are lost,
// so every live view re-reads once (and meanwhile shows that the store cannot be reached).

export const SHARED_KINDS = ['asks', 'sessions', 'events'] as const;
export type SharedKind = (typeof SHARED_KINDS)[number];

export interface SharedChanges {
  /** whether a shared store is configured (else there is nothing to listen to) */
  readonly configured: boolean;
  /** changes of `kind` seen so far (monotonic) */
  version(kind: SharedKind): number;
  /** why the listening connection is down, or null while it is up (or no store is configured) */
  trouble(): string | null;
  close(): Promise<void>;
}

export const isSharedKind = (s: string | undefined): s is SharedKind => SHARED_KINDS.includes(s as SharedKind);

/** Listens on the shared store at `url` (none: a console of this host alone, nothing changes). */
export function sharedChanges(url: string | undefined): SharedChanges {
  const versions: Record<SharedKind, number> = { asks: 0, sessions: 0, events: 0 };
  const bumpAll = () => {
    for (const k of SHARED_KINDS) versions[k] += 1;
  };
  let listener: SharedListener | undefined;
  let up: boolean | undefined;
  if (url) {
    listener = listenShared(url, {
      channels: [EVENTS_CHANNEL],
      onNotify: (_channel, payload) => {
        const kind = payload.slice(payload.lastIndexOf(' ') + 1);
        if (isSharedKind(kind)) versions[kind] += 1;
      },
      onState: (now) => {
        if (now || up !== false) bumpAll(); // every (re)connect, and the first loss: re-read once
        up = now;
      },
    });
  }
  return {
    configured: url !== undefined,
    version: (kind) => versions[kind],
    trouble: () => (listener && up === false ? listener.lastError : null),
    close: async () => listener?.close(),
  };
}
