import canonicalizeModule from 'canonicalize';

// The package is CommonJS exporting the function itself; its typings claim a default export.
const canonicalize = canonicalizeModule as unknown as (v: unknown) => string | undefined;

/** RFC 8785 canonical JSON: the one serialisation every hash in Airlock is taken over. */
export function canonicalJson(v: unknown): string {
  const s = canonicalize(v);
  if (s === undefined) throw new Error('value cannot be canonicalized');
  return s;
}
