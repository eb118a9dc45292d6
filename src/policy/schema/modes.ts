import { z } from 'zod';
import { merge } from './meta.ts';

// Policy modes (issue 20), kept in a block of their own: how strictly each decision layer
// applies the policy. `enforce` decides; `shadow` decides under this policy and also records
// what a candidate policy (airlock run --shadow-policy FILE) would have decided; `record`
// lets what the policy would refuse through and records the would-be decision and rule.
// Record mode never lifts a builtin protection (special addresses, IP literals, honeytokens,
// limits, ambiguity) nor an explicit deny rule: it lifts the default deny and the asks.
// The org policy decides which modes a repo may use (modes.allowed); record needs the org
// policy file to list it, so without one it is refused.

export const POLICY_MODES = ['enforce', 'shadow', 'record'] as const;
export type PolicyMode = (typeof POLICY_MODES)[number];
/** Modes a repo may use when the org policy does not say: record needs the org's consent. */
export const DEFAULT_ALLOWED_MODES: PolicyMode[] = ['enforce', 'shadow'];
export { MODE_LAYERS, type ModeLayer } from './mode-layers.ts';

const layerMode = (what: string) =>
  merge(
    z
      .enum(POLICY_MODES)
      .default('enforce')
      .describe(
        `How ${what} decisions apply: enforce, shadow (enforce, and record what the candidate policy would decide) or record (let through what the policy would refuse, except explicit deny rules and builtin protections, and record the would-be decision). Must be one of modes.allowed. The stricter of org and repo wins (enforce, shadow, record).`,
      ),
    { stricter: POLICY_MODES },
  );

export const modesSchema = z
  .strictObject({
    egress: layerMode('egress (gateway)'),
    commands: layerMode('command-rule (airlock exec, MCP)'),
    packages: layerMode('package-firewall'),
    allowed: merge(
      z
        .array(z.enum(POLICY_MODES))
        .default(DEFAULT_ALLOWED_MODES)
        .describe(
          'Modes a policy may put a layer in. Only the org policy file sets it (a repo value is an error); without an org file, enforce and shadow. A repo policy asking for a mode not listed here is refused, naming the file, line and key.',
        ),
      'org',
    ),
  })
  .describe('Policy modes per decision layer: enforce, shadow or record (issue 20).');

export type ModesPolicy = z.output<typeof modesSchema>;
