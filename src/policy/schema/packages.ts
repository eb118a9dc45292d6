import { z } from 'zod';
import { merge } from './meta.ts';

// egress.packages: the package firewall. For the npm and PyPI registries the gateway
// intercepts, each package fetch (metadata and tarball/wheel/sdist) is decided by name and
// version: deny rules, the organisation's known-malicious list, typosquats of popular
// names, an optional allowlist, and a minimum release age read from the registry itself.

export const PACKAGE_ECOSYSTEMS = ['npm', 'pypi'] as const;

const host = z
  .string()
  .min(1)
  .max(255)
  .regex(/^(\*\.)?[A-Za-z0-9_.-]+$/, 'a host name (registry.npmjs.org) or *.example.com')
  .describe('Registry host name (any port), or *.example.com for its subdomains.');

export const packageRuleSchema = z
  .strictObject({
    id: z
      .string()
      .regex(/^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/, 'letters, digits, _ . -')
      .optional()
      .describe(
        'Rule id, named in every decision as egress.packages.allow.<id> (deny.<id>); without one the position is used (egress.packages.deny[0]).',
      ),
    ecosystem: z.enum(PACKAGE_ECOSYSTEMS).describe('npm or pypi.'),
    name: z
      .string()
      .min(1)
      .max(214)
      .describe(
        'Package name: exact (lodash; PyPI names compare after PEP 503 normalisation), a scope (@acme/*), or a glob with * and ? (eslint-plugin-*).',
      ),
    versions: z
      .string()
      .min(1)
      .max(256)
      .optional()
      .describe(
        'Version range the rule covers: an npm semver range (">=1.2.0 <2", "^4") or a PEP 440 specifier ("~=2.1", ">=1,!=1.3.2"). Absent: every version. A version that cannot be parsed never matches an allow rule and always matches a deny rule.',
      ),
    reason: z.string().max(500).optional().describe('Why the rule exists; shown in the denial.'),
  })
  .describe('A package (or a set of them) by name and optional version range.');

const typosquatSchema = z
  .strictObject({
    mode: merge(
      z
        .enum(['deny', 'off'])
        .default('deny')
        .describe(
          'deny: a package whose name folds to a popular name (confusable characters: rn/m, 0/o, 1/l, separators) or is one or two edits away from one is refused. deny wins.',
        ),
      { stricter: ['deny', 'off'] },
    ),
    ignore: merge(
      z
        .array(z.string().min(1).max(214))
        .default([])
        .describe(
          'Names that look like a popular one but are legitimate (exact names). Only the org policy may set this.',
        ),
      'orgOnly',
    ),
    popular: merge(
      z
        .array(z.string().min(1).max(214))
        .default([])
        .describe(
          "More popular names to protect, besides the shipped list (the most depended-upon npm and PyPI packages). Both policies' lists apply.",
        ),
      'union',
    ),
  })
  .describe('Typosquats of popular package names.');

export const packagesSchema = z
  .strictObject({
    mode: merge(
      z
        .enum(['enforce', 'off'])
        .default('enforce')
        .describe(
          "enforce: the registry hosts below are TLS-intercepted (Airlock's CA) and every package fetch is decided; denied versions disappear from metadata and their files are refused with HTTP 403 naming the rule. off: registries are plain tunnels like any other granted host. Only applies to hosts an egress rule grants. enforce wins.",
        ),
      { stricter: ['enforce', 'off'] },
    ),
    npmRegistries: merge(
      z
        .array(host)
        .default(['registry.npmjs.org', 'registry.yarnpkg.com'])
        .describe(
          "Hosts that speak the npm registry protocol (packuments at /<name>, tarballs at /<name>/-/<file>.tgz). Both policies' lists apply.",
        ),
      'union',
    ),
    pypiIndexes: merge(
      z
        .array(host)
        .default(['pypi.org'])
        .describe(
          "Hosts that serve a PyPI simple index (PEP 503 HTML or PEP 691 JSON at /simple/<project>/). Both policies' lists apply.",
        ),
      'union',
    ),
    pypiFiles: merge(
      z
        .array(host)
        .default(['files.pythonhosted.org'])
        .describe(
          "Hosts that serve PyPI distribution files (wheels, sdists, .metadata), decided by file name. Both policies' lists apply.",
        ),
      'union',
    ),
    deny: merge(
      z
        .array(packageRuleSchema)
        .default([])
        .describe("Packages refused, whatever else says. Both policies' lists apply."),
      'union',
    ),
    allow: merge(
      z
        .array(packageRuleSchema)
        .default([])
        .describe(
          'Approved packages: with unlisted: deny, the only ones allowed (still subject to deny, malicious, typosquat and release age). Only entries both policies list apply.',
        ),
      'intersect',
    ),
    unlisted: merge(
      z
        .enum(['allow', 'deny'])
        .default('allow')
        .describe(
          'What happens to a package no allow rule names: allow (subject to the other checks) or deny (an allowlist of approved dependencies). deny wins.',
        ),
      { stricter: ['deny', 'allow'] },
    ),
    minimumReleaseAgeHours: merge(
      z
        .number()
        .min(0)
        .max(24 * 3650)
        .default(0)
        .describe(
          'A version published less than this many hours ago (npm "time", PyPI "upload-time" from the registry\'s own metadata) is refused; so is a version whose publish time is unknown (the registry\'s metadata gives none). 0: no minimum. The larger wins.',
        ),
      'max',
    ),
    typosquat: typosquatSchema.prefault({}),
    malicious: merge(
      z
        .array(z.string().min(2).max(4096).startsWith('/', 'an absolute path on the host'))
        .default([])
        .describe(
          'Files of known-malicious (or otherwise banned) package versions the organisation maintains, in OSV JSON (one record, an array, or {"vulns": [...]}; ecosystems npm and PyPI; affected versions, SEMVER/ECOSYSTEM ranges, or none for every version). Read on the host when the gateway starts; an unreadable or malformed file stops the session. Only the org policy may set this (a repo policy must not name host files).',
        ),
      'orgOnly',
    ),
    maxMetadataBytes: merge(
      z
        .number()
        .int()
        .min(1024)
        .max(1024 * 1024 * 1024)
        .default(64 * 1024 * 1024)
        .describe(
          'Largest registry metadata document (packument, simple index page) the gateway reads to filter; a larger one is refused (it could not be checked). The smaller wins.',
        ),
      'min',
    ),
  })
  .describe(
    'The package firewall: npm and PyPI fetches through intercepted registries are decided by package name and version.',
  );

export type PackagesPolicy = z.output<typeof packagesSchema>;
export type PackageRule = z.output<typeof packageRuleSchema>;
