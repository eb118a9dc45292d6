// The Kubernetes session pod, run for real here: the pod's entrypoint (`airlock pod
// supervise` in the agent container, `airlock pod gateway` in the gateway container) in a
// runsc (gVisor) sandbox of the template's shape (test/sandbox/runsc-pod.ts), driven by the
// kubernetes driver through FakeKubeApiServer — a FAKE API server (no cluster can run on
// these machines) whose exec endpoint forwards into the runsc pod with `runsc exec`.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { pack } from 'tar-stream';
import { KubernetesDriver, SandboxClaims } from '../../src/sandbox/kubernetes/index.ts';
import { packDirectory } from '../../src/pod/index.ts';
import type { Sandbox, SandboxSpec } from '../../src/sandbox/index.ts';
import { defaultPolicy } from '../../src/policy/index.ts';
import { Session } from '../../src/session/index.ts';
import { createProposal } from '../../src/review/index.ts';
import { AuditStore } from '../../src/audit/index.ts';
import type { AuditEventInput } from '../../src/common/index.ts';
import { BIN, ROOT, airlock, cleanup, makeRepo, tmp } from '../helpers.ts';
import { FakeKubeApiServer, type FakeExec } from './fake-kube-api.ts';
import { startRunscPod, type RunscPod } from './runsc-pod.ts';

const POLICY = 'egress:\n  allow:\n    - host: allowed.example\n';
const TARGET = { namespace: 'airlock-sessions', warmPool: 'airlock-session', ttlSeconds: 600 };
const POD_ENV = {
  PATH: '/opt/node/bin:/usr/bin:/bin',
  HOME: '/home/agent',
  HTTP_PROXY: 'http://127.0.0.1:3128',
  http_proxy: 'http://127.0.0.1:3128',
};

function driverFor(fake: FakeKubeApiServer): KubernetesDriver {
  return new KubernetesDriver({
    kubeConfig: SandboxClaims.kubeConfig(fake.kubeconfigText()),
    target: TARGET,
    readyPollMs: 10,
  });
}

function specFor(home: string, session: string, lower: string, events: AuditEventInput[]): SandboxSpec {
  const stateDir = join(home, 'sessions', session, 'driver');
  mkdirSync(stateDir, { recursive: true });
  return {
    session,
    stateDir,
    lowerDirs: [lower],
    limits: { ...defaultPolicy().sandbox.limits, diskMB: 8 },
    env: POD_ENV,
    mounts: { readOnly: [], readWrite: [] },
    forbiddenMounts: [],
    networkSetup: null,
    trace: false,
    hostIds: null,
    record: (e) => events.push(e),
  };
}

async function run(sb: Sandbox, argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const h = sb.exec(argv, { stdio: 'pipe' });
  h.stdin!.end();
  let stdout = '';
  let stderr = '';
  h.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  h.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const r = await h.done;
  return { status: r.status, stdout, stderr };
}

/** What the pod's gateway recorded in its own audit store (on the gateway container's volume). */
function gatewayEvents(pod: RunscPod, type: string): { decision: string | null; rule: string | null; data: string }[] {
  const db = new DatabaseSync(join(pod.dirs.gatewayHome, 'audit.db'), { readOnly: true });
  try {
    return db.prepare('SELECT decision, rule, data FROM events WHERE type = ?').all(type) as never;
  } finally {
    db.close();
  }
}

/** The runsc pod, with the fake API server in front of it (its exec endpoint forwards into the pod). */
async function podBehindFake(
  home: string,
  name: string,
  fake: FakeKubeApiServer,
  o: { policyYaml?: string; credentials?: Record<string, string> } = {},
): Promise<RunscPod> {
  const pod = await startRunscPod({ home, name, policyYaml: o.policyYaml ?? POLICY, credentials: o.credentials });
  fake.sandboxName = pod.name;
  fake.forward = (e: FakeExec) => pod.exec(e.container as 'agent', e.command);
  try {
    await fake.start();
  } catch (e) {
    pod.stop();
    throw e;
  }
  return pod;
}

describe('the session pod under runsc, driven through FakeKubeApiServer (a fake API server)', () => {
  const fake = new FakeKubeApiServer();
  let home: string;
  let pod: RunscPod;
  before(async () => {
    home = tmp('airlock-pod-');
    pod = await podBehindFake(home, 'sbx-pod1', fake);
  });
  after(() => {
    fake.close();
    pod?.stop();
    cleanup(home);
  });

  it('claims, restores the snapshot, runs commands in the pod, the gateway refuses a disallowed host, fetches the capture, deletes the claim', async () => {
    const lower = join(home, 'lower');
    mkdirSync(lower);
    writeFileSync(join(lower, 'README.md'), '# app\n');
    const events: AuditEventInput[] = [];
    const spec = specFor(home, 'ses-podtest00001', lower, events);
    const sb = await driverFor(fake).start(spec);
    let stopped = false;
    try {
      assert.equal(
        readFileSync(join(pod.dirs.workspace, 'README.md'), 'utf8'),
        '# app\n',
        'the snapshot is in the pod',
      );
      const r = await run(sb, ['sh', '-c', 'cat README.md; id -u; echo new > new.txt; echo err >&2; exit 3']);
      assert.deepEqual(r, { status: 3, stdout: '# app\n100000\n', stderr: 'err\n' });
      assert.ok(
        fake.execs.every((e) => e.container === 'agent' && e.command[0] === '/opt/airlock/bin/airlock'),
        'every exec goes to the agent container, through the pod entrypoint',
      );
      assert.ok(fake.execs.every((e) => e.auth === 'Bearer fake-token'));

      const denied = await run(sb, ['curl', '-s', '-i', 'http://denied.example/']);
      assert.match(denied.stdout, /^HTTP\/1\.1 403/);
      assert.match(denied.stdout, /x-airlock-rule: egress\.default-deny/);
      const recorded = gatewayEvents(pod, 'egress.request').filter((e) => e.data.includes('denied.example'));
      assert.equal(recorded.length, 1, 'the pod gateway recorded the refusal');
      assert.equal(recorded[0]!.decision, 'deny');
      assert.equal(recorded[0]!.rule, 'egress.default-deny');

      // an agent process left running in the background: the kill step ends it
      await run(sb, ['sh', '-c', 'sleep 300 >/dev/null 2>&1 </dev/null &']);
      const sleeping = () => {
        const r = pod.exec('agent', ['sh', '-c', 'cat /proc/[0-9]*/cmdline | tr "\\0" " "']);
        return new Promise<string>((resolve) => {
          let out = '';
          r.stdout!.on('data', (d: Buffer) => (out += d.toString()));
          r.on('close', () => resolve(out));
        });
      };
      assert.match(await sleeping(), /sleep 300/);
      await sb.killAll();
      assert.doesNotMatch(await sleeping(), /sleep 300/, 'no agent process outlives the kill');
      assert.equal(readFileSync(join(sb.workspaceView(), 'new.txt'), 'utf8'), 'new\n', 'the capture reached the host');
      assert.ok(events.some((e) => e.type === 'sandbox.workspace_fetched'));
      assert.ok(events.some((e) => e.type === 'process.exec'));
      await sb.stop();
      stopped = true;
      assert.equal(fake.claim, null, 'the claim is deleted at stop');
      assert.equal(fake.deleted.length, 1);
    } finally {
      if (!stopped) await sb.stop();
    }
  });

  it('a command that tries to reach anything but the gateway fails: no interface but loopback in the pod', async () => {
    const lower = join(home, 'lower2');
    mkdirSync(lower);
    const sb = await driverFor(fake).start(specFor(home, 'ses-podtest00002', lower, []));
    try {
      for (const target of ['http://169.254.169.254/', 'http://10.0.0.1/', 'http://203.0.113.10/']) {
        const r = await run(sb, ['curl', '-s', '--noproxy', '*', '--connect-timeout', '3', target]);
        assert.notEqual(r.status, 0, `${target} reached directly`);
      }
      const ip = await run(sb, ['cat', '/proc/net/dev']);
      assert.deepEqual(
        ip.stdout
          .split('\n')
          .slice(2)
          .map((l) => l.split(':')[0]!.trim())
          .filter(Boolean),
        ['lo'],
      );
      // the gateway's credentials and data are not in the agent container
      const creds = await run(sb, ['ls', '/run/airlock/credentials', '/run/airlock/gateway']);
      assert.notEqual(creds.status, 0);
    } finally {
      await sb.stop();
    }
  });
});

/** A tar the pod could send back, hostile: traversal, absolute names, a link then a write through it, setuid, escapes. */
function hostileTar(): Promise<Buffer> {
  const p = pack();
  p.entry({ name: '../escaped.txt' }, 'x');
  p.entry({ name: '/tmp/absolute.txt' }, 'x');
  p.entry({ name: 'link', type: 'symlink', linkname: '/etc' });
  p.entry({ name: 'link/passwd-through-link' }, 'x');
  p.entry({ name: 'suid', mode: 0o4755 }, 'x');
  p.entry({ name: 'dev', type: 'character-device', devmajor: 1, devminor: 3 });
  p.entry({ name: 'name-\x1b[31m-red' }, 'x');
  p.entry({ name: 'ok.txt' }, 'fine\n');
  p.finalize();
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    p.on('data', (d: Buffer) => parts.push(d));
    p.on('end', () => resolve(Buffer.concat(parts)));
  });
}

function git(cwd: string, args: string[], input?: string): string {
  const r = spawnSync('git', args, {
    cwd,
    input,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_AUTHOR_NAME: 'A',
      GIT_AUTHOR_EMAIL: 'a@example.com',
      GIT_COMMITTER_NAME: 'A',
      GIT_COMMITTER_EMAIL: 'a@example.com',
    },
  });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/**
 * What an agent could leave in the pod's workspace: a clone at the base with a commit whose
 * tree is a bomb (1000³ paths from a few KB of trees), or a .git that links to the host's repository.
 */
function plantHostileWorkspace(repo: string, ws: string, shape: 'tree-bomb' | 'git-symlink'): void {
  if (shape === 'git-symlink') {
    mkdirSync(ws);
    writeFileSync(join(ws, 'README.md'), '# app\n');
    symlinkSync(join(repo, '.git'), join(ws, '.git'));
    return;
  }
  git(dirname(ws), ['clone', '-q', repo, ws]);
  let t = git(ws, ['hash-object', '-w', '--stdin'], '');
  let mode = '100644 blob';
  for (let level = 0; level < 3; level++) {
    t = git(ws, ['mktree'], Array.from({ length: 1000 }, (_, i) => `${mode} ${t}\tf${i}`).join('\n') + '\n');
    mode = '040000 tree';
  }
  const root = git(ws, ['mktree'], `${git(ws, ['ls-tree', 'HEAD'])}\n040000 tree ${t}\tbomb\n`);
  git(ws, ['update-ref', 'HEAD', git(ws, ['commit-tree', root, '-p', 'HEAD', '-m', 'bomb'])]);
}

async function tarOf(dir: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const d of packDirectory(dir)) parts.push(d as Buffer);
  return Buffer.concat(parts);
}

describe('a hostile pod (FakeKubeApiServer answers for it: a fake)', () => {
  const fake = new FakeKubeApiServer();
  let home: string;
  /** what the fake pod does per protocol verb: a capture tar, or an exit status */
  let capture: Buffer = Buffer.alloc(0);
  let restoreStatus = 0;
  before(async () => {
    home = tmp('airlock-pod-hostile-');
    fake.forward = (e: FakeExec) => {
      const verb = e.command[2];
      if (verb === 'capture') {
        const c = spawn('cat');
        c.stdin.end(capture);
        return c;
      }
      // restore, kill: drain stdin, answer with a status
      return spawn('sh', ['-c', `cat >/dev/null; exit ${verb === 'restore' ? restoreStatus : 0}`]);
    };
    await fake.start();
  });
  after(() => {
    fake.close();
    cleanup(home);
  });

  it('a hostile capture is bounded: nothing outside the capture directory, no link followed, names escaped when reported', async () => {
    capture = await hostileTar();
    const events: AuditEventInput[] = [];
    const lower = join(home, 'l1');
    mkdirSync(lower);
    const sb = await driverFor(fake).start(specFor(home, 'ses-hostile00001', lower, events));
    await sb.killAll();
    await sb.stop();
    const view = sb.workspaceView();
    assert.deepEqual(readdirSync(view).sort(), ['link', 'name-\x1b[31m-red', 'ok.txt', 'suid']);
    assert.ok(lstatSync(join(view, 'link')).isSymbolicLink(), 'the link is stored as a link');
    assert.ok(!existsSync('/etc/passwd-through-link'), 'nothing was written through the link');
    assert.ok(!existsSync(join(view, '..', 'escaped.txt')), 'nothing written outside the capture directory');
    assert.ok(!existsSync('/tmp/absolute.txt'));
    assert.equal(lstatSync(join(view, 'suid')).mode & 0o7000, 0, 'no setuid bit from the archive');
    const fetched = events.find((e) => e.type === 'sandbox.workspace_fetched')!;
    const skipped = (fetched.data as { skipped: string[] }).skipped;
    assert.equal(skipped.length, 4, skipped.join('\n'));
    assert.ok(
      skipped.every((s) => !s.includes('\x1b')),
      'reported names carry no terminal escape',
    );
  });

  it('a capture larger than the disk limit is refused whole, skipped entries counted too: capture fails closed (no empty tree read as "all deleted")', async () => {
    // a file written, and one never written (unsafe name) whose bytes still cross
    for (const [i, name] of ['big', '../big'].entries()) {
      const p = pack();
      p.entry({ name }, Buffer.alloc(9 * 1024 * 1024));
      p.finalize();
      const parts: Buffer[] = [];
      for await (const d of p) parts.push(d as Buffer);
      capture = Buffer.concat(parts);
      const events: AuditEventInput[] = [];
      const lower = join(home, `l2-${i}`);
      mkdirSync(lower);
      const sb = await driverFor(fake).start(specFor(home, `ses-hostile0000${i + 5}`, lower, events));
      await sb.killAll();
      await sb.stop();
      assert.throws(() => sb.workspaceView(), /was not captured: .*larger than/, name);
      assert.ok(events.some((e) => e.type === 'sandbox.workspace_refused' && e.severity === 'high'));
    }
  });

  it('a session whose pod sends back a tree bomb, or a .git linked to a host repository: the same capture bounds refuse them', async () => {
    const repo = makeRepo({ 'README.md': '# app\n' });
    try {
      for (const shape of ['tree-bomb', 'git-symlink'] as const) {
        const ws = join(home, `pod-ws-${shape}`);
        plantHostileWorkspace(repo, ws, shape);
        capture = await tarOf(ws);
        const s = await Session.open({ repo, home, layers: { commands: null }, driver: driverFor(fake) });
        const stop = await s.stop('test');
        assert.ok(stop.result, shape);
        assert.equal(stop.result.headCommit, stop.result.baseCommit, `${shape}: the hostile history is not the result`);
        assert.deepEqual(
          stop.result.refusals.map((r) => r.rule),
          [shape === 'tree-bomb' ? 'too-large' : 'git-symlink'],
        );
        assert.equal(fake.claim, null);
      }
    } finally {
      cleanup(repo);
    }
  });

  it('the claim is deleted when the session fails mid-way (the pod refuses the snapshot)', async () => {
    restoreStatus = 1;
    try {
      const lower = join(home, 'l3');
      mkdirSync(lower);
      const before = fake.deleted.length;
      await assert.rejects(
        driverFor(fake).start(specFor(home, 'ses-hostile00003', lower, [])),
        /could not take the workspace/,
      );
      assert.equal(fake.claim, null, 'no claim outlives the failed start');
      assert.equal(fake.deleted.length, before + 1);
    } finally {
      restoreStatus = 0;
    }
  });
});

describe("brokered placeholders reach the pod's agent container (runsc pod; FakeKubeApiServer: a fake)", () => {
  it("a command in the pod holds the pod gateway's placeholder, never the real value; the agent cannot rewrite what the gateway published", async () => {
    const home = tmp('airlock-pod-ph-');
    const fake = new FakeKubeApiServer();
    const real = 'real-secret-value-0123456789abcdef';
    let pod: RunscPod | null = null;
    try {
      const policy = `${POLICY}    - host: api.example\ncredentials:\n  brokered:\n    - name: API_TOKEN\n      source: { env: API_TOKEN }\n      destinations: [{ host: api.example }]\n`;
      pod = await podBehindFake(home, 'sbx-ph', fake, { policyYaml: policy, credentials: { API_TOKEN: real } });
      const lower = join(home, 'lower');
      mkdirSync(lower);
      const sb = await driverFor(fake).start(specFor(home, 'ses-podph000001', lower, []));
      try {
        const published = JSON.parse(readFileSync(join(pod.dirs.shared, 'env.json'), 'utf8')) as Record<string, string>;
        const placeholder = published.API_TOKEN!;
        assert.ok(placeholder && placeholder !== real, 'the gateway published a placeholder, not the real value');
        const r = await run(sb, ['sh', '-c', 'echo "$API_TOKEN"; echo "$SSL_CERT_FILE"; head -c 27 "$SSL_CERT_FILE"']);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(
          r.stdout,
          `${placeholder}\n/run/airlock/shared/ca.pem\n-----BEGIN CERTIFICATE-----`,
          "the pod gateway's placeholder and CA bundle",
        );
        const env = await run(sb, ['sh', '-c', 'cat /proc/self/environ']);
        assert.ok(!env.stdout.includes(real), 'the real value is nowhere in the agent container');
        const write = await run(sb, ['sh', '-c', 'echo \'{"API_TOKEN":"mine"}\' > /run/airlock/shared/env.json']);
        assert.notEqual(write.status, 0, 'the shared volume is read-only for the agent');
        assert.equal((await run(sb, ['sh', '-c', 'echo "$API_TOKEN"'])).stdout, `${placeholder}\n`);
      } finally {
        await sb.killAll();
        await sb.stop();
      }
    } finally {
      fake.close();
      pod?.stop();
      cleanup(home);
    }
  });
});

describe('a session end to end on the runsc pod (Session.open with the kubernetes driver, FakeKubeApiServer: a fake)', () => {
  it('runs a command in the pod, the pod gateway refuses a disallowed host, the capture becomes a proposal; the claim is gone', async () => {
    const home = tmp('airlock-pod-e2e-');
    const repo = makeRepo({ 'README.md': '# app\n', 'keep.txt': 'keep\n', 'drop.txt': 'drop\n' });
    const fake = new FakeKubeApiServer();
    let pod: RunscPod | null = null;
    try {
      pod = await podBehindFake(home, 'sbx-e2e', fake);
      const s = await Session.open({ repo, home, layers: { commands: null }, driver: driverFor(fake) });
      const r = await s.run([
        'sh',
        '-c',
        'echo changed >> README.md && rm drop.txt && curl -s -o /dev/null -w "%{http_code}" http://denied.example/',
      ]);
      assert.equal(r.stdout, '403');
      const stop = await s.stop('test');
      assert.ok(stop.result, 'captured');
      assert.equal(stop.result.filesChanged, 2, 'the edit and the deletion (a root-level deletion is seen too)');
      assert.deepEqual(
        stop.result.warnings,
        [],
        'a plain copy is hashed whole, not walked as an overlay that is not there',
      );
      const store = new AuditStore(join(home, 'audit.db'));
      try {
        const { proposal } = await createProposal(store, s.id, { home });
        assert.equal(proposal.session, s.id);
        assert.equal(proposal.head, stop.result.headCommit, "the proposal is the pod's captured work");
      } finally {
        store.close();
      }
      const diff = spawnSync('git', ['diff', '--name-status', stop.result.baseCommit, stop.result.headCommit], {
        env: { ...process.env, GIT_DIR: stop.result.resultRepo },
        encoding: 'utf8',
      }).stdout;
      assert.equal(diff, 'M\tREADME.md\nD\tdrop.txt\n');
      assert.equal(fake.claim, null, 'the claim is deleted when the session ends');
      assert.equal(
        gatewayEvents(pod, 'egress.request').filter((e) => e.decision === 'deny' && e.data.includes('denied.example'))
          .length,
        1,
      );
    } finally {
      fake.close();
      pod?.stop();
      cleanup(home, repo);
    }
  });
});

/** `airlock …` without blocking this process: the fake API server answering it lives here. */
function airlockAsync(
  args: string[],
  o: { home: string; env: Record<string, string> },
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(BIN, args, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AIRLOCK_HOME: o.home, NO_COLOR: '1', ...o.env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
  return new Promise((resolve) =>
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    }),
  );
}

/** An org policy that runs sessions on the fake's cluster; its kubeconfig as an admin would keep it (root, 0600). */
function orgPolicyFor(fake: FakeKubeApiServer, dir: string): string {
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, fake.kubeconfigText(), { mode: 0o600 });
  const org = join(dir, 'org.yaml');
  writeFileSync(
    org,
    `${POLICY}sandbox:\n  runtime: kubernetes\n  kubernetes:\n    kubeconfig: ${kubeconfig}\n    namespace: airlock-sessions\n    warmPool: airlock-session\n    claimTimeoutSeconds: 60\n`,
  );
  return org;
}

describe('sandbox.runtime: kubernetes chosen by the ORG policy (airlock run; FakeKubeApiServer: a fake)', () => {
  it("airlock run claims a sandbox on the org's cluster, runs the command in the pod, says and records the runtime; the capture becomes a proposal", async () => {
    const home = tmp('airlock-pod-cli-');
    // the repo asks for bwrap: a repo cannot step back from the org's runtime
    const repo = makeRepo({ 'README.md': '# app\n', 'airlock.yaml': 'sandbox:\n  runtime: bwrap\n' });
    const fake = new FakeKubeApiServer();
    let pod: RunscPod | null = null;
    try {
      pod = await podBehindFake(home, 'sbx-cli', fake);
      const org = orgPolicyFor(fake, home);
      const r = await airlockAsync(['run', '--repo', repo, '--', 'sh', '-c', 'id -u; echo changed >> README.md'], {
        home,
        env: { AIRLOCK_ORG_POLICY: org },
      });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, '100000\n', "the command ran as the pod's agent user");
      assert.match(r.stderr, /runtime: kubernetes/);
      const claims = fake.requests.filter((q) => q.method === 'POST' && q.url.includes('/sandboxclaims'));
      assert.equal(claims.length, 1);
      assert.match(claims[0]!.url, /\/namespaces\/airlock-sessions\/sandboxclaims/, "the org policy's namespace");
      assert.equal(
        (claims[0]!.body as { spec: { warmPoolRef: { name: string } } }).spec.warmPoolRef.name,
        'airlock-session',
      );
      assert.ok(fake.execs.length > 0 && fake.execs.every((e) => e.auth === 'Bearer fake-token'));
      assert.equal(fake.claim, null, 'the claim is deleted when the session ends');

      const j = airlock(['sessions', '--json'], { home });
      assert.equal(j.status, 0, j.stderr);
      const row = (JSON.parse(j.stdout) as { id: string; runtime: string }[]).at(-1)!;
      assert.equal(row.runtime, 'kubernetes');
      const store = new AuditStore(join(home, 'audit.db'));
      try {
        const start = store.query({ session: row.id, type: 'session.start' })[0]!;
        assert.equal((start.data as { runtime: string }).runtime, 'kubernetes');
        assert.equal(store.query({ session: row.id, type: 'sandbox.claimed' }).length, 1);
        const { proposal } = await createProposal(store, row.id, { home });
        const diff = spawnSync('git', ['diff', '--name-status', proposal.base, proposal.head], {
          env: { ...process.env, GIT_DIR: join(home, 'sessions', row.id, 'result.git') },
          encoding: 'utf8',
        });
        assert.equal(diff.stdout, 'M\tREADME.md\n', diff.stderr);
      } finally {
        store.close();
      }
    } finally {
      fake.close();
      pod?.stop();
      cleanup(home, repo);
    }
  });

  it("a repo policy pointing sandbox.kubernetes at an attacker's kubeconfig and namespace is refused (exit 65, file:line:key) and recorded: no cluster is contacted", async () => {
    const home = tmp('airlock-pod-cli-');
    const org = new FakeKubeApiServer();
    const attacker = new FakeKubeApiServer();
    let repo = '';
    try {
      await org.start();
      await attacker.start();
      const orgPolicy = orgPolicyFor(org, home);
      const evil = join(home, 'attacker-kubeconfig');
      writeFileSync(evil, attacker.kubeconfigText(), { mode: 0o600 });
      repo = makeRepo({
        'airlock.yaml': `sandbox:\n  runtime: kubernetes\n  kubernetes:\n    kubeconfig: ${evil}\n    namespace: attacker\n`,
      });
      const r = await airlockAsync(['run', '--repo', repo, '--', 'true'], {
        home,
        env: { AIRLOCK_ORG_POLICY: orgPolicy },
      });
      assert.equal(r.status, 65, r.stderr);
      assert.match(
        r.stderr,
        /airlock\.yaml@[0-9a-f]+:3:\d+: sandbox\.kubernetes: only the organisation policy may set/,
      );
      assert.match(r.stderr, /hint: remove the key from this file/);
      const store = new AuditStore(join(home, 'audit.db'));
      try {
        const refused = store.query({ type: 'policy.refused' });
        assert.equal(refused.length, 1, 'the attempt is recorded');
        assert.equal(refused[0]!.decision, 'deny');
        assert.match(String(refused[0]!.data.error), /sandbox\.kubernetes: only the organisation policy may set/);
      } finally {
        store.close();
      }
      assert.deepEqual(attacker.requests, [], "the attacker's cluster is never contacted");
      assert.deepEqual(org.requests, [], 'no session starts on a refused policy');
    } finally {
      org.close();
      attacker.close();
      cleanup(home, repo);
    }
  });
});
