import type { Command } from 'commander';
import { AirlockError, escapeForTerminal as esc } from '../../common/index.ts';
import { assertOutsideSandbox, humanIdentity, type CommandAsk } from '../../command-rules/index.ts';
import { openOrCreateStore } from '../store.ts';
import { bad, dim, ok, otherHostsNotShown, printJson, table, warn } from '../output.ts';

// `airlock approvals [--json] [--all]` lists commands waiting for a human ("ask" rules);
// `airlock approvals allow|deny N [--as NAME] [--reason TEXT]` answers one. Answers are
// refused from inside a sandbox.

export function parseId(s: string, what: string): number {
  if (!/^[1-9][0-9]{0,15}$/.test(s)) throw new AirlockError('USAGE', `${what} must be a positive number, got "${s}"`, `list them first (e.g. \`airlock ${what === 'proposal id' ? 'review list' : 'approvals'}\`)`);
  return Number(s);
}

function status(a: Pick<CommandAsk, 'status' | 'answeredBy'>): string {
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
        // with a shared store (the sessions' resolution), asks waiting on every other host too, in one shape
        const { workView } = await import('../../hosts/index.ts');
        const view = workView(store, { onUnavailable: otherHostsNotShown });
        const asks = await view.asks({ all: opts.all });
        if (opts.json) { printJson(asks); return; }
        if (!asks.length) { process.stdout.write(dim(opts.all ? 'no approvals recorded' : 'nothing is waiting for approval') + '\n'); return; }
        const rows = asks.map((a) => [esc(a.ref), a.thisHost ? dim('this host') : esc(a.host), esc(a.session ?? ''), esc(a.command.join(' ').slice(0, 80)), esc(a.rule ?? ''),
          a.status === 'pending' ? `until ${esc(a.expires)}` : '', status(a)]);
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
          if (!id.includes('@')) parseId(id, 'approval id');
          const { workView } = await import('../../hosts/index.ts');
          const a = await workView(store).answerAsk(id, decision, who.identity, opts.reason);
          const answered = a.thisHost ? status(a) : decision === 'allow' ? ok(`allowed by ${esc(who.identity)}`) : bad(`denied by ${esc(who.identity)}`);
          process.stdout.write(`${a.thisHost ? '#' : ''}${esc(a.ref)} ${esc(a.command.join(' '))}${a.thisHost ? '' : ` on ${esc(a.host)}`}: ${answered}\n`);
        } finally { store.close(); }
      });
  }
}
