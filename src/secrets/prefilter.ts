// The literal-anchor prefilter: one pass over the text finds every occurrence of every
// rule's anchor literals (ASCII, case-insensitive), so a rule runs only where it can match,
// and rules whose match starts at its anchor run only at those offsets.
//
// It is an Aho–Corasick automaton compiled to a dense DFA over ASCII (one typed-array lookup
// per character). Hand-written because the npm packages measured on this machine over 4 MB
// of source with our ~230 anchors were far slower than the rules they would gate:
// modern-ahocorasick 3.3 ~25 MB/s (it segments graphemes), ahocorasick 1.0 ~28 MB/s,
// @monyone/aho-corasick 1.1 5–8 MB/s; a V8 regex alternation of the same literals ~25 MB/s.
// This DFA scans at several hundred MB/s (bench/secrets.ts measures the whole engine).

export interface AnchorHits {
  /** Anchor (lower case) → offsets where it occurs. */
  at: Map<string, number[]>;
  /** False when the input had so many anchors that offsets were not all kept: rules then
   * run over the whole text instead of at offsets. */
  complete: boolean;
  has(anchor: string): boolean;
  any(anchors: readonly string[]): boolean;
}

export interface Prefilter { scan(text: string): AnchorHits }

const ALPHABET = 128;
const MAX_HITS = 200_000;

interface Automaton {
  /** delta[state * 128 + charCode] → next state (a complete DFA: failure links folded in). */
  delta: Int32Array;
  /** Anchors (indexes into `words`) that end in each state, its failure chain included. */
  out: number[][];
  /** 1 where `out` is not empty: the hot loop reads a byte, not an array. */
  emits: Uint8Array;
  words: string[];
}

function buildAutomaton(words: string[]): Automaton {
  const gotoRows: Map<number, number>[] = [new Map()];
  const ends: number[][] = [[]];
  words.forEach((w, wi) => {
    let s = 0;
    for (const ch of w) {
      const c = ch.charCodeAt(0);
      if (c >= ALPHABET) throw new Error(`anchor "${w}" is not ASCII`);
      let t = gotoRows[s]!.get(c);
      if (t === undefined) { t = gotoRows.length; gotoRows.push(new Map()); ends.push([]); gotoRows[s]!.set(c, t); }
      s = t;
    }
    ends[s]!.push(wi);
  });
  const n = gotoRows.length;
  const delta = new Int32Array(n * ALPHABET);
  const fail = new Int32Array(n);
  const out: number[][] = ends.map((e) => [...e]);
  const queue: number[] = [];
  for (let c = 0; c < ALPHABET; c++) {
    const t = gotoRows[0]!.get(c);
    if (t !== undefined) { delta[c] = t; queue.push(t); }
  }
  for (let qi = 0; qi < queue.length; qi++) {
    const s = queue[qi]!;
    out[s]!.push(...out[fail[s]!]!.filter((x) => !out[s]!.includes(x)));
    for (let c = 0; c < ALPHABET; c++) {
      const t = gotoRows[s]!.get(c);
      if (t === undefined) { delta[s * ALPHABET + c] = delta[fail[s]! * ALPHABET + c]!; continue; }
      delta[s * ALPHABET + c] = t;
      fail[t] = delta[fail[s]! * ALPHABET + c]!;
      queue.push(t);
    }
  }
  // ASCII case folding in the table itself: an upper-case letter moves like its lower case.
  for (let st = 0; st < n; st++) for (let c = 65; c <= 90; c++) delta[st * ALPHABET + c] = delta[st * ALPHABET + (c | 0x20)]!;
  return { delta, out, emits: Uint8Array.from(out, (o) => (o.length ? 1 : 0)), words };
}

export function compilePrefilter(anchors: Iterable<string>): Prefilter {
  const words = [...new Set([...anchors].map((a) => a.toLowerCase()))];
  if (words.some((a) => !a)) throw new Error('empty anchor');
  const { delta, out, emits } = buildAutomaton(words);
  return {
    scan(text: string): AnchorHits {
      const at = new Map<string, number[]>();
      let complete = true;
      let n = 0;
      let state = 0;
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c >= ALPHABET) { state = 0; continue; }
        state = delta[(state << 7) | c]!;
        if (emits[state] === 0) continue;
        const ends = out[state]!;
        for (const wi of ends) {
          const w = words[wi]!;
          const xs = at.get(w);
          if (xs) xs.push(i - w.length + 1); else at.set(w, [i - w.length + 1]);
        }
        if ((n += ends.length) > MAX_HITS) { // pathological input: every anchor counts as present, rules run unanchored
          for (const w of words) if (!at.has(w)) at.set(w, []);
          complete = false;
          break;
        }
      }
      return { at, complete, has: (a) => at.has(a), any: (as) => as.some((a) => at.has(a)) };
    },
  };
}
