// Cold start (issue 16): a whole `airlock run -- true` on a 1,000-file repository (a fresh
// CLI process; the workspace snapshot of the commit is cached, as for every session after
// the first) against sandbox-runtime's `srt true` (npm @anthropic-ai/sandbox-runtime, a
// devDependency), and, when given `--before DIR` (a checkout of an older Airlock with its
// node_modules), the same commands of that checkout. Rounds interleave every command in a
// rotating order; ratios are medians of per-round ratios (steadier on a shared machine).
// Then where the time of `airlock run -- true` goes: phase marks (src/common/phase.ts)
// collected by bench/phase-probe.ts in extra runs.
// The warm row (`airlock warm on`, src/cli/warm/) is the same command handed to a pre-loaded
// spare: its CPU adds the whole life of the spare that served it (loading included, read from
// the spare's log), since every warm run uses up one spare.
//   node bench/cold-start.ts [--rounds N] [--before DIR] [--no-write]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatabaseSync } from 'node:sqlite';
import { writeSection, median } from './report.ts';
import type { PhaseMark } from '../src/common/index.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const ROUNDS = Number(arg('--rounds') ?? 15);
const BEFORE = arg('--before');
const work = mkdtempSync(join(tmpdir(), 'airlock-bench-cold-'));
const repo = join(work, 'repo');

function makeRepo(dir: string, files: number): void {
  for (let i = 0; i < files; i++) {
    const d = join(dir, `d${i % 20}`);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `f${i}.txt`), `file ${i}\n`);
  }
  const g = (...a: string[]) =>
    spawnSync('git', a, { cwd: dir, env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null' } });
  g('init', '-q');
  g('add', '-A');
  g('-c', 'user.name=b', '-c', 'user.email=b@b', 'commit', '-qm', 'bench');
}

interface Timed {
  ms: number;
  cpuMs: number;
  code: number | null;
}

/** Wall and CPU time (user + system, children included) of one command, via /usr/bin/time. */
function timed(argv: string[], env: NodeJS.ProcessEnv): Promise<Timed> {
  return new Promise((res) => {
    const t = performance.now();
    const c = spawn('/usr/bin/time', ['-f', '%U %S', ...argv], { cwd: repo, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    c.on('close', (code) => {
      const m = /([\d.]+) ([\d.]+)\s*$/.exec(err.trim());
      res({ ms: performance.now() - t, cpuMs: m ? (Number(m[1]) + Number(m[2])) * 1000 : NaN, code });
    });
  });
}

makeRepo(repo, 1000);
const node = process.execPath;
const env = { ...process.env, PATH: `${dirname(node)}:${process.env.PATH}`, NO_COLOR: '1' };
const homeOf = (name: string) => join(work, `home-${name}`);
const srt = join(ROOT, 'node_modules', '.bin', 'srt');
const warmHome = homeOf('warm');
const WARM = 'airlock run -- true, warm (airlock warm on)';
const commands: Record<string, { argv: string[]; env: NodeJS.ProcessEnv; before?: () => void }> = {
  'airlock run -- true': {
    argv: [join(ROOT, 'bin', 'airlock'), 'run', '--', 'true'],
    env: { ...env, AIRLOCK_HOME: homeOf('now') },
  },
  // the first run after a policy file, a profile or Airlock itself changed: the policy engine parses again
  'airlock run -- true, policy not cached': {
    argv: [join(ROOT, 'bin', 'airlock'), 'run', '--', 'true'],
    env: { ...env, AIRLOCK_HOME: homeOf('uncached') },
    before: () => rmSync(join(homeOf('uncached'), 'cache', 'results'), { recursive: true, force: true }),
  },
  // the spare that serves it was started when the previous command began: waiting for it to be
  // ready is not timed (a person types slower than a spare loads; a script's loop may not)
  [WARM]: {
    argv: [join(ROOT, 'bin', 'airlock'), 'run', '--', 'true'],
    env: { ...env, AIRLOCK_HOME: warmHome },
    before: () => waitForSpare(warmHome),
  },
  'srt true': { argv: [srt, 'true'], env },
  'airlock --version': {
    argv: [join(ROOT, 'bin', 'airlock'), '--version'],
    env: { ...env, AIRLOCK_HOME: homeOf('now') },
  },
  'airlock sessions --json': {
    argv: [join(ROOT, 'bin', 'airlock'), 'sessions', '--json'],
    env: { ...env, AIRLOCK_HOME: homeOf('now') },
  },
  'node -e 0 (floor)': { argv: [node, '-e', '0'], env },
};
if (BEFORE) {
  for (const c of ['run', 'version', 'sessions'] as const) {
    const args = c === 'run' ? ['run', '--', 'true'] : c === 'version' ? ['--version'] : ['sessions', '--json'];
    commands[`before (${beforeCommit()}): airlock ${args.join(' ')}`] = {
      argv: [join(BEFORE, 'bin', 'airlock'), ...args],
      env: { ...env, AIRLOCK_HOME: homeOf('before') },
    };
  }
}

startWarm();
// warm-up: snapshot caches, V8 compile caches, page cache
for (const [name, c] of Object.entries(commands)) {
  c.before?.();
  const r = await timed(c.argv, c.env);
  if (r.code !== 0)
    throw new Error(
      `${name} failed to run (exit ${r.code}); srt needs bwrap, socat and ripgrep (scripts/setup.sh test deps)`,
    );
}

// where the time goes: phase marks of extra runs with the probe loaded (it costs a few ms),
// one per round, in the rotation like the others (so they meet the same load)
const probe = join(ROOT, 'bench', 'phase-probe.ts');
const phaseSamples: Record<string, number[]> = {};
async function probedRun(): Promise<void> {
  const out = join(work, 'phases.json');
  const c = commands['airlock run -- true']!;
  await timed(c.argv, { ...c.env, NODE_OPTIONS: `--import=${probe}`, AIRLOCK_PHASES_OUT: out });
  const marks = JSON.parse(readFileSync(out, 'utf8')) as PhaseMark[];
  let prev = 0;
  for (const m of marks) {
    (phaseSamples[m.name] ??= []).push(m.at - prev);
    prev = m.at;
  }
}

const names = Object.keys(commands);
const samples: Record<string, Timed[]> = Object.fromEntries(names.map((n) => [n, []]));
const PROBED = '(phase probe)';
for (let round = 0; round < ROUNDS; round++) {
  const order = [...names, PROBED];
  for (let k = 0; k < order.length; k++) {
    const name = order[(round + k) % order.length]!;
    if (name === PROBED) await probedRun();
    else {
      commands[name]!.before?.();
      const logged = spareLogSize(warmHome);
      const t = await timed(commands[name]!.argv, commands[name]!.env);
      if (name === WARM) t.cpuMs += servingSpareCpu(warmHome, logged);
      samples[name]!.push(t);
    }
  }
}
const perRound = (a: string, b: string) => median(samples[a]!.map((x, i) => x.ms / samples[b]![i]!.ms));
const med = (n: string, k: 'ms' | 'cpuMs') => median(samples[n]!.map((x) => x[k]));

const PHASES: [string, string][] = [
  ['node.boot', 'Node start (process start → first module of the CLI)'],
  ['cli.loaded', "loading the CLI and the `run` command's file"],
  ['run.modules', 'loading the session core and the agent profile entry'],
  ['run.profile', 'agent profile: repository, base commit, policy files, cached policy and profile'],
  ['session.policy', 'policy resolved (org ⊕ repo ⊕ grants)'],
  ['session.audit-open', 'audit store opened'],
  ['session.recover', 'looking for crashed sessions to recover'],
  ['session.snapshot', 'workspace snapshot (cached layers of the commit)'],
  ['session.sandbox', "sandbox holder: namespaces, tmpfs, overlay (bwrap's base)"],
  ['session.started', 'session.start recorded, layers started (detector, checkpointer, honeytokens)'],
  ['exec.decided', 'the command: agent setup recorded, command rules decided'],
  ['exec.spawned', 'the command: launch chain spawned (tracer → bwrap)'],
  ['exec.released', 'the command: released to run'],
  ['exec.chain-ended', 'the command: `true` and its launch chain ended'],
  ['exec.recorded-end', 'the command: its end recorded'],
  ['run.command', 'the command: returned to `run`'],
  ['stop.kill', "stop: end the sandbox's processes"],
  ['stop.capture', 'stop: capture the result (git, bounded)'],
  ['stop.teardown', 'stop: holder, tmpfs, network gone'],
  ['stop.layers', 'stop: session.stop recorded, signed checkpoint, layers stopped'],
  ['run.report', 'summary printed (audit queries)'],
  ['exit', 'exit'],
];
const fmt = (x: number) => x.toFixed(0);
const rows = names.map(
  (n) => `| ${n} | ${fmt(med(n, 'ms'))} | ${fmt(med(n, 'cpuMs'))} | ${perRound(n, 'srt true').toFixed(2)}× |`,
);
const runVsSrt = perRound('airlock run -- true', 'srt true');
const warmVsSrt = perRound(WARM, 'srt true');
const phaseTotal = PHASES.reduce((a, [k]) => a + (phaseSamples[k] ? median(phaseSamples[k]!) : 0), 0);
const phaseRows = PHASES.filter(([k]) => phaseSamples[k]).map(([k, what]) => {
  const ms = median(phaseSamples[k]!);
  return `| ${what} | ${ms.toFixed(1)} | ${((ms / phaseTotal) * 100).toFixed(0)}% |`;
});
const md = [
  '## Cold start: `airlock run -- true` vs `srt true`',
  '',
  `Command: \`node bench/cold-start.ts --rounds ${ROUNDS}${BEFORE ? ' --before DIR' : ''}\`. A repository of 1,000 committed files; each command is a fresh process started from a shell-less spawn in that repository, wrapped in /usr/bin/time for CPU (user + system, children included). The Airlock workspace snapshot of the commit is cached (warm-up run), as for every session after a commit's first; srt (\`@anthropic-ai/sandbox-runtime\` ${srtVersion()}, default settings: bwrap, socat bridges, seccomp, a ripgrep scan for dangerous files) has no cache. Airlock runs with its default policy: process telemetry on (${tracer()}), no network, every layer; its resolved policy and agent profile come from the cache in AIRLOCK_HOME (as for every run whose policy files did not change since the last). ${ROUNDS} rounds, each runs every command once in a rotating order; "vs srt" is the median of per-round ratios.${BEFORE ? ` "before" is another checkout of Airlock (--before: commit ${beforeCommit()}) with its own AIRLOCK_HOME, same machine, same rounds.` : ''}`,
  '',
  '| command | wall ms (median) | CPU ms (median) | vs srt true |',
  '| --- | ---: | ---: | ---: |',
  ...rows,
  '',
  `Target: \`airlock run -- true\` ≤ 0.5× \`srt true\` → **${runVsSrt.toFixed(2)}×** cold, **${warmVsSrt.toFixed(2)}×** warm (\`airlock warm on\`: bin/airlock hands the command to a spare process that has already started Node and loaded the CLI and the session core; its CPU column includes the serving spare's whole life, loading included, and the C client's). Measured on a shared machine while other test runs used it (load average below): wall times move with that load, read the per-round ratios.`,
  '',
  `Where the time of \`airlock run -- true\` goes (median of ${phaseSamples.exit?.length ?? 0} runs with the phase probe loaded, one per round; ms from the end of the previous phase; sum of medians ${fmt(phaseTotal)} ms; the shares move less with the machine's load than the milliseconds):`,
  '',
  '| phase | ms | share |',
  '| --- | ---: | ---: |',
  ...phaseRows,
].join('\n');
console.log(md);
if (!process.argv.includes('--no-write')) writeSection('cold-start', md);
rmSync(work, { recursive: true, force: true });

function startWarm(): void {
  const r = spawnSync(join(ROOT, 'bin', 'airlock'), ['warm', 'on', '--idle', '10m'], {
    env: { ...env, AIRLOCK_HOME: warmHome },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`airlock warm on failed (needs bash scripts/build-native.sh): ${r.stderr}`);
  // whatever ends this process, no spare outlives it
  process.on('exit', () =>
    spawnSync(join(ROOT, 'bin', 'airlock'), ['warm', 'off'], { env: { ...env, AIRLOCK_HOME: warmHome } }),
  );
}

/** Waits (bounded) until a spare of `home` is ready: loaded, its pid alive, its socket there. */
function waitForSpare(home: string): void {
  const dir = join(home, 'run', 'warm');
  for (let i = 0; i < 400; i++) {
    try {
      const { pid, loaded } = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as {
        pid: number;
        loaded: boolean;
      };
      if (loaded && existsSync(join(dir, 'spare.sock')) && existsSync(`/proc/${pid}`)) return;
    } catch {
      // not written yet
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  }
  throw new Error(`no warm spare came up in ${home} (see ${join(dir, 'spare.log')})`);
}

function spareLogSize(home: string): number {
  return statSync(join(home, 'run', 'warm', 'spare.log'), { throwIfNoEntry: false })?.size ?? 0;
}

/** CPU of the spare that served the last warm run: its whole life, children it waited for included (its log). */
function servingSpareCpu(home: string, from: number): number {
  const added = readFileSync(join(home, 'run', 'warm', 'spare.log'))
    .subarray(from)
    .toString('utf8');
  const m = /done: status \d+, cpu (\d+) ms/.exec(added);
  if (!m) throw new Error(`the warm run was not served by a spare:\n${added}`);
  return Number(m[1]);
}

function beforeCommit(): string {
  return spawnSync('git', ['-C', BEFORE!, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim() || '?';
}

/** The process tracer the measured sessions used (session.start records it). */
function tracer(): string {
  try {
    const db = new DatabaseSync(join(homeOf('now'), 'audit.db'), { readOnly: true });
    const row = db.prepare("SELECT data FROM events WHERE type = 'session.start' ORDER BY seq DESC LIMIT 1").get() as
      { data: string } | undefined;
    db.close();
    return (JSON.parse(row?.data ?? '{}') as { mechanisms?: { tracing?: string } }).mechanisms?.tracing ?? '?';
  } catch {
    return '?';
  }
}

function srtVersion(): string {
  try {
    return (
      JSON.parse(
        readFileSync(join(ROOT, 'node_modules', '@anthropic-ai', 'sandbox-runtime', 'package.json'), 'utf8'),
      ) as { version: string }
    ).version;
  } catch {
    return '?';
  }
}
