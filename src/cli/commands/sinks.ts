import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { ExitCode } from '../../common/errors.ts';
import { DEFAULT_ORG_POLICY, readPolicyFile, resolvePolicy, type PolicySource } from '../../policy/index.ts';
import type { SinkConfig } from '../../policy/schema/telemetry.ts';
import { flushSinks, sinkStatus, sessionSinks, type SinkStatus } from '../../audit/sinks/index.ts';
import { openStore } from './audit.ts';
import { setExit } from '../main.ts';
import { bad, dim, ok, printJson, table, warn } from '../output.ts';

// `airlock sinks status|flush`: SIEM delivery lag and errors; deliver what is pending.

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

function render(list: SinkStatus[]): string {
  if (list.length === 0) return dim('no sinks configured (telemetry.sinks in the policy)');
  return table(list.map((s) => [
    s.name, s.type, String(s.cursor), s.lag === 0 ? ok('0') : warn(String(s.lag)), String(s.delivered), s.lastOkAt ?? dim('never'),
    s.lastError ? bad(`${s.lastError.slice(0, 80)} (${s.failures}x, ${s.lastErrorAt})`) : dim('-'), s.owner ?? dim('-'),
  ]), ['sink', 'type', 'cursor', 'lag', 'delivered', 'last ok', 'last error', 'delivering']);
}

export const registerSinks = (program: Command): void => {
  const sinks = program.command('sinks').description('SIEM sinks: delivery status and flushing.');
  sinks.command('status').option('--policy <file>', 'repo policy file (default ./airlock.yaml)').option('--json', 'print as JSON')
    .description('Each sink\'s cursor, lag (events not yet delivered) and last error.')
    .action((opts: { policy?: string; json?: boolean }) => {
      const store = openStore(false);
      try {
        const st = sinkStatus(store, configuredSinks(opts.policy));
        if (opts.json) printJson(st); else process.stdout.write(render(st) + '\n');
      } finally { store.close(); }
    });
  sinks.command('flush').option('--policy <file>', 'repo policy file (default ./airlock.yaml)').option('--json', 'print as JSON')
    .description(`Deliver every pending event now (one attempt per sink). Exit ${ExitCode.UNAVAILABLE} when a sink still lags.`)
    .action(async (opts: { policy?: string; json?: boolean }, cmd: Command) => {
      const store = openStore(false);
      try {
        const st = await flushSinks(store, configuredSinks(opts.policy));
        if (opts.json) printJson(st); else process.stdout.write(render(st) + '\n');
        setExit(cmd, st.some((s) => s.configured && s.lag > 0) ? ExitCode.UNAVAILABLE : ExitCode.OK);
      } finally { store.close(); }
    });
};
