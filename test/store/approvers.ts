import { join } from 'node:path';
import { loadSigningKey } from '../../src/audit/index.ts';

// The org policy's telemetry.approverKeys for a test: the audit keys of the hosts whose
// decisions (answers to asks, review approvals) other hosts may apply. A host not listed
// here still signs what it records; its rows are refused.

/** YAML lines to put under `telemetry:` trusting each home's audit key (created if missing). */
export function approverKeysYaml(hosts: { name: string; home: string }[]): string {
  const entries = hosts.map((h) => {
    const pem = loadSigningKey(join(h.home, 'keys'))
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString()
      .trim();
    return `    - name: ${h.name}\n      publicKey: |\n${pem
      .split('\n')
      .map((l) => `        ${l}`)
      .join('\n')}\n`;
  });
  return `  approverKeys:\n${entries.join('')}`;
}
