// What "durable when it returns" costs: the store as shipped (synchronous=FULL, an fsync
// of the WAL at every commit) against the previous setting (NORMAL: a commit reaches the
// OS, the WAL is synced only at checkpoints, so a power cut could lose the last commits
// but a crashed process cannot). Single appends (one commit per event: what a session's
// events pay) and group commits of 1000. Also the store-side redaction every event now
// passes. Rounds interleaved, the order rotating; medians and the per-round ratio.
// Reproduce: node bench/audit-durability.ts   (env SINGLE=events per single-append run, BATCHED, ROUNDS)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditStore, type AuditEventInput, type AuditSync } from '../src/audit/index.ts';
import { redactEventInput } from '../src/audit/redact.ts';
import { median, writeSection } from './report.ts';

const SINGLE = Number(process.env.SINGLE ?? 2000);
const BATCHED = Number(process.env.BATCHED ?? 200_000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const BATCH = 1000;
const root = mkdtempSync(join(tmpdir(), 'airlock-bench-durable-'));

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
        },
      }
    : {
        type: 'process.exec',
        session: `s${i % 16}`,
        data: { pid: 1000 + i, ppid: 1, argv: ['npm', 'test', '--', `--shard=${i % 8}`], cwd: '/workspace' },
      };
}

function run(sync: AuditSync, n: number, batch: number, tag: string): number {
  const path = join(root, `${tag}-${sync}.db`);
  const s = new AuditStore(path, { sync });
  const inputs = Array.from({ length: n }, (_, i) => input(i));
  const t = performance.now();
  if (batch === 1) for (const e of inputs) s.append(e);
  else for (let i = 0; i < n; i += batch) s.appendMany(inputs.slice(i, i + batch));
  const rate = n / ((performance.now() - t) / 1000);
  s.close();
  for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
  return rate;
}

function compare(n: number, batch: number, tag: string): { full: number[]; normal: number[]; ratio: number[] } {
  const full: number[] = [];
  const normal: number[] = [];
  const ratio: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    let f: number;
    let o: number;
    if (r % 2) {
      o = run('NORMAL', n, batch, tag);
      f = run('FULL', n, batch, tag);
    } else {
      f = run('FULL', n, batch, tag);
      o = run('NORMAL', n, batch, tag);
    }
    full.push(f);
    normal.push(o);
    ratio.push(f / o);
  }
  return { full, normal, ratio };
}

const single = compare(SINGLE, 1, 'single');
const grouped = compare(BATCHED, BATCH, 'batch');
const inputs = Array.from({ length: 100_000 }, (_, i) => input(i));
const redactRates: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const t = performance.now();
  for (const e of inputs) redactEventInput(e);
  redactRates.push(inputs.length / ((performance.now() - t) / 1000));
}
rmSync(root, { recursive: true, force: true });

const fmt = (x: number) => Math.round(x).toLocaleString('en');
const row = (name: string, c: { full: number[]; normal: number[]; ratio: number[] }) =>
  `| ${name} | ${fmt(median(c.full))} | ${fmt(median(c.normal))} | ${median(c.ratio).toFixed(2)} |`;
const md = `## Audit durability (synchronous=FULL)

Reproduce: \`node bench/audit-durability.ts\` (env SINGLE, BATCHED, ROUNDS). ${ROUNDS} interleaved rounds on ${tmpdir()} (the order alternates), medians; the ratio is the median of per-round ratios.

| appends | FULL, as shipped (events/s) | NORMAL, before (events/s) | FULL / NORMAL |
| --- | ---: | ---: | ---: |
${row(`one event per commit (AuditStore.append), ${SINGLE.toLocaleString('en')} events`, single)}
${row(`group commit of ${BATCH} (appendMany), ${BATCHED.toLocaleString('en')} events`, grouped)}

Store-side redaction of every event (src/audit/redact.ts, the synchronous rules over every string, keys included): ${fmt(median(redactRates))} events/s on its own, measured on the same events.

What is durable: with FULL, \`append\`/\`appendMany\` return after SQLite has fsynced the WAL frame of their commit, so an acknowledged event survives a crash of the process, the OS or the power (tested: \`test/audit/durability.test.ts\` kills the writer with SIGKILL mid-burst and traces an fsync of the WAL before every acknowledgement). With NORMAL (the previous setting), a commit survived a crashed process but not a power cut before the next WAL checkpoint. \`new AuditStore(path, { sync: 'NORMAL' })\` keeps the old trade-off for bulk imports that can be replayed; Airlock itself never passes it.`;
writeSection('audit-durability', md);
process.stdout.write(md + '\n');
