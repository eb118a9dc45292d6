// The session daemon frames exec input and output as newline-delimited JSON over a unix
// socket. A multi-byte character split across two socket or pipe reads must arrive whole:
// decoding each chunk on its own turned it into U+FFFD replacement characters.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { airlock, makeRepo, tmp, cleanup } from '../helpers.ts';

describe('session daemon framing', () => {
  it('keeps multi-byte characters whole across reads, in output and in the command line', () => {
    const home = tmp('airlock-home-');
    const repo = makeRepo();
    try {
      const id = JSON.parse(airlock(['session', 'start', '--json', '--repo', repo], { home }).stdout).id as string;
      // 100,000 lines of "é\n" (3 bytes each): pipe reads of 64 KiB split an é in two
      const r = airlock(['exec', id, '--', 'sh', '-c', 'yes é | head -n 100000; echo "ünïcødé ✓"'], { home });
      assert.equal(r.status, 0, r.stderr);
      assert.ok(!r.stdout.includes('\ufffd'), 'a replacement character reached the output');
      const lines = r.stdout.split('\n');
      assert.equal(lines.filter((l) => l === 'é').length, 100_000);
      assert.ok(r.stdout.includes('ünïcødé ✓'));
      airlock(['session', 'stop', id], { home });
    } finally {
      cleanup(home, repo);
    }
  });
});
