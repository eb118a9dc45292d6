import { z } from 'zod';
import { merge } from './meta.ts';

// Agent profiles: what an agent (Codex CLI, Claude Code, Aider, a company's own) needs to
// run unmodified inside the sandbox, as data. Built-in profiles live in
// src/agents/profiles.yaml and use this same schema; a policy adds profiles or overrides
// fields of a built-in one (a profile with a built-in's name, or `extends`, starts from it).
// Every field is optional here because a policy profile may be a partial override; the
// resolved profile is checked when it is used (src/agents/profiles.ts).

export const PROFILE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const profileName = z
  .string()
  .regex(PROFILE_NAME, 'lower-case letters, digits, _ and -, starting with a letter or digit');
const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name');
const absPath = z
  .string()
  .startsWith('/', 'an absolute host path')
  .refine((p) => !p.split('/').includes('..'), 'no ".." segments');
const host = z
  .string()
  .min(1)
  .max(255)
  .regex(/^(\*\.)?[A-Za-z0-9.-]+$/, 'a host name (example.com) or *.example.com');

export const agentExecutableSchema = z
  .strictObject({
    package: z
      .string()
      .regex(/^(@[a-z0-9][a-z0-9._-]*\/)?[a-z0-9][a-z0-9._-]*$/, 'an npm package name')
      .optional()
      .describe(
        "npm package that provides the agent (e.g. @openai/codex), resolved from Airlock's own installation. Its directory and its installed dependencies (platform binaries included) are mounted read-only at the same paths.",
      ),
    bin: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/)
      .optional()
      .describe('Name of the executable in the package\'s "bin" map (default: the package\'s only, or first, bin).'),
    path: absPath
      .optional()
      .describe(
        'Absolute host path of the agent executable instead of a package (a user install). Its directory is mounted read-only.',
      ),
  })
  .describe(
    'Where the agent program comes from. Give package (+ bin) or path; a profile with neither runs the command as given (generic).',
  );

export const agentFileSchema = z
  .strictObject({
    path: z
      .string()
      .min(1)
      .max(512)
      .refine(
        (p) => !p.startsWith('/') && !p.split('/').includes('..'),
        'a path relative to the sandbox home, without ".."',
      )
      .describe('Path relative to the sandbox HOME (/home/agent) where the file is written before the agent starts.'),
    content: z
      .string()
      .max(256 * 1024)
      .describe('File content. Templates: {{baseUrl}}, {{keyEnv}}, {{model}}, {{home}}.'),
    mode: z.number().int().min(0).max(0o777).optional().describe('File mode (default 0600).'),
  })
  .describe('A private configuration file written into the sandbox home (never into the workspace or the host).');

export const agentArgsSchema = z
  .strictObject({
    template: z
      .array(z.string())
      .optional()
      .describe(
        'The agent\'s argv after the executable, for non-interactive use without a TTY. "{{args}}" stands for the user\'s arguments. A flag of the template the user already gave is not repeated.',
      ),
    strip: z
      .array(z.string())
      .optional()
      .describe(
        'Leading user arguments dropped before the template applies (e.g. "codex", "exec", "-p"), so `airlock run --agent codex -- codex exec "task"` and `-- "task"` mean the same.',
      ),
  })
  .describe("How the user's arguments become the agent's non-interactive command line.");

export const agentModelSchema = z
  .strictObject({
    baseUrl: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe(
        'Model API base URL the agent is pointed at (e.g. a company model gateway). Its host is granted at the egress gateway for this session.',
      ),
    baseUrlEnv: envName
      .optional()
      .describe(
        'Environment variable the agent reads its base URL from (e.g. ANTHROPIC_BASE_URL); set to baseUrl inside the sandbox.',
      ),
    hosts: z
      .array(host)
      .optional()
      .describe(
        'Model API hosts granted at the egress gateway for this session (recorded as grants; an org policy still bounds them). The baseUrl host is added automatically.',
      ),
    keyEnv: envName
      .optional()
      .describe(
        'Environment variable holding the API key. Inside the sandbox it holds only a per-session placeholder; the gateway broker puts the real value (read from the same host variable, or keySource) on requests to the model hosts only.',
      ),
    keySource: z
      .strictObject({
        env: envName.optional().describe('Host environment variable with the real key (default: keyEnv).'),
        file: absPath.optional().describe('Host file with the real key.'),
      })
      .optional()
      .describe('Where the broker reads the real key on the host.'),
    keyHeader: z
      .string()
      .regex(/^[A-Za-z0-9-]+: .*\{value\}.*$/, 'a header and template such as "Authorization: Bearer {value}"')
      .optional()
      .describe(
        'How the broker sends the key: "Header: template" with {value} for the key (e.g. "Authorization: Bearer {value}", "x-api-key: {value}"), as credentials.brokered inject.',
      ),
    model: z.string().max(128).optional().describe("Model name written into the agent's config (template {{model}})."),
  })
  .describe("The agent's model API: endpoint, hosts to allow, and the brokered key.");

export const agentProfileSchema = z
  .strictObject({
    extends: profileName
      .optional()
      .describe('Start from another profile (a built-in such as codex, claude or generic) and override fields.'),
    description: z.string().max(200).optional().describe('One line shown by `airlock agents`.'),
    commands: z
      .array(z.string().regex(/^[A-Za-z0-9._-]+$/))
      .optional()
      .describe(
        'Program names that mean this agent when given first after -- (they are replaced by the resolved executable).',
      ),
    executable: agentExecutableSchema.optional(),
    node: z
      .boolean()
      .optional()
      .describe(
        'Mount the Node.js runtime Airlock runs on read-only and put it first on PATH (for agents that are Node programs).',
      ),
    mounts: z
      .array(absPath)
      .optional()
      .describe(
        'Extra host paths the agent runtime needs, mounted read-only. Credential stores (~/.ssh, ~/.aws, …), /proc, /sys, /run and whole home directories are refused.',
      ),
    env: z
      .record(envName, z.string().max(4096))
      .optional()
      .describe(
        'Fixed variables inside the sandbox (templates as in files). Names that look like credentials are refused: use model.keyEnv.',
      ),
    files: z
      .array(agentFileSchema)
      .max(32)
      .optional()
      .describe('Private config files written into the sandbox home before the agent starts.'),
    args: agentArgsSchema.optional(),
    model: agentModelSchema.optional(),
    nestedSandbox: z
      .string()
      .max(300)
      .optional()
      .describe(
        "How the agent's own sandbox is switched off (Airlock is the sandbox; nesting would fail or weaken nothing). Shown by `airlock agents`.",
      ),
  })
  .describe('An agent profile.');

export const agentsSchema = z
  .strictObject({
    profiles: merge(
      z
        .record(profileName, agentProfileSchema)
        .default({})
        .describe(
          "Agent profiles added to (or overriding fields of) the built-in ones, by name. Only the org policy may define profiles when it defines any; without an org policy the repo policy's profiles apply.",
        ),
      'org',
    ),
    deny: merge(
      z
        .array(profileName)
        .default([])
        .describe('Profiles that may not be used (built-in or not). Org and repo lists both apply.'),
      'union',
    ),
  })
  .describe('Agent profiles: how `airlock run --agent NAME` sets up a real agent inside the sandbox.');

export type AgentProfileInput = z.input<typeof agentProfileSchema>;
export type AgentProfileSpec = z.output<typeof agentProfileSchema>;
