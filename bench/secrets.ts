// Secrets engine vs secretlint alone in one run: precision/recall per family on our own
// corpus and, kept apart, on each peer corpus (bench/corpora: gitleaks, detect-secrets and
// secretlint test data), and scan throughput (interleaved rounds) on our corpus + plain
// source and on the peer samples, plus the pinned secretlint CLI as a second baseline.
// Reproduce: node bench/secrets.ts
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
import { loadPeer, scorePeer, PEERS, type PeerSample, type Score } from './corpora/load.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const ROUNDS = Number(process.env.ROUNDS ?? 7);
const slConfig = { rules: [{ id: '@secretlint/secretlint-rule-preset-recommend', rule: presetCreator }] } as Parameters<
  typeof secretlintBaseline
>[2];

type Span = { start: number; end: number };
type Scanner = (f: CorpusFile) => Promise<Span[]>;
const ours: Scanner = (f) => scanText(f.content, { path: f.path });
const secretlintAlone: Scanner = (f) => secretlintBaseline(f.content, f.path, slConfig);
const overlaps = (a: Span, b: Span) => a.start < b.end && a.end > b.start;

async function quality(files: CorpusFile[], scan: Scanner) {
  let tp = 0,
    fp = 0,
    found = 0,
    total = 0;
  const fam = new Map<string, { n: number; hit: number }>();
  const fpByFamily = new Map<string, number>();
  for (const f of files) {
    const hits = await scan(f);
    for (const h of hits) {
      if (f.secrets.some((s) => overlaps(h, s))) tp++;
      else {
        fp++;
        const k = f.lookalikes[0] ?? f.secrets[0]?.family ?? '?';
        fpByFamily.set(k, (fpByFamily.get(k) ?? 0) + 1);
      }
    }
    for (const s of f.secrets) {
      const e = fam.get(s.family) ?? { n: 0, hit: 0 };
      e.n++;
      total++;
      if (hits.some((h) => overlaps(h, s))) {
        e.hit++;
        found++;
      }
      fam.set(s.family, e);
    }
  }
  return {
    precision: tp / Math.max(1, tp + fp),
    recall: found / Math.max(1, total),
    tp,
    fp,
    found,
    total,
    fam,
    fpByFamily,
  };
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
  const r = spawnSync(
    process.execPath,
    [bin, '--secretlintrc', rc, '--maskSecrets', '--format', 'compact', `${dir}/**/*`],
    { cwd: ROOT, stdio: 'ignore', timeout: 300_000 },
  );
  return { ms: performance.now() - t0, ok: r.status === 0 || r.status === 1 };
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const r3 = (x: number) => x.toFixed(3);

const asFile = (x: PeerSample): CorpusFile => ({
  path: x.path ?? 'sample.txt',
  content: x.text,
  secrets: [],
  lookalikes: [],
});

/** Our engine and secretlint alone on one peer corpus: adjudicated and as labelled. */
async function peerSection(peer: string): Promise<{ md: string; ours: Score }> {
  const { samples, disputes } = loadPeer(peer);
  const none = new Map<string, string>();
  const runOurs = (x: PeerSample) => ours(asFile(x));
  const runSl = (x: PeerSample) => secretlintAlone(asFile(x));
  const [o, sl, oRaw, slRaw] = [
    await scorePeer(samples, disputes, runOurs),
    await scorePeer(samples, disputes, runSl),
    await scorePeer(samples, none, runOurs),
    await scorePeer(samples, none, runSl),
  ];
  const row = (name: string, a: Score, b: Score) =>
    `| ${name} | ${r3(a.recall)} | ${r3(a.precision)} | ${a.tp}/${a.tp + a.fn} | ${a.fp} | ${r3(b.recall)} | ${r3(b.precision)} |`;
  const fams = [...o.byFamily].sort((a, b) => a[0].localeCompare(b[0]));
  const famRow = ([k, f]: [string, { secret: number; found: number; clean: number; flagged: number }]) => {
    const s2 = sl.byFamily.get(k);
    return `| ${k} | ${f.found}/${f.secret} | ${f.flagged}/${f.clean} | ${s2 ? `${s2.found}/${s2.secret}` : '-'} | ${s2 ? `${s2.flagged}/${s2.clean}` : '-'} |`;
  };
  const weak = fams.filter(([, f]) => f.found < f.secret || f.flagged > 0);
  const head =
    '| family | Airlock found | Airlock false alarms | secretlint found | secretlint false alarms |\n| --- | --- | --- | --- | --- |';
  const md = `### ${peer}: ${samples.length} samples (${samples.filter((x) => x.label === 'secret').length} secret, ${samples.filter((x) => x.label === 'clean').length} clean), ${new Set(samples.map((x) => x.family)).size} families, ${disputes.size} left out by adjudication

| score | Airlock recall | Airlock precision | found | false alarms | secretlint recall | secretlint precision |
| --- | --- | --- | --- | --- | --- | --- |
${row('adjudicated', o, sl)}
${row('as labelled', oRaw, slRaw)}

Families where Airlock misses or false-alarms (adjudicated):

${weak.length ? `${head}\n${weak.map(famRow).join('\n')}` : '(none)'}

<details><summary>All ${fams.length} families</summary>

${head}
${fams.map(famRow).join('\n')}

</details>
`;
  return { md, ours: o };
}

async function main(): Promise<void> {
  const corpus = generateCorpus();
  const q = { ours: await quality(corpus, ours), sl: await quality(corpus, secretlintAlone) };

  // Throughput corpus: the labelled files plus plain source up to ~4 MB (most of a real repo).
  const corpusBytes = corpus.reduce((n, f) => n + Buffer.byteLength(f.content), 0);
  const filler = fillerCorpus(DEFAULT_SEED + 1, 4 * 1024 * 1024 - corpusBytes);
  const bytes = corpusBytes + filler.reduce((n, f) => n + Buffer.byteLength(f.content), 0);
  const all = [...corpus, ...filler];
  const mb = bytes / 1e6;
  await throughput(all, ours);
  await throughput(all, secretlintAlone); // warm-up
  const tOurs: number[] = [],
    tSl: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // interleaved, alternating which goes first
    if (r % 2) {
      tSl.push(await throughput(all, secretlintAlone));
      tOurs.push(await throughput(all, ours));
    } else {
      tOurs.push(await throughput(all, ours));
      tSl.push(await throughput(all, secretlintAlone));
    }
  }
  const mbsOurs = mb / (median(tOurs) / 1000);
  const mbsSl = mb / (median(tSl) / 1000);

  // Second workload: every peer sample (dense in secrets and near-misses).
  const peerFiles = PEERS.flatMap((p) => loadPeer(p).samples.map(asFile));
  const peerMb = peerFiles.reduce((n, f) => n + Buffer.byteLength(f.content), 0) / 1e6;
  await throughput(peerFiles, ours);
  await throughput(peerFiles, secretlintAlone);
  const pOurs: number[] = [],
    pSl: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (r % 2) {
      pSl.push(await throughput(peerFiles, secretlintAlone));
      pOurs.push(await throughput(peerFiles, ours));
    } else {
      pOurs.push(await throughput(peerFiles, ours));
      pSl.push(await throughput(peerFiles, secretlintAlone));
    }
  }
  const peerOurs = peerMb / (median(pOurs) / 1000);
  const peerSl = peerMb / (median(pSl) / 1000);
  const peerMd: string[] = [];
  for (const p of PEERS) peerMd.push((await peerSection(p)).md);

  // The secretlint CLI on the same files written to disk (includes Node start-up and globbing).
  const tmp = mkdtempSync(join(tmpdir(), 'airlock-bench-secrets-'));
  let cli = 'not run (secretlint CLI not installed)';
  try {
    const dir = join(tmp, 'corpus');
    writeCorpus(dir, all);
    rmSync(join(dir, 'labels.json'));
    const runs: number[] = [];
    let ok = true;
    for (let r = 0; r < 3; r++) {
      const x = cliRun(dir);
      ok &&= x.ok;
      runs.push(x.ms);
    }
    if (ok)
      cli = `${(mb / (median(runs) / 1000)).toFixed(1)} MB/s (median of 3 runs of \`secretlint "corpus/**/*"\`, secretlint 13.0.6 CLI, Node start-up and file reads included)`;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }

  const famRows = [...q.ours.fam.keys()].map((k) => {
    const a = q.ours.fam.get(k)!,
      b = q.sl.fam.get(k)!;
    return `| ${k} | ${a.n} | ${a.hit}/${a.n} | ${b.hit}/${b.n} |`;
  });
  const fpRows = [...new Set([...q.ours.fpByFamily.keys(), ...q.sl.fpByFamily.keys()])].map(
    (k) => `| ${k} | ${q.ours.fpByFamily.get(k) ?? 0} | ${q.sl.fpByFamily.get(k) ?? 0} |`,
  );
  const md = `## Secrets engine vs secretlint alone

Reproduce: \`node bench/secrets.ts\` (corpus: \`bench/secrets-corpus.ts\`, seed ${DEFAULT_SEED}; ROUNDS=${ROUNDS}).
Corpus: ${corpus.length} files, ${q.ours.total} labelled secrets in ${q.ours.fam.size} families (two "hard" families that no
pattern engine should find are kept in to keep recall honest), ${corpus.filter((f) => f.lookalikes.length).length} look-alike files.
A detection counts as a true positive when it overlaps a labelled secret, else a false positive.
Baseline: \`@secretlint/core\` 13.0.7 with \`secretlint-rule-preset-recommend\` at its defaults, as users run it.
Caveat: this corpus was written by the same team as the rules; read recall on it as "covers these formats", not as field recall.
The peer corpora below were not.

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

## Peer corpora (data we did not write)

Reproduce: \`node bench/secrets.ts\` (samples: \`bench/corpora/<peer>/samples.jsonl\`, built by \`bench/corpora/extract.ts\`;
provenance, licenses and adjudication rules: \`bench/corpora/README.md\`). Kept apart from our own corpus above.
Scores are per sample: a \`secret\` sample is found when a finding overlaps its labelled span (any finding when the peer
gives none); any finding in a \`clean\` sample is a false alarm. "Adjudicated" leaves out placeholder fixtures labelled
secret (xxxx…, AAAA…, abcd1234 repeated, aBcDeF…, …EXAMPLE: issue 15 asks us to suppress exactly these) and the labels in
each \`disputed.json\` (with reasons); "as labelled" counts every sample as the peer labels it. Goal: recall ≥ 0.98 and
precision ≥ 0.95 on every corpus (adjudicated); \`test/secrets/families.test.ts\` enforces it.

${peerMd.join('\n')}
## Throughput

Median of ${ROUNDS} interleaved rounds, in process, same run:

| workload | Airlock MB/s | secretlint alone MB/s | ratio |
| --- | --- | --- | --- |
| our corpus + plain source, ${mb.toFixed(2)} MB | ${mbsOurs.toFixed(1)} | ${mbsSl.toFixed(1)} | **${(mbsOurs / mbsSl).toFixed(2)}×** |
| all peer samples, ${peerMb.toFixed(2)} MB in ${peerFiles.length} small files | ${peerOurs.toFixed(1)} | ${peerSl.toFixed(1)} | **${(peerOurs / peerSl).toFixed(2)}×** |

secretlint CLI on the first workload: ${cli}.

How: one Aho–Corasick pass (src/secrets/prefilter.ts) finds every rule's literal anchors; a rule runs only when its
anchors occur, rules that start with their anchor run only at those offsets, and secretlint is handed only the preset
rules whose anchors occur (the tests check that this never changes what secretlint reports, on every corpus). Before
issue 15 the ratio on the first workload was 0.49×. Absolute MB/s move with the load of this shared 2-core machine;
the ratio is measured within one run.`;
  writeSection('secrets', md);
  process.stdout.write(md + '\n');
}

await main();
