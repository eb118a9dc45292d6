import { AirlockError, git, escapeForTerminal } from '../common/index.ts';
import type { AuditStore } from '../audit/index.ts';
import { assertOutsideSandbox, humanIdentity } from '../command-rules/index.ts';
import { rgit } from './diff.ts';
import { readAgentCommits, type AgentCommit } from './commits.ts';
import { matchPath } from './checks/simple.ts';
import { insertDecision, type Proposal } from './store.ts';
import { proposalStatus, verifyProposal, type ProposalStatus } from './proposal.ts';
import { requireProposal } from './review-decisions.ts';
import { openPullRequest, providerToken, pushUser, repositoryFromUrl } from './providers.ts';
import type { Finding } from './types.ts';
import { NOTES_REF } from '../provenance/index.ts';
import { signProvenance, writeNote, provenanceMarkdown } from './provenance.ts';
import { dirname, join } from 'node:path';

// Applying an approved proposal: build ONE commit from the reviewed tree on the base
// commit, with trailers naming the session, the proposal hash and the approvers
// (deterministic, so a retry makes the same id); the agent's commits never leave. Push it from the TRUSTED result repo with hardened git to a new branch (never the
// default or a protected branch; refused when the branch exists with other content),
// then open a pull request through the provider. Failures are recorded and leave the
// proposal approved and unapplied; nothing is lost and apply can be retried.

export interface ApplyOptions {
  as?: string;
  env?: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  /** where the audit and provenance keys live; default: keys/ next to the audit log */
  keyDir?: string;
}
export interface ApplyResult {
  proposal: number;
  branch: string;
  commit: string;
  remote: string;
  url: string | null;
  alreadyPushed: boolean;
}

export function redactUrl(u: string): string {
  try {
    const x = new URL(u);
    x.username = '';
    x.password = '';
    return x.toString();
  } catch {
    return u.replace(/\/\/[^@/]*@/, '//');
  }
}

export function branchName(template: string, p: Proposal): string {
  return template
    .replaceAll('<session>', p.session)
    .replaceAll('<proposal>', String(p.id))
    .replaceAll('<hash>', p.hash.slice(0, 12));
}

function remoteUrl(p: Proposal): string {
  const r = p.policy.review.apply.remote;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(r) || r.startsWith('/') || /^[^@/]+@[^:/]+:/.test(r)) return r;
  if (!p.repo)
    throw new AirlockError(
      'BAD_STATE',
      `remote "${r}" is a name but the session recorded no host repository`,
      'set review.apply.remote to a URL',
    );
  const res = git(['config', '--get', `remote.${r}.url`], { cwd: p.repo, allowFail: true });
  const url = res.stdout.trim();
  if (res.status !== 0 || !url)
    throw new AirlockError(
      'NOT_FOUND',
      `remote "${r}" is not configured in ${p.repo}`,
      `add it (git remote add ${r} URL) or set review.apply.remote to a URL`,
    );
  return url;
}

export function trailers(p: Proposal, approvers: string[]): string {
  return [
    `Airlock-Session: ${p.session}`,
    `Airlock-Proposal: ${p.id} sha256:${p.hash}`,
    ...approvers.map((a) => `Approved-by: ${escapeForTerminal(a)}`),
  ].join('\n');
}

const AIRLOCK = { name: 'Airlock', email: 'airlock@localhost' };
const QUOTED_LINES = 200;

/** The agent's commits as quoted, escaped text: shown in the pushed message and the PR body, never as trailers. */
export function quotedCommits(commits: AgentCommit[], prefix: string): string[] {
  const out: string[] = [];
  for (const c of commits) {
    out.push(`${prefix}commit ${c.sha} by ${escapeForTerminal(`${c.author.name} <${c.author.email}>`)}`);
    const lines = c.message.replace(/\s+$/, '').split('\n');
    for (const l of lines.slice(0, QUOTED_LINES)) out.push(`${prefix}    ${escapeForTerminal(l)}`.trimEnd());
    if (lines.length > QUOTED_LINES || c.truncated)
      out.push(`${prefix}    … (cut; the whole message is in \`airlock review show\`)`);
  }
  return out;
}

/**
 * The one commit apply pushes: the reviewed tree on the base, Airlock as author and
 * committer at the proposal's time (a retry makes the same id), Airlock's message with
 * the agent's messages quoted and escaped, trailers naming the session, the proposal
 * hash and the approvers. Everything in it is covered by the approved hash.
 */
export function buildApplyCommit(proposal: Proposal, approvers: string[]): string {
  const tree = rgit(proposal.resultRepo, ['rev-parse', `${proposal.head}^{tree}`]).trim();
  const agent = readAgentCommits(proposal.resultRepo, proposal.commits);
  const msg = [
    `Airlock: agent change from session ${proposal.session} (proposal ${proposal.id})`,
    '',
    `The reviewed tree of proposal ${proposal.id}, built by Airlock. The agent's own ${agent.length} commit(s) are not pushed;`,
    'their messages follow, quoted and escaped:',
    '',
    ...quotedCommits(agent, '> '),
    '',
    trailers(proposal, approvers),
    '',
  ].join('\n');
  const date = new Date(proposal.created).toISOString();
  const commit = git(['commit-tree', tree, '-p', proposal.base, '-F', '-'], {
    env: {
      GIT_DIR: proposal.resultRepo,
      GIT_AUTHOR_NAME: AIRLOCK.name,
      GIT_AUTHOR_EMAIL: AIRLOCK.email,
      GIT_AUTHOR_DATE: date,
      GIT_COMMITTER_NAME: AIRLOCK.name,
      GIT_COMMITTER_EMAIL: AIRLOCK.email,
      GIT_COMMITTER_DATE: date,
    },
    input: msg,
  }).stdout.trim();
  // what leaves is what was reviewed: the reviewed tree, on the base, nothing else
  const [t, parents] = rgit(proposal.resultRepo, ['show', '-s', '--format=%T%n%P', commit]).split('\n');
  if (t !== tree || parents !== proposal.base)
    throw new AirlockError(
      'INTERNAL',
      `the commit built for proposal ${proposal.id} is not the reviewed tree on its base`,
      'please report this',
    );
  return commit;
}

function pushEnv(p: Proposal, url: string, token: string | null): Record<string, string> {
  const env: Record<string, string> = { GIT_DIR: p.resultRepo };
  if (token && /^https?:\/\//i.test(url)) {
    // in the environment, not on the command line (other users can read argv)
    env.GIT_CONFIG_COUNT = '1';
    env.GIT_CONFIG_KEY_0 = 'http.extraHeader';
    env.GIT_CONFIG_VALUE_0 = `Authorization: Basic ${Buffer.from(`${pushUser(p.policy.review.apply.provider)}:${token}`).toString('base64')}`;
  }
  return env;
}

const NET = [
  '-c',
  'http.followRedirects=false',
  '-c',
  'http.lowSpeedLimit=1000',
  '-c',
  'http.lowSpeedTime=30',
  '-c',
  'push.default=nothing',
  '-c',
  'push.gpgSign=false',
];

function scrub(s: string, token: string | null): string {
  let out = s.replace(/\/\/[^@/\s]*@/g, '//');
  if (token) out = out.split(token).join('***');
  return out.trim().slice(0, 1000);
}

export function summaryMarkdown(proposal: Proposal, st: ProposalStatus): string {
  const by: Record<string, number> = {};
  for (const f of proposal.findings) by[f.severity] = (by[f.severity] ?? 0) + 1;
  const counts =
    ['critical', 'high', 'medium', 'low', 'info']
      .filter((s) => by[s])
      .map((s) => `${by[s]} ${s}`)
      .join(', ') || 'none';
  const cell = (t: string) => escapeForTerminal(t).replace(/[|`<>*_[\]\\]/g, (c) => `&#${c.charCodeAt(0)};`);
  const row = (f: Finding) =>
    `| ${f.severity} | \`${f.rule}\` | ${cell(f.file || '(change)')}${f.line ? `:${f.line}` : ''} | ${cell(f.message)} |`;
  const agent = readAgentCommits(proposal.resultRepo, proposal.commits);
  return [
    `Proposed by an agent in Airlock session \`${proposal.session}\` (proposal ${proposal.id}, sha256 \`${proposal.hash}\`).`,
    '',
    `**Checks:** ${counts}. ${proposal.stats.files} files, +${proposal.stats.added}/-${proposal.stats.deleted} lines, ${proposal.stats.commits} commits.`,
    `**Approved by:** ${st.approvers.join(', ')}`,
    ...(st.overrides.length
      ? ['', '**Blocking findings overridden:**', ...st.overrides.map((o) => `- ${o.by}: ${o.reason}`)]
      : []),
    ...(proposal.findings.length
      ? [
          '',
          '| severity | rule | where | finding |',
          '| --- | --- | --- | --- |',
          ...proposal.findings.slice(0, 100).map(row),
          ...(proposal.findings.length > 100
            ? [`| … | | | ${proposal.findings.length - 100} more (airlock review show ${proposal.id}) |`]
            : []),
        ]
      : []),
    ...(agent.length
      ? [
          '',
          `**The agent's commits** (not pushed; this branch has one commit built by Airlock from the reviewed tree), quoted and escaped:`,
          '',
          ...quotedCommits(agent, '    '),
        ]
      : []),
  ].join('\n');
}

function prTitle(p: Proposal): string {
  return `Airlock: agent change from session ${p.session} (proposal ${p.id})`;
}

/** Refuses a proposal that is applied, rejected, superseded or not yet approved. */
function assertApplicable(proposal: Proposal, st: ProposalStatus): void {
  if (st.state === 'applied')
    throw new AirlockError(
      'BAD_STATE',
      `proposal ${proposal.id} was already applied to ${st.applied?.branch}${st.applied?.url ? ` (${st.applied.url})` : ''}`,
      'nothing to do',
    );
  if (st.state === 'rejected')
    throw new AirlockError(
      'BAD_STATE',
      `proposal ${proposal.id} was rejected by ${st.rejectedBy?.by}: ${st.rejectedBy?.reason}`,
      'a rejected proposal is never applied',
    );
  if (st.state === 'superseded')
    throw new AirlockError(
      'BAD_STATE',
      `proposal ${proposal.id} was superseded by a newer proposal for session ${proposal.session}`,
      'apply the newest one',
    );
  if (st.state !== 'approved')
    throw new AirlockError(
      'DENIED',
      `proposal ${proposal.id} is not approved yet: needs ${st.missing.join('; ')}`,
      `approve it with \`airlock review approve ${proposal.id}\``,
    );
}

type Identity = ReturnType<typeof humanIdentity>;
type ApplyFail = (stage: string, message: string, extra?: Record<string, unknown>) => never;

/** A failed stage of an apply: recorded as a decision and an audit event, then thrown as a user error. */
function applyFailure(store: AuditStore, proposal: Proposal, who: Identity): ApplyFail {
  return (stage, message, extra = {}) => {
    insertDecision(store, {
      proposalId: proposal.id,
      kind: 'apply_failed',
      by: who.identity,
      bySource: who.source,
      proposalHash: proposal.hash,
      reason: `${stage}: ${message}`,
      override: false,
      data: { stage, ...extra },
    });
    store.append({
      type: 'review.apply_failed',
      session: proposal.session,
      severity: 'medium',
      decision: 'deny',
      rule: `review.apply.${stage}`,
      data: { proposal: proposal.id, hash: proposal.hash, stage, error: message, ...extra },
    });
    throw new AirlockError(
      stage === 'protected' ? 'DENIED' : stage === 'exists' ? 'BAD_STATE' : 'UNAVAILABLE',
      `apply of proposal ${proposal.id} failed at ${stage}: ${message}`,
      stage === 'exists'
        ? 'choose another branch template (review.apply.branchTemplate) or delete the stale branch'
        : stage === 'protected'
          ? 'change review.apply.branchTemplate; Airlock never pushes to the default or a protected branch'
          : 'the proposal stays approved and unapplied; fix the cause and run `airlock review apply` again',
    );
  };
}

/** One apply in progress: what every stage after the remote was read needs. */
interface ApplyRun {
  store: AuditStore;
  proposal: Proposal;
  st: ProposalStatus;
  who: Identity;
  cfg: Proposal['policy']['review']['apply'];
  env: NodeJS.ProcessEnv;
  fail: ApplyFail;
  url: string;
  shown: string;
  token: string | null;
  penv: Record<string, string>;
  branch: string;
}

type Envelope = ReturnType<typeof signProvenance>['envelope'];

/**
 * Signs the provenance, adds it as a git note and pushes branch and notes in one atomic push.
 * Signed provenance travels with the commit; no signature, no push (fail closed).
 */
function pushWithProvenance(
  run: ApplyRun,
  commit: string,
  lsRemote: string,
  alreadyPushed: boolean,
  keyDir: string,
): Envelope {
  const { store, proposal, st, who, fail, url, shown, token, penv, branch } = run;
  let envelope: Envelope;
  try {
    envelope = signProvenance({
      store,
      p: proposal,
      st,
      commit,
      appliedBy: who.identity,
      keyDir,
      env: run.env,
    }).envelope;
  } catch (e) {
    return fail('provenance', e instanceof Error ? e.message : String(e));
  }
  const remoteNotes = new RegExp(`^([0-9a-f]{40})\t${NOTES_REF}$`, 'm').exec(lsRemote)?.[1] ?? null;
  if (remoteNotes) {
    const f = git(
      [...NET, 'fetch', '--no-tags', '--no-write-fetch-head', url, `+${NOTES_REF}:refs/airlock/remote-notes`],
      { env: penv, allowFail: true },
    );
    if (f.status !== 0)
      fail('push', `cannot fetch ${NOTES_REF} from ${shown}: ${scrub(f.stderr, token)}`, { remote: shown, branch });
  }
  try {
    writeNote(proposal.resultRepo, commit, envelope, remoteNotes);
  } catch (e) {
    fail('provenance', `cannot write the provenance note: ${e instanceof Error ? e.message : String(e)}`);
  }
  // one atomic push: the branch must not exist (unless already pushed), the notes ref must be as we read it
  const refspecs = [...(alreadyPushed ? [] : [`${commit}:refs/heads/${branch}`]), `${NOTES_REF}:${NOTES_REF}`];
  const leases = [
    ...(alreadyPushed ? [] : [`--force-with-lease=refs/heads/${branch}:`]),
    `--force-with-lease=${NOTES_REF}:${remoteNotes ?? ''}`,
  ];
  const push = git([...NET, 'push', '--porcelain', '--no-verify', '--atomic', ...leases, url, ...refspecs], {
    env: penv,
    allowFail: true,
  });
  if (push.status !== 0) {
    const why = scrub(`${push.stderr}\n${push.stdout}`, token);
    fail(
      'push',
      /stale info|already exists|fetch first/.test(why)
        ? `branch ${branch} or ${NOTES_REF} changed on ${shown} meanwhile`
        : `push to ${shown} was rejected: ${why}`,
      { remote: shown, branch },
    );
  }
  return envelope;
}

/** Opens the pull request for the pushed branch (when a provider is configured); its URL or null. */
async function openApplyPullRequest(
  run: ApplyRun,
  commit: string,
  envelope: Envelope,
  defaultBranch: string | null,
  fetchImpl: ApplyOptions['fetch'],
): Promise<string | null> {
  const { proposal, cfg, fail, url, shown, token, branch } = run;
  if (cfg.provider === 'none') return null;
  const base =
    cfg.baseBranch ||
    (proposal.baseRef && proposal.baseRef !== 'HEAD' && !/^[0-9a-f]{7,40}$/.test(proposal.baseRef)
      ? proposal.baseRef.replace(/^refs\/heads\//, '')
      : null) ||
    defaultBranch ||
    'main';
  try {
    const pr = await openPullRequest(
      {
        provider: cfg.provider,
        apiUrl: cfg.apiUrl,
        repository: cfg.repository || repositoryFromUrl(url),
        token: token!,
        head: branch,
        base,
        title: prTitle(proposal),
        body: summaryMarkdown(proposal, run.st) + '\n' + provenanceMarkdown(commit, envelope),
        draft: cfg.draft,
      },
      fetchImpl,
    );
    return pr.url || null;
  } catch (e) {
    return fail('pull-request', scrub(e instanceof Error ? e.message : String(e), token), {
      remote: shown,
      branch,
      commit,
    });
  }
}

/** The branch name the policy's template gives, refused when invalid or protected. */
function applyBranch(proposal: Proposal, cfg: ApplyRun['cfg'], fail: ApplyFail): string {
  const branch = branchName(cfg.branchTemplate, proposal);
  if (git(['check-ref-format', '--branch', branch], { allowFail: true }).status !== 0 || branch.startsWith('-'))
    fail('protected', `"${branch}" is not a valid branch name`);
  const prot = cfg.protectedBranches.find((g) => matchPath(branch, g));
  if (prot) fail('protected', `branch ${branch} matches protected branch "${prot}"`);
  return branch;
}

/** The host token for the provider's API and pushes (null without a provider); none configured fails the apply. */
function applyToken(cfg: ApplyRun['cfg'], env: NodeJS.ProcessEnv, fail: ApplyFail): string | null {
  if (cfg.provider === 'none') return null;
  const token = providerToken(cfg, env);
  if (!token)
    fail(
      'token',
      `no ${cfg.provider} token: set ${cfg.tokenEnv ? `the host environment variable ${cfg.tokenEnv}` : ''}${cfg.tokenEnv && cfg.tokenFile ? ' or ' : ''}${cfg.tokenFile ? `the file ${cfg.tokenFile}` : ''}${!cfg.tokenEnv && !cfg.tokenFile ? 'review.apply.tokenEnv or tokenFile in the policy' : ''}`,
    );
  return token;
}

export async function applyProposal(store: AuditStore, id: number, opts: ApplyOptions = {}): Promise<ApplyResult> {
  assertOutsideSandbox(store, opts.env);
  const proposal = requireProposal(store, id);
  const st = proposalStatus(store, proposal);
  assertApplicable(proposal, st);
  verifyProposal(store, proposal); // any change since the approvals voids them
  const who = humanIdentity(opts.as);
  const cfg = proposal.policy.review.apply;
  const env = opts.env ?? process.env;
  const fail = applyFailure(store, proposal, who);
  const branch = applyBranch(proposal, cfg, fail);
  const url = remoteUrl(proposal);
  const shown = redactUrl(url);
  const token = applyToken(cfg, env, fail);
  const penv = pushEnv(proposal, url, token);
  const run: ApplyRun = { store, proposal, st, who, cfg, env, fail, url, shown, token, penv, branch };

  // What is on the remote now: its default branch and our branch, if any.
  const ls = git([...NET, 'ls-remote', '--symref', url, 'HEAD', `refs/heads/${branch}`, NOTES_REF], {
    env: penv,
    allowFail: true,
  });
  if (ls.status !== 0)
    fail('remote', `cannot reach ${shown}: ${scrub(ls.stderr, token) || `git exit ${ls.status}`}`, { remote: shown });
  const defaultBranch = /^ref: refs\/heads\/(\S+)\tHEAD$/m.exec(ls.stdout)?.[1] ?? null;
  if (defaultBranch === branch) fail('protected', `branch ${branch} is the remote's default branch`);
  const existing =
    new RegExp(`^([0-9a-f]{40})\\trefs/heads/${branch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm').exec(
      ls.stdout,
    )?.[1] ?? null;

  const commit = buildApplyCommit(proposal, st.approvers);
  git(['update-ref', `refs/airlock/apply/${proposal.id}`, commit], { env: { GIT_DIR: proposal.resultRepo } });
  if (existing && existing !== commit)
    fail('exists', `branch ${branch} already exists on ${shown} with other content (${existing.slice(0, 12)})`, {
      remote: shown,
      branch,
    });
  const alreadyPushed = existing === commit;
  const keyDir = opts.keyDir ?? join(dirname(store.path), 'keys');
  const envelope = pushWithProvenance(run, commit, ls.stdout, alreadyPushed, keyDir);
  store.append({
    type: 'review.pushed',
    session: proposal.session,
    severity: 'info',
    decision: 'allow',
    rule: 'review.apply',
    data: {
      proposal: proposal.id,
      hash: proposal.hash,
      remote: shown,
      branch,
      commit,
      alreadyPushed,
      provenance: { notesRef: NOTES_REF, keyId: envelope.signatures[0]!.keyid },
    },
  });
  const prUrl = await openApplyPullRequest(run, commit, envelope, defaultBranch, opts.fetch);
  recordApplied(run, commit, prUrl);
  return { proposal: proposal.id, branch, commit, remote: shown, url: prUrl, alreadyPushed };
}

/** The apply's decision and its audit event. */
function recordApplied(run: ApplyRun, commit: string, prUrl: string | null): void {
  const { store, proposal, who, cfg, shown, branch } = run;
  insertDecision(store, {
    proposalId: proposal.id,
    kind: 'apply',
    by: who.identity,
    bySource: who.source,
    proposalHash: proposal.hash,
    reason: null,
    override: false,
    data: { branch, commit, remote: shown, url: prUrl, provider: cfg.provider },
  });
  store.append({
    type: 'review.applied',
    session: proposal.session,
    severity: 'info',
    decision: 'allow',
    rule: 'review.apply',
    data: {
      proposal: proposal.id,
      hash: proposal.hash,
      by: who.identity,
      remote: shown,
      branch,
      commit,
      url: prUrl,
      provider: cfg.provider,
      approvers: run.st.approvers,
    },
  });
}
