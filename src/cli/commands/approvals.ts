import type { Command } from 'commander';
import { AirlockError, escapeForTerminal as esc } from '../../common/index.ts';
import { assertOutsideSandbox, humanIdentity, type CommandAsk } from '../../command-rules/index.ts';
import { openOrCreateStore } from '../store.ts';
import { bad, dim, ok, otherHostsNotShown, printJson, table, warn } from '../output.ts';

// `airlock approvals [--json] [--all]` lists commands waiting for a human ("ask" rules);
// `airlock approvals allow|deny N [--as NAME] [--reason TEXT]` answers one; a destination is
// allowed `--once` (the default: one connection, the narrowest grant a human can give by
// mistake) or `--session`; `airlock approvals propose N` turns a destination into a proposed
// airlock.yaml change (the connection is denied, or let through `--once`). Answers are
// refused from inside a sandbox.

/** What a reviewer must know about an answer sent to another host. */
export const SIGNED_NOTE =
  "signed with this host's audit key: its host applies it only if its org policy lists that key in telemetry.approverKeys (`airlock audit pubkey` prints it)";

export function parseId(s: string, what: string): number {
  if (!/^[1-9][0-9]{0,15}$/.test(s))
    throw new AirlockError(
      'USAGE',
      `${what} must be a positive number, got "${s}"`,
      `list them first (e.g. \`airlock ${what === 'proposal id' ? 'review list' : 'approvals'}\`)`,
    );
  return Number(s);
}

function status(a: Pick<CommandAsk, 'status' | 'answeredBy' | 'scope'>): string {
  if (a.status === 'pending') return warn('pending');
  if (a.status === 'allow')
    return ok(`allowed ${a.scope === 'session' ? 'for the session' : 'once'} by ${esc(a.answeredBy ?? '')}`);
  if (a.status === 'timeout') return dim('timed out (denied)');
  return bad(`denied by ${esc(a.answeredBy ?? '')}`);
}

export function registerApprovals(program: Command): void {
  const cmd = program
    .command('approvals')
    .description(
      'Commands a session is waiting to run and destinations it is waiting to reach ("ask" rules). Answer with `airlock approvals allow|deny N`.',
    )
    .option('--json', 'machine-readable output')
    .option('--all', 'include answered and timed-out asks')
    .action(async (opts: { json?: boolean; all?: boolean }) => {
      const store = openOrCreateStore();
      try {
        // with a shared store (the sessions' resolution), asks waiting on every other host too, in one shape
        const { workView } = await import('../../hosts/index.ts');
        const view = workView(store, { onUnavailable: otherHostsNotShown });
        const asks = await view.asks({ all: opts.all });
        if (opts.json) {
          printJson(asks);
          return;
        }
        if (!asks.length) {
          process.stdout.write(dim(opts.all ? 'no approvals recorded' : 'nothing is waiting for approval') + '\n');
          return;
        }
        const rows = asks.map((a) => [
          esc(a.ref),
          a.thisHost ? dim('this host') : esc(a.host),
          esc(a.session ?? ''),
          esc(a.command.join(' ').slice(0, 80)),
          esc(a.rule ?? ''),
          a.status === 'pending' ? `until ${esc(a.expires)}` : '',
          status(a),
        ]);
        process.stdout.write(table(rows, ['id', 'host', 'session', 'command', 'rule', 'expires', 'status']) + '\n');
      } finally {
        store.close();
      }
    });
  for (const decision of ['allow', 'deny'] as const) {
    const sub = cmd
      .command(decision)
      .description(
        decision === 'allow'
          ? 'Allow a waiting command (one run) or destination (--once, the default: this one connection; --session: for the rest of the session). Refused from inside a sandbox.'
          : 'Deny a waiting command or destination (refused from inside a sandbox).',
      )
      .argument('<id>', 'approval number from `airlock approvals` (N@HOST for an ask waiting on another host)')
      .option('--as <name>', 'your identity (default: git config user.email, else the OS user)')
      .option('--reason <text>', 'why (recorded)');
    if (decision === 'allow')
      sub
        .option('--once', 'this one connection only (the default)')
        .option('--session', 'the destination for the rest of the session');
    sub.action(async (id: string, opts: { as?: string; reason?: string; once?: boolean; session?: boolean }) => {
      const store = openOrCreateStore();
      try {
        assertOutsideSandbox(store);
        const who = humanIdentity(opts.as);
        if (opts.once && opts.session)
          throw new AirlockError(
            'USAGE',
            '--once and --session exclude each other',
            'pick one: --once (this connection) or --session (the rest of the session)',
          );
        if (!id.includes('@')) parseId(id, 'approval id');
        const { workView } = await import('../../hosts/index.ts');
        const a = await workView(store).answerAsk(
          id,
          decision,
          who.identity,
          opts.reason,
          opts.session ? 'session' : 'once',
        );
        const answered = a.thisHost
          ? status(a)
          : decision === 'allow'
            ? ok(`allowed by ${esc(who.identity)}`)
            : bad(`denied by ${esc(who.identity)}`);
        const signedNote = a.thisHost ? '' : `\n${dim(SIGNED_NOTE)}`;
        process.stdout
          .write(`${a.thisHost ? '#' : ''}${esc(a.ref)} ${esc(a.command.join(' '))}${a.thisHost ? '' : ` on ${esc(a.host)}`}: ${answered}${signedNote}
`);
      } finally {
        store.close();
      }
    });
  }
  registerPropose(cmd);
}

function registerPropose(cmd: Command): void {
  cmd
    .command('propose')
    .description(
      'Turn a waiting destination into a proposed airlock.yaml change (egress.allow gains exactly that host and port) that goes through review; the waiting connection is denied unless --once.',
    )
    .argument('<id>', 'approval number of a destination, from `airlock approvals`')
    .option('--once', 'also let the waiting connection through, once')
    .option('--as <name>', 'your identity (default: git config user.email, else the OS user)')
    .option('--reason <text>', 'why (recorded)')
    .option('--json', 'machine-readable output')
    .action(
      async (id: string, opts: { once?: boolean; as?: string; reason?: string; json?: boolean }, sub: Command) => {
        const json = Boolean((sub.optsWithGlobals() as { json?: boolean }).json); // --json also parses as the parent's option
        const store = openOrCreateStore();
        try {
          assertOutsideSandbox(store);
          const who = humanIdentity(opts.as);
          const { proposeAskedDestination } = await import('../../review/index.ts');
          const { newSessionId } = await import('../../session/index.ts');
          const r = await proposeAskedDestination(store, parseId(id, 'approval id'), who.identity, {
            session: newSessionId(),
            once: opts.once,
            reason: opts.reason,
          });
          if (json) {
            printJson({ ask: r.ask, proposal: r.proposal.id, host: r.host, port: r.port });
            return;
          }
          process.stdout.write(
            `#${r.ask.id} ${esc(`${r.host}:${r.port}`)}: ${status(r.ask)}\n${ok('proposed')} as proposal ${r.proposal.id} ${dim(`(airlock review show ${r.proposal.id}; approve it like any change)`)}\n`,
          );
        } finally {
          store.close();
        }
      },
    );
}
