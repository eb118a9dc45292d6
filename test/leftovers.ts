import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';

// "Nothing outlives its session", checked from the outside: after a session ended, no
// process mentions it (argv, environment), holds one of its namespaces, or sits in its
// cgroup, and no mount names it. Scoped to what the test's own sessions created (their
// ids, home dirs and namespaces), because other suites may run on the same machine.

/** A namespace of a session, and when the session's record ends: a process that entered it later is not the session's (inode numbers are reused). */
export interface SessionNs {
  ns: string;
  until: number;
}
export interface SessionTrace {
  id: string;
  home: string;
  ended: boolean;
  namespaces: SessionNs[];
}

/** Sessions recorded in a home's audit log (none when the home is gone). */
export function sessionsIn(home: string): SessionTrace[] {
  const db = join(home, 'audit.db');
  if (!existsSync(db)) return [];
  let h: DatabaseSync | null = null;
  try {
    h = new DatabaseSync(db, { readOnly: true });
    const rows = h
      .prepare(
        `SELECT session, MAX(CASE WHEN type = 'session.start' THEN data END) AS start,
      SUM(CASE WHEN type IN ('session.stop', 'session.failed') THEN 1 ELSE 0 END) AS ended, MAX(ts) AS last
      FROM events WHERE session IS NOT NULL GROUP BY session`,
      )
      .all() as { session: string; start: string | null; ended: number; last: string }[];
    return rows.map((r) => {
      const ns = r.start
        ? ((JSON.parse(r.start) as { namespaces?: Record<string, string | null> }).namespaces ?? {})
        : {};
      const until = r.ended > 0 ? Date.parse(r.last) : Date.now();
      return {
        id: r.session,
        home,
        ended: r.ended > 0,
        namespaces: Object.values(ns)
          .filter((v): v is string => !!v)
          .map((n) => ({ ns: n, until })),
      };
    });
  } catch {
    return [];
  } finally {
    h?.close();
  }
}

function read(p: string): string {
  try {
    return readFileSync(p, 'latin1');
  } catch {
    return '';
  }
}
function link(p: string): string {
  try {
    return readlinkSync(p);
  } catch {
    return '';
  }
}

function ownLineage(): Set<number> {
  const out = new Set<number>();
  let pid = process.pid;
  for (let i = 0; i < 64 && pid > 1; i++) {
    out.add(pid);
    const stat = read(`/proc/${pid}/stat`);
    pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }
  return out;
}

const CLK_TCK = 100; // USER_HZ on Linux
const BOOT_MS = Number(/^btime (\d+)/m.exec(read('/proc/stat'))?.[1] ?? 0) * 1000;

/** When a process started (ms since the epoch, 10 ms resolution). */
function startedAt(stat: string): number {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return BOOT_MS + (Number(f[19]) / CLK_TCK) * 1000;
}

/** What remains of the given sessions (and of processes naming the given paths): one line each. */
export function leftovers(o: { markers: string[]; namespaces: SessionNs[] }): string[] {
  const markers = o.markers.filter((m) => m.length >= 8);
  const nsUntil = new Map(o.namespaces.map((n) => [n.ns, n.until]));
  const skip = ownLineage();
  const found: string[] = [];
  for (const e of readdirSync('/proc')) {
    const pid = Number(e);
    if (!pid || skip.has(pid)) continue;
    const stat = read(`/proc/${pid}/stat`);
    if (!stat || /\) [ZX] /.test(stat)) continue; // exited, not yet reaped by its parent
    const text = `${read(`/proc/${pid}/cmdline`)}\0${read(`/proc/${pid}/environ`)}\0${read(`/proc/${pid}/cgroup`)}`;
    const cmd = read(`/proc/${pid}/cmdline`).replace(/\0/g, ' ').slice(0, 160);
    const m = markers.find((x) => text.includes(x));
    if (m) {
      found.push(`process ${pid} (${cmd}) names ${m}`);
      continue;
    }
    for (const n of ['net', 'mnt', 'user', 'pid']) {
      const l = link(`/proc/${pid}/ns/${n}`);
      const until = nsUntil.get(l);
      if (until !== undefined && startedAt(stat) <= until) {
        found.push(`process ${pid} (${cmd}) is in the session's ${l}`);
        break;
      }
    }
  }
  const mounts = read('/proc/self/mountinfo').split('\n');
  for (const l of mounts) {
    const m = markers.find((x) => l.includes(x));
    if (m) found.push(`mount names ${m}: ${l.slice(0, 200)}`);
  }
  found.push(...runscLeftovers(markers));
  return found;
}

/**
 * gVisor sessions: a runsc container whose state outlived its session (`runsc --root
 * <home>/sessions/<id>/sandbox/runsc list` would still show it), or a cgroup named after a
 * session at a hierarchy's root (where runsc puts containers it manages itself).
 */
function runscLeftovers(markers: string[]): string[] {
  const found: string[] = [];
  const controllers = list('/sys/fs/cgroup');
  for (const m of markers) {
    for (const c of ['', ...controllers])
      if (/^ses-/.test(m) && existsSync(join('/sys/fs/cgroup', c, m, 'cgroup.procs')))
        found.push(`cgroup ${join(c, m)} outlived the session`);
    if (!m.startsWith('/')) continue;
    for (const id of list(join(m, 'sessions'))) {
      const state = list(join(m, 'sessions', id, 'sandbox', 'runsc'));
      if (state.length) found.push(`runsc container state of ${id} left: ${state.join(', ')}`);
    }
  }
  return found;
}

/** Waits (bounded) for the given sessions to leave nothing behind; returns what still remains. */
export async function waitGone(o: { markers: string[]; namespaces: SessionNs[] }, ms = 10_000): Promise<string[]> {
  const end = Date.now() + ms;
  for (;;) {
    const l = leftovers(o);
    if (!l.length || Date.now() > end) return l;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Namespaces named in the ledger that still exist (for the global hook). */
export function leftoverNetns(names: string[]): string[] {
  if (!names.length) return [];
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  const live = new Set(list.split('\n').map((l) => l.split(' ')[0]));
  return names.filter((n) => live.has(n)).map((n) => `network namespace ${n} still exists`);
}
