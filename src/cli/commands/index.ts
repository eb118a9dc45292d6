import type { Command } from 'commander';

// Each module's commands live in their own file and register here, one entry each.
// Loaded lazily: `airlock run` should not pay for importing review's parsers or the
// OpenTelemetry exporter. `commands` lists the top-level names a file defines.
export type Register = (program: Command) => void;

export interface Registration { commands: string[]; load: () => Promise<Register> }

export const registrations: Registration[] = [
  { commands: ['init', 'policy'], load: async () => (await import('./policy.ts')).registerPolicy },
  { commands: ['run', 'session', 'exec', 'sessions'], load: async () => (await import('./session.ts')).registerSession },
  { commands: ['secrets'], load: async () => (await import('./secrets.ts')).registerSecrets },
  { commands: ['approvals'], load: async () => (await import('./approvals.ts')).registerApprovals },
  { commands: ['egress'], load: async () => (await import('./egress.ts')).registerEgress },
  { commands: ['propose', 'review'], load: async () => (await import('./review.ts')).registerReview },
  { commands: ['audit', 'sinks'], load: async () => (await import('./audit.ts')).registerAudit },
  { commands: ['agents'], load: async () => (await import('./agents.ts')).registerAgents },
  { commands: ['verify-change', 'provenance'], load: async () => (await import('./provenance.ts')).registerProvenance },
  { commands: ['db'], load: async () => (await import('./shared.ts')).registerDb },
  { commands: ['mcp'], load: async () => (await import('./mcp.ts')).registerMcp },
];
