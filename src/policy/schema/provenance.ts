import { z } from 'zod';
import { merge } from './meta.ts';

// Signed provenance (issue 20): which key signs the statement of every applied change. Kept
// in a block of its own; only the organisation policy file may set it (a repo file naming a
// host key file is refused, see policy/modes.ts).

export const provenanceSchema = z
  .strictObject({
    key: merge(
      z
        .string()
        .min(2)
        .max(4096)
        .startsWith('/', 'an absolute path on the host')
        .optional()
        .describe(
          "The organisation's Ed25519 provenance signing key: a PEM file on the host that only its owner can read. Apply signs with it and `airlock provenance pubkey` prints its public half. Wins over AIRLOCK_PROVENANCE_KEY; unset: that variable, else AIRLOCK_HOME/keys/provenance-ed25519.pem. Only the org policy may set it.",
        ),
      'org',
    ),
  })
  .describe('Signed provenance of applied changes.');

export type ProvenancePolicy = z.output<typeof provenanceSchema>;
