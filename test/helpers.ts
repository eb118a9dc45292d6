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
