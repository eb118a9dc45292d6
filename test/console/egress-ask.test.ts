// Egress `ask` at run time (issue 17): a policy rule asks for a destination; the agent's
// connection, made from inside a real bubblewrap session through the gateway, waits while
// a human answers in the console (Approvals page, in Chromium) or with `airlock
// approvals`: allowed for the session, the destination is granted for the rest of it;
// allowed once, only that connection goes through and the next one asks again; proposed,
// the connection is refused and a proposal adds exactly that host to airlock.yaml.
// The new actions need the CSRF token and the answer permission (an auditor gets 403).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { git } from '../../src/common/index.ts';
import { getProposal } from '../../src/review/index.ts';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { Session } from '../../src/session/index.ts';
import { makeRepo, tmp, cleanup, airlock } from '../helpers.ts';
import {
  startConsoleProcess,
  launchBrowser,
  loggedInPage,
  screenshotDir,
  dropScreenshots,
  type RunningConsole,
} from './harness.ts';

const SHOTS = screenshotDir();

let home: string;
let repo: string;
let server: Server;
let port = 0;
let denied: Server;
let deniedPort = 0;
let onceServer: Server;
let oncePort = 0;
let proposeServer: Server;
let proposePort = 0;
const hits: string[] = [];
let session: Session;
let browser: Browser;
let reviewer: RunningConsole;
let auditor: RunningConsole;

async function listen(tag: string): Promise<[Server, number]> {
  const s = createServer((req, res) => {
    hits.push(`${tag} ${req.url}`);
    res.end(`hello from ${tag}\n`);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return [s, (s.address() as { port: number }).port];
}

async function waitForPendingAsk(what: string): Promise<number> {
  for (let i = 0; i < 300; i++) {
    const asks = JSON.parse(airlock(['approvals', '--json'], { home }).stdout || '[]') as {
      id: number;
      command: string[];
    }[];
    const a = asks.find((x) => x.command.join(' ').includes(what));
    if (a) return a.id;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no pending ask for ${what}`);
}

describe('console: egress ask at run time', () => {
  before(async () => {
    home = tmp('airlock-home-');
    repo = makeRepo();
    server = createServer((req, res) => {
      hits.push(`${req.method} ${req.url}`);
      res.end('hello from the asked host\n');
    });
    denied = createServer((req, res) => {
      hits.push(`DENIED ${req.url}`);
      res.end('should never be reached\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => denied.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
    deniedPort = (denied.address() as { port: number }).port;
    [onceServer, oncePort] = await listen('ONCE');
    [proposeServer, proposePort] = await listen('PROPOSE');
    const ports = `[${port}, ${deniedPort}, ${oncePort}, ${proposePort}]`;
    const pf = join(home, 'policy.yaml');
    writeFileSync(
      pf,
      `egress:\n  askTimeoutSeconds: 120\n  ask:\n    - id: dev-api\n      host: localhost\n      ports: ${ports}\n      schemes: [http]\n      reason: a local dev API\n` +
        `  allowCidrs:\n    - id: loopback-dev\n      cidr: 127.0.0.1/32\n      ports: ${ports}\ncommands:\n  askTimeoutSeconds: 120\n`,
    );
    session = await Session.open({ repo, home, policyFile: pf, layers: { commands: null } });
    reviewer = await startConsoleProcess(home, ['--dev-user', 'rita@example.com', '--dev-roles', 'reviewer']);
    auditor = await startConsoleProcess(home, ['--dev-user', 'audrey@example.com', '--dev-roles', 'auditor']);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await reviewer?.stop();
    await auditor?.stop();
    await session?.stop('test');
    server?.close();
    denied?.close();
    onceServer?.close();
    proposeServer?.close();
    cleanup(home, repo);
    dropScreenshots(SHOTS);
  });

  it("the agent's request waits; the reviewer allows it for the session in the console; it goes through, and later ones need no answer", async () => {
    const { page, problems } = await loggedInPage(browser, reviewer);
    await page.goto(`${reviewer.url}/approvals`);
    const curl = (path: string) =>
      session.run(['curl', '-sS', '-m', '100', '--noproxy', '', `http://localhost:${port}${path}`]);
    const waiting = curl('/first');
    await page
      .locator('tr[data-ask] code.command', { hasText: `localhost:${port}` })
      .first()
      .waitFor({ timeout: 60_000 });
    assert.equal(hits.length, 0, 'nothing reached the destination before the answer');
    await page.screenshot({ path: join(SHOTS, 'egress-ask.png') });
    await page.click('button.allow-session');
    const r = await waiting;
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'hello from the asked host\n');
    const again = await curl('/second');
    assert.equal(again.stdout, 'hello from the asked host\n', 'granted for the session');
    assert.deepEqual(hits, ['GET /first', 'GET /second']);
    const ev = session.store.query({ session: session.id });
    assert.ok(
      ev.some(
        (e) =>
          e.type === 'egress.ask_answered' &&
          e.data.by === 'rita@example.com' &&
          e.rule === 'egress.ask.dev-api' &&
          e.data.scope === 'session',
      ),
    );
    assert.ok(
      ev.some((e) => e.type === 'command.answer' && e.data.by === 'rita@example.com' && e.data.scope === 'session'),
      'the answer is audited with its scope',
    );
    assert.ok(
      session.store
        .query({ type: 'console.ask_allowed' })
        .some((e) => e.data.by === 'rita@example.com' && (e.data.target as { scope?: string }).scope === 'session'),
    );
    assert.ok(
      ev.some((e) => e.type === 'egress.request' && e.decision === 'allow' && e.rule === 'egress.ask.dev-api.answered'),
      'the allowed request names the answered ask',
    );
    assert.deepEqual(problems, []);
  });

  it("`airlock approvals deny N` answers a destination ask from the CLI, after the gateway's handshake timeout: the waiting request is refused with the rule", async () => {
    const waiting = session.run([
      'curl',
      '-s',
      '-m',
      '100',
      '--noproxy',
      '',
      '-o',
      '/dev/null',
      '-D',
      '-',
      `http://localhost:${deniedPort}/x`,
    ]);
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

  const curlTo = (p: number, path: string) =>
    session.run([
      'curl',
      '-sS',
      '-m',
      '100',
      '--noproxy',
      '',
      '-o',
      '-',
      '-w',
      '\n%{http_code}',
      `http://localhost:${p}${path}`,
    ]);

  it('"Allow once" in the console lets exactly that connection through; the next one asks again', async () => {
    const { page, problems } = await loggedInPage(browser, reviewer);
    await page.goto(`${reviewer.url}/approvals`);
    const first = curlTo(oncePort, '/one');
    await page
      .locator('tr[data-ask] code.command', { hasText: `localhost:${oncePort}` })
      .first()
      .waitFor({ timeout: 60_000 });
    await page.screenshot({ path: join(SHOTS, 'egress-ask-buttons.png') });
    await page.click('button.allow');
    assert.match((await first).stdout, /hello from ONCE\n\n200$/);
    const second = curlTo(oncePort, '/two');
    const id = await waitForPendingAsk(`localhost:${oncePort}`);
    const d = airlock(['approvals', 'deny', String(id), '--as', 'sec@example.com'], { home });
    assert.equal(d.status, 0, d.stderr);
    assert.match((await second).stdout, /403$/);
    assert.deepEqual(
      hits.filter((h) => h.startsWith('ONCE')),
      ['ONCE /one'],
    );
    const ev = session.store.query({ session: session.id });
    assert.ok(
      ev.some((e) => e.type === 'egress.ask_answered' && e.data.scope === 'once' && e.data.by === 'rita@example.com'),
    );
    assert.ok(
      ev.some((e) => e.type === 'egress.request' && e.decision === 'allow' && e.rule === 'egress.ask.dev-api.once'),
    );
    assert.deepEqual(problems, []);
  });

  it("`airlock approvals allow N --once` is the CLI's same verb; --once with --session is refused", async () => {
    const waiting = curlTo(oncePort, '/three');
    const id = await waitForPendingAsk(`localhost:${oncePort}`);
    const both = airlock(['approvals', 'allow', String(id), '--once', '--session'], { home });
    assert.notEqual(both.status, 0);
    assert.match(both.stderr, /--once and --session exclude each other/);
    const a = airlock(['approvals', 'allow', String(id), '--once', '--as', 'sec@example.com'], { home });
    assert.equal(a.status, 0, a.stderr);
    assert.match(a.stdout, /allowed once by sec@example\.com/);
    assert.match((await waiting).stdout, /hello from ONCE\n\n200$/);
  });

  it('the new actions need the CSRF token and the answer permission', async () => {
    const waiting = curlTo(proposePort, '/csrf');
    const id = await waitForPendingAsk(`localhost:${proposePort}`);
    const { page } = await loggedInPage(browser, reviewer);
    await page.goto(`${reviewer.url}/approvals`);
    for (const action of ['allow-session', 'propose']) {
      const missing = await page.request.post(`${reviewer.url}/approvals/${id}/${action}`, { form: {} });
      assert.equal(missing.status(), 403, `${action} without the CSRF token`);
    }
    const { page: ap } = await loggedInPage(browser, auditor);
    await ap.goto(`${auditor.url}/approvals`);
    const csrf = await ap.locator('meta[name="csrf-token"]').getAttribute('content');
    for (const action of ['allow', 'allow-session', 'propose']) {
      const r = await ap.request.post(`${auditor.url}/approvals/${id}/${action}`, { form: { _csrf: csrf! } });
      assert.equal(r.status(), 403, `an auditor may not ${action}`);
    }
    assert.equal(
      JSON.parse(airlock(['approvals', '--json'], { home }).stdout).some((a: { id: number }) => a.id === id),
      true,
      'still waiting',
    );
    assert.equal(airlock(['approvals', 'deny', String(id), '--as', 'sec@example.com'], { home }).status, 0);
    assert.match((await waiting).stdout, /403$/);
  });

  it('"Propose policy change" refuses the connection and makes a proposal whose diff adds exactly that host and port', async () => {
    const { page, problems } = await loggedInPage(browser, reviewer);
    await page.goto(`${reviewer.url}/approvals`);
    const waiting = curlTo(proposePort, '/propose');
    await page
      .locator('tr[data-ask] code.command', { hasText: `localhost:${proposePort}` })
      .first()
      .waitFor({ timeout: 60_000 });
    await page.click('button.propose');
    await page.waitForURL(/\/proposals\/\d+$/, { timeout: 120_000 });
    assert.match((await waiting).stdout, /403$/, 'the connection itself is refused');
    assert.ok(!hits.some((h) => h.startsWith('PROPOSE')), 'the proposed destination was never reached');
    const proposalId = Number(/\/proposals\/(\d+)$/.exec(page.url())![1]);
    const p = getProposal(session.store, proposalId)!;
    const result = join(home, 'sessions', p.session, 'result.git');
    const diff = git(['diff', '--name-only', 'refs/airlock/base', 'refs/airlock/head'], {
      env: { GIT_DIR: result },
    }).stdout.trim();
    assert.equal(diff, 'airlock.yaml');
    const policy = parseYaml(git(['show', 'refs/airlock/head:airlock.yaml'], { env: { GIT_DIR: result } }).stdout) as {
      egress: { allow: { host: string; ports: number[]; id: string }[] };
    };
    assert.deepEqual(
      policy.egress.allow.map((r) => [r.host, r.ports]),
      [['localhost', [proposePort]]],
    );
    const ev = session.store.query({ session: session.id, type: 'egress.ask_proposed' });
    assert.equal(ev.length, 1);
    assert.equal(ev[0]!.data.proposal, proposalId);
    assert.equal(ev[0]!.data.by, 'rita@example.com');
    assert.equal(ev[0]!.data.connection, 'denied');
    assert.ok(session.store.query({ type: 'console.ask_proposed' }).some((e) => e.data.by === 'rita@example.com'));
    await page.screenshot({ path: join(SHOTS, 'egress-ask-proposal.png') });
    assert.deepEqual(problems, []);
  });

  it('`airlock approvals propose N --once` proposes the change and lets this one connection through', async () => {
    const waiting = curlTo(proposePort, '/propose-once');
    const id = await waitForPendingAsk(`localhost:${proposePort}`);
    const r = airlock(['approvals', 'propose', String(id), '--once', '--as', 'sec@example.com', '--json'], { home });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      proposal: number;
      host: string;
      port: number;
      ask: { status: string; scope: string };
    };
    assert.deepEqual([out.host, out.port, out.ask.status, out.ask.scope], ['localhost', proposePort, 'allow', 'once']);
    assert.match((await waiting).stdout, /hello from PROPOSE\n\n200$/);
    assert.ok(getProposal(session.store, out.proposal));
  });
});
