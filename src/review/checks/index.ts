import type { Policy } from '../../policy/index.ts';
import type { ChangeSet, ChangedFile, CheckId, Finding } from '../types.ts';
import { SEVERITY_RANK } from '../types.ts';
import { secretsCheck, unicodeCheck, protectedPathsCheck, sizeCheck, globAny } from './simple.ts';
import { injectionCheck } from './injection.ts';
import { dependenciesCheck } from './deps.ts';

// Runs every enabled check on the files its policy paths select, applies severity
// overrides and marks blocking findings. A check that throws is a blocking finding
// naming it (fail closed), never a silent pass.

type CheckName = keyof Policy['review']['checks'];
const CHECKS: Record<
  CheckName,
  (change: ChangeSet, files: ChangedFile[], policy: Policy) => Finding[] | Promise<Finding[]>
> = {
  secrets: (c, files) => secretsCheck(files, c.repo),
  injection: (_c, files) => injectionCheck(files),
  dependencies: (_c, files, p) => dependenciesCheck(files, p),
  protectedPaths: (_c, files, p) => protectedPathsCheck(files, p),
  unicode: (_c, files) => unicodeCheck(files),
  size: (c, files, p) => sizeCheck(c, files, p),
};

function selected(files: ChangedFile[], cfg: { paths: string[]; ignorePaths: string[] }): ChangedFile[] {
  return files.filter((f) => globAny(cfg.paths, f.path) !== null && globAny(cfg.ignorePaths, f.path) === null);
}

export function isBlocking(f: Finding, policy: Policy): boolean {
  return SEVERITY_RANK[f.severity] >= SEVERITY_RANK[policy.review.blockAt];
}

export async function runChecks(change: ChangeSet, policy: Policy): Promise<Finding[]> {
  const out: Finding[] = [];
  for (const name of Object.keys(CHECKS) as CheckName[]) {
    const cfg = policy.review.checks[name];
    if (!cfg.enabled) continue;
    let found: Finding[];
    try {
      found = await CHECKS[name](change, selected(change.files, cfg), policy);
    } catch (e) {
      found = [
        {
          check: name as CheckId,
          rule: `${name}.failed`,
          severity: 'critical',
          file: '',
          line: 0,
          message: `the ${name} check failed (${e instanceof Error ? e.message.split('\n')[0] : String(e)}); the change counts as unchecked`,
        },
      ];
    }
    for (const f of found) {
      if (cfg.severity && !f.rule.endsWith('.failed')) f.severity = cfg.severity;
      out.push(f);
    }
  }
  for (const f of out) f.blocking = isBlocking(f, policy);
  out.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.rule.localeCompare(b.rule)));
  return out;
}

export { secretsCheck, unicodeCheck, protectedPathsCheck, sizeCheck, injectionCheck, dependenciesCheck };
