import type { Command } from 'commander';
import { AirlockError, escapeForTerminal as esc } from '../../common/index.ts';
import { listAsks, answerAsk, assertOutsideSandbox, humanIdentity, type CommandAsk } from '../../command-rules/index.ts';
import { openOrCreateStore } from '../store.ts';
import { bad, dim, ok, printJson, table, warn } from '../output.ts';

// `airlock approvals [--json] [--all]` lists commands waiting for a human ("ask" rules);
// `airlock approvals allow|deny N [--as NAME] [--reason TEXT]` answers one. Answers are
// refused from inside a sandbox.

export function parseId(s: string, what: string): number {
  if (!/^[1-9][0-9]{0,15}$/.test(s)) throw new AirlockError('USAGE', `${what} must be a positive number, got "${s}"`, `list them first (e.g. \`airlock ${what === 'proposal id' ? 'review list' : 'approvals'}\`)`);
  return Number(s);
}

function status(a: CommandAsk): string {
  if (a.status === 'pending') return warn('pending');
  if (a.status === 'allow') return ok(`allowed by ${esc(a.answeredBy ?? '')}`);
  if (a.status === 'timeout') return dim('timed out (denied)');
  return bad(`denied by ${esc(a.answeredBy ?? '')}`);
}

export function registerApprovals(program: Command): void {
  const cmd = program.command('approvals')
    .description('Commands a session is waiting to run and destinations it is waiting to reach ("ask" rules). Answer with `airlock approvals allow|deny N`.')
    .option('--json', 'machine-readable output')
    .option('--all', 'include answered and timed-out asks')
    .action(async (opts: { json?: boolean; all?: boolean }) => {
      const store = openOrCreateStore();
      try {
        const asks = listAsks(store, { all: opts.all });
        // with a shared store, asks waiting on every other host too (answer them by their id@host)
        const remote = process.env.AIRLOCK_DATABASE_URL ? await (await import('./shared.ts')).otherHostsAsks(store) : undefined;
        if (opts.json) { printJson(remote ? [...asks, ...remote] : asks); return; }
        if (!asks.length && !remote?.length) { process.stdout.write(dim(opts.all ? 'no approvals recorded' : 'nothing is waiting for approval') + '\n'); return; }
        const rows = asks.map((a) => [String(a.id), dim('this host'), esc(a.session), esc(a.command.join(' ').slice(0, 80)), esc(a.rule), a.status === 'pending' ? `until ${a.expires}` : '', status(a)]);
        for (const a of remote ?? []) rows.push([esc(a.ref), esc(a.hostname), esc(a.session ?? ''), esc(a.command.join(' ').slice(0, 80)), esc(a.rule ?? ''), `until ${esc(a.expires)}`, warn('pending')]);
        process.stdout.write(table(rows, ['id', 'host', 'session', 'command', 'rule', 'expires', 'status']) + '\n');
      } finally { store.close(); }
    });
  for (const decision of ['allow', 'deny'] as const) {
    cmd.command(decision)
      .description(`${decision === 'allow' ? 'Allow' : 'Deny'} a waiting command (refused from inside a sandbox).`)
      .argument('<id>', 'approval number from `airlock approvals` (N@HOST for an ask waiting on another host)')
      .option('--as <name>', 'your identity (default: git config user.email, else the OS user)')
      .option('--reason <text>', 'why (recorded)')
      .action(async (id: string, opts: { as?: string; reason?: string }) => {
        const store = openOrCreateStore();
        try {
          assertOutsideSandbox(store);
          const who = humanIdentity(opts.as);
          if (id.includes('@')) {
            const { answerOtherHost } = await import('./shared.ts');
            const a = await answerOtherHost(id, decision, who.identity, opts.reason);
            process.stdout.write(`${esc(a.ref)} ${esc(a.command.join(' '))} on ${esc(a.hostname)}: ${decision === 'allow' ? ok(`allowed by ${esc(who.identity)}`) : bad(`denied by ${esc(who.identity)}`)}\n`);
            return;
          }
          const n = parseId(id, 'approval id');
          const a = answerAsk(store, n, decision, who.identity, opts.reason);
          process.stdout.write(`#${a.id} ${esc(a.command.join(' '))}: ${status(a)}\n`);
        } finally { store.close(); }
      });
  }
}
