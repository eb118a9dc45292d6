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
  /** Matches the command before the flag (its program, and subcommand where it matters). */
  command: RegExp;
  flags: CliFlag[];
  /** `user:pass` (curl, httpie), `user%pass` (smbclient), `pass:` (openssl) or the password. */
  value: 'userpass' | 'user%pass' | 'openssl' | 'password';
}

const CLI_RULES: CliRule[] = [
  { id: 'cli-curl-user', tool: 'curl', command: /(?:^|[\s;|&(`$])curl(?:\.exe)?\s/, value: 'userpass',
    flags: [{ flag: '-u', sep: 'any' }, { flag: '--user', sep: 'space' }, { flag: '-U', sep: 'any' }, { flag: '--proxy-user', sep: 'space' }] },
  { id: 'cli-httpie-auth', tool: 'httpie', command: /(?:^|[\s;|&(`$])(?:http|https|httpie|xh|xhs)\s/, value: 'userpass',
    flags: [{ flag: '-a', sep: 'any' }, { flag: '--auth', sep: 'both' }] },
  { id: 'cli-registry-login', tool: 'docker login', command: /(?:^|[\s;|&(`$])(?:docker|podman|nerdctl|buildah|finch|helm\s+registry|oras|skopeo|crane\s+auth)\b[^\n]*?\slogin\s/, value: 'password',
    flags: [{ flag: '-p', sep: 'any' }, { flag: '--password', sep: 'both' }] },
  { id: 'cli-mysql-password', tool: 'mysql', command: /(?:^|[\s;|&(`$])(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlshow|mysqlcheck|mysqlsh|mysqlpump|mariadb(?:-dump|-admin)?)\s/, value: 'password',
    flags: [{ flag: '-p', sep: 'attached' }, { flag: '--password', sep: 'eq' }] },
  { id: 'cli-sshpass', tool: 'sshpass', command: /(?:^|[\s;|&(`$])sshpass\s/, value: 'password', flags: [{ flag: '-p', sep: 'any' }] },
  { id: 'cli-redis-password', tool: 'redis-cli', command: /(?:^|[\s;|&(`$])redis-cli\s/, value: 'password', flags: [{ flag: '-a', sep: 'space' }, { flag: '--pass', sep: 'space' }] },
  { id: 'cli-sqlcmd-password', tool: 'sqlcmd', command: /(?:^|[\s;|&(`$])(?:sqlcmd|bcp|osql|isql)(?:\.exe)?\s/, value: 'password', flags: [{ flag: '-P', sep: 'any' }] },
  { id: 'cli-ldap-password', tool: 'ldap tools', command: /(?:^|[\s;|&(`$])ldap(?:search|add|modify|delete|passwd|whoami|compare|modrdn)\s/, value: 'password', flags: [{ flag: '-w', sep: 'space' }] },
  { id: 'cli-smbclient-user', tool: 'smbclient', command: /(?:^|[\s;|&(`$])(?:smbclient|rpcclient|smbmap|net\s+rpc)\s/, value: 'user%pass', flags: [{ flag: '-U', sep: 'any' }, { flag: '--user', sep: 'both' }] },
  { id: 'cli-openssl-pass', tool: 'openssl', command: /(?:^|[\s;|&(`$])openssl\s/, value: 'openssl', flags: [{ flag: '-passin', sep: 'space' }, { flag: '-passout', sep: 'space' }, { flag: '-pass', sep: 'space' }] },
  { id: 'cli-password-flag', tool: 'a command', command: /\S/, value: 'password',
    flags: [{ flag: '--password', sep: 'both' }, { flag: '--passwd', sep: 'both' }, { flag: '--http-password', sep: 'both' }, { flag: '--ftp-password', sep: 'both' },
      { flag: '--proxy-password', sep: 'both' }, { flag: '--db-password', sep: 'both' }, { flag: '--admin-password', sep: 'both' }, { flag: '--root-password', sep: 'both' },
      { flag: '-storepass', sep: 'space' }, { flag: '-keypass', sep: 'space' }, { flag: '-srcstorepass', sep: 'space' }, { flag: '-deststorepass', sep: 'space' }] },
];

const MYSQL = /(?:^|[\s;|&(`$])(?:mysql|mysqldump|mysqladmin|mariadb)\S*\s/;

/** Start of the logical command line holding `pos` (backslash, backtick or caret
 * continuations joined), bounded to 20 lines. */
function commandStart(text: string, pos: number): number {
  let start = text.lastIndexOf('\n', pos - 1) + 1;
  for (let i = 0; i < 20 && start > 0; i++) {
    const prevEnd = start - 1;
    const prevStart = text.lastIndexOf('\n', prevEnd - 1) + 1;
    if (!/[\\`^][ \t]*\r?$/.test(text.slice(prevStart, prevEnd))) break;
    start = prevStart;
  }
  return start;
}

/** Reads one shell word at `i`: quotes removed, its raw end returned. */
function shellWord(text: string, i: number): { value: string; end: number } {
  let value = '';
  let j = i;
  while (j < text.length && j - i < 1024) {
    const c = text[j]!;
    if (c === "'") { const k = text.indexOf("'", j + 1); if (k < 0 || text.slice(j, k).includes('\n')) break; value += text.slice(j + 1, k); j = k + 1; continue; }
    if (c === '"') {
      let k = j + 1;
      while (k < text.length && text[k] !== '"' && text[k] !== '\n') { if (text[k] === '\\') { value += text[k + 1] ?? ''; k += 2; } else { value += text[k]; k++; } }
      if (text[k] !== '"') break;
      j = k + 1; continue;
    }
    if (c === '\\' && text[j + 1] !== '\n' && text[j + 1] !== '\r') { value += text[j + 1] ?? ''; j += 2; continue; }
    if (/[\s;|&<>)]/.test(c)) break;
    value += c; j++;
  }
  return { value, end: j };
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
    if (!word.startsWith('pass:')) return { reason: 'openssl password source is not a literal (env:, file:, fd:, stdin)' };
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
  if (spaced && (f.sep === 'space' || f.sep === 'both' || f.sep === 'any')) { let k = at; while (text[k] === ' ' || text[k] === '\t') k++; return k; }
  if (next && !spaced && next !== '=' && !/[\s;|&]/.test(next) && (f.sep === 'attached' || f.sep === 'any') && f.flag.length === 2) return at;
  return undefined;
}

function runCliRule(r: RuleRun, rule: CliRule): void {
  const { text } = r;
  for (const f of rule.flags) {
    const positions = r.anchors.complete ? r.anchors.at.get(f.flag.toLowerCase()) ?? [] : allIndexes(text, f.flag);
    for (const p of positions) {
      if (!text.startsWith(f.flag, p) || !/[\s"'(]/.test(text[p - 1] ?? '')) continue;
      const vs = valueStart(text, p + f.flag.length, f);
      if (vs === undefined) continue;
      const cmd = text.slice(commandStart(text, p), p);
      if (!rule.command.test(cmd)) continue;
      if (rule.id === 'cli-password-flag' && text[p + f.flag.length] !== '=' && MYSQL.test(cmd)) continue; // mysql --password <db>: prompts
      const w = shellWord(text, vs);
      if (!w.value) continue;
      const j = judge(rule, w.value);
      const raw = text.slice(vs, w.end);
      if (!j.secret) { suppress(r, rule.id, vs, w.end, j.reason ?? 'not a password'); continue; }
      const off = raw.lastIndexOf(j.secret);
      const start = off >= 0 ? vs + off : vs;
      const end = off >= 0 ? start + j.secret.length : w.end;
      r.out.push({ rule: rule.id, severity: 'high', message: `password passed to ${rule.tool} on the command line (${f.flag})`, start, end, priority: 2,
        why: `value of ${f.flag} in a ${rule.tool} command line` });
    }
  }
}

function allIndexes(text: string, s: string): number[] {
  const out: number[] = [];
  for (let i = text.indexOf(s); i >= 0 && out.length < 100_000; i = text.indexOf(s, i + 1)) out.push(i);
  return out;
}

/** The anchors are the flags themselves (lower-cased): the prefilter finds them once. */
export const cliPasswordRules: FunctionRule[] = CLI_RULES.map((rule) => ({
  id: rule.id,
  anchors: rule.flags.map((f) => f.flag.toLowerCase()),
  run: (r: RuleRun) => runCliRule(r, rule),
}));
