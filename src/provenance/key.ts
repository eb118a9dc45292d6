import { createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AirlockError } from '../common/index.ts';
import { loadSigningKey, readSigningKey, type KeyFiles, type SigningKey } from '../audit/index.ts';

// The provenance signing key is the organisation's: a file its policy names (provenance.key)
// or the operator names (AIRLOCK_PROVENANCE_KEY), owner-only, or one Airlock creates under
// AIRLOCK_HOME/keys (0600, like the audit key).
// Neither is ever mounted into a sandbox, and apply refuses to run inside one.

export const PROVENANCE_KEY_FILES: KeyFiles = {
  key: 'provenance-ed25519.pem',
  pub: 'provenance-ed25519.pub.pem',
  what: 'provenance signing key',
};

/** The signing key: the one the org policy names (provenance.key), else AIRLOCK_PROVENANCE_KEY, else Airlock's own. */
export function loadProvenanceKey(keyDir: string, env: NodeJS.ProcessEnv = process.env, orgKey?: string): SigningKey {
  if (orgKey) return readSigningKey(orgKey, 'provenance signing key (org policy provenance.key)');
  const file = env.AIRLOCK_PROVENANCE_KEY;
  return file
    ? readSigningKey(file, `provenance signing key (AIRLOCK_PROVENANCE_KEY)`)
    : loadSigningKey(keyDir, PROVENANCE_KEY_FILES);
}

/** The public key a verifier uses: a PEM file, else the one Airlock keeps next to its private key. */
export function loadProvenancePublicKey(file: string | undefined, keyDir: string): KeyObject {
  const path = file ?? join(keyDir, PROVENANCE_KEY_FILES.pub);
  if (!existsSync(path)) {
    throw new AirlockError(
      'USAGE',
      file ? `public key file not found: ${file}` : `no provenance public key in ${keyDir}`,
      'pass --key FILE with the output of `airlock provenance pubkey` from the host that applied the change',
    );
  }
  try {
    return createPublicKey(readFileSync(path, 'utf8'));
  } catch {
    throw new AirlockError(
      'USAGE',
      `${path} is not a PEM public key`,
      'pass the output of `airlock provenance pubkey`',
    );
  }
}
