import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers.ts';

// Concurrent first sessions on a new AIRLOCK_HOME race to create the signing key. The public
// half on disk must be the public half of the private key that won, or every checkpoint the
// winner signs reads as signed by an unknown key (seen in the 4-host shared-store test).
// each process loads the module, then waits for one shared start time so the creations overlap
const LOADER = `import { loadSigningKey } from ${JSON.stringify(join(ROOT, 'src/audit/index.ts'))};
const start = Number(process.argv[2]); while (Date.now() < start) { /* barrier */ }
const k = loadSigningKey(process.argv[1]); process.stdout.write(k.keyId);`;

function load(dir: string, start: number): Promise<string> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', LOADER, dir, String(start)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.on('error', rej);
    p.on('exit', (code) => (code === 0 ? res(out) : rej(new Error(`loader exited ${code}`))));
  });
}

test('processes racing to create the signing key all sign with the key whose public half is on disk', async () => {
  for (let round = 0; round < 4; round++) {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-keyrace-'));
    try {
      const start = Date.now() + 3000; // after every process has loaded the module
      const ids = await Promise.all(Array.from({ length: 8 }, () => load(dir, start)));
      assert.equal(new Set(ids).size, 1, `every process signs with one key: ${ids.join(', ')}`);
      const priv = createPrivateKey(readFileSync(join(dir, 'audit-ed25519.pem'), 'utf8'));
      const onDisk = createPublicKey(readFileSync(join(dir, 'audit-ed25519.pub.pem'), 'utf8'));
      assert.ok(createPublicKey(priv).equals(onDisk), "the public key file is the private key's public half");
      assert.deepEqual(
        readdirSync(dir).filter((f) => f.endsWith('.tmp')),
        [],
        'no temporary file left',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});
