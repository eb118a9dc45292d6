// The one escaping function for every CLI output that can carry agent-controlled text
// (command lines, file names, commit messages, authors, audit summaries). The agent
// chooses those bytes: raw, they could erase or rewrite what a reviewer sees (CSI),
// write the clipboard (OSC 52), reorder a line (bidi) or hide characters. Each such
// character is shown as a visible `<U+XXXX>` tag instead, so nothing is silently lost.

// C0 (but TAB and LF, handled by `keepNewlines`), DEL, C1, soft hyphen, Arabic letter
// mark, Mongolian vowel separator, zero-width and directional marks, line/paragraph
// separators, bidi embeddings/overrides/isolates, word joiner and invisible operators,
// BOM, variation selectors, Hangul fillers, tag characters and lone surrogates. The variation
// selectors (combining marks) come first in the class so no-misleading-character-class does
// not read them as combined with the character before.
const UNSAFE =
  /[\uFE00-\uFE0F\u0000-\u0008\u000A-\u001F\u007F-\u009F\u00AD\u061C\u115F\u1160\u180E\u200B-\u200F\u2028-\u202E\u2060-\u2069\uFEFF\u3164\uFFA0\uFFF9-\uFFFB\u{E0000}-\u{E01EF}]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/gu;
const UNSAFE_KEEP_NL =
  /[\uFE00-\uFE0F\u0000-\u0008\u000B-\u001F\u007F-\u009F\u00AD\u061C\u115F\u1160\u180E\u200B-\u200F\u2028-\u202E\u2060-\u2069\uFEFF\u3164\uFFA0\uFFF9-\uFFFB\u{E0000}-\u{E01EF}]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/gu;

function tag(c: string): string {
  return `<U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}>`;
}

/**
 * Agent-controlled text made safe for a terminal: every control, C1, bidi, invisible or
 * line-breaking character becomes `<U+XXXX>`. TAB is kept; with `keepNewlines`, LF too
 * (for multi-line text such as a diff or a commit message printed line by line).
 */
export function escapeForTerminal(s: string, o: { keepNewlines?: boolean } = {}): string {
  return String(s).replace(o.keepNewlines ? UNSAFE_KEEP_NL : UNSAFE, tag);
}

/** True when `escapeForTerminal` would change the text. */
export function hasTerminalControls(s: string): boolean {
  return escapeForTerminal(s, { keepNewlines: true }) !== s;
}
