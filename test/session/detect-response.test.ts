// Detection wired into a live session: an agent starting a netcat-like relay raises a
// finding; the policy's response for its severity pauses (freezes) the session until a
// human resumes it with `airlock session resume`; everything is recorded.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { AuditStore } from '../../src/audit/index.ts';
import { airlock, BIN, makeRepo, tmp, cleanup, isRoot, privilegedSkip } from '../helpers.ts';

describe(
  'anomaly response in a live session',
  { skip: privilegedSkip(!isRoot && 'the freezer needs cgroups (root)') },
  () => {
    it('a relay tool pauses the session; resume lets it finish', async () => {
      const home = tmp('airlock-home-');
      const repo = makeRepo();
      const pf = join(home, 'p.yaml');
      writeFileSync(pf, 'telemetry:\n  responses:\n    high: pause\n');
      const id = JSON.parse(airlock(['session', 'start', '--json', '--repo', repo, '--policy', pf], { home }).stdout)
        .id as string;
      const events = () => {
        const s = new AuditStore(join(home, 'audit.db'));
        try {
          return s.query({ session: id });
        } finally {
          s.close();
        }
      };
      const child = spawn(BIN, ['exec', id, '--', 'bash', '-c', 'exec -a nc sleep 1; echo unreachable'], {
        env: { ...process.env, AIRLOCK_HOME: home, NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.resume();
      child.stderr.resume();
      let paused = false;
      for (let i = 0; i < 100 && !paused; i++) {
        await new Promise((r) => setTimeout(r, 100));
        paused = events().some((e) => e.type === 'session.paused');
      }
      assert.ok(paused, 'the session was paused');
      const finding = events().find((e) => e.type === 'detect.finding');
      assert.ok(finding, 'a finding was recorded');
      assert.match(JSON.stringify(finding.data), /netcat-like/);
      // frozen: the 1-second sleep cannot finish while paused
      await new Promise((r) => setTimeout(r, 2000));
      assert.equal(child.exitCode, null, 'the command is frozen');
      const r = airlock(['session', 'resume', id], { home });
      assert.equal(r.status, 0, r.stderr);
      const code = await new Promise<number | null>((res) => child.on('close', res));
      assert.equal(code, 0);
      assert.ok(events().some((e) => e.type === 'session.resumed' || e.type === 'detect.response'));
      airlock(['session', 'stop', id], { home });
      cleanup(home, repo);
    });
  },
);
