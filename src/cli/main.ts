import { Command, CommanderError } from 'commander';
import { addCommandStubs, registrationOf } from './commands/index.ts';
import { printError } from './output.ts';
import { ExitCode, phase } from '../common/index.ts';

const VERSION = '0.1.0';

/**
 * The command line names one top-level command first (`airlock run …`, `airlock help run`);
 * anything else (`--version`, `--help`, nothing) is about the program itself.
 */
function requestedCommand(argv: string[]): string | undefined {
  const [first, second] = argv;
  if (first === undefined || first.startsWith('-')) return undefined;
  return first === 'help' ? second : first;
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('airlock')
    .description(
      'Run untrusted coding agents in a sandbox: isolated execution, governed changes, egress filtering, tamper-evident audit, brokered credentials.',
    )
    .version(VERSION)
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();
  program.configureOutput({ outputError: (s, write) => write(s) });
  let code = 0;
  // Only the module that defines the command is loaded; the rest of the time none is.
  const name = requestedCommand(argv);
  const wanted = name === undefined ? undefined : registrationOf(name);
  if (wanted) (await wanted.load())(program);
  else addCommandStubs(program);
  phase('cli.loaded');
  program.hook('postAction', (_t, cmd) => {
    const c = (cmd as unknown as { _airlockExit?: number })._airlockExit;
    if (typeof c === 'number') code = c;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help')
        return 0;
      return ExitCode.USAGE;
    }
    return printError(e);
  }
}
