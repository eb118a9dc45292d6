import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { randomBytes, createHash } from 'node:crypto';
import { dirname, join, basename, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AirlockError } from '../common/index.ts';
import { looksLikeCredential, SANDBOX_HOME } from '../sandbox/index.ts';
import type { AgentProfile } from './profiles.ts';

// From a profile (data) to a concrete launch: the executable's host path (mounted
// read-only at the same path), the runtime to mount, the fixed environment, the private
// config files for the sandbox home, the model hosts to grant and the credential the
// gateway broker must inject. Nothing here touches the sandbox; see setup.ts.

/** Airlock's own installation root (where its node_modules are). */
export const AIRLOCK_ROOT = realpathSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..'));

const SYSTEM_PREFIXES = ['/usr/', '/bin/', '/sbin/', '/lib/', '/lib64/', '/etc/', '/opt/'];
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const MAX_PACKAGES = 400;

/**
 * The credential the gateway's broker injects, as one entry of the policy's
 * `credentials.brokered` list (src/policy/schema/credentials.ts): the profile's key is
 * passed to the session as a per-run grant of that entry, so an org policy still bounds
 * it (only entries the org lists identically apply when it lists any). Inside the
 * sandbox `name` holds only a placeholder.
 */
export interface ProfileCredential {
  name: string;
  source: { env: string } | { file: string };
  destinations: { host: string; port: number }[];
  inject: { header: string; template: string };
  description: string;
}

export interface ResolvedAgent {
  profile: AgentProfile;
  /** Executable as the sandbox sees it (same path as on the host), or null for generic. */
  executable: string | null;
  /** The agent's version when Airlock can know it (the installed package's package.json), else null. */
  version: string | null;
  /** Host paths mounted read-only at the same path. */
  mounts: string[];
  /** Fixed variables inside the sandbox (placeholder included, never the real key). */
  env: Record<string, string>;
  /** Files written under the sandbox home before the agent starts. */
  files: { path: string; content: string; mode: number }[];
  /** Destinations granted for this session (HOST or HOST:PORT, as --allow-host). */
  allowHosts: string[];
  credential: ProfileCredential | null;
  /** Placeholder set in the key variable until the broker sets its own (it then wins). */
  placeholder: string | null;
  baseUrl: string | null;
}

export interface ResolveOptions {
  /** Override the model base URL (e.g. a company model gateway). */
  baseUrl?: string;
  /** Where to look for agent packages (default: Airlock's own node_modules). */
  root?: string;
  /** Node runtime to mount (default: the one running Airlock). */
  nodeExecPath?: string;
}

/** Host paths that a profile may never mount, even read-only: credential stores and host state.
 * Judged on the normalised path and, when it exists, on where its symlinks lead
 * (`/home/dev/.` or a link to ~/.ssh is what it resolves to). */
export function refusedMount(p: string): string | null {
  let real: string | null = null;
  try {
    real = realpathSync(p);
  } catch {
    /* absent: the mount itself fails later */
  }
  for (const c of [posix.resolve('/', p), ...(real ? [real] : [])]) {
    const why = refusedPath(c);
    if (why) return why;
  }
  return null;
}

function refusedPath(p: string): string | null {
  const segs = p.split('/').filter(Boolean);
  if (segs.length === 0) return 'the whole host filesystem';
  if (['proc', 'sys', 'dev', 'run', 'boot'].includes(segs[0]!) || (segs[0] === 'var' && segs[1] === 'run'))
    return 'host kernel/runtime state';
  if ((segs[0] === 'home' && segs.length <= 2) || (segs[0] === 'root' && segs.length === 1))
    return 'a whole home directory';
  if (p === '/etc/shadow' || p === '/etc/gshadow' || p.startsWith('/etc/ssh')) return 'host authentication data';
  const secret = [
    '.ssh',
    '.aws',
    '.gnupg',
    '.kube',
    '.docker',
    '.azure',
    '.netrc',
    '.git-credentials',
    '.npmrc',
    '.pypirc',
    '.config/gcloud',
    '.config/gh',
    '.codex',
    '.claude',
    '.claude.json',
    '.airlock',
  ];
  for (let i = 0; i < segs.length; i++) {
    const rest = segs.slice(i).join('/');
    if (secret.some((s) => rest === s || rest.startsWith(s + '/'))) return `a credential store (${segs[i]})`;
  }
  return null;
}

function findPackageDir(name: string, from: string): string | null {
  let dir = from;
  for (let i = 0; i < 64; i++) {
    const cand = join(dir, 'node_modules', name);
    if (existsSync(join(cand, 'package.json'))) return realpathSync(cand);
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return null;
}

function readPkg(dir: string): {
  name?: string;
  version?: string;
  bin?: string | Record<string, string>;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
} {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as ReturnType<typeof readPkg>;
}

/** A package's directory and those of its installed dependencies (optional ones included: platform binaries). */
export function packageClosure(name: string, root: string): { dir: string; dirs: string[] } {
  const dir = findPackageDir(name, root);
  if (!dir) {
    throw new AirlockError(
      'NOT_FOUND',
      `agent package ${name} is not installed next to Airlock (${root})`,
      `install it: npm install --save-exact ${name}  (or give the executable's path in the profile: executable.path)`,
    );
  }
  const seen = new Set<string>([dir]);
  const queue = [dir];
  while (queue.length) {
    const d = queue.shift()!;
    const pkg = readPkg(d);
    for (const dep of Object.keys({ ...(pkg.dependencies ?? {}), ...(pkg.optionalDependencies ?? {}) })) {
      const dd = findPackageDir(dep, d);
      if (!dd || seen.has(dd)) continue; // optional deps of other platforms are simply absent
      seen.add(dd);
      if (seen.size > MAX_PACKAGES)
        throw new AirlockError(
          'UNAVAILABLE',
          `agent package ${name} has more than ${MAX_PACKAGES} installed dependencies`,
          'install it into its own directory and give executable.path plus mounts',
        );
      queue.push(dd);
    }
  }
  return { dir, dirs: [...seen] };
}

function binOf(dir: string, pkgName: string, bin?: string): string {
  const pkg = readPkg(dir);
  const bins = typeof pkg.bin === 'string' ? { [basename(pkgName)]: pkg.bin } : (pkg.bin ?? {});
  const key = bin ?? Object.keys(bins)[0];
  const rel = key ? bins[key] : undefined;
  if (!rel)
    throw new AirlockError(
      'POLICY_INVALID',
      `package ${pkgName} has no executable ${bin ?? ''} in its "bin" map`,
      `use one of: ${Object.keys(bins).join(', ') || '(none)'}`,
    );
  return realpathSync(join(dir, rel));
}

/** The Node runtime directory to mount (null when it already lives in a system directory the sandbox sees). */
export function nodeRuntime(execPath = process.execPath): { mount: string | null; bin: string } {
  const real = realpathSync(execPath);
  const bin = dirname(real);
  if (SYSTEM_PREFIXES.some((p) => real.startsWith(p))) return { mount: null, bin };
  const top = basename(bin) === 'bin' ? dirname(bin) : bin;
  return { mount: top, bin };
}

function fill(s: string, vars: Record<string, string>, where: string): string {
  return s.replace(/\{\{(\w+)\}\}/g, (m, k: string) => {
    if (k in vars) return vars[k]!;
    throw new AirlockError(
      'POLICY_INVALID',
      `${where}: unknown template ${m}`,
      `use one of ${Object.keys(vars)
        .map((v) => `{{${v}}}`)
        .join(', ')}`,
    );
  });
}

function hostPortOf(url: string): { host: string; grant: string } {
  const u = new URL(url);
  const defPort = u.protocol === 'https:' ? '443' : '80';
  const port = u.port || defPort;
  return { host: u.hostname, grant: port === '443' || port === '80' ? u.hostname : `${u.hostname}:${port}` };
}

export function newPlaceholder(profile: string): string {
  return `airlock-placeholder-${profile}-${randomBytes(16).toString('hex')}`;
}

type ModelSpec = NonNullable<AgentProfile['model']>;

/** The agent's program (from its npm package or a path) and the directories to mount for it. */
function agentExecutable(
  profile: AgentProfile,
  root: string,
  where: string,
  mounts: string[],
): { executable: string | null; version: string | null } {
  const ex = profile.executable;
  if (ex?.package) {
    const { dir, dirs } = packageClosure(ex.package, root);
    const executable = binOf(dir, ex.package, ex.bin);
    const v = readPkg(dir).version;
    mounts.push(...dirs);
    return { executable, version: typeof v === 'string' && /^[0-9A-Za-z.+-]{1,64}$/.test(v) ? v : null };
  }
  if (!ex?.path) return { executable: null, version: null };
  let real: string;
  try {
    real = realpathSync(ex.path);
  } catch {
    throw new AirlockError(
      'NOT_FOUND',
      `${where}: executable ${ex.path} does not exist`,
      'install the agent or fix executable.path',
    );
  }
  if (!statSync(real).isFile())
    throw new AirlockError(
      'POLICY_INVALID',
      `${where}: executable ${ex.path} is not a file`,
      'point executable.path at the program',
    );
  if (!SYSTEM_PREFIXES.some((p) => real.startsWith(p))) mounts.push(dirname(real));
  return { executable: real, version: null };
}

/** The model API's base URL and the hosts the agent may reach (grants) and send its key to (bound). */
function modelHosts(
  model: ModelSpec,
  opts: ResolveOptions,
): { baseUrl: string | null; hostGrants: Set<string>; boundHosts: Set<string> } {
  const baseUrl = opts.baseUrl ?? model.baseUrl ?? null;
  if (opts.baseUrl) {
    try {
      const u = new URL(opts.baseUrl);
      if (!/^https?:$/.test(u.protocol)) throw new Error('scheme');
    } catch {
      throw new AirlockError(
        'USAGE',
        `invalid model base URL: ${opts.baseUrl}`,
        'give an http(s) URL such as https://llm-gateway.example.com/v1',
      );
    }
  }
  const hostGrants = new Set<string>(model.hosts ?? []);
  const boundHosts = new Set<string>((model.hosts ?? []).map((h) => h.replace(/:\d+$/, '')));
  if (baseUrl) {
    const hp = hostPortOf(baseUrl);
    hostGrants.add(hp.grant);
    boundHosts.add(hp.host);
  }
  // A redirected base URL replaces the vendor hosts: the key goes only where the agent is pointed.
  if (opts.baseUrl) {
    hostGrants.clear();
    boundHosts.clear();
    const hp = hostPortOf(opts.baseUrl);
    hostGrants.add(hp.grant);
    boundHosts.add(hp.host);
  }
  return { baseUrl, hostGrants, boundHosts };
}

/** The model API key the gateway brokers: where it comes from, how it is injected, and to which host:port only. */
function modelCredential(
  profile: AgentProfile,
  model: ModelSpec & { keyEnv: string },
  baseUrl: string | null,
  boundHosts: Set<string>,
  opts: ResolveOptions,
): ProfileCredential {
  const header = model.keyHeader ?? 'Authorization: Bearer {value}';
  const i = header.indexOf(':');
  const ports = new Map<string, number>();
  for (const h of model.hosts ?? []) ports.set(h.replace(/:\d+$/, ''), Number(/:(\d+)$/.exec(h)?.[1] ?? 443));
  if (baseUrl) {
    const u = new URL(baseUrl);
    ports.set(u.hostname, Number(u.port || (u.protocol === 'https:' ? 443 : 80)));
  }
  if (opts.baseUrl) {
    ports.clear();
    const u = new URL(opts.baseUrl);
    ports.set(u.hostname, Number(u.port || (u.protocol === 'https:' ? 443 : 80)));
  }
  return {
    name: model.keyEnv,
    source: model.keySource?.file ? { file: model.keySource.file } : { env: model.keySource?.env ?? model.keyEnv },
    destinations: [...ports]
      .filter(([h]) => boundHosts.has(h))
      .map(([host, port]) => ({ host, port }))
      .sort((a, b) => a.host.localeCompare(b.host)),
    inject: { header: header.slice(0, i).trim(), template: header.slice(i + 1).trim() },
    description: `model API key of agent profile ${profile.name}`,
  };
}

/** Turns a profile into mounts, env, files, grants and the brokered credential. */
export function resolveAgent(profile: AgentProfile, opts: ResolveOptions = {}): ResolvedAgent {
  const where = `agent profile ${profile.name}`;
  const mounts: string[] = [];
  const { executable, version } = agentExecutable(profile, opts.root ?? AIRLOCK_ROOT, where, mounts);
  for (const m of profile.mounts ?? []) mounts.push(m);
  for (const m of mounts) {
    const why = refusedMount(m);
    if (why)
      throw new AirlockError(
        'POLICY_INVALID',
        `${where}: refusing to mount ${m} into the sandbox: it is ${why}`,
        "mount only the agent's program and runtime directories",
      );
  }

  const model = profile.model ?? {};
  const { baseUrl, hostGrants, boundHosts } = modelHosts(model, opts);
  let credential: ProfileCredential | null = null;
  let placeholder: string | null = null;
  const vars: Record<string, string> = {
    home: SANDBOX_HOME,
    baseUrl: baseUrl ?? '',
    keyEnv: model.keyEnv ?? '',
    model: model.model ?? '',
  };
  const env: Record<string, string> = {};
  if (profile.node) {
    const rt = nodeRuntime(opts.nodeExecPath);
    if (rt.mount) mounts.push(rt.mount);
    env.PATH = `${rt.bin}:${DEFAULT_PATH}`;
  }
  for (const [k, v] of Object.entries(profile.env ?? {})) {
    if (looksLikeCredential(k)) {
      throw new AirlockError(
        'POLICY_INVALID',
        `${where}: env ${k} looks like a credential and is never set inside the sandbox`,
        'declare it as model.keyEnv so the gateway brokers it',
      );
    }
    env[k] = fill(v, vars, `${where} env ${k}`);
  }
  if (model.baseUrlEnv && baseUrl) env[model.baseUrlEnv] = baseUrl;
  if (model.keyEnv) {
    placeholder = newPlaceholder(profile.name);
    env[model.keyEnv] = placeholder;
    credential = modelCredential(profile, { ...model, keyEnv: model.keyEnv }, baseUrl, boundHosts, opts);
  }
  const files = (profile.files ?? []).map((f) => ({
    path: f.path,
    content: fill(f.content, vars, `${where} file ${f.path}`),
    mode: f.mode ?? 0o600,
  }));
  return {
    profile,
    executable,
    version,
    mounts: [...new Set(mounts)],
    env,
    files,
    allowHosts: [...hostGrants].sort(),
    credential,
    placeholder,
    baseUrl,
  };
}

/** The agent's argv from the user's arguments (non-interactive form, executable first). */
export function agentArgv(a: Pick<ResolvedAgent, 'profile' | 'executable'>, userArgs: string[]): string[] {
  const p = a.profile;
  const args = [...userArgs];
  if (a.executable === null) {
    if (!args.length)
      throw new AirlockError('USAGE', 'no command given', 'pass the command after --, e.g. airlock run -- npm test');
    return args;
  }
  const strip = p.args?.strip ?? [];
  const names = new Set([...(p.commands ?? [])]);
  if (args.length && names.has(args[0]!)) args.shift();
  for (let i = 0; i < 8 && args.length && strip.includes(args[0]!) && !names.has(args[0]!); i++) args.shift();
  const tpl = p.args?.template;
  let out: string[];
  if (!tpl) out = args;
  else {
    const given = new Set(args);
    out = [];
    for (const t of tpl) {
      if (t === '{{args}}') out.push(...args);
      else if (t.startsWith('-') && given.has(t)) continue;
      else out.push(t);
    }
  }
  return [a.executable, ...out];
}

/** Fingerprint of a file written into the sandbox home, for the audit record. */
export function fileDigest(content: string): string {
  return createHash('sha256').update(content).digest('hex');
}
