import { suppress, type FunctionRule, type RuleRun } from './hits.ts';
import { charClasses, entropy, notSecretReason } from './values.ts';

// Passwords passed on command lines in scripts, CI files, docs and shell history:
// curl -u user:pass, docker login -p …, mysql -p…, sshpass -p …, wget --http-password=…,
// httpie -a user:pass, and any --password=… / --password … flag. A flag counts only inside
// the command it belongs to (the logical line, backslash continuations included), so
// `docker run -p 8080:80` or `ssh -p 22` is not a password.

interface CliFlag {
  /** Flag as written (case-sensitive); `attached` allows -pVALUE. */
  flag: string;
  sep: 'space' | 'eq' | 'both' | 'attached' | 'any';
}

interface CliRule {
  id: string;
  tool: string;
  /** Program names (lower case) the flags belong to; empty: any program (the flag itself
   * says "password"). */
  commands: string[];
  /** Must appear between the program and the flag (`docker … login … -p`). */
  subcommand?: RegExp;
  flags: CliFlag[];
  /** `user:pass` (curl, httpie), `user%pass` (smbclient), `pass:` (openssl) or the password. */
  value: 'userpass' | 'user%pass' | 'openssl' | 'password';
}

const CLI_RULES: CliRule[] = [
  {
    id: 'cli-curl-user',
    tool: 'curl',
    commands: ['curl'],
    value: 'userpass',
    flags: [
      { flag: '-u', sep: 'any' },
      { flag: '--user', sep: 'space' },
      { flag: '-U', sep: 'any' },
      { flag: '--proxy-user', sep: 'space' },
    ],
  },
  {
    id: 'cli-httpie-auth',
    tool: 'httpie',
    commands: ['http', 'https', 'httpie', 'xh', 'xhs'],
    value: 'userpass',
    flags: [
      { flag: '-a', sep: 'any' },
      { flag: '--auth', sep: 'both' },
    ],
  },
  {
    id: 'cli-registry-login',
    tool: 'docker login',
    commands: ['docker', 'podman', 'nerdctl', 'buildah', 'finch', 'helm', 'oras', 'skopeo', 'crane'],
    subcommand: /\slogin\s/,
    value: 'password',
    flags: [
      { flag: '-p', sep: 'any' },
      { flag: '--password', sep: 'both' },
    ],
  },
  {
    id: 'cli-mysql-password',
    tool: 'mysql',
    commands: [
      'mysql',
      'mysqldump',
      'mysqladmin',
      'mysqlimport',
      'mysqlshow',
      'mysqlcheck',
      'mysqlsh',
      'mysqlpump',
      'mariadb',
      'mariadb-dump',
      'mariadb-admin',
    ],
    value: 'password',
    flags: [
      { flag: '-p', sep: 'attached' },
      { flag: '--password', sep: 'eq' },
    ],
  },
  { id: 'cli-sshpass', tool: 'sshpass', commands: ['sshpass'], value: 'password', flags: [{ flag: '-p', sep: 'any' }] },
  {
    id: 'cli-redis-password',
    tool: 'redis-cli',
    commands: ['redis-cli'],
    value: 'password',
    flags: [
      { flag: '-a', sep: 'space' },
      { flag: '--pass', sep: 'space' },
    ],
  },
  {
    id: 'cli-sqlcmd-password',
    tool: 'sqlcmd',
    commands: ['sqlcmd', 'bcp', 'osql', 'isql'],
    value: 'password',
    flags: [{ flag: '-P', sep: 'any' }],
  },
  {
    id: 'cli-ldap-password',
    tool: 'ldap tools',
    commands: [
      'ldapsearch',
      'ldapadd',
      'ldapmodify',
      'ldapdelete',
      'ldappasswd',
      'ldapwhoami',
      'ldapcompare',
      'ldapmodrdn',
    ],
    value: 'password',
    flags: [{ flag: '-w', sep: 'space' }],
  },
  {
    id: 'cli-smbclient-user',
    tool: 'smbclient',
    commands: ['smbclient', 'rpcclient', 'smbmap'],
    value: 'user%pass',
    flags: [
      { flag: '-U', sep: 'any' },
      { flag: '--user', sep: 'both' },
    ],
  },
  {
    id: 'cli-openssl-pass',
    tool: 'openssl',
    commands: ['openssl'],
    value: 'openssl',
    flags: [
      { flag: '-passin', sep: 'space' },
      { flag: '-passout', sep: 'space' },
      { flag: '-pass', sep: 'space' },
    ],
  },
  {
    id: 'cli-password-flag',
    tool: 'a program',
    commands: [],
    value: 'password',
    flags: [
      { flag: '--password', sep: 'both' },
      { flag: '--passwd', sep: 'both' },
      { flag: '--http-password', sep: 'both' },
      { flag: '--ftp-password', sep: 'both' },
      { flag: '--proxy-password', sep: 'both' },
      { flag: '--db-password', sep: 'both' },
      { flag: '--admin-password', sep: 'both' },
      { flag: '--root-password', sep: 'both' },
      { flag: '-storepass', sep: 'space' },
      { flag: '-keypass', sep: 'space' },
      { flag: '-srcstorepass', sep: 'space' },
      { flag: '-deststorepass', sep: 'space' },
    ],
  },
];

// `mysql --password <db>` (a space, no value) prompts: the next word is not a password.
const MYSQL_FAMILY = ['mysql', 'mariadb'];
const MAX_COMMAND = 4096;
const CONTINUED = /[\\`^][ \t]*\r?$/;

/** End of the logical command line starting at `from` (continuation lines joined),
 * bounded to `limit`. */
function commandEnd(text: string, from: number, limit: number): number {
  let end = from;
  while (end < limit) {
    const rel = text.slice(end, limit).indexOf('\n'); // bounded: never scans past the window
    if (rel < 0) return limit;
    const nl = end + rel;
    if (!CONTINUED.test(text.slice(Math.max(end, nl - 4), nl))) return nl;
    end = nl + 1;
  }
  return limit;
}

/** A program name at `at` stands as a command word: after start, space, ; | & ( ` $ or /,
 * before space or ".exe". */
function isCommandWord(text: string, at: number, name: string): boolean {
  if (at > 0 && !/[\s;|&(`$/"']/.test(text[at - 1]!)) return false;
  return /^(?:\.exe)?\s/.test(text.slice(at + name.length, at + name.length + 5));
}

/** Whether the sorted offsets hold one in [lo, hi) (binary search). */
function anyIn(sorted: number[], lo: number, hi: number): boolean {
  let a = 0;
  let b = sorted.length;
  while (a < b) {
    const m = (a + b) >> 1;
    if (sorted[m]! < lo) a = m + 1;
    else b = m;
  }
  return a < sorted.length && sorted[a]! < hi;
}

const sortedHits = (r: RuleRun, words: readonly string[]) =>
  words.flatMap((w) => r.anchors.at.get(w) ?? []).sort((a, b) => a - b);

/** Reads one shell word at `i`: quotes removed, its raw end returned. */
function shellWord(text: string, i: number): { value: string; end: number } {
  let value = '';
  let end = i;
  while (end < text.length && end - i < 1024) {
    const char = text[end]!;
    if (char === "'") {
      const k = text.indexOf("'", end + 1);
      if (k < 0 || text.slice(end, k).includes('\n')) break;
      value += text.slice(end + 1, k);
      end = k + 1;
      continue;
    }
    if (char === '"') {
      let k = end + 1;
      while (k < text.length && text[k] !== '"' && text[k] !== '\n') {
        if (text[k] === '\\') {
          value += text[k + 1] ?? '';
          k += 2;
        } else {
          value += text[k];
          k++;
        }
      }
      if (text[k] !== '"') break;
      end = k + 1;
      continue;
    }
    if (char === '\\' && text[end + 1] !== '\n' && text[end + 1] !== '\r') {
      value += text[end + 1] ?? '';
      end += 2;
      continue;
    }
    if (/[\s;|&<>)]/.test(char)) break;
    value += char;
    end++;
  }
  return { value, end: end };
}

/** The secret in a flag value and why it is (or is not) one. */
function judge(rule: CliRule, word: string): { secret?: string; reason?: string } {
  const whole = notSecretReason(word);
  if (whole) return { reason: whole };
  let secret = word;
  if (rule.value === 'userpass' || rule.value === 'user%pass') {
    const i = word.indexOf(rule.value === 'userpass' ? ':' : '%');
    if (i < 0) return { reason: 'user name only (the tool prompts for the password)' };
    secret = word.slice(i + 1);
    if (!secret) {
      // `-u sk_live_…:` passes an API key as the user with an empty password.
      const user = word.slice(0, i);
      if (user.length >= 8 && entropy(user) >= 3 && charClasses(user) >= 3) return { secret: user };
      return { reason: 'empty password' };
    }
    if (secret === word.slice(0, i)) return { reason: 'password equals the user name' };
  } else if (rule.value === 'openssl') {
    if (!word.startsWith('pass:'))
      return { reason: 'openssl password source is not a literal (env:, file:, fd:, stdin)' };
    secret = word.slice(5);
  }
  if (!secret || secret.startsWith('-')) return { reason: 'no value' };
  const why = notSecretReason(secret, { password: true });
  if (why) return { reason: why };
  if (secret.length < 4) return { reason: 'shorter than 4 characters' };
  return { secret };
}

function valueStart(text: string, at: number, f: CliFlag): number | undefined {
  const next = text[at] ?? '';
  const spaced = /[ \t]/.test(next);
  if (next === '=' && (f.sep === 'eq' || f.sep === 'both' || f.sep === 'any')) return at + 1;
  if (spaced && (f.sep === 'space' || f.sep === 'both' || f.sep === 'any')) {
    let k = at;
    while (text[k] === ' ' || text[k] === '\t') k++;
    return k;
  }
  if (
    next &&
    !spaced &&
    next !== '=' &&
    !/[\s;|&]/.test(next) &&
    (f.sep === 'attached' || f.sep === 'any') &&
    f.flag.length === 2
  )
    return at;
  return undefined;
}

function judgeFlag(r: RuleRun, rule: CliRule, f: CliFlag, p: number): void {
  const { text } = r;
  if (!text.startsWith(f.flag, p) || !/[\s"'(]/.test(text[p - 1] ?? '')) return;
  const vs = valueStart(text, p + f.flag.length, f);
  if (vs === undefined) return;
  const w = shellWord(text, vs);
  if (!w.value) return;
  const j = judge(rule, w.value);
  if (!j.secret) {
    suppress(r, rule.id, vs, w.end, j.reason ?? 'not a password');
    return;
  }
  const raw = text.slice(vs, w.end);
  const off = raw.lastIndexOf(j.secret);
  const start = off >= 0 ? vs + off : vs;
  const end = off >= 0 ? start + j.secret.length : w.end;
  const where = rule.commands.length ? `a ${rule.tool} command line` : 'a command line';
  r.out.push({
    rule: rule.id,
    severity: 'high',
    message: `password passed on the command line (${rule.tool === 'a program' ? f.flag : `${rule.tool} ${f.flag}`})`,
    start,
    end,
    priority: 2,
    why: `value of ${f.flag} in ${where}`,
  });
}

function flagPositions(r: RuleRun, f: CliFlag): number[] {
  return r.anchors.complete ? (r.anchors.at.get(f.flag.toLowerCase()) ?? []) : allIndexes(r.text, f.flag);
}

/** Each program occurrence owns the flags up to the end of its logical line (or the next
 * occurrence, or 4 KiB): every flag is judged once, so the rule stays linear. */
function runCliRule(run: RuleRun, rule: CliRule): void {
  const { text } = run;
  if (!rule.commands.length) {
    const mysql = sortedHits(run, MYSQL_FAMILY);
    for (const f of rule.flags) {
      for (const p of flagPositions(run, f)) {
        if (text[p + f.flag.length] !== '=' && mysql.length) {
          const lineStart = Math.max(p - MAX_COMMAND, text.lastIndexOf('\n', p) + 1);
          if (anyIn(mysql, lineStart, p)) continue;
        }
        judgeFlag(run, rule, f, p);
      }
    }
    return;
  }
  const starts = rule.commands
    .flatMap((c) => (run.anchors.at.get(c) ?? []).filter((at) => isCommandWord(text, at, c)).map((at) => ({ at, c })))
    .sort((a, b) => a.at - b.at);
  if (!starts.length) return;
  const flags = rule.flags.flatMap((f) => flagPositions(run, f).map((p) => ({ p, f }))).sort((a, b) => a.p - b.p);
  let fi = 0;
  for (let i = 0; i < starts.length; i++) {
    const { at, c } = starts[i]!;
    const limit = Math.min(starts[i + 1]?.at ?? text.length, at + MAX_COMMAND);
    const end = commandEnd(text, at, limit);
    const sub = rule.subcommand ? rule.subcommand.exec(text.slice(at + c.length - 1, end)) : null;
    const from = rule.subcommand ? (sub ? at + c.length - 1 + sub.index : end) : at;
    while (fi < flags.length && flags[fi]!.p < at) fi++;
    for (; fi < flags.length && flags[fi]!.p < end; fi++)
      if (flags[fi]!.p > from) judgeFlag(run, rule, flags[fi]!.f, flags[fi]!.p);
  }
}

function allIndexes(text: string, s: string): number[] {
  const out: number[] = [];
  for (let i = text.indexOf(s); i >= 0 && out.length < 100_000; i = text.indexOf(s, i + 1)) out.push(i);
  return out;
}

/** The prefilter finds programs and flags in its one pass; a rule runs when its program
 * (or, for program-independent flags, the flag) occurs. */
export const cliPasswordRules: FunctionRule[] = CLI_RULES.map((rule) => ({
  id: rule.id,
  anchors: rule.commands.length ? rule.commands : rule.flags.map((f) => f.flag.toLowerCase()),
  positions: [...rule.flags.map((f) => f.flag.toLowerCase()), ...(rule.commands.length ? [] : MYSQL_FAMILY)],
  run: (r: RuleRun) => runCliRule(r, rule),
}));
