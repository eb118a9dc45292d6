// One command in a live session, baseline tree vs this tree, interleaved in one process (issue #16).
// Both trees' session modules are imported side by side (each with its own build/airlock-tracer);
// every round runs bare bwrap, a baseline session's `true` and this tree's `true`, so load hits
// each alike. Reported: medians and ratios. Also: the same, with the supervisor's memory grown by
// 300 MB of live objects (Node's spawn() forks the whole process; its cost grows with it).
// Run as root: node bench/exec-ab.ts BASELINE_WORKTREE [--quick]
//   (BASELINE_WORKTREE: e.g. `git worktree add /tmp/base a0b45ed`, node_modules linked, tracer built)
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Session } from '../src/session/index.ts';
import { median, writeSection } from './report.ts';

const baseDir = resolve(process.argv[2] ?? '');
const quick = process.argv.includes('--quick');
const N = quick ? 15 : 60;
type Opener = typeof Session.open;
const { Session: BaseSession } = (await import(join(baseDir, 'src/session/index.ts'))) as { Session: typeof Session };
const baseRev = spawnSync('git', ['-C', baseDir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim();

const work = mkdtempSync(join(tmpdir(), 'airlock-bench-exec-ab-'));
const repo = join(work, 'repo');
mkdirSync(repo);
writeFileSync(join(repo, 'README.md'), '# bench\n');
const git = (...a: string[]) =>
  spawnSync('git', a, { cwd: repo, env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null' } });
git('init', '-q');
git('add', '-A');
git('-c', 'user.name=b', '-c', 'user.email=b@b', 'commit', '-qm', 'bench');

async function open(opener: Opener, name: string) {
  return opener({ repo, home: join(work, name), layers: { commands: null } });
}
const sessions = {
  baseline: await open(BaseSession.open.bind(BaseSession), 'base'),
  candidate: await open(Session.open.bind(Session), 'cand'),
};

const bareArgs = ['--unshare-all', '--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', 'true'];
function bare(): Promise<number> {
  return new Promise((res) => {
    const t = performance.now();
    spawn('bwrap', bareArgs, { stdio: 'ignore' }).on('close', () => res(performance.now() - t));
  });
}
async function inSession(s: Session): Promise<number> {
  const t = performance.now();
  const h = await s.exec({ argv: ['true'] });
  await h.done;
  return performance.now() - t;
}

async function round(): Promise<Record<'bare' | 'baseline' | 'candidate', number>> {
  const r = { bare: [] as number[], baseline: [] as number[], candidate: [] as number[] };
  for (let i = 0; i < 3; i++) for (const s of Object.values(sessions)) await inSession(s); // warm up
  for (let i = 0; i < N; i++) {
    r.bare.push(await bare());
    r.baseline.push(await inSession(sessions.baseline));
    r.candidate.push(await inSession(sessions.candidate));
  }
  return { bare: median(r.bare), baseline: median(r.baseline), candidate: median(r.candidate) };
}

const small = await round();
const rssSmall = process.memoryUsage().rss;
const ballast: { i: number; s: string }[] = [];
for (let i = 0; i < 2_500_000; i++) ballast.push({ i, s: `ballast-${i}` });
const big = await round();
const rssBig = process.memoryUsage().rss;
ballast.length = 0;
for (const s of Object.values(sessions)) await s.stop('bench');

const mb = (b: number) => `${Math.round(b / 2 ** 20)} MiB`;
const row = (label: string, x: typeof small) =>
  `| ${label} | ${x.bare.toFixed(1)} ms | ${x.baseline.toFixed(1)} ms (${(x.baseline / x.bare).toFixed(2)}×) | ${x.candidate.toFixed(1)} ms (${(x.candidate / x.bare).toFixed(2)}×) | ${(x.candidate / x.baseline).toFixed(2)}× |`;
const lines = [
  '## One command in a live session, baseline vs candidate (issue #16)',
  '',
  `Command: \`node bench/exec-ab.ts <worktree of ${baseRev}>${quick ? ' --quick' : ''}\` as root. Default policy (telemetry on:`,
  `seccomp-notify), command rules left out; each round interleaves bare \`bwrap --unshare-all true\`, the baseline`,
  `session's \`true\` and the candidate's, ${N} times (medians). Measured on a shared machine under load from other`,
  "engineers' test runs: read the ratios.",
  '',
  '| supervisor memory (RSS) | bare bwrap | baseline (vs bare) | candidate (vs bare) | candidate / baseline |',
  '| --- | ---: | ---: | ---: | ---: |',
  row(mb(rssSmall), small),
  row(`${mb(rssBig)} (300 MB of live objects added)`, big),
];
writeSection('exec-ab', lines.join('\n'));
console.log(lines.join('\n'));
rmSync(work, { recursive: true, force: true });
