import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { leftoverNetns, waitGone, type SessionNs } from './leftovers.ts';

// --test-global-setup: every test file appends what its sessions were to a ledger; at the
// very end of the suite nothing of any of them may remain (a process that outlived its
// test file, e.g. reparented to pid 1, shows up here).

let dir = '';

export function globalSetup(): void {
  dir = mkdtempSync(join(tmpdir(), 'airlock-ledger-'));
  process.env.AIRLOCK_TEST_LEDGER = join(dir, 'sessions.jsonl');
}

export async function globalTeardown(): Promise<void> {
  let text = '';
  try {
    text = readFileSync(process.env.AIRLOCK_TEST_LEDGER!, 'utf8');
  } catch {
    /* no session ran */
  }
  const markers: string[] = [];
  const namespaces: SessionNs[] = [];
  const netns: string[] = [];
  for (const l of text.split('\n').filter(Boolean)) {
    const e = JSON.parse(l) as { markers: string[]; namespaces: SessionNs[]; netns?: string[] };
    markers.push(...e.markers);
    namespaces.push(...e.namespaces);
    netns.push(...(e.netns ?? []));
  }
  rmSync(dir, { recursive: true, force: true });
  // network namespaces a multi-host test made for its hosts (test/store/netns.ts)
  const left = [...leftoverNetns(netns), ...(markers.length ? await waitGone({ markers, namespaces }) : [])];
  if (left.length) {
    process.stderr.write(`airlock test suite: sessions left things behind:\n${left.join('\n')}\n`);
    process.exitCode = 1;
  }
}
