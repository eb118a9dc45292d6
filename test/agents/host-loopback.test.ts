import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { AuditStore, type AuditEvent } from '../../src/audit/index.ts';
import { cleanup, makeRepo, tmp } from '../helpers.ts';
import { startModelServer, type ToolStep } from './model-server.ts';
import { runAirlock } from './airlock-run.ts';

// A model server on the host's own loopback (Ollama, vLLM, LiteLLM on the same machine):
// the real Codex CLI, pointed at http://127.0.0.1:PORT/v1, must reach it from inside the
// sandbox through an explicit, recorded host-loopback grant, with its key brokered; a
// loopback port the policy does not grant stays out of reach. The stand-in model server
// (model-server.ts) listens on 127.0.0.1 only.

const REAL_KEY = 'sk-test-REAL-openai-loopback-4c1d9e7a02b35f86';
const sh = (cmd: string): ToolStep => ({ name: 'exec_command', input: { cmd } });

test(
  'codex reaches a model server on the host loopback through a recorded host-loopback grant; other host-loopback ports stay closed',
  { timeout: 300_000 },
  async () => {
    let otherHits = 0;
    const other = createServer((_q, s) => {
      otherHits++;
      s.end('host secret service\n');
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const otherPort = (other.address() as { port: number }).port;
    const model = await startModelServer({
      host: '127.0.0.1',
      script: [sh('sh test.sh'), sh(`curl -sS -m 5 http://127.0.0.1:${otherPort}/ ; echo " rc=$?"`)],
      finalText: 'Done.',
    });
    const repo = makeRepo({
      'test.sh': 'echo "TESTS PASS"\n',
      'airlock.yaml': `version: 1\nagents:\n  profiles:\n    codex:\n      model:\n        baseUrl: http://127.0.0.1:${model.port}/v1\nsecrets:\n  honeytokens:\n    enabled: false\n`,
    });
    const home = tmp('airlock-loopback-home-');
    try {
      const r = await runAirlock(
        ['run', '--repo', repo, '--agent', 'codex', '--', 'run the tests'],
        { AIRLOCK_HOME: home, OPENAI_API_KEY: REAL_KEY },
        240_000,
      );
      const session = /session (ses-[a-z0-9]+)/.exec(r.stderr)?.[1];
      const results = model.lastToolResults();
      const diag = `\nstatus ${r.status}\nstderr: ${r.stderr.slice(-3000)}\nmodel requests: ${model.requests.map((q) => `${q.method} ${q.path}`).join(', ')}\ntool results: ${JSON.stringify(results).slice(0, 2000)}`;
      assert.ok(session, `no session id${diag}`);
      assert.equal(results.length, 2, `codex reached the host-loopback model for every step${diag}`);
      assert.match(results[0]!, /TESTS PASS/, diag);
      assert.doesNotMatch(results[1]!, /host secret service/, 'an ungranted host-loopback port was reached');
      assert.equal(otherHits, 0);
      assert.equal(r.status, 0, diag);
      // the key was brokered onto every model request; the agent only held a placeholder
      const auth = model.mainRequests().map((q) => String(q.headers.authorization));
      assert.ok(auth.length > 0 && auth.every((a) => a === `Bearer ${REAL_KEY}`), auth.join(', '));
      const store = new AuditStore(join(home, 'audit.db'));
      let events: AuditEvent[];
      try {
        events = store.query({ session: session! });
      } finally {
        store.close();
      }
      const grant = events.find(
        (e) => e.type === 'egress.grant' && (e.data as { via?: string }).via === 'host-loopback',
      );
      assert.ok(grant, 'the host-loopback grant is recorded');
      assert.equal((grant.data as { grant: string }).grant, `127.0.0.1:${model.port}`);
      const used = events.filter(
        (e) =>
          e.type === 'egress.request' && e.decision === 'allow' && (e.data as { port?: number }).port === model.port,
      );
      assert.ok(
        used.some(
          (e) =>
            (e.data as { protocol: string }).protocol === 'tunnel-http' &&
            (e.data as { method?: string }).method === 'POST',
        ),
        'each model request is recorded by the gateway',
      );
      assert.ok(!JSON.stringify(events).includes(REAL_KEY), 'no real key in the audit log');
    } finally {
      await model.close();
      other.close();
      cleanup(repo, home);
    }
  },
);
