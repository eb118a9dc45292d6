import type { Command } from 'commander';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AirlockError } from '../../common/index.ts';
import {
  policyJsonSchema,
  readPolicyFile,
  resolvePolicy,
  explainPolicy,
  type PolicySource,
  INIT_TEMPLATE,
} from '../../policy/index.ts';
import { orgPolicyPath, REPO_POLICY_FILE } from '../../session/index.ts';
import { printJson, ok, dim } from '../output.ts';
import { registerPolicyReplay } from './policy-replay.ts';
import { registerPolicyLearn } from './policy-learn.ts';

function gitRoot(dir: string): string {
  let d = resolve(dir);
  for (;;) {
    if (existsSync(join(d, '.git'))) return d;
    const up = resolve(d, '..');
    if (up === d) return resolve(dir);
    d = up;
  }
}

function loadSources(file: string | undefined, org: string | undefined): PolicySource[] {
  const sources: PolicySource[] = [];
  const orgPath = orgPolicyPath({ orgPolicy: org });
  if (orgPath) sources.push(readPolicyFile(orgPath, 'org'));
  const repoFile = file ?? join(gitRoot(process.cwd()), REPO_POLICY_FILE);
  if (file || existsSync(repoFile)) sources.push(readPolicyFile(repoFile, 'repo'));
  return sources;
}

export function registerPolicy(program: Command): void {
  program
    .command('init')
    .description('Write a commented airlock.yaml with safe defaults in the repository root')
    .option('--force', 'overwrite an existing airlock.yaml')
    .action((o: { force?: boolean }) => {
      const path = join(gitRoot(process.cwd()), REPO_POLICY_FILE);
      if (existsSync(path) && !o.force)
        throw new AirlockError('BAD_STATE', `${path} already exists`, 'edit it, or pass --force to overwrite');
      writeFileSync(path, INIT_TEMPLATE);
      process.stdout.write(
        `${ok('wrote')} ${path}\n${dim("check it with `airlock policy check`; commit it so sessions use it (they read the base commit's copy)")}\n`,
      );
    });

  const pol = program
    .command('policy')
    .description('Validate, explain, replay and learn policies; export the policy schema');
  pol
    .command('check')
    .description('Validate a policy file (default: airlock.yaml of this repository) merged with the org policy')
    .argument('[file]', 'policy file')
    .option('--org-policy <file>', 'organisation policy to merge with')
    .option('--json', 'machine-readable output')
    .action((file: string | undefined, o: { orgPolicy?: string; json?: boolean }) => {
      const sources = loadSources(file, o.orgPolicy);
      const r = resolvePolicy(sources);
      if (o.json)
        return printJson({ ok: true, hash: r.hash, sources: sources.map((s) => ({ kind: s.kind, origin: s.origin })) });
      const names = sources.length
        ? sources.map((s) => `${s.origin} (${s.kind})`).join(' + ')
        : 'built-in defaults (no policy file)';
      process.stdout.write(`${ok('ok')}: ${names} is valid; policy hash ${r.hash.slice(0, 16)}\n`);
    });
  pol
    .command('explain')
    .description('Show the effective merged policy and where each value came from')
    .option('--policy <file>', 'repo policy file (default: airlock.yaml of this repository)')
    .option('--org-policy <file>', 'organisation policy')
    .option('--json', 'machine-readable output')
    .action((o: { policy?: string; orgPolicy?: string; json?: boolean }) => {
      const r = resolvePolicy(loadSources(o.policy, o.orgPolicy));
      if (o.json) return printJson({ hash: r.hash, policy: r.policy, provenance: r.provenance });
      for (const { key, value, from } of explainPolicy(r))
        process.stdout.write(`${key} = ${JSON.stringify(value)}  ${dim(`# ${from}`)}\n`);
    });
  registerPolicyReplay(pol);
  registerPolicyLearn(pol);
  pol
    .command('schema')
    .description('Print the policy JSON Schema (for editor completion: yaml-language-server)')
    .action(() => printJson(policyJsonSchema()));
}
