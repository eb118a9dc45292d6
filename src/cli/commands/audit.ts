import { existsSync, readFileSync, writeFileSync, createWriteStream } from 'node:fs';
import type { Command } from 'commander';
import { AirlockError, ExitCode, homeLayout, escapeForTerminal as sanitizeForTerminal } from '../../common/index.ts';
import {
  AuditStore,
  checkpoint,
  listCheckpoints,
  loadPublicKey,
  proveEvent,
  verifyLogAsync,
  verifyProof,
  type AuditEvent,
  type Severity,
  formatEvent,
  type EventFormat,
  summarize,
} from '../../audit/index.ts';
import { registerSinks } from './sinks.ts';
import { auditDbPath, openStore } from '../store.ts';
import { bad, dim, jsonText, ok, printJson, table, warn, setExit } from '../output.ts';

// `airlock audit …`: read, verify, prove and export the tamper-evident audit log.

const SEVERITIES: Severity[] = ['info', 'low', 'medium', 'high', 'critical'];

/** ISO time or a relative age: 30s, 15m, 2h, 7d. */
export function parseSince(v: string): string {
  const rel = /^(\d+)([smhd])$/.exec(v);
  if (rel)
    return new Date(
      Date.now() - Number(rel[1]) * ({ s: 1, m: 60, h: 3600, d: 86400 } as const)[rel[2] as 's']! * 1000,
    ).toISOString();
  const t = Date.parse(v);
  if (Number.isNaN(t))
    throw new AirlockError(
      'USAGE',
      `--since ${JSON.stringify(v)} is not a time`,
      'use an ISO time (2026-11-01T12:00:00Z) or an age such as 30m, 2h, 7d',
    );
  return new Date(t).toISOString();
}

function parseSeverity(v: string | undefined): Severity | undefined {
  if (v === undefined) return undefined;
  if (!SEVERITIES.includes(v as Severity))
    throw new AirlockError(
      'USAGE',
      `unknown severity ${JSON.stringify(v)}`,
      `use one of ${SEVERITIES.join(', ')} (shows that severity and above)`,
    );
  return v as Severity;
}

function sevColour(s: Severity, text: string): string {
  return s === 'critical' || s === 'high' ? bad(text) : s === 'medium' ? warn(text) : text;
}
function decisionColour(d: string | null): string {
  return d === 'deny' ? bad(d) : d === 'allow' ? ok(d) : d === 'ask' ? warn(d) : dim('-');
}

function timelineRow(e: AuditEvent): string[] {
  return [
    dim(e.ts.replace('T', ' ').replace('Z', '')),
    sevColour(e.severity, sanitizeForTerminal(e.type)),
    decisionColour(e.decision),
    e.rule ? sanitizeForTerminal(e.rule) : dim('-'),
    summarize(e, 160, sanitizeForTerminal),
  ];
}

function typeMatch(pattern: string | undefined, t: string): boolean {
  if (!pattern) return true;
  return pattern.endsWith('*') ? t.startsWith(pattern.slice(0, -1)) : t === pattern;
}

/** `airlock audit verify`: the hash chain, the Merkle tree and every signed checkpoint; exit TAMPERED naming the first bad event. */
async function verifyAuditLog(
  opts: { json?: boolean; pubkey?: string; database?: string; hostKeys?: string; local?: boolean },
  cmd: Command,
): Promise<void> {
  // the shared store found as every entry point finds it (--database, AIRLOCK_DATABASE_URL, the org policy)
  const shared = opts.local
    ? undefined
    : (await import('../../store/index.ts')).sharedStoreUrl({ flag: opts.database });
  if (shared) {
    const { verifyShared } = await import('./shared.ts');
    await verifyShared({ ...opts, database: shared }, cmd);
    return;
  }
  const path = auditDbPath();
  if (!existsSync(path))
    throw new AirlockError(
      'NOT_FOUND',
      `no audit log at ${path}`,
      'set AIRLOCK_HOME to the data dir that holds audit.db',
    );
  // what crashed sessions left in their raw traces belongs in the log being verified
  if (existsSync(homeLayout().sessions)) {
    const { recoverAndReport } = await import('./session.ts');
    const store = new AuditStore(path);
    try {
      recoverAndReport(store, homeLayout());
    } finally {
      store.close();
    }
  }
  let pub = null;
  try {
    pub = loadPublicKey(opts.pubkey);
  } catch (e) {
    if (opts.pubkey) throw e;
  }
  const r = await verifyLogAsync(path, { publicKey: pub });
  if (r.ok && !r.signaturesChecked) {
    r.ok = false;
    r.problems = [...(r.problems ?? []), 'checkpoint signatures were not checked: no public key (pass --pubkey FILE)'];
  }
  if (opts.json) printJson(r);
  else if (r.ok) {
    process.stdout.write(
      `${ok('intact')}: ${r.events} events, ${r.checkpointsChecked ?? 0} signed checkpoints verified, root ${r.root}\n`,
    );
  } else {
    if (r.firstBad)
      process.stdout.write(
        `${bad('TAMPERED')}: first bad event seq ${r.firstBad.seq}${r.firstBad.id ? ` (${r.firstBad.id})` : ''}: ${r.firstBad.reason}\n`,
      );
    for (const p of r.problems ?? []) process.stdout.write(`${bad('TAMPERED')}: ${p}\n`);
    process.stdout.write(dim(`${r.events} events verified before the first problem\n`));
  }
  setExit(cmd, r.ok ? ExitCode.OK : ExitCode.TAMPERED);
}

/** `airlock audit tail`: polls the log for new events until SIGINT/SIGTERM or --max-events. */
async function tailEvents(opts: {
  session?: string;
  type?: string;
  severity?: string;
  json?: boolean;
  interval: string;
  maxEvents?: string;
  fromStart?: boolean;
}): Promise<void> {
  const min = parseSeverity(opts.severity);
  const interval = Number(opts.interval);
  if (!Number.isInteger(interval) || interval < 50 || interval > 10_000)
    throw new AirlockError('USAGE', `--interval ${opts.interval} is out of range`, 'use 50..10000 ms');
  const max = opts.maxEvents === undefined ? Infinity : Number(opts.maxEvents);
  if (!(max > 0))
    throw new AirlockError('USAGE', `--max-events ${opts.maxEvents} is not a positive number`, 'e.g. --max-events 100');
  const store = openStore(false);
  let stop = false;
  const onSig = () => {
    stop = true;
  };
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  try {
    let after = opts.fromStart
      ? 0
      : ((store.tables.prepare('SELECT MAX(seq) AS m FROM events').get() as { m: number | null }).m ?? 0);
    let shown = 0;
    while (!stop && shown < max) {
      const batch = store.query({ session: opts.session, afterSeq: after, limit: 1000 });
      for (const e of batch) {
        after = e.seq;
        if (!typeMatch(opts.type, e.type)) continue;
        if (min && SEVERITIES.indexOf(e.severity) < SEVERITIES.indexOf(min)) continue;
        process.stdout.write(
          opts.json
            ? jsonText(e, 0) + '\n'
            : timelineRow(e).join('  ') +
                (opts.session ? '' : dim(`  [${sanitizeForTerminal(e.session ?? '-')}]`)) +
                '\n',
        );
        if (++shown >= max) break;
      }
      if (batch.length < 1000 && shown < max && !stop) await new Promise((r) => setTimeout(r, interval));
    }
  } finally {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
    store.close();
  }
}

/** `airlock audit export`: one event a line in a SIEM format; a reader that goes away ends it quietly. */
async function exportEvents(opts: { format: string; since?: string; session?: string; out?: string }): Promise<void> {
  const f = ({ ocsf: 'ocsf', ecs: 'ecs', cef: 'cef', jsonl: 'json', json: 'json' } as Record<string, EventFormat>)[
    opts.format
  ];
  if (!f)
    throw new AirlockError(
      'USAGE',
      `unknown export format ${JSON.stringify(opts.format)}`,
      'use --format ocsf, ecs, cef or jsonl',
    );
  const since = opts.since ? parseSince(opts.since) : undefined;
  const store = openStore();
  const out = opts.out ? createWriteStream(opts.out) : process.stdout;
  let broken = false; // reader went away (e.g. `| head`): stop quietly
  out.on('error', () => {
    broken = true;
  });
  try {
    let n = 0;
    const source = opts.session ? store.query({ session: opts.session }) : store.iterate(0);
    for (const e of source) {
      if (broken) break;
      if (since && e.ts < since) continue;
      if (!out.write(formatEvent(e, f) + '\n')) {
        await new Promise<void>((r) => {
          (out as NodeJS.WritableStream).once('drain', () => r());
          (out as NodeJS.WritableStream).once('error', () => r());
        });
      }
      n += 1;
    }
    if (opts.out) process.stderr.write(dim(`${n} events written to ${opts.out}\n`, process.stderr));
  } finally {
    store.close();
    if (opts.out) await new Promise((r) => (out as ReturnType<typeof createWriteStream>).end(r));
  }
}

export const registerAudit = (program: Command): void => {
  const audit = program.command('audit').description('Read, verify, prove and export the tamper-evident audit log.');
  registerAuditIntegrity(audit);
  registerAuditOutputs(program, audit);
};

/** show, verify, checkpoint, prove, verify-proof: reading the log and proving it whole. */
function registerAuditIntegrity(audit: Command): void {
  audit
    .command('show')
    .argument('<session>', 'session id')
    .option('--json', 'print events as JSON')
    .description('Timeline of one session: time, type, decision, rule, summary.')
    .action((session: string, opts: { json?: boolean }) => {
      const store = openStore();
      try {
        const events = store.query({ session });
        if (events.length === 0)
          throw new AirlockError(
            'NOT_FOUND',
            `no events for session ${session}`,
            'list sessions with `airlock session list`, or check AIRLOCK_HOME',
          );
        if (opts.json) {
          printJson(events);
          return;
        }
        process.stdout.write(table(events.map(timelineRow), ['time', 'type', 'decision', 'rule', 'summary']) + '\n');
      } finally {
        store.close();
      }
    });

  audit
    .command('verify')
    .option('--json', 'print the result as JSON')
    .option('--pubkey <file>', 'public key PEM to check checkpoint signatures with (default: the key in AIRLOCK_HOME)')
    .option(
      '--database <url>',
      "verify every host's log in this shared store (default: AIRLOCK_DATABASE_URL, else the org policy's telemetry.sharedStore)",
    )
    .option(
      '--host-keys <dir>',
      'shared store: trust only these host keys, one `<log id>.pem` per host (default: the keys the store holds)',
    )
    .option('--local', "verify this host's audit.db even when a shared store is configured")
    .description(
      `Check the hash chain, the Merkle tree and every signed checkpoint. Exit ${ExitCode.TAMPERED} when tampered, naming the first bad event.`,
    )
    .action(verifyAuditLog);

  audit
    .command('checkpoint')
    .option('--reason <text>', 'why', 'manual')
    .option('--json', 'print the checkpoint as JSON')
    .description('Sign a checkpoint over the log now.')
    .action((opts: { reason: string; json?: boolean }) => {
      const store = openStore(false);
      try {
        const c = checkpoint(store, opts.reason);
        if (opts.json) printJson(c);
        else process.stdout.write(`checkpoint #${c.id}: ${c.size} events, root ${c.root}, key ${c.keyId}\n`);
      } finally {
        store.close();
      }
    });

  audit
    .command('prove')
    .argument('<eventId>', 'event id (see `airlock audit show SESSION --json`)')
    .option('--out <file>', 'write the proof here instead of stdout')
    .description('Print an RFC 6962 inclusion proof of one event under a signed checkpoint.')
    .action((eventId: string, opts: { out?: string }) => {
      const store = openStore();
      try {
        const proof = proveEvent(store, eventId);
        const text = JSON.stringify(proof, null, 2) + '\n';
        if (opts.out) writeFileSync(opts.out, text);
        else process.stdout.write(text);
      } finally {
        store.close();
      }
    });

  audit
    .command('verify-proof')
    .argument('<file>', 'proof JSON from `airlock audit prove`')
    .requiredOption('--pubkey <file>', 'public key PEM (`airlock audit pubkey`)')
    .option('--json', 'print the result as JSON')
    .description(`Check an inclusion proof with the public key alone. Exit ${ExitCode.TAMPERED} when it does not hold.`)
    .action((file: string, opts: { pubkey: string; json?: boolean }, cmd: Command) => {
      if (!existsSync(file))
        throw new AirlockError(
          'NOT_FOUND',
          `proof file not found: ${file}`,
          'write one with `airlock audit prove EVENT_ID --out FILE`',
        );
      let doc: unknown;
      try {
        doc = JSON.parse(readFileSync(file, 'utf8'));
      } catch {
        throw new AirlockError('USAGE', `${file} is not JSON`, 'pass the output of `airlock audit prove`');
      }
      const r = verifyProof(doc, loadPublicKey(opts.pubkey));
      if (opts.json) printJson(r);
      else process.stdout.write(`${r.ok ? ok('valid') : bad('INVALID')}: ${r.reason}\n`);
      setExit(cmd, r.ok ? ExitCode.OK : ExitCode.TAMPERED);
    });
}

/** pubkey, checkpoints, tail, export, ship (and `airlock sinks`): what leaves the log for others. */
function registerAuditOutputs(program: Command, audit: Command): void {
  audit
    .command('pubkey')
    .description('Print the checkpoint signing public key (PEM).')
    .action(() => {
      const pub = loadPublicKey();
      process.stdout.write(pub.export({ type: 'spki', format: 'pem' }) as string);
    });

  audit
    .command('checkpoints')
    .option('--json', 'print as JSON')
    .description('List signed checkpoints.')
    .action((opts: { json?: boolean }) => {
      const store = openStore();
      try {
        const cps = listCheckpoints(store.tables);
        if (opts.json) printJson(cps);
        else
          process.stdout.write(
            table(
              cps.map((c) => [String(c.id), c.ts, String(c.size), c.root.slice(0, 16) + '…', c.keyId, c.reason]),
              ['#', 'time', 'size', 'root', 'key', 'reason'],
            ) + '\n',
          );
      } finally {
        store.close();
      }
    });

  audit
    .command('tail')
    .option('--session <id>', 'only this session')
    .option('--type <type>', 'only this type (prefix ending in * allowed)')
    .option('--severity <level>', 'this severity and above')
    .option('--json', 'one JSON event per line')
    .option('--interval <ms>', 'poll interval in ms (50..10000)', '500')
    .option('--max-events <n>', 'exit after this many events')
    .option('--from-start', 'start at the beginning of the log instead of its end')
    .description('Follow live events (polls the database; Ctrl-C to stop).')
    .action(tailEvents);

  audit
    .command('export')
    .requiredOption('--format <format>', 'ocsf | ecs | cef | jsonl')
    .option('--since <time>', 'ISO time or age (30m, 2h, 7d)')
    .option('--session <id>', 'only this session')
    .option('--out <file>', 'write to this file instead of stdout')
    .description('Write events out, one per line, in a SIEM format.')
    .action(exportEvents);

  registerSinks(program); // `airlock sinks …` belongs to the same module
  audit
    .command('ship')
    .option(
      '--database <url>',
      "postgres:// URL (default: AIRLOCK_DATABASE_URL, else the org policy's telemetry.sharedStore)",
    )
    .option('--follow', 'keep shipping until SIGINT/SIGTERM (retries while PostgreSQL is down)')
    .option('--json', 'print the result as JSON')
    .option('--batch <n>', 'events per COPY (one statement, one commit)', '10000')
    .description("Ship this host's audit events and checkpoints to the shared store, idempotent by event id.")
    .action(async (opts: { database?: string; follow?: boolean; json?: boolean; batch: string }) =>
      (await import('./shared.ts')).ship(opts),
    );
}
