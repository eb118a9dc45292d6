// The one shell quoter. POSIX single quotes keep every byte literal, and a quote inside
// is closed, escaped and reopened ('\''): dash (the sandbox's setup scripts) and the
// command-rules parser (tree-sitter-bash, reading `env -S` strings back) both read one
// form back exactly. shell-quote was considered: its output mixes single quotes, double
// quotes and backslashes by content, three forms the parser would each have to match.

/** `s` as one shell word, read back unchanged by any POSIX shell. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
