import type { Command } from 'commander';
import { spawnSync } from 'node:child_process';
import { AirlockError, ExitCode, escapeForTerminal } from '../../common/index.ts';
import type { AuditStore } from '../../audit/index.ts';
import {
  createProposal,
  proposalStatus,
  approveProposal,
  rejectProposal,
  applyProposal,
  requireProposal,
  toSarif,
  loadChange,
  diffSections,
  decisionsFor,
  readAgentCommits,
  commitsJson,
  type Proposal,
  type Finding,
  type ProposalStatus,
} from '../../review/index.ts';
import { bad, bold, dim, ok, otherHostsNotShown, paint, printJson, progress, table, warn, setExit } from '../output.ts';
import { SIGNED_NOTE, parseId } from './approvals.ts';
import { openOrCreateStore } from '../store.ts';

// airlock propose SESSION; airlock review list|show|approve|reject|apply. Output shows
// agent-written text with control, bidi and invisible characters made visible, so the
// diff a reviewer reads is the diff that would be applied.

function withStore<T>(fn: (s: AuditStore) => T | Promise<T>): Promise<T> {
  const s = openOrCreateStore();
  return Promise.resolve()
    .then(() => fn(s))
    .finally(() => s.close());
}

/** Makes terminal-unsafe and invisible characters visible (never emits them raw). */
export const visible = (s: string): string => escapeForTerminal(s);

function sevColour(sev: Finding['severity'], t: string): string {
  return sev === 'critical' || sev === 'high' ? bad(t) : sev === 'medium' ? warn(t) : dim(t);
}

function stateText(st: ProposalStatus): string {
  switch (st.state) {
    case 'approved':
      return ok('approved');
    case 'applied':
      return ok(`applied → ${st.applied?.branch}`);
    case 'rejected':
      return bad('rejected');
    case 'superseded':
      return dim('superseded');
    default:
      return warn('pending');
  }
}

function summary(p: Proposal): string {
  const by: Record<string, number> = {};
  for (const f of p.findings) by[f.severity] = (by[f.severity] ?? 0) + 1;
  const blocking = p.findings.filter((f) => f.blocking).length;
  const parts = ['critical', 'high', 'medium', 'low', 'info'].filter((s) => by[s]).map((s) => `${by[s]} ${s}`);
  return (parts.join(', ') || 'no findings') + (blocking ? ` (${blocking} blocking)` : '');
}

function jsonOf(p: Proposal, st: ProposalStatus): Record<string, unknown> {
  return {
    id: p.id,
    session: p.session,
    hash: p.hash,
    created: p.created,
    state: st.state,
    base: p.base,
    head: p.head,
    commits: p.commits,
    stats: p.stats,
    startedBy: p.startedBy,
    approvers: st.approvers,
    required: st.required,
    escalated: st.escalated,
    missing: st.missing,
    rejected: st.rejectedBy,
    applied: st.applied,
    lastApplyError: st.lastApplyError,
    findings: p.findings,
  };
}

function findingLine(f: Finding): string {
  return sevColour(f.severity, `  ▲ [${f.severity}${f.blocking ? ', blocking' : ''}] ${f.rule}: ${visible(f.message)}`);
}

function renderShow(proposal: Proposal, st: ProposalStatus): string {
  const out: string[] = [];
  out.push(bold(`proposal ${proposal.id}`) + `  session ${proposal.session}  ${stateText(st)}`);
  out.push(
    dim(
      `hash sha256:${proposal.hash}  base ${proposal.base.slice(0, 12)}  head ${proposal.head.slice(0, 12)}  ${proposal.stats.commits} commits, ${proposal.stats.files} files, +${proposal.stats.added}/-${proposal.stats.deleted}`,
    ),
  );
  if (proposal.startedBy) out.push(dim(`agent started by ${visible(proposal.startedBy)}`));
  out.push(`checks: ${summary(proposal)}`);
  out.push(
    `approvals: ${st.approvers.length ? visible(st.approvers.join(', ')) : 'none'} (${st.required} required${st.escalated ? ', escalated' : ''}${st.group ? `, one from group ${st.group}` : ''})`,
  );
  for (const m of st.missing) if (st.state === 'pending') out.push(warn(`  needs ${m}`));
  if (st.rejectedBy) out.push(bad(`rejected by ${visible(st.rejectedBy.by)}: ${visible(st.rejectedBy.reason)}`));
  if (st.lastApplyError) out.push(bad(`last apply failed: ${visible(st.lastApplyError)}`));
  const global = proposal.findings.filter((f) => !f.file);
  for (const f of global) out.push(findingLine(f));
  out.push(
    '',
    bold(
      `agent commits (${proposal.commits.length}; not pushed: apply pushes one commit Airlock builds from the reviewed tree)`,
    ),
  );
  try {
    for (const c of readAgentCommits(proposal.resultRepo, proposal.commits)) {
      out.push(
        `  ${paint('yellow', c.sha.slice(0, 12))} author ${visible(`${c.author.name} <${c.author.email}>`)}  committer ${visible(`${c.committer.name} <${c.committer.email}>`)}`,
      );
      for (const l of c.message.replace(/\s+$/, '').split('\n')) out.push(`      ${visible(l)}`);
      if (c.truncated) out.push(dim('      … (message cut at 64 KiB)'));
    }
  } catch (e) {
    out.push(bad(`cannot read the agent's commits: ${visible(e instanceof Error ? e.message : String(e))}`));
  }
  out.push('');
  let change;
  try {
    change = loadChange(proposal.resultRepo, proposal.base, proposal.head, proposal.commits);
  } catch (e) {
    out.push(bad(`cannot read the diff: ${e instanceof Error ? e.message : String(e)}`));
    return out.join('\n');
  }
  if (change.diffSha256 !== proposal.diffSha256)
    out.push(bad('WARNING: the diff no longer matches the proposal hash; it cannot be approved or applied'));
  const byFile = new Map<string, Finding[]>();
  for (const f of proposal.findings) if (f.file) byFile.set(f.file, [...(byFile.get(f.file) ?? []), f]);
  for (const { file, text } of diffSections(change.diff, change.files)) {
    const here = byFile.get(file.path) ?? [];
    out.push(bold(`── ${visible(file.path)}${file.pathHex ? ` (name bytes ${file.pathHex})` : ''} (${file.status})`));
    for (const f of here) if (f.line === 0) out.push(findingLine(f));
    let newLine = 0;
    let inHunk = false;
    for (const line of text.replace(/\n$/, '').split('\n')) {
      const h = /^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
      if (h) {
        inHunk = true;
        newLine = Number(h[1]);
        out.push(paint('cyan', visible(line)));
        continue;
      }
      if (!inHunk) {
        out.push(bold(visible(line)));
        continue;
      }
      if (line.startsWith('+')) {
        out.push(paint('green', visible(line)));
        for (const f of here) if (f.line === newLine) out.push(findingLine(f));
        newLine++;
        continue;
      }
      if (line.startsWith('-')) {
        out.push(paint('red', visible(line)));
        continue;
      }
      if (line.startsWith(' ')) newLine++;
      out.push(visible(line));
    }
  }
  return out.join('\n');
}

function page(text: string): void {
  if (process.stdout.isTTY) {
    const r = spawnSync('less', ['-R', '-F', '-X'], { input: text + '\n', stdio: ['pipe', 'inherit', 'inherit'] });
    if (!r.error && r.status === 0) return;
  }
  process.stdout.write(text + '\n');
}

/** `propose`: a finished session's result checked and recorded as a proposal. */
async function proposeCommand(
  store: AuditStore,
  session: string,
  opts: { json?: boolean; orgPolicy?: string },
  cmd: Command,
): Promise<void> {
  progress(`checking session ${session}`);
  const { proposal: p, created } = await createProposal(store, session, { orgPolicy: opts.orgPolicy });
  const st = proposalStatus(store, p);
  if (opts.json) {
    printJson({ ...jsonOf(p, st), created });
    return;
  }
  process.stdout.write(
    `${created ? 'proposal' : 'unchanged: proposal'} ${bold(String(p.id))} for session ${p.session}: ${p.stats.files} files, ${p.stats.commits} commits; checks: ${summary(p)}\n`,
  );
  process.stdout.write(dim(`review it with: airlock review show ${p.id}`) + '\n');
  if (p.findings.some((f) => f.blocking)) setExit(cmd, ExitCode.FAILURE);
}

/** `review list`: this host's proposals (and, with a shared store, every other host's) as a table or JSON. */
async function listProposals(store: AuditStore, opts: { json?: boolean; all?: boolean }): Promise<void> {
  // with a shared store (the sessions' resolution), every other host's proposals too, in one shape
  const { workView } = await import('../../hosts/index.ts');
  const view = workView(store, { onUnavailable: otherHostsNotShown });
  const rows = await view.proposals({ all: opts.all });
  if (opts.json) {
    printJson(rows.map(({ local: _, ...p }) => p));
    return;
  }
  if (!rows.length) {
    process.stdout.write(dim(opts.all ? 'no proposals' : 'no proposals waiting for review') + '\n');
    return;
  }
  const shared = view.sharedUrl !== undefined;
  const lines = rows.map((p) => [
    ...(shared ? [p.thisHost ? dim('this host') : visible(p.host)] : []),
    visible(p.ref),
    visible(p.session ?? ''),
    p.local ? stateText(p.local.status) : p.state,
    p.stats ? `${p.stats.files} files +${p.stats.added}/-${p.stats.deleted}` : '-',
    p.local
      ? summary(p.local.proposal)
      : p.findingCount
        ? `${p.findingCount} findings${p.blockingCount ? `, ${p.blockingCount} blocking` : ''}`
        : 'clean',
    `${p.approvers.length}${p.required === null ? '' : `/${p.required}`}`,
  ]);
  process.stdout.write(
    table(lines, [...(shared ? ['host'] : []), 'id', 'session', 'state', 'size', 'checks', 'approvals']) + '\n',
  );
}

/** `review approve`: a local proposal (applied at once when the policy says so) or another host's, queued in the shared store. */
async function approveCommand(
  store: AuditStore,
  id: string,
  opts: { as?: string; overrideReason?: string },
): Promise<void> {
  if (id.includes('@')) {
    // another host's proposal: queued in the shared store, applied by its host under its own rules
    if (opts.overrideReason !== undefined)
      throw new AirlockError(
        'USAGE',
        "an override of blocking findings is given on the proposal's own host",
        `run \`airlock review approve ${id.split('@')[0]} --override-reason …\` there`,
      );
    const { workView } = await import('../../hosts/index.ts');
    const p = await workView(store).approveRemote(id, { as: opts.as });
    process.stdout.write(
      `approved proposal ${visible(p.ref)} on ${visible(p.host)} as ${visible(p.by)} (content ${p.hash?.slice(0, 12)}); its host applies it when it next ships\n${dim(SIGNED_NOTE)}\n`,
    );
    return;
  }
  const r = approveProposal(store, parseId(id, 'proposal id'), {
    as: opts.as,
    overrideReason: opts.overrideReason,
  });
  process.stdout.write(`approved proposal ${r.proposal.id} as ${r.by}: ${stateText(r.status)}\n`);
  for (const m of r.status.missing) process.stdout.write(warn(`  still needs ${m}`) + '\n');
  if (r.status.state === 'approved' && r.proposal.policy.review.apply.onApproval) {
    const a = await applyProposal(store, r.proposal.id, { as: opts.as });
    process.stdout.write(`pushed ${a.branch} to ${a.remote}${a.url ? `; pull request: ${a.url}` : ''}\n`);
  } else if (r.status.state === 'approved') {
    process.stdout.write(dim(`apply it with: airlock review apply ${r.proposal.id}`) + '\n');
  }
}

export function registerReview(program: Command): void {
  program
    .command('propose')
    .description("Turn a finished session's captured result into a proposal: run the checks and record it for review.")
    .argument('<session>', 'session id')
    .option('--org-policy <file>', 'org policy file (default: AIRLOCK_ORG_POLICY or /etc/airlock/policy.yaml)')
    .option('--json', 'machine-readable output')
    .action((session: string, opts: { json?: boolean; orgPolicy?: string }, cmd: Command) =>
      withStore((store) => proposeCommand(store, session, opts, cmd)),
    );

  const review = program
    .command('review')
    .description('Review proposals: list, show (diff with findings), approve, reject, apply.');

  review
    .command('list')
    .description('Proposals waiting for review (with --all: every proposal).')
    .option('--json', 'machine-readable output')
    .option('--all', 'include applied, rejected and superseded proposals')
    .action((opts: { json?: boolean; all?: boolean }) => withStore((store) => listProposals(store, opts)));

  review
    .command('show')
    .description(
      'Show a proposal: status, findings and the diff with findings inline (paged and coloured on a terminal).',
    )
    .argument('<id>', 'proposal id')
    .option('--json', 'machine-readable output')
    .option('--sarif', 'the findings as SARIF 2.1.0')
    .action((id: string, opts: { json?: boolean; sarif?: boolean }) =>
      withStore((store) => {
        const p = requireProposal(store, parseId(id, 'proposal id'));
        const st = proposalStatus(store, p);
        if (opts.sarif) {
          printJson(toSarif(p, readAgentCommits(p.resultRepo, p.commits)));
          return;
        }
        if (opts.json) {
          printJson({
            ...jsonOf(p, st),
            agentCommits: commitsJson(readAgentCommits(p.resultRepo, p.commits)),
            decisions: decisionsFor(store, p.id),
          });
          return;
        }
        page(renderShow(p, st));
      }),
    );

  review
    .command('approve')
    .description('Approve a proposal (bound to its content hash; refused from inside a sandbox).')
    .argument('<id>', 'proposal id (N@HOST for a proposal on another host)')
    .option('--as <name>', 'your identity (default: git config user.email, else the OS user)')
    .option(
      '--override-reason <text>',
      'approve despite blocking findings (only members of review.overrideRoles); recorded',
    )
    .action((id: string, opts: { as?: string; overrideReason?: string }) =>
      withStore((store) => approveCommand(store, id, opts)),
    );

  review
    .command('reject')
    .description('Reject a proposal with a reason (recorded).')
    .argument('<id>', 'proposal id')
    .requiredOption('--reason <text>', 'why')
    .option('--as <name>', 'your identity (default: git config user.email, else the OS user)')
    .action((id: string, opts: { as?: string; reason: string }) =>
      withStore((store) => {
        const r = rejectProposal(store, parseId(id, 'proposal id'), { as: opts.as, reason: opts.reason });
        process.stdout.write(`rejected proposal ${r.proposal.id} as ${r.by}\n`);
      }),
    );

  review
    .command('apply')
    .description('Push an approved proposal as a new branch and open a pull request (per review.apply in the policy).')
    .argument('<id>', 'proposal id')
    .option('--as <name>', 'your identity (default: git config user.email, else the OS user)')
    .option('--json', 'machine-readable output')
    .action((id: string, opts: { as?: string; json?: boolean }) =>
      withStore(async (store) => {
        const a = await applyProposal(store, parseId(id, 'proposal id'), { as: opts.as });
        if (opts.json) {
          printJson(a);
          return;
        }
        process.stdout.write(
          `${a.alreadyPushed ? 'already on the remote' : 'pushed'}: ${a.branch} (${a.commit.slice(0, 12)}) to ${a.remote}${a.url ? `\npull request: ${a.url}` : ''}\n`,
        );
      }),
    );
}
