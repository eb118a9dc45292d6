import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

/** Short, sortable by start time, unguessable: ses-<time base32><random>. */
export function newSessionId(now = Date.now()): string {
  let t = '';
  let n = Math.floor(now / 1000);
  for (let i = 0; i < 7; i++) {
    t = ALPHABET[n % 32] + t;
    n = Math.floor(n / 32);
  }
  const r = randomBytes(5);
  let s = '';
  for (const b of r) s += ALPHABET[b % 32];
  return `ses-${t}${s}`;
}

export const SESSION_ID = /^ses-[0-9a-z]{12}$/;
