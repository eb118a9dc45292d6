import { z } from 'zod';
import { merge } from './meta.ts';
import { grantedHostPattern } from './egress.ts';

// Brokered credentials: the agent may USE a credential but never holds it. Inside the
// sandbox the named variable holds a random per-session placeholder; the egress gateway
// swaps the placeholder for the real value (read on the host only) on requests to the
// bound destinations, which it intercepts (TLS terminated with Airlock's own CA). A
// placeholder seen going anywhere else is blocked and raises a high-severity finding.

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'an environment variable name (letters, digits, _)');

export const credentialSourceSchema = z
  .union([
    z.strictObject({
      env: envName.describe(
        'Host environment variable holding the value (read by the Airlock process, never passed to the sandbox).',
      ),
    }),
    z.strictObject({
      file: z
        .string()
        .min(1)
        .describe(
          "Host file holding the value (absolute, or ~/ for the invoking user's home); surrounding whitespace is trimmed. Must not be group/world-writable.",
        ),
    }),
    z.strictObject({
      command: z
        .array(z.string().min(1))
        .min(1)
        .max(64)
        .describe(
          'Host command printing the value on stdout, e.g. ["vault", "kv", "get", "-field=token", "secret/ci"]. Run directly (no shell) with a 10 s timeout when the session starts; a failure refuses the session.',
        ),
    }),
  ])
  .describe('Where the real value comes from, on the host only.');

export const credentialDestinationSchema = z
  .strictObject({
    host: grantedHostPattern,
    port: z.number().int().min(1).max(65535).default(443).describe('Destination port (HTTPS only; default 443).'),
    paths: z
      .array(z.string().startsWith('/', 'a path starting with /'))
      .min(1)
      .optional()
      .describe(
        'Path prefixes that may receive the credential, matched on segment boundaries (/v1 covers /v1 and /v1/x, not /v1x). Default: every path.',
      ),
    methods: z
      .array(z.string().regex(/^[A-Z][A-Z0-9_-]*$/, 'an upper-case HTTP method'))
      .min(1)
      .optional()
      .describe('HTTP methods that may carry the credential. Default: every method.'),
  })
  .describe(
    'A destination allowed to receive the real value. It must also be allowed by the egress rules; it is intercepted automatically.',
  );

export const credentialInjectSchema = z
  .union([
    z.strictObject({
      header: z
        .string()
        .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'an HTTP header name')
        .describe('Header that carries the credential (e.g. Authorization, x-api-key).'),
      template: z
        .string()
        .includes('{value}', { message: 'the template must contain {value}' })
        .default('{value}')
        .describe(
          'Header value with {value} standing for the credential, e.g. "Bearer {value}". Default: the bare value.',
        ),
    }),
    z.strictObject({
      basic: z
        .strictObject({
          username: z
            .string()
            .regex(/^[^:\r\n]*$/, 'no colon or line break')
            .describe('User name; the credential is the password.'),
        })
        .describe('HTTP basic authentication (Authorization: Basic base64(username:value)).'),
    }),
    z.strictObject({
      query: z.string().min(1).max(128).describe('Query parameter that carries the credential (e.g. key).'),
    }),
  ])
  .describe(
    'How the credential is sent. The gateway sets it on every request to a bound destination and also replaces the placeholder wherever it appears in the request headers or URL.',
  );

export const brokeredCredentialSchema = z
  .strictObject({
    name: envName.describe('Environment variable the agent sees; it holds only the per-session placeholder.'),
    source: credentialSourceSchema,
    destinations: z.array(credentialDestinationSchema).min(1).max(64).describe('Where the real value may go.'),
    inject: credentialInjectSchema.default({ header: 'Authorization', template: 'Bearer {value}' }),
    description: z.string().max(500).optional().describe('What the credential is for (shown in audit events).'),
  })
  .describe('One credential the agent may use without holding it.');

export const credentialsSchema = z
  .strictObject({
    brokered: merge(
      z
        .array(brokeredCredentialSchema)
        .max(64)
        .default([])
        .describe(
          'Credentials brokered by the egress gateway. Only entries both org and repo list (identically) apply: a repo policy may drop a credential, never add one or widen its destinations. Without an org policy the repo policy decides, so define credentials in the org policy.',
        ),
      'intersect',
    ).superRefine((list, ctx) => {
      const seen = new Set<string>();
      for (const [i, c] of list.entries()) {
        if (seen.has(c.name))
          ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `credential ${c.name} is declared twice` });
        seen.add(c.name);
      }
    }),
  })
  .describe('Credentials the agent may use through the gateway without ever holding them.');

export type CredentialsPolicy = z.output<typeof credentialsSchema>;
export type BrokeredCredential = z.output<typeof brokeredCredentialSchema>;
export type CredentialDestination = z.output<typeof credentialDestinationSchema>;
