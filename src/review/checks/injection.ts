import type { Node, Parser } from 'web-tree-sitter';
import { parserFor, type Grammar } from '../../command-rules/index.ts';
import type { ChangedFile, Finding } from '../types.ts';

// Injection patterns in ADDED code, found on the syntax tree (tree-sitter), not by line
// regexes: SQL built by concatenation/interpolation/formatting and passed to a query
// call; shell commands built from variables passed to exec/system/child_process or to
// subprocess with shell=True. Variables are followed one assignment back within the file.

export function grammarOf(path: string): Grammar | null {
  const m = /\.([A-Za-z0-9]+)$/.exec(path);
  switch (m?.[1]?.toLowerCase()) {
    case 'js':
    case 'mjs':
    case 'cjs':
    case 'jsx':
      return 'javascript';
    case 'ts':
    case 'mts':
    case 'cts':
      return 'typescript';
    case 'tsx':
      return 'tsx';
    case 'py':
    case 'pyw':
      return 'python';
    default:
      return null;
  }
}

const SQL_WORDS =
  /\b(select\s[\s\S]*\bfrom|insert\s+into|update\s+\S+\s+set|delete\s+from|drop\s+(table|database)|create\s+table|alter\s+table|truncate\s|union\s+select|where\s)/i;
const SQL_SINKS = new Set([
  'query',
  'execute',
  'executemany',
  'executescript',
  'exec',
  'raw',
  'rawQuery',
  '$queryRawUnsafe',
  '$executeRawUnsafe',
  'queryRaw',
  'run',
  'all',
  'get',
  'prepare',
  'each',
  'many',
  'one',
  'none',
  'any',
  'oneOrNone',
  'manyOrNone',
  'text',
  'read_sql',
  'read_sql_query',
  'mogrify',
  'sql',
  'unsafe',
]);
const JS_SHELL = new Set(['exec', 'execSync']);
const JS_SPAWN = new Set([
  'spawn',
  'spawnSync',
  'execFile',
  'execFileSync',
  'execa',
  'execaSync',
  'execaCommand',
  'execaCommandSync',
]);
const PY_SHELL_ALWAYS = new Set(['system', 'popen', 'getoutput', 'getstatusoutput']);
const PY_SUBPROCESS = new Set(['run', 'call', 'Popen', 'check_output', 'check_call']);

interface Lang {
  py: boolean;
  assigns: Map<string, Node[]>;
}

function field(n: Node, f: string): Node | null {
  return n.childForFieldName(f);
}

function collectAssignments(root: Node, py: boolean): Map<string, Node[]> {
  const m = new Map<string, Node[]>();
  const add = (name: Node | null, value: Node | null) => {
    if (!name || !value || name.type !== 'identifier') return;
    const l = m.get(name.text) ?? [];
    if (l.length < 20) l.push(value);
    m.set(name.text, l);
  };
  if (py) {
    for (const a of root.descendantsOfType('assignment')) if (a) add(field(a, 'left'), field(a, 'right'));
    for (const a of root.descendantsOfType('augmented_assignment')) if (a) add(field(a, 'left'), a);
  } else {
    for (const d of root.descendantsOfType('variable_declarator')) if (d) add(field(d, 'name'), field(d, 'value'));
    for (const a of root.descendantsOfType(['assignment_expression', 'augmented_assignment_expression']))
      if (a) add(field(a, 'left'), a.type === 'assignment_expression' ? field(a, 'right') : a);
  }
  return m;
}

function isLiteral(n: Node, L: Lang): boolean {
  if (L.py)
    return (
      (n.type === 'string' && !n.namedChildren.some((c) => c?.type === 'interpolation')) ||
      n.type === 'integer' ||
      n.type === 'float'
    );
  return (
    n.type === 'string' ||
    n.type === 'number' ||
    (n.type === 'template_string' && !n.namedChildren.some((c) => c?.type === 'template_substitution'))
  );
}

/** Built from run-time values: interpolation, concatenation or formatting with a non-literal. */
function isDynamic(node: Node | null, lang: Lang, depth = 0): boolean {
  if (!node || depth > 4) return false;
  switch (node.type) {
    case 'parenthesized_expression':
      return isDynamic(node.namedChildren[0] ?? null, lang, depth + 1);
    case 'template_string':
      return node.namedChildren.some((c) => c?.type === 'template_substitution');
    case 'string':
      return lang.py && node.namedChildren.some((c) => c?.type === 'interpolation');
    case 'concatenated_string':
      return node.namedChildren.some((c) => isDynamic(c, lang, depth + 1));
    case 'augmented_assignment_expression':
    case 'augmented_assignment':
      return true;
    case 'binary_expression':
    case 'binary_operator': {
      const op = field(node, 'operator')?.text;
      if (op !== '+' && !(lang.py && op === '%')) return false;
      const l = field(node, 'left');
      const r = field(node, 'right');
      return [l, r].some((x) => x && (!isLiteral(x, lang) || isDynamic(x, lang, depth + 1)));
    }
    case 'call':
    case 'call_expression': {
      const fn = field(node, 'function');
      const name =
        fn?.type === 'attribute'
          ? field(fn, 'attribute')?.text
          : fn?.type === 'member_expression'
            ? field(fn, 'property')?.text
            : fn?.text;
      return name === 'format' || name === 'concat' || name === 'join' || name === 'replace';
    }
    case 'identifier':
      return (lang.assigns.get(node.text) ?? []).some((v) => v !== node && isDynamic(v, lang, depth + 1));
    default:
      return false;
  }
}

/** Text that tells whether the argument is SQL (its own text and, for a variable, its values). */
function sqlText(n: Node, L: Lang): string {
  if (n.type === 'identifier') return (L.assigns.get(n.text) ?? []).map((v) => v.text).join(' ');
  return n.text;
}

function calleeName(fn: Node | null): { name: string; object: string } {
  if (!fn) return { name: '', object: '' };
  if (fn.type === 'member_expression')
    return { name: field(fn, 'property')?.text ?? '', object: field(fn, 'object')?.text ?? '' };
  if (fn.type === 'attribute')
    return { name: field(fn, 'attribute')?.text ?? '', object: field(fn, 'object')?.text ?? '' };
  return { name: fn.text, object: '' };
}

function touchesAdded(n: Node, added: Set<number>): number | null {
  for (let r = n.startPosition.row; r <= Math.min(n.endPosition.row, n.startPosition.row + 50); r++)
    if (added.has(r + 1)) return r + 1;
  return null;
}

function hasShellTrue(args: Node[], py: boolean): boolean {
  for (const a of args) {
    if (
      py &&
      a.type === 'keyword_argument' &&
      field(a, 'name')?.text === 'shell' &&
      field(a, 'value')?.text !== 'False'
    )
      return true;
    if (!py && a.type === 'object') {
      for (const p of a.namedChildren)
        if (
          p?.type === 'pair' &&
          /^['"]?shell['"]?$/.test(field(p, 'key')?.text ?? '') &&
          field(p, 'value')?.text !== 'false'
        )
          return true;
    }
  }
  return false;
}

const parsers = new Map<Grammar, Parser>();
async function parser(g: Grammar): Promise<Parser> {
  let p = parsers.get(g);
  if (!p) {
    p = await parserFor(g);
    parsers.set(g, p);
  }
  return p;
}

export async function injectionCheck(files: ChangedFile[]): Promise<Finding[]> {
  const out: Finding[] = [];
  for (const file of files) {
    const g = grammarOf(file.path);
    if (!g || file.added.length === 0) continue;
    // a source file the review could not load or parse was not checked: say so (a reviewer
    // must not read silence as "no injection")
    const unchecked = (why: string) =>
      out.push({
        check: 'injection',
        rule: 'injection.unchecked',
        severity: 'medium',
        file: file.path,
        line: 0,
        message: `${why}: SQL and shell construction in it could not be checked; review it by hand`,
      });
    if (file.newText === null) {
      if (file.status !== 'deleted') unchecked(file.binary ? 'binary file' : 'file too large to load for review');
      continue;
    }
    const tree = (await parser(g)).parse(file.newText);
    if (!tree) {
      unchecked('the parser gave no tree');
      continue;
    }
    try {
      const py = g === 'python';
      const lang: Lang = { py, assigns: collectAssignments(tree.rootNode, py) };
      const added = new Set(file.added.map((a) => a.line));
      for (const call of tree.rootNode.descendantsOfType(py ? 'call' : 'call_expression')) {
        if (!call) continue;
        const line = touchesAdded(call, added);
        if (line === null) continue;
        const { name, object } = calleeName(field(call, 'function'));
        const argList = field(call, 'arguments');
        const args = (argList?.namedChildren ?? []).filter((a): a is Node => !!a && a.type !== 'comment');
        const first = args[0];
        if (!first || first.type === 'keyword_argument') continue;
        const callee = object ? `${object}.${name}` : name;
        const dynamic = isDynamic(first, lang);
        if (SQL_SINKS.has(name) && dynamic && SQL_WORDS.test(sqlText(first, lang))) {
          out.push({
            check: 'injection',
            rule: 'injection.sql',
            severity: 'high',
            file: file.path,
            line,
            column: call.startPosition.column + 1,
            message: `SQL built by ${first.type === 'identifier' ? `variable "${first.text}" (concatenated/interpolated)` : 'concatenation or interpolation'} is passed to ${callee}(): use bound parameters`,
          });
          continue;
        }
        const values = first.type === 'identifier' ? (lang.assigns.get(first.text) ?? []) : [];
        const unresolvedVar =
          first.type === 'identifier' && (values.length === 0 || !values.every((v) => isLiteral(v, lang)));
        const built =
          dynamic ||
          unresolvedVar ||
          first.type === 'member_expression' ||
          first.type === 'attribute' ||
          first.type === 'subscript_expression' ||
          first.type === 'subscript';
        if (!built) continue;
        let shell = false;
        if (py) {
          if (
            PY_SHELL_ALWAYS.has(name) &&
            (object === 'os' || object === 'subprocess' || object === 'commands' || object === '')
          )
            shell = true;
          else if (PY_SUBPROCESS.has(name) && hasShellTrue(args, true)) shell = true;
        } else {
          if (JS_SHELL.has(name) && !SQL_WORDS.test(sqlText(first, lang))) shell = true;
          else if (JS_SPAWN.has(name) && hasShellTrue(args, false)) shell = true;
          else if (name === 'execaCommand' || name === 'execaCommandSync') shell = true;
        }
        if (shell)
          out.push({
            check: 'injection',
            rule: 'injection.shell',
            severity: 'high',
            file: file.path,
            line,
            column: call.startPosition.column + 1,
            message: `shell command built from a variable is run by ${callee}(): pass an argument array without a shell`,
          });
      }
    } finally {
      tree.delete();
    }
  }
  return out;
}
