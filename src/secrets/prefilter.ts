// The literal-anchor prefilter: one pass over the text finds every occurrence of every
// rule's anchor literals (ASCII, case-insensitive), so a rule runs only where it can match,
// and rules whose match starts at its anchor run only at those offsets.
//
// It is an Aho–Corasick automaton compiled to a dense DFA over the anchors' characters
// (case-folded classes; every other character resets it): two typed-array loads and a sign
// test per character, hits kept as (state, offset) pairs and grouped by anchor afterwards. Hand-written because the npm packages measured on this machine over 4 MB
// of source with our ~230 anchors were far slower than the rules they would gate:
// modern-ahocorasick 3.3 ~25 MB/s (it segments graphemes), ahocorasick 1.0 ~28 MB/s,
// @monyone/aho-corasick 1.1 5–8 MB/s; a V8 regex alternation of the same literals ~25 MB/s.
// This DFA scans at 300–400 MB/s over real JS here (~2.3x the 128-column table it replaced,
// whose 690 KB did not stay in cache; bench/secrets.ts measures the whole engine).

export interface AnchorHits {
  /** Anchor (lower case) → offsets where it occurs. */
  at: Map<string, number[]>;
  /** False when the input had so many anchors that offsets were not all kept: rules then
   * run over the whole text instead of at offsets. */
  complete: boolean;
  has(anchor: string): boolean;
  any(anchors: readonly string[]): boolean;
}

export interface Prefilter {
  scan(text: string): AnchorHits;
}

const ALPHABET = 128;
/** Places where anchors end, at most: past that, offsets are not kept (`complete: false`). */
const MAX_HITS = 200_000;

interface Automaton {
  /** delta[state + class] → next state, premultiplied by the class count, negative
   * (-next - 1) when the next state emits anchors: one load and one sign test per character. */
  delta: Int32Array;
  /** Character code (any UTF-16 unit) → its class: one per character used by an anchor
   * (upper case shares its lower case's), 0 for every other character. */
  classes: Uint8Array;
  /** Anchors (indexes into `words`) that end in each state (premultiplied index / classes), its failure chain included. */
  out: number[][];
  classCount: number;
  words: string[];
}

/** Characters used by the anchors, case-folded, numbered from 1: a small table that stays
 * in cache (about 50 columns instead of 128). */
function alphabetClasses(words: string[]): { classes: Uint8Array; count: number } {
  const used = [...new Set(words.flatMap((w) => [...w].map((ch) => ch.charCodeAt(0))))].sort((a, b) => a - b);
  if (used.length > 254) throw new Error('too many distinct anchor characters');
  const classes = new Uint8Array(65536);
  used.forEach((c, i) => {
    classes[c] = i + 1;
    if (c >= 97 && c <= 122) classes[c - 32] = i + 1;
  });
  return { classes, count: used.length + 1 };
}

/**
 * The trie of the anchors over character classes, as a dense table: trie[s * count + cls] is
 * the child of state s (0: none; the root is never a child). States are numbered in
 * insertion order, at most one per anchor character.
 */
function buildTrie(
  words: string[],
  classes: Uint8Array,
  count: number,
): { trie: Int32Array; ends: Int32Array; states: number } {
  const capacity = words.reduce((n, w) => n + w.length, 1);
  const trie = new Int32Array(capacity * count);
  /** the anchor (index + 1) ending in each state, 0 for none: anchors are distinct */
  const ends = new Int32Array(capacity);
  let states = 1;
  for (let wi = 0; wi < words.length; wi++) {
    const w = words[wi]!;
    let s = 0;
    for (let k = 0; k < w.length; k++) {
      const c = w.charCodeAt(k);
      if (c >= ALPHABET) throw new Error(`anchor "${w}" is not ASCII`);
      const at = s * count + classes[c]!;
      if (trie[at] === 0) trie[at] = states++;
      s = trie[at]!;
    }
    ends[s] = wi + 1;
  }
  return { trie, ends, states };
}

function buildAutomaton(words: string[]): Automaton {
  const { classes, count } = alphabetClasses(words);
  const { trie, ends, states } = buildTrie(words, classes, count);
  // The classic complete DFA (failure links folded in), built in place over the trie, one
  // row per state in breadth-first order: a state's missing moves are its failure state's
  // (final already: it is shallower), its own children stay. Class 0 (a character no anchor
  // uses) leads every state back to the root. Entries are written final (premultiplied by
  // the class count, negative when the next state emits anchors) as each row is done. Built
  // over the ~50 classes, not 128 characters, with no Map or array per state: a CLI start
  // that redacts builds it (issue 16).
  const delta = trie.subarray(0, states * count);
  const fail = new Int32Array(states);
  const emits = new Uint8Array(states);
  const encode = (t: number) => (emits[t] ? -(t * count) - 1 : t * count);
  const queue = new Int32Array(states);
  let tail = 0;
  for (let cls = 1; cls < count; cls++) {
    const t = delta[cls]!;
    if (!t) continue;
    emits[t] = ends[t] ? 1 : 0;
    delta[cls] = encode(t);
    queue[tail++] = t;
  }
  for (let head = 0; head < tail; head++) {
    const row = queue[head]! * count;
    const failRow = fail[queue[head]!]! * count;
    for (let cls = 1; cls < count; cls++) {
      const t = delta[row + cls]!;
      const viaFail = delta[failRow + cls]!;
      if (t === 0) {
        delta[row + cls] = viaFail;
        continue;
      }
      const f = (viaFail < 0 ? -viaFail - 1 : viaFail) / count;
      fail[t] = f;
      emits[t] = ends[t] || emits[f] ? 1 : 0;
      delta[row + cls] = encode(t);
      queue[tail++] = t;
    }
  }
  return { delta, classes, out: outputs(queue, tail, ends, fail, emits), classCount: count, words };
}

/** Anchors ending in each state: its own (the longest) and its failure state's (shorter suffixes). */
function outputs(queue: Int32Array, n: number, ends: Int32Array, fail: Int32Array, emits: Uint8Array): number[][] {
  const none: number[] = [];
  const out = new Array<number[]>(fail.length).fill(none);
  for (let k = 0; k < n; k++) {
    const s = queue[k]!;
    if (!emits[s]) continue;
    const inherited = out[fail[s]!]!;
    out[s] = ends[s] ? [ends[s]! - 1, ...inherited] : inherited;
  }
  return out;
}

/** The hot loop, kept apart and minimal (V8 keeps it tight only without growth or
 * counters in it): writes (state, end offset) of every emitting step into `pairs`, returns
 * how many numbers it wrote, or -1 when `pairs` is full (pathological input). */
function runDfa(text: string, delta: Int32Array, classes: Uint8Array, pairs: Int32Array): number {
  let n = 0;
  let state = 0;
  const last = pairs.length - 1;
  for (let i = 0; i < text.length; i++) {
    let t = delta[state + classes[text.charCodeAt(i)]!]!;
    if (t < 0) {
      t = -t - 1;
      if (n >= last) return -1;
      pairs[n++] = t;
      pairs[n++] = i;
    }
    state = t;
  }
  return n;
}

/** `out` as flat typed arrays: the anchors of state s are flat[start[s]] … flat[start[s + 1] - 1]. */
function flatten(out: number[][]): { start: Int32Array; flat: Int32Array } {
  const start = new Int32Array(out.length + 1);
  out.forEach((o, s) => {
    start[s + 1] = start[s]! + o.length;
  });
  return { start, flat: Int32Array.from(out.flat()) };
}

/**
 * The prefilter of these anchors. Checked now, built on the first scan: a module that
 * defines one at import (the redactor's rules) costs nothing to a process that never scans.
 */
export function compilePrefilter(anchors: Iterable<string>): Prefilter {
  const words = [...new Set([...anchors].map((a) => a.toLowerCase()))];
  if (words.some((a) => !a)) throw new Error('empty anchor');
  const wide = words.find((w) => /[^\x00-\x7f]/.test(w));
  if (wide !== undefined) throw new Error(`anchor "${wide}" is not ASCII`);
  let scanner: Prefilter['scan'] | null = null;
  return { scan: (text) => (scanner ??= buildScanner(words))(text) };
}

function buildScanner(words: string[]): Prefilter['scan'] {
  const { delta, classes, out, classCount } = buildAutomaton(words);
  const { start, flat } = flatten(out);
  const lengths = Int32Array.from(words, (w) => w.length);
  // reused by every scan (synchronous, one thread); grown (and the text rescanned) only for
  // texts with many anchors, so an engine in every worker does not hold 1.6 MB per automaton
  let pairs = new Int32Array(8192);
  return (text: string): AnchorHits => {
    let n = runDfa(text, delta, classes, pairs);
    while (n < 0 && pairs.length < 2 * MAX_HITS) {
      pairs = new Int32Array(Math.min(2 * MAX_HITS, pairs.length * 4));
      n = runDfa(text, delta, classes, pairs);
    }
    const complete = n >= 0;
    const byWord: (number[] | undefined)[] = new Array<number[] | undefined>(words.length);
    const end = complete ? n : pairs.length;
    for (let k = 0; k < end; k += 2) {
      const s = (pairs[k]! / classCount) | 0;
      const i = pairs[k + 1]! + 1;
      for (let j = start[s]!; j < start[s + 1]!; j++) {
        const wi = flat[j]!;
        (byWord[wi] ??= []).push(i - lengths[wi]!);
      }
    }
    const at = new Map<string, number[]>();
    // every anchor counts as present when offsets were not all kept: rules then run unanchored
    for (let wi = 0; wi < words.length; wi++) if (byWord[wi] || !complete) at.set(words[wi]!, byWord[wi] ?? []);
    return { at, complete, has: (a) => at.has(a), any: (as) => as.some((a) => at.has(a)) };
  };
}
