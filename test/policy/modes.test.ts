// Policy modes (issue 20): record and shadow per layer, and the org policy as the only
// authority on which modes a repo may use. A repo that asks for record mode without the
// org's consent is refused with file:line:key, never silently run in record (or enforce).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePolicyText, resolvePolicy, type PolicySource } from '../../src/policy/index.ts';
import { decideCommandInMode } from '../../src/command-rules/index.ts';
import { AirlockError } from '../../src/common/errors.ts';
import { airlock, makeRepo, tmp, cleanup } from '../helpers.ts';

const src = (kind: string, text: string): PolicySource => ({
  kind,
  origin: `${kind}.yaml`,
  raw: parsePolicyText(text, `${kind}.yaml`),
  text,
});

function refused(f: () => unknown): AirlockError {
  try {
    f();
  } catch (e) {
    if (e instanceof AirlockError) return e;
    throw e;
  }
  assert.fail('expected a refusal');
}

describe('policy modes', () => {
  it('enforce is the default for every layer; record needs the org policy to allow it', () => {
    const p = resolvePolicy([]).policy;
    assert.deepEqual([p.modes.egress, p.modes.commands, p.modes.packages], ['enforce', 'enforce', 'enforce']);
    assert.deepEqual(p.modes.allowed, ['enforce', 'shadow']);
  });

  it('a repo asking for record mode without the org allowing it is refused, naming file, line and key', () => {
    const repo = src('repo', 'version: 1\nsandbox:\n  traceProcesses: true\nmodes:\n  egress: record\n');
    const e = refused(() => resolvePolicy([repo]));
    assert.equal(e.kind, 'POLICY_INVALID');
    assert.match(e.message, /repo\.yaml:5:\d+: modes\.egress: mode "record" is not allowed by the organisation policy/);
    const org = src('org', 'modes:\n  allowed: [enforce]\n');
    const shadow = src('repo', 'modes:\n  commands: shadow\n');
    assert.match(
      refused(() => resolvePolicy([org, shadow])).message,
      /repo\.yaml:2:\d+: modes\.commands: mode "shadow" is not allowed .*allowed: enforce\)/,
    );
  });

  it('a repo cannot grant itself modes: modes.allowed in a repo file is refused even without an org file', () => {
    const repo = src('repo', 'modes:\n  allowed: [enforce, shadow, record]\n  egress: record\n');
    const e = refused(() => resolvePolicy([repo]));
    assert.match(e.message, /repo\.yaml:2:\d+: modes\.allowed: only the organisation policy may set modes\.allowed/);
    assert.match(e.message, /modes\.egress: mode "record" is not allowed/);
  });

  it('with the org allowing record, the repo may record; the org still sees its own list as the effective one', () => {
    const org = src('org', 'modes:\n  allowed: [enforce, shadow, record]\n');
    const r = resolvePolicy([org, src('repo', 'modes:\n  egress: record\n  commands: record\n')]);
    assert.equal(r.policy.modes.egress, 'record');
    assert.deepEqual(r.policy.modes.allowed, ['enforce', 'shadow', 'record']);
    // the org may pin a layer to enforce: the stricter mode wins
    const pinned = resolvePolicy([
      src('org', 'modes:\n  allowed: [enforce, shadow, record]\n  egress: enforce\n'),
      src('repo', 'modes:\n  egress: record\n'),
    ]);
    assert.equal(pinned.policy.modes.egress, 'enforce');
  });

  it('record mode lifts the default and asks, never an explicit deny rule; the would-be decision is kept', () => {
    const org = src('org', 'modes:\n  allowed: [enforce, shadow, record]\n');
    const p = resolvePolicy([
      org,
      src(
        'repo',
        'modes:\n  commands: record\ncommands:\n  default: deny\n  rules:\n    - { id: no-curl, match: { command: curl }, action: deny }\n    - { id: ask-rm, match: { command: rm }, action: ask }\n',
      ),
    ]).policy;
    const ls = decideCommandInMode(['ls', '-la'], p);
    assert.equal(ls.action, 'allow');
    assert.equal(ls.rule, 'modes.commands');
    assert.deepEqual(
      [ls.modeNote?.mode, ls.modeNote?.wouldBe.action, ls.modeNote?.wouldBe.rule],
      ['record', 'deny', 'commands.default'],
    );
    const rm = decideCommandInMode(['rm', 'x'], p);
    assert.deepEqual(
      [rm.action, rm.modeNote?.wouldBe.action, rm.modeNote?.wouldBe.rule],
      ['allow', 'ask', 'commands.ask-rm'],
    );
    const curl = decideCommandInMode(['/usr/bin/curl', 'https://x'], p);
    assert.deepEqual(
      [curl.action, curl.rule],
      ['deny', 'commands.no-curl'],
      'an explicit deny rule holds in record mode',
    );
    const hidden = decideCommandInMode(['sh', '-c', '$(echo curl) x'], p);
    assert.equal(hidden.action, 'deny', 'what cannot be analysed stays refused');
  });

  it('shadow mode enforces the policy and records what the candidate decides', () => {
    const p = resolvePolicy([src('repo', 'modes:\n  commands: shadow\n')]).policy;
    const cand = resolvePolicy([src('repo', 'commands:\n  default: deny\n')]).policy;
    const d = decideCommandInMode(['make', 'test'], p, cand);
    assert.deepEqual(
      [d.action, d.rule, d.modeNote?.mode, d.modeNote?.wouldBe.action, d.modeNote?.policy],
      ['allow', 'commands.default', 'shadow', 'deny', 'candidate'],
    );
  });

  it('the CLI refuses a record-mode repo policy with exit 65 and the line, and policy check names it', () => {
    const home = tmp();
    const repo = makeRepo({ 'README.md': 'x\n', 'airlock.yaml': 'version: 1\nmodes:\n  egress: record\n' });
    try {
      const r = airlock(['policy', 'check'], { cwd: repo, home });
      assert.equal(r.status, 65, r.stderr);
      assert.match(
        r.stderr,
        /airlock\.yaml:3:\d+: modes\.egress: mode "record" is not allowed by the organisation policy/,
      );
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      const org = join(home, 'org.yaml');
      writeFileSync(org, 'modes:\n  allowed: [enforce, shadow, record]\n');
      const ok = airlock(['policy', 'check', '--org-policy', org], { cwd: repo, home });
      assert.equal(ok.status, 0, ok.stderr);
    } finally {
      cleanup(home, repo);
    }
  });
});
