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
  ['2f21fd9c81678e396751af8b2472e2bd', "Yarn Berry's public Algolia search-only key (yarnpkg/berry#6201)"],
  // Example keys in the Firebase Android SDK's public sources (the list gitleaks allows).
  ['2037abcaffb2b77785da716cf7ccff4f', 'Firebase Android SDK example API key (…o6YyIs)'],
  ['3f370c9dd8225c63b5c77de1f785edc9', 'Firebase Android SDK example API key (…e8agEM)'],
  ['e4a5542bb7fd7b67e943c71ad29c34b5', 'Firebase Android SDK example API key (…AODrlU)'],
  ['a19f89ab3555eac10c40741f6df79ecf', 'Firebase Android SDK example API key (…znhrh0)'],
  ['0b476bdf9acf2123d547b5ae76f1e598', 'Firebase Android SDK example API key (…ixbX4A)'],
  ['eb540d2b6ee2a0a47c5779bc8a014178', 'Firebase Android SDK example API key (…UPwX7c)'],
  ['37f8f09bdf12c2f2eae4ead7273a62dd', 'Firebase Android SDK example API key (…tWmLd4)'],
  ['8731261cb72d86267a32a532ebd3df42', 'Firebase Android SDK example API key (…XeDQgY)'],
  ['49f777db995e8260da7ca9ffdf0c08d6', 'Firebase Android SDK example API key (…_p4wtM)'],
  ['27a9a42931dff7eb2f8434e20a9bce97', 'Firebase Android SDK example API key (…dnP5sQ)'],
  ['dc0fcf046c61640cbd1e8b999ada3262', 'Firebase Android SDK example API key (…q1cS7g)'],
  ['4c98242dcadc8b29005c6b4aad526552', 'Firebase Android SDK example API key (…zAvvuU)'],
  ['ea9bb1082cf95663f5faca23b8b15ef2', 'Firebase Android SDK example API key (…prNXsw)'],
  ['3a8b61d0f636b007840c0d40ba12bcf4', 'Firebase Android SDK example API key (…i4FmqE)'],
  ['a6c814bc555ae62c7bd8b58ec07bf559', 'Firebase Android SDK example API key (…_n0nvY)'],
]);

// AWS documents its examples with an EXAMPLE suffix; real ids and keys never carry it.
const EXAMPLE_SHAPES = [/^(?:AKIA|ASIA)[A-Z0-9]{4,12}EXAMPLE$/, /^[A-Za-z0-9/+]{30}EXAMPLEKEY$/];

const compiled = new WeakMap<AllowEntry, RegExp>();

export function documentedExample(value: string): string | undefined {
  const why = DOCUMENTED_EXAMPLES.get(fingerprint(value));
  if (why) return why;
  return EXAMPLE_SHAPES.some((r) => r.test(value)) ? 'AWS documentation example shape' : undefined;
}

/** Why the value is allowed (a documented example, or the allowlist entry that matches it
 * by fingerprint prefix or by a pattern over the whole value), or undefined. */
export function allowedReason(value: string, allowlist: readonly AllowEntry[] | undefined): string | undefined {
  const doc = documentedExample(value);
  if (doc) return `documented example: ${doc}`;
  if (!allowlist?.length) return undefined;
  const fp = fingerprint(value);
  for (const e of allowlist) {
    if ('fingerprint' in e) {
      const want = e.fingerprint.toLowerCase();
      if (fp.startsWith(want.slice(0, fp.length)) && want.length >= 16)
        return `allowlisted by fingerprint ${want.slice(0, 16)}… (${e.reason})`;
    } else {
      let r = compiled.get(e);
      if (!r) {
        r = new RegExp(`^(?:${e.pattern})$`, 'u');
        compiled.set(e, r);
      }
      if (r.test(value)) return `allowlisted by pattern (${e.reason})`;
    }
  }
  return undefined;
}

/** True when the value is a documented example or matches an allowlist entry. */
export function isAllowed(value: string, allowlist: readonly AllowEntry[] | undefined): boolean {
  return allowedReason(value, allowlist) !== undefined;
}
