// Every entry point on either store (issue 18): the CLI listings find the shared store the same
// way the sessions do (the org policy's telemetry.sharedStore, no AIRLOCK_DATABASE_URL), show
// every host's sessions and proposals in ONE JSON shape, and the SDK's workView lists them too.
// Two hosts = two AIRLOCK_HOMEs with their own logs, real proposals, a real PostgreSQL.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, agentSession, sh, type Env } from '../review/fixture.ts';
import { type PgCluster, sharedStoreCluster } from './pg-cluster.ts';
import { type TwoHosts, airlockAs as airlock, envOf, twoHosts } from './two-hosts.ts';
import { generateKeyPairSync } from 'node:crypto';
import { AuditStore, workView } from '../../src/index.ts';
import { keyId, loadSigningKey } from '../../src/audit/index.ts';
import { signDecision } from '../../src/store/index.ts';

let cluster: PgCluster;
let hosts: TwoHosts;
let a: Env;
let b: Env;
let remote: string;
before(async () => {
  cluster = await sharedStoreCluster();
  hosts = await twoHosts(cluster);
  ({ a, b, remote } = hosts);
  for (const [h, s] of [
    [a, 's-a1'],
    [b, 's-b1'],
    [a, 's-a2'],
  ] as const) {
    agentSession(h, s, { [`src/${s}.js`]: 'module.exports = 1;\n' });
    const p = await runCli(['propose', s, '--json'], envOf(h));
    assert.equal(p.code, 0, p.stderr);
  }
  const ship = airlock(a, ['audit', 'ship']);
  assert.equal(ship.status, 0, `host A ships with only the org policy naming the store: ${ship.stderr}`);
});
after(async () => {
  await hosts?.done();
  await cluster?.stop();
});

function listJson<T>(h: Env, args: string[]): T[] {
  const r = airlock(h, [...args, '--json']);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as T[];
}

const keys = (o: object) => Object.keys(o).sort();

interface Listed {
  ref: string;
  host: string;
  logId: string;
  thisHost: boolean;
  session: string;
  state: string;
  hash: string | null;
  id: string | number;
}

test("`review list --json` on host B, configured only by the org policy, lists host A's proposal in the same shape as its own", () => {
  const rows = listJson<Listed>(b, ['review', 'list']);
  const mine = rows.find((p) => p.session === 's-b1');
  const theirs = rows.find((p) => p.session === 's-a1');
  assert.ok(mine && theirs, JSON.stringify(rows));
  assert.equal(mine.thisHost, true);
  assert.equal(mine.ref, String(mine.id));
  assert.equal(theirs.thisHost, false);
  assert.match(theirs.ref, /^1@[0-9a-f]{8}$/);
  assert.equal(theirs.state, 'pending');
  assert.equal(
    theirs.hash,
    (a.store.tables.prepare('SELECT hash FROM review_proposals WHERE session = ?').get('s-a1') as { hash: string })
      .hash,
  );
  assert.deepEqual(keys(theirs), keys(mine), 'one shape for local and remote entries');
});

test("`sessions --json` on host B lists host A's sessions in the same shape as its own", () => {
  const rows = listJson<Listed & { id: string }>(b, ['sessions']);
  const mine = rows.find((s) => s.id === 's-b1');
  const theirs = rows.find((s) => s.id === 's-a1');
  assert.ok(mine && theirs, JSON.stringify(rows));
  assert.equal(mine.thisHost, true);
  assert.equal(theirs.thisHost, false);
  assert.notEqual(theirs.logId, mine.logId);
  assert.deepEqual(keys(theirs), keys(mine));
});

test("the SDK's workView lists other hosts' sessions and proposals", async () => {
  const store = new AuditStore(`${b.home}/audit.db`);
  try {
    const view = workView(store, { database: cluster.url('host_writer') });
    assert.ok((await view.sessions()).some((s) => s.id === 's-a1' && !s.thisHost));
    assert.ok((await view.proposals()).some((p) => p.session === 's-a1' && p.ref.startsWith('1@')));
    const alone = workView(store, { orgSetting: null, database: undefined });
    if (!process.env.AIRLOCK_DATABASE_URL)
      assert.ok(!(await alone.sessions()).some((s) => s.id === 's-a1'), 'without a shared store: this host alone');
  } finally {
    store.close();
  }
});

interface Event {
  type: string;
  data: Record<string, unknown>;
}
const events = (h: Env, type: string) => h.store.query({ type }) as unknown as Event[];
const stateOf = (session: string) =>
  listJson<Listed & { approvers: string[] }>(a, ['review', 'list', '--all']).find(
    (p) => p.session === session && p.thisHost,
  )!;
const stateOnA = () => stateOf('s-a1');

/** A row written straight into the shared store with the writer role (what any host, or anyone holding its credentials, can do). */
async function insertApproval(r: {
  logId: string;
  proposal: number;
  hash: string;
  by: string;
  from: string;
  statement?: string;
  keyId?: string;
  signature?: string;
}) {
  await cluster.sql(
    'INSERT INTO airlock.review_approvals (log_id, proposal_id, hash, by, from_log_id, statement, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
    [r.logId, r.proposal, r.hash, r.by, r.from, r.statement ?? null, r.keyId ?? null, r.signature ?? null],
    'host_writer',
  );
}

test("a review approval given on host B reaches host A's proposal, bound to its hash and under A's separation of duties; A then applies it", async () => {
  const ref = listJson<Listed>(b, ['review', 'list']).find((p) => p.session === 's-a1')!.ref;
  const hash = stateOnA().hash!;

  // the agent's starter (bob) approving from another host is still the starter: not enough
  let r = airlock(b, ['review', 'approve', ref, '--as', 'bob@example.com']);
  assert.equal(r.status, 0, r.stderr);
  // rows written straight into the shared store with the writer role every host holds, for the
  // content A really has: unsigned (in mallory's name), and signed by a key the org does not trust
  const logA = (
    await cluster.sql<{ log_id: string }>('SELECT log_id FROM airlock.hosts WHERE log_id LIKE $1', [
      `${ref.split('@')[1]}%`,
    ])
  )[0]!.log_id;
  await insertApproval({ logId: logA, proposal: 1, hash, by: 'mallory@example.com', from: 'forged' });
  const rogue = { ...generateKeyPairSync('ed25519'), keyId: 'rogue' };
  const eve = {
    kind: 'review-approval',
    logId: logA,
    item: 1,
    hash,
    decision: 'approve',
    by: 'eve@example.com',
    reason: null,
    ts: new Date().toISOString(),
    from: 'rogue',
  } as const;
  const rogueSigned = signDecision(eve, { ...rogue, keyId: keyId(rogue.publicKey) });
  await insertApproval({ logId: logA, proposal: 1, hash, by: 'eve@example.com', from: 'rogue', ...rogueSigned });
  assert.equal(airlock(a, ['audit', 'ship']).status, 0);
  let st = stateOnA();
  assert.equal(st.state, 'pending', 'the starter alone does not approve (separation of duties), forged rows nothing');
  assert.deepEqual(st.approvers, ['bob@example.com']);
  const refused = events(a, 'review.relay_refused');
  const refusal = (by: string) => refused.find((e) => e.data.by === by);
  assert.match(String(refusal('mallory@example.com')?.data.reason), /not signed/, JSON.stringify(refused));
  assert.match(String(refusal('eve@example.com')?.data.reason), /does not trust/, JSON.stringify(refused));
  for (const by of ['mallory@example.com', 'eve@example.com'])
    assert.equal(
      a.store.query({ type: 'review.relay_refused' }).find((e) => e.data.by === by)?.rule,
      'telemetry.approverKeys',
      'the refusal names the org rule',
    );

  // rows in carol's name inserted before her real approval (unsigned, and claiming host B's trusted
  // key with a bad signature): they hold no slot, so her own approval still goes through
  await insertApproval({ logId: logA, proposal: 1, hash, by: 'carol@example.com', from: 'forged' });
  const kidB = keyId(loadSigningKey(`${b.home}/keys`).publicKey);
  await insertApproval({
    ...{ logId: logA, proposal: 1, hash, by: 'carol@example.com', from: 'forged', statement: '{}' },
    ...{ keyId: kidB, signature: Buffer.alloc(64, 7).toString('base64') },
  });
  assert.equal(airlock(a, ['audit', 'ship']).status, 0);
  assert.deepEqual(
    events(a, 'review.relay_refused')
      .filter((e) => e.data.by === 'carol@example.com')
      .map((e) => /not signed|does not verify/.test(String(e.data.reason))),
    [true, true],
    'both forged rows are refused, each once',
  );
  assert.deepEqual(stateOnA().approvers, ['bob@example.com']);

  r = airlock(b, ['review', 'approve', ref, '--as', 'carol@example.com']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /approved proposal 1@[0-9a-f]{8}/);
  assert.ok(
    events(b, 'review.approval_sent').some((e) => e.data.by === 'carol@example.com' && e.data.hash === hash),
    'audited on the approving host',
  );
  r = airlock(b, ['review', 'approve', ref, '--as', 'carol@example.com']);
  assert.equal(r.status, 75, 'the same reviewer twice is refused');

  assert.equal(airlock(a, ['audit', 'ship']).status, 0);
  st = stateOnA();
  assert.equal(st.state, 'approved');
  assert.deepEqual(st.approvers.sort(), ['bob@example.com', 'carol@example.com']);
  const approved = events(a, 'review.approved').find((e) => e.data.by === 'carol@example.com');
  assert.equal(approved?.data.hash, hash);
  assert.equal(typeof approved?.data.via, 'string', 'A records which host the approval came from');

  // carol's valid signed approval replayed for A's other proposal (other content): refused
  const [sent] = await cluster.sql<{ statement: string; key_id: string; signature: string; from_log_id: string }>(
    "SELECT statement, key_id, signature, from_log_id FROM airlock.review_approvals WHERE log_id = $1 AND proposal_id = 1 AND by = $2 AND from_log_id <> 'forged'",
    [logA, 'carol@example.com'],
  );
  const other = stateOf('s-a2');
  await insertApproval({
    logId: logA,
    proposal: other.id as number,
    hash: other.hash!,
    by: 'carol@example.com',
    from: sent!.from_log_id,
    statement: sent!.statement,
    keyId: sent!.key_id,
    signature: sent!.signature,
  });
  assert.equal(airlock(a, ['audit', 'ship']).status, 0);
  assert.equal(stateOf('s-a2').state, 'pending', 'a signature for proposal 1 approves nothing else');
  assert.match(
    String(events(a, 'review.relay_refused').find((e) => e.data.proposal === other.id)?.data.reason),
    /signature is for review-approval 1/,
  );

  const apply = await runCli(['review', 'apply', '1', '--as', 'carol@example.com'], envOf(a));
  assert.equal(apply.code, 0, apply.stdout + apply.stderr);
  assert.ok(sh(remote, 'rev-parse', 'refs/heads/airlock/s-a1'));
});
