// Lint rules the CI runs (scripts/test.sh): typescript-eslint's recommended set with the
// type checker's help where it catches real bugs (floating promises, misused promises).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import local from './scripts/lint-long-lived-names.ts';

export default tseslint.config(
  { ignores: ['node_modules/**', '.tools/**', 'build/**', 'bench/corpora/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's test()/describe()/it() return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      'no-empty': ['error', { allowEmptyCatch: true }],
      // Matching control characters is the point of terminal escaping and hostile-input checks.
      'no-control-regex': 'off',
    },
  },
  {
    // Long functions are split into named steps (#14): 100 lines at most (blank lines and
    // comments not counted). Never raise the limit.
    files: ['src/**/*.ts'],
    rules: { 'max-lines-per-function': ['error', { max: 100, skipBlankLines: true, skipComments: true, IIFEs: true }] },
  },
  {
    // A one-letter name read more than 25 lines after it was bound is a name the reader must
    // scroll back for (scripts/lint-long-lived-names.ts).
    files: ['src/**/*.ts'],
    plugins: { local },
    rules: { 'local/long-lived-names': ['error', { maxLines: 25 }] },
  },
  // The console's one browser script (plain JS, served as is; no type information).
  {
    files: ['src/console/static/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      parserOptions: { projectService: false },
      sourceType: 'script',
      globals: { document: 'readonly', location: 'readonly', EventSource: 'readonly', setInterval: 'readonly' },
    },
  },
);
