import { mkdtempSync, mkdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AuditStore } from '../../src/audit/index.ts';
import { track } from '../helpers.ts';

// Test fixtures: a host repo, a scripted "agent" whose work lands in a result repo laid
// out exactly as Airlock's capture writes it (<home>/sessions/<id>/result.git with
// refs/airlock/base and refs/airlock/head, plus session.start/session.result events), and
// a real git remote served over HTTP by git's own http-backend on 127.0.0.1.

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Plain git for the fixture itself (the test plays the human and the agent here). */
export function sh(cwd: string, ...args: string[]): string {
  return shAs({}, cwd, ...args);
}

/** The identity the sandbox gives an agent's commits (src/session/session.ts). */
export const AGENT_IDENTITY = {
  GIT_AUTHOR_NAME: 'Airlock agent',
  GIT_AUTHOR_EMAIL: 'agent@airlock.invalid',
  GIT_COMMITTER_NAME: 'Airlock agent',
  GIT_COMMITTER_EMAIL: 'agent@airlock.invalid',
};

export function shAs(who: Record<string, string>, cwd: string, ...args: string[]): string {
  const r = spawnSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_AUTHOR_NAME: 'Test',
      GIT_AUTHOR_EMAIL: 'test@example.com',
      GIT_COMMITTER_NAME: 'Test',
      GIT_COMMITTER_EMAIL: 'test@example.com',
      ...who,
    },
  });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

export interface Env {
  dir: string;
  home: string;
  store: AuditStore;
  host: string;
  base: string;
  orgPolicy: string;
  done: () => void;
}

export const BASE_FILES: Record<string, string> = {
  'package.json':
    JSON.stringify({ name: 'app', version: '1.0.0', dependencies: { express: '4.19.2' } }, null, 2) + '\n',
  'src/app.js': "const express = require('express');\nconst app = express();\nmodule.exports = app;\n",
  'src/db.py': 'import sqlite3\n\ndef connect():\n    return sqlite3.connect("app.db")\n',
  '.github/workflows/ci.yml':
    'on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - run: npm test\n',
  'README.md': '# app\n',
};

export function setup(orgPolicy: string, files: Record<string, string> = BASE_FILES): Env {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-review-'));
  const home = track(join(dir, 'home'));
  mkdirSync(join(home, 'sessions'), { recursive: true });
  const host = join(dir, 'host');
  mkdirSync(host);
  sh(host, 'init', '-q', '-b', 'main');
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(dirname(join(host, p)), { recursive: true });
    writeFileSync(join(host, p), c);
  }
  sh(host, 'add', '-A');
  sh(host, 'commit', '-q', '-m', 'base');
  const base = sh(host, 'rev-parse', 'HEAD');
  const org = join(dir, 'org.yaml');
  writeFileSync(org, orgPolicy);
  const store = new AuditStore(join(home, 'audit.db'));
  return {
    dir,
    home,
    store,
    host,
    base,
    orgPolicy: org,
    done: () => {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A scripted agent session: `work` edits a clone of the host repo; its commit lands in the
 * session's result repo with the refs and audit events Airlock's capture writes.
 */
export function agentSession(
  env: Env,
  session: string,
  work: Record<string, string | null>,
  message = 'agent change',
  startedBy = 'bob@example.com',
): { resultRepo: string; head: string } {
  const wt = join(env.dir, `agent-${session}`);
  sh(env.dir, 'clone', '-q', env.host, wt);
  for (const [p, c] of Object.entries(work)) {
    if (c === null) {
      rmSync(join(wt, p));
      continue;
    }
    mkdirSync(dirname(join(wt, p)), { recursive: true });
    writeFileSync(join(wt, p), c);
  }
  sh(wt, 'add', '-A');
  shAs(AGENT_IDENTITY, wt, 'commit', '-q', '-m', message);
  const head = sh(wt, 'rev-parse', 'HEAD');
  const resultRepo = join(env.home, 'sessions', session, 'result.git');
  mkdirSync(dirname(resultRepo), { recursive: true });
  sh(env.dir, 'init', '-q', '--bare', resultRepo);
  sh(wt, 'push', '-q', resultRepo, `${env.base}:refs/airlock/base`, `${head}:refs/airlock/head`);
  const commits = sh(resultRepo, 'rev-list', '--reverse', `${env.base}..${head}`).split('\n').filter(Boolean);
  env.store.append({
    type: 'session.start',
    session,
    data: { repo: env.host, baseRef: 'main', baseCommit: env.base, policyHash: 'x', startedBy },
  });
  env.store.append({
    type: 'session.result',
    session,
    data: {
      resultRepo,
      baseCommit: env.base,
      headCommit: head,
      commits,
      dirty: false,
      filesChanged: Object.keys(work).length,
    },
  });
  return { resultRepo, head };
}

export interface GitHttp {
  url: string;
  root: string;
  requests: { method: string; path: string; auth: string | null }[];
  close: () => Promise<void>;
}

/** A bare remote served by `git http-backend` (CGI) from a small node server on 127.0.0.1, in its own process. */
export async function gitHttpServer(root: string): Promise<GitHttp> {
  const requests: GitHttp['requests'] = [];
  const child = spawn(process.execPath, [join(ROOT, 'test/review/git-http-server.ts'), root], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error('git http server did not start')), 15_000);
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = JSON.parse(buf.slice(0, i)) as {
          port?: number;
          method?: string;
          path?: string;
          auth?: string | null;
        };
        buf = buf.slice(i + 1);
        if (line.port) {
          clearTimeout(t);
          resolve(line.port);
        } else requests.push({ method: line.method ?? '', path: line.path ?? '', auth: line.auth ?? null });
      }
    });
    child.on('exit', () => reject(new Error('git http server exited')));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    root,
    requests,
    close: () =>
      new Promise((r) => {
        child.once('exit', () => r());
        child.stdin.end();
        setTimeout(() => child.kill(), 5000).unref();
      }),
  };
}

/** A bare repository under `root` holding the base history on main. */
export function makeRemote(env: Env, root: string, name = 'remote.git'): string {
  const path = join(root, name);
  sh(env.dir, 'init', '-q', '--bare', '-b', 'main', path);
  sh(env.host, 'push', '-q', path, 'main:refs/heads/main');
  return path;
}

export function rejectingHook(remote: string, message: string): void {
  const hook = join(remote, 'hooks', 'pre-receive');
  mkdirSync(dirname(hook), { recursive: true });
  writeFileSync(hook, `#!/bin/sh\necho "${message}" >&2\nexit 1\n`);
  chmodSync(hook, 0o755);
}

export function runCli(
  args: string[],
  env: Record<string, string>,
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [join(ROOT, 'src/cli/run.ts'), ...args], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => {
      stdout += d;
    });
    p.stderr.on('data', (d) => {
      stderr += d;
    });
    p.stdin.end(input ?? '');
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** One commit an agent makes with plumbing: names may be any bytes (Buffer), content null deletes, mode 120000 is a symlink. */
export interface AgentCommit {
  message: string;
  author?: [name: string, email: string];
  files: [name: string | Buffer, content: string | Buffer | null, mode?: string][];
}

function plumb(repo: string, args: string[], input?: Buffer | string, env: Record<string, string> = {}): string {
  const r = spawnSync('git', args, {
    input,
    encoding: 'utf8',
    maxBuffer: 1 << 30,
    env: {
      ...process.env,
      GIT_DIR: repo,
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_CONFIG_NOSYSTEM: '1',
      ...AGENT_IDENTITY,
      ...env,
    },
  });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Records a result repo (as capture writes it) for a session whose head is `head`. */
export function recordResult(
  env: Env,
  session: string,
  resultRepo: string,
  head: string,
  startedBy = 'bob@example.com',
): string[] {
  plumb(resultRepo, ['update-ref', 'refs/airlock/base', env.base]);
  plumb(resultRepo, ['update-ref', 'refs/airlock/head', head]);
  const commits = plumb(resultRepo, ['rev-list', '--reverse', `${env.base}..${head}`])
    .split('\n')
    .filter(Boolean);
  env.store.append({
    type: 'session.start',
    session,
    data: { repo: env.host, baseRef: 'main', baseCommit: env.base, policyHash: 'x', startedBy },
  });
  env.store.append({
    type: 'session.result',
    session,
    data: { resultRepo, baseCommit: env.base, headCommit: head, commits, dirty: false, filesChanged: 0 },
  });
  return commits;
}

/** A session's result repo holding the base plus the given agent commits, made with plumbing (hostile names and authors allowed). */
export function agentHistory(
  env: Env,
  session: string,
  history: AgentCommit[],
  startedBy = 'bob@example.com',
): { resultRepo: string; head: string; commits: string[] } {
  const resultRepo = join(env.home, 'sessions', session, 'result.git');
  mkdirSync(dirname(resultRepo), { recursive: true });
  sh(env.dir, 'init', '-q', '--bare', resultRepo);
  sh(env.host, 'push', '-q', resultRepo, `${env.base}:refs/airlock/base`);
  const index = join(env.dir, `index-${session}`);
  let head = env.base;
  for (const c of history) {
    const ienv = { GIT_INDEX_FILE: index };
    plumb(resultRepo, ['read-tree', head], undefined, ienv);
    const lines: Buffer[] = [];
    const blobs = new Map<string, string>();
    for (const [name, content, mode] of c.files) {
      const key = content === null ? '' : Buffer.from(content).toString('latin1');
      if (content !== null && !blobs.has(key))
        blobs.set(key, plumb(resultRepo, ['hash-object', '-w', '--stdin'], Buffer.from(content)));
      const sha = content === null ? '0'.repeat(40) : blobs.get(key)!;
      lines.push(
        Buffer.concat([
          Buffer.from(`${content === null ? '0' : (mode ?? '100644')} ${sha}\t`),
          Buffer.from(name),
          Buffer.from([0]),
        ]),
      );
    }
    plumb(resultRepo, ['update-index', '-z', '--index-info'], Buffer.concat(lines), ienv);
    const tree = plumb(resultRepo, ['write-tree'], undefined, ienv);
    const [an, ae] = c.author ?? ['Airlock agent', 'agent@airlock.invalid'];
    head = plumb(resultRepo, ['commit-tree', tree, '-p', head, '-F', '-'], c.message, {
      GIT_AUTHOR_NAME: an,
      GIT_AUTHOR_EMAIL: ae,
    });
  }
  rmSync(index, { force: true });
  return { resultRepo, head, commits: recordResult(env, session, resultRepo, head, startedBy) };
}
