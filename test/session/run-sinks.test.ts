// `airlock run` with an org SIEM sink, as a user runs it. The SIEM sees the end of the
// session (command.exit, session.stop, audit.checkpoint) when run returns, without anyone
// running `sinks flush`; and a SIEM that stalls never holds run past its bounded flush:
// the events stay spooled and a later deliverer sends them. The receiver is a small local
// webhook (no SIEM collector can be installed here).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditStore } from '../../src/audit/index.ts';
import { BIN, makeRepo, tmp, cleanup } from '../helpers.ts';

let home: string;
let repo: string;
let srv: Server;
let url: string;
let mode: 'ok' | 'stall' = 'ok';
const got: { id: string; type: string; session: string | null; data: Record<string, unknown> }[] = [];
const held = new Set<ServerResponse>();

describe('airlock run with a SIEM sink', () => {
  before(async () => {
    home = tmp('airlock-runsinks-');
    repo = makeRepo({ 'a.txt': 'a\n' });
    srv = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (b: Buffer) => chunks.push(b));
      req.on('end', () => {
        if (mode === 'stall') {
          held.add(res);
          return;
        }
        got.push(...(JSON.parse(Buffer.concat(chunks).toString()) as { events: typeof got }).events);
        res.end('{}');
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(srv.address() as { port: number }).port}/hook`;
    writeFileSync(
      join(home, 'org.yaml'),
      `telemetry:\n  sinks:\n    - { type: webhook, name: soc, url: "${url}", secretEnv: AIRLOCK_SINK_HOOK }\n`,
    );
  });
  after(async () => {
    for (const h of held) h.destroy();
    await new Promise((r) => {
      srv.closeAllConnections();
      srv.close(r);
    });
    cleanup(home, repo);
  });
  const env = () => ({ AIRLOCK_ORG_POLICY: join(home, 'org.yaml'), AIRLOCK_SINK_HOOK: 'k' });
  /** The CLI as a child process, without blocking this process (the receiver runs in it). */
  const run = async (
    args: string[],
    cwd: string,
  ): Promise<{ status: number | null | 'hung'; stdout: string; stderr: string }> => {
    const child = spawn(BIN, args, {
      cwd,
      env: { ...process.env, AIRLOCK_HOME: home, NO_COLOR: '1', ...env() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr!.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    // the client's own receiver timeout is 30 s: a run that waited for it counts as hung
    const status = await new Promise<number | null | 'hung'>((r) => {
      const t = setTimeout(() => {
        child.kill('SIGKILL');
        r('hung');
      }, 20_000);
      child.once('exit', (c) => {
        clearTimeout(t);
        r(c);
      });
    });
    return { status, stdout, stderr };
  };

  it('the SIEM has the whole session, its end included, when run returns', async () => {
    const r = await run(['run', '--', 'sh', '-c', 'exit 3'], repo);
    assert.equal(r.status, 3, r.stderr);
    const id = /session (ses-[0-9a-z]{12})/.exec(r.stderr)![1]!;
    const types = got.filter((e) => e.session === id).map((e) => e.type);
    for (const t of ['session.start', 'command.exit', 'session.result', 'session.stop'])
      assert.ok(types.includes(t), `${t} delivered: ${types.join(', ')}`);
    assert.ok(
      got.some((e) => e.type === 'audit.checkpoint' && String(e.data.reason).includes(id)),
      'the session-end checkpoint delivered',
    );
    const st = new AuditStore(join(home, 'audit.db'));
    try {
      const lag =
        (st.tables.prepare('SELECT MAX(seq) AS h FROM events').get() as { h: number }).h -
        (st.tables.prepare("SELECT cursor FROM sink_state WHERE name = 'soc'").get() as { cursor: number }).cursor;
      assert.equal(lag, 0, 'nothing left undelivered');
    } finally {
      st.close();
    }
  });

  it('a stalled SIEM does not hold run: it exits while the SIEM still stalls, and a later flush delivers what it could not', async () => {
    mode = 'stall';
    const r = await run(['run', '--', 'true'], repo);
    assert.equal(r.status, 0, `run exited on its own while the SIEM stalled: ${r.stderr}`);
    assert.ok(held.size > 0, 'the SIEM was stalling a request');
    const id = /session (ses-[0-9a-z]{12})/.exec(r.stderr)![1]!;
    mode = 'ok';
    const f = await run(['sinks', 'flush', '--json'], home);
    assert.equal(f.status, 0, f.stdout + f.stderr);
    assert.ok(
      got.some((e) => e.session === id && e.type === 'session.stop'),
      'spooled, then delivered',
    );
  });
});
