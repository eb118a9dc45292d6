import type { Command } from 'commander';

// Each module's commands live in their own file and register here, one entry each.
// Loaded lazily: a command loads only the file that defines it, and `--version`,
// `--help`, no command or an unknown one load none (main.ts lists the commands from the
// table below). `commands` maps each top-level command a file defines, as commander
// writes it (name and arguments), to the one line `airlock --help` shows for it; the
// file's own `.description()` is what `airlock NAME --help` shows.
// test/cli/lazy.test.ts checks that this table and the files agree.
export type Register = (program: Command) => void;

export interface Registration {
  commands: Record<string, string>;
  load: () => Promise<Register>;
}

export const registrations: Registration[] = [
  {
    commands: {
      init: 'Write a commented airlock.yaml with safe defaults in the repository root',
      policy: 'Validate, explain and export the policy schema',
    },
    load: async () => (await import('./policy.ts')).registerPolicy,
  },
  {
    commands: {
      'run <command...>': "Run an agent command in a new sandboxed session; exits with the agent's status",
      session: 'Long-running sessions for agent frameworks that call tools one at a time',
      'exec <session> <command...>':
        "Run a command in a running session's sandbox; output and exit status pass through",
      sessions: 'List sessions with their exit status and counts of events and denials',
    },
    load: async () => (await import('./session.ts')).registerSession,
  },
  {
    commands: { secrets: 'Find secrets with the engine Airlock uses for sanitization, review and DLP' },
    load: async () => (await import('./secrets.ts')).registerSecrets,
  },
  {
    commands: { approvals: 'Commands a session is waiting to run ("ask" rules): list, allow, deny' },
    load: async () => (await import('./approvals.ts')).registerApprovals,
  },
  { commands: { egress: 'Egress gateway tools' }, load: async () => (await import('./egress.ts')).registerEgress },
  {
    commands: {
      'propose <session>': "Turn a finished session's captured result into a proposal (runs the checks)",
      review: 'Review proposals: list, show (diff with findings), approve, reject, apply',
    },
    load: async () => (await import('./review.ts')).registerReview,
  },
  {
    commands: {
      audit: 'Read, verify, prove and export the tamper-evident audit log',
      sinks: 'SIEM sinks: delivery status and flushing',
    },
    load: async () => (await import('./audit.ts')).registerAudit,
  },
  {
    commands: { agents: 'List agent profiles usable with `airlock run --agent NAME`' },
    load: async () => (await import('./agents.ts')).registerAgents,
  },
  {
    commands: {
      'verify-change <commit>': 'Verify the signed provenance of a commit Airlock applied',
      provenance: 'The provenance signing key',
    },
    load: async () => (await import('./provenance.ts')).registerProvenance,
  },
  {
    commands: { db: 'The shared PostgreSQL store (AIRLOCK_DATABASE_URL): schema versions.' },
    load: async () => (await import('./shared.ts')).registerDb,
  },
  {
    commands: { console: 'Serve the review and security console (web UI): proposals, approvals, sessions, audit.' },
    load: async () => (await import('./console.ts')).registerConsole,
  },
  {
    commands: { mcp: "Serve a sandboxed session's tools over the Model Context Protocol on stdio" },
    load: async () => (await import('./mcp.ts')).registerMcp,
  },
  {
    commands: { pod: 'The processes of a session pod on Kubernetes (the cluster and the kubernetes driver run them)' },
    load: async () => (await import('./pod.ts')).registerPod,
  },
  {
    commands: {
      warm: 'Warm start: keep a pre-loaded spare process ready for the next airlock command (on, off, status)',
    },
    load: async () => (await import('./warm.ts')).registerWarm,
  },
];

/** The name of a command as the table writes it ("run <command...>" → "run"). */
export function commandName(term: string): string {
  return term.split(' ')[0]!;
}

/** The registration that defines top-level command `name`, if any. */
export function registrationOf(name: string): Registration | undefined {
  return registrations.find((r) => Object.keys(r.commands).some((t) => commandName(t) === name));
}

/**
 * Names every command without loading any (for `--help`, `--version`, no command or an
 * unknown one): commander lists them, suggests the nearest for a typo, and refuses the rest.
 */
export function addCommandStubs(program: Command): void {
  for (const r of registrations) {
    for (const [term, summary] of Object.entries(r.commands)) program.command(term).summary(summary);
  }
}
