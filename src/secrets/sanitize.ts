import { closeSync, constants, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, matchesGlob } from 'node:path';
import type { AuditEventInput } from '../audit/index.ts';
import type { SecretsPolicy } from '../policy/index.ts';
import { scanText, applyRedactions } from './engine.ts';
import { readNoFollow, walk } from './files.ts';
import type { SecretFinding } from './types.ts';

// Workspace sanitization, run on a plain directory before the agent starts. Key files and
// credential stores (hide globs) are removed; other files with secrets are rewritten with
// each secret replaced by a marker (or removed, in hide mode). Anything that cannot be
// checked (too large, unreadable, a scan error, a binary with a secret) is removed: fail
// closed. Each action is recorded with file, line, rule and fingerprint, never the value.

/** Template files that document variable names; scanned and redacted, not hidden. */
const TEMPLATE = /^\.env\.(?:example|sample|template|dist|defaults)$|^example\.env$/i;
/** Package-manager configs hidden only when they hold a credential. */
const CREDENTIAL_CONFIGS = new Set(['.npmrc', '.yarnrc', '.yarnrc.yml', '.pypirc', '.gemrc', 'pip.conf', '.condarc', 'settings.xml', '.cargo-credentials', 'credentials.toml']);
const CREDENTIAL_HINT = /_auth|authtoken|password|passwd|token\s*[=:]|npmauthtoken/i;

function globMatch(rel: string, glob: string): boolean {
  const g = glob.toLowerCase();
  if (g.includes('/')) return matchesGlob(rel.toLowerCase(), g) || matchesGlob(rel.toLowerCase(), `**/${g}`);
  const name = basename(rel).toLowerCase();
  return matchesGlob(name, g) || (name.startsWith('.') && matchesGlob(name.slice(1), g));
}

export function hideGlobFor(rel: string, globs: readonly string[]): string | undefined {
  if (TEMPLATE.test(basename(rel))) return undefined;
  return globs.find((g) => globMatch(rel, g));
}

/** Writes next to the target and renames over it: the rename replaces a directory entry,
 * so even a symlink planted at the path is replaced, never written through. */
function atomicWrite(path: string, text: string, mode: number): void {
  const tmp = join(dirname(path), `.airlock-redact-${randomBytes(6).toString('hex')}`);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode & 0o777);
  try {
    const buf = Buffer.from(text, 'utf8');
    for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally { closeSync(fd); }
  renameSync(tmp, path);
}

type RecordFn = (e: AuditEventInput) => void;

export async function sanitizeTree(
  dir: string,
  policy: SecretsPolicy,
  record: RecordFn,
): Promise<{ hidden: string[]; redacted: SecretFinding[] }> {
  const ws = policy.workspace;
  const hidden: string[] = [];
  const redacted: SecretFinding[] = [];
  let files = 0;
  if (ws.mode === 'off') {
    record({ type: 'secrets.sanitize', severity: 'low', rule: 'secrets.workspace.mode', data: { mode: 'off', files: 0, hidden: 0, redacted: 0 } });
    return { hidden, redacted };
  }
  const maxBytes = ws.maxFileKB * 1024;
  const hide = (abs: string, rel: string, reason: string, rule: string, extra: Record<string, unknown> = {}) => {
    unlinkSync(abs); // unlink removes the entry itself, never a symlink's target
    hidden.push(rel);
    record({ type: 'secrets.hidden', severity: reason === 'glob' ? 'info' : 'medium', decision: 'deny', rule, data: { file: rel, reason, ...extra } });
  };
  const summary = (fs: SecretFinding[]) => fs.map((f) => ({ line: f.line, rule: f.rule, fingerprint: f.fingerprint }));

  // .git: only its config is looked at (remote URLs with tokens); history is not rewritten.
  const entries = walk(dir, (rel) => rel === '.git' || rel.startsWith('.git/'));
  const gitConfig = { abs: join(dir, '.git', 'config'), rel: '.git/config', type: 'file' as const };
  for (const e of [gitConfig, ...entries]) {
    if (e.type === 'dir' || e.type === 'other') continue;
    const glob = e === gitConfig ? undefined : hideGlobFor(e.rel, ws.hide);
    if (e.type === 'symlink') {
      if (glob) hide(e.abs, e.rel, 'glob', 'secrets.workspace.hide', { glob, symlink: true });
      continue; // never read through a link
    }
    if (glob) { hide(e.abs, e.rel, 'glob', 'secrets.workspace.hide', { glob }); continue; }
    const r = readNoFollow(e.abs, maxBytes);
    if (r.kind === 'skip') {
      if (e === gitConfig && r.reason === 'unreadable') continue; // no .git/config
      if (r.reason === 'symlink') continue; // replaced by a link since the walk: not ours to read
      if (r.reason === 'not-a-regular-file') continue;
      hide(e.abs, e.rel, r.reason, r.reason === 'too-large' ? 'secrets.workspace.maxFileKB' : 'secrets.workspace.mode', r.size ? { size: r.size } : {});
      continue;
    }
    files++;
    let findings: SecretFinding[];
    try {
      findings = await scanText(r.text, { path: e.rel, allowlist: ws.allowlist });
    } catch (err) {
      hide(e.abs, e.rel, 'scan-error', 'secrets.workspace.mode', { error: err instanceof Error ? err.name : 'error' });
      continue;
    }
    const name = basename(e.rel).toLowerCase();
    if (CREDENTIAL_CONFIGS.has(name) && (findings.length || CREDENTIAL_HINT.test(r.text))) {
      hide(e.abs, e.rel, 'credential-config', 'secrets.workspace.hide', { findings: summary(findings) });
      continue;
    }
    if (!findings.length) continue;
    const keyOnly = findings.some((f) => f.rule === 'private-key') && r.text.trim().startsWith('-----BEGIN');
    if (ws.mode === 'hide' || r.binary || keyOnly) {
      const reason = ws.mode === 'hide' ? 'secret' : r.binary ? 'binary-with-secret' : 'private-key-file';
      hide(e.abs, e.rel, reason, 'secrets.workspace.mode', { findings: summary(findings) });
      continue;
    }
    atomicWrite(e.abs, applyRedactions(r.text, findings), r.mode);
    for (const f of findings) {
      const withFile = { ...f, file: e.rel };
      redacted.push(withFile);
      record({
        type: 'secrets.redacted', severity: f.severity === 'medium' ? 'low' : 'medium', decision: null, rule: 'secrets.workspace.mode',
        data: { file: e.rel, line: f.line, column: f.column, rule: f.rule, fingerprint: f.fingerprint },
      });
    }
  }
  record({
    type: 'secrets.sanitize', severity: 'info', rule: 'secrets.workspace.mode',
    data: { mode: ws.mode, files, hidden: hidden.length, redacted: redacted.length },
  });
  return { hidden, redacted };
}
