// Secrets engine vs secretlint alone, on the same labelled corpus in one run:
// precision/recall per family, and scan throughput (interleaved rounds), plus the pinned
// secretlint CLI as a second baseline. Reproduce: node bench/secrets.ts
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { creator as presetCreator } from '@secretlint/secretlint-rule-preset-recommend';
import { generateCorpus, writeCorpus, fillerCorpus, DEFAULT_SEED, type CorpusFile } from './secrets-corpus.ts';
import { scanText } from '../src/secrets/index.ts';
import { secretlintBaseline } from '../src/secrets/secretlint.ts';
import { median, writeSection } from './report.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const ROUNDS = Number(process.env.ROUNDS ?? 7);
const slConfig = { rules: [{ id: '@secretlint/secretlint-rule-preset-recommend', rule: presetCreator }] } as Parameters<typeof secretlintBaseline>[2];

type Span = { start: number; end: number };
type Scanner = (f: CorpusFile) => Promise<Span[]>;
const ours: Scanner = (f) => scanText(f.content, { path: f.path });
const secretlintAlone: Scanner = (f) => secretlintBaseline(f.content, f.path, slConfig);
const overlaps = (a: Span, b: Span) => a.start < b.end && a.end > b.start;

async function quality(files: CorpusFile[], scan: Scanner) {
  let tp = 0, fp = 0, found = 0, total = 0;
  const fam = new Map<string, { n: number; hit: number }>();
  const fpByFamily = new Map<string, number>();
  for (const f of files) {
    const hits = await scan(f);
    for (const h of hits) {
      if (f.secrets.some((s) => overlaps(h, s))) tp++;
      else { fp++; const k = f.lookalikes[0] ?? f.secrets[0]?.family ?? '?'; fpByFamily.set(k, (fpByFamily.get(k) ?? 0) + 1); }
    }
    for (const s of f.secrets) {
      const e = fam.get(s.family) ?? { n: 0, hit: 0 };
      e.n++; total++;
      if (hits.some((h) => overlaps(h, s))) { e.hit++; found++; }
      fam.set(s.family, e);
    }
  }
  return { precision: tp / Math.max(1, tp + fp), recall: found / Math.max(1, total), tp, fp, found, total, fam, fpByFamily };
}

async function throughput(files: CorpusFile[], scan: Scanner): Promise<number> {
  const t0 = performance.now();
  for (const f of files) await scan(f);
  return performance.now() - t0;
}

function cliRun(dir: string): { ms: number; ok: boolean } {
  const bin = join(ROOT, 'node_modules', 'secretlint', 'bin', 'secretlint.js');
  if (!existsSync(bin)) return { ms: NaN, ok: false };
  const rc = join(dir, '..', 'secretlintrc.json');
  writeFileSync(rc, JSON.stringify({ rules: [{ id: '@secretlint/secretlint-rule-preset-recommend' }] }));
  const t0 = performance.now();
  // Output discarded unread: secretlint's formatters can carry the unmasked source.
  const r = spawnSync(process.execPath, [bin, '--secretlintrc', rc, '--maskSecrets', '--format', 'compact', `${dir}/**/*`], { cwd: ROOT, stdio: 'ignore', timeout: 300_000 });
  return { ms: performance.now() - t0, ok: r.status === 0 || r.status === 1 };
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

async function main(): Promise<void> {
  const corpus = generateCorpus();
  const q = { ours: await quality(corpus, ours), sl: await quality(corpus, secretlintAlone) };

  // Throughput corpus: the labelled files plus plain source up to ~4 MB (most of a real repo).
  const corpusBytes = corpus.reduce((n, f) => n + Buffer.byteLength(f.content), 0);
  const filler = fillerCorpus(DEFAULT_SEED + 1, 4 * 1024 * 1024 - corpusBytes);
  const bytes = corpusBytes + filler.reduce((n, f) => n + Buffer.byteLength(f.content), 0);
  const all = [...corpus, ...filler];
  const mb = bytes / 1e6;
  await throughput(all, ours); await throughput(all, secretlintAlone); // warm-up
  const tOurs: number[] = [], tSl: number[] = [];
  for (let r = 0; r < ROUNDS; r++) { // interleaved, alternating which goes first
    if (r % 2) { tSl.push(await throughput(all, secretlintAlone)); tOurs.push(await throughput(all, ours)); }
    else { tOurs.push(await throughput(all, ours)); tSl.push(await throughput(all, secretlintAlone)); }
  }
  const mbsOurs = mb / (median(tOurs) / 1000);
  const mbsSl = mb / (median(tSl) / 1000);

  // The secretlint CLI on the same files written to disk (includes Node start-up and globbing).
  const tmp = mkdtempSync(join(tmpdir(), 'airlock-bench-secrets-'));
  let cli = 'not run (secretlint CLI not installed)';
  try {
    const dir = join(tmp, 'corpus');
    writeCorpus(dir, all);
    rmSync(join(dir, 'labels.json'));
    const runs: number[] = [];
    let ok = true;
    for (let r = 0; r < 3; r++) { const x = cliRun(dir); ok &&= x.ok; runs.push(x.ms); }
    if (ok) cli = `${(mb / (median(runs) / 1000)).toFixed(1)} MB/s (median of 3 runs of \`secretlint "corpus/**/*"\`, secretlint 13.0.6 CLI, Node start-up and file reads included)`;
  } finally { rmSync(tmp, { recursive: true, force: true }); }

  const famRows = [...q.ours.fam.keys()].map((k) => {
    const a = q.ours.fam.get(k)!, b = q.sl.fam.get(k)!;
    return `| ${k} | ${a.n} | ${a.hit}/${a.n} | ${b.hit}/${b.n} |`;
  });
  const fpRows = [...new Set([...q.ours.fpByFamily.keys(), ...q.sl.fpByFamily.keys()])].map((k) => `| ${k} | ${q.ours.fpByFamily.get(k) ?? 0} | ${q.sl.fpByFamily.get(k) ?? 0} |`);
  const md = `## Secrets engine vs secretlint alone

Reproduce: \`node bench/secrets.ts\` (corpus: \`bench/secrets-corpus.ts\`, seed ${DEFAULT_SEED}; ROUNDS=${ROUNDS}).
Corpus: ${corpus.length} files, ${q.ours.total} labelled secrets in ${q.ours.fam.size} families (two "hard" families that no
pattern engine should find are kept in to keep recall honest), ${corpus.filter((f) => f.lookalikes.length).length} look-alike files.
A detection counts as a true positive when it overlaps a labelled secret, else a false positive.
Baseline: \`@secretlint/core\` 13.0.7 with \`secretlint-rule-preset-recommend\` at its defaults, as users run it.
Caveat: the corpus was written by the same team as the rules; read recall on it as "covers these formats", not as field recall.

| engine | precision | recall | TP | FP | found/labelled |
| --- | --- | --- | --- | --- | --- |
| Airlock engine (secretlint preset + own rules) | ${pct(q.ours.precision)} | ${pct(q.ours.recall)} | ${q.ours.tp} | ${q.ours.fp} | ${q.ours.found}/${q.ours.total} |
| secretlint alone | ${pct(q.sl.precision)} | ${pct(q.sl.recall)} | ${q.sl.tp} | ${q.sl.fp} | ${q.sl.found}/${q.sl.total} |

| family | labelled | Airlock | secretlint |
| --- | --- | --- | --- |
${famRows.join('\n')}

False positives by file family:

| family | Airlock | secretlint |
| --- | --- | --- |
${fpRows.join('\n') || '| (none) | 0 | 0 |'}

Throughput on ${mb.toFixed(2)} MB (the corpus plus plain source), in process, median of ${ROUNDS} interleaved rounds:

| engine | MB/s |
| --- | --- |
| Airlock engine | ${mbsOurs.toFixed(1)} |
| secretlint alone (core + preset) | ${mbsSl.toFixed(1)} |
| secretlint CLI | ${cli} |

Ratio Airlock / secretlint alone: **${(mbsOurs / mbsSl).toFixed(2)}×** (our rules run on every file; secretlint runs only
on text containing one of its rules' literal anchors, which the test suite checks never changes its result).`;
  writeSection('secrets', md);
  process.stdout.write(md + '\n');
}

await main();
