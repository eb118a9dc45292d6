import type { Command } from 'commander';
import { AirlockError } from '../../common/index.ts';
import { dim, printJson } from '../output.ts';
import { warmOff, warmOn, warmStatus, type WarmStatus } from '../warm/index.ts';

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000 };
const MAX_IDLE_MS = 7 * 24 * 3_600_000;

/** "30m", "90s", "2h" → ms. */
function parseIdle(text: string): number {
  const m = /^(\d+)([smh])$/.exec(text.trim());
  const ms = m ? Number(m[1]) * UNITS[m[2]!]! : NaN;
  if (!(ms > 0 && ms <= MAX_IDLE_MS))
    throw new AirlockError(
      'USAGE',
      `--idle ${JSON.stringify(text)} is not a duration`,
      'write e.g. 30m, 90s or 2h (at most 168h)',
    );
  return ms;
}

function describe(s: WarmStatus): string {
  if (!s.built) return 'warm start: not available (build/airlock-attach not built: bash scripts/build-native.sh)\n';
  const idle = s.idleMs === null ? '' : `, spares end after ${Math.round(s.idleMs / 60_000)} min idle`;
  const lines = [
    !s.on
      ? 'warm start: off'
      : s.spare
        ? `warm start: on${idle}; spare pid ${s.spare.pid} ready since ${s.spare.since}`
        : `warm start: on${idle}; no spare waiting right now (one is starting, or the last one is serving)`,
    `served by this chain of spares: ${s.served}`,
  ];
  if (s.refused) lines.push(`refused connections from other users: ${s.refused} (see ${s.log})`);
  return lines.join('\n') + '\n';
}

function report(s: WarmStatus, json: boolean | undefined): void {
  if (json) return printJson(s);
  process.stdout.write(describe(s));
}

export function registerWarm(program: Command): void {
  const warm = program
    .command('warm')
    .description(
      'Warm start: keep one pre-loaded spare `airlock` process ready for your next command (per user and AIRLOCK_HOME). ' +
        'Each spare serves one command, first starting its successor; a spare whose code changed on disk is not used.',
    );
  warm
    .command('on')
    .description('Start the spare (and keep one ready after every command) until `warm off` or idle')
    .option('--idle <duration>', 'end warm start after this long without a command (e.g. 30m, 2h)', '30m')
    .option('--json', 'machine-readable output')
    .action(async (o: { idle: string; json?: boolean }) =>
      report(await warmOn(process.env, parseIdle(o.idle)), o.json),
    );
  warm
    .command('off')
    .description('End the waiting spare; a command a spare is serving finishes normally')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => report(await warmOff(process.env), o.json));
  warm
    .command('status')
    .description('Whether warm start is on, the waiting spare, and how many commands the chain served')
    .option('--json', 'machine-readable output')
    .action((o: { json?: boolean }) => {
      const s = warmStatus(process.env);
      report(s, o.json);
      if (!o.json && s.on && !s.spare)
        process.stderr.write(dim('(the next airlock command runs cold)\n', process.stderr));
    });
}
