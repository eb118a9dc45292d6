import { mkdtempSync, writeFileSync, mkdirSync, rmSync, existsSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { sessionsIn, waitGone, type SessionNs } from './leftovers.ts';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = join(ROOT, 'bin', 'airlock');

export function tmp(prefix = 'airlock-test-'): string {
  return track(mkdtempSync(join(tmpdir(), prefix)));
}

/** Marks a directory (an AIRLOCK_HOME) whose sessions must leave nothing behind; returns it. */
export function track(dir: string): string {
  tracked.set(dir, { verified: new Set(), ids: new Set(), namespaces: new Map(), gone: false });
  return dir;
}

// Every directory a test made may become an AIRLOCK_HOME. After each test, the sessions
// that ended there (or everything that named a directory the test removed) must have left
// no process, namespace or mount; after the file, every session at all. What was checked
// goes to the suite's ledger (test/global-hooks.ts checks it once more at the very end).
interface Tracked {
  verified: Set<string>;
  ids: Set<string>;
  namespaces: Map<string, SessionNs>;
  gone: boolean;
}
const tracked = new Map<string, Tracked>();

async function checkSessions(final: boolean): Promise<void> {
  const markers: string[] = [];
  const namespaces: SessionNs[] = [];
  const pending: (() => void)[] = [];
  for (const [dir, t] of tracked) {
    if (!existsSync(dir)) {
      if (t.gone) continue;
      markers.push(dir, ...[...t.ids].filter((id) => !t.verified.has(id)));
      namespaces.push(...t.namespaces.values());
      pending.push(() => {
        t.gone = true;
      });
      continue;
    }
    for (const s of sessionsIn(dir)) {
      t.ids.add(s.id);
      for (const n of s.namespaces) t.namespaces.set(n.ns, n);
      if (t.verified.has(s.id) || !(s.ended || final)) continue;
      markers.push(s.id);
      namespaces.push(...s.namespaces);
      pending.push(() => {
        t.verified.add(s.id);
      });
    }
  }
  if (!markers.length) return;
  // A namespace inode is reused once its namespace is gone: one a live session holds now is
  // that session's, not a leftover of an ended one (the start-time check alone is only as
  // fine as the kernel's boot time, whole seconds).
  const live = new Set<string>();
  for (const [dir] of tracked) {
    if (!existsSync(dir)) continue;
    for (const s of sessionsIn(dir)) if (!s.ended) for (const n of s.namespaces) live.add(n.ns);
  }
  const left = await waitGone({ markers, namespaces: namespaces.filter((n) => !live.has(n.ns)) });
  if (process.env.AIRLOCK_TEST_LEDGER)
    appendFileSync(process.env.AIRLOCK_TEST_LEDGER, JSON.stringify({ markers, namespaces }) + '\n');
  assert.deepEqual(left, [], 'a session left something behind');
  for (const p of pending) p();
}

afterEach(() => checkSessions(false));
after(() => checkSessions(true));

/** A real git repository with one commit of the given files. */
export function makeRepo(
  files: Record<string, string> = { 'README.md': '# demo\n' },
  dir = tmp('airlock-repo-'),
): string {
  mkdirSync(dir, { recursive: true });
  const g = (...a: string[]) => {
    const r = spawnSync('git', a, {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
    });
    if (r.status !== 0) throw new Error(`git ${a.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  g('init', '-q', '-b', 'main');
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), c);
  }
  g('add', '-A');
  g('-c', 'user.name=Test', '-c', 'user.email=test@example.com', 'commit', '-qm', 'initial');
  return dir;
}

export function airlock(
  args: string[],
  o: { cwd?: string; home: string; env?: Record<string, string>; input?: string; timeout?: number },
): SpawnSyncReturns<string> {
  return spawnSync(BIN, args, {
    cwd: o.cwd ?? ROOT,
    encoding: 'utf8',
    input: o.input ?? '',
    timeout: o.timeout ?? 120_000,
    env: { ...process.env, AIRLOCK_HOME: o.home, NO_COLOR: '1', ...(o.env ?? {}) },
  });
}

export function cleanup(...paths: string[]): void {
  for (const p of paths) rmSync(p, { recursive: true, force: true });
}

export const isRoot = process.getuid?.() === 0;

/**
 * For tests that need root or namespaces: the reason to skip, or false to run. In CI
 * (`AIRLOCK_TEST_REQUIRE_PRIVILEGED=1`, set by .ci/run) a missing privilege is a failure,
 * never a skip: a suite that silently skipped its isolation tests would pass green.
 */
export function privilegedSkip(why: string | false): string | false {
  if (why && process.env.AIRLOCK_TEST_REQUIRE_PRIVILEGED === '1') {
    throw new Error(`required in CI (AIRLOCK_TEST_REQUIRE_PRIVILEGED=1) but not possible here: ${why}`);
  }
  return why;
}

/** Inside a test: skip for a missing privilege, or fail in CI (see privilegedSkip). */
export async function unshareOrSkip(t: { skip(why: string): void }, flags: string): Promise<boolean> {
  const probe = spawnSync('unshare', [flags, 'true']);
  if (probe.status === 0) return true;
  const why = privilegedSkip(`unshare ${flags} not permitted here`);
  if (why) t.skip(why);
  return false;
}
