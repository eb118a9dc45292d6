// Typosquat detection shared by the review check (new dependencies in a diff) and the
// gateway's package firewall (every package fetched): a name that folds to a popular
// name after confusable characters, or is a small edit away from one.

export type Ecosystem = 'npm' | 'pypi' | 'cargo' | 'go';

/** PEP 503 folds case and runs of -_. for PyPI; npm names compare case-insensitively here. */
export function normPackageName(eco: Ecosystem, name: string): string {
  const n = name.toLowerCase();
  return eco === 'pypi' ? n.replace(/[-_.]+/g, '-') : n;
}

/** Folds characters that look alike so "1odash", "lodash" and "l0dash" meet. */
export function foldConfusables(s: string): string {
  return s
    .toLowerCase()
    .normalize('NFKC')
    .replace(/rn/g, 'm')
    .replace(/vv/g, 'w')
    .replace(/[0]/g, 'o')
    .replace(/[1|!]/g, 'l')
    .replace(/3/g, 'e')
    .replace(/5/g, 's')
    .replace(/\$/g, 's')
    .replace(/[-_.]/g, '');
}

/** Optimal string alignment (Damerau-Levenshtein with adjacent transpositions), capped. */
export function editDistance(a: string, b: string, cap = 4): number {
  if (Math.abs(a.length - b.length) > cap) return cap + 1;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    let rowMin = Infinity;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
      rowMin = Math.min(rowMin, v);
    }
    if (rowMin > cap) return cap + 1;
  }
  return d[a.length]![b.length]!;
}

export function typosquatOf(
  eco: Ecosystem,
  name: string,
  popular: readonly string[],
  maxDistance: number,
): { target: string; distance: number } | null {
  const n = normPackageName(eco, name);
  const pop = popular.map((p) => normPackageName(eco, p));
  if (pop.includes(n)) return null;
  const f = foldConfusables(n);
  for (const p of pop) if (foldConfusables(p) === f) return { target: p, distance: 0 };
  const bare = n.replace(/^@[^/]+\//, '');
  const allowed = Math.min(maxDistance, bare.length < 5 ? 0 : bare.length < 9 ? 1 : 2);
  if (allowed <= 0) return null;
  let best: { target: string; distance: number } | null = null;
  for (const p of pop) {
    const d = editDistance(n, p, allowed);
    if (d > 0 && d <= allowed && (!best || d < best.distance)) best = { target: p, distance: d };
  }
  return best;
}
