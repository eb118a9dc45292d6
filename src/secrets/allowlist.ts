import { fingerprint, type AllowEntry } from './types.ts';

// Values published in vendor documentation as examples: never real, everywhere in READMEs
// and tests. Kept as fingerprints (not literals) so this file holds no token-shaped string.
const DOCUMENTED_EXAMPLES = new Map<string, string>([
  ['1a5d44a2dca19669d72edf4c4f1c27c4', 'AWS docs example access key id (…IOSFODNN7EXAMPLE)'],
  ['78314b11be2e581549ac1c4f616563fa', 'AWS docs example secret access key (…EXAMPLEKEY)'],
  ['c6ea27c534f993d31f0aef882e3d200e', 'AWS docs example access key id (…I44QH8DHBEXAMPLE)'],
  ['e21b597ba6b9cafa59d9ebc4d65c0385', 'AWS docs example secret access key (je7MtGbClwBF…)'],
  ['7f75367e7881255134e1375e723d1dea', 'jwt.io example token (John Doe, HS256)'],
  ['0011cc25eb4320717494d2703e8cba85', 'Azurite / storage emulator well-known account key'],
  ['2cafc0970149a84f3b9e62eaf169f36f', 'Stripe docs example test key'],
  ['f2d6ca16515033e5dce14eba840b979d', 'Stripe docs example test key'],
]);

// AWS documents its examples with an EXAMPLE suffix; real ids and keys never carry it.
const EXAMPLE_SHAPES = [/^(?:AKIA|ASIA)[A-Z0-9]{4,12}EXAMPLE$/, /^[A-Za-z0-9/+]{30}EXAMPLEKEY$/];

const compiled = new WeakMap<AllowEntry, RegExp>();

export function documentedExample(value: string): string | undefined {
  const why = DOCUMENTED_EXAMPLES.get(fingerprint(value));
  if (why) return why;
  return EXAMPLE_SHAPES.some((r) => r.test(value)) ? 'AWS documentation example shape' : undefined;
}

/** True when the value is a documented example or matches an allowlist entry (by
 * fingerprint prefix, or a pattern that matches the whole value). */
export function isAllowed(value: string, allowlist: readonly AllowEntry[] | undefined): boolean {
  if (documentedExample(value)) return true;
  if (!allowlist?.length) return false;
  const fp = fingerprint(value);
  for (const e of allowlist) {
    if ('fingerprint' in e) {
      const want = e.fingerprint.toLowerCase();
      if (fp.startsWith(want.slice(0, fp.length)) && want.length >= 16) return true;
    } else {
      let r = compiled.get(e);
      if (!r) { r = new RegExp(`^(?:${e.pattern})$`, 'u'); compiled.set(e, r); }
      if (r.test(value)) return true;
    }
  }
  return false;
}
