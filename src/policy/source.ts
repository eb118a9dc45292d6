import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AirlockError } from '../common/index.ts';

// The policy's light entry (issue 16): reading policy files as text, and the fingerprint of
// the code that turns text into a resolved policy, without loading that code (zod, yaml and
// the schemas are ~130 ms of a CLI start). A session's start keys its cached resolved policy
// on both (common/result-cache.ts) and loads the engine only on a miss.
export { MODE_LAYERS, type ModeLayer } from './schema/mode-layers.ts';

/** A policy file as read, before parsing. */
export interface PolicyText {
  /** 'org' | 'repo' */
  kind: string;
  /** The file path, or `airlock.yaml@<commit>` */
  origin: string;
  text: string;
}

/** Reads one policy file's text; NOT_FOUND (with the fix) when it is missing. */
export function readPolicyText(path: string, kind: string): PolicyText {
  if (!existsSync(path))
    throw new AirlockError(
      'NOT_FOUND',
      `policy file not found: ${path}`,
      'check the path, or run `airlock init` to write one',
    );
  return { kind, origin: path, text: readFileSync(path, 'utf8') };
}

const POLICY_DIR = dirname(fileURLToPath(import.meta.url));
const SRC = dirname(POLICY_DIR);
const ROOT = dirname(SRC);

/**
 * SHA-256 over the code a resolved policy depends on: every file of this module (schemas,
 * defaults, merge rules; it has no deeper folders), the canonical JSON its hash is taken over, the parsers' versions,
 * and the caller's own `files` (absolute paths). A change to any of them is another key.
 */
export function policyCodeFingerprint(files: string[] = []): string {
  const own = [POLICY_DIR, join(POLICY_DIR, 'schema')].flatMap((d) =>
    readdirSync(d)
      .filter((f) => f.endsWith('.ts'))
      .sort()
      .map((f) => join(d, f)),
  );
  const parsers = ['zod', 'yaml'].map((p) => join(ROOT, 'node_modules', p, 'package.json'));
  const h = createHash('sha256');
  for (const f of [...own, join(SRC, 'common', 'json.ts'), ...parsers, ...files]) {
    h.update(`${f}\0`);
    try {
      h.update(readFileSync(f));
    } catch {
      h.update('\0missing\0');
    }
  }
  return h.digest('hex');
}
