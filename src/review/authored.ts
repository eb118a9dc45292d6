import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { homeLayout, airlockHome, git } from '../common/index.ts';
import type { AuditStore } from '../audit/index.ts';
import { initResultRepo, type HostRepo } from '../workspace/index.ts';
import { createProposal } from './proposal.ts';
import type { Proposal } from './store.ts';

// A change Airlock writes itself (a learned policy) goes through review like an agent's:
// it is recorded as a session without a sandbox (session.start, session.result and
// session.stop naming the tool), its result repo is built from the host repository's base
// commit plus the new file, and createProposal runs every check and binds approvals to it.

export interface AuthoredChange {
  session: string;
  repo: HostRepo;
  baseCommit: string;
  baseRef: string;
  path: string;
  content: string;
  message: string;
  /** What wrote it, as the agent of the pseudo-session (e.g. airlock-policy-learn). */
  tool: string;
  command: string[];
  data?: Record<string, unknown>;
}

const AIRLOCK_IDENTITY = {
  GIT_AUTHOR_NAME: 'Airlock',
  GIT_AUTHOR_EMAIL: 'airlock@localhost',
  GIT_COMMITTER_NAME: 'Airlock',
  GIT_COMMITTER_EMAIL: 'airlock@localhost',
};

function commitFile(resultRepo: string, c: AuthoredChange): string {
  const env = {
    GIT_DIR: resultRepo,
    GIT_INDEX_FILE: join(resultRepo, `authored-index-${process.pid}`),
    ...AIRLOCK_IDENTITY,
  };
  try {
    git(['read-tree', c.baseCommit], { env });
    const blob = git(['hash-object', '-w', '--stdin'], { env, input: c.content }).stdout.trim();
    git(['update-index', '--add', '--cacheinfo', `100644,${blob},${c.path}`], { env });
    const tree = git(['write-tree'], { env }).stdout.trim();
    return git(['commit-tree', tree, '-p', c.baseCommit, '-F', '-'], { env, input: c.message }).stdout.trim();
  } finally {
    rmSync(env.GIT_INDEX_FILE, { force: true });
  }
}

/** Records the pseudo-session, builds its result repo and creates the proposal. */
export async function proposeAuthoredChange(
  store: AuditStore,
  change: AuthoredChange,
  options: { orgPolicy?: string; home?: string } = {},
): Promise<Proposal> {
  const home = options.home ?? airlockHome();
  const dir = join(homeLayout(home).sessions, change.session);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const resultRepo = join(dir, 'result.git');
  // the base history comes from the host repository itself (the human's, trusted)
  const gitDir = git(['rev-parse', '--path-format=absolute', '--git-common-dir'], {
    cwd: change.repo.root,
  }).stdout.trim();
  initResultRepo(resultRepo, gitDir);
  const head = commitFile(resultRepo, change);
  git(['update-ref', 'refs/airlock/base', change.baseCommit], { env: { GIT_DIR: resultRepo } });
  git(['update-ref', 'refs/airlock/head', head], { env: { GIT_DIR: resultRepo } });
  const startedBy = (() => {
    try {
      return userInfo().username;
    } catch {
      return String(process.getuid?.() ?? 'unknown');
    }
  })();
  store.append({
    type: 'session.start',
    session: change.session,
    data: {
      repo: change.repo.root,
      baseRef: change.baseRef,
      baseCommit: change.baseCommit,
      agent: change.tool,
      command: change.command,
      startedBy,
      sandbox: null,
      ...change.data,
    },
  });
  store.append({
    type: 'session.result',
    session: change.session,
    data: { resultRepo, baseCommit: change.baseCommit, headCommit: head, commits: [head], dirty: false },
  });
  store.append({ type: 'session.stop', session: change.session, data: { reason: 'done', status: 0 } });
  return (await createProposal(store, change.session, { orgPolicy: options.orgPolicy, home })).proposal;
}
