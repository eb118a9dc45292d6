// Process-telemetry benchmarks (issue #16), every variant interleaved in one run, reported as ratios:
//  1. `true` in a running session: tracing off / seccomp-notify (default as root) / strace,
//     each against bare `bwrap --unshare-all true` measured between them
//  2. a shell loop of 1,000 short processes in a session: notify and strace against tracing off
//  3. the tracer alone, outside any session: bare bwrap and the 1,000-process loop, with and
//     without build/airlock-tracer around them (no session chain, no audit log)
//  4. where one `true` goes in the default (notify) session: the exec path's phase marks
//     (src/common/phase.ts), medians of the gaps between them
// Run as root: node bench/telemetry.ts [--quick]
import { spawn, spawnSync } from 'node:child_process';
import { subscribe } from 'node:diagnostics_channel';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from '../src/session/index.ts';
import { TRACER_BINARY } from '../src/sandbox/tracers.ts';
import type { PhaseMark } from '../src/common/index.ts';
import { median, writeSection } from './report.ts';

const quick = process.argv.includes('--quick');
const N = quick ? 10 : 40;
const ROUNDS = quick ? 2 : 6;
const work = mkdtempSync(join(tmpdir(), 'airlock-bench-telemetry-'));
const home = join(work, 'home');

const repo = join(work, 'repo');
mkdirSync(repo);
writeFileSync(join(repo, 'README.md'), '# bench\n');
const git = (...a: string[]) =>
  spawnSync('git', a, { cwd: repo, env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null' } });
git('init', '-q');
git('add', '-A');
git('-c', 'user.name=b', '-c', 'user.email=b@b', 'commit', '-qm', 'bench');

function policy(name: string, yaml: string): string {
  const p = join(work, `${name}.yaml`);
  writeFileSync(p, yaml);
  return p;
}

const VARIANTS = {
  off: 'sandbox:\n  traceProcesses: false\n',
  notify: 'sandbox:\n  traceProcesses: true\n',
  strace: 'sandbox:\n  traceProcesses: true\n  traceFileProbes: true\n',
} as const;
type Variant = keyof typeof VARIANTS;
const names = Object.keys(VARIANTS) as Variant[];

function timed(cmd: string, args: string[]): Promise<number> {
  return new Promise((res) => {
    const t = performance.now();
    spawn(cmd, args, { stdio: 'ignore' }).on('close', () => res(performance.now() - t));
  });
}
// the exec path's phase marks of the command being timed (commands run one at a time)
let marks: PhaseMark[] = [];
subscribe('airlock:phase', (m) => {
  marks.push(m as PhaseMark);
});
const phaseGaps: Record<string, number[]> = {};
async function timedExec(s: Session, argv: string[], probe = false): Promise<number> {
  marks = [{ name: 'exec.called', at: performance.now() }];
  const t = marks[0]!.at;
  await (
    await s.exec({ argv })
  ).done;
  const end = performance.now();
  if (probe) {
    marks.push({ name: 'exec.returned', at: end });
    for (let i = 1; i < marks.length; i++)
      (phaseGaps[`${marks[i - 1]!.name} → ${marks[i]!.name}`] ??= []).push(marks[i]!.at - marks[i - 1]!.at);
  }
  return end - t;
}

const sessions = {} as Record<Variant, Session>;
for (const v of names)
  sessions[v] = await Session.open({ repo, home, policyFile: policy(v, VARIANTS[v]), layers: { commands: null } });
const tracers = Object.fromEntries(names.map((v) => [v, sessions[v].mechanisms.tracing]));

// 1. per command, interleaved with bare bwrap
const bareArgs = ['--unshare-all', '--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', 'true'];
const perCmd = Object.fromEntries([...names, 'bare'].map((k) => [k, [] as number[]])) as Record<
  Variant | 'bare',
  number[]
>;
for (const v of names) for (let i = 0; i < 3; i++) await timedExec(sessions[v], ['true']); // warm up
for (let i = 0; i < N; i++) {
  perCmd.bare.push(await timed('bwrap', bareArgs));
  for (const v of names) perCmd[v].push(await timedExec(sessions[v], ['true'], v === 'notify'));
}

// 2. 1,000 short processes, interleaved
const loop = ['bash', '-c', 'for i in $(seq 1000); do /bin/true; done'];
const loops = Object.fromEntries(names.map((k) => [k, [] as number[]])) as Record<Variant, number[]>;
for (let r = 0; r < ROUNDS; r++) for (const v of names) loops[v].push(await timedExec(sessions[v], loop));
for (const v of names) await sessions[v].stop('bench');

// 3. the tracer alone (interleaved)
const traceOut = join(work, 'alone.trace');
const alone = { bwrap: [] as number[], bwrapTraced: [] as number[], loop: [] as number[], loopTraced: [] as number[] };
const loopScript = ['-c', 'for i in $(seq 1000); do /bin/true; done'];
for (let i = 0; i < N; i++) {
  alone.bwrap.push(await timed('bwrap', bareArgs));
  alone.bwrapTraced.push(await timed(TRACER_BINARY, ['-o', traceOut, '--', 'bwrap', ...bareArgs]));
  rmSync(traceOut, { force: true });
}
for (let r = 0; r < ROUNDS; r++) {
  alone.loop.push(await timed('bash', loopScript));
  alone.loopTraced.push(await timed(TRACER_BINARY, ['-o', traceOut, '--', 'bash', ...loopScript]));
  rmSync(traceOut, { force: true });
}

const m = (xs: number[]) => median(xs);
const PHASE_MEANING: Record<string, string> = {
  'exec.called → exec.decided': 'command rules (the policy decision)',
  'exec.decided → exec.spawned': 'launch arguments; the tracer started ahead taken (else: spawn() of the chain)',
  'exec.spawned → exec.released': '`command.exec` fsynced while the tracer sets up the sandbox, then the go',
  'exec.released → exec.chain-ended': "the command's exec let go, `true` runs, bwrap and the tracer end",
  'exec.chain-ended → exec.recorded-end': 'last process events + `command.exit`, one group commit (fsync)',
  'exec.recorded-end → exec.returned': 'the result reaches the caller',
};
const phaseRows = Object.entries(phaseGaps).map(
  ([k, xs]) => `| ${k} | ${PHASE_MEANING[k] ?? ''} | ${m(xs).toFixed(2)} ms |`,
);
const bare = m(perCmd.bare);
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
const lines = [
  '## Process telemetry (seccomp-notify tracer vs strace vs off)',
  '',
  `Command: \`node bench/telemetry.ts${quick ? ' --quick' : ''}\` as root. Every variant runs in its own live session, all`,
  'interleaved in one run (bare bwrap between them), so machine load hits each alike; measured on a shared machine',
  'under load from other test runs: read the ratios, not the absolute times.',
  '',
  `Tracers the sessions got: off → \`${tracers.off}\`, default → \`${tracers.notify}\`, \`traceFileProbes: true\` → \`${tracers.strace}\`.`,
  '',
  '| measure | value | baseline | ratio | target |',
  '| --- | ---: | ---: | ---: | --- |',
  `| \`true\` in a running session, tracing off (median of ${N}) | ${m(perCmd.off).toFixed(1)} ms | bare \`bwrap --unshare-all true\` ${bare.toFixed(1)} ms | ${ratio(m(perCmd.off), bare)} | — |`,
  `| \`true\` in a running session, telemetry on (seccomp-notify, the default) | ${m(perCmd.notify).toFixed(1)} ms | bare bwrap ${bare.toFixed(1)} ms | ${ratio(m(perCmd.notify), bare)} | ≤ 1.5× |`,
  `| \`true\` in a running session, strace (fallback, file probes) | ${m(perCmd.strace).toFixed(1)} ms | bare bwrap ${bare.toFixed(1)} ms | ${ratio(m(perCmd.strace), bare)} | — |`,
  `| 1,000 short processes, seccomp-notify vs off (median of ${ROUNDS}) | ${m(loops.notify).toFixed(0)} ms | ${m(loops.off).toFixed(0)} ms | ${ratio(m(loops.notify), m(loops.off))} | ≤ 1.3× |`,
  `| 1,000 short processes, strace vs off | ${m(loops.strace).toFixed(0)} ms | ${m(loops.off).toFixed(0)} ms | ${ratio(m(loops.strace), m(loops.off))} | — |`,
  `| the tracer alone: \`airlock-tracer -- bwrap --unshare-all true\` (median of ${N}) | ${m(alone.bwrapTraced).toFixed(1)} ms | bare bwrap ${m(alone.bwrap).toFixed(1)} ms | ${ratio(m(alone.bwrapTraced), m(alone.bwrap))} | — |`,
  `| the tracer alone: 1,000 short processes on the host (median of ${ROUNDS}) | ${m(alone.loopTraced).toFixed(0)} ms | ${m(alone.loop).toFixed(0)} ms | ${ratio(m(alone.loopTraced), m(alone.loop))} | — |`,
  '',
  `Where one \`true\` goes in the default (notify) session: phase marks of the exec path (src/common/phase.ts), median of ${N}`,
  'per gap (medians do not add up to the median total):',
  '',
  '| from → to | what runs | median |',
  '| --- | --- | ---: |',
  ...phaseRows,
  '',
  'The notify tracer stops a process only at execve/execveat, connect, sendto with an address and refused socket()',
  'families (one round trip to the tracer each); forks and exits are read from the proc connector without stopping',
  'anyone. strace stops at every traced call and attaches to every new process.',
  '',
  'Reading the numbers. On a loaded host the 1,000-process loop can run *faster* traced than untraced, in a',
  'session and on the bare host alike (last rows): each exec hands the CPU to the tracer and back with a direct',
  'wake-up (seccomp user notification switches synchronously on current kernels), which keeps the traced loop',
  'on-CPU while untraced forks and waits queue behind other load; on a quiet host the two are within noise.',
  "A command in the default session: its notify tracer was started ahead, while the previous command ran (Node's",
  "spawn() forks the whole supervisor, so its cost grows with the supervisor's memory), and got the program with",
  "its go; the sandbox is set up while `command.exec` is fsynced, and only the command's own exec waits for that",
  "(held at its seccomp notification); the command's end is one group commit with its last process events. What",
  "is left above bare bwrap is those two fsyncs and the session's bwrap (more mounts than the bare one). The",
  'tracing-off row still spawns its dash chain per command (nothing started ahead) and pays the fork of the',
  'supervisor: telemetry on is now cheaper than off.',
];
writeSection('telemetry', lines.join('\n'));
console.log(lines.join('\n'));
rmSync(work, { recursive: true, force: true });
