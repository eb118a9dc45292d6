import { AirlockError } from '../common/index.ts';
import { DEFAULT_ALLOWED_MODES, MODE_LAYERS, type ModeLayer, type PolicyMode } from './schema/modes.ts';
import type { PolicySource } from './merge.ts';
import type { Policy } from './schema/index.ts';
import { formatIssues, locateKey, type PolicyIssue } from './locate.ts';

// The org policy decides which modes may be used (modes.allowed). Record mode lets through
// what the policy would refuse, so it needs the org policy file to list it: without an org
// file, or when the org file does not say, only enforce and shadow are allowed. A policy
// asking for another mode is refused with file:line:key, never silently tightened: a team
// that believes it is recording must learn that it is not.

function raw(src: PolicySource, path: string[]): unknown {
  let cur: unknown = src.raw;
  for (const k of path) cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[k] : undefined;
  return cur;
}

/** Modes the org policy allows (the last org source that says, else the default). */
export function allowedModes(sources: PolicySource[]): PolicyMode[] {
  let allowed: PolicyMode[] = DEFAULT_ALLOWED_MODES;
  for (const s of sources) {
    const v = raw(s, ['modes', 'allowed']);
    if (s.kind === 'org' && Array.isArray(v)) allowed = v as PolicyMode[];
  }
  return allowed.includes('enforce') ? allowed : ['enforce', ...allowed];
}

function issue(src: PolicySource, path: string[], message: string): PolicyIssue {
  return { origin: src.origin, ...locateKey(src.text, path), key: path.join('.'), message };
}

/** Keys a repo file must not set even without an org file: what it may do, a host key file, and the cluster (a host kubeconfig). */
const ORG_ONLY = [
  ['modes', 'allowed'],
  ['provenance', 'key'],
  ['sandbox', 'kubernetes'],
];

/** Refuses a policy that uses a mode its org does not allow, or a repo that sets an org-only key. */
export function checkModes(sources: PolicySource[], policy: Policy): void {
  const allowed = allowedModes(sources);
  const problems: PolicyIssue[] = [];
  for (const s of sources) {
    for (const path of ORG_ONLY) {
      if (s.kind !== 'org' && raw(s, path) !== undefined)
        problems.push(
          issue(s, path, `only the organisation policy may set ${path.join('.')}; remove it from this file`),
        );
    }
    for (const layer of MODE_LAYERS) {
      const m = raw(s, ['modes', layer]);
      if (typeof m === 'string' && !allowed.includes(m as PolicyMode)) {
        problems.push(
          issue(
            s,
            ['modes', layer],
            `mode ${JSON.stringify(m)} is not allowed by the organisation policy (modes.allowed: ${allowed.join(', ')})`,
          ),
        );
      }
    }
  }
  if (problems.length) {
    const modeProblem = problems.some((p) => p.key.startsWith('modes.') && p.key !== 'modes.allowed');
    throw new AirlockError(
      'POLICY_INVALID',
      `policy refused\n${formatIssues(problems)}`,
      modeProblem
        ? 'use mode enforce (or shadow), or ask the owners of the organisation policy to add the mode to modes.allowed'
        : 'remove the key from this file: only the organisation policy (AIRLOCK_ORG_POLICY, /etc/airlock/policy.yaml) sets it',
    );
  }
  // the effective list says what the org allows, whatever a repo file wrote
  policy.modes.allowed = [...allowed];
}

/** The mode of one layer in an effective policy. */
export function layerMode(policy: Policy, layer: ModeLayer): PolicyMode {
  return policy.modes[layer];
}
