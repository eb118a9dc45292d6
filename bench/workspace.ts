// Preparing the workspace of a gigabyte repository: a committed node_modules-like tree of
// ~1 GB in 10,000 files (JS text, native binaries, a few over the 10 MiB scan limit,
// .bin links). Goals (issue 22): first session ≤ 15 s; a following commit that changes 10
// files ≤ 1 s more than an unchanged one; later sessions ≤ 0.3 s; supervisor peak memory
// ≤ 256 MiB while preparing. The baseline is the code before the workspace rewrite (a git
// ref, extracted with `git archive`), run on the same repository in the same run.
// Reproduce: node bench/workspace.ts [--baseline REF] [--no-baseline] [--no-write]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, writeSection } from './report.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SHAPE = 'v1: 9700 text x 45 KiB, 280 binaries x 1.2 MiB, 20 binaries x 12 MiB, 200 links';
const REPO = join(tmpdir(), 'airlock-bench-workspace-repo');
const TEXT_FILES = 9700;
const BINS = 280;
const BIG_BINS = 20;
const LINKS = 200;
const CHANGED = 10;
const WARM_ROUNDS = 5;
const NEW_COMMITS = 3;

const args = process.argv.slice(2);
const baselineRef = args.includes('--baseline') ? args[args.indexOf('--baseline') + 1]! : 'c474396';
const withBaseline = !args.includes('--no-baseline');

const GIT_ENV = {
  ...process.env,
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_AUTHOR_NAME: 'b',
  GIT_AUTHOR_EMAIL: 'b@x',
  GIT_COMMITTER_NAME: 'b',
  GIT_COMMITTER_EMAIL: 'b@x',
};
function git(cwd: string, ...a: string[]): string {
  const r = spawnSync('git', a, { cwd, encoding: 'utf8', env: GIT_ENV, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`git ${a.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

function jsModule(pkg: number, file: number, rev = 0): string {
  const parts: string[] = [
    `'use strict';\n// package ${pkg} module ${file} revision ${rev}\nconst util = require('./util-${file % 7}');\n`,
  ];
  for (let k = 0, len = 0; len < 45 * 1024; k++) {
    const fn = `function handler_${pkg}_${file}_${k}(input, options) {
  const value = util.normalize(input, { depth: ${k % 13}, label: 'item-${pkg}-${file}-${k}' });
  if (options && options.verbose) console.log('handler ${k} of ${file}', value.length);
  return value.map((x) => x * ${k + 1} + ${rev}).filter(Boolean);
}
`;
    parts.push(fn);
    len += fn.length;
  }
  return parts.join('');
}

function binary(n: number): Buffer {
  return Buffer.concat([randomBytes(n), Buffer.from('\0GCC: (Debian 12.2.0-14) 12.2.0\0napi_register_module_v1\0')]);
}

/** Builds the repository once (reused across runs while its shape is unchanged). */
function makeRepo(): string[] {
  const marker = join(REPO, '.bench-shape');
  if (existsSync(marker) && readFileSync(marker, 'utf8') === SHAPE)
    return git(REPO, 'rev-list', '--reverse', 'HEAD').split('\n');
  rmSync(REPO, { recursive: true, force: true });
  mkdirSync(REPO, { recursive: true });
  git(REPO, 'init', '-q', '-b', 'main');
  git(REPO, 'config', 'gc.auto', '0');
  const pkgs = 200;
  for (let i = 0; i < TEXT_FILES; i++) {
    const dir = join(REPO, 'node_modules', `pkg-${i % pkgs}`, 'lib');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `mod-${i}.js`), jsModule(i % pkgs, i));
  }
  for (let i = 0; i < BINS + BIG_BINS; i++) {
    const dir = join(REPO, 'node_modules', `pkg-${i % pkgs}`, 'build', 'Release');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `addon-${i}.node`), binary(i < BINS ? 1.2 * 2 ** 20 : 12 * 2 ** 20), { mode: 0o755 });
  }
  mkdirSync(join(REPO, 'node_modules', '.bin'), { recursive: true });
  for (let i = 0; i < LINKS; i++)
    symlinkSync(`../pkg-${i}/lib/mod-${i}.js`, join(REPO, 'node_modules', '.bin', `tool-${i}`));
  git(REPO, '-c', 'core.compression=1', 'add', '-A');
  git(REPO, 'commit', '-qm', 'vendored node_modules');
  for (let c = 1; c <= NEW_COMMITS; c++) {
    for (let k = 0; k < CHANGED; k++) {
      const i = c * 100 + k;
      writeFileSync(join(REPO, 'node_modules', `pkg-${i % pkgs}`, 'lib', `mod-${i}.js`), jsModule(i % pkgs, i, c));
    }
    git(REPO, 'commit', '-qam', `change ${CHANGED} files (${c})`);
  }
  git(REPO, 'repack', '-adq'); // as a clone would have it: packed
  writeFileSync(marker, SHAPE);
  return git(REPO, 'rev-list', '--reverse', 'HEAD').split('\n');
}

interface Run {
  openMs: number;
  totalMs: number;
  hwmKiB: number;
  /** CPU seconds, supervisor + its children (absent from older session scripts) */ cpuS?: number;
}

function session(src: string, home: string, base: string, repo = REPO): Run {
  const r = spawnSync(process.execPath, [join(ROOT, 'bench', 'workspace-session.ts'), src, home, repo, base], {
    encoding: 'utf8',
    timeout: 900_000,
  });
  if (r.status !== 0) throw new Error(`session failed (${src}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Run;
}

/** The baseline source tree: `git archive` of the ref, sharing this tree's node_modules. */
function baselineTree(): string {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-bench-baseline-'));
  const tar = spawnSync('git', ['archive', '--format=tar', baselineRef], { cwd: ROOT, maxBuffer: 1 << 30 });
  if (tar.status !== 0) throw new Error(`git archive ${baselineRef}: ${tar.stderr}`);
  const x = spawnSync('tar', ['-x', '-C', dir], { input: tar.stdout });
  if (x.status !== 0) throw new Error(String(x.stderr));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const mib = (kib: number) => `${Math.round(kib / 1024)} MiB`;

const commits = makeRepo();
const [first, ...later] = commits as [string, ...string[]];
const size = git(REPO, 'count-objects', '-vH');
const impls: { name: string; src: string; home: string }[] = [
  { name: 'candidate', src: ROOT, home: mkdtempSync(join(tmpdir(), 'airlock-bench-home-')) },
];
if (withBaseline)
  impls.unshift({
    name: `baseline (${baselineRef})`,
    src: baselineTree(),
    home: mkdtempSync(join(tmpdir(), 'airlock-bench-home-')),
  });
const res = new Map<string, { first: Run; warm: Run[]; next: Run[]; nextWarm: Run[] }>();
for (const im of impls) res.set(im.name, { first: null as unknown as Run, warm: [], next: [], nextWarm: [] });
for (const im of impls) res.get(im.name)!.first = session(im.src, im.home, first);
for (let i = 0; i < WARM_ROUNDS; i++)
  for (const im of impls) res.get(im.name)!.warm.push(session(im.src, im.home, first));
for (const c of later) {
  for (const im of impls) {
    const r = res.get(im.name)!;
    r.next.push(session(im.src, im.home, c));
    r.nextWarm.push(session(im.src, im.home, c)); // the same commit again: the "unchanged" reference
  }
}

// the size-independent part of a session start: the same measurement on a one-file repository
const tiny = mkdtempSync(join(tmpdir(), 'airlock-bench-tiny-'));
git(tiny, 'init', '-q', '-b', 'main');
writeFileSync(join(tiny, 'README.md'), '# tiny\n');
git(tiny, 'add', '-A');
git(tiny, 'commit', '-qm', 'tiny');
const tinyHome = mkdtempSync(join(tmpdir(), 'airlock-bench-home-'));
const tinyRuns: Run[] = [];
for (let i = 0; i <= WARM_ROUNDS; i++) tinyRuns.push(session(ROOT, tinyHome, git(tiny, 'rev-parse', 'HEAD'), tiny));
const tinyWarm = median(tinyRuns.slice(1).map((x) => x.openMs));
rmSync(tiny, { recursive: true, force: true });
rmSync(tinyHome, { recursive: true, force: true });

const rows: string[] = [];
for (const [name, r] of res) {
  const warm = median(r.warm.map((x) => x.openMs));
  const next = median(r.next.map((x) => x.openMs));
  const nextWarm = median(r.nextWarm.map((x) => x.openMs));
  const cpu = (x: Run) => (x.cpuS === undefined ? '?' : `${x.cpuS.toFixed(1)} s`);
  rows.push(
    `| ${name} | ${s(r.first.openMs)} | ${cpu(r.first)} | ${mib(Math.max(r.first.hwmKiB, ...r.next.map((x) => x.hwmKiB)))} | ${s(warm)} | ${s(next)} | +${s(next - nextWarm)} | ${s(median(r.warm.map((x) => x.totalMs)))} |`,
  );
}
const cand = res.get('candidate')!;
const base = withBaseline ? res.get(impls[0]!.name)! : null;
const ratio = base
  ? `Baseline / candidate: first session ${(base.first.openMs / cand.first.openMs).toFixed(1)}×, session on a new commit ${(median(base.next.map((x) => x.openMs)) / median(cand.next.map((x) => x.openMs))).toFixed(1)}×.`
  : '';
const md = `## Workspace preparation on a 1 GB repository

\`node bench/workspace.ts\` — a committed node_modules-like repository (${SHAPE}; ${commits.length} commits, the later ones change ${CHANGED} files each; packed as a clone: ${/size-pack: (.*)/.exec(size)?.[1] ?? '?'}), default policy (files over 10 MiB hidden, so the history is replaced by a sanitized commit), run as ${process.getuid?.() === 0 ? 'root' : 'a user'}. Each number is \`Session.open\` (snapshot ready + sandbox started) in a fresh supervisor process; peak memory is that process's VmHWM (worker threads included, git children not). Goals: first ≤ 15 s, new commit ≤ 1 s more than unchanged, later ≤ 0.3 s, memory ≤ 256 MiB.

| implementation | first session | its CPU time (supervisor + git) | peak memory | later session (median ${WARM_ROUNDS}) | new commit, 10 files changed (median ${NEW_COMMITS}) | more than unchanged | later session incl. \`true\` + stop |
| --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}

The same later session on a one-file repository (candidate): ${s(tinyWarm)} — the part of a session start that does not depend on the repository (policy, sandbox holder, overlay, audit), so the repository's own share of a later session is ${s(Math.max(0, median(cand.warm.map((x) => x.openMs)) - tinyWarm))}.

${ratio}`;
process.stdout.write(md + '\n');
if (!args.includes('--no-write')) writeSection('workspace', md);
for (const im of impls) {
  rmSync(im.home, { recursive: true, force: true });
  if (im.src !== ROOT) rmSync(im.src, { recursive: true, force: true });
}
