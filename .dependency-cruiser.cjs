// The architecture, as rules the CI enforces (docs/ARCHITECTURE.md, "Modules").
// A module is a folder under src/; others reach it only through its index.ts; no cycles.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A cycle means two modules are one module: merge them or move the shared part inward.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'only-through-index',
      severity: 'error',
      comment: "Another module's internals are off limits: import its index.ts, which is its public surface.",
      from: { path: '^src/([^/]+)/' },
      to: { path: '^src/[^/]+/', pathNot: ['^src/$1/', '^src/[^/]+/index\\.ts$'] },
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
