import { minimatch } from 'minimatch';
import type { Policy } from '../../policy/index.ts';
import { scanText } from '../../secrets/index.ts';
import { streamPrintable } from '../diff.ts';
import type { ChangeSet, ChangedFile, Finding } from '../types.ts';

// The checks that need no parser: secrets (via the secrets module's engine), Trojan
// Source Unicode, protected paths, and size. Each returns findings with file:line.

/** Streams a large blob through the scanner; null when it could not be read whole. */
async function scanLarge(repo: string, f: ChangedFile): Promise<Awaited<ReturnType<typeof scanText>> | null> {
  const seen = new Map<string, Awaited<ReturnType<typeof scanText>>[number]>();
  const whole = await streamPrintable(repo, f.newBlob, async (text) => {
    for (const s of await scanText(text, { path: f.path })) seen.set(`${s.rule}:${s.fingerprint}`, s);
  });
  return whole ? [...seen.values()] : null;
}

/** Path globs match dotfiles too (`**` covers .github/ and .env): nothing hides behind a dot. */
export function matchPath(path: string, glob: string): boolean {
  return minimatch(path, glob, { dot: true, nonegate: true, nocomment: true });
}

export function globAny(globs: readonly string[], path: string): string | null {
  for (const g of globs) if (matchPath(path, g)) return g;
  return null;
}

export async function secretsCheck(files: ChangedFile[], repo?: string): Promise<Finding[]> {
  const out: Finding[] = [];
  for (const file of files) {
    if (file.binary) {
      const found =
        file.binaryStrings !== null
          ? await scanText(file.binaryStrings, { path: file.path })
          : file.large && repo
            ? await scanLarge(repo, file)
            : null;
      if (found) {
        for (const s of found) {
          out.push({
            check: 'secrets',
            rule: `secrets.${s.rule}`,
            severity: s.severity,
            file: file.path,
            line: 0,
            column: 0,
            message: `${s.message} inside a binary file (fingerprint ${s.fingerprint}); remove it and rotate the credential`,
            fingerprint: s.fingerprint,
          });
        }
      } else if (file.status !== 'deleted' && file.newMode !== '160000' && file.newSize > 0) {
        // not scanned is not clean: the binary heuristic is no way around the secrets check
        out.push({
          check: 'secrets',
          rule: 'secrets.unscanned-binary',
          severity: 'high',
          file: file.path,
          line: 0,
          message: `file of ${file.newSize} bytes could not be scanned for secrets; review it by hand`,
        });
      }
      continue;
    }
    if (file.added.length === 0) continue;
    const text = file.added.map((a) => a.text).join('\n');
    for (const s of await scanText(text, { path: file.path })) {
      const at = file.added[s.line - 1];
      out.push({
        check: 'secrets',
        rule: `secrets.${s.rule}`,
        severity: s.severity,
        file: file.path,
        line: at?.line ?? 0,
        column: s.column,
        message: `${s.message} (fingerprint ${s.fingerprint}); remove it and rotate the credential`,
        fingerprint: s.fingerprint,
      });
    }
  }
  return out;
}

const BIDI = /[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C]/u;
// Combining marks (U+034F, the variation selectors) first: no-misleading-character-class would
// otherwise read each as combined with the character before it in the class.
const INVISIBLE =
  /[\u034F\u{E0100}-\u{E01EF}\uFE00-\uFE0E\u200B-\u200D\u2060-\u2064\u00AD\u180E\u3164\u115F\u1160\uFFA0\uFEFF\u2028\u2029\u{E0000}-\u{E007F}]/u;
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/u;
const WORD = /[\p{L}\p{M}\p{N}_$]+/gu;
const NON_LATIN_LOOKALIKE =
  /[\p{Script=Cyrillic}\p{Script=Greek}\p{Script=Armenian}\p{Script=Cherokee}\p{Script=Coptic}]/u;
const LATIN = /\p{Script=Latin}/u;
const FULLWIDTH = /[\uFF01-\uFF5E]/u;

const NAMES: Record<number, string> = {
  0x202a: 'LEFT-TO-RIGHT EMBEDDING',
  0x202b: 'RIGHT-TO-LEFT EMBEDDING',
  0x202c: 'POP DIRECTIONAL FORMATTING',
  0x202d: 'LEFT-TO-RIGHT OVERRIDE',
  0x202e: 'RIGHT-TO-LEFT OVERRIDE',
  0x2066: 'LEFT-TO-RIGHT ISOLATE',
  0x2067: 'RIGHT-TO-LEFT ISOLATE',
  0x2068: 'FIRST STRONG ISOLATE',
  0x2069: 'POP DIRECTIONAL ISOLATE',
  0x200e: 'LEFT-TO-RIGHT MARK',
  0x200f: 'RIGHT-TO-LEFT MARK',
  0x061c: 'ARABIC LETTER MARK',
  0x200b: 'ZERO WIDTH SPACE',
  0x200c: 'ZERO WIDTH NON-JOINER',
  0x200d: 'ZERO WIDTH JOINER',
  0x2060: 'WORD JOINER',
  0xfeff: 'ZERO WIDTH NO-BREAK SPACE',
  0x00ad: 'SOFT HYPHEN',
  0x3164: 'HANGUL FILLER',
};
function cp(ch: string): string {
  const n = ch.codePointAt(0)!;
  return `U+${n.toString(16).toUpperCase().padStart(4, '0')}${NAMES[n] ? ` ${NAMES[n]}` : ''}`;
}

const NAME_CONTROL = /[\u0000-\u001F\u007F-\u009F]/u;

/** A name git must quote, or one that hides or reorders characters, is a finding of its own. */
function pathFinding(f: ChangedFile): Finding | null {
  const shown = JSON.stringify(f.path).replace(/[^\x20-\x7e]/g, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
  const bad = f.pathHex
    ? `bytes that are not UTF-8 (hex ${f.pathHex.slice(0, 200)})`
    : NAME_CONTROL.test(f.path)
      ? `a control character ${cp(NAME_CONTROL.exec(f.path)![0])}`
      : BIDI.test(f.path)
        ? `a bidirectional control ${cp(BIDI.exec(f.path)![0])}`
        : INVISIBLE.test(f.path)
          ? `an invisible character ${cp(INVISIBLE.exec(f.path)![0])}`
          : null;
  if (bad)
    return {
      check: 'unicode',
      rule: 'unicode.path',
      severity: 'high',
      file: f.path,
      line: 0,
      message: `file name ${shown} contains ${bad}: it can hide what it is or break tools that read it`,
    };
  if (/["\\]/.test(f.path))
    return {
      check: 'unicode',
      rule: 'unicode.path',
      severity: 'medium',
      file: f.path,
      line: 0,
      message: `file name ${shown} contains a quote or backslash (a path separator on Windows)`,
    };
  return null;
}

export function unicodeCheck(files: ChangedFile[]): Finding[] {
  const out: Finding[] = [];
  for (const file of files) {
    const named = pathFinding(file);
    if (named) out.push(named);
    if (file.binary) continue;
    for (const added of file.added) {
      let text = added.text;
      if (added.line === 1 && text.startsWith('\uFEFF')) text = ' ' + text.slice(1); // a BOM at the start of a file is fine
      if (text.endsWith('\r')) text = text.slice(0, -1);
      let match = BIDI.exec(text);
      if (match)
        out.push({
          check: 'unicode',
          rule: 'unicode.bidi',
          severity: 'critical',
          file: file.path,
          line: added.line,
          column: match.index + 1,
          message: `bidirectional control ${cp(match[0])}: the code shown to a reviewer differs from what the compiler reads (Trojan Source, CVE-2021-42574)`,
        });
      match = INVISIBLE.exec(text);
      if (match)
        out.push({
          check: 'unicode',
          rule: 'unicode.invisible',
          severity: 'high',
          file: file.path,
          line: added.line,
          column: match.index + 1,
          message: `invisible character ${cp(match[0])}: can hide or split identifiers and strings`,
        });
      match = CONTROL.exec(text);
      if (match)
        out.push({
          check: 'unicode',
          rule: 'unicode.control',
          severity: 'medium',
          file: file.path,
          line: added.line,
          column: match.index + 1,
          message: `control character ${cp(match[0])} in source text`,
        });
      if (/[^\x00-\x7f]/.test(text)) {
        for (const w of text.matchAll(WORD)) {
          const word = w[0];
          if (LATIN.test(word) && NON_LATIN_LOOKALIKE.test(word)) {
            const bad = [...word].find((c) => NON_LATIN_LOOKALIKE.test(c))!;
            out.push({
              check: 'unicode',
              rule: 'unicode.confusable',
              severity: 'high',
              file: file.path,
              line: added.line,
              column: (w.index ?? 0) + 1,
              message: `identifier mixes Latin with lookalike ${cp(bad)}: "${word.replace(/[^\x20-\x7e]/g, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`)}" is not the name it appears to be`,
            });
            break;
          }
        }
        const fw = FULLWIDTH.exec(text);
        if (fw)
          out.push({
            check: 'unicode',
            rule: 'unicode.confusable',
            severity: 'medium',
            file: file.path,
            line: added.line,
            column: fw.index + 1,
            message: `fullwidth character ${cp(fw[0])} looks like ASCII punctuation or letters`,
          });
      }
    }
  }
  return out;
}

export function protectedPathsCheck(files: ChangedFile[], policy: Policy): Finding[] {
  const out: Finding[] = [];
  for (const file of files) {
    const g = globAny(policy.review.protectedPaths, file.path);
    if (g)
      out.push({
        check: 'protectedPaths',
        rule: 'protectedPaths.protected',
        severity: 'medium',
        file: file.path,
        line: 0,
        message: `${file.status} protected path (matches "${g}"): CI, hooks, build scripts and policy can run code or change the rules; escalated approval applies`,
      });
    if (file.newMode === '160000')
      out.push({
        check: 'protectedPaths',
        rule: 'protectedPaths.submodule',
        severity: 'high',
        file: file.path,
        line: 0,
        message: 'adds or moves a submodule (gitlink): its content is fetched from elsewhere and is not in this diff',
      });
    if (file.newMode === '120000') {
      const target = (file.newText ?? '').trim();
      const escapes = target.startsWith('/') || escapesRepo(file.path, target);
      out.push({
        check: 'protectedPaths',
        rule: 'protectedPaths.symlink',
        severity: escapes ? 'high' : 'low',
        file: file.path,
        line: 0,
        message: escapes
          ? `symlink points outside the repository (${JSON.stringify(target.slice(0, 200))})`
          : `symlink to ${JSON.stringify(target.slice(0, 200))}`,
      });
    }
    if (file.newMode === '100755' && file.oldMode !== '100755' && file.status !== 'deleted')
      out.push({
        check: 'protectedPaths',
        rule: 'protectedPaths.executable',
        severity: 'low',
        file: file.path,
        line: 0,
        message: 'file becomes executable',
      });
  }
  return out;
}

function escapesRepo(path: string, target: string): boolean {
  let depth = path.split('/').length - 1;
  for (const part of target.split('/')) {
    if (part === '..') depth--;
    else if (part && part !== '.') depth++;
    if (depth < 0) return true;
  }
  return false;
}

export function sizeCheck(change: ChangeSet, files: ChangedFile[], policy: Policy): Finding[] {
  const lim = policy.review.limits;
  const out: Finding[] = [];
  for (const f of files) {
    if (f.status === 'deleted') continue;
    if (f.binary && !lim.allowBinary)
      out.push({
        check: 'size',
        rule: 'size.binary',
        severity: f.newMode === '100755' ? 'high' : 'medium',
        file: f.path,
        line: 0,
        message: `binary file (${f.newSize} bytes${f.newMode === '100755' ? ', executable' : ''}): its content cannot be reviewed in a diff`,
      });
    if (f.newSize > lim.maxFileBytes)
      out.push({
        check: 'size',
        rule: 'size.file',
        severity: 'medium',
        file: f.path,
        line: 0,
        message: `file is ${f.newSize} bytes, over the ${lim.maxFileBytes}-byte limit (review.limits.maxFileBytes)`,
      });
  }
  const lines = change.addedLines + change.deletedLines;
  if (lines > lim.maxDiffLines)
    out.push({
      check: 'size',
      rule: 'size.diff',
      severity: 'high',
      file: '',
      line: 0,
      message: `diff changes ${lines} lines, over the ${lim.maxDiffLines}-line limit (review.limits.maxDiffLines): too large to review`,
    });
  if (change.files.length > lim.maxFiles)
    out.push({
      check: 'size',
      rule: 'size.files',
      severity: 'high',
      file: '',
      line: 0,
      message: `diff touches ${change.files.length} files, over the ${lim.maxFiles}-file limit (review.limits.maxFiles): too large to review`,
    });
  return out;
}
