import { createHash } from 'node:crypto';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { canonicalJson, AirlockError } from '../common/index.ts';
import { policySchema, type Policy } from './schema/index.ts';
import { mergePolicies, type PolicySource } from './merge.ts';
import { locate, formatIssues, type PolicyIssue } from './locate.ts';
import { checkModes } from './modes.ts';
import { readPolicyText, type PolicyText } from './source.ts';

export { formatIssues };

export interface LoadedPolicy {
  policy: Policy;
  sources: PolicySource[];
  /** Where each leaf value came from, keyed by dotted path. */
  provenance: Record<string, string>;
  hash: string;
  /** Shadow mode: the candidate policy (same org policy, another repo file) whose decisions are recorded beside the enforced ones. */
  candidate?: LoadedPolicy;
}

function allowedHere(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'unrecognized_keys':
      return ` (unknown key${issue.keys.length > 1 ? 's' : ''}: ${issue.keys.join(', ')}; see \`airlock policy schema\` for the allowed keys)`;
    case 'invalid_value':
      return ` (allowed: ${issue.values.map((v) => JSON.stringify(v)).join(', ')})`;
    default:
      return '';
  }
}

/** Parses and validates one policy document; throws POLICY_INVALID with file:line:key for every problem. */
export function parsePolicyText(text: string, origin: string): Record<string, unknown> {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    const issues = doc.errors.map((e) => {
      const p = e.linePos?.[0];
      return {
        origin,
        line: p?.line ?? null,
        column: p?.col ?? null,
        key: '',
        message: `YAML syntax: ${e.message.split('\n')[0]}`,
      };
    });
    throw new AirlockError(
      'POLICY_INVALID',
      `invalid policy\n${formatIssues(issues)}`,
      'fix the YAML syntax at the line shown',
    );
  }
  const raw = doc.toJS() ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new AirlockError(
      'POLICY_INVALID',
      `${origin}: the policy must be a YAML mapping (key: value)`,
      'start from `airlock init`',
    );
  }
  const res = policySchema.safeParse(raw);
  if (!res.success) {
    const issues: PolicyIssue[] = res.error.issues.map((iss) => {
      let path = iss.path.filter((p): p is string | number => typeof p !== 'symbol');
      let key = path.join('.');
      if (iss.code === 'unrecognized_keys' && iss.keys.length) {
        path = [...path, iss.keys[0]!];
        key = path.join('.');
      }
      const loc = locate(doc, lc, path);
      return { origin, ...loc, key, message: iss.message + allowedHere(iss) };
    });
    throw new AirlockError(
      'POLICY_INVALID',
      `invalid policy\n${formatIssues(issues)}`,
      'see `airlock policy schema` or the policy reference in README.md',
    );
  }
  return raw as Record<string, unknown>;
}

export function readPolicyFile(path: string, kind: string): PolicySource {
  return parsedSource(readPolicyText(path, kind));
}

/** A policy file's text parsed and validated (POLICY_INVALID with file:line:key). */
export function parsedSource(t: PolicyText): PolicySource {
  return { ...t, raw: parsePolicyText(t.text, t.origin) };
}

export { DEFAULT_ORG_POLICY } from '../common/index.ts';

/** Resolves builtin defaults + org policy + repo policy (+ per-run grants) into the effective policy. */
export function resolvePolicy(sources: PolicySource[]): LoadedPolicy {
  const { policy, provenance } = mergePolicies(sources);
  checkModes(sources, policy);
  const hash = createHash('sha256').update(canonicalJson(policy)).digest('hex');
  return { policy, sources, provenance, hash };
}

export function defaultPolicy(): Policy {
  return policySchema.parse({});
}
