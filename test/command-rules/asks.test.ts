import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AuditStore } from '../../src/audit/index.ts';
import { requestApproval, answerAsk, listAsks, assertOutsideSandbox } from '../../src/command-rules/index.ts';
import { AirlockError } from '../../src/common/errors.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function home(): { dir: string; db: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-asks-'));
  return { dir, db: join(dir, 'audit.db'), done: () => rmSync(dir, { recursive: true, force: true }) };
}

function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [join(ROOT, 'src/cli/run.ts'), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => {
      stdout += d;
    });
    p.stderr.on('data', (d) => {
      stderr += d;
    });
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

test('ask is answered from another terminal (a separate process via the CLI)', async () => {
  const h = home();
  const store = new AuditStore(h.db);
  try {
    const pending = requestApproval(store, {
      session: 's1',
      command: ['rm', '-rf', 'build'],
      rule: 'commands.rm',
      timeoutSeconds: 60,
      pollMs: 50,
    });
    // wait until the ask is visible to other processes
    let listed: { id: number; command: string[] }[] = [];
    for (let i = 0; i < 100 && listed.length === 0; i++) {
      const r = await runCli(['approvals', '--json'], { AIRLOCK_HOME: h.dir });
      assert.equal(r.code, 0, r.stderr);
      listed = JSON.parse(r.stdout) as typeof listed;
    }
    assert.equal(listed.length, 1);
    assert.deepEqual(listed[0]!.command, ['rm', '-rf', 'build']);
    const ans = await runCli(['approvals', 'allow', String(listed[0]!.id), '--as', 'alice@example.com'], {
      AIRLOCK_HOME: h.dir,
    });
    assert.equal(ans.code, 0, ans.stderr);
    const res = await pending;
    assert.deepEqual(res.decision, 'allow');
    assert.equal(res.by, 'alice@example.com');
    // answering again is refused with a clear error
    const again = await runCli(['approvals', 'deny', String(listed[0]!.id), '--as', 'bob'], { AIRLOCK_HOME: h.dir });
    assert.equal(again.code, 75);
    assert.match(again.stderr, /already answered: allow by alice@example.com/);
    const types = store.query({ session: 's1' }).map((e) => e.type);
    assert.deepEqual(types, ['command.ask', 'command.answer']);
  } finally {
    store.close();
    h.done();
  }
});

test('no answer: denied after the timeout, and the timeout is recorded', async () => {
  const h = home();
  const store = new AuditStore(h.db);
  try {
    const res = await requestApproval(store, {
      session: 's2',
      command: ['dd', 'if=/dev/zero'],
      rule: 'commands.dd',
      timeoutSeconds: 0.3,
      pollMs: 50,
    });
    assert.equal(res.decision, 'deny');
    assert.equal(res.by, null);
    const ev = store.query({ session: 's2' });
    assert.deepEqual(
      ev.map((e) => e.type),
      ['command.ask', 'command.timeout'],
    );
    assert.equal(ev[1]!.decision, 'deny');
    // a late answer cannot flip it
    const id = (ev[0]!.data as { askId: number }).askId;
    assert.throws(
      () => answerAsk(store, id, 'allow', 'late@example.com'),
      (e: unknown) => e instanceof AirlockError && /already answered: timeout/.test(e.message),
    );
  } finally {
    store.close();
    h.done();
  }
});

test('terminal prompt answers; a prompt that defers leaves it to other terminals', async () => {
  const h = home();
  const store = new AuditStore(h.db);
  const other = new AuditStore(h.db); // a second terminal on the same database
  try {
    const a = await requestApproval(store, {
      session: 's3',
      command: ['rm', '-rf', 'x'],
      rule: 'r',
      timeoutSeconds: 30,
      pollMs: 20,
      onPrompt: async () => ({ decision: 'deny', by: 'carol', reason: 'not now' }),
    });
    assert.deepEqual(a, { decision: 'deny', by: 'carol', reason: 'not now' });
    let aborted = false;
    const p = requestApproval(store, {
      session: 's3',
      command: ['rm', '-rf', 'y'],
      rule: 'r',
      timeoutSeconds: 30,
      pollMs: 20,
      onPrompt: (info) =>
        new Promise((resolve) => {
          info.signal.addEventListener('abort', () => {
            aborted = true;
            resolve(null);
          });
        }),
    });
    let pending: ReturnType<typeof listAsks> = [];
    for (let i = 0; i < 200 && pending.length === 0; i++) {
      pending = listAsks(other);
      await new Promise((r) => setTimeout(r, 10));
    }
    answerAsk(other, pending[0]!.id, 'allow', 'dave');
    assert.equal((await p).decision, 'allow');
    assert.equal(aborted, true, 'the terminal prompt is withdrawn when answered elsewhere');
  } finally {
    store.close();
    other.close();
    h.done();
  }
});

test('unknown ask id is a clear NOT_FOUND', async () => {
  const h = home();
  try {
    const r = await runCli(['approvals', 'allow', '999', '--as', 'x'], { AIRLOCK_HOME: h.dir });
    assert.equal(r.code, 66);
    assert.match(r.stderr, /no pending approval #999/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  } finally {
    h.done();
  }
});

test('answers are refused from inside a sandbox', async () => {
  const h = home();
  const store = new AuditStore(h.db);
  try {
    assert.throws(() => assertOutsideSandbox(store, { AIRLOCK_SANDBOX: '1' }), /inside a sandbox/);
    // the namespaces recorded for this store differ from ours (as inside bwrap)
    store.setKv('airlock.host.namespaces', JSON.stringify({ user: 'user:[1]', pid: 'pid:[2]' }));
    assert.throws(() => assertOutsideSandbox(store, {}), /namespaces differ/);
    const r = await runCli(['approvals', 'allow', '1', '--as', 'x'], { AIRLOCK_HOME: h.dir });
    assert.equal(r.code, 77);
    assert.match(r.stderr, /inside a sandbox/);
  } finally {
    store.close();
    h.done();
  }
});

test('an allow is stored with its scope: once by default; --session only for a destination, refused for a command', async () => {
  const h = home();
  const store = new AuditStore(h.db);
  try {
    const cmd = requestApproval(store, {
      session: 's1',
      command: ['rm', '-rf', 'build'],
      rule: 'commands.rm',
      timeoutSeconds: 60,
      pollMs: 20,
    });
    const dest = requestApproval(store, {
      session: 's1',
      command: ['egress', 'api.example.com:443'],
      rule: 'egress.ask.api',
      timeoutSeconds: 60,
      pollMs: 20,
    });
    const [c, d] = listAsks(store);
    const refused = await runCli(['approvals', 'allow', String(c!.id), '--session', '--as', 'rita@example.com'], {
      AIRLOCK_HOME: h.dir,
    });
    assert.equal(refused.code, 64, refused.stderr);
    assert.match(refused.stderr, /is a command: an allow runs it once/);
    assert.equal(answerAsk(store, c!.id, 'allow', 'rita@example.com').scope, 'once');
    const r = await runCli(['approvals', 'allow', String(d!.id), '--session', '--as', 'rita@example.com'], {
      AIRLOCK_HOME: h.dir,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /allowed for the session by rita@example\.com/);
    assert.deepEqual(await Promise.all([cmd, dest]).then((x) => x.map((a) => a.scope)), ['once', 'session']);
    const answers = store.query({ type: 'command.answer' });
    assert.deepEqual(
      answers.map((e) => [e.data.by, e.data.scope]),
      [
        ['rita@example.com', 'once'],
        ['rita@example.com', 'session'],
      ],
    );
  } finally {
    store.close();
    h.done();
  }
});
