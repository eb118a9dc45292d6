// The policy file: one schema, clear errors with file:line:key, org/repo merging that
// only tightens, provenance, a generated reference that stays in sync, and the init
// template that must validate.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  parsePolicyText,
  resolvePolicy,
  policyJsonSchema,
  defaultPolicy,
  type PolicySource,
} from '../../src/policy/index.ts';
import { INIT_TEMPLATE } from '../../src/policy/template.ts';
import { renderPolicyReference } from '../../scripts/gen-policy-docs.ts';
import { AirlockError } from '../../src/common/errors.ts';
import { approverTrust } from '../../src/store/index.ts';
import { airlock, makeRepo, tmp, cleanup, ROOT } from '../helpers.ts';

const src = (kind: string, text: string): PolicySource => ({
  kind,
  origin: `${kind}.yaml`,
  raw: parsePolicyText(text, `${kind}.yaml`),
});

describe('policy', () => {
  it('defaults are the strictest sensible settings: no network, bounded resources, tracing on', () => {
    const p = defaultPolicy();
    assert.equal(p.sandbox.traceProcesses, true);
    assert.deepEqual(p.egress.allow, []);
    assert.deepEqual(p.egress.presets, []);
    assert.ok(p.sandbox.limits.memoryMB <= 4096 && p.sandbox.limits.pids <= 1024);
    assert.deepEqual(p.credentials.brokered, []);
  });

  it("the shared store is the org's to choose: a repo's is ignored, and no policy may hold its password", () => {
    const org = src('org', 'telemetry:\n  sharedStore: postgres://airlock@db.example.com/audit\n');
    const repo = src('repo', 'telemetry:\n  sharedStore: postgres://evil@203.0.113.9/steal\n');
    assert.equal(resolvePolicy([org, repo]).policy.telemetry.sharedStore, 'postgres://airlock@db.example.com/audit');
    assert.equal(resolvePolicy([src('org', 'telemetry: {}\n'), repo]).policy.telemetry.sharedStore, undefined);
    assert.throws(
      () => resolvePolicy([src('org', 'telemetry:\n  sharedStore: postgres://airlock:hunter2@db.example.com/audit\n')]),
      /no password in a policy file/,
    );
    assert.throws(
      () =>
        resolvePolicy([
          src('org', 'telemetry:\n  sharedStore: postgres://db.example.com/audit?user=a&password=hunter2\n'),
        ]),
      /no password/,
    );
    assert.throws(() => resolvePolicy([src('org', 'telemetry:\n  sharedStore: mysql://db/audit\n')]), /postgres:\/\//);
    assert.equal(
      resolvePolicy([src('org', 'telemetry:\n  sharedStore: postgres://airlock@/audit?host=/run/postgresql\n')]).policy
        .telemetry.sharedStore,
      'postgres://airlock@/audit?host=/run/postgresql',
    );
  });

  it("keys trusted for decisions across hosts are the org's alone: an agent's repo policy cannot add its own", () => {
    const pem = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }).toString();
    const entry = (name: string, key: KeyObject) =>
      `telemetry:\n  approverKeys:\n    - name: ${name}\n      publicKey: |\n${pem(key)
        .trim()
        .split('\n')
        .map((l) => `        ${l}`)
        .join('\n')}\n`;
    const consoleKey = generateKeyPairSync('ed25519').publicKey;
    const agentKey = generateKeyPairSync('ed25519').publicKey;
    const merged = resolvePolicy([src('org', entry('console', consoleKey)), src('repo', entry('agent', agentKey))]);
    assert.deepEqual(
      merged.policy.telemetry.approverKeys.map((k) => k.name),
      ['console'],
    );
    assert.deepEqual(resolvePolicy([src('repo', entry('agent', agentKey))]).policy.telemetry.approverKeys, []);
    const trust = approverTrust({ orgSetting: merged.policy.telemetry.approverKeys });
    assert.equal(trust[0]!.name, 'console');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    assert.throws(
      () => approverTrust({ orgSetting: [{ name: 'old', publicKey: pem(rsa) }] }),
      (e: unknown) => e instanceof AirlockError && e.kind === 'USAGE' && /not an Ed25519 public key/.test(e.message),
    );
  });

  it('a repo policy can only tighten the org policy', () => {
    const org = src(
      'org',
      'sandbox:\n  limits:\n    memoryMB: 1024\n  env:\n    allow: [LANG_X, FOO]\negress:\n  presets: [npm, pypi]\n  transparent: "off"\n',
    );
    const repo = src(
      'repo',
      'sandbox:\n  limits:\n    memoryMB: 8192\n    pids: 64\n  env:\n    allow: [FOO, BAR]\negress:\n  presets: [npm, github]\n  transparent: auto\n',
    );
    const r = resolvePolicy([org, repo]);
    assert.equal(r.policy.sandbox.limits.memoryMB, 1024, 'repo cannot raise memory');
    assert.equal(r.policy.sandbox.limits.pids, 64, 'repo may lower pids');
    assert.deepEqual(r.policy.sandbox.env.allow, ['FOO'], 'grants intersect');
    assert.deepEqual(r.policy.egress.presets, ['npm'], 'presets intersect');
    assert.equal(r.policy.egress.transparent, 'off', 'stricter enum wins');
    assert.match(r.provenance['sandbox.limits.memoryMB']!, /repo\.yaml within org\.yaml/);
    assert.equal(r.provenance['sandbox.limits.pids'], 'repo.yaml');
    const alone = resolvePolicy([repo]);
    assert.equal(alone.policy.sandbox.limits.memoryMB, 8192, 'without an org policy the repo sets its own values');
    assert.notEqual(alone.hash, r.hash);
  });

  it('sandbox.kubernetes (the cluster, a host kubeconfig) comes from the org policy only: a repo or a grant setting it is refused naming the file and key', () => {
    const org = src(
      'org',
      'sandbox:\n  runtime: kubernetes\n  kubernetes:\n    kubeconfig: /etc/airlock/kubeconfig\n    context: prod\n',
    );
    const ok = resolvePolicy([org, src('repo', 'sandbox:\n  runtime: bwrap\n')]).policy.sandbox;
    assert.equal(ok.runtime, 'kubernetes', "a repo cannot step back from the org's cluster");
    assert.deepEqual(ok.kubernetes, {
      kubeconfig: '/etc/airlock/kubeconfig',
      context: 'prod',
      namespace: 'airlock-sessions',
      warmPool: 'airlock-session',
      claimTimeoutSeconds: 120,
    });
    for (const kind of ['repo', 'cli']) {
      const hostile = src(kind, 'sandbox:\n  kubernetes:\n    kubeconfig: /tmp/attacker\n    namespace: attacker\n');
      assert.throws(
        () => resolvePolicy([org, hostile]),
        (e: Error & { exitCode?: number }) =>
          e.exitCode === 65 &&
          /\.yaml: sandbox\.kubernetes: only the organisation policy may set sandbox\.kubernetes/.test(e.message),
      );
      assert.throws(() => resolvePolicy([hostile]), /only the organisation policy may set sandbox\.kubernetes/);
    }
    assert.throws(
      () =>
        parsePolicyText('sandbox:\n  kubernetes:\n    kubeconfig: relative/kc\n    namespace: Bad_NS\n', 'org.yaml'),
      (e: Error) => /org\.yaml:3:\d+: sandbox\.kubernetes\.kubeconfig/.test(e.message) && /namespace/.test(e.message),
    );
  });

  it('sandbox.runtime: the org may require a stronger runtime; a repo may only choose a stronger one', () => {
    const rt = (org: string | null, repo: string) =>
      resolvePolicy([
        ...(org ? [src('org', `sandbox:\n  runtime: ${org}\n`)] : []),
        src('repo', `sandbox:\n  runtime: ${repo}\n`),
      ]).policy.sandbox.runtime;
    assert.equal(rt('gvisor', 'bwrap'), 'gvisor', 'a repo cannot step back to bwrap');
    assert.equal(rt('bwrap', 'gvisor'), 'gvisor', 'a repo may ask for gVisor');
    assert.equal(rt('gvisor', 'kubernetes'), 'kubernetes');
    assert.equal(rt('kubernetes', 'gvisor'), 'kubernetes');
    assert.equal(rt(null, 'bwrap'), 'bwrap');
    assert.equal(defaultPolicy().sandbox.runtime, 'bwrap');
    assert.throws(
      () => parsePolicyText('sandbox:\n  runtime: docker\n', 'airlock.yaml'),
      /airlock\.yaml:2:\d+: sandbox\.runtime/,
    );
  });

  it('errors name file, line, column, key and what is allowed', () => {
    const bad = (text: string): string => {
      try {
        parsePolicyText(text, 'airlock.yaml');
      } catch (e) {
        assert.ok(e instanceof AirlockError);
        assert.equal(e.exitCode, 65);
        return e.message;
      }
      throw new Error('no error');
    };
    assert.match(
      bad('sandbox:\n  limits:\n    memoryMB: many\n'),
      /airlock\.yaml:3:5: sandbox\.limits\.memoryMB: .*expected number/,
    );
    assert.match(bad('sandbox:\n  limitz: {}\n'), /airlock\.yaml:2:3: sandbox\.limitz: .*unknown key: limitz/);
    assert.match(
      bad('egress:\n  transparent: sometimes\n'),
      /airlock\.yaml:2:\d+: egress\.transparent: .*allowed: "auto", "off"/,
    );
    assert.match(bad('sandbox: [\n'), /airlock\.yaml:\d+:\d+: .*YAML syntax/);
    assert.match(bad('- a\n- b\n'), /must be a YAML mapping/);
    assert.match(bad('sandbox:\n  limits: {}\nsandbox: {}\n'), /YAML syntax.*(unique|duplicate)/i);
  });

  it('a grant over a public suffix (*.com, *.co.uk, *.github.io) is refused; a domain wildcard, a deny rule and an unlisted TLD are not', () => {
    const bad = (text: string): string => {
      try {
        parsePolicyText(text, 'airlock.yaml');
      } catch (e) {
        assert.ok(e instanceof AirlockError);
        assert.equal(e.exitCode, 65);
        return e.message;
      }
      throw new Error(`no error for ${text}`);
    };
    assert.match(
      bad('egress:\n  allow:\n    - host: "*.com"\n'),
      /airlock\.yaml:3:\d+: egress\.allow\.0\.host: .*public suffix/,
    );
    assert.match(bad('egress:\n  allow:\n    - host: "*.co.uk"\n'), /public suffix/);
    assert.match(bad('egress:\n  intercept: ["*.github.io"]\n'), /egress\.intercept\.0: .*public suffix/);
    assert.match(
      bad(
        'credentials:\n  brokered:\n    - name: T\n      source: { env: T }\n      destinations: [{ host: "*.s3.amazonaws.com" }]\n',
      ),
      /public suffix/,
    );
    parsePolicyText(
      'egress:\n  allow:\n    - host: "*.example.com"\n    - host: "*.internal.test"\n    - host: "*.corp"\n  deny:\n    - host: "*.ru"\n',
      'airlock.yaml',
    );
  });

  it('exports a JSON Schema with descriptions and defaults', () => {
    const s = policyJsonSchema() as { properties: Record<string, { properties?: Record<string, unknown> }> };
    assert.ok(s.properties.sandbox?.properties?.limits);
    assert.match(JSON.stringify(s), /"description":"Memory limit for the whole sandbox in MiB\."/);
  });

  it('the init template and the README example validate, and the generated reference is up to date', () => {
    parsePolicyText(INIT_TEMPLATE, 'template');
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const example = /A typical repo policy:\n\n```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(example, 'README has the policy example');
    resolvePolicy([{ kind: 'repo', origin: 'README.md', raw: parsePolicyText(example!, 'README.md') }]);
    assert.equal(
      readFileSync(join(ROOT, 'docs', 'policy-reference.md'), 'utf8'),
      renderPolicyReference(),
      'run: node scripts/gen-policy-docs.ts',
    );
  });

  it('CLI: init, check, explain, schema; a credential-looking env name is refused with a pointer to brokering', () => {
    const home = tmp('airlock-home-');
    const repo = makeRepo();
    assert.equal(airlock(['init'], { cwd: repo, home }).status, 0);
    assert.equal(airlock(['init'], { cwd: repo, home }).status, 75, 'no silent overwrite');
    const chk = airlock(['policy', 'check'], { cwd: repo, home });
    assert.equal(chk.status, 0, chk.stderr);
    assert.match(chk.stdout, /airlock\.yaml \(repo\) is valid/);
    const ex = JSON.parse(airlock(['policy', 'explain', '--json'], { cwd: repo, home }).stdout) as {
      provenance: Record<string, string>;
    };
    assert.match(ex.provenance['sandbox.limits.memoryMB']!, /airlock\.yaml/);
    assert.equal(JSON.parse(airlock(['policy', 'schema'], { home }).stdout).title, 'Airlock policy');
    const pf = join(home, 'p.yaml');
    writeFileSync(pf, 'sandbox:\n  env:\n    allow: [AWS_SECRET_ACCESS_KEY]\n');
    const r = airlock(['run', '--policy', pf, '--', 'true'], { cwd: repo, home });
    assert.equal(r.status, 65);
    assert.match(r.stderr, /AWS_SECRET_ACCESS_KEY looks like a credential/);
    assert.match(r.stderr, /credentials/);
    cleanup(home, repo);
  });
});
