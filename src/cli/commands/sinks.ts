import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { AirlockError, ExitCode } from '../../common/index.ts';
import {
  DEFAULT_ORG_POLICY,
  readPolicyFile,
  resolvePolicy,
  type PolicySource,
  type SinkConfig,
} from '../../policy/index.ts';
import { flushSinks, sinkStatus, sessionSinks, startDelivery, type SinkStatus } from '../../audit/sinks/index.ts';
import { openStore } from '../store.ts';
import { bad, dim, ok, printJson, table, warn, setExit } from '../output.ts';

// `airlock sinks status|flush|serve`: SIEM delivery lag and errors; deliver what is pending;
// a delivery service that keeps delivering what sessions left behind (deploy/airlock-sinks.service).

/** Sinks from the org policy (AIRLOCK_ORG_POLICY or /etc/airlock/policy.yaml) and --policy / ./airlock.yaml. */
export function configuredSinks(policyFile?: string): SinkConfig[] {
  const sources: PolicySource[] = [];
  const org = process.env.AIRLOCK_ORG_POLICY || DEFAULT_ORG_POLICY;
  if (existsSync(org)) sources.push(readPolicyFile(org, 'org'));
  const repo = policyFile ?? (existsSync('airlock.yaml') ? 'airlock.yaml' : undefined);
  if (repo) sources.push(readPolicyFile(repo, 'repo'));
  // the same sinks a session may run: a checkout's airlock.yaml cannot add a destination
  return sessionSinks(resolvePolicy(sources));
}

/** What the cursor means: acknowledged by the receiver, or only sent (plain syslog has no acknowledgement). */
function ackText(s: SinkStatus): string {
  if (s.ack === 'none') return warn('none (sent, unacknowledged)');
  return s.ack ?? dim('?');
}

function render(list: SinkStatus[]): string {
  if (list.length === 0) return dim('no sinks configured (telemetry.sinks in the policy)');
  return table(
    list.map((s) => [
      s.name,
      s.type,
      ackText(s),
      String(s.cursor),
      s.lag === 0 ? ok('0') : warn(String(s.lag)),
      String(s.delivered),
      s.lastOkAt ?? dim('never'),
      s.lastError ? bad(`${s.lastError.slice(0, 80)} (${s.failures}x, ${s.lastErrorAt})`) : dim('-'),
      s.owner ?? dim('-'),
    ]),
    ['sink', 'type', 'ack', 'cursor', 'lag', 'delivered', 'last ok', 'last error', 'delivering'],
  );
}

/** Runs delivery until SIGTERM/SIGINT, then delivers the tail for a bounded time and exits. */
async function serve(opts: { policy?: string; pollMs: number; flushMs: number }): Promise<void> {
  const list = configuredSinks(opts.policy);
  if (list.length === 0) {
    throw new AirlockError(
      'NOT_FOUND',
      'no sinks to deliver to: the org policy sets no telemetry.sinks',
      'add sinks to the org policy ($AIRLOCK_ORG_POLICY or /etc/airlock/policy.yaml), or pass --policy',
    );
  }
  const store = openStore(false);
  const delivery = startDelivery(store, list, { pollMs: opts.pollMs });
  process.stderr.write(
    `${dim('airlock:', process.stderr)} delivering to ${list.map((s) => s.name).join(', ')} (pid ${process.pid}); SIGTERM to stop\n`,
  );
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(sig, () => resolve(sig));
  });
  await delivery.stop({ flushMs: opts.flushMs });
  const left = sinkStatus(store, list).filter((s) => s.lag > 0);
  store.close();
  process.stderr.write(
    `${dim('airlock:', process.stderr)} ${signal}: stopped${left.length ? `; still pending: ${left.map((s) => `${s.name} ${s.lag}`).join(', ')} (kept in the log)` : ''}\n`,
  );
}

const positiveInt =
  (name: string) =>
  (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1)
      throw new AirlockError(
        'USAGE',
        `${name} ${JSON.stringify(v)} is not a positive whole number of milliseconds`,
        `e.g. ${name} 500`,
      );
    return n;
  };

export const registerSinks = (program: Command): void => {
  const sinks = program.command('sinks').description('SIEM sinks: delivery status and flushing.');
  sinks
    .command('status')
    .option('--policy <file>', 'repo policy file (default ./airlock.yaml)')
    .option('--json', 'print as JSON')
    .description("Each sink's cursor, lag (events not yet delivered) and last error.")
    .action((opts: { policy?: string; json?: boolean }) => {
      const store = openStore(false);
      try {
        const st = sinkStatus(store, configuredSinks(opts.policy));
        if (opts.json) printJson(st);
        else process.stdout.write(render(st) + '\n');
      } finally {
        store.close();
      }
    });
  sinks
    .command('flush')
    .option('--policy <file>', 'repo policy file (default ./airlock.yaml)')
    .option('--json', 'print as JSON')
    .description(
      `Deliver every pending event now (one attempt per sink). Exit ${ExitCode.UNAVAILABLE} when a sink still lags.`,
    )
    .action(async (opts: { policy?: string; json?: boolean }, cmd: Command) => {
      const store = openStore(false);
      try {
        const st = await flushSinks(store, configuredSinks(opts.policy));
        if (opts.json) printJson(st);
        else process.stdout.write(render(st) + '\n');
        setExit(cmd, st.some((s) => s.configured && s.lag > 0) ? ExitCode.UNAVAILABLE : ExitCode.OK);
      } finally {
        store.close();
      }
    });
  sinks
    .command('serve')
    .option('--policy <file>', 'repo policy file (default ./airlock.yaml)')
    .option('--poll <ms>', 'how often to look for new events', positiveInt('--poll'), 500)
    .option(
      '--flush <ms>',
      'on SIGTERM, keep delivering the tail this long before exiting',
      positiveInt('--flush'),
      5000,
    )
    .description(
      'Keep delivering to every sink until stopped (SIGTERM): the tail of every session, and whatever an outage left spooled. One process per sink delivers at a time (lease); run it as a service (deploy/airlock-sinks.service).',
    )
    .action(async (opts: { policy?: string; poll: number; flush: number }) => {
      await serve({ policy: opts.policy, pollMs: opts.poll, flushMs: opts.flush });
    });
};
