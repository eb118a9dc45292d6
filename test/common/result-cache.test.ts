import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cachedResult } from '../../src/common/index.ts';
import { tmp, cleanup } from '../helpers.ts';

// The cache `airlock run` keeps its resolved policy and agent profile in (issue 16). What is
// read from it is trusted as if computed, so an entry counts only when it is this user's
// private regular file naming its own key; anything planted, loosened, linked or swollen is
// a miss, computed again and rewritten.

const KEY = { what: 'test', sources: [{ kind: 'repo', origin: 'airlock.yaml@abc', text: 'version: 1\n' }] };
const TRUE_VALUE = { policy: { egress: { allow: [] } } };
const POISON = { policy: { egress: { allow: ['attacker.example'] } } };

async function withEntry(plant: (file: string, dir: string) => void): Promise<{ value: unknown; computed: number }> {
  const dir = tmp('airlock-result-cache-');
  try {
    let computed = 0;
    const compute = () => {
      computed += 1;
      return TRUE_VALUE;
    };
    await cachedResult({ dir }, KEY, compute);
    const [file] = readdirSync(dir);
    plant(join(dir, file!), dir);
    const value = await cachedResult({ dir }, KEY, compute);
    return { value, computed };
  } finally {
    cleanup(dir);
  }
}

/** The entry as written, with its value swapped for the attacker's. */
function poisoned(file: string): string {
  const entry = JSON.parse(readFileSync(file, 'utf8')) as { key: string };
  return JSON.stringify({ key: entry.key, value: POISON });
}

test('a hit answers the stored value without computing; other inputs are another entry', async () => {
  const dir = tmp('airlock-result-cache-');
  try {
    let computed = 0;
    const compute = () => {
      computed += 1;
      return { n: computed };
    };
    assert.deepEqual(await cachedResult({ dir }, KEY, compute), { n: 1 });
    assert.deepEqual(await cachedResult({ dir }, KEY, compute), { n: 1 });
    assert.deepEqual(await cachedResult({ dir }, { ...KEY, sources: [] }, compute), { n: 2 });
    assert.equal(computed, 2);
    for (const f of readdirSync(dir)) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
  } finally {
    cleanup(dir);
  }
});

test('an entry left group- or world-writable, or owned by another user, is not trusted and is rewritten', async () => {
  for (const mode of [0o666, 0o644, 0o620]) {
    const r = await withEntry((file) => {
      writeFileSync(file, poisoned(file));
      chmodSync(file, mode);
    });
    assert.deepEqual(r.value, TRUE_VALUE, `mode ${mode.toString(8)}`);
    assert.equal(r.computed, 2);
  }
  // another local user (uid 1000) cannot hand this user a result, even a private-looking one
  const other = await withEntry((file) => {
    writeFileSync(file, poisoned(file));
    chownSync(file, 1000, 1000);
  });
  assert.deepEqual(other.value, TRUE_VALUE);
});

test('an entry that names another key, a symlink to a valid entry, or an oversized file is a miss', async () => {
  const wrongKey = await withEntry((file) =>
    writeFileSync(file, JSON.stringify({ key: 'f'.repeat(64), value: POISON })),
  );
  assert.deepEqual(wrongKey.value, TRUE_VALUE);
  const linked = await withEntry((file, dir) => {
    const elsewhere = join(dir, 'elsewhere');
    writeFileSync(elsewhere, poisoned(file), { mode: 0o600 });
    cleanup(file);
    symlinkSync(elsewhere, file);
  });
  assert.deepEqual(linked.value, TRUE_VALUE);
  const huge = await withEntry((file) => writeFileSync(file, ' '.repeat(5 * 1024 * 1024) + poisoned(file)));
  assert.deepEqual(huge.value, TRUE_VALUE);
  const garbage = await withEntry((file) => writeFileSync(file, '{"key": '));
  assert.deepEqual(garbage.value, TRUE_VALUE);
});

test('a cache that cannot be written still answers (computed), and an error is never cached', async () => {
  const dir = tmp('airlock-result-cache-');
  try {
    writeFileSync(join(dir, 'file'), 'x');
    assert.deepEqual(await cachedResult({ dir: join(dir, 'file', 'sub') }, KEY, () => TRUE_VALUE), TRUE_VALUE);
    let calls = 0;
    const failing = () => {
      calls += 1;
      throw new Error('invalid policy');
    };
    await assert.rejects(cachedResult({ dir }, KEY, failing), /invalid policy/);
    await assert.rejects(cachedResult({ dir }, KEY, failing), /invalid policy/);
    assert.equal(calls, 2);
  } finally {
    cleanup(dir);
  }
});

test('the cache stays bounded: past 256 entries a write removes the oldest', async () => {
  const dir = tmp('airlock-result-cache-');
  try {
    for (let i = 0; i < 300; i++) await cachedResult({ dir }, { ...KEY, i }, () => i);
    assert.equal(readdirSync(dir).length, 256);
    let computed = false;
    const latest = await cachedResult({ dir }, { ...KEY, i: 299 }, () => {
      computed = true;
      return -1;
    });
    assert.equal(latest, 299);
    assert.equal(computed, false, 'the newest entry was kept');
  } finally {
    cleanup(dir);
  }
});
