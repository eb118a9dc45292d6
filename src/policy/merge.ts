import { z } from 'zod';
import { canonicalJson } from '../common/index.ts';
import { policySchema, type Policy } from './schema/index.ts';
import type { MergeRule } from './schema/meta.ts';

export interface PolicySource {
  /** 'builtin' | 'org' | 'repo' | 'cli' */
  kind: string;
  /** file path or a description such as `commit abc123:airlock.yaml` */
  origin: string;
  raw: Record<string, unknown>;
  /** The file's text when it came from one: errors found after parsing can still name the line. */
  text?: string;
}

// Layers, in order: builtin defaults, the org policy (the ceiling), the repo policy
// (replaces defaults, but only tightens what the org set), per-run grants from the
// CLI (add to lists, still bounded by the org). Rules live on the schema (meta.merge).

type Z = z.ZodType;
interface Leaf {
  path: string[];
  rule: MergeRule;
}

function metaRule(s: Z): MergeRule | undefined {
  const m = z.globalRegistry.get(s) as { merge?: MergeRule } | undefined;
  return m?.merge;
}

function collectLeaves(s: Z, path: string[], inherited: MergeRule | undefined, out: Leaf[]): void {
  let cur: Z = s;
  let rule = metaRule(cur) ?? inherited;
  for (;;) {
    const def = (cur as unknown as { _zod: { def: { type: string; innerType?: Z; shape?: Record<string, Z> } } })._zod
      .def;
    if (['default', 'prefault', 'optional', 'nullable', 'readonly', 'catch'].includes(def.type) && def.innerType) {
      cur = def.innerType;
      rule = metaRule(cur) ?? rule;
      continue;
    }
    if (def.type === 'object' && def.shape && !metaRule(cur)) {
      for (const [k, child] of Object.entries(def.shape)) collectLeaves(child, [...path, k], undefined, out);
      return;
    }
    out.push({ path, rule: rule ?? 'org' });
    return;
  }
}

let leavesCache: Leaf[] | undefined;
export function policyLeaves(): Leaf[] {
  if (!leavesCache) {
    leavesCache = [];
    collectLeaves(policySchema, [], undefined, leavesCache);
  }
  return leavesCache;
}

function getIn(o: unknown, path: string[]): unknown {
  let cur = o;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object' || !(k in (cur as object))) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

function setIn(o: Record<string, unknown>, path: string[], v: unknown): void {
  let cur = o;
  for (const k of path.slice(0, -1)) {
    if (typeof cur[k] !== 'object' || cur[k] === null) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = v;
}

const key = (v: unknown) => canonicalJson(v);
function union(a: unknown[], b: unknown[]): unknown[] {
  const seen = new Set(a.map(key));
  return [...a, ...b.filter((x) => !seen.has(key(x)))];
}
function intersect(a: unknown[], ceiling: unknown[]): unknown[] {
  const allowed = new Set(ceiling.map(key));
  return a.filter((x) => allowed.has(key(x)));
}

function combine(rule: MergeRule, org: unknown, repo: unknown): { value: unknown; note?: string } {
  if (typeof rule === 'object') {
    const o = rule.stricter.indexOf(String(org));
    const r = rule.stricter.indexOf(String(repo));
    return r >= 0 && (o < 0 || r <= o) ? { value: repo } : { value: org, note: 'repo value looser than org; org kept' };
  }
  switch (rule) {
    case 'min':
      return { value: Math.min(org as number, repo as number) };
    case 'max':
      return { value: Math.max(org as number, repo as number) };
    case 'union':
      return { value: union(org as unknown[], repo as unknown[]) };
    case 'intersect': {
      const v = intersect(repo as unknown[], org as unknown[]);
      return {
        value: v,
        note: v.length < (repo as unknown[]).length ? 'repo entries outside the org policy dropped' : undefined,
      };
    }
    case 'and':
      return { value: Boolean(org) && Boolean(repo) };
    case 'or':
      return { value: Boolean(org) || Boolean(repo) };
    case 'org':
    case 'orgOnly':
      return { value: org, note: 'only the org policy may set this; repo value ignored' };
  }
}

export function mergePolicies(sources: PolicySource[]): { policy: Policy; provenance: Record<string, string> } {
  const merged: Record<string, unknown> = {};
  const provenance: Record<string, string> = {};
  for (const leaf of policyLeaves()) {
    const leafPath = leaf.path.join('.');
    let value: unknown;
    let orgValue: unknown;
    let from = 'default';
    for (const src of sources) {
      const sourceValue = getIn(src.raw, leaf.path);
      if (sourceValue === undefined) continue;
      if (src.kind === 'org') {
        value = orgValue = sourceValue;
        from = src.origin;
        continue;
      }
      if (leaf.rule === 'orgOnly' && src.kind !== 'builtin') {
        from = `${from} (${src.origin}'s value ignored: org policy only)`;
        continue;
      }
      if (src.kind === 'grant') {
        // per-run grants add to lists; a scalar grant only applies when org has not set it
        if (Array.isArray(sourceValue)) {
          let add = sourceValue;
          if (orgValue !== undefined && leaf.rule === 'intersect') add = intersect(sourceValue, orgValue as unknown[]);
          const base = Array.isArray(value) ? value : ((getIn(policySchema.parse({}), leaf.path) as unknown[]) ?? []);
          value = union(base, add);
          from = `${from} + ${src.origin}`;
        } else if (orgValue === undefined) {
          value = sourceValue;
          from = src.origin;
        }
        continue;
      }
      if (orgValue === undefined) {
        value = sourceValue;
        from = src.origin;
        continue;
      }
      const c = combine(leaf.rule, orgValue, sourceValue);
      value = c.value;
      from = c.note ? `${from} (${c.note})` : `${src.origin} within ${from}`;
    }
    if (value !== undefined) setIn(merged, leaf.path, value);
    provenance[leafPath] = from;
  }
  return { policy: policySchema.parse(merged), provenance };
}
