import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditStore } from '../../src/audit/index.ts';

const CLI = join(import.meta.dirname, '..', '..', 'src', 'cli', 'run.ts');
const run = (home: string, args: string[], cwd?: string) =>
  spawnSync(process.execPath, [CLI, ...args], {
    env: { ...process.env, AIRLOCK_HOME: home, NO_COLOR: '1', AIRLOCK_ORG_POLICY: '/nonexistent' },
    encoding: 'utf8',
    cwd,
  });

function home(): { home: string; store: AuditStore } {
  const h = mkdtempSync(join(tmpdir(), 'airlock-cli-'));
  return { home: h, store: new AuditStore(join(h, 'audit.db')) };
}

test('audit show: a timeline without terminal escapes from agent-controlled text; --json gives the events', () => {
  const { home: h, store } = home();
  store.append({ type: 'session.start', session: 's1', data: { agent: 'codex' } });
  const e = store.append({
    type: 'process.exec',
    session: 's1',
    data: { pid: 3, argv: ['echo', '\x1b[2J\x1b[31mfake OK\u202e'] },
  });
  store.append({
    type: 'egress.request',
    session: 's2',
    decision: 'deny',
    rule: 'egress.default',
    data: { host: 'x.example', port: 443 },
  });
  store.close();
  const r = run(h, ['audit', 'show', 's1']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /time\s+type\s+decision\s+rule\s+summary/);
  assert.match(r.stdout, /process\.exec\s+-\s+-\s+exec echo/);
  assert.doesNotMatch(r.stdout, /\x1b|\u202e/, 'no escape or bidi characters reach the terminal');
  assert.doesNotMatch(r.stdout, /x\.example/, 'other sessions are not shown');
  const j = JSON.parse(run(h, ['audit', 'show', 's1', '--json']).stdout);
  assert.equal(j[1].id, e.id);
  assert.equal(run(h, ['audit', 'show', 'nope']).status, 66);
});

test('audit export: ocsf, ecs, cef and jsonl, one event per line, filtered by --since and --session', () => {
  const { home: h, store } = home();
  store.append({ type: 'process.exec', session: 'a', data: { argv: ['ls'] } });
  store.append({
    type: 'egress.request',
    session: 'b',
    decision: 'deny',
    rule: 'egress.default',
    data: { host: 'x', port: 80, method: 'GET', path: '/' },
  });
  store.close();
  const ocsf = run(h, ['audit', 'export', '--format', 'ocsf'])
    .stdout.trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    ocsf.map((o) => o.class_uid),
    [1007, 4002],
  );
  assert.deepEqual(
    ocsf.map((o) => o.type_uid),
    [100701, 400203],
  );
  assert.equal(ocsf[1].disposition_id, 2);
  const ecs = run(h, ['audit', 'export', '--format', 'ecs', '--session', 'b'])
    .stdout.trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(ecs.length, 1);
  assert.equal(ecs[0].event.outcome, 'failure');
  const cef = run(h, ['audit', 'export', '--format', 'cef']).stdout.trim().split('\n');
  assert.match(cef[1]!, /^CEF:0\|Airlock\|Airlock\|0\.1\.0\|egress\.request\|/);
  assert.equal(run(h, ['audit', 'export', '--format', 'jsonl', '--since', '2099-01-01T00:00:00Z']).stdout, '');
  assert.equal(run(h, ['audit', 'export', '--format', 'jsonl', '--since', '1h']).stdout.trim().split('\n').length, 2);
});

test('audit tail follows events appended after it started, filtered by type and severity', async () => {
  const { home: h, store } = home();
  store.append({ type: 'session.start', session: 's' });
  const child = spawn(
    process.execPath,
    [
      CLI,
      'audit',
      'tail',
      '--type',
      'detect.*',
      '--severity',
      'high',
      '--json',
      '--interval',
      '50',
      '--max-events',
      '2',
      '--from-start',
    ],
    { env: { ...process.env, AIRLOCK_HOME: h } },
  );
  let out = '';
  child.stdout.on('data', (b: Buffer) => {
    out += b.toString();
  });
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  await new Promise((r) => setTimeout(r, 700)); // usually started by now; --from-start makes it exact either way
  store.append({ type: 'detect.finding', session: 's', severity: 'low', data: {} });
  const a = store.append({ type: 'detect.finding', session: 's', severity: 'high', data: {} });
  store.append({ type: 'process.exec', session: 's', severity: 'critical', data: {} });
  const b = store.append({ type: 'detect.response', session: 's', severity: 'critical', data: {} });
  const timer = setTimeout(() => child.kill(), 20_000);
  assert.equal(await exited, 0);
  clearTimeout(timer);
  assert.deepEqual(
    out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).id),
    [a.id, b.id],
  );
  store.close();
});

test("sinks status and flush use the org policy's sinks (a checkout's airlock.yaml cannot add one); flush exits 69 while a sink is unreachable", () => {
  const { home: h, store } = home();
  store.append({ type: 'session.start', session: 's' });
  store.close();
  const dir = mkdtempSync(join(tmpdir(), 'airlock-pol-'));
  writeFileSync(
    join(dir, 'org.yaml'),
    `telemetry:\n  sinks:\n    - {type: file, name: local, path: ${dir}/out.jsonl}\n    - {type: syslog, name: soc, host: 127.0.0.1, port: 1}\n`,
  );
  writeFileSync(
    join(dir, 'airlock.yaml'),
    `telemetry:\n  sinks:\n    - {type: file, name: repo-chosen, path: ${dir}/repo.jsonl}\n`,
  );
  const runOrg = (args: string[]) =>
    spawnSync(process.execPath, [CLI, ...args], {
      env: { ...process.env, AIRLOCK_HOME: h, NO_COLOR: '1', AIRLOCK_ORG_POLICY: join(dir, 'org.yaml') },
      encoding: 'utf8',
      cwd: dir,
    });
  const f = runOrg(['sinks', 'flush']);
  assert.equal(f.status, 69, f.stdout + f.stderr);
  const st = JSON.parse(runOrg(['sinks', 'status', '--json']).stdout);
  const byName = Object.fromEntries(st.map((s: { name: string }) => [s.name, s]));
  assert.equal(byName.local.lag, 0);
  assert.equal(byName.soc.lag, 1);
  assert.equal(byName['repo-chosen'], undefined, 'a repo sink never runs');
  assert.match(byName.soc.lastError, /ECONNREFUSED/);
});
