import {
  type Policy,
  type PolicyDecision,
  type ModalDecision,
  type Action,
  deny,
  failClosed,
  recordMode,
  shadowMode,
} from '../policy/index.ts';
import { parseArgv, parseShell, basename, type SimpleCommand, type ParsedCommand } from './parse.ts';

// decideCommand: the per-command allow/ask/deny for `airlock exec`. Every simple command
// that would run (pipelines, lists, substitutions, wrapped and nested ones) is matched
// against every rule; the strictest action wins. Flags are normalised (-rf = -fr = -r -f,
// well-known long forms folded); a word only known at run time may be anything, so it
// satisfies a deny/ask rule's flag or argument condition but never an allow rule's.

type Rule = Policy['commands']['rules'][number];
const RANK: Record<Action, number> = { deny: 0, ask: 1, allow: 2 };

/** Long and alternative spellings folded onto one canonical flag, per program. */
const FLAG_ALIASES: Record<string, Record<string, string>> = {
  rm: { '-R': '-r', '--recursive': '-r', '--force': '-f', '--dir': '-d', '--verbose': '-v', '--interactive': '-i' },
  cp: { '-R': '-r', '--recursive': '-r', '--force': '-f', '--archive': '-a' },
  mv: { '--force': '-f' },
  ln: { '--force': '-f', '--symbolic': '-s' },
  chmod: { '--recursive': '-R' },
  chown: { '--recursive': '-R' },
  chgrp: { '--recursive': '-R' },
  git: { '--force': '-f', '--force-with-lease': '-f' },
  curl: { '--output': '-o', '--upload-file': '-T', '--data': '-d', '--insecure': '-k' },
  wget: { '--output-document': '-O', '--post-file': '--post-file' },
  shred: { '--remove': '-u', '--zero': '-z' },
  kill: { '--signal': '-s' },
};

export interface CommandFacts {
  name: string | null;
  flags: Set<string>;
  positionals: string[];
  /** some word is only known at run time */
  unknown: boolean;
}

function canonicalFlag(program: string, flag: string): string {
  return FLAG_ALIASES[program]?.[flag] ?? flag;
}

/** Splits one flag word into canonical flags: -rf → -r -f; --force=x → --force (→ alias). */
export function splitFlag(program: string, word: string): string[] {
  if (word.startsWith('--')) {
    const eq = word.indexOf('=');
    return [canonicalFlag(program, eq > 0 ? word.slice(0, eq) : word)];
  }
  return [...word.slice(1)].map((c) => canonicalFlag(program, `-${c}`));
}

export function commandFacts(c: SimpleCommand): CommandFacts {
  const name = c.argv[0] ?? null;
  const program = name === null ? '' : basename(name);
  const flags = new Set<string>();
  const positionals: string[] = [];
  let unknown = false;
  let endOfFlags = false;
  for (const w of c.argv.slice(1)) {
    if (w === null) {
      unknown = true;
      continue;
    }
    if (!endOfFlags && w === '--') {
      endOfFlags = true;
      continue;
    }
    if (!endOfFlags && w.length > 1 && w.startsWith('-') && !/^-\d+$/.test(w)) {
      for (const f of splitFlag(program, w)) flags.add(f);
      continue;
    }
    positionals.push(w);
  }
  return { name: program || null, flags, positionals, unknown };
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '[\\s\\S]*';
    else if (ch === '?') re += '[\\s\\S]';
    else re += ch.replace(/[.+^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const reCache = new Map<string, RegExp>();
function globMatch(glob: string, s: string): boolean {
  let re = reCache.get(glob);
  if (!re) {
    re = globToRegExp(glob);
    if (reCache.size < 10_000) reCache.set(glob, re);
  }
  return re.test(s);
}

/** Whether a rule matches one simple command. */
export function ruleMatches(rule: Rule, f: CommandFacts): boolean {
  if (f.name === null) return false;
  if (!globMatch(basename(rule.match.command), f.name)) return false;
  const lenient = rule.action !== 'allow' && f.unknown; // unknown words might be what the rule looks for
  for (const want of rule.match.flags ?? []) {
    const alternatives = want.split('|').map((alt) => splitFlag(f.name!, alt));
    const present = alternatives.some((parts) => parts.every((p) => f.flags.has(p)));
    if (!present && !lenient) return false;
  }
  for (const g of rule.match.args ?? []) {
    if (!f.positionals.some((p) => globMatch(g, p)) && !lenient) return false;
  }
  return true;
}

function show(c: SimpleCommand): string {
  return c.argv.map((w) => (w === null ? '<run-time value>' : /[\s'"\\$`]/.test(w) ? JSON.stringify(w) : w)).join(' ');
}

/** Decides over an already parsed command (argv or shell script). */
export function decideParsed(parsed: ParsedCommand, policy: Policy): PolicyDecision {
  if (parsed.error)
    return deny('commands.unparseable', `cannot analyse the command (${parsed.error}); treated as the strictest match`);
  if (parsed.commands.length === 0)
    return deny('commands.unparseable', 'no command found; treated as the strictest match');
  let best: PolicyDecision | null = null;
  for (const c of parsed.commands) {
    const f = commandFacts(c);
    const where = `"${show(c)}"${c.via.length ? ` (via ${c.via.join(' → ')})` : ''}`;
    let d: PolicyDecision;
    if (f.name === null) {
      d = deny(
        'commands.unparseable',
        `program name of ${where} is only known at run time; treated as the strictest match`,
      );
    } else {
      let hit: Rule | null = null;
      for (const r of policy.commands.rules) {
        if (ruleMatches(r, f) && (!hit || RANK[r.action] < RANK[hit.action])) hit = r;
      }
      d = hit
        ? { action: hit.action, rule: `commands.${hit.id}`, reason: `${hit.reason ?? `rule ${hit.id}`}: ${where}` }
        : {
            action: policy.commands.default,
            rule: 'commands.default',
            reason: `no rule matches ${where}; default ${policy.commands.default}`,
          };
    }
    if (!best || RANK[d.action] < RANK[best.action]) best = d;
    if (best.action === 'deny' && best.rule === 'commands.unparseable') break;
  }
  return best!;
}

/** The per-command decision for an argv (a shell given with -c is parsed). Never throws. */
export function decideCommand(argv: string[], policy: Policy): PolicyDecision {
  return failClosed('commands.engine', () => decideParsed(parseArgv(argv), policy));
}

/** Same for a shell command line (as `sh -c LINE` would run it). */
export function decideShell(line: string, policy: Policy): PolicyDecision {
  return failClosed('commands.engine', () => decideParsed(parseShell(line), policy));
}

/** Record mode's policy: the default and every ask become allow; explicit deny rules stay. */
function liftedPolicy(p: Policy): Policy {
  return {
    ...p,
    commands: {
      ...p.commands,
      default: 'allow',
      rules: p.commands.rules.map((r) => (r.action === 'ask' ? { ...r, action: 'allow' as const } : r)),
    },
  };
}

/**
 * The decision under the policy's commands mode (modes.commands): enforce as is; record
 * lets a liftable refusal through and keeps the would-be decision; shadow adds the
 * candidate policy's decision. The same decideCommand decides every time.
 */
export function decideCommandInMode(argv: string[], policy: Policy, candidate?: Policy): ModalDecision {
  const d = decideCommand(argv, policy);
  switch (policy.modes.commands) {
    case 'record':
      return recordMode('commands', d, decideCommand(argv, liftedPolicy(policy)));
    case 'shadow':
      return candidate ? shadowMode(d, decideCommand(argv, candidate)) : d;
    default:
      return d;
  }
}
