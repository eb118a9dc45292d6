import { AirlockError } from '../common/index.ts';
import type { SandboxDriver } from './driver.ts';
import { BwrapDriver } from './bwrap.ts';
import { GvisorDriver } from './gvisor/driver.ts';

/** The policy's sandbox.runtime values this host can run; kubernetes needs a cluster the policy cannot name yet (src/sandbox/kubernetes: KubernetesDriver, passed to Session.open). */
export const SANDBOX_RUNTIME_DRIVERS = { bwrap: () => new BwrapDriver(), gvisor: () => new GvisorDriver() } as const;

/** The driver for a policy's sandbox.runtime (fail closed: a runtime this host cannot run is an error, never a fallback). */
export function driverFor(runtime: string): SandboxDriver {
  const make = (SANDBOX_RUNTIME_DRIVERS as Record<string, (() => SandboxDriver) | undefined>)[runtime];
  if (!make) {
    throw new AirlockError(
      'UNAVAILABLE',
      `sandbox.runtime: ${runtime} cannot run a session on this host`,
      runtime === 'kubernetes'
        ? 'the policy names no cluster yet: a program passes the kubernetes driver to Session.open (docs/deploy/kubernetes.md); set sandbox.runtime: gvisor or bwrap to run here'
        : 'set sandbox.runtime to bwrap or gvisor',
    );
  }
  return make();
}

/** The policy's name (sandbox.runtime) of the driver a session ran under. */
export function runtimeOfDriver(driver: string): string {
  return driver === 'bubblewrap' ? 'bwrap' : driver;
}
