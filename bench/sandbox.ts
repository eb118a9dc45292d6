// Sandbox benchmarks (issue: sandboxed agent sessions), each against its baseline in
// the same process run, interleaved, reported as ratios:
//  1. per-command overhead in a running session (programmatic API) vs bare bwrap
//  2. `airlock run -- true` (whole CLI) on a generated 50k-file repo: wall time, peak RSS
//  3. process-telemetry overhead: a shell loop of 1,000 short processes, traced vs not
// Run: node bench/sandbox.ts [--quick]
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Session } from '../src/session/index.ts';
import { writeSection, median } from './report.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const quick = process.argv.includes('--quick');
const N = quick ? 10 : 50;
const work = mkdtempSync(join(tmpdir(), 'airlock-bench-'));
const home = join(work, 'home');

function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ ms: number; code: number | null }> {
  return new Promise((res) => {
    const t = performance.now();
    const c = spawn(cmd, args, { stdio: 'ignore', env: env ?? process.env });
    c.on('close', (code) => res({ ms: performance.now() - t, code }));
  });
}

function makeRepo(dir: string, files: number): void {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < files; i++) {
    const d = join(dir, `d${i % 100}`, `e${Math.floor(i / 100) % 50}`);
    if (i < 5000) mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `f${i}.txt`), `file ${i}\n`);
  }
  const g = (...a: string[]) =>
    spawnSync('git', a, { cwd: dir, env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null' } });
  g('init', '-q');
  g('add', '-A');
  g('-c', 'user.name=b', '-c', 'user.email=b@b', 'commit', '-qm', 'bench');
}

function policy(trace: boolean): string {
  const p = join(work, `policy-${trace}.yaml`);
  writeFileSync(p, `sandbox:\n  traceProcesses: ${trace}\n`);
  return p;
}

const small = join(work, 'small');
makeRepo(small, 10);
const bare = ['--unshare-all', '--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', 'true'];
const lines: string[] = [];

// 1. per-command overhead
const results: Record<string, { airlock: number; bare: number }> = {};
for (const trace of [false, true]) {
  const s = await Session.open({ repo: small, home, policyFile: policy(trace) });
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < 3; i++) await (await s.exec({ argv: ['true'] })).done; // warm up
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    await (
      await s.exec({ argv: ['true'] })
    ).done;
    a.push(performance.now() - t);
    b.push((await run('bwrap', bare)).ms);
  }
  await s.stop('bench');
  results[trace ? 'traced' : 'untraced'] = { airlock: median(a), bare: median(b) };
}

// 2. session start on 50k files
const big = join(work, 'big');
const files = quick ? 5000 : 50_000;
makeRepo(big, files);
const cli = join(ROOT, 'bin', 'airlock');
const env = { ...process.env, AIRLOCK_HOME: home };
const first = await run('bash', ['-c', `cd ${big} && ${cli} run -- true 2>/dev/null`], env);
const starts: number[] = [];
const rss: number[] = [];
for (let i = 0; i < (quick ? 3 : 10); i++) {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', 'bash', '-c', `cd ${big} && ${cli} run -- true 2>/dev/null`], {
    env,
    encoding: 'utf8',
  });
  const m = /([\d.]+) (\d+)\s*$/.exec(r.stderr.trim());
  if (m) {
    starts.push(Number(m[1]) * 1000);
    rss.push(Number(m[2]) / 1024);
  }
}

// 3. telemetry overhead: 1,000 short processes
const loop = ['bash', '-c', 'for i in $(seq 1000); do /bin/true; done'];
const tl: Record<string, number[]> = { traced: [], untraced: [] };
const sessions = {
  traced: await Session.open({ repo: small, home, policyFile: policy(true) }),
  untraced: await Session.open({ repo: small, home, policyFile: policy(false) }),
};
for (let i = 0; i < (quick ? 2 : 5); i++) {
  for (const k of ['untraced', 'traced'] as const) {
    const t = performance.now();
    await (
      await sessions[k].exec({ argv: loop })
    ).done;
    tl[k]!.push(performance.now() - t);
  }
}
await sessions.traced.stop('bench');
await sessions.untraced.stop('bench');

const r1 = results.untraced!;
const r2 = results.traced!;
lines.push(
  '## Sandbox (sessions, per-command overhead, telemetry)',
  '',
  `Command: \`node bench/sandbox.ts${quick ? ' --quick' : ''}\` (as root: cgroup limits, unprivileged host uid).`,
  '',
  '| measure | Airlock | baseline | ratio | target |',
  '| --- | ---: | ---: | ---: | --- |',
  `| \`true\` in a running session, tracing off (median of ${N}) | ${r1.airlock.toFixed(1)} ms | bare \`bwrap --unshare-all\` ${r1.bare.toFixed(1)} ms | ${(r1.airlock / r1.bare).toFixed(2)}× | ≤ 1.5× |`,
  `| \`true\` in a running session, tracing on (default policy) | ${r2.airlock.toFixed(1)} ms | bare bwrap ${r2.bare.toFixed(1)} ms | ${(r2.airlock / r2.bare).toFixed(2)}× | — |`,
  `| \`airlock run -- true\` on ${files.toLocaleString('en')} files, first session on the commit | ${first.ms.toFixed(0)} ms | — | — | — |`,
  `| \`airlock run -- true\` on ${files.toLocaleString('en')} files, later sessions (median of ${starts.length}) | ${median(starts).toFixed(0)} ms, peak RSS ${median(rss).toFixed(0)} MiB | — | — | ≤ 300 ms |`,
  `| 1,000 short processes, traced vs untraced (median of ${tl.traced!.length}) | ${median(tl.traced!).toFixed(0)} ms | ${median(tl.untraced!).toFixed(0)} ms | ${(median(tl.traced!) / median(tl.untraced!)).toFixed(2)}× | — |`,
  '',
  'The per-command path is dash (cgroup join, rlimits, seccomp fd) → nsenter into the session\'s namespaces (setting the unprivileged uid) → bwrap; tracing adds the process tracer (seccomp-notify as root, strace otherwise; both compared in the "Process telemetry" section, bench/telemetry.ts).',
);
writeSection('sandbox', lines.join('\n'));
console.log(lines.join('\n'));
rmSync(work, { recursive: true, force: true });
