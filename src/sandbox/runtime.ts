import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { AirlockError, escapeForTerminal } from '../common/index.ts';
import type { SandboxDriver } from './driver.ts';
import { BwrapDriver } from './bwrap.ts';
import { GvisorDriver } from './gvisor/driver.ts';

/** The cluster of sandbox.kubernetes (src/policy/schema/sandbox.ts), set by the org policy only. */
export interface KubernetesSettings {
  kubeconfig: string;
  context?: string;
  namespace: string;
  warmPool: string;
  claimTimeoutSeconds: number;
}

/** What driverFor reads of the effective policy's sandbox section. */
export interface RuntimeSettings {
  runtime: string;
  kubernetes?: KubernetesSettings;
  limits: { wallSeconds: number };
}

/** The policy's sandbox.runtime values that run on this host itself. */
export const SANDBOX_RUNTIME_DRIVERS = { bwrap: () => new BwrapDriver(), gvisor: () => new GvisorDriver() } as const;

/** Largest kubeconfig read (a real one is a few KiB; certificates inline stay far below). */
const MAX_KUBECONFIG_BYTES = 1 << 20;

/**
 * The driver for a policy's sandbox.runtime (fail closed: a runtime this host cannot run is an
 * error, never a fallback). kubernetes loads @kubernetes/client-node only when a policy selects it.
 */
export async function driverFor(sandbox: RuntimeSettings): Promise<SandboxDriver> {
  if (sandbox.runtime === 'kubernetes') return kubernetesDriver(sandbox);
  const make = (SANDBOX_RUNTIME_DRIVERS as Record<string, (() => SandboxDriver) | undefined>)[sandbox.runtime];
  if (!make) {
    throw new AirlockError(
      'UNAVAILABLE',
      `sandbox.runtime: ${sandbox.runtime} cannot run a session on this host`,
      'set sandbox.runtime to bwrap, gvisor or kubernetes',
    );
  }
  return make();
}

async function kubernetesDriver(sandbox: RuntimeSettings): Promise<SandboxDriver> {
  const cluster = sandbox.kubernetes;
  if (!cluster)
    throw new AirlockError(
      'POLICY_INVALID',
      'sandbox.runtime is kubernetes but the policy names no cluster (sandbox.kubernetes is not set)',
      'set sandbox.kubernetes.kubeconfig (and namespace, warmPool) in the organisation policy (/etc/airlock/policy.yaml; see docs/deploy/kubernetes.md), or set sandbox.runtime: gvisor or bwrap',
    );
  const text = readKubeconfig(cluster.kubeconfig);
  // loaded only now: bwrap and gvisor sessions never pay for the Kubernetes client
  const { KubernetesDriver, SandboxClaims } = await import('./kubernetes/index.ts');
  let kubeConfig: ReturnType<typeof SandboxClaims.kubeConfig>;
  try {
    kubeConfig = SandboxClaims.kubeConfig(text);
  } catch (e) {
    throw new AirlockError(
      'POLICY_INVALID',
      `sandbox.kubernetes.kubeconfig: ${cluster.kubeconfig} is not a kubeconfig (${escapeForTerminal(String((e as Error).message ?? e).slice(0, 200))})`,
      'name a kubeconfig file (kubectl config view --raw)',
    );
  }
  if (cluster.context !== undefined) {
    if (!kubeConfig.getContextObject(cluster.context))
      throw new AirlockError(
        'POLICY_INVALID',
        `sandbox.kubernetes.context: the kubeconfig ${cluster.kubeconfig} has no context ${JSON.stringify(cluster.context)}`,
        `set sandbox.kubernetes.context to one of: ${kubeConfig.contexts.map((c) => escapeForTerminal(c.name)).join(', ') || '(none)'}`,
      );
    kubeConfig.setCurrentContext(cluster.context);
  }
  return new KubernetesDriver({
    kubeConfig,
    // the claim outlives its session by at most the wait for Ready: the cluster ends it if the supervisor dies
    target: {
      namespace: cluster.namespace,
      warmPool: cluster.warmPool,
      ttlSeconds: sandbox.limits.wallSeconds + cluster.claimTimeoutSeconds,
    },
    readyTimeoutMs: cluster.claimTimeoutSeconds * 1000,
  });
}

/**
 * The kubeconfig's text, refused unless it is a regular file (not a link) owned by root or by
 * this user and writable by no one else: its exec plugins run programs as the supervisor.
 */
function readKubeconfig(path: string): string {
  const bad = (why: string, fix: string) =>
    new AirlockError('POLICY_INVALID', `sandbox.kubernetes.kubeconfig: ${path} ${why}`, fix);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw code === 'ELOOP'
      ? bad('is a symbolic link', 'name the kubeconfig file itself')
      : bad(`cannot be read (${code ?? String(e)})`, 'set sandbox.kubernetes.kubeconfig to a kubeconfig on this host');
  }
  try {
    const st = fstatSync(fd);
    const me = process.getuid?.() ?? 0;
    if (!st.isFile()) throw bad('is not a regular file', 'name the kubeconfig file itself');
    if (st.uid !== 0 && st.uid !== me)
      throw bad(`is owned by uid ${st.uid}`, `chown it to root (or uid ${me}, the user running Airlock)`);
    if (st.mode & 0o022) throw bad('is writable by others', `chmod go-w ${path}`);
    if (st.size > MAX_KUBECONFIG_BYTES) throw bad(`is larger than ${MAX_KUBECONFIG_BYTES} bytes`, 'name a kubeconfig');
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** The policy's name (sandbox.runtime) of the driver a session ran under. */
export function runtimeOfDriver(driver: string): string {
  return driver === 'bubblewrap' ? 'bwrap' : driver;
}
