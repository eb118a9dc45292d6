import { z } from 'zod';
import { merge } from './meta.ts';

// Secrets: what happens to secrets found in the workspace before an agent sees it, which
// decoy credentials are planted in the sandbox, and what outbound DLP does with secrets
// in requests to intercepted hosts. The detection engine is src/secrets.

/** Files removed from the workspace snapshot outright (matched against the basename, or
 * against the path relative to the workspace when the glob contains a `/`). */
export const DEFAULT_HIDE_GLOBS: readonly string[] = [
  '.env',
  '.env.*',
  '*.env',
  '*.pem',
  '*.key',
  '*.p12',
  '*.pfx',
  '*.jks',
  '*.keystore',
  '*.kdbx',
  '*.ppk',
  'id_rsa*',
  'id_dsa*',
  'id_ecdsa*',
  'id_ed25519*',
  '.netrc',
  '_netrc',
  '.pgpass',
  '.git-credentials',
  '.htpasswd',
  'credentials.json',
  '*credentials*.json',
  'client_secret*.json',
  'service-account*.json',
  '*serviceaccount*.json',
  '**/.aws/credentials',
  '**/.docker/config.json',
  '**/.kube/config',
  '**/.config/gh/hosts.yml',
  'terraform.tfstate',
  'terraform.tfstate.*',
  '*.tfvars',
  'secrets.yml',
  'secrets.yaml',
  'secrets.json',
  'master.key',
];

export const HONEYTOKEN_KINDS = ['aws', 'npm', 'github', 'ssh', 'env'] as const;

const allowEntry = z
  .union([
    z.strictObject({
      fingerprint: z
        .string()
        .regex(/^[0-9a-f]{16,64}$/, 'a hex fingerprint as printed by `airlock secrets scan`')
        .describe(
          'Fingerprint of the allowed value (as reported by `airlock secrets scan`; a prefix of its SHA-256, at least 16 hex digits).',
        ),
      reason: z.string().min(1).describe('Why this value is not a secret (kept in the audit trail).'),
    }),
    z.strictObject({
      pattern: z
        .string()
        .min(1)
        .refine((p) => {
          try {
            new RegExp(p, 'u');
            return true;
          } catch {
            return false;
          }
        }, 'not a valid regular expression')
        .describe(
          'Regular expression (JavaScript, unicode) matched against the whole detected value; a match allows it.',
        ),
      reason: z.string().min(1).describe('Why values matching this are not secrets (kept in the audit trail).'),
    }),
  ])
  .describe('One allowed value: by fingerprint, or by a pattern over the value.');

export const secretsSchema = z
  .strictObject({
    workspace: z
      .strictObject({
        mode: merge(z.enum(['hide', 'redact', 'off']).default('redact'), {
          stricter: ['hide', 'redact', 'off'],
        }).describe(
          'What happens to a workspace file that contains a secret before the agent starts: `redact` rewrites it with each secret replaced by a marker, `hide` removes the whole file, `off` leaves it (nothing is hidden or rewritten; not recommended). Strictest of org and repo wins (hide > redact > off).',
        ),
        hide: merge(z.array(z.string().min(1)).default([...DEFAULT_HIDE_GLOBS]), 'union').describe(
          'Globs of files removed from the workspace entirely (key files, .env files, credential stores). Matched against the basename, or the workspace-relative path when the glob has a `/`. Org and repo lists are combined.',
        ),
        allowlist: merge(z.array(allowEntry).default([]), 'org').describe(
          'Values that are known not to be secrets (test fixtures, public keys); only the org policy may set this.',
        ),
        maxFileKB: merge(
          z
            .number()
            .int()
            .positive()
            .max(1024 * 1024)
            .default(10240),
          'min',
        ).describe(
          'Largest file scanned whole, in KiB. A larger file cannot be checked, so it is hidden (fail closed) unless `binaryPaths` names it. The smaller of org and repo wins.',
        ),
        binaryPaths: merge(z.array(z.string().min(1)).default([]), 'intersect').describe(
          'Globs (same matching as `hide`) of large files that stay in the workspace whatever their size, e.g. native modules or assets (`**/*.node`, `*.wasm`): instead of being hidden, their printable runs (8+ characters) are scanned as a stream, as review does for binaries, and a file with a secret is still hidden. Loosens `maxFileKB`, so a path must be named by both org and repo policy when both set it (a missing org list means the repo list).',
        ),
      })
      .prefault({})
      .describe('Scan and sanitize the workspace snapshot before the agent sees it.'),
    honeytokens: z
      .strictObject({
        enabled: merge(z.boolean().default(true), 'or').describe(
          'Plant decoy credentials (random per session) in the sandbox home; any use or attempt to send one out is a critical finding. Either org or repo may turn it on.',
        ),
        kinds: merge(z.array(z.enum(HONEYTOKEN_KINDS)).default(['aws', 'npm', 'github', 'ssh']), 'union').describe(
          'Which decoys to plant: aws (~/.aws/credentials), npm (~/.npmrc), github (~/.git-credentials and gh hosts.yml), ssh (~/.ssh/id_ed25519), env (a .env in the workspace, or in the home when there is none). Org and repo lists are combined.',
        ),
      })
      .prefault({})
      .describe('Decoy credentials planted inside the sandbox.'),
    dlp: z
      .strictObject({
        mode: merge(z.enum(['block', 'redact', 'off']).default('redact'), {
          stricter: ['block', 'redact', 'off'],
        }).describe(
          'Secrets found in requests to intercepted hosts (model APIs): `redact` replaces them in flight, `block` refuses the request, `off` only records. Strictest of org and repo wins (block > redact > off).',
        ),
      })
      .prefault({})
      .describe('Outbound data-loss prevention on intercepted hosts.'),
  })
  .describe('Secret detection: workspace sanitization, honeytokens and outbound DLP.');

export type SecretsPolicy = z.output<typeof secretsSchema>;
export type SecretsAllowEntry = z.output<typeof allowEntry>;
