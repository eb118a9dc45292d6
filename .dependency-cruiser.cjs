// The architecture, as rules the CI enforces (docs/ARCHITECTURE.md, "Modules").
// A module is a folder under src/; others reach it only through its index.ts; no cycles.
// Second public entries, kept apart from their module's index so that importing them stays
// cheap: the audit store redacts every event with the synchronous rules only (no secretlint),
// a session loads SIEM delivery only when it runs sinks, plants honeytokens without
// loading the detection engine, and the CLI reaches running sessions without the session
// core and the policy engine, and `airlock run` resolves its policy and agent profile from
// the cache without zod and yaml (issue 16: start-up); the shared store's verify workers load
// the chain hashing without the audit store and sinks (issue 18: verify).
const LIGHT_ENTRY_POINTS = [
  '^src/hosts/local\\.ts$',
  '^src/secrets/sync\\.ts$',
  '^src/audit/sinks/index\\.ts$',
  '^src/secrets/honeytokens\\.ts$',
  '^src/session/client\\.ts$',
  '^src/policy/source\\.ts$',
  '^src/agents/apply\\.ts$',
  '^src/audit/hashing\\.ts$',
];

// Dependencies point inward: common is the core; policy (the settings every layer reads)
// sits on it; nothing imports the CLI, which is the outermost shell, and only the CLI the console.
const INWARD = [
  { name: 'common-is-the-core', from: '^src/common/', to: '^src/(?!common/)[^/]+/' },
  { name: 'policy-depends-only-on-common', from: '^src/policy/', to: '^src/(?!(common|policy)/)[^/]+/' },
  {
    name: 'audit-depends-only-on-common-policy-and-redaction',
    from: '^src/audit/',
    to: '^src/(?!(common|policy|audit)/)[^/]+/',
    toNot: '^src/secrets/sync\\.ts$',
  },
  // the shared PostgreSQL store sits on the audit log alone: callers hand it what it needs
  // from other modules (the local ask queue's answer function, the session listing's SQL)
  {
    name: 'store-depends-only-on-common-policy-and-audit',
    from: '^src/store/',
    to: '^src/(?!(common|policy|audit|store)/)[^/]+/',
  },
  { name: 'nothing-depends-on-cli', from: '^src/(?!cli/)', to: '^src/cli/' },
  // The layers that produce events hand an AuditEventInput (common) to a callback; the
  // session wires that to the store. They never hold the store themselves.
  {
    name: 'event-producers-do-not-depend-on-audit',
    from: '^src/(sandbox|secrets|egress|workspace)/',
    to: '^src/audit/',
  },
  // the console is an outer shell like the CLI: only the CLI starts it
  { name: 'only-cli-depends-on-console', from: '^src/(?!(cli|console)/)', to: '^src/console/' },
];

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A cycle means two modules are one module: merge them or move the shared part inward.',
      from: { path: '^src/' },
      // A cycle of type-only imports inside a module (a host type and the plugin interface that
      // names it) costs nothing at run time and is not a layering problem; any other cycle is.
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'only-through-index',
      severity: 'error',
      comment: "Another module's internals are off limits: import its index.ts, which is its public surface.",
      from: { path: '^src/([^/]+)/' },
      to: { path: '^src/[^/]+/', pathNot: ['^src/$1/', '^src/[^/]+/index\\.ts$', ...LIGHT_ENTRY_POINTS] },
    },
    ...INWARD.map((r) => ({
      name: r.name,
      severity: 'error',
      comment: 'Dependencies point inward (docs/ARCHITECTURE.md, "Modules").',
      from: { path: r.from },
      to: { path: r.to, ...(r.toNot ? { pathNot: r.toNot } : {}) },
    })),
    {
      name: 'store-verify-worker-stays-light',
      severity: 'error',
      comment:
        "A verify worker is started on every parallel `airlock audit verify`: it loads the chain hashing (src/audit/hashing.ts), never the audit module's index (store, sinks, summaries: ~40% of its start).",
      from: { path: '^src/store/verify-worker\\.ts$' },
      to: { path: '^src/audit/index\\.ts$', reachable: true },
    },
    {
      name: 'no-test-code-in-src',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    includeOnly: '^src/',
  },
};
