import { LineCounter, parseDocument, isMap, type Node as YamlNode } from 'yaml';

// Where a key sits in a policy file, so every policy error names file:line:column and key.

export interface PolicyIssue {
  origin: string;
  line: number | null;
  column: number | null;
  key: string;
  message: string;
}

export function locate(
  doc: ReturnType<typeof parseDocument>,
  lc: LineCounter,
  path: (string | number)[],
): { line: number | null; column: number | null } {
  // Walk down as far as the path exists; report the deepest node found (the offending key or its parent).
  for (let n = path.length; n >= 0; n--) {
    if (n === path.length && typeof path[n - 1] === 'string') {
      const parent = doc.getIn(path.slice(0, n - 1), true) as YamlNode | undefined;
      if (parent && isMap(parent)) {
        const pair = parent.items.find((it) => (it.key as { value?: unknown })?.value === path[n - 1]);
        const kr = (pair?.key as { range?: [number, number, number] } | undefined)?.range;
        if (kr) {
          const p = lc.linePos(kr[0]);
          return { line: p.line, column: p.col };
        }
      }
    }
    const node = doc.getIn(path.slice(0, n), true) as YamlNode | undefined;
    if (node && (node as { range?: [number, number, number] }).range) {
      const off = (node as { range: [number, number, number] }).range[0];
      const p = lc.linePos(off);
      return { line: p.line, column: p.col };
    }
    if (n > 0 && typeof path[n - 1] === 'string') {
      // locate the key itself inside its parent map
      const parent = doc.getIn(path.slice(0, n - 1), true) as YamlNode | undefined;
      if (parent && isMap(parent)) {
        const pair = parent.items.find((it) => (it.key as { value?: unknown })?.value === path[n - 1]);
        const kr = (pair?.key as { range?: [number, number, number] } | undefined)?.range;
        if (kr) {
          const p = lc.linePos(kr[0]);
          return { line: p.line, column: p.col };
        }
      }
    }
  }
  return { line: null, column: null };
}

/** Line and column of a dotted key in a policy text (the deepest part of the path found). */
export function locateKey(
  text: string | undefined,
  path: (string | number)[],
): { line: number | null; column: number | null } {
  if (text === undefined) return { line: null, column: null };
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc });
  return locate(doc, lc, path);
}

export function formatIssues(issues: PolicyIssue[]): string {
  return issues
    .map((i) => `${i.origin}${i.line ? `:${i.line}:${i.column}` : ''}: ${i.key || '(top level)'}: ${i.message}`)
    .join('\n');
}
