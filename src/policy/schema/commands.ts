import { z } from 'zod';
import { merge } from './meta.ts';

// Per-command decisions for `airlock exec` inside a session. Rules match the parsed
// command (after unwrapping env/sudo/nice/timeout/sh -c/absolute paths, with combined
// and long flags normalised), never the raw string. When several rules match any part
// of a pipeline or list, the strictest action wins; what cannot be parsed is denied.

export const ACTIONS_STRICTEST_FIRST = ['deny', 'ask', 'allow'] as const;
const action = z.enum(ACTIONS_STRICTEST_FIRST);

export const commandMatchSchema = z
  .strictObject({
    command: z.string().min(1).describe('Program name (basename; /bin/rm and rm are the same) or an absolute path.'),
    flags: z
      .array(z.string().regex(/^-/, 'a flag starting with -'))
      .optional()
      .describe(
        'Flags that must all be present, in any order or combination (-rf = -r -f). Alternatives with |: "-r|-R|--recursive". Well-known long forms (rm --recursive/--force, ...) are folded automatically.',
      ),
    args: z
      .array(z.string().min(1))
      .optional()
      .describe(
        'Globs (* any text, ? one character) that must each match some non-flag argument, e.g. ["push"] for git push.',
      ),
  })
  .describe('What a rule matches.');

export const commandRuleSchema = z
  .strictObject({
    id: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . -')
      .describe('Rule id, named in every decision and audit event (as commands.<id>).'),
    match: commandMatchSchema,
    action: action.describe('allow, ask (a human answers; denied on timeout) or deny.'),
    reason: z.string().optional().describe('Why the rule exists; shown when it decides.'),
  })
  .describe('One command rule.');

export const DEFAULT_COMMAND_RULES: z.input<typeof commandRuleSchema>[] = [
  {
    id: 'rm-recursive-force',
    match: { command: 'rm', flags: ['-r', '-f'] },
    action: 'ask',
    reason: 'recursive forced deletion',
  },
  {
    id: 'git-push',
    match: { command: 'git', args: ['push'] },
    action: 'deny',
    reason: 'changes leave only through review (airlock propose)',
  },
  {
    id: 'git-config-hooks',
    match: { command: 'git', args: ['config', 'core.hooksPath*'] },
    action: 'deny',
    reason: 'hooks are never configured by the agent',
  },
  {
    id: 'npm-publish',
    match: { command: 'npm', args: ['publish'] },
    action: 'deny',
    reason: 'publishing is not a session action',
  },
  { id: 'dd', match: { command: 'dd' }, action: 'ask', reason: 'raw disk writes' },
  { id: 'mkfs', match: { command: 'mkfs*' }, action: 'deny', reason: 'filesystem creation' },
];

export const commandsSchema = z
  .strictObject({
    rules: merge(
      z
        .array(commandRuleSchema)
        .default(DEFAULT_COMMAND_RULES)
        .describe('Command rules. Org and repo rules both apply; when several match, the strictest action wins.'),
      'union',
    ),
    default: merge(
      action
        .default('allow')
        .describe(
          'Action for a command no rule matches (the sandbox still contains it). The stricter of org and repo wins.',
        ),
      { stricter: ACTIONS_STRICTEST_FIRST },
    ),
    askTimeoutSeconds: merge(
      z
        .number()
        .int()
        .min(1)
        .max(86_400)
        .default(300)
        .describe('How long an "ask" waits for a human before it is denied. The shorter wins.'),
      'min',
    ),
  })
  .describe('Per-command allow/ask/deny for airlock exec.');
