import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';

// Native download relay (relay.c, built by scripts/build-native.sh): a thread of its own
// per gateway, created on first use. The tunnel code hands it the upstream→client
// direction and keeps the other (uploads are counted, limited and scanned in JS).

/** native: the relay thread; node: tunnels relay on the event loop (tunnel.ts). */
export type RelayMode = 'native' | 'node';

export interface RelayHandlers {
  /** Bytes written to the client since the last report (also sent at the end). */
  progress(bytes: number): void;
  /** Upstream sent EOF and every byte reached the client. */
  end(): void;
  error(message: string): void;
  /** Internal: the final report after a stop. */
  stopped?(): void;
}

interface NativeRelay {
  add(src: number, dst: number): number;
  stop(id: number): void;
  close(): void;
}
type NativeCtor = new (
  onReport: (id: number, kind: number, bytes: number, error: string | null) => void,
) => NativeRelay;

const ADDON = fileURLToPath(new URL('../../../build/relay.node', import.meta.url));
let loaded: { ctor: NativeCtor } | { why: string } | null = null;

function load(): { ctor: NativeCtor } | { why: string } {
  if (loaded) return loaded;
  if (process.env.AIRLOCK_RELAY === 'node') loaded = { why: 'AIRLOCK_RELAY=node' };
  else if (process.platform !== 'linux')
    loaded = { why: `the native relay is built for Linux (this is ${process.platform})` };
  else if (!existsSync(ADDON))
    loaded = { why: 'build/relay.node not built (bash scripts/build-native.sh needs a C compiler)' };
  else {
    try {
      loaded = { ctor: (createRequire(import.meta.url)(ADDON) as { Relay: NativeCtor }).Relay };
    } catch (e) {
      loaded = { why: `build/relay.node failed to load: ${(e as Error).message}` };
    }
  }
  return loaded;
}

/** Which relay tunnels get in this process, and why not the native one when not. */
export function relayMode(): { mode: RelayMode; why?: string } {
  const l = load();
  return 'ctor' in l ? { mode: 'native' } : { mode: 'node', why: l.why };
}

/** The kernel descriptor behind a connected net.Socket (TCP or unix), or null. */
export function socketFd(s: Socket): number | null {
  const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : null;
}

const R_PROGRESS = 0,
  R_END = 1,
  R_ERROR = 2;

export class TunnelRelay {
  private native: NativeRelay | null = null;
  private readonly handlers = new Map<number, RelayHandlers>();

  /** Null when the native relay is unavailable (see relayMode). */
  static create(): TunnelRelay | null {
    return 'ctor' in load() ? new TunnelRelay() : null;
  }

  private get relay(): NativeRelay {
    if (!this.native) {
      const { ctor } = load() as { ctor: NativeCtor };
      this.native = new ctor((id, kind, bytes, error) => this.report(id, kind, bytes, error));
    }
    return this.native;
  }

  private report(id: number, kind: number, bytes: number, error: string | null): void {
    const h = this.handlers.get(id);
    if (!h) return;
    if (bytes > 0) h.progress(bytes);
    if (kind === R_PROGRESS) return;
    this.handlers.delete(id);
    if (kind === R_END) h.end();
    else if (kind === R_ERROR) h.error(error ?? 'relay error');
    else h.stopped?.();
  }

  /**
   * Moves bytes from `src` to `dst` on the relay thread until src ends or either side fails.
   * Returns a stop function: it ends the relaying and calls `onFinal` once every byte moved
   * has been reported (at once when the tunnel had already ended). Throws when the relay
   * cannot take the pair (descriptors exhausted, relay closed or its thread stopped): the caller relays in Node instead.
   */
  start(src: number, dst: number, h: RelayHandlers): (onFinal: () => void) => void {
    const id = this.relay.add(src, dst);
    this.handlers.set(id, h);
    let stopped = false;
    return (onFinal) => {
      if (stopped) return;
      stopped = true;
      if (!this.handlers.has(id)) {
        this.native?.stop(id);
        onFinal();
        return;
      }
      // the final report (END, ERROR or STOPPED) is still to come: count it, then onFinal
      this.handlers.set(id, { progress: h.progress, end: onFinal, error: onFinal, stopped: onFinal });
      this.native?.stop(id);
    };
  }

  /** Stops every tunnel and the thread; tunnels still waiting for their final report get it now. */
  close(): void {
    this.native?.close();
    this.native = null;
    const left = [...this.handlers.values()];
    this.handlers.clear();
    for (const h of left) (h.stopped ?? (() => h.error('gateway closing')))();
  }
}
