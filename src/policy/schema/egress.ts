import { z } from 'zod';
import { parse as parseDomain } from 'tldts';
import { merge } from './meta.ts';
import { packagesSchema } from './packages.ts';

// Egress: what the sandbox may reach through the gateway. Nothing is allowed unless a
// rule grants it (no policy file = no network). Deny rules beat allow rules. Special
// address ranges (loopback, private, metadata, ...) are refused for every name and IP
// unless an allowCidrs rule grants that CIDR and port explicitly.

export const EGRESS_PRESETS = ['npm', 'pypi', 'github', 'goproxy', 'crates', 'openai', 'anthropic', 'google'] as const;
export const EGRESS_SCHEMES = ['http', 'https', 'tcp'] as const;
/** Model API hosts whose request bodies get outbound DLP by default (egress.modelApis). */
export const MODEL_API_HOSTS = [
  'api.openai.com',
  'chatgpt.com',
  'api.anthropic.com',
  'generativelanguage.googleapis.com',
  'aiplatform.googleapis.com',
  'api.mistral.ai',
  'api.cohere.com',
  'api.cohere.ai',
  'api.groq.com',
  'api.deepseek.com',
  'api.together.xyz',
  'openrouter.ai',
  'api.x.ai',
  'api.perplexity.ai',
  'api.fireworks.ai',
  '*.openai.azure.com',
  '*.services.ai.azure.com',
] as const;

const ruleId = z
  .string()
  .regex(/^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/, 'letters, digits, _ . -')
  .describe(
    'Rule id, named in every decision and audit event as egress.allow.<id> (egress.deny.<id>); without one the position is used (egress.allow[2]).',
  );
export const hostPattern = z
  .string()
  .min(1)
  .max(255)
  .regex(
    /^(\*\.)?[A-Za-z0-9\u00a0-\uffff_.%-]+$/,
    'a host name (example.com) or a subdomain wildcard (*.example.com); IP addresses go in allowCidrs',
  )
  .describe(
    'Host name, matched exactly after normalisation (case, trailing dot, IDN/punycode, percent-encoding), or *.example.com for any subdomain (not example.com itself).',
  );
/**
 * A wildcard over a public suffix (`*.com`, `*.co.uk`, `*.github.io`, `*.s3.amazonaws.com`)
 * grants hosts anyone can register or publish under, so it is no grant at all. The Public
 * Suffix List (ICANN and private sections, via tldts) decides; names the list does not know
 * (`*.test`, `*.internal`) stay allowed.
 */
export function isPublicSuffixWildcard(pattern: string): boolean {
  if (!pattern.startsWith('*.')) return false;
  const parsed = parseDomain(pattern.slice(2), { allowPrivateDomains: true });
  return parsed.domain === null && (parsed.isIcann === true || parsed.isPrivate === true);
}
/** A host pattern that grants something: never a wildcard over a public suffix. */
export const grantedHostPattern = hostPattern.refine((p) => !isPublicSuffixWildcard(p), {
  message:
    'a wildcard over a public suffix grants hosts anyone can register; name the domain (*.example.com) or the exact hosts',
});
const ports = z
  .array(z.number().int().min(1).max(65535))
  .min(1)
  .describe('Destination ports this rule grants (default: 80 and 443).');
const schemes = z
  .array(z.enum(EGRESS_SCHEMES))
  .min(1)
  .describe(
    'Protocols seen by the gateway: http (plain HTTP, method and path visible), https (TLS with an SNI equal to the host), tcp (anything else inside a CONNECT/SOCKS tunnel). Default: http and https.',
  );
const methods = z
  .array(z.string().regex(/^[A-Z][A-Z0-9_-]*$/, 'an upper-case HTTP method'))
  .min(1)
  .describe(
    'HTTP methods granted. Only plain HTTP and intercepted hosts (egress.intercept) show the method: on any other https tunnel an allow rule with methods never matches and a deny rule with methods always does (fail closed).',
  );
const paths = z
  .array(z.string().startsWith('/', 'a path starting with /'))
  .min(1)
  .describe(
    'Path prefixes, matched on segment boundaries against one normal form of the request path: percent-escapes decoded, duplicate slashes collapsed, dot segments removed, matrix parameters (;x=1) cut; case per pathCase (/api grants /api and /api/x, not /apix). A doubly encoded path or a dot segment with parameters is refused as ambiguous; the upstream receives the normalised path. Plain HTTP and intercepted hosts only, like methods.',
  );

const hostRuleFields = {
  id: ruleId.optional(),
  ports: ports.optional(),
  schemes: schemes.optional(),
  methods: methods.optional(),
  paths: paths.optional(),
  pathCase: z
    .enum(['sensitive', 'insensitive'])
    .optional()
    .describe(
      'How paths compare: insensitive (/ADMIN matches /admin) or sensitive. Default: insensitive on deny rules, sensitive on allow rules, so that either way the stricter reading wins.',
    ),
  reason: z.string().optional().describe('Why the rule exists; shown when it decides.'),
};
export const egressHostRuleSchema = z
  .strictObject({ host: hostPattern, ...hostRuleFields })
  .describe('A destination by host name.');
const egressAllowRuleSchema = z
  .strictObject({ host: grantedHostPattern, ...hostRuleFields })
  .describe('A destination by host name.');

const cidr = z
  .string()
  .min(3)
  .max(64)
  .regex(/^[0-9A-Fa-f.:]+\/\d{1,3}$/, 'a CIDR such as 10.0.0.0/8 or fd00::/8')
  .describe('Address range in CIDR notation (a single address is /32 or /128).');

export const egressCidrRuleSchema = z
  .strictObject({
    id: ruleId.optional(),
    cidr,
    ports: ports.optional(),
    reason: z.string().optional().describe('Why the rule exists; shown when it decides.'),
  })
  .describe(
    'A destination by address range. The only way to reach an IP literal or a special-purpose range (loopback, private, metadata, documentation...).',
  );

export const egressLimitsSchema = z
  .strictObject({
    maxConnections: merge(
      z
        .number()
        .int()
        .min(1)
        .max(100_000)
        .default(128)
        .describe(
          'Concurrent connections (tunnels and proxied requests) per session; more are refused and recorded. The smaller wins.',
        ),
      'min',
    ),
    maxUploadBytes: merge(
      z
        .number()
        .int()
        .min(0)
        .default(256 * 1024 * 1024)
        .describe(
          'Total bytes the session may send out (request bodies and tunnel bytes up), an exfiltration tripwire. Reaching it closes the connection, refuses new ones and records a high-severity event. The smaller wins.',
        ),
      'min',
    ),
    maxNamesPerWildcard: merge(
      z
        .number()
        .int()
        .min(1)
        .max(100_000)
        .default(100)
        .describe(
          'Distinct host names one wildcard allow rule (*.example.com) may resolve per session: each new name is a DNS query the gateway sends, a channel out. Beyond it names are refused and a finding recorded. The smaller wins.',
        ),
      'min',
    ),
    requestsPerMinute: merge(
      z
        .number()
        .int()
        .min(1)
        .max(1_000_000)
        .default(1200)
        .describe(
          'Requests (HTTP requests, tunnels, SOCKS connections) per rolling minute per session; more are refused (HTTP 429) and recorded. The smaller wins.',
        ),
      'min',
    ),
  })
  .describe('Per-session limits enforced by the gateway.');

export const egressSchema = z
  .strictObject({
    presets: merge(
      z
        .array(z.enum(EGRESS_PRESETS))
        .default([])
        .describe(
          'Named destination sets (https on 443 only): npm (registry.npmjs.org, registry.yarnpkg.com), pypi, github, goproxy, crates, openai, anthropic, google. Only presets both org and repo list apply.',
        ),
      'intersect',
    ),
    allow: merge(
      z
        .array(egressAllowRuleSchema)
        .default([])
        .describe(
          'Destinations by host name. Only entries both org and repo list apply (the org list is the ceiling).',
        ),
      'intersect',
    ),
    allowCidrs: merge(
      z
        .array(egressCidrRuleSchema)
        .default([])
        .describe(
          'Destinations by address range: needed for IP literals, for names resolving into special ranges, and for the host loopback (e.g. a local dev server on 127.0.0.1/32, ports [3000]). Only entries both policies list apply.',
        ),
      'intersect',
    ),
    ask: merge(
      z
        .array(egressAllowRuleSchema)
        .default([])
        .describe(
          'Destinations by host name that no rule allows but a human may: the connection waits (up to askTimeoutSeconds) while someone answers in `airlock approvals` or the console; allowed, the destination is granted for the rest of the session; unanswered, it is denied. Only entries both org and repo list apply.',
        ),
      'intersect',
    ),
    askTimeoutSeconds: merge(
      z
        .number()
        .int()
        .min(1)
        .max(600)
        .default(60)
        .describe(
          'How long a connection to an `ask` destination waits for a human before it is denied. The smaller wins.',
        ),
      'min',
    ),
    deny: merge(
      z
        .array(egressHostRuleSchema)
        .default([])
        .describe(
          "Destinations by host name that are refused even when an allow rule or preset matches. Both policies' lists apply.",
        ),
      'union',
    ),
    denyCidrs: merge(
      z
        .array(egressCidrRuleSchema)
        .default([])
        .describe("Address ranges refused even when an allow rule matches the name. Both policies' lists apply."),
      'union',
    ),
    limits: egressLimitsSchema.prefault({}),
    packages: packagesSchema.prefault({}),
    intercept: merge(
      z
        .array(grantedHostPattern)
        .default([])
        .describe(
          "Hosts whose TLS the gateway terminates (with Airlock's own CA, which the sandbox is made to trust) so that every HTTP request inside is decided on its own: method and path rules of allow/deny entries, credential brokering, outbound DLP. Hosts bound to a brokered credential (credentials.brokered[].destinations) and, unless secrets.dlp.mode is off, the modelApis hosts are intercepted too. Every other host stays an end-to-end TLS tunnel. Both policies' lists apply.",
        ),
      'union',
    ),
    modelApis: merge(
      z
        .array(hostPattern)
        .default([...MODEL_API_HOSTS])
        .describe(
          "Model API hosts (OpenAI, Anthropic, Google, ...): requests to them are intercepted and their bodies scanned for secrets per secrets.dlp.mode (redact in flight, block, or only record). Both policies' lists apply.",
        ),
      'union',
    ),
    transparent: merge(
      z
        .enum(['auto', 'off'])
        .default('auto')
        .describe(
          'auto: where Airlock can program the sandbox network namespace, TCP to ports 80, 443 and every port an allow rule grants from programs that ignore proxy settings is redirected to the gateway and decided from the Host header or TLS SNI by the same rules. off: only proxy-aware programs get network. off wins.',
        ),
      { stricter: ['off', 'auto'] },
    ),
  })
  .describe('Egress: what the sandbox may reach through the gateway. Nothing is allowed unless a rule grants it.');

export type EgressPolicy = z.output<typeof egressSchema>;
export type EgressHostRule = z.output<typeof egressHostRuleSchema>;
export type EgressCidrRule = z.output<typeof egressCidrRuleSchema>;
