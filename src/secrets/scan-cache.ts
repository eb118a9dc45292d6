import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import type { Verdict } from './judge.ts';

// Scan verdicts cached by git blob id, so a session on a new commit scans only the blobs
// it has not seen. The key also holds the file's basename (rules look at the extension and
// at credential-config names); the file name holds the policy variant and a hash of the
// engine's own source and secretlint's version, so a new rule set never reuses an old
// verdict. Only deterministic verdicts are kept (clean, or hidden for what the content is);
// redactions are redone, and read or scan errors are never cached. The cache lives in
// Airlock's private data dir; git's collision-detecting SHA-1 keeps blob ids honest.

const MAX_CACHE_BYTES = 64 << 20;
const UNCACHEABLE = new Set(['scan-error', 'unreadable']);

type Cached = Extract<Verdict, { v: 'clean' } | { v: 'hide' }>;

export interface ScanCache {
  get(blob: string, rel: string): Cached | undefined;
  put(blob: string, rel: string, v: Verdict): void;
  /** Writes what was added (appends: concurrent sessions only ever add lines). */
  flush(): void;
}

/** Every source of the module, not a hand-kept list: a verdict depends on the rules, the
 * value judgements (values.ts), the structured and command-line rules and the prefilter
 * alike, and a list that missed one would reuse "clean" after that file learned a secret. */
export function engineTag(dir = dirname(fileURLToPath(import.meta.url))): string {
  const h = createHash('sha256');
  for (const f of readdirSync(dir)
    .filter((n) => n.endsWith('.ts'))
    .sort())
    h.update(f)
      .update('\0')
      .update(readFileSync(join(dir, f)));
  const req = createRequire(import.meta.url);
  for (const pkg of ['@secretlint/core/package.json', '@secretlint/secretlint-rule-preset-recommend/package.json']) {
    h.update((JSON.parse(readFileSync(req.resolve(pkg), 'utf8')) as { version: string }).version);
  }
  return h.digest('hex').slice(0, 16);
}

const keyOf = (blob: string, rel: string) => `${blob}:${basename(rel).toLowerCase()}`;

export function openScanCache(dir: string, variant: string): ScanCache {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `${variant}-${engineTag()}.jsonl`);
  const map = new Map<string, Cached>();
  if (existsSync(file)) {
    if (statSync(file).size > MAX_CACHE_BYTES)
      unlinkSync(file); // start over rather than grow without bound
    else {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        try {
          const e = JSON.parse(line) as { k: string; v: Cached };
          map.set(e.k, e.v);
        } catch {
          /* torn line: rescan */
        }
      }
    }
  }
  let added: string[] = [];
  return {
    get: (blob, rel) => map.get(keyOf(blob, rel)),
    put: (blob, rel, v) => {
      if (v.v !== 'clean' && !(v.v === 'hide' && !UNCACHEABLE.has(v.reason))) return;
      const k = keyOf(blob, rel);
      map.set(k, v);
      added.push(JSON.stringify({ k, v }));
    },
    flush: () => {
      if (added.length) appendFileSync(file, added.join('\n') + '\n', { mode: 0o600 });
      added = [];
    },
  };
}
