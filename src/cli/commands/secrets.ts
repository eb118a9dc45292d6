import type { Command } from 'commander';
import { AirlockError, ExitCode } from '../../common/index.ts';
import { bad, dim, ok, printJson, progress, table, warn, setExit } from '../output.ts';
import { scanPathsDetailed } from '../../secrets/index.ts';

// `airlock secrets scan PATH… [--json]`: reports where secrets are (file, line, column,
// rule, fingerprint), never the values. Exit status: 0 none found, 1 secrets found,
// 66 a path does not exist, 64 bad usage.

export const SECRETS_FOUND_EXIT = ExitCode.FAILURE;

export function registerSecrets(program: Command): void {
  const secrets = program
    .command('secrets')
    .description('Find secrets with the engine Airlock uses for workspace sanitization, review and DLP.');
  secrets
    .command('scan')
    .description(
      'Scan files and directories for secrets. Prints file, line, column, rule and fingerprint (never the value). Exits 1 when any is found, 66 when a path does not exist.',
    )
    .argument(
      '<paths...>',
      'files or directories (.git, symlinks, binaries and files over the size limit are skipped and listed)',
    )
    .option(
      '--json',
      'machine-readable output: {findings, skipped, files, bytes}; each finding says why (rule, why, entropy)',
    )
    .option(
      '--explain',
      'also list what rules matched and judged not secret, and why (placeholder, reference, test dummy, allowlisted…); with --json as "suppressed"',
    )
    .option('--max-file-kb <n>', 'skip files larger than this (KiB)', '10240')
    .action(async (paths: string[], opts: { json?: boolean; explain?: boolean; maxFileKb: string }, cmd: Command) => {
      const kb = Number(opts.maxFileKb);
      if (!Number.isInteger(kb) || kb <= 0) {
        throw new AirlockError(
          'USAGE',
          `--max-file-kb must be a positive integer, got "${opts.maxFileKb}"`,
          'For example: --max-file-kb 2048',
        );
      }
      progress(`scanning ${paths.join(', ')}`);
      const res = await scanPathsDetailed(paths, { maxFileBytes: kb * 1024, explain: Boolean(opts.explain) });
      setExit(cmd, res.findings.length ? SECRETS_FOUND_EXIT : ExitCode.OK);
      if (opts.json) {
        printJson({
          findings: res.findings.map((f) => ({
            file: f.file,
            line: f.line,
            column: f.column,
            endLine: f.endLine,
            endColumn: f.endColumn,
            rule: f.rule,
            severity: f.severity,
            fingerprint: f.fingerprint,
            message: f.message,
            why: f.why,
            entropy: f.entropy,
            ...(f.alsoMatched ? { alsoMatched: f.alsoMatched } : {}),
          })),
          ...(opts.explain ? { suppressed: res.suppressed } : {}),
          skipped: res.skipped,
          files: res.files,
          bytes: res.bytes,
        });
        return;
      }
      for (const s of res.skipped) process.stderr.write(dim(`skipped ${s.file} (${s.reason})`, process.stderr) + '\n');
      if (opts.explain && res.suppressed.length) {
        process.stdout.write(
          table(
            res.suppressed.map((s) => [`${s.file}:${s.line}:${s.column}`, s.rule, s.reason, s.fingerprint]),
            ['not a secret', 'rule', 'why', 'fingerprint'],
          ) + '\n',
        );
      }
      if (!res.findings.length) {
        process.stdout.write(ok(`no secrets found (${res.files} files scanned)`) + '\n');
        return;
      }
      const sev = (s: string) => (s === 'medium' ? warn(s) : bad(s));
      process.stdout.write(
        table(
          res.findings.map((f) => [
            `${f.file}:${f.line}:${f.column}`,
            f.rule,
            sev(f.severity),
            f.fingerprint,
            ...(opts.explain ? [`${f.why ?? ''} (entropy ${f.entropy ?? '?'})`] : []),
          ]),
          ['location', 'rule', 'severity', 'fingerprint', ...(opts.explain ? ['why'] : [])],
        ) + '\n',
      );
      process.stdout.write(
        bad(
          `${res.findings.length} secret${res.findings.length === 1 ? '' : 's'} found in ${new Set(res.findings.map((f) => f.file)).size} of ${res.files} files`,
        ) + '\n',
      );
    });
}
