import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AirlockError, DEFAULT_ORG_POLICY, cachedResult, type HomeLayout } from '../common/index.ts';
import { MODE_LAYERS, policyCodeFingerprint, readPolicyText, type PolicyText } from '../policy/source.ts';
import type { LoadedPolicy } from '../policy/index.ts';
import { openHostRepoAt, readAtCommit, type HostRepo } from '../workspace/index.ts';

type PolicyEngine = typeof import('../policy/index.ts');

export const REPO_POLICY_FILE = 'airlock.yaml';

export interface PolicyChoice {
  /** Explicit repo-level policy file (host path) instead of the base commit's airlock.yaml. */
  policyFile?: string;
  /** Org policy path; default AIRLOCK_ORG_POLICY or /etc/airlock/policy.yaml when present. */
  orgPolicy?: string;
  /** Per-run grants as a partial policy document (e.g. an agent profile's brokered credential). */
  grants?: Record<string, unknown> | null;
  /** Shadow mode's candidate: a repo-level policy file (host path) merged with the same org policy. */
  shadowPolicy?: string;
}

export function orgPolicyPath(c: PolicyChoice, env: NodeJS.ProcessEnv = process.env): string | null {
  if (c.orgPolicy) return c.orgPolicy;
  if (env.AIRLOCK_ORG_POLICY) return env.AIRLOCK_ORG_POLICY;
  return existsSync(DEFAULT_ORG_POLICY) ? DEFAULT_ORG_POLICY : null;
}

/**
 * Where a session starts, read once from the host: the repository, the base commit and the
 * policy files (org, then the base commit's airlock.yaml or --policy). `airlock run` reads
 * it for the agent profile and hands it to Session.open, which then reads nothing twice.
 */
export interface SessionOrigin {
  repo: HostRepo;
  base: string;
  /** The policy files as read (parsed only when the resolved policy is not cached). */
  sources: PolicyText[];
}

/** Where resolved policies are cached (AIRLOCK_HOME, never seen by a sandbox), and what to do before the engine parses. */
export interface PolicyResolution {
  home?: HomeLayout | null;
  /** Called before the policy engine loads and parses (a cache miss): the CLI turns zod's JIT off there. */
  beforeParse?: () => Promise<void>;
}

/** The cache of results computed from policy files, under AIRLOCK_HOME/cache. */
export function resultCache(home: HomeLayout | null | undefined): { dir: string } | null {
  return home ? { dir: join(home.cache, 'results') } : null;
}

export function readSessionOrigin(
  o: PolicyChoice & { repo?: string; base?: string },
  env: NodeJS.ProcessEnv = process.env,
): SessionOrigin {
  const { repo, commit: base } = openHostRepoAt(resolve(o.repo ?? process.cwd()), o.base ?? 'HEAD');
  return { repo, base, sources: policySources(repo, base, o, env) };
}

/**
 * The policy of a session that starts at `origin`, with the caller's grants on top (and
 * shadow mode's candidate). Cached by the files' text and the engine's code (issue 16): a
 * hit loads neither zod nor yaml; errors are never cached, so a bad file always fails.
 */
export async function policyAt(
  origin: Pick<SessionOrigin, 'sources'>,
  grants: PolicyChoice['grants'],
  shadowPolicy?: string,
  how: PolicyResolution = {},
): Promise<LoadedPolicy> {
  const shadow = shadowPolicy ? readPolicyText(shadowPolicy, 'repo') : null;
  const key = {
    what: 'resolved policy',
    code: policyCodeFingerprint([fileURLToPath(import.meta.url)]),
    sources: origin.sources,
    grants: grants ?? null,
    shadow,
  };
  return cachedResult(resultCache(how.home), key, async () => {
    await how.beforeParse?.();
    const engine = await import('../policy/index.ts');
    try {
      const sources = origin.sources.map(engine.parsedSource);
      const loaded = engine.resolvePolicy(
        grants ? [...sources, { kind: 'grant', origin: 'command line', raw: grants }] : sources,
      );
      return withCandidate(engine, loaded, shadow);
    } catch (e) {
      if (how.home) await recordRefusedPolicy(how.home.auditDb, e);
      throw e;
    }
  });
}

/**
 * A policy refused when a session would start (invalid, or a repo setting an org-only key such
 * as the cluster) is recorded before the error reaches the user: the attempt is evidence. Best
 * effort: the refusal itself is what stops the session.
 */
async function recordRefusedPolicy(auditDb: string, e: unknown): Promise<void> {
  if (!(e instanceof AirlockError) || e.kind !== 'POLICY_INVALID') return;
  try {
    // loaded only on this path: resolving a policy stays light
    const { AuditStore } = await import('../audit/index.ts');
    const store = new AuditStore(auditDb);
    try {
      store.append({
        type: 'policy.refused',
        severity: 'high',
        decision: 'deny',
        rule: 'policy.load',
        data: { error: e.message.slice(0, 4000) },
      });
    } finally {
      store.close();
    }
  } catch {
    /* nothing to add: the session does not start either way */
  }
}

/** Shadow mode needs a candidate, and a candidate needs a layer in shadow mode: either alone is a mistake. */
function withCandidate(engine: PolicyEngine, loaded: LoadedPolicy, file: PolicyText | null): LoadedPolicy {
  const shadowed = MODE_LAYERS.filter((l) => loaded.policy.modes[l] === 'shadow');
  if (!file) {
    if (shadowed.length)
      throw new AirlockError(
        'USAGE',
        `modes.${shadowed[0]} is shadow but no candidate policy was given`,
        'pass --shadow-policy FILE (the policy to compare with), or set the mode to enforce',
      );
    return loaded;
  }
  if (!shadowed.length)
    throw new AirlockError(
      'USAGE',
      `--shadow-policy ${file.origin}: no layer is in shadow mode`,
      'set modes.egress (or commands, packages) to shadow in airlock.yaml, or leave out --shadow-policy',
    );
  const base = loaded.sources.filter((s) => s.kind !== 'repo');
  const candidate = engine.resolvePolicy([
    ...base.filter((s) => s.kind === 'org'),
    engine.parsedSource(file),
    ...base.filter((s) => s.kind === 'grant'),
  ]);
  return { ...loaded, candidate };
}

/**
 * The policy a session runs under is read from the host: the org file and the base
 * commit's airlock.yaml (or a file the user names), never from the workspace the agent
 * can edit. Without any file, the built-in defaults (the strictest settings) apply.
 */
export function sessionPolicy(
  repo: HostRepo | null,
  baseCommit: string | null,
  c: PolicyChoice,
  env: NodeJS.ProcessEnv = process.env,
): Promise<LoadedPolicy> {
  return policyAt({ sources: policySources(repo, baseCommit, c, env) }, c.grants, c.shadowPolicy);
}

function policySources(
  repo: HostRepo | null,
  baseCommit: string | null,
  c: PolicyChoice,
  env: NodeJS.ProcessEnv,
): PolicyText[] {
  const sources: PolicyText[] = [];
  const org = orgPolicyPath(c, env);
  if (org) {
    if (!existsSync(org))
      throw new AirlockError(
        'NOT_FOUND',
        `org policy not found: ${org}`,
        'fix AIRLOCK_ORG_POLICY / --org-policy, or remove it',
      );
    sources.push(readPolicyText(org, 'org'));
  }
  if (c.policyFile) sources.push(readPolicyText(c.policyFile, 'repo'));
  else if (repo && baseCommit) {
    const text = readAtCommit(repo, baseCommit, REPO_POLICY_FILE);
    const origin = `${REPO_POLICY_FILE}@${baseCommit.slice(0, 12)}`;
    if (text !== null) sources.push({ kind: 'repo', origin, text });
  }
  return sources;
}
