import type { Node } from 'web-tree-sitter';
import { parserFor } from './grammar.ts';
import { shellQuote } from '../common/index.ts';

// Turns what `airlock exec` is asked to run into the simple commands that would really
// execute: wrappers (env, sudo, nice, timeout, xargs, ...) are unwrapped, shell scripts
// given to `sh -c`/`bash -c`/`eval` are parsed with a real shell grammar (tree-sitter-bash),
// and every command in a pipeline, list, subshell, substitution or function body is
// listed. A word whose value is only known at run time ($VAR, $(...)) is `null`; a
// command whose name is null, or a script that does not parse, is an error and the
// caller treats it as the strictest match.

export interface SimpleCommand {
  /** argv with null for words only known at run time */
  argv: (string | null)[];
  /** wrappers this command was found under, outermost first (e.g. ['sudo', 'bash -c']) */
  via: string[];
}

export interface ParsedCommand {
  commands: SimpleCommand[];
  /** why the command cannot be analysed (then: strictest) */
  error: string | null;
}

const shellParser = await parserFor('bash');
const MAX_DEPTH = 8;
const MAX_COMMANDS = 1000;

class ParseError extends Error {}

export function basename(name: string): string {
  const i = name.lastIndexOf('/');
  return i >= 0 ? name.slice(i + 1) : name;
}

function unescapeUnquoted(s: string): string {
  return s.replace(/\\(\n|.)/g, (_m, c: string) => (c === '\n' ? '' : c));
}

function wordValue(node: Node): string | null {
  switch (node.type) {
    case 'word':
      return unescapeUnquoted(node.text);
    case 'number':
      return node.text;
    case 'raw_string':
      return node.text.slice(1, -1);
    case 'command_name':
      return node.namedChildren[0] ? wordValue(node.namedChildren[0]) : null;
    case 'string': {
      let out = '';
      for (const c of node.namedChildren) {
        if (!c) continue;
        if (c.type !== 'string_content') return null;
        out += c.text.replace(/\\([$`"\\\n])/g, (_m, ch: string) => (ch === '\n' ? '' : ch));
      }
      return out;
    }
    case 'concatenation': {
      let out = '';
      for (const c of node.namedChildren) {
        if (!c) continue;
        const v = wordValue(c);
        if (v === null) return null;
        out += v;
      }
      // unnamed children (e.g. bare punctuation) are part of the text: fall back when present
      return node.childCount === node.namedChildCount ? out : null;
    }
    default:
      return null; // expansions, substitutions, $'..', brace expressions: run-time values
  }
}

/** Parses a shell script into its simple commands (all of them, nested ones included). */
export function parseShell(script: string): ParsedCommand {
  const out: SimpleCommand[] = [];
  try {
    shellInto(script, [], 0, out);
    return { commands: out, error: null };
  } catch (e) {
    return { commands: out, error: e instanceof ParseError ? e.message : `parser failed: ${String(e)}` };
  }
}

/** Parses an argv (what exec would run, no shell) into its simple commands. */
export function parseArgv(argv: string[]): ParsedCommand {
  const out: SimpleCommand[] = [];
  try {
    if (argv.length === 0) throw new ParseError('empty command');
    expand(argv, [], 0, out);
    return { commands: out, error: null };
  } catch (e) {
    return { commands: out, error: e instanceof ParseError ? e.message : `parser failed: ${String(e)}` };
  }
}

function shellInto(script: string, via: string[], depth: number, out: SimpleCommand[]): void {
  if (depth > MAX_DEPTH) throw new ParseError('commands nested too deeply');
  if (script.includes('\0')) throw new ParseError('NUL byte in shell script');
  const tree = shellParser.parse(script);
  if (!tree) throw new ParseError('shell parser returned nothing');
  try {
    if (tree.rootNode.hasError) throw new ParseError('shell syntax error');
    for (const cmd of tree.rootNode.descendantsOfType('command')) {
      if (!cmd) continue;
      const words: (string | null)[] = [];
      const name = cmd.childForFieldName('name');
      if (!name) continue; // assignments only (FOO=1)
      words.push(wordValue(name));
      for (const a of cmd.childrenForFieldName('argument')) if (a) words.push(wordValue(a));
      expand(words, via, depth, out);
    }
  } finally {
    tree.delete();
  }
}

const SHELLS = new Set(['sh', 'bash', 'dash', 'zsh', 'ksh', 'mksh', 'ash', 'posh', 'yash', 'busybox-sh']);

interface WrapperSpec {
  /** options that take a value as the next word (short or long) */
  withValue: string[];
  /** positional words before the wrapped command (timeout DURATION, chroot DIR, ...) */
  positional?: number;
  /** NAME=VALUE words are skipped (env) */
  assignments?: boolean;
}

const WRAPPERS: Record<string, WrapperSpec> = {
  env: { withValue: ['-u', '--unset', '-C', '--chdir', '-S', '--split-string', '-P'], assignments: true },
  sudo: {
    withValue: [
      '-u',
      '--user',
      '-g',
      '--group',
      '-C',
      '--close-from',
      '-D',
      '--chdir',
      '-h',
      '--host',
      '-p',
      '--prompt',
      '-r',
      '--role',
      '-t',
      '--type',
      '-U',
      '--other-user',
      '-T',
      '--command-timeout',
      '-R',
      '--chroot',
    ],
    assignments: true,
  },
  doas: { withValue: ['-u', '-C'] },
  nice: { withValue: ['-n', '--adjustment'] },
  ionice: { withValue: ['-c', '--class', '-n', '--classdata', '-p', '-P', '-u'] },
  timeout: { withValue: ['-s', '--signal', '-k', '--kill-after'], positional: 1 },
  nohup: { withValue: [] },
  setsid: { withValue: [] },
  time: { withValue: ['-f', '--format', '-o', '--output'] },
  command: { withValue: [] },
  builtin: { withValue: [] },
  exec: { withValue: ['-a'] },
  stdbuf: { withValue: ['-i', '--input', '-o', '--output', '-e', '--error'] },
  unbuffer: { withValue: [] },
  chroot: { withValue: ['--userspec', '--groups'], positional: 1 },
  flock: { withValue: ['-w', '--timeout', '-E', '--conflict-exit-code'], positional: 1 },
  chrt: { withValue: [], positional: 1 },
  taskset: { withValue: ['-c', '--cpu-list'], positional: 0 },
  xargs: {
    withValue: [
      '-I',
      '-i',
      '-n',
      '--max-args',
      '-P',
      '--max-procs',
      '-L',
      '--max-lines',
      '-s',
      '--max-chars',
      '-d',
      '--delimiter',
      '-E',
      '-e',
      '-a',
      '--arg-file',
    ],
  },
  watch: { withValue: ['-n', '--interval', '-d'] },
  busybox: { withValue: [] },
  caffeinate: { withValue: [] },
  proxychains: { withValue: ['-f'] },
  torsocks: { withValue: [] },
  firejail: { withValue: [] },
  unshare: { withValue: [] },
  'run-parts': { withValue: [] },
};

function optName(w: string): string {
  const eq = w.indexOf('=');
  return w.startsWith('--') && eq > 0 ? w.slice(0, eq) : w;
}

/** sh -c 'script' (also -lc, -ec, -o opt -c ...): the script's commands. */
function expandShell(base: string, args: (string | null)[], via: string[], depth: number, out: SimpleCommand[]): void {
  let hasC = false;
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i];
    if (a === undefined) break;
    if (a === null) {
      if (hasC) throw new ParseError(`${base} -c script only known at run time`);
      continue;
    }
    if (a === '--') {
      i++;
      break;
    }
    if (a === '-o' || a === '+o' || a === '-O' || a === '+O') {
      i++;
      continue;
    }
    if (/^[-+][A-Za-z]+$/.test(a)) {
      if (a.startsWith('-') && a.includes('c')) hasC = true;
      continue;
    }
    if (a.startsWith('--')) continue;
    break;
  }
  if (hasC) {
    const script = args[i];
    if (script === undefined) throw new ParseError(`${base} -c without a script`);
    if (script === null) throw new ParseError(`${base} -c script only known at run time`);
    shellInto(script, [...via, `${base} -c`], depth + 1, out);
  }
}

/** find -exec/-execdir/-ok/-okdir: each command it runs. */
function expandFind(args: (string | null)[], via: string[], depth: number, out: SimpleCommand[]): void {
  for (let i = 0; i < args.length; i++) {
    if (['-exec', '-execdir', '-ok', '-okdir'].includes(args[i] ?? '')) {
      let j = i + 1;
      while (j < args.length && args[j] !== ';' && args[j] !== '+') j++;
      const inner = args.slice(i + 1, j);
      if (inner.length) expand(inner, [...via, `find ${args[i]}`], depth + 1, out);
      i = j;
    }
  }
}

function expand(argv: (string | null)[], via: string[], depth: number, out: SimpleCommand[]): void {
  if (depth > MAX_DEPTH) throw new ParseError('commands nested too deeply');
  if (out.length >= MAX_COMMANDS) throw new ParseError('too many commands');
  const name = argv[0];
  if (name === undefined) return;
  out.push({ argv, via });
  if (name === null) return; // caller treats an unknown program as strictest
  const base = basename(name);
  const args = argv.slice(1);

  if (SHELLS.has(base)) return expandShell(base, args, via, depth, out);
  if (base === 'eval') {
    if (args.some((a) => a === null)) throw new ParseError('eval of a value only known at run time');
    shellInto(args.join(' '), [...via, 'eval'], depth + 1, out);
    return;
  }
  if (base === 'find') return expandFind(args, via, depth, out);
  const spec = WRAPPERS[base];
  if (!spec) return;
  expandWrapper(base, spec, args, via, depth, out);
}

/** A wrapper's wrapped command (`env X=1 cmd`, `timeout 5 cmd`, `flock -c script`, ...). */
function expandWrapper(
  base: string,
  spec: WrapperSpec,
  args: (string | null)[],
  via: string[],
  depth: number,
  out: SimpleCommand[],
): void {
  // `command -v x` / `command -V x` only look a name up
  if (base === 'command' && args.some((a) => a === '-v' || a === '-V')) return;
  let pos = 0;
  let positional = spec.positional ?? 0;
  for (; pos < args.length; pos++) {
    const arg = args[pos];
    if (arg === undefined) break;
    if (arg === null) {
      // an unknown word where the wrapped program or an option should be: cannot tell
      throw new ParseError(`${base}: argument only known at run time`);
    }
    if (arg === '--') {
      pos++;
      break;
    }
    if (arg.startsWith('-') && arg.length > 1 && positional === (spec.positional ?? 0)) {
      const o = optName(arg);
      if (base === 'env' && (o === '-S' || o === '--split-string')) {
        const v = arg.includes('=')
          ? arg.slice(arg.indexOf('=') + 1)
          : arg.length > 2 && !arg.startsWith('--')
            ? arg.slice(2)
            : args[++pos];
        if (v === null || v === undefined) throw new ParseError('env -S without a static string');
        shellInto(
          [v, ...args.slice(pos + 1).map((x) => (x === null ? '"$__unknown"' : shellQuote(x)))].join(' '),
          [...via, 'env -S'],
          depth + 1,
          out,
        );
        return;
      }
      if (base === 'flock' && (o === '-c' || o === '--command')) {
        const v = args[pos + 1];
        if (typeof v !== 'string') throw new ParseError('flock -c without a static command');
        shellInto(v, [...via, 'flock -c'], depth + 1, out);
        return;
      }
      if (spec.withValue.includes(o) && !arg.includes('=')) pos++;
      // short option clusters with a value glued on (-n10, -uroot) need nothing more
      continue;
    }
    if (spec.assignments && /^[A-Za-z_][A-Za-z0-9_]*=/.test(arg)) continue;
    if (positional > 0) {
      positional--;
      continue;
    }
    break;
  }
  const rest = args.slice(pos);
  if (rest.length === 0) return;
  // taskset takes a mask first unless -c/-p was given
  if (base === 'taskset' && rest.length > 1 && /^(0x)?[0-9a-fA-F,-]+$/.test(rest[0] ?? '')) {
    expand(rest.slice(1), [...via, base], depth + 1, out);
    return;
  }
  // xargs appends input words to the command: unknown words at the end
  const inner = base === 'xargs' ? [...rest, null] : rest;
  expand(inner, [...via, base], depth + 1, out);
}
