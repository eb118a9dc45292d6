import type { Command } from 'commander';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { AirlockError, ExitCode, escapeForTerminal } from '../../common/index.ts';
import {
  PG_SCHEMA_VERSION,
  sharedStoreUrl,
  approverTrust,
  withSharedStore,
  migratePg,
  createHostRole,
  redactedUrl,
  requireCurrentSchema,
  shipOnce,
  startShipper,
  verifySharedStore,
  type SharedVerifyResult,
  relayApprovals,
  relayContext,
} from '../../store/index.ts';
import { openStore } from '../store.ts';
import { bad, dim, ok, printJson, setExit, warn } from '../output.ts';

// The shared PostgreSQL store from the CLI: `airlock db migrate|status` (its owner),
// `airlock audit ship [--follow]` (each host), `airlock audit verify` against it.

function requireUrl(flag: string | undefined): string {
  const url = sharedStoreUrl({ flag });
  if (!url)
    throw new AirlockError(
      'USAGE',
      'no shared store configured',
      'set AIRLOCK_DATABASE_URL=postgres://…, telemetry.sharedStore in the org policy, or pass --database URL',
    );
  return url;
}

export const registerDb = (program: Command): void => {
  const db = program.command('db').description('The shared PostgreSQL store (AIRLOCK_DATABASE_URL): schema versions.');
  db.command('migrate')
    .option(
      '--database <url>',
      "postgres:// URL (default: AIRLOCK_DATABASE_URL, else the org policy's telemetry.sharedStore)",
    )
    .option('--json', 'print the result as JSON')
    .description("Bring the shared store's schema to this Airlock's version (run once, as the database owner).")
    .action(async (opts: { database?: string; json?: boolean }) => {
      const url = requireUrl(opts.database);
      const version = await withSharedStore(url, (c) => migratePg(c, `the shared store ${redactedUrl(url)}`));
      if (opts.json) printJson({ version });
      else process.stdout.write(`${ok('schema')} at version ${version}\n`);
    });
  db.command('add-host')
    .argument('<role>', 'the login role to create, such as airlock_host_web1')
    .option(
      '--database <url>',
      "postgres:// URL (default: AIRLOCK_DATABASE_URL, else the org policy's telemetry.sharedStore)",
    )
    .option('--json', 'print the result as JSON')
    .description(
      "Create a host's own login role, a member of airlock_writer (run as the database owner): one role per host, so one host's flood of forged rows never delays another's answers.",
    )
    .action(async (role: string, opts: { database?: string; json?: boolean }) => {
      const url = requireUrl(opts.database);
      await withSharedStore(url, async (c) => {
        await requireCurrentSchema(c, `the shared store ${redactedUrl(url)}`);
        await createHostRole(c, role);
      });
      if (opts.json) printJson({ role, member: 'airlock_writer' });
      else
        process.stdout.write(
          `${ok('created')} role ${role} (member of airlock_writer); give it a password with \\password ${role} in psql, then that host logs in as ${role}
`,
        );
    });
  db.command('status')
    .option(
      '--database <url>',
      "postgres:// URL (default: AIRLOCK_DATABASE_URL, else the org policy's telemetry.sharedStore)",
    )
    .option('--json', 'print the result as JSON')
    .description('Schema version and, per host, how many events the shared store holds.')
    .action(async (opts: { database?: string; json?: boolean }) => {
      const url = requireUrl(opts.database);
      await withSharedStore(url, async (c) => {
        await requireCurrentSchema(c, `the shared store ${redactedUrl(url)}`);
        const hosts = (
          await c.query<{
            log_id: string;
            hostname: string;
            events: string;
            head: string | null;
          }>(`SELECT h.log_id, h.hostname,
          (SELECT count(*) FROM airlock.events e WHERE e.log_id = h.log_id) AS events,
          (SELECT max(seq) FROM airlock.events e WHERE e.log_id = h.log_id) AS head FROM airlock.hosts h ORDER BY h.hostname, h.log_id`)
        ).rows.map((h) => ({
          logId: h.log_id,
          hostname: h.hostname,
          events: Number(h.events),
          head: Number(h.head ?? 0),
        }));
        if (opts.json) {
          printJson({ version: PG_SCHEMA_VERSION, hosts });
          return;
        }
        process.stdout.write(`schema version ${PG_SCHEMA_VERSION}, ${hosts.length} host(s)\n`);
        for (const h of hosts)
          process.stdout.write(
            `  ${escapeForTerminal(h.hostname)} ${dim(escapeForTerminal(h.logId))}: ${h.events} events, head ${h.head}\n`,
          );
      });
    });
};

/** `airlock audit ship`: copies this host's local log to the shared store (once, or until a signal with --follow). */
export async function ship(opts: {
  database?: string;
  follow?: boolean;
  json?: boolean;
  batch: string;
}): Promise<void> {
  const url = requireUrl(opts.database);
  const batch = Number(opts.batch);
  if (!Number.isInteger(batch) || batch < 1 || batch > 100_000)
    throw new AirlockError('USAGE', '--batch must be an integer 1..100000', 'the default, 10000, suits most hosts');
  const store = openStore(false);
  try {
    // --follow starts even while PostgreSQL is down: the local log spools until it is back
    const r = opts.follow
      ? await follow(store, url, batch)
      : await withSharedStore(url, async (c) => {
          await requireCurrentSchema(c, `the shared store ${redactedUrl(url)}`);
          const r = await shipOnce(store, c, { batch });
          // approvals given on other hosts for this host's proposals: applied here, the outcome shipped
          const { localApprovalRelay } = await import('../../review/index.ts');
          const relayed = relayContext(approverTrust());
          if ((await relayApprovals(store, c, localApprovalRelay(store), relayed)) > 0)
            return shipOnce(store, c, { batch });
          return r;
        });
    if (opts.json) printJson(r ?? null);
    else if (r)
      process.stdout.write(
        `${ok('shipped')} ${r.events} events, ${r.checkpoints} checkpoints; the shared store holds this host's log up to ${r.shippedSeq} of ${r.localSeq}\n`,
      );
  } finally {
    store.close();
  }
}

async function follow(store: ReturnType<typeof openStore>, url: string, batch: number) {
  let said = '';
  const { localAskRelay } = await import('../../command-rules/index.ts');
  const shipper = startShipper(store, url, {
    batch,
    relay: localAskRelay(store),
    approvals: (await import('../../review/index.ts')).localApprovalRelay(store),
    trust: approverTrust(),
    onConnect: (c) => requireCurrentSchema(c, `the shared store ${redactedUrl(url)}`),
    onError: (e) => {
      const m = e instanceof Error ? e.message : String(e);
      if (m !== said)
        process.stderr.write(
          `${warn('airlock: shared store unreachable, events stay spooled:', process.stderr)} ${escapeForTerminal(m)}\n`,
        );
      said = m;
    },
  });
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  return shipper.stop();
}

/** Trusted host keys from a directory of `<log id>.pem` files (`airlock audit pubkey` of each host). */
function trustedKeys(dir: string | undefined): Map<string, KeyObject> | undefined {
  if (!dir) return undefined;
  const m = new Map<string, KeyObject>();
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.pem')))
    m.set(f.slice(0, -4), createPublicKey(readFileSync(join(dir, f), 'utf8')));
  return m;
}

function printShared(r: SharedVerifyResult): void {
  for (const h of r.hosts) {
    const name = `${escapeForTerminal(h.hostname ?? '?')} ${dim(escapeForTerminal(h.logId))}`;
    if (!h.firstBad && h.problems.length === 0) {
      process.stdout.write(
        `${ok('intact')}: ${name}: ${h.events} events, ${h.checkpointsChecked} signed checkpoints verified\n`,
      );
      continue;
    }
    if (h.firstBad)
      process.stdout.write(
        `${bad('TAMPERED')}: ${name}: first bad event seq ${h.firstBad.seq}${h.firstBad.id ? ` (${escapeForTerminal(h.firstBad.id)})` : ''}: ${h.firstBad.reason}\n`,
      );
    for (const p of h.problems) process.stdout.write(`${bad('TAMPERED')}: ${name}: ${escapeForTerminal(p)}\n`);
  }
  for (const p of r.global.problems) process.stdout.write(`${bad('TAMPERED')}: ${escapeForTerminal(p)}\n`);
  process.stdout.write(`global log: ${r.global.size} checkpoints, root ${r.global.root}\n`);
}

/** `airlock audit verify` when a shared store is configured. */
export async function verifyShared(
  opts: { database?: string; json?: boolean; hostKeys?: string },
  cmd: Command,
): Promise<void> {
  const url = requireUrl(opts.database);
  const r = await withSharedStore(url, async (c) => {
    await requireCurrentSchema(c, `the shared store ${redactedUrl(url)}`);
    return verifySharedStore(c, { trustedKeys: trustedKeys(opts.hostKeys), url });
  });
  if (opts.json) printJson(r);
  else printShared(r);
  setExit(cmd, r.ok ? ExitCode.OK : ExitCode.TAMPERED);
}
