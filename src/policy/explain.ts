import type { LoadedPolicy } from './load.ts';

// The effective policy as leaves (dotted key = value) with where each value came from:
// what `airlock policy explain` prints and the console's Policy page shows.

export interface ExplainedValue {
  key: string;
  value: unknown;
  from: string;
}

function flatten(o: unknown, prefix = '', out: [string, unknown][] = []): [string, unknown][] {
  if (o && typeof o === 'object' && !Array.isArray(o) && Object.keys(o).length) {
    for (const [k, v] of Object.entries(o)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out.push([prefix, o]);
  return out;
}

export function explainPolicy(r: Pick<LoadedPolicy, 'policy' | 'provenance'>): ExplainedValue[] {
  return flatten(r.policy).map(([key, value]) => ({
    key,
    value,
    from: r.provenance[key] ?? Object.entries(r.provenance).find(([p]) => key.startsWith(p + '.'))?.[1] ?? 'default',
  }));
}
