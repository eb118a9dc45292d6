import { Command, CommanderError } from 'commander';
import { registrations } from './commands/index.ts';
import { printError } from './output.ts';
import { ExitCode } from '../common/index.ts';

export async function main(argv: string[]): Promise<number> {
  const program = new Command('airlock')
    .description('Run untrusted coding agents in a sandbox: isolated execution, governed changes, egress filtering, tamper-evident audit, brokered credentials.')
    .version('0.1.0')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();
  program.configureOutput({ outputError: (s, write) => write(s) });
  let code = 0;
  // Only the module that defines the command is loaded; help and unknown names load all.
  const first = argv.find((a) => !a.startsWith('-'));
  const wanted = registrations.filter((r) => first !== undefined && r.commands.includes(first));
  for (const r of wanted.length ? wanted : registrations) (await r.load())(program);
  program.hook('postAction', (_t, cmd) => {
    const c = (cmd as unknown as { _airlockExit?: number })._airlockExit;
    if (typeof c === 'number') code = c;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      return ExitCode.USAGE;
    }
    return printError(e);
  }
}
