import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createProposal, approveProposal, applyProposal, proposalStatus } from '../../src/review/index.ts';
import { AirlockError } from '../../src/common/errors.ts';
import { setup, agentSession, gitHttpServer, makeRemote, sh } from './fixture.ts';

// Pull/merge requests through GitHub (Octokit), GitLab and Gitea/Forgejo. No real GitHub,
// GitLab or Gitea is reachable from these machines, so each provider API is a local HTTP
// server on 127.0.0.1 that checks every request (method, path, token header, body) and
// answers like the real API. The branch push itself goes to a real git-http-backend remote.

interface Seen {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

async function fakeApi(
  expectPath: string,
  reply: (s: Seen) => { status: number; body: unknown },
): Promise<{ url: string; seen: Seen[]; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => {
      raw += d;
    });
    req.on('end', () => {
      const s: Seen = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: raw ? (JSON.parse(raw) as Record<string, unknown>) : {},
      };
      seen.push(s);
      const r =
        s.path === expectPath && s.method === 'POST'
          ? reply(s)
          : { status: 404, body: { message: `unexpected ${s.method} ${s.path}` } };
      res.writeHead(r.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(r.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const CASES = [
  {
    provider: 'github',
    api: '',
    path: '/repos/acme/app/pulls',
    auth: (t: string) => `token ${t}`,
    header: 'authorization',
    reply: { html_url: 'https://github.example/acme/app/pull/7', number: 7 },
    url: 'https://github.example/acme/app/pull/7',
    pushUser: 'x-access-token',
    body: (b: Record<string, unknown>) => ({ head: b.head, base: b.base, draft: b.draft, text: b.body }),
  },
  {
    provider: 'gitlab',
    api: '/api/v4',
    path: '/api/v4/projects/acme%2Fapp/merge_requests',
    auth: (t: string) => t,
    header: 'private-token',
    reply: { web_url: 'https://gitlab.example/acme/app/-/merge_requests/3', iid: 3 },
    url: 'https://gitlab.example/acme/app/-/merge_requests/3',
    pushUser: 'oauth2',
    body: (b: Record<string, unknown>) => ({
      head: b.source_branch,
      base: b.target_branch,
      draft: String(b.title).startsWith('Draft: '),
      text: b.description,
    }),
  },
  {
    provider: 'gitea',
    api: '/api/v1',
    path: '/api/v1/repos/acme/app/pulls',
    auth: (t: string) => `token ${t}`,
    header: 'authorization',
    reply: { html_url: 'https://gitea.example/acme/app/pulls/5', number: 5 },
    url: 'https://gitea.example/acme/app/pulls/5',
    pushUser: 'airlock',
    body: (b: Record<string, unknown>) => ({
      head: b.head,
      base: b.base,
      draft: String(b.title).startsWith('WIP: '),
      text: b.body,
    }),
  },
] as const;

for (const c of CASES) {
  test(`${c.provider}: push with the host token, then open the request; every API call checked`, async () => {
    const root = mkdtempSync(join(tmpdir(), 'airlock-remote-'));
    const git = await gitHttpServer(root);
    let fail = true;
    const api = await fakeApi(c.path, (s) => {
      if (s.headers[c.header] !== c.auth('tok-123')) return { status: 401, body: { message: 'bad token' } };
      return fail
        ? { status: 403, body: { message: 'Resource not accessible by integration' } }
        : { status: 201, body: c.reply };
    });
    const org = `review:\n  apply:\n    remote: ${git.url}/remote.git\n    provider: ${c.provider}\n    apiUrl: ${api.url}${c.api}\n    repository: acme/app\n    tokenEnv: AIRLOCK_TEST_PROVIDER_TOKEN\n`;
    const env = setup(org);
    try {
      const remote = makeRemote(env, root);
      const session = `s-${c.provider}`;
      agentSession(env, session, { 'src/app.js': 'module.exports = 42;\n' }, 'Add the answer');
      const p = (await createProposal(env.store, session, { orgPolicy: env.orgPolicy, home: env.home })).proposal;
      approveProposal(env.store, p.id, { as: 'alice@example.com', env: {} });

      // no token on the host: refused before anything is pushed
      await assert.rejects(
        applyProposal(env.store, p.id, { as: 'alice@example.com', env: {} }),
        /no .* token: set the host environment variable AIRLOCK_TEST_PROVIDER_TOKEN/,
      );
      assert.equal(sh(remote, 'for-each-ref', 'refs/heads/airlock'), '');

      const hostEnv = { AIRLOCK_TEST_PROVIDER_TOKEN: 'tok-123' };
      // the provider refuses: the branch is pushed, the proposal stays approved, the token is not in the error
      await assert.rejects(
        applyProposal(env.store, p.id, { as: 'alice@example.com', env: hostEnv }),
        (e: unknown) =>
          e instanceof AirlockError &&
          e.kind === 'UNAVAILABLE' &&
          /403/.test(e.message) &&
          !e.message.includes('tok-123'),
      );
      assert.equal(proposalStatus(env.store, p).state, 'approved');
      const pushedCommit = sh(remote, 'rev-parse', `refs/heads/airlock/${session}`);
      for (let i = 0; i < 100 && !git.requests.some((q) => q.auth); i++) await new Promise((r) => setTimeout(r, 20));
      const basic = `Basic ${Buffer.from(`${c.pushUser}:tok-123`).toString('base64')}`;
      assert.ok(
        git.requests.some((q) => q.path.endsWith('git-receive-pack') && q.auth === basic),
        'the push carried the host token',
      );

      fail = false;
      const r = await applyProposal(env.store, p.id, { as: 'alice@example.com', env: hostEnv });
      assert.equal(r.alreadyPushed, true, 'the retry reuses the identical branch');
      assert.equal(r.commit, pushedCommit);
      assert.equal(r.url, c.url);
      const ok = api.seen.filter((s) => s.path === c.path);
      assert.equal(api.seen.length, ok.length, 'no unexpected API calls');
      const last = c.body(ok[ok.length - 1]!.body);
      assert.equal(last.head, `airlock/${session}`);
      assert.equal(last.base, 'main');
      assert.equal(last.draft, true);
      assert.match(String(last.text), new RegExp(`Airlock session \`${session}\``));
      assert.match(String(last.text), /\*\*Checks:\*\* none/);
      assert.match(String(last.text), /\*\*Approved by:\*\* alice@example.com/);
      // the signed provenance travels in the request body and as the pushed commit's git note
      const envelope = /```json\n(\{.*\})\n```/.exec(String(last.text))?.[1];
      assert.ok(envelope, 'the body carries the DSSE envelope');
      const statement = JSON.parse(
        Buffer.from((JSON.parse(envelope) as { payload: string }).payload, 'base64').toString('utf8'),
      ) as { subject: { digest: { gitCommit?: string } }[] };
      assert.equal(statement.subject[0]!.digest.gitCommit, pushedCommit);
      assert.match(String(last.text), /airlock verify-change [0-9a-f]{40} --key/);
      assert.equal(
        JSON.parse(sh(remote, 'notes', '--ref=refs/notes/airlock-provenance', 'show', pushedCommit)).payloadType,
        'application/vnd.in-toto+json',
      );
      assert.equal(proposalStatus(env.store, p).state, 'applied');
      const applied = env.store.query({ session, type: 'review.applied' })[0]!;
      assert.equal((applied.data as { url: string }).url, c.url);
      assert.ok(
        !JSON.stringify(env.store.query({ session })).includes('tok-123'),
        'the token never reaches the audit log',
      );
    } finally {
      env.done();
      await api.close();
      await git.close();
      rmSync(root, { recursive: true, force: true });
    }
  });
}
