// The security layers cannot be left out by accident: a session opened through any entry
// point (CLI run, session start + exec daemon, the SDK's openSession, Session.open from
// src/session/index.ts, the MCP server) meets every layer: the command rules deny `git
// push`, the base tree's secret is redacted before the agent sees it, a detection rule
// fires on `socat`, and checkpoints and proposals follow. Leaving a layer out takes an
// explicit null and is recorded. Programmatic entry points run in a fresh process each,
// importing only that entry module.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { AuditStore, type AuditEvent } from '../../src/audit/index.ts';
import { Session, LAYER_NAMES } from '../../src/session/index.ts';
import { airlock, makeRepo, tmp, cleanup } from '../helpers.ts';

const TOKEN = 'ghp_' + 'Zq8Wx2Ec4Rv6Tb8Yn0Um2Ik4Ol6Pa8Sd0Fg1';
const SECRET_CHECK = 'if grep -q Zq8Wx2Ec4Rv6 config.js; then echo SECRET-PRESENT; else echo SECRET-ABSENT; fi';
const FIXTURE = join(import.meta.dirname, 'fixtures', 'open-via.ts');

let home: string;
let repo: string;

function events(session: string): AuditEvent[] {
  const st = new AuditStore(join(home, 'audit.db'));
  try {
    return st.query({ session });
  } finally {
    st.close();
  }
}

/** Every layer ran: recorded on at start, none left out, detection fired, a checkpoint closed it. */
function assertLayersMet(session: string, o: { commandDenied: boolean }): void {
  const ev = events(session);
  const types = new Set(ev.map((e) => e.type));
  const start = ev.find((e) => e.type === 'session.start');
  assert.ok(start, `session.start of ${session}: ${[...types].join(',')}`);
  assert.deepEqual(start.data.layers, Object.fromEntries(LAYER_NAMES.map((n) => [n, 'on'])));
  assert.ok(!types.has('session.layer_disabled'));
  assert.ok(types.has('secrets.redacted'), `secrets layer: ${[...types].join(',')}`);
  const findings = ev.filter((e) => e.type === 'detect.finding').map((e) => e.rule);
  assert.ok(findings.includes('detect.netcat-like'), `detection layer fired: ${findings.join(',') || 'no finding'}`);
  if (o.commandDenied)
    assert.ok(
      ev.some((e) => e.type === 'command.denied' && e.rule === 'commands.git-push'),
      'commands layer denied git push',
    );
  const st = new AuditStore(join(home, 'audit.db'));
  try {
    assert.ok(
      st.query({ type: 'audit.checkpoint' }).some((e) => String(e.data.reason) === `session ${session} end`),
      'telemetry layer signed the end checkpoint',
    );
  } finally {
    st.close();
  }
}

describe('every entry point meets every layer', () => {
  before(() => {
    home = tmp('airlock-home-');
    repo = makeRepo({ 'README.md': '# demo\n', 'config.js': `export const token = "${TOKEN}";\n` });
  });
  after(() => cleanup(home, repo));

  it('CLI: airlock run', () => {
    const r = airlock(['run', '--', 'sh', '-c', `${SECRET_CHECK}; socat -V >/dev/null`], { home, cwd: repo });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /SECRET-ABSENT/);
    const session = /ses-[a-z0-9]+/.exec(r.stdout + r.stderr)![0];
    // the run's own command is the human's choice (no command rules); the other layers hold
    assertLayersMet(session, { commandDenied: false });
  });

  it('CLI: airlock session start + exec (the supervisor daemon)', () => {
    const s = airlock(['session', 'start', '--json', '--repo', repo], { home });
    assert.equal(s.status, 0, s.stderr);
    const id = JSON.parse(s.stdout).id as string;
    try {
      const push = airlock(['exec', id, '--', 'git', 'push', 'origin', 'main'], { home });
      assert.equal(push.status, 77, push.stderr);
      assert.match(push.stderr, /denied by commands\.git-push/);
      assert.match(airlock(['exec', id, '--', 'sh', '-c', SECRET_CHECK], { home }).stdout, /SECRET-ABSENT/);
      assert.equal(airlock(['exec', id, '--', 'socat', '-V'], { home }).status, 0);
    } finally {
      airlock(['session', 'stop', id], { home });
    }
    assertLayersMet(id, { commandDenied: true });
  });

  for (const via of ['sdk', 'session', 'mcp']) {
    it(`${via === 'sdk' ? 'SDK openSession (src/index.ts)' : via === 'session' ? 'Session.open imported from src/session/index.ts alone' : 'MCP server (createAirlockMcpServer)'}`, () => {
      const r = spawnSync(process.execPath, [FIXTURE, via, repo], {
        encoding: 'utf8',
        timeout: 180_000,
        env: { ...process.env, AIRLOCK_HOME: home },
      });
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
        session: string;
        denied: string;
        secret: string;
      };
      assert.match(out.denied, /denied by commands\.git-push/);
      assert.match(out.secret, /SECRET-ABSENT/);
      assertLayersMet(out.session, { commandDenied: true });
    });
  }

  it('leaving a layer out takes an explicit null and is recorded; an unknown layer name is refused', async () => {
    await assert.rejects(
      Session.open({ repo, home, layers: { comands: null } as never }),
      /unknown session layer\(s\): comands/,
    );
    const s = await Session.open({ repo, home, layers: { commands: null } });
    let out: { status: number; stdout: string };
    try {
      out = await s.run(['sh', '-c', 'echo not-checked; git push origin main 2>/dev/null; true']);
      await assert.doesNotReject(s.run(['git', 'push', 'origin', 'main']).then(() => undefined));
    } finally {
      await s.stop('test done');
    }
    assert.match(out.stdout, /not-checked/);
    const ev = events(s.id);
    const off = ev.filter((e) => e.type === 'session.layer_disabled');
    assert.deepEqual(
      off.map((e) => [e.data.layer, e.severity, e.rule]),
      [['commands', 'high', 'builtin.session.layers']],
    );
    assert.equal(
      ev.find((e) => e.type === 'session.start')!.data.layers &&
        (ev.find((e) => e.type === 'session.start')!.data.layers as Record<string, string>).commands,
      'off',
    );
    assert.ok(!ev.some((e) => e.type === 'command.denied'));
  });
});
