// Issue 20 end to end on a real session (bubblewrap, the gateway, curl inside the sandbox):
// a record-mode session runs only with the org's consent and still refuses what the org and
// the builtins refuse; `airlock policy replay` re-decides its events under another policy
// and names them; `airlock policy learn` proposes the narrowest airlock.yaml, never with a
// destination the org denies, as a proposal whose review shows the replay report.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { Session } from '../../src/session/index.ts';
import { AuditStore } from '../../src/audit/index.ts';
import { getProposal } from '../../src/review/index.ts';
import { AirlockError } from '../../src/common/errors.ts';
import { airlock, makeRepo, tmp, cleanup } from '../helpers.ts';

let home: string;
let repo: string;
let granted: Server;
let other: Server;
let port = 0;
let otherPort = 0;
let id = '';
const hits: string[] = [];
let org = '';
let policyFile = '';

const listen = async (s: Server) => {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as { port: number }).port;
};

describe('policy modes, replay and learn on a real session', () => {
  before(async () => {
    home = tmp('airlock-home-');
    granted = createServer((q, s) => {
      hits.push(`granted ${q.method} ${q.url}`);
      s.end('granted\n');
    });
    other = createServer((q, s) => {
      hits.push(`other ${q.method} ${q.url}`);
      s.end('other\n');
    });
    port = await listen(granted);
    otherPort = await listen(other);
    const policy = `modes:\n  egress: record\n  commands: record\ncommands:\n  default: deny\negress:\n  allow:\n    - id: dev\n      host: localhost\n      ports: [${port}]\n  allowCidrs:\n    - id: loopback\n      cidr: 127.0.0.1/32\n      ports: [${port}, ${otherPort}]\n`;
    repo = makeRepo({ 'README.md': '# demo\n', 'airlock.yaml': policy });
    policyFile = join(home, 'repo-policy.yaml');
    writeFileSync(policyFile, policy);
    org = join(home, 'org.yaml');
    writeFileSync(org, 'modes:\n  allowed: [enforce, shadow, record]\n');
  });
  after(() => {
    granted.close();
    other.close();
    cleanup(home, repo);
  });

  it('shadow mode and a candidate policy go together: either alone is a usage error before anything starts', async () => {
    const cand = join(home, 'cand.yaml');
    writeFileSync(cand, 'version: 1\n');
    await assert.rejects(
      Session.open({ repo, home, orgPolicy: org, shadowPolicy: cand }),
      /--shadow-policy .*: no layer is in shadow mode/,
    );
    const shadowOnly = join(home, 'shadow-only.yaml');
    writeFileSync(shadowOnly, 'modes:\n  egress: shadow\n');
    await assert.rejects(
      Session.open({ repo, home, policyFile: shadowOnly }),
      (e: unknown) =>
        e instanceof AirlockError &&
        e.kind === 'USAGE' &&
        /modes\.egress is shadow but no candidate policy/.test(e.message),
    );
  });

  it('without the org allowing record mode the session does not start, naming the file, line and key', async () => {
    const strict = join(home, 'org-strict.yaml');
    writeFileSync(strict, 'modes:\n  allowed: [enforce]\n');
    await assert.rejects(Session.open({ repo, home, orgPolicy: strict }), (e: unknown) => {
      assert.ok(e instanceof AirlockError && e.kind === 'POLICY_INVALID');
      assert.match(
        (e as Error).message,
        /airlock\.yaml@[0-9a-f]{12}:2:\d+: modes\.egress: mode "record" is not allowed/,
      );
      return true;
    });
  });

  it('a record-mode session lets through what only the default would refuse, records the would-be decision, and still refuses the metadata address', async () => {
    const s = await Session.open({ repo, home, orgPolicy: org });
    id = s.id;
    try {
      const r = await s.run([
        'sh',
        '-c',
        `curl -sS -m 10 --noproxy '' http://localhost:${otherPort}/v1/items/7; curl -s -m 10 --noproxy '' -o /dev/null -w '%{http_code}\\n' http://169.254.169.254/latest/meta-data/; curl -sS -m 10 --noproxy '' http://localhost:${port}/api/x; true '\x1b]0;pwned\x07'`,
      ]);
      assert.match(r.stdout, /other\n403\ngranted\n/, r.stderr);
    } finally {
      await s.stop('test');
    }
    assert.ok(hits.includes('other GET /v1/items/7'));
    const st = new AuditStore(join(home, 'audit.db'));
    try {
      const ev = st.query({ session: id });
      assert.ok(
        ev.some(
          (e) =>
            e.type === 'session.mode' &&
            e.data.layer === 'egress' &&
            e.data.mode === 'record' &&
            e.severity === 'medium',
        ),
      );
      const lifted = ev.find((e) => e.type === 'egress.request' && e.data.port === otherPort)!;
      assert.deepEqual(
        [lifted.decision, lifted.rule, lifted.data.mode, (lifted.data.wouldBe as { rule: string }).rule],
        ['allow', 'modes.egress', 'record', 'egress.default-deny'],
      );
      const meta = ev.find((e) => e.type === 'egress.request' && e.data.host === '169.254.169.254')!;
      assert.deepEqual([meta.decision, meta.rule], ['deny', 'builtin.private-address']);
      const cmd = ev.find((e) => e.type === 'command.exec')!;
      assert.deepEqual(
        [cmd.rule, cmd.data.mode, (cmd.data.wouldBe as { action: string; rule: string }).rule],
        ['modes.commands', 'record', 'commands.default'],
      );
    } finally {
      st.close();
    }
  });

  it('replay decides every recorded event again under another policy and names the events', () => {
    const next = join(home, 'next.yaml');
    writeFileSync(
      next,
      `commands:\n  rules:\n    - { id: sh, match: { command: sh }, action: allow }\n    - { id: curl, match: { command: curl }, action: allow }\n    - { id: allow-true, match: { command: 'true' }, action: allow }\n  default: deny\negress:\n  allow:\n    - id: items\n      host: localhost\n      ports: [${otherPort}]\n  allowCidrs:\n    - id: loopback\n      cidr: 127.0.0.1/32\n      ports: [${otherPort}]\n`,
    );
    const r = airlock(['policy', 'replay', '--policy', next, '--org-policy', org, '--json', id], { home });
    assert.equal(r.status, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as {
      newlyAllowed: {
        seq: number;
        id: string;
        target: string;
        what: string;
        before: { rule: string };
        after: { rule: string };
      }[];
      newlyDenied: { target: string; what: string; after: { rule: string } }[];
      summary: string[];
    };
    const items = rep.newlyAllowed.find((c) => c.target === 'localhost' && c.what.includes(`:${otherPort}/v1/items/7`));
    assert.ok(items, JSON.stringify(rep.newlyAllowed));
    assert.ok(items.seq > 0 && items.id.length > 0, 'the event is named');
    assert.deepEqual([items.before.rule, items.after.rule], ['egress.default-deny', 'egress.allow.items']);
    assert.ok(
      rep.newlyAllowed.some((c) => c.what.startsWith('sh ')),
      'the command the policy would now allow',
    );
    assert.ok(
      rep.newlyDenied.some((c) => c.what.includes(`:${port}/api/x`)),
      'the granted host the new policy drops',
    );
    assert.ok(!rep.newlyAllowed.some((c) => c.target === '169.254.169.254'), 'a builtin refusal stays a refusal');
    assert.ok(rep.summary.some((l) => /would have allowed \d+ requests? to localhost/.test(l)));
    const text = airlock(['policy', 'replay', '--policy', next, '--org-policy', org, id], { home });
    assert.match(text.stdout, /newly allowed/);
    assert.match(text.stdout, new RegExp(`#${items.seq} `));
    assert.doesNotMatch(text.stdout, /[\x1b\x07]/, 'agent text (the command line) is escaped before it is printed');
  });

  it('learn proposes the narrowest policy, leaves out what the org denies, and the proposal shows the replay report', () => {
    const orgDeny = join(home, 'org-deny.yaml');
    writeFileSync(
      orgDeny,
      `modes:\n  allowed: [enforce, shadow, record]\negress:\n  deny:\n    - id: no-items\n      host: localhost\n      ports: [${otherPort}]\n`,
    );
    const r = airlock(['policy', 'learn', id, '--org-policy', orgDeny, '--json'], { home });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      proposal: number;
      text: string;
      hosts: string[];
      programs: string[];
      leftOut: { what: string; why: string }[];
    };
    assert.deepEqual(out.hosts, ['localhost']);
    assert.ok(
      out.leftOut.some(
        (x) =>
          x.what === `localhost:${otherPort}` && /organisation policy denies it \(egress\.deny\.no-items\)/.test(x.why),
      ),
      JSON.stringify(out.leftOut),
    );
    assert.doesNotMatch(
      out.text,
      new RegExp(`${otherPort}`),
      'the org-denied destination is not in the learned policy',
    );
    assert.doesNotMatch(out.text, /169\.254/);
    assert.match(out.text, new RegExp(`ports:\\s*\\n?\\s*- ${port}|ports: \\[ ?${port} ?\\]`));
    assert.match(out.text, /methods:[\s\S]*GET/);
    assert.match(out.text, /paths:[\s\S]*\/api/);
    assert.doesNotMatch(out.text, /: record|modes:/, 'the learned policy is enforced');
    assert.deepEqual(out.programs, ['curl', 'sh', 'true']);
    assert.match(out.text, /id: git-push/, 'learning keeps the deny and ask rules');
    const st = new AuditStore(join(home, 'audit.db'));
    try {
      const p = getProposal(st, out.proposal)!;
      const diff = execFileSync('git', ['--git-dir', p.resultRepo, 'show', `${p.head}:airlock.yaml`], {
        encoding: 'utf8',
      });
      assert.equal(diff, out.text, 'the proposal carries exactly the learned file');
      const check = p.findings.find((f) => f.rule === 'review.policy-replay');
      assert.ok(check, JSON.stringify(p.findings.map((f) => f.rule)));
      assert.match(
        check.message,
        /this change would have allowed 1 command running sh in the last 30 days.*replayed \d+ recorded decisions in the last 30 days under the proposed policy/,
      );
      assert.ok(
        p.findings.some((f) => f.rule.startsWith('protectedPaths')),
        'a policy change is a protected path like any other',
      );
    } finally {
      st.close();
    }
    const show = airlock(['review', 'show', String(out.proposal)], { home });
    assert.equal(show.status, 0, show.stderr);
    assert.match(show.stdout, /review\.policy-replay/);
  });
});
