import { existsSync, lstatSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditStore } from '../audit/index.ts';
import type { AuditEventInput, HomeLayout } from '../common/index.ts';
import { recoverTrace, removeSessionCgroups, traceEventKey } from '../sandbox/index.ts';
import { redactDeep } from '../secrets/sync.ts';
import { SESSION_ID } from './id.ts';
import { listSessions } from './list.ts';

// Recovery of what a session left behind when it could not finish: its supervisor was
// killed (kill -9), or the disk filled while it ran. The raw strace output under
// sessions/<id>/sandbox/trace/ may hold processes the live reader never got to (it reads
// every 200 ms), and it holds argv unredacted. Recovery reads each trace from its start,
// records (redacted) every event the log does not already hold, then deletes the trace;
// it also removes the session's leftover cgroups and records that the session ended
// without a stop. Runs on the next session start, `airlock sessions` and `airlock audit verify`.
// A session whose supervisor is alive is never touched.

const TRACED_TYPES = ['process.exec', 'process.exec_failed', 'process.exit', 'sandbox.denied'];

export interface RecoveredSession {
  session: string;
  traces: number;
  recovered: number;
  alreadyRecorded: number;
  cgroups: number;
  aborted: boolean;
}

/** How many times each traced event is already in the log for this session. */
function recordedKeys(store: AuditStore, session: string): Map<string, number> {
  const rows = store.tables
    .prepare(`SELECT type, data FROM events WHERE session = ? AND type IN (${TRACED_TYPES.map(() => '?').join(',')})`)
    .all(session, ...TRACED_TYPES) as { type: string; data: string }[];
  const keys = new Map<string, number>();
  for (const r of rows) {
    const k = traceEventKey({ type: r.type, data: JSON.parse(r.data) as Record<string, unknown> });
    if (k) keys.set(k, (keys.get(k) ?? 0) + 1);
  }
  return keys;
}

/** Raw traces left in a session's trace dir, also those a recovery that died had claimed. */
function traceFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return names
    .filter((f) => /^\d{1,9}\.log(\.recovering-\d+)?$/.test(f) && !claimedByLiveProcess(f))
    .sort((a, b) => parseInt(a, 10) - parseInt(b, 10))
    .map((f) => join(dir, f))
    .filter((p) => lstatSync(p).isFile()); // Airlock's own files: never a link
}

function claimedByLiveProcess(name: string): boolean {
  const pid = Number(/\.recovering-(\d+)$/.exec(name)?.[1] ?? 0);
  if (!pid || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Claims a trace by renaming it (atomic): two recoveries at once never record it twice. */
function claim(file: string): string | null {
  const to = `${file.replace(/\.recovering-\d+$/, '')}.recovering-${process.pid}`;
  if (to === file) return file;
  try {
    renameSync(file, to);
    return to;
  } catch {
    return null;
  } // another process took it
}

/** The events of one trace that the log does not hold yet (redacted, as the live path stores them). */
function missingEvents(
  file: string,
  session: string,
  keys: Map<string, number>,
): { missing: AuditEventInput[]; already: number; truncated: boolean } {
  const { events, truncated } = recoverTrace(file, session);
  const missing: AuditEventInput[] = [];
  let already = 0;
  for (const raw of events) {
    const e = { ...raw, data: redactDeep(raw.data ?? {}) };
    const k = traceEventKey(e);
    const n = k ? (keys.get(k) ?? 0) : 0;
    if (k && n > 0) {
      keys.set(k, n - 1);
      already++;
      continue;
    }
    missing.push({ ...e, data: { ...e.data, recovered: true } });
  }
  return { missing, already, truncated };
}

/** Recovers one session that is not running; the events and the trace deletion go together. */
function recoverOne(
  store: AuditStore,
  home: HomeLayout,
  id: string,
  state: string,
  supervisorPid: unknown,
): RecoveredSession {
  const files = traceFiles(join(home.sessions, id, 'sandbox', 'trace'));
  const keys = recordedKeys(store, id);
  const out: RecoveredSession = {
    session: id,
    traces: files.length,
    recovered: 0,
    alreadyRecorded: 0,
    cgroups: 0,
    aborted: state === 'aborted',
  };
  for (const found of files) {
    const file = claim(found);
    if (!file) continue;
    const r = missingEvents(file, id, keys);
    store.appendMany([
      ...r.missing,
      {
        type: 'sandbox.trace_recovered',
        session: id,
        severity: r.missing.length ? 'medium' : 'info',
        data: {
          file: found.slice(home.root.length + 1).replace(/\.recovering-\d+$/, ''),
          recovered: r.missing.length,
          alreadyRecorded: r.already,
          truncated: r.truncated,
        },
      },
    ]);
    rmSync(file, { force: true }); // now in the (redacted) log; the raw trace holds argv unredacted
    out.recovered += r.missing.length;
    out.alreadyRecorded += r.already;
  }
  if (state === 'aborted') {
    out.cgroups = removeSessionCgroups(id).length;
    store.append({
      type: 'session.aborted',
      session: id,
      severity: 'high',
      data: {
        reason: 'the supervisor died before the session stopped (no session.stop recorded)',
        supervisorPid,
        recoveredEvents: out.recovered,
        cgroupsRemoved: out.cgroups,
      },
    });
  }
  return out;
}

/** Sessions that left something to recover: a raw trace, or cgroup directories. Cheap (no log scan). */
function candidates(home: HomeLayout): string[] {
  if (!existsSync(home.sessions)) return [];
  // the cgroups left are read once: a check per session made every start slower as the home grew
  const leftCgroups = cgroupsLeft();
  return readdirSync(home.sessions).filter(
    (id) =>
      SESSION_ID.test(id) &&
      (leftCgroups.has(id) || traceFiles(join(home.sessions, id, 'sandbox', 'trace')).length > 0),
  );
}

/** Session ids with a cgroup directory left under any of Airlock's hierarchies. */
function cgroupsLeft(): Set<string> {
  const ids = new Set<string>();
  for (const c of ['', 'memory', 'pids']) {
    try {
      for (const id of readdirSync(join('/sys/fs/cgroup', c, 'airlock'))) ids.add(id);
    } catch {
      /* no such hierarchy, or none of ours */
    }
  }
  return ids;
}

/**
 * Recovers sessions in AIRLOCK_HOME that ended without finishing their record: every one
 * (`all`, for `airlock sessions` / `audit verify`), or only those that left a trace or a
 * cgroup behind (session start). Failures (the disk still full) leave the traces in place
 * for the next attempt.
 */
export function recoverSessions(store: AuditStore, home: HomeLayout, all = false): RecoveredSession[] {
  if (!existsSync(home.sessions)) return [];
  const out: RecoveredSession[] = [];
  const ids = all ? readdirSync(home.sessions).filter((id) => SESSION_ID.test(id)) : candidates(home);
  for (const id of ids) {
    const s = listSessions(store, id)[0];
    // only sessions that can no longer record for themselves
    if (!s || s.state === 'running') continue;
    const abortedAlready =
      s.state === 'aborted' &&
      store.tables.prepare("SELECT 1 FROM events WHERE session = ? AND type = 'session.aborted' LIMIT 1").get(id);
    const state = abortedAlready ? 'recorded-abort' : s.state;
    if (state !== 'aborted' && traceFiles(join(home.sessions, id, 'sandbox', 'trace')).length === 0) continue;
    out.push(recoverOne(store, home, id, state, s.supervisorPid));
  }
  return out;
}
