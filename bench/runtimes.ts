// Sandbox runtimes side by side (issue 19), interleaved in one run, as ratios to bare bwrap:
//  1. cold start: Session.open → first command done → stop, per runtime (bwrap, gvisor)
//  2. per-command cost in a running session (`true`), traced, per runtime
// Baseline: bare `bwrap --unshare-all … true` in the same loop. Needs root (runsc).
// Run: node bench/runtimes.ts [--quick]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from '../src/session/index.ts';
import { writeSection, median } from './report.ts';

const quick = process.argv.includes('--quick');
const N = quick ? 10 : 30;
const STARTS = quick ? 3 : 8;
const RUNTIMES = ['bwrap', 'gvisor'] as const;
const work = mkdtempSync(join(tmpdir(), 'airlock-bench-rt-'));
const home = join(work, 'home');
const repo = join(work, 'repo');
spawnSync('bash', [
  '-c',
  `mkdir -p ${repo} && cd ${repo} && git init -q && echo x > README.md && git add -A && git -c user.name=b -c user.email=b@b commit -qm b`,
]);
const bare = ['--unshare-all', '--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', 'true'];

function bareBwrap(): Promise<number> {
  return new Promise((res) => {
    const t = performance.now();
    spawn('bwrap', bare, { stdio: 'ignore' }).on('close', () => res(performance.now() - t));
  });
}

function policyFor(runtime: string): string {
  const p = join(work, `${runtime}.yaml`);
  writeFileSync(p, `sandbox:\n  runtime: ${runtime}\n`);
  return p;
}

const open = (runtime: string) =>
  Session.open({
    repo,
    home,
    policyFile: policyFor(runtime),
    layers: { commands: null, review: null, detection: null },
  });

// 1. cold start, interleaved
const cold: Record<string, number[]> = { bare: [], bwrap: [], gvisor: [] };
for (let i = 0; i < STARTS; i++) {
  for (const rt of RUNTIMES) {
    const t = performance.now();
    const s = await open(rt);
    await (
      await s.exec({ argv: ['true'] })
    ).done;
    await s.stop('bench');
    cold[rt]!.push(performance.now() - t);
  }
  cold.bare!.push(await bareBwrap());
}

// 2. per command, both sessions open, interleaved
const sessions = Object.fromEntries(await Promise.all(RUNTIMES.map(async (rt) => [rt, await open(rt)] as const)));
const per: Record<string, number[]> = { bare: [], bwrap: [], gvisor: [] };
for (const rt of RUNTIMES) for (let i = 0; i < 3; i++) await (await sessions[rt]!.exec({ argv: ['true'] })).done;
for (let i = 0; i < N; i++) {
  for (const rt of RUNTIMES) {
    const t = performance.now();
    await (
      await sessions[rt]!.exec({ argv: ['true'] })
    ).done;
    per[rt]!.push(performance.now() - t);
  }
  per.bare!.push(await bareBwrap());
}
for (const s of Object.values(sessions)) await s.stop('bench');
rmSync(work, { recursive: true, force: true });

const m = (xs: number[]) => median(xs).toFixed(1);
const ratio = (xs: number[]) => (median(xs) / median(per.bare!)).toFixed(1);
const md = `## Sandbox runtimes: bwrap vs gVisor vs bare bwrap (issue 19)

\`node bench/runtimes.ts${quick ? ' --quick' : ''}\` (as root; medians, interleaved in one run; measured on a shared 2-core machine under load from other test runs, so absolute numbers move; the ratios within one run are what to compare).

| | bare bwrap | bwrap runtime | gVisor runtime |
| --- | --- | --- | --- |
| cold start: open → \`true\` → stop (ms, n=${STARTS}) | ${m(cold.bare!)} | ${m(cold.bwrap!)} | ${m(cold.gvisor!)} |
| per command \`true\` in a running session, traced (ms, n=${N}) | ${m(per.bare!)} | ${m(per.bwrap!)} (${ratio(per.bwrap!)}× bare) | ${m(per.gvisor!)} (${ratio(per.gvisor!)}× bare) |

The gVisor runtime pays for runsc itself: \`runsc run\` boots a sentry and a gofer at session start, and every command is a \`runsc exec\` (a Go binary that loads the container state and talks to the sentry over its control socket), plus the ptrace platform's cost on every syscall. Cold start includes the workspace overlay, the audit log and capture for both runtimes.
`;
writeSection('runtimes', md);
process.stdout.write(md);
