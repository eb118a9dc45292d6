import type { Command } from 'commander';
import { AirlockError } from '../../common/index.ts';
import { startConsole, parseRoles } from '../../console/index.ts';
import { bold, dim, jsonText } from '../output.ts';

// `airlock console [--listen HOST:PORT] [--dev-user NAME]`: serves the review and security
// console until interrupted; without --dev-user people log in with OIDC (console.oidc in the
// org policy). In dev-user mode it prints a login link carrying a one-time
// secret: any process on this machine can reach a loopback port, only the human who
// started the console sees the link.

export function registerConsole(program: Command): void {
  program
    .command('console')
    .description('Serve the review and security console (web UI): proposals, approvals, sessions, audit.')
    .option('--listen <host:port>', 'address to listen on (port 0: any free port)', '127.0.0.1:7010')
    .option('--dev-user <name>', 'single-user mode for this machine: who you are (loopback addresses only)')
    .option('--dev-roles <list>', 'roles of the dev user: reviewer, auditor, admin (comma-separated)', 'admin')
    .option(
      '--public-url <url>',
      'where browsers reach the console behind a proxy (the OIDC redirect URI is URL/auth/callback)',
    )
    .option('--json', 'print {url, loginUrl} as one JSON line when ready')
    .action(async (o: { listen: string; devUser?: string; devRoles: string; publicUrl?: string; json?: boolean }) => {
      let roles;
      try {
        roles = parseRoles(o.devRoles);
      } catch (e) {
        throw new AirlockError('USAGE', `--dev-roles: ${(e as Error).message}`, 'e.g. --dev-roles reviewer,auditor');
      }
      const server = await startConsole({
        listen: o.listen,
        devUser: o.devUser,
        devRoles: roles,
        publicUrl: o.publicUrl,
      });
      if (o.json) process.stdout.write(jsonText({ url: server.url, loginUrl: server.loginUrl }, 0) + '\n');
      else {
        const mode =
          o.devUser !== undefined
            ? `dev-user mode: ${o.devUser}, roles ${roles.join(', ')}`
            : 'OIDC login, roles from the org policy';
        process.stdout.write(`${bold('Airlock console')} on ${server.url} (${mode})\n`);
        process.stdout.write(
          `open: ${server.loginUrl}\n${dim(o.devUser !== undefined ? 'the link logs you in; keep it private. Ctrl-C stops the console.' : 'Ctrl-C stops the console.')}\n`,
        );
      }
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          void server.close().then(resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
