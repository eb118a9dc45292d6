import type { Command } from 'commander';
import { resolve } from 'node:path';
import { allProfiles, type AgentProfile } from '../../agents/index.ts';
import { sessionPolicy } from '../../session/index.ts';
import { openHostRepo, resolveCommit } from '../../workspace/index.ts';
import { dim, printJson, table } from '../output.ts';

function summary(p: AgentProfile) {
  return {
    name: p.name,
    source: p.source,
    description: p.description ?? '',
    executable: p.executable?.package
      ? `npm:${p.executable.package}${p.executable.bin ? ` (${p.executable.bin})` : ''}`
      : (p.executable?.path ?? null),
    node: p.node ?? false,
    modelBaseUrl: p.model?.baseUrl ?? null,
    modelHosts: [...new Set([...(p.model?.baseUrl ? [new URL(p.model.baseUrl).host] : []), ...(p.model?.hosts ?? [])])],
    keyEnv: p.model?.keyEnv ?? null,
    files: (p.files ?? []).map((f) => `~/${f.path}`),
    env: Object.keys(p.env ?? {}),
    args: p.args?.template ?? null,
    nestedSandbox: p.nestedSandbox ?? null,
  };
}

export function registerAgents(program: Command): void {
  program
    .command('agents')
    .description('List agent profiles (built-in and from the policy) usable with `airlock run --agent NAME`')
    .option(
      '--repo <path>',
      'repository whose airlock.yaml (at HEAD) may add profiles (default: current directory, if a repo)',
    )
    .option('--policy <file>', "repo policy file instead of the repo's airlock.yaml")
    .option('--org-policy <file>', 'organisation policy')
    .option('--json', 'machine-readable output')
    .action(async (o: { repo?: string; policy?: string; orgPolicy?: string; json?: boolean }) => {
      let repo = null;
      let base = null;
      try {
        repo = openHostRepo(resolve(o.repo ?? process.cwd()));
        base = resolveCommit(repo, 'HEAD');
      } catch (e) {
        if (o.repo) throw e;
      }
      const loaded = await sessionPolicy(repo, base, { policyFile: o.policy, orgPolicy: o.orgPolicy });
      const profiles = Object.values(allProfiles(loaded.policy)).map((p) => ({
        ...summary(p),
        denied: loaded.policy.agents.deny.includes(p.name),
      }));
      if (o.json) return printJson(profiles);
      process.stdout.write(
        table(
          profiles.map((p) => [
            p.name + (p.denied ? ' (denied)' : ''),
            p.source,
            p.executable ?? '(command as given)',
            p.keyEnv ? `${p.keyEnv} → ${p.modelHosts.join(',') || '-'}` : '-',
            p.description,
          ]),
          ['PROFILE', 'SOURCE', 'EXECUTABLE', 'BROKERED KEY → HOSTS', 'DESCRIPTION'],
        ) + '\n',
      );
      process.stdout.write(
        dim('run one with: airlock run --agent NAME -- <agent args>   (details: airlock agents --json)') + '\n',
      );
    });
}
