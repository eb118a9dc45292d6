import { fileURLToPath } from 'node:url';
import { AirlockError, cachedResult, ensureHome } from '../common/index.ts';
import type { Policy } from '../policy/index.ts';
import { policyCodeFingerprint } from '../policy/source.ts';
import { SANDBOX_HOME } from '../sandbox/index.ts';
import type { OpenSessionOptions, Session } from '../session/index.ts';
import { policyAt, readSessionOrigin, resultCache } from '../session/index.ts';
import type { AgentProfile } from './profiles.ts';
import { agentArgv, fileDigest, resolveAgent, type ResolvedAgent, type ResolveOptions } from './resolve.ts';

// `airlock run --agent NAME -- ARGS`: the profile becomes Session.open options (mounts,
// fixed env with the key placeholder, model hosts as per-session grants) and a prepare
// step that writes the agent's private config into the sandbox home, from inside the
// sandbox, before the agent starts.

export interface AppliedProfile {
  /** The agent's command line inside the sandbox. */
  argv: string[];
  /** Merge into Session.open options. */
  openOptions: Pick<
    OpenSessionOptions,
    'agent' | 'agentVersion' | 'origin' | 'sandboxEnv' | 'readOnlyPaths' | 'allowHosts' | 'grants'
  >;
  agent: ResolvedAgent;
  /** Writes the profile's files into the sandbox home; call after Session.open, before exec. */
  prepare(session: Session): Promise<void>;
}

export interface ApplyOptions extends ResolveOptions {
  /** Session options the profile is applied to (used to read the policy's agents section). */
  session?: OpenSessionOptions;
}

/** Resolves profile `name` for the user's arguments `args`. */
export async function applyProfile(name: string, args: string[], o: ApplyOptions = {}): Promise<AppliedProfile> {
  const so = o.session ?? {};
  const env = so.env ?? process.env;
  // The policy (org + base commit's airlock.yaml, or --policy) may add or override profiles.
  const origin = so.origin ?? readSessionOrigin(so, env);
  const home = ensureHome(so.home ?? env.AIRLOCK_HOME ?? undefined);
  const how = { home, beforeParse: so.beforePolicyParse };
  const policy = (await policyAt(origin, so.grants, so.shadowPolicy, how)).policy;
  const profile = await profileUnder(name, policy, how);
  const agent = resolveAgent(profile, o);
  const argv = agentArgv(agent, args);
  return {
    argv,
    agent,
    openOptions: {
      agent: name,
      origin,
      agentVersion: agent.version,
      sandboxEnv: { ...(so.sandboxEnv ?? {}), ...agent.env },
      readOnlyPaths: [...(so.readOnlyPaths ?? []), ...agent.mounts],
      allowHosts: [...new Set([...(so.allowHosts ?? []), ...agent.allowHosts])],
      // The key as a per-run credentials.brokered grant: the broker swaps the placeholder on the model hosts only.
      grants: agent.credential
        ? { ...(so.grants ?? {}), credentials: { brokered: [agent.credential] } }
        : (so.grants ?? null),
    },
    prepare: (s) => prepareAgent(s, agent),
  };
}

const PROFILE_CODE = ['./profiles.ts', './profiles.yaml'].map((f) => fileURLToPath(new URL(f, import.meta.url)));

/**
 * Profile `name` as the policy's agents section resolves it, cached like the policy (by
 * that section, the built-in profiles and the code): a hit loads neither zod nor yaml.
 */
async function profileUnder(
  name: string,
  policy: Pick<Policy, 'agents'>,
  how: { home: ReturnType<typeof ensureHome>; beforeParse?: () => Promise<void> },
): Promise<AgentProfile> {
  const key = { what: 'agent profile', code: policyCodeFingerprint(PROFILE_CODE), name, agents: policy.agents };
  return cachedResult(resultCache(how.home), key, async () => {
    await how.beforeParse?.();
    return (await import('./profiles.ts')).getProfile(name, policy);
  });
}

const WRITE_SCRIPT = 'umask 077; f="$HOME/$1"; mkdir -p -- "$(dirname -- "$f")" && cat > "$f" && chmod "$2" -- "$f"';

/** Writes a file under the sandbox home with a command run inside the sandbox (never a host write). */
export async function writeHomeFile(s: Session, path: string, content: string, mode = 0o600): Promise<void> {
  const h = await s.exec({
    argv: ['/bin/sh', '-c', WRITE_SCRIPT, 'airlock-agent-setup', path, mode.toString(8)],
    via: 'api',
  });
  let err = '';
  h.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  h.stdout?.resume();
  h.stdin?.end(content);
  const r = await h.done;
  if (r.status !== 0)
    throw new AirlockError(
      'UNAVAILABLE',
      `could not write ${SANDBOX_HOME}/${path} in the sandbox (exit ${r.status}): ${err.trim().slice(0, 300)}`,
      "check the session's audit log; the command rules must allow /bin/sh for agent setup",
    );
}

export async function prepareAgent(s: Session, a: ResolvedAgent): Promise<void> {
  for (const f of a.files) await writeHomeFile(s, f.path, f.content, f.mode);
  s.record({
    type: 'agent.setup',
    data: {
      profile: a.profile.name,
      source: a.profile.source,
      executable: a.executable,
      version: a.version,
      mounts: a.mounts,
      envNames: Object.keys(a.env).sort(),
      files: a.files.map((f) => ({ path: `${SANDBOX_HOME}/${f.path}`, sha256: fileDigest(f.content) })),
      allowHosts: a.allowHosts,
      baseUrl: a.baseUrl,
      credential: a.credential
        ? {
            name: a.credential.name,
            destinations: a.credential.destinations,
            header: a.credential.inject.header,
            source: a.credential.source,
          }
        : null,
    },
  });
}
