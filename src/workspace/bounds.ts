import { AirlockError, AGENT_DATA_BOUNDS, gitBytes } from '../common/index.ts';

// Counts what a tree (or the difference of two trees) expands to BEFORE any git command
// materialises it. A tree bomb of ~100 KB (three levels of 1000 entries, each pointing at
// the same subtree) is 10⁹ paths to `read-tree` or `diff-tree -r`; here it is three tree
// reads. Trees are read level by level with `cat-file --batch` after `--batch-check` told
// their sizes, equal subtrees are counted once (with a multiplicity), and the walk stops
// as soon as the count passes the limit.

export interface TreeLimits {
  /** most paths the expansion may reach */
  maxPaths: number;
  /** most bytes of tree objects read in all */
  maxTreeBytes: number;
  /** deepest directory nesting */
  maxDepth: number;
}

export const DEFAULT_TREE_LIMITS: TreeLimits = { maxPaths: 1_000_000, maxTreeBytes: 256 * 1024 * 1024, maxDepth: 200 };

interface Entry {
  mode: string;
  oid: string;
}
type Tree = Map<string, Entry>; // key: the name's bytes as latin1 (one character per byte)

const isTree = (mode: string) => mode === '40000';

function parseTree(buf: Buffer): Tree {
  const out: Tree = new Map();
  let i = 0;
  while (i < buf.length) {
    const sp = buf.indexOf(0x20, i);
    const nul = buf.indexOf(0, sp + 1);
    if (sp < 0 || nul < 0 || nul + 21 > buf.length)
      throw new AirlockError(
        'BAD_STATE',
        'a tree object made by the agent is malformed',
        'the captured result is damaged; it cannot be reviewed',
      );
    out.set(buf.toString('latin1', sp + 1, nul), {
      mode: buf.toString('latin1', i, sp),
      oid: buf.toString('hex', nul + 1, nul + 21),
    });
    i = nul + 21;
  }
  return out;
}

/** Reads trees in one `cat-file --batch`, after checking their sizes against the budget. */
function readTrees(
  repo: string,
  oids: string[],
  cache: Map<string, Tree>,
  budget: { bytes: number },
  limits: TreeLimits,
): void {
  const need = oids.filter((o) => !cache.has(o));
  if (!need.length) return;
  const input = need.join('\n') + '\n';
  const check = gitBytes(['cat-file', '--batch-check'], { env: { GIT_DIR: repo }, input, bounds: AGENT_DATA_BOUNDS })
    .stdout.toString('latin1')
    .split('\n');
  let bytes = 0;
  for (const line of check.slice(0, need.length)) {
    const [, type, size] = line.split(' ');
    if (type !== 'tree')
      throw new AirlockError(
        'BAD_STATE',
        `tree object missing or of the wrong type (${line.slice(0, 80)})`,
        'the captured result is damaged; it cannot be reviewed',
      );
    bytes += Number(size);
  }
  budget.bytes += bytes;
  if (budget.bytes > limits.maxTreeBytes) tooLarge(`its trees hold more than ${limits.maxTreeBytes} bytes`);
  const out = gitBytes(['cat-file', '--batch'], {
    env: { GIT_DIR: repo },
    input,
    bounds: AGENT_DATA_BOUNDS,
    maxBuffer: bytes + need.length * 128 + 1024,
  }).stdout;
  let at = 0;
  for (const oid of need) {
    const nl = out.indexOf(0x0a, at);
    const size = Number(out.toString('latin1', at, nl).split(' ')[2]);
    cache.set(oid, parseTree(out.subarray(nl + 1, nl + 1 + size)));
    at = nl + 1 + size + 1;
  }
}

function tooLarge(why: string): never {
  throw new AirlockError(
    'TOO_LARGE',
    `the agent's change is too large to process: ${why}`,
    'split the work into smaller sessions; Airlock refuses rather than truncating',
  );
}

/**
 * Number of paths `git diff-tree -r a b` would list (a = null: every path of b, what
 * `read-tree b` would load). Throws TOO_LARGE past the limits, having read only trees.
 */
export function countTreePaths(
  repo: string,
  a: string | null,
  b: string | null,
  limits: TreeLimits = DEFAULT_TREE_LIMITS,
): number {
  const cache = new Map<string, Tree>();
  const budget = { bytes: 0 };
  const EMPTY: Tree = new Map();
  let level = new Map<string, { a: string | null; b: string | null; mult: number }>([[`${a}:${b}`, { a, b, mult: 1 }]]);
  let total = 0;
  let walked = 0;
  for (let depth = 0; level.size; depth++) {
    if (depth > limits.maxDepth) tooLarge(`its trees nest deeper than ${limits.maxDepth} levels`);
    readTrees(
      repo,
      [...level.values()].flatMap((p) => [p.a, p.b]).filter((x): x is string => !!x),
      cache,
      budget,
      limits,
    );
    const next = new Map<string, { a: string | null; b: string | null; mult: number }>();
    for (const p of level.values()) {
      const ta = p.a ? cache.get(p.a)! : EMPTY;
      const tb = p.b ? cache.get(p.b)! : EMPTY;
      for (const name of new Set([...ta.keys(), ...tb.keys()])) {
        const x = ta.get(name);
        const y = tb.get(name);
        if (x && y && x.oid === y.oid && x.mode === y.mode) continue;
        if ((x && !isTree(x.mode)) || (y && !isTree(y.mode))) total += p.mult;
        const sa = x && isTree(x.mode) ? x.oid : null;
        const sb = y && isTree(y.mode) ? y.oid : null;
        if (sa || sb) {
          walked += p.mult; // directories cost a traversal even when they hold nothing
          const k = `${sa}:${sb}`;
          const n = next.get(k);
          if (n) n.mult += p.mult;
          else next.set(k, { a: sa, b: sb, mult: p.mult });
        }
      }
      if (total > limits.maxPaths || walked > limits.maxPaths)
        tooLarge(`it expands to more than ${limits.maxPaths} ${total > limits.maxPaths ? 'paths' : 'directories'}`);
    }
    level = next;
  }
  return total;
}
