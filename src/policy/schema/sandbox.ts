import { z } from 'zod';
import { merge } from './meta.ts';

export const limitsSchema = z
  .strictObject({
    memoryMB: merge(
      z
        .number()
        .int()
        .min(16)
        .max(1 << 20)
        .default(2048)
        .describe('Memory limit for the whole sandbox in MiB.'),
      'min',
    ),
    pids: merge(
      z
        .number()
        .int()
        .min(8)
        .max(1 << 16)
        .default(256)
        .describe('Maximum number of processes/threads in the sandbox.'),
      'min',
    ),
    cpuSeconds: merge(
      z.number().int().min(1).default(1800).describe('CPU time limit per process in seconds (RLIMIT_CPU).'),
      'min',
    ),
    cpuPercent: merge(
      z
        .number()
        .int()
        .min(5)
        .max(6400)
        .default(100)
        .describe(
          'CPU share as percent of one core (cgroups only). The default, one core, leaves the rest of a multi-core host to everything else.',
        ),
      'min',
    ),
    wallSeconds: merge(
      z
        .number()
        .int()
        .min(1)
        .default(3600)
        .describe('Wall-clock limit for a session; the session is ended when it is reached.'),
      'min',
    ),
    diskMB: merge(
      z
        .number()
        .int()
        .min(1)
        .default(2048)
        .describe('Cap on what the session may write to its workspace, /tmp and home, in MiB.'),
      'min',
    ),
    fileSizeMB: merge(
      z.number().int().min(1).default(1024).describe('Largest single file the agent may write, in MiB (RLIMIT_FSIZE).'),
      'min',
    ),
  })
  .describe('Resource limits, enforced with cgroups where Airlock can create them, rlimits otherwise.');

export const envSchema = z
  .strictObject({
    allow: merge(
      z
        .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'))
        .default([])
        .describe(
          'Extra host environment variables passed into the sandbox (on top of PATH, LANG, LC_*, TERM, TZ, COLORTERM, NO_COLOR). Names that look like credentials are refused: use credentials brokering.',
        ),
      'intersect',
    ),
    set: merge(
      z
        .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string())
        .default({})
        .describe('Fixed variables set inside the sandbox.'),
      'org',
    ),
  })
  .describe('The sandbox environment is built from an allowlist; nothing else of the host environment enters.');

export const mountsSchema = z
  .strictObject({
    readOnly: merge(
      z
        .array(z.string().startsWith('/', 'an absolute path'))
        .default([])
        .describe('Host paths made visible read-only at the same path.'),
      'intersect',
    ),
    readWrite: merge(
      z
        .array(z.string().startsWith('/', 'an absolute path'))
        .default([])
        .describe('Host paths made visible read-write at the same path. Use sparingly: the agent can change them.'),
      'intersect',
    ),
  })
  .describe('Extra host paths; nothing of the host beyond the system directories is visible otherwise.');

/** A Kubernetes object name (RFC 1123 label): what namespaces and the manifests' names are. */
const k8sName = z
  .string()
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a Kubernetes name: lower-case letters, digits and "-", at most 63');

export const kubernetesSchema = merge(
  z
    .strictObject({
      kubeconfig: z
        .string()
        .max(4096)
        .startsWith('/', 'an absolute path on the host')
        .describe(
          "The kubeconfig Airlock's supervisor uses to claim sandboxes (a path on the host). It must be a regular file owned by root or the user running Airlock and writable by no one else: a kubeconfig can run programs on the host (exec credential plugins).",
        ),
      context: z
        .string()
        .min(1)
        .max(253)
        .optional()
        .describe("The kubeconfig context to use (absent: the kubeconfig's current-context)."),
      namespace: k8sName
        .default('airlock-sessions')
        .describe('The namespace where the kustomize base (deploy/kubernetes/base) was applied.'),
      warmPool: k8sName
        .default('airlock-session')
        .describe("The SandboxWarmPool a session's SandboxClaim names (the pool names the admin's SandboxTemplate)."),
      claimTimeoutSeconds: z
        .number()
        .int()
        .min(1)
        .max(3600)
        .default(120)
        .describe('How long a session waits for its claim to be Ready before it fails (and deletes the claim).'),
    })
    .describe(
      'The cluster that runs sessions when sandbox.runtime is kubernetes. Only the organisation policy may set it: a repository policy (which the agent can propose) that sets it is refused.',
    ),
  'orgOnly',
);

/** Sandbox runtimes, strongest first (the merge order: a repo policy may only move up this list). */
export const SANDBOX_RUNTIMES = ['kubernetes', 'gvisor', 'bwrap'] as const;

export const sandboxSchema = z
  .strictObject({
    runtime: merge(
      z
        .enum(SANDBOX_RUNTIMES)
        .default('bwrap')
        .describe(
          'Where the agent runs: bwrap (namespaces + seccomp on the host kernel), gvisor (runsc: a user-space kernel between the agent and the host kernel; needs root and the runsc package) or kubernetes (a SandboxClaim of kubernetes-sigs/agent-sandbox in a cluster, isolated by a RuntimeClass). The org policy may require a stronger one; a repo policy may only choose a stronger one.',
        ),
      { stricter: SANDBOX_RUNTIMES },
    ),
    kubernetes: kubernetesSchema.optional(),
    limits: limitsSchema.prefault({}),
    env: envSchema.prefault({}),
    mounts: mountsSchema.prefault({}),
    traceProcesses: merge(
      z
        .boolean()
        .default(true)
        .describe(
          'Record every process the agent starts (kernel-level: seccomp user notification as root, strace otherwise).',
        ),
      'or',
    ),
    traceFileProbes: merge(
      z
        .boolean()
        .default(false)
        .describe(
          'Also record failed file opens and writes (probes of host paths, credential files, read-only system dirs). Needs the strace tracer (ptrace): several times slower on process-heavy work.',
        ),
      'or',
    ),
  })
  .describe('The isolated execution environment.');
