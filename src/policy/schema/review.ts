import { z } from 'zod';
import { merge } from './meta.ts';

// Governed changes: which checks run on a proposal's diff, what blocks approval, who may
// approve or override, and where an approved change goes. Merge rules keep the org
// policy the ceiling: a repo policy can add checks, protected paths and approvers, never
// switch a check off or lower a severity the org set.

export const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'] as const;
/** Strictest first, for enum merges where a higher severity is the stricter setting. */
const SEVERITY_STRICTER = ['critical', 'high', 'medium', 'low', 'info'] as const;
const severity = z.enum(SEVERITIES);

const checkSchema = (what: string) =>
  z
    .strictObject({
      enabled: merge(
        z.boolean().default(true).describe(`Run the ${what} check. A check switched on by either policy runs.`),
        'or',
      ),
      severity: merge(
        severity
          .optional()
          .describe(
            `Force every ${what} finding to this severity (unset: each finding keeps its built-in severity). The higher of org and repo wins.`,
          ),
        { stricter: SEVERITY_STRICTER },
      ),
      paths: merge(
        z
          .array(z.string().min(1))
          .default(['**'])
          .describe(`Globs of files the ${what} check looks at. Both policies' globs apply.`),
        'union',
      ),
      ignorePaths: merge(
        z
          .array(z.string().min(1))
          .default([])
          .describe(`Globs of files the ${what} check skips. Only globs both policies list are skipped.`),
        'intersect',
      ),
    })
    .describe(`The ${what} check.`);

export const checksSchema = z
  .strictObject({
    secrets: checkSchema('secrets (credentials added by the diff)').prefault({}),
    injection: checkSchema('injection (SQL/shell built from variables, via tree-sitter)').prefault({}),
    dependencies: checkSchema('dependency changes').prefault({}),
    protectedPaths: checkSchema('protected paths').prefault({}),
    unicode: checkSchema('Trojan Source (bidi, invisible and confusable Unicode)').prefault({}),
    size: checkSchema('size (binary files, large files, large diffs)').prefault({}),
  })
  .describe('Checks run on every proposal. Each finding has a check id, a severity and file:line.');

export const DEFAULT_PROTECTED_PATHS = [
  '.github/**',
  '.gitlab-ci.yml',
  '.gitlab/**',
  '.circleci/**',
  '.travis.yml',
  'azure-pipelines.yml',
  'Jenkinsfile',
  '.buildkite/**',
  '.drone.yml',
  'bitbucket-pipelines.yml',
  'CODEOWNERS',
  '**/CODEOWNERS',
  'airlock.yaml',
  '**/airlock.yaml',
  '.airlock/**',
  '.gitattributes',
  '**/.gitattributes',
  '.gitmodules',
  '.githooks/**',
  '.husky/**',
  '.pre-commit-config.yaml',
  '.npmrc',
  '**/.npmrc',
  '.yarnrc',
  '.yarnrc.yml',
  'pip.conf',
  '.pypirc',
  '.cargo/config',
  '.cargo/config.toml',
  'Makefile',
  '**/Makefile',
  'GNUmakefile',
  '*.mk',
  'CMakeLists.txt',
  'build.gradle',
  'build.gradle.kts',
  'gradlew',
  'pom.xml',
  'build.rs',
  'setup.py',
  'setup.cfg',
  'Dockerfile',
  '**/Dockerfile',
  'docker-compose*.yml',
  '.vscode/**',
  '.idea/**',
  '.devcontainer/**',
  '.envrc',
  '.editorconfig',
];

export const limitsSchema = z
  .strictObject({
    maxFileBytes: merge(
      z
        .number()
        .int()
        .min(1)
        .default(1024 * 1024)
        .describe('A changed file larger than this (bytes, new version) is a finding.'),
      'min',
    ),
    maxDiffLines: merge(
      z
        .number()
        .int()
        .min(1)
        .default(20_000)
        .describe('A proposal adding+removing more lines than this is too large to review (finding).'),
      'min',
    ),
    maxFiles: merge(
      z
        .number()
        .int()
        .min(1)
        .default(1000)
        .describe('A proposal touching more files than this is too large to review (finding).'),
      'min',
    ),
    allowBinary: merge(
      z.boolean().default(false).describe('When false, every added or changed binary file is a finding.'),
      'and',
    ),
  })
  .describe('Size limits for what a human can review.');

export const dependenciesSchema = z
  .strictObject({
    denylist: merge(
      z
        .array(z.string().min(1))
        .default([
          'event-stream@3.3.6',
          'flatmap-stream',
          'crossenv',
          'cross-env.js',
          'ua-parser-js@0.7.29',
          'colourama',
          'python3-dateutil',
          'jeIlyfish',
        ])
        .describe("Packages that must never be added (name, or name@version). Both policies' lists apply."),
      'union',
    ),
    popular: merge(
      z
        .array(z.string().min(1))
        .default([])
        .describe(
          'Extra well-known package names (on top of the built-in list) that new names are compared with for typosquats.',
        ),
      'union',
    ),
    typosquatDistance: merge(
      z
        .number()
        .int()
        .min(0)
        .max(3)
        .default(2)
        .describe(
          'Largest edit distance (Damerau-Levenshtein, after confusable folding) at which a new name counts as a typosquat of a popular one; 0 switches the distance test off. The larger wins.',
        ),
      'max',
    ),
    allowedRegistries: merge(
      z
        .array(z.string().min(1))
        .default([
          'registry.npmjs.org',
          'registry.yarnpkg.com',
          'pypi.org',
          'files.pythonhosted.org',
          'proxy.golang.org',
          'crates.io',
          'index.crates.io',
          'static.crates.io',
        ])
        .describe(
          'Registry hosts a lockfile or manifest may resolve packages from; any other is a finding. Only hosts both policies allow.',
        ),
      'intersect',
    ),
  })
  .describe('Dependency check settings.');

export const approvalRuleSchema = z.strictObject({
  required: merge(
    z
      .number()
      .int()
      .min(1)
      .max(10)
      .default(2)
      .describe('Approvals needed when this escalation applies. The larger wins.'),
    'max',
  ),
  group: merge(
    z
      .string()
      .default('')
      .describe('When set, at least one approver must be a member of this group (see approvals.groups).'),
    'org',
  ),
});

export const approvalsSchema = z
  .strictObject({
    required: merge(
      z.number().int().min(1).max(10).default(1).describe('Distinct approvals every proposal needs. The larger wins.'),
      'max',
    ),
    groups: merge(
      z
        .record(z.string().min(1), z.array(z.string().min(1)))
        .default({})
        .describe(
          'Named groups of reviewer identities (as recorded: e-mail or user name, compared case-insensitively). Only the org policy may define groups.',
        ),
      'orgOnly',
    ),
    separationOfDuties: merge(
      z
        .boolean()
        .default(true)
        .describe(
          'The identity that started the agent cannot be the only approver (an unknown starter then needs two approvers).',
        ),
      'or',
    ),
    escalateOn: merge(
      z
        .enum(SEVERITIES)
        .default('high')
        .describe('Findings at or above this severity trigger the escalated approval rule. The lower threshold wins.'),
      { stricter: SEVERITIES },
    ),
    escalateOnProtectedPaths: merge(
      z.boolean().default(true).describe('Changes to protected paths trigger the escalated approval rule.'),
      'or',
    ),
    escalated: approvalRuleSchema
      .prefault({})
      .describe('Approval rule for proposals with high findings or protected paths.'),
  })
  .describe('Who must approve a proposal.');

export const applySchema = z
  .strictObject({
    remote: merge(
      z
        .string()
        .min(1)
        .default('origin')
        .describe('Remote name in the host repository, or a URL, the approved branch is pushed to.'),
      'org',
    ),
    branchTemplate: merge(
      z
        .string()
        .min(1)
        .default('airlock/<session>')
        .describe('Branch name for an approved proposal; <session>, <proposal> and <hash> are replaced.'),
      'org',
    ),
    protectedBranches: merge(
      z
        .array(z.string().min(1))
        .default([
          'main',
          'master',
          'trunk',
          'develop',
          'release/**',
          'releases/**',
          'production',
          'prod',
          'stable',
          'gh-pages',
        ])
        .describe(
          "Branch globs Airlock never pushes to (the remote's default branch is always refused too). Both lists apply.",
        ),
      'union',
    ),
    baseBranch: merge(
      z
        .string()
        .default('')
        .describe(
          "Target branch of the pull request; empty: the session's base ref when it is a branch, else the remote's default branch.",
        ),
      'org',
    ),
    provider: merge(
      z
        .enum(['none', 'github', 'gitlab', 'gitea'])
        .default('none')
        .describe('Where to open the pull/merge request after the push; none pushes the branch only.'),
      'org',
    ),
    apiUrl: merge(
      z
        .string()
        .default('')
        .describe(
          'Provider API base URL (empty: https://api.github.com for GitHub; required for GitLab and Gitea/Forgejo).',
        ),
      'org',
    ),
    repository: merge(
      z
        .string()
        .default('')
        .describe('owner/name (GitLab: the project path) on the provider; empty: derived from the remote URL.'),
      'org',
    ),
    tokenEnv: merge(
      z
        .string()
        .default('')
        .describe(
          'Host environment variable holding the provider token. Read on the host when applying; never enters a sandbox.',
        ),
      'org',
    ),
    tokenFile: merge(
      z.string().default('').describe('Host file holding the provider token (used when tokenEnv is empty or unset).'),
      'org',
    ),
    onApproval: merge(
      z.boolean().default(false).describe('Apply (push + open the request) as soon as the approvals are complete.'),
      'and',
    ),
    draft: merge(
      z.boolean().default(true).describe('Open the pull request as a draft where the provider supports it.'),
      'or',
    ),
  })
  .describe('Where and how an approved proposal is applied.');

export const reviewSchema = z
  .strictObject({
    checks: checksSchema.prefault({}),
    protectedPaths: merge(
      z
        .array(z.string().min(1))
        .default(DEFAULT_PROTECTED_PATHS)
        .describe(
          "Globs of files whose change is a protected-path finding and escalates approval. Both policies' lists apply.",
        ),
      'union',
    ),
    blockAt: merge(
      z
        .enum(SEVERITIES)
        .default('high')
        .describe('Findings at or above this severity block approval unless overridden. The lower threshold wins.'),
      { stricter: SEVERITIES },
    ),
    overrideRoles: merge(
      z
        .array(z.string().min(1))
        .default([])
        .describe(
          'Groups (approvals.groups) whose members may approve despite blocking findings, with a recorded reason. Empty: nobody can. Only the org policy sets it.',
        ),
      'orgOnly',
    ),
    limits: limitsSchema.prefault({}),
    dependencies: dependenciesSchema.prefault({}),
    approvals: approvalsSchema.prefault({}),
    apply: applySchema.prefault({}),
  })
  .describe(
    'Governed changes: checks on the diff, approvals, and applying approved changes as a branch and pull request.',
  );
