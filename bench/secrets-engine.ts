// The detection engine on real code: every .js/.ts/.json/.md file (1 KB – 2 MB) of this
// checkout's node_modules, scanned by a baseline engine (a git ref, extracted with `git
// archive`) and by this tree's, interleaved in one process. Measured in CPU time of this
// process (wall time on a shared 2-core machine moves with other people's load), and
// checked to report exactly the same findings.
// Reproduce: node bench/secrets-engine.ts [--baseline REF] [--rounds N] [--no-write]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { median, writeSection } from './report.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const baselineRef = args.includes('--baseline') ? args[args.indexOf('--baseline') + 1]! : '9b98984';
const rounds = args.includes('--rounds') ? Number(args[args.indexOf('--rounds') + 1]) : 3;

type ScanText = (
  text: string,
  opts: { path?: string },
) => Promise<{ rule: string; start: number; end: number; fingerprint: string }[]>;

function baselineTree(): string {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-bench-engine-'));
  const tar = spawnSync('git', ['archive', '--format=tar', baselineRef, 'src'], { cwd: ROOT, maxBuffer: 1 << 30 });
  if (tar.status !== 0) throw new Error(`git archive ${baselineRef}: ${tar.stderr}`);
  const x = spawnSync('tar', ['-x', '-C', dir], { input: tar.stdout });
  if (x.status !== 0) throw new Error(String(x.stderr));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

function corpus(): { path: string; text: string }[] {
  const out: { path: string; text: string }[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && /\.(?:js|mjs|cjs|ts|json|md)$/.test(e.name)) {
        const size = statSync(p).size;
        if (size > 1000 && size < 2e6) out.push({ path: p.slice(ROOT.length + 1), text: readFileSync(p, 'utf8') });
      }
    }
  };
  walk(join(ROOT, 'node_modules'));
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}

const cpuMs = () => {
  const u = process.resourceUsage();
  return (u.userCPUTime + u.systemCPUTime) / 1000;
};

async function pass(
  scan: ScanText,
  files: { path: string; text: string }[],
): Promise<{ ms: number; findings: string[] }> {
  const findings: string[] = [];
  const t0 = cpuMs();
  for (const f of files)
    for (const x of await scan(f.text, { path: f.path }))
      findings.push(`${f.path}:${x.start}-${x.end}:${x.rule}:${x.fingerprint}`);
  return { ms: cpuMs() - t0, findings };
}

const base = baselineTree();
try {
  const engines: { name: string; scan: ScanText }[] = [
    {
      name: `baseline (${baselineRef})`,
      scan: ((await import(pathToFileURL(join(base, 'src/secrets/engine.ts')).href)) as { scanText: ScanText })
        .scanText,
    },
    {
      name: 'candidate',
      scan: ((await import(pathToFileURL(join(ROOT, 'src/secrets/engine.ts')).href)) as { scanText: ScanText })
        .scanText,
    },
  ];
  const files = corpus();
  const mb = files.reduce((n, f) => n + f.text.length, 0) / 1e6;
  for (const e of engines) await pass(e.scan, files.slice(0, 200)); // warm-up
  const ms = new Map<string, number[]>(engines.map((e) => [e.name, []]));
  const found = new Map<string, string[]>();
  for (let r = 0; r < rounds; r++) {
    for (const e of engines) {
      const p = await pass(e.scan, files);
      ms.get(e.name)!.push(p.ms);
      found.set(e.name, p.findings);
    }
  }
  const [b, c] = engines.map((e) => median(ms.get(e.name)!)) as [number, number];
  const same = JSON.stringify(found.get(engines[0]!.name)) === JSON.stringify(found.get('candidate'));
  const md = `## Detection engine on real code

\`node bench/secrets-engine.ts\` — ${files.length} files of this checkout's node_modules (.js/.ts/.json/.md, 1 KB–2 MB; ${mb.toFixed(1)} MB), scanned by the baseline engine and the candidate interleaved in one process, median of ${rounds} rounds, in CPU time of the process (wall time on this shared machine moves with other people's load).

| engine | CPU s | MB per CPU s | findings |
| --- | --- | --- | --- |
${engines.map((e) => `| ${e.name} | ${(median(ms.get(e.name)!) / 1000).toFixed(2)} | ${(mb / (median(ms.get(e.name)!) / 1000)).toFixed(1)} | ${found.get(e.name)!.length} |`).join('\n')}

Baseline / candidate CPU: **${(b / c).toFixed(2)}×**; findings (file, span, rule, fingerprint) ${same ? 'identical' : '**differ**'}.`;
  process.stdout.write(md + '\n');
  if (!args.includes('--no-write')) writeSection('secrets-engine', md);
} finally {
  rmSync(base, { recursive: true, force: true });
}
