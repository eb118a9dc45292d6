import { styleText } from 'node:util';
import type { Command } from 'commander';
import { AirlockError, cannotRecord, escapeForTerminal, isRecordingFailure } from '../common/index.ts';

// Colours only when the stream is a TTY and NO_COLOR is unset (styleText checks both).
type Style = Parameters<typeof styleText>[0];
export function paint(
  style: Style,
  text: string,
  stream: NodeJS.WriteStream = process.stdout as NodeJS.WriteStream,
): string {
  return styleText(style, text, { stream, validateStream: true });
}
export const ok = (t: string, s: NodeJS.WriteStream = process.stdout) => paint('green', t, s);
export const bad = (t: string, s: NodeJS.WriteStream = process.stdout) => paint('red', t, s);
export const warn = (t: string, s: NodeJS.WriteStream = process.stdout) => paint('yellow', t, s);
export const dim = (t: string, s: NodeJS.WriteStream = process.stdout) => paint('dim', t, s);
export const bold = (t: string, s: NodeJS.WriteStream = process.stdout) => paint('bold', t, s);

// JSON.stringify escapes C0 controls but leaves C1 (0x9b is CSI on 8-bit terminals),
// bidi and line separators raw; those can only stand inside strings, so \u-escaping them
// keeps the JSON identical in meaning and safe to print.
const JSON_UNSAFE = /[\u007F-\u009F\u00AD\u061C\u180E\u200B-\u200F\u2028-\u202E\u2060-\u2069\uFEFF\uFFF9-\uFFFB]/g;
export function jsonText(v: unknown, indent = 2): string {
  return JSON.stringify(v, null, indent).replace(
    JSON_UNSAFE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export function printJson(v: unknown): void {
  process.stdout.write(jsonText(v) + '\n');
}

/** Progress for long work goes to stderr, only on a TTY, so pipes and --json stay clean. */
export function progress(msg: string): void {
  if (process.stderr.isTTY) process.stderr.write(dim(`… ${msg}`, process.stderr) + '\n');
}

export function table(rows: string[][], header?: string[]): string {
  const all = header ? [header, ...rows] : rows;
  const widths: number[] = [];
  for (const r of all)
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, visibleLength(c));
    });
  const fmt = (r: string[]) =>
    r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - visibleLength(c)))).join('  ');
  const lines = all.map(fmt);
  if (header) lines[0] = bold(lines[0]!);
  return lines.join('\n');
}
function visibleLength(s: string): number {
  return s.replace(/\x1b\[[0-9;]*m/g, '').length;
}

export function printError(e: unknown): number {
  // a full disk anywhere (data dir, audit store) is the user's to fix, not a bug
  if (!(e instanceof AirlockError) && isRecordingFailure(e)) e = cannotRecord(e, "Airlock's data directory");
  if (e instanceof AirlockError) {
    process.stderr.write(`${bad('airlock: error:', process.stderr)} ${e.message}\n`);
    if (e.hint) process.stderr.write(`${dim('hint:', process.stderr)} ${e.hint}\n`);
    return e.exitCode;
  }
  const msg = e instanceof Error ? (e.stack ?? e.message) : String(e);
  process.stderr.write(`airlock: internal error (please report): ${msg}\n`);
  return 70;
}

/** Commands set their exit status through this rather than calling process.exit (main reads it). */
export function setExit(cmd: Command, code: number): void {
  (cmd as unknown as { _airlockExit?: number })._airlockExit = code;
}

/** With a shared store that cannot be reached: a warning, and this host's part of the listing alone. */
export function otherHostsNotShown(message: string): void {
  process.stderr.write(`${warn('airlock: other hosts not shown:', process.stderr)} ${escapeForTerminal(message)}\n`);
}
