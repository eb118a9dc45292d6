// The decision layers a policy mode applies to (modes.egress, …), apart from the zod schema:
// a session's start reads them without loading the policy engine (issue 16).
export const MODE_LAYERS = ['egress', 'commands', 'packages'] as const;
export type ModeLayer = (typeof MODE_LAYERS)[number];
