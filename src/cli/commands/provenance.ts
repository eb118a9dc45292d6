import type { Command } from 'commander';
import { resolve } from 'node:path';
import { ExitCode } from '../../common/index.ts';
import { airlockHome, homeLayout } from '../../common/index.ts';
import { escapeForTerminal } from '../../common/index.ts';
import { loadProvenanceKey, loadProvenancePublicKey, verifyChange, NOTES_REF } from '../../provenance/index.ts';
import { readPolicyFile, resolvePolicy } from '../../policy/index.ts';
import { orgPolicyPath } from '../../session/index.ts';
import { bad, ok, printJson, setExit } from '../output.ts';

// `airlock verify-change COMMIT`: offline check of a pushed change's signed provenance with
// the organisation's public key alone (for CI in the target repo). `airlock provenance
// pubkey` prints that key.

export function registerProvenance(program: Command): void {
  program
    .command('verify-change')
    .description(
      `Verify the signed provenance (git note ${NOTES_REF}) of a commit Airlock applied: signature, approved tree, approvals against the policy in force, audit inclusion proofs. Exit ${ExitCode.OK} verified, ${ExitCode.TAMPERED} a check failed, ${ExitCode.NOT_FOUND} no provenance.`,
    )
    .argument('<commit>', 'commit id or ref')
    .option('--repo <path>', 'repository holding the commit and its notes', '.')
    .option(
      '--key <file>',
      'provenance public key PEM (`airlock provenance pubkey`); default: the one under AIRLOCK_HOME/keys',
    )
    .option('--json', 'print the result as JSON')
    .action((commit: string, opts: { repo: string; key?: string; json?: boolean }, cmd: Command) => {
      const pub = loadProvenancePublicKey(opts.key, homeLayout(airlockHome()).keys);
      const r = verifyChange(resolve(opts.repo), commit, pub);
      if (opts.json) printJson({ commit: r.commit, verified: r.verified, checks: r.checks, statement: r.statement });
      else {
        for (const c of r.checks)
          process.stdout.write(`${c.ok ? ok('ok') : bad('FAILED')} ${c.check}: ${escapeForTerminal(c.message)}\n`);
        process.stdout.write(
          r.verified
            ? `${ok('verified')}: commit ${r.commit}\n`
            : `${bad('REFUSED')}: commit ${r.commit}: ${r.checks
                .filter((c) => !c.ok)
                .map((c) => c.check)
                .join(', ')} failed\n`,
        );
      }
      setExit(cmd, r.verified ? ExitCode.OK : ExitCode.TAMPERED);
    });

  program
    .command('provenance')
    .description('The provenance signing key.')
    .command('pubkey')
    .description('Print the provenance public key (PEM) for `airlock verify-change --key`.')
    .option(
      '--org-policy <file>',
      'organisation policy whose provenance.key signs (default: $AIRLOCK_ORG_POLICY or /etc/airlock/policy.yaml)',
    )
    .action((o: { orgPolicy?: string }) => {
      const org = orgPolicyPath({ orgPolicy: o.orgPolicy });
      const orgKey = org ? resolvePolicy([readPolicyFile(org, 'org')]).policy.provenance.key : undefined;
      process.stdout.write(
        loadProvenanceKey(homeLayout(airlockHome()).keys, process.env, orgKey).publicKey.export({
          type: 'spki',
          format: 'pem',
        }) as string,
      );
    });
}
