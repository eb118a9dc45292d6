// Egress `ask` at run time (issue 17): a policy rule asks for a destination; the agent's
// connection, made from inside a real bubblewrap session through the gateway, waits while
// a human answers in the console (Approvals page, in Chromium) or with `airlock
// approvals deny N`; allowed, the destination is granted for the rest of the session.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { Session } from '../../src/session/index.ts';
import { makeRepo, tmp, cleanup, airlock } from '../helpers.ts';
import { startConsoleProcess, launchBrowser, loggedInPage, screenshotDir, dropScreenshots, type RunningConsole } from './harness.ts';

const SHOTS = screenshotDir();

let home: string; let repo: string; let server: Server; let port = 0; let denied: Server; let deniedPort = 0;
const hits: string[] = [];
let session: Session;
let browser: Browser;
let reviewer: RunningConsole;

async function waitForPendingAsk(what: string): Promise<number> {
  for (let i = 0; i < 300; i++) {
    const asks = JSON.parse(airlock(['approvals', '--json'], { home }).stdout || '[]') as { id: number; command: string[] }[];
    const a = asks.find((x) => x.command.join(' ').includes(what));
    if (a) return a.id;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no pending ask for ${what}`);
}

describe('console: egress ask at run time', () => {
  before(async () => {
    home = tmp('airlock-home-'); repo = makeRepo();
    server = createServer((req, res) => { hits.push(`${req.method} ${req.url}`); res.end('hello from the asked host\n'); });
    denied = createServer((req, res) => { hits.push(`DENIED ${req.url}`); res.end('should never be reached\n'); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => denied.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
    deniedPort = (denied.address() as { port: number }).port;
    const pf = join(home, 'policy.yaml');
    writeFileSync(pf, `egress:\n  askTimeoutSeconds: 120\n  ask:\n    - id: dev-api\n      host: localhost\n      ports: [${port}, ${deniedPort}]\n      schemes: [http]\n      reason: a local dev API\n`
      + `  allowCidrs:\n    - id: loopback-dev\n      cidr: 127.0.0.1/32\n      ports: [${port}, ${deniedPort}]\ncommands:\n  askTimeoutSeconds: 120\n`);
    session = await Session.open({ repo, home, policyFile: pf, layers: { commands: null } });
    reviewer = await startConsoleProcess(home, ['--dev-user', 'rita@example.com', '--dev-roles', 'reviewer']);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await reviewer?.stop();
    await session?.stop('test');
    server?.close(); denied?.close();
    cleanup(home, repo);
    dropScreenshots(SHOTS);
  });

  it('the agent\'s request waits; the reviewer allows it in the console; it goes through, and later ones need no answer', async () => {
    const { page, problems } = await loggedInPage(browser, reviewer);
    await page.goto(`${reviewer.url}/approvals`);
    const curl = (path: string) => session.run(['curl', '-sS', '-m', '100', '--noproxy', '', `http://localhost:${port}${path}`]);
    const waiting = curl('/first');
    await page.locator('tr[data-ask] code.command', { hasText: `localhost:${port}` }).first().waitFor({ timeout: 60_000 });
    assert.equal(hits.length, 0, 'nothing reached the destination before the answer');
    await page.screenshot({ path: join(SHOTS, 'egress-ask.png') });
    await page.click('button.allow');
    const r = await waiting;
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'hello from the asked host\n');
    const again = await curl('/second');
    assert.equal(again.stdout, 'hello from the asked host\n', 'granted for the session');
    assert.deepEqual(hits, ['GET /first', 'GET /second']);
    const ev = session.store.query({ session: session.id });
    assert.ok(ev.some((e) => e.type === 'egress.ask_answered' && e.data.by === 'rita@example.com' && e.rule === 'egress.ask.dev-api'));
    assert.ok(ev.some((e) => e.type === 'egress.request' && e.decision === 'allow' && e.rule === 'egress.ask.dev-api.answered'), 'the allowed request names the answered ask');
    assert.deepEqual(problems, []);
  });

  it('`airlock approvals deny N` answers a destination ask from the CLI, after the gateway\'s handshake timeout: the waiting request is refused with the rule', async () => {
    const waiting = session.run(['curl', '-s', '-m', '100', '--noproxy', '', '-o', '/dev/null', '-D', '-', `http://localhost:${deniedPort}/x`]);
    const id = await waitForPendingAsk(`localhost:${deniedPort}`);
    // the held connection outlives the gateway's handshake timer (10 s): the answer, not a timer, ends it
    await new Promise((res) => setTimeout(res, 11_000));
    const d = airlock(['approvals', 'deny', String(id), '--as', 'sec@example.com'], { home });
    assert.equal(d.status, 0, d.stderr);
    const r = await waiting;
    assert.match(r.stdout, /HTTP\/1\.1 403/);
    assert.match(r.stdout, /x-airlock-rule: egress\.ask\.dev-api\r/i);
    assert.ok(!hits.some((h) => h.startsWith('DENIED')), 'the denied destination was never reached');
  });
});
