import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = join(ROOT, 'bin', 'airlock');

export function tmp(prefix = 'airlock-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A real git repository with one commit of the given files. */
export function makeRepo(files: Record<string, string> = { 'README.md': '# demo\n' }, dir = tmp('airlock-repo-')): string {
  mkdirSync(dir, { recursive: true });
  const g = (...a: string[]) => {
    const r = spawnSync('git', a, { cwd: dir, encoding: 'utf8', env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' } });
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

export function airlock(args: string[], o: { cwd?: string; home: string; env?: Record<string, string>; input?: string; timeout?: number }): SpawnSyncReturns<string> {
  return spawnSync(BIN, args, {
    cwd: o.cwd ?? ROOT, encoding: 'utf8', input: o.input ?? '', timeout: o.timeout ?? 120_000,
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
