import { AirlockError, AGENT_DATA_BOUNDS, gitBytes, escapeForTerminal, hasTerminalControls } from '../common/index.ts';
import type { Policy } from '../policy/index.ts';
import type { Finding } from './types.ts';

// The agent's own commits: shown to the reviewer (messages, authors, escaped) and checked,
// never pushed. Apply pushes one commit Airlock builds from the reviewed tree (see
// apply.ts), so an intermediate commit, a forged author or a trailer cannot leave.

export interface Person {
  name: string;
  email: string;
  date: string;
}
export interface AgentCommit {
  sha: string;
  parents: string[];
  author: Person;
  committer: Person;
  message: string;
  truncated: boolean;
}

/** Identities Airlock itself gives commits in a session (the sandbox's git env, capture's uncommitted-work commit). */
export const AGENT_IDENTITIES = ['agent@airlock.invalid', 'airlock@localhost'];
export const MAX_AGENT_COMMITS = 10_000;
const MAX_MESSAGE_BYTES = 64 * 1024;

function person(line: string | undefined): Person {
  const m = /^(.*) <([^>]*)> (\d+ [+-]\d{4})$/.exec(line ?? '');
  return m ? { name: m[1]!, email: m[2]!, date: m[3]! } : { name: line ?? '', email: '', date: '' };
}

/** Reads the agent's commits in one bounded `cat-file --batch`; messages over 64 KiB are cut (and say so). */
export function readAgentCommits(repo: string, commits: string[]): AgentCommit[] {
  if (commits.length > MAX_AGENT_COMMITS) {
    throw new AirlockError(
      'TOO_LARGE',
      `the agent made ${commits.length} commits, over the limit of ${MAX_AGENT_COMMITS}`,
      'split the work into smaller sessions',
    );
  }
  if (!commits.length) return [];
  const input = commits.join('\n') + '\n';
  const sizes = gitBytes(['cat-file', '--batch-check'], { env: { GIT_DIR: repo }, input, bounds: AGENT_DATA_BOUNDS })
    .stdout.toString('latin1')
    .split('\n');
  const total = sizes.slice(0, commits.length).reduce((n, l) => n + Number(l.split(' ')[2] ?? 0), 0);
  if (total > 256 * 1024 * 1024)
    throw new AirlockError(
      'TOO_LARGE',
      `the agent's commit objects hold ${total} bytes`,
      'split the work into smaller sessions',
    );
  const buf = gitBytes(['cat-file', '--batch'], {
    env: { GIT_DIR: repo },
    input,
    bounds: AGENT_DATA_BOUNDS,
    maxBuffer: total + commits.length * 128 + 1024,
  }).stdout;
  const out: AgentCommit[] = [];
  let at = 0;
  for (const sha of commits) {
    const nl = buf.indexOf(0x0a, at);
    const [, type, n] = buf.toString('latin1', at, nl).split(' ');
    if (type !== 'commit')
      throw new AirlockError(
        'BAD_STATE',
        `commit ${sha} cannot be read`,
        'the result repository is damaged: propose again',
      );
    const raw = buf.subarray(nl + 1, nl + 1 + Number(n)).toString('utf8');
    at = nl + 1 + Number(n) + 1;
    const split = raw.indexOf('\n\n');
    const headers = (split < 0 ? raw : raw.slice(0, split)).split('\n');
    const h = (k: string) => headers.filter((l) => l.startsWith(`${k} `)).map((l) => l.slice(k.length + 1));
    const message = split < 0 ? '' : raw.slice(split + 2);
    out.push({
      sha,
      parents: h('parent'),
      author: person(h('author')[0]),
      committer: person(h('committer')[0]),
      message: message.slice(0, MAX_MESSAGE_BYTES),
      truncated: message.length > MAX_MESSAGE_BYTES,
    });
  }
  return out;
}

const APPROVAL_TRAILER = /^[ \t>]*((?:approved|reviewed|acked)-by|airlock-[a-z-]+)[ \t]*:/im;
const SIGNOFF_TRAILER = /^[ \t>]*signed-off-by[ \t]*:/im;
const norm = (s: string) => s.trim().toLowerCase();

/** Identities a reviewer would read as a person of this organisation. */
function humans(policy: Policy, startedBy: string | null): Set<string> {
  return new Set(
    [...Object.values(policy.review.approvals.groups).flat(), ...(startedBy ? [startedBy] : [])].map(norm),
  );
}

export function commitFindings(commits: AgentCommit[], policy: Policy, startedBy: string | null): Finding[] {
  const out: Finding[] = [];
  const known = humans(policy, startedBy);
  const add = (severity: Finding['severity'], rule: string, message: string) =>
    out.push({ check: 'review', rule, severity, file: '', line: 0, message });
  for (const commit of commits) {
    const id = commit.sha.slice(0, 12);
    for (const [role, p] of [
      ['author', commit.author],
      ['committer', commit.committer],
    ] as const) {
      if (AGENT_IDENTITIES.includes(norm(p.email))) continue;
      const claimsReviewer = known.has(norm(p.email)) || known.has(norm(p.name));
      add(
        claimsReviewer ? 'high' : 'medium',
        'commits.identity',
        `agent commit ${id} names ${role} ${JSON.stringify(escapeForTerminal(`${p.name} <${p.email}>`))}${claimsReviewer ? ', a reviewer or the person who started the agent' : ''}: the agent made it; Airlock pushes its own commit instead`,
      );
    }
    const trailer = APPROVAL_TRAILER.exec(commit.message);
    if (trailer)
      add(
        'high',
        'commits.trailer',
        `agent commit ${id} carries an approval-like line "${escapeForTerminal(trailer[1]!)}:": approvals are recorded by Airlock, never taken from a message`,
      );
    else if (SIGNOFF_TRAILER.test(commit.message))
      add(
        'medium',
        'commits.trailer',
        `agent commit ${id} carries a Signed-off-by line: a sign-off certifies a person's work`,
      );
    if (
      hasTerminalControls(commit.message) ||
      hasTerminalControls(commit.author.name + commit.author.email + commit.committer.name + commit.committer.email)
    ) {
      add(
        'high',
        'commits.control',
        `agent commit ${id} has control, escape or bidi characters in its message or identity (e.g. terminal escapes such as OSC 52 clipboard writes)`,
      );
    }
    if (commit.parents.length > 1)
      add('low', 'commits.merge', `agent commit ${id} is a merge; only the final tree is pushed`);
  }
  return out;
}

/** Agent commits as JSON for scripts and SARIF: every text escaped (it is agent-controlled). */
export function commitsJson(commits: AgentCommit[]): Record<string, unknown>[] {
  const who = (p: Person) => ({ name: escapeForTerminal(p.name), email: escapeForTerminal(p.email), date: p.date });
  return commits.map((c) => ({
    sha: c.sha,
    parents: c.parents,
    author: who(c.author),
    committer: who(c.committer),
    message: escapeForTerminal(c.message, { keepNewlines: true }),
    truncated: c.truncated,
  }));
}
