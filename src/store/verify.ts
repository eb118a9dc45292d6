import { createPublicKey, type KeyObject } from 'node:crypto';
import type pg from 'pg';
import {
  type Checkpoint,
  type RawEventRow,
  EventFrontier,
  GENESIS_HASH,
  MerkleFrontier,
  checkEventRow,
  keyId,
  verifyCheckpointSignature,
} from '../audit/index.ts';
import { checkpointLeaf } from './global-log.ts';

// `airlock audit verify` against the shared store: every host's chain is recomputed from the
// rows PostgreSQL holds (the verifier hashes; the server is not trusted to), its RFC 6962
// tree compared with each of its signed checkpoints, and the global log over all hosts'
// checkpoints rebuilt. A superuser who disabled the triggers and edited, deleted,
// reordered or truncated rows is caught at the first event that no longer fits: a gap in
// seq, a broken previous-hash link, content that does not match its hash, or fewer events
// than a signed checkpoint covers.

export interface BadSharedEvent {
  seq: number;
  id: string | null;
  reason: string;
}

export interface HostVerdict {
  logId: string;
  hostname: string | null;
  events: number;
  checkpoints: number;
  checkpointsChecked: number;
  firstBad?: BadSharedEvent;
  problems: string[];
}

export interface SharedVerifyResult {
  ok: boolean;
  hosts: HostVerdict[];
  events: number;
  /** the global log: its size (checkpoints) and RFC 6962 root (hex) */
  global: { size: number; root: string; problems: string[] };
}

export interface SharedVerifyOptions {
  /** Keys to trust per host log id, instead of those the store holds (a superuser can replace those). */
  trustedKeys?: Map<string, KeyObject>;
  /** rows per query (default 20000) */
  batch?: number;
}

interface CpRow {
  log_id: string;
  id: string;
  size: string;
  root: string;
  ts: string;
  reason: string;
  key_id: string;
  signature: string;
}
const toCheckpoint = (r: CpRow): Checkpoint => ({
  id: Number(r.id),
  logId: r.log_id,
  size: Number(r.size),
  root: r.root,
  ts: r.ts,
  reason: r.reason,
  keyId: r.key_id,
  signature: r.signature,
});

const EVENTS = `SELECT seq::float8, id, ts, type, session, severity, decision, rule, data, prev_hash, hash
  FROM airlock.events WHERE log_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`;

class HostCheck {
  readonly v: HostVerdict;
  private frontier = new EventFrontier();
  private prev = GENESIS_HASH;
  private bySize = new Map<number, Checkpoint[]>();
  private keys: Map<string, KeyObject>;

  constructor(logId: string, hostname: string | null, cps: Checkpoint[], keys: Map<string, KeyObject>) {
    this.v = { logId, hostname, events: 0, checkpoints: cps.length, checkpointsChecked: 0, problems: [] };
    this.keys = keys;
    for (const c of cps) this.bySize.set(c.size, [...(this.bySize.get(c.size) ?? []), c]);
    for (const c of this.bySize.get(0) ?? []) this.checkCheckpoint(c);
  }

  /** false once the chain broke: later rows cannot be judged */
  push(r: RawEventRow): boolean {
    const expect = this.v.events + 1;
    if (r[0] !== expect) {
      this.v.firstBad =
        r[0] > expect
          ? { seq: expect, id: null, reason: `events ${expect}..${r[0] - 1} are missing (deleted)` }
          : { seq: r[0], id: r[1], reason: 'sequence out of order' };
      return false;
    }
    const bad = checkEventRow(this.prev, r);
    if (bad) {
      this.v.firstBad = bad;
      return false;
    }
    if (!this.frontier.pushEventHash(r[10])) {
      this.v.firstBad = { seq: r[0], id: r[1], reason: 'stored hash is not 32 bytes of hex (event altered)' };
      return false;
    }
    this.prev = r[10];
    this.v.events = expect;
    for (const c of this.bySize.get(expect) ?? []) this.checkCheckpoint(c);
    return true;
  }

  private checkCheckpoint(c: Checkpoint): void {
    const key = this.keys.get(c.keyId);
    if (!key) {
      this.v.problems.push(`checkpoint #${c.id}: signed by key ${c.keyId}, which is not known for this host`);
      return;
    }
    if (!verifyCheckpointSignature(c, key)) {
      this.v.problems.push(`checkpoint #${c.id}: signature does not verify (checkpoint altered)`);
      return;
    }
    const root = MerkleFrontier.from(this.frontier.size, this.frontier.toHex()).root().toString('hex');
    if (root !== c.root) {
      this.v.problems.push(`checkpoint #${c.id}: the events 1..${c.size} do not hash to its signed root`);
      return;
    }
    this.v.checkpointsChecked += 1;
  }

  /** After the last row: signed checkpoints beyond what the store holds mean events were removed. */
  finish(): void {
    if (this.v.firstBad) return;
    const beyond = [...this.bySize.keys()].filter((s) => s > this.v.events).sort((a, b) => b - a)[0];
    if (beyond !== undefined) {
      this.v.firstBad = {
        seq: this.v.events + 1,
        id: null,
        reason: `events ${this.v.events + 1}..${beyond} are missing (deleted or truncated): a signed checkpoint covers ${beyond}`,
      };
    }
  }
}

async function hostKeys(
  c: pg.ClientBase,
  logId: string,
  trusted: KeyObject | undefined,
): Promise<Map<string, KeyObject>> {
  if (trusted) return new Map([[keyId(trusted), trusted]]);
  const r = await c.query<{ key_id: string; public_key: string }>(
    'SELECT key_id, public_key FROM airlock.host_keys WHERE log_id = $1',
    [logId],
  );
  const m = new Map<string, KeyObject>();
  for (const row of r.rows) {
    try {
      const k = createPublicKey(row.public_key);
      if (keyId(k) === row.key_id) m.set(row.key_id, k); // a row whose id is not its key's is ignored
    } catch {
      /* not a key: its checkpoints will not verify */
    }
  }
  return m;
}

async function verifyHost(
  c: pg.ClientBase,
  logId: string,
  hostname: string | null,
  cps: Checkpoint[],
  opts: SharedVerifyOptions,
): Promise<HostVerdict> {
  const check = new HostCheck(logId, hostname, cps, await hostKeys(c, logId, opts.trustedKeys?.get(logId)));
  const batch = opts.batch ?? 20_000;
  const fetch = (after: number) =>
    c.query<RawEventRow>({ text: EVENTS, values: [logId, after, batch], rowMode: 'array' });
  // the next batch is read while this one is hashed: the server's work overlaps ours
  let next = fetch(0);
  for (let i = 0; i < 1e7; i++) {
    const rows = (await next).rows;
    const more = rows.length === batch;
    if (more) next = fetch(rows[rows.length - 1]![0]);
    let going = true;
    for (const row of rows) if (!(going = check.push(row))) break;
    if (!going || !more) {
      if (more) await next;
      break;
    }
  }
  check.finish();
  return check.v;
}

async function verifyGlobalLog(c: pg.ClientBase, cps: Checkpoint[]): Promise<SharedVerifyResult['global']> {
  const problems: string[] = [];
  const byKey = new Map(cps.map((cp) => [`${cp.logId}\n${cp.id}`, cp]));
  const rows = (
    await c.query<{ gseq: string; log_id: string; checkpoint_id: string; leaf: string }>(
      'SELECT gseq, log_id, checkpoint_id, leaf FROM airlock.global_log ORDER BY gseq',
    )
  ).rows;
  const f = new MerkleFrontier();
  const seen = new Set<string>();
  for (const r of rows) {
    const gseq = Number(r.gseq);
    if (gseq !== f.size + 1) {
      problems.push(`global log entries ${f.size + 1}..${gseq - 1} are missing (deleted)`);
      break;
    }
    const k = `${r.log_id}\n${r.checkpoint_id}`;
    const cp = byKey.get(k);
    const leaf = cp ? checkpointLeaf(cp) : null;
    if (!leaf)
      problems.push(
        `global log entry ${gseq}: checkpoint #${r.checkpoint_id} of host log ${r.log_id} is missing (deleted)`,
      );
    else if (leaf.toString('hex') !== r.leaf)
      problems.push(
        `global log entry ${gseq}: does not match checkpoint #${r.checkpoint_id} of host log ${r.log_id} (one of them altered)`,
      );
    seen.add(k);
    f.pushLeafHash(leaf ?? Buffer.from(r.leaf, 'hex'));
  }
  for (const cp of cps)
    if (!seen.has(`${cp.logId}\n${cp.id}`))
      problems.push(`checkpoint #${cp.id} of host log ${cp.logId} is not in the global log`);
  return { size: f.size, root: f.root().toString('hex'), problems };
}

/** Verifies every host's chain, checkpoints and the global log from the shared store alone. */
export async function verifySharedStore(c: pg.ClientBase, opts: SharedVerifyOptions = {}): Promise<SharedVerifyResult> {
  // one snapshot for the whole run: rows shipped meanwhile do not make a consistent store look broken
  await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const cps = (await c.query<CpRow>('SELECT * FROM airlock.checkpoints ORDER BY log_id, id')).rows.map(toCheckpoint);
    const hostRows = (
      await c.query<{ log_id: string; hostname: string | null }>(`SELECT l.log_id, h.hostname FROM
      (SELECT log_id FROM airlock.hosts UNION SELECT DISTINCT log_id FROM airlock.checkpoints UNION SELECT DISTINCT log_id FROM airlock.events) l
      LEFT JOIN airlock.hosts h USING (log_id) ORDER BY l.log_id`)
    ).rows;
    const hosts: HostVerdict[] = [];
    for (const h of hostRows)
      hosts.push(
        await verifyHost(
          c,
          h.log_id,
          h.hostname,
          cps.filter((cp) => cp.logId === h.log_id),
          opts,
        ),
      );
    const global = await verifyGlobalLog(c, cps);
    const ok = global.problems.length === 0 && hosts.every((h) => !h.firstBad && h.problems.length === 0);
    return { ok, hosts, events: hosts.reduce((n, h) => n + h.events, 0), global };
  } finally {
    await c.query('COMMIT').catch(() => {
      /* connection lost */
    });
  }
}
