// Audit benchmark: durable hashed ingest with group commit vs a plain unhashed insert
// (same table, indexes, ids and batch size), verify speed, and delivery rate to a real
// local rsyslog. Rounds are interleaved; medians reported.
// Reproduce: node bench/audit.ts   (needs rsyslog for the delivery part: AIRLOCK_TEST_DEPS=1 bash scripts/setup.sh)
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { execFileSync } from 'node:child_process';
import {
  AuditStore,
  verifyLog,
  verifyLogAsync,
  checkpoint,
  loadPublicKey,
  type AuditEventInput,
} from '../src/audit/index.ts';
import { GENESIS_HASH, chainHashFast, eventBodyFromParts, newEventId } from '../src/audit/event.ts';
import { MerkleFrontier, eventLeafHash } from '../src/audit/merkle.ts';
import { flushSinks } from '../src/audit/sinks/index.ts';
import { sinkSchema } from '../src/policy/schema/telemetry.ts';
import { Rsyslog, freePort } from '../test/audit/rsyslog.ts';
import { median, writeSection } from './report.ts';

const N = Number(process.env.N ?? 1_000_000);
const BATCH = 1000;
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const root = mkdtempSync(join(tmpdir(), 'airlock-bench-audit-'));

function input(i: number): AuditEventInput {
  return i % 2
    ? {
        type: 'egress.request',
        session: `s${i % 16}`,
        decision: 'allow',
        rule: 'egress.allow.registry',
        data: {
          host: 'registry.npmjs.org',
          port: 443,
          method: 'GET',
          path: `/pkg/${i}`,
          bytesUp: 512,
          bytesDown: 20480,
          durationMs: 12,
        },
      }
    : {
        type: 'process.exec',
        session: `s${i % 16}`,
        data: { pid: 1000 + i, ppid: 1, argv: ['npm', 'test', '--', `--shard=${i % 8}`], cwd: '/workspace' },
      };
}
const inputs = Array.from({ length: N }, (_, i) => input(i));

function hashedIngest(path: string): number {
  const s = new AuditStore(path);
  const t = performance.now();
  for (let i = 0; i < N; i += BATCH) s.appendMany(inputs.slice(i, i + BATCH));
  const dt = performance.now() - t;
  s.close();
  return N / (dt / 1000);
}

function plainIngest(path: string): number {
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;');
  db.exec(`CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, ts TEXT NOT NULL, type TEXT NOT NULL, session TEXT, severity TEXT NOT NULL,
    decision TEXT, rule TEXT, data TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
    CREATE INDEX events_session ON events(session, seq); CREATE INDEX events_type ON events(type, seq);`);
  const ins = db.prepare('INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)');
  const t = performance.now();
  let seq = 0;
  for (let i = 0; i < N; i += BATCH) {
    db.exec('BEGIN IMMEDIATE');
    const ts = new Date().toISOString();
    for (const e of inputs.slice(i, i + BATCH)) {
      seq += 1;
      ins.run(
        seq,
        newEventId(),
        ts,
        e.type,
        e.session ?? null,
        e.severity ?? 'info',
        e.decision ?? null,
        e.rule ?? null,
        JSON.stringify(e.data ?? {}),
        '',
        '',
      );
    }
    db.exec('COMMIT');
  }
  const dt = performance.now() - t;
  db.close();
  return N / (dt / 1000);
}

const hashed: number[] = [];
const plain: number[] = [];
let keep = '';
for (let r = 0; r < ROUNDS; r++) {
  const a = join(root, `h${r}.db`);
  const b = join(root, `p${r}.db`);
  if (r % 2) {
    plain.push(plainIngest(b));
    hashed.push(hashedIngest(a));
  } else {
    hashed.push(hashedIngest(a));
    plain.push(plainIngest(b));
  }
  rmSync(b, { force: true });
  rmSync(b + '-wal', { force: true });
  rmSync(b + '-shm', { force: true });
  if (r < ROUNDS - 1) {
    rmSync(a, { force: true });
    rmSync(a + '-wal', { force: true });
    rmSync(a + '-shm', { force: true });
  } else keep = a;
}

// The verify loop before the fast path (JS-built bodies from all eleven columns, Buffer
// tree hashes), kept here so "before" and "after" are measured in the same run. Same chain
// and tree; returns the root, which must equal verifyLog's.
function verifyBefore(path: string): { events: number; root: string } {
  const db = new DatabaseSync(path, { readOnly: true });
  const stmt = db.prepare(
    'SELECT seq,id,ts,type,session,severity,decision,rule,data,prev_hash,hash FROM events WHERE seq > ? ORDER BY seq ASC LIMIT 20000',
  );
  stmt.setReturnArrays(true);
  const f = new MerkleFrontier();
  let prev = GENESIS_HASH;
  for (;;) {
    const rows = stmt.all(f.size) as unknown as [
      number,
      string,
      string,
      string,
      string | null,
      string,
      string | null,
      string | null,
      string,
      string,
      string,
    ][];
    if (rows.length === 0) break;
    for (const r of rows) {
      if (r[0] !== f.size + 1 || r[9] !== prev) throw new Error(`bench log broken at ${r[0]}`);
      if (chainHashFast(prev, eventBodyFromParts(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8])) !== r[10])
        throw new Error(`bench log altered at ${r[0]}`);
      prev = r[10];
      f.pushLeafHash(eventLeafHash(prev));
    }
  }
  db.close();
  return { events: f.size, root: f.root().toString('hex') };
}

// Verify: chain + tree + one signed checkpoint over the kept log.
const keyDir = join(root, 'keys');
{
  const s = new AuditStore(keep);
  checkpoint(s, 'bench', { keyDir });
  s.close();
}
const pub = loadPublicKey(undefined, keyDir);
const vSingle: number[] = [];
const vPar: number[] = [];
const vBefore: number[] = [];
for (let r = 0; r < 3; r++) {
  let t = performance.now();
  const o = verifyBefore(keep);
  vBefore.push(o.events / ((performance.now() - t) / 1000));
  t = performance.now();
  const a = verifyLog(keep, { publicKey: pub });
  vSingle.push(a.events / ((performance.now() - t) / 1000));
  t = performance.now();
  const b = await verifyLogAsync(keep, { publicKey: pub });
  vPar.push(b.events / ((performance.now() - t) / 1000));
  if (!a.ok || !b.ok || a.root !== b.root || o.root !== a.root) throw new Error('verify failed in the benchmark');
}

// Delivery to a real rsyslog on loopback (TCP, octet counting), JSON and CEF payloads.
let delivery = 'skipped (rsyslogd not installed)';
let haveRsyslog = true;
const D = Math.min(N, 100_000);
try {
  execFileSync('sh', ['-c', 'command -v rsyslogd']);
} catch {
  haveRsyslog = false;
}
if (haveRsyslog) {
  const port = await freePort();
  const rs = new Rsyslog(join(root, 'rsyslog'), port);
  await rs.start();
  const rates: Record<string, number> = {};
  try {
    const s = new AuditStore(keep);
    for (const format of ['json', 'cef'] as const) {
      const sink = sinkSchema.parse({
        type: 'syslog',
        name: `bench-${format}`,
        host: '127.0.0.1',
        port,
        protocol: 'tcp',
        format,
        batchSize: 5000,
      });
      s.tables
        .prepare('INSERT OR REPLACE INTO sink_state (name, type, cursor) VALUES (?, ?, ?)')
        .run(sink.name, 'syslog', N + 1 - D);
      const t = performance.now();
      const st = await flushSinks(s, [sink]);
      rates[format] = st[0]!.delivered / ((performance.now() - t) / 1000);
      if (st[0]!.lag !== 0) throw new Error(`delivery lagged: ${st[0]!.lastError}`);
    }
    s.close();
  } finally {
    await rs.stop();
  }
  delivery = `JSON ${Math.round(rates.json!).toLocaleString('en')} events/s, CEF ${Math.round(rates.cef!).toLocaleString('en')} events/s (${D.toLocaleString('en')} events, batches of 5,000, protocol: tcp, which has no acknowledgement: sent, not confirmed; RELP is tested, not benchmarked)`;
}

const fmt = (x: number) => Math.round(x).toLocaleString('en');
const md = `## Audit store

Reproduce: \`node bench/audit.ts\` (env N=events, ROUNDS). ${N.toLocaleString('en')} events per round, group commit of ${BATCH}, ${ROUNDS} interleaved rounds, medians.

| measure | events/s | target |
| --- | ---: | ---: |
| durable ingest, hashed (AuditStore.appendMany: canonical JSON, SHA-256 chain, WAL commit per batch) | ${fmt(median(hashed))} | ≥ 100,000 |
| baseline: plain unhashed insert, same table/indexes/ids/batches | ${fmt(median(plain))} | — |
| hashed / plain | ${(median(hashed) / median(plain)).toFixed(2)} | — |
| verify chain + RFC 6962 tree + signed checkpoint, worker threads (verifyLogAsync) | ${fmt(median(vPar))} | ≥ 500,000 |
| verify, one thread (verifyLog) | ${fmt(median(vSingle))} | — |
| verify before the fast path, one thread (previous loop, kept in bench/audit.ts; chain + tree only) | ${fmt(median(vBefore))} | — |
| one thread, after / before | ${(median(vSingle) / median(vBefore)).toFixed(2)} | — |

Delivery to a local rsyslog (RFC 5424 over TCP, RFC 6587 octet counting): ${delivery}.

Verify on this machine (${availableParallelism()} cores) is ${median(vPar) >= 500_000 ? 'above' : 'below'} the 500,000 events/s target. Verify scales with cores: workers hash ranges of 65,536 events (chain + leaves + perfect subtrees) and the main thread folds the subtrees and checks checkpoints. Where the time went before: a third in node:crypto returning Buffers (a Buffer result costs ~1.1 µs, a string ~0.17 µs), a quarter in reading eleven columns into JS strings and rebuilding the body, a tenth in GC. Now SQLite assembles the hashed text (\`json_quote\`, type-guarded), tree hashes stay binary strings, and a row costs one string, one chain hash, one leaf hash and on average one node hash; rows the fast path cannot vouch for (legacy data, edits) get the full check.`;
writeSection('audit', md);
process.stdout.write(md + '\n');
rmSync(root, { recursive: true, force: true });
