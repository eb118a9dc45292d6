import { z } from 'zod';
import { sandboxSchema } from './sandbox.ts';
import { egressSchema } from './egress.ts';
import { commandsSchema } from './commands.ts';
import { reviewSchema } from './review.ts';
import { secretsSchema } from './secrets.ts';
import { credentialsSchema } from './credentials.ts';
import { telemetrySchema } from './telemetry.ts';
import { agentsSchema } from './agents.ts';
import { consoleSchema } from './console.ts';
import { modesSchema } from './modes.ts';
import { provenanceSchema } from './provenance.ts';

// The one source of truth for airlock.yaml: shape, defaults (the strictest sensible
// settings), documentation (describe) and org/repo merge rules (meta.merge).
export const policySchema = z
  .strictObject({
    version: z.literal(1).default(1).describe('Policy format version. Always 1.'),
    sandbox: sandboxSchema.prefault({}),
    egress: egressSchema.prefault({}),
    commands: commandsSchema.prefault({}),
    review: reviewSchema.prefault({}),
    secrets: secretsSchema.prefault({}),
    credentials: credentialsSchema.prefault({}),
    telemetry: telemetrySchema.prefault({}),
    agents: agentsSchema.prefault({}),
    console: consoleSchema.prefault({}),
    modes: modesSchema.prefault({}),
    provenance: provenanceSchema.prefault({}),
  })
  .describe('Airlock policy (airlock.yaml).');

export type Policy = z.output<typeof policySchema>;
export type PolicyInput = z.input<typeof policySchema>;

export function policyJsonSchema(): Record<string, unknown> {
  const s = z.toJSONSchema(policySchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return { ...s, $id: 'https://airlock.dev/schema/policy-v1.json', title: 'Airlock policy' };
}
