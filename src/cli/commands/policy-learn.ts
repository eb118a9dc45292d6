import type { Command } from 'commander';
import { AirlockError, escapeForTerminal as esc } from '../../common/index.ts';
import { readPolicyFile } from '../../policy/index.ts';
import { newSessionId, orgPolicyPath, REPO_POLICY_FILE } from '../../session/index.ts';
import { openHostRepo, readAtCommit, resolveCommit } from '../../workspace/index.ts';
import { proposeAuthoredChange } from '../../review/index.ts';
import { learnPolicy, recordedDecisions, type LearnResult } from '../../policy-replay/index.ts';
import { openStore } from '../store.ts';
import { printJson, ok, dim, warn } from '../output.ts';
import type { AuditStore } from '../../audit/index.ts';

// `airlock policy learn SESSION…`: the narrowest airlock.yaml that would have allowed what
// the sessions did, within the org policy, proposed as a change that goes through review.

function sessionRepo(store: AuditStore, sessions: string[]): string {
  const repos = new Set<string>();
  for (const s of sessions) {
    const start = store.query({ session: s, type: 'session.start' })[0];
    if (!start) throw new AirlockError('NOT_FOUND', `unknown session: ${s}`, 'list sessions with `airlock sessions`');
    if (typeof start.data.repo === 'string') repos.add(start.data.repo);
  }
  if (repos.size !== 1)
    throw new AirlockError(
      'USAGE',
      `the sessions ran on ${repos.size} repositories`,
      'learn from sessions of one repository, or pass --repo',
    );
  return [...repos][0]!;
}

function message(r: LearnResult, sessions: string[]): string {
  return [
    `airlock.yaml: policy learned from ${sessions.join(', ')}`,
    '',
    `Hosts: ${r.hosts.join(', ') || 'none'}`,
    `Programs: ${r.programs.join(', ') || 'none'}`,
    `Packages: ${r.packages.join(', ') || 'none'}`,
    `Covered: ${r.covered} of ${r.total} recorded decisions.`,
    ...(r.leftOut.length ? ['Left out:', ...r.leftOut.slice(0, 50).map((x) => `- ${x.what}: ${x.why}`)] : []),
    '',
  ].join('\n');
}

function printLearned(r: LearnResult, proposal: number | null): void {
  process.stdout.write(
    `${ok('learned')} ${r.hosts.length} host(s), ${r.programs.length} program(s), ${r.packages.length} package(s); ${r.covered} of ${r.total} recorded decisions covered\n`,
  );
  for (const x of r.leftOut) process.stdout.write(`${warn('left out')} ${esc(x.what)}: ${esc(x.why)}\n`);
  if (proposal !== null)
    process.stdout.write(
      `${ok('proposed')} as proposal ${proposal} ${dim(`(airlock review show ${proposal}; approve it like any change)`)}\n`,
    );
  else process.stdout.write(esc(r.text, { keepNewlines: true }));
}

export function registerPolicyLearn(pol: Command): void {
  pol
    .command('learn')
    .description(
      'Propose the narrowest airlock.yaml that would have allowed what the sessions did (within the org policy), as a change for review',
    )
    .argument('<sessions...>', 'sessions to learn from (record-mode sessions show everything the agent tried)')
    .option('--repo <path>', "repository whose airlock.yaml to change (default: the sessions' repository)")
    .option('--base <ref>', 'commit the proposal starts from', 'HEAD')
    .option('--org-policy <file>', 'organisation policy (default: $AIRLOCK_ORG_POLICY or /etc/airlock/policy.yaml)')
    .option('--dry-run', 'print the learned policy; propose nothing')
    .option('--json', 'machine-readable output')
    .action(
      async (
        sessions: string[],
        options: { repo?: string; base: string; orgPolicy?: string; dryRun?: boolean; json?: boolean },
      ) => {
        const store = openStore();
        try {
          const repo = openHostRepo(options.repo ?? sessionRepo(store, sessions));
          const base = resolveCommit(repo, options.base);
          const orgPath = orgPolicyPath({ orgPolicy: options.orgPolicy });
          const org = orgPath ? [readPolicyFile(orgPath, 'org')] : [];
          const learned = learnPolicy(recordedDecisions(store, { sessions }), {
            org,
            current: readAtCommit(repo, base, REPO_POLICY_FILE),
            sessions,
          });
          let proposal: number | null = null;
          if (!options.dryRun) {
            const p = await proposeAuthoredChange(
              store,
              {
                session: newSessionId(),
                repo,
                baseCommit: base,
                baseRef: options.base,
                path: REPO_POLICY_FILE,
                content: learned.text,
                message: message(learned, sessions),
                tool: 'airlock-policy-learn',
                command: ['airlock', 'policy', 'learn', ...sessions],
                data: { learnedFrom: sessions },
              },
              { orgPolicy: orgPath ?? undefined },
            );
            proposal = p.id;
          }
          if (options.json) return printJson({ proposal, ...learned });
          printLearned(learned, proposal);
        } finally {
          store.close();
        }
      },
    );
}
