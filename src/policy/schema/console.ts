import { z } from 'zod';
import { merge } from './meta.ts';

// The review and security console (`airlock console`): who may log in (OpenID Connect
// against the organisation's IdP) and which role each person gets. Only the org policy
// sets any of it: a repository must not grant itself reviewers.

const member = z
  .string()
  .min(1)
  .max(300)
  .regex(/^(group:[^\s]{1,200}|[^\s@]+@[^\s@]+)$/, 'an e-mail address, or group:NAME for an IdP group');

export const consoleSchema = z
  .strictObject({
    oidc: z
      .strictObject({
        issuer: merge(
          z
            .string()
            .default('')
            .describe(
              "OpenID Connect issuer URL of the organisation's IdP (https; http only for a loopback test IdP). Empty: no OIDC login.",
            ),
          'org',
        ),
        clientId: merge(z.string().default('').describe('Client id registered at the IdP for the console.'), 'org'),
        clientSecretEnv: merge(
          z
            .string()
            .regex(/^[A-Z_][A-Z0-9_]*$/)
            .default('AIRLOCK_CONSOLE_CLIENT_SECRET')
            .describe('Environment variable holding the client secret (never the secret itself).'),
          'org',
        ),
        scopes: merge(
          z
            .array(z.string().regex(/^[\x21-\x7e]{1,100}$/))
            .default(['openid', 'email', 'profile'])
            .describe('Scopes requested (add the one that releases the groups claim, if the IdP needs one).'),
          'org',
        ),
        groupsClaim: merge(
          z.string().default('groups').describe("ID token claim listing the person's IdP groups."),
          'org',
        ),
      })
      .prefault({})
      .describe('OpenID Connect login (authorization code flow with PKCE).'),
    roles: z
      .strictObject({
        reviewer: merge(
          z.array(member).default([]).describe('May approve, reject and apply proposals and answer asks.'),
          'org',
        ),
        auditor: merge(
          z
            .array(member)
            .default([])
            .describe('Reads everything; may pause, resume and stop a live session; never approves.'),
          'org',
        ),
        admin: merge(z.array(member).default([]).describe('Everything a reviewer and an auditor may do.'), 'org'),
      })
      .prefault({})
      .describe(
        'Console roles by e-mail or group:NAME (an IdP group from the groups claim). Nobody listed: nobody gets in.',
      ),
  })
  .describe('The review and security console: OIDC login and roles.');
