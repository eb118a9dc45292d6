import type { Command } from 'commander';
import { escapeForTerminal as esc } from '../../common/index.ts';
import { readPolicyFile, resolvePolicy, type PolicySource } from '../../policy/index.ts';
import { orgPolicyPath } from '../../session/index.ts';
import {
  recordedDecisions,
  replayDecisions,
  replaySentences,
  sinceTime,
  type ReplayChange,
  type ReplayReport,
} from '../../policy-replay/index.ts';
import { openStore } from '../store.ts';
import { printJson, ok, bad, dim } from '../output.ts';

// `airlock policy replay`: every recorded decision in scope decided again under another
// policy (merged with the same org policy), reported as newly allowed / newly denied.

export function candidateSources(file: string, org: string | undefined): PolicySource[] {
  const orgPath = orgPolicyPath({ orgPolicy: org });
  return [...(orgPath ? [readPolicyFile(orgPath, 'org')] : []), readPolicyFile(file, 'repo')];
}

function line(c: ReplayChange): string {
  const mark = c.after.action === 'allow' ? ok('+ allow') : bad(`- ${c.after.action} `);
  return `${mark} #${c.seq} ${c.ts} ${c.session ?? '-'} ${c.layer} ${esc(c.what)}  ${dim(`${c.before.action} by ${c.before.rule} → ${c.after.rule}`)}\n`;
}

function printReport(r: ReplayReport, period: string): void {
  process.stdout.write(
    `replayed ${r.replayed} of ${r.decisions} recorded decisions ${esc(period)}: ${r.newlyAllowed.length} newly allowed, ${r.newlyDenied.length} newly denied, ${r.otherChanges.length} other changes, ${r.unchanged} unchanged\n`,
  );
  for (const s of replaySentences(r, period)) process.stdout.write(`  ${esc(s)}\n`);
  for (const c of [...r.newlyAllowed, ...r.newlyDenied, ...r.otherChanges]) process.stdout.write(line(c));
}

export function registerPolicyReplay(pol: Command): void {
  pol
    .command('replay')
    .description(
      'Decide every recorded egress request and command again under another policy; report what it would newly allow or deny',
    )
    .argument('[sessions...]', 'sessions to replay (default: every session, or those in --since)')
    .requiredOption('--policy <file>', 'the policy to replay under (a repo airlock.yaml; merged with the org policy)')
    .option('--since <duration>', 'only events this recent: 30d, 12h, 2w')
    .option('--org-policy <file>', 'organisation policy (default: $AIRLOCK_ORG_POLICY or /etc/airlock/policy.yaml)')
    .option('--json', 'machine-readable output')
    .action((sessions: string[], o: { policy: string; since?: string; orgPolicy?: string; json?: boolean }) => {
      const loaded = resolvePolicy(candidateSources(o.policy, o.orgPolicy));
      const since = o.since ? sinceTime(o.since) : undefined;
      const store = openStore();
      try {
        const r = replayDecisions(recordedDecisions(store, { sessions, since }), loaded.policy);
        const period = o.since
          ? `in the last ${o.since}`
          : sessions.length
            ? `in ${sessions.length === 1 ? 'session' : 'sessions'} ${sessions.join(', ')}`
            : 'in the whole log';
        if (o.json)
          return printJson({
            policy: o.policy,
            policyHash: loaded.hash,
            since: since ?? null,
            sessions,
            ...r,
            summary: replaySentences(r, period),
          });
        printReport(r, period);
      } finally {
        store.close();
      }
    });
}
