// The console on host B shows host A's proposal (shared PostgreSQL store named only by the org
// policy) and a reviewer approves it there, bound to the hash the page showed; host A applies the
// approval under its own review rules when it ships, and then applies the change to a real remote.
// Its sessions, approvals and audit pages (and their JSON API) list host A's rows with their host,
// and an ask waiting on A is answered there.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser, Page } from 'playwright-core';
import { BIN, ROOT } from '../helpers.ts';
import { logId } from '../../src/audit/index.ts';
import { agentSession, runCli, sh, type Env } from '../review/fixture.ts';
import { type PgCluster, Procs, sharedStoreCluster } from '../store/pg-cluster.ts';
import { type TwoHosts, airlockAs as airlock, envOf, twoHosts } from '../store/two-hosts.ts';
import { launchBrowser, loggedInPage, startConsoleProcess, type RunningConsole } from './harness.ts';

let cluster: PgCluster;
let hosts: TwoHosts;
let a: Env;
let b: Env;
let remote: string;
let browser: Browser;
let consoleB: RunningConsole;
const procs = new Procs();

before(async () => {
  cluster = await sharedStoreCluster();
  hosts = await twoHosts(cluster);
  ({ a, b, remote } = hosts);
  agentSession(a, 's-a1', { 'src/feature.js': 'module.exports = 42;\n' });
  const p = await runCli(['propose', 's-a1', '--json'], envOf(a));
  assert.equal(p.code, 0, p.stderr);
  assert.equal(airlock(a, ['audit', 'ship']).status, 0);
  consoleB = await startConsoleProcess(b.home, ['--dev-user', 'carol@example.com', '--dev-roles', 'reviewer'], {
    AIRLOCK_ORG_POLICY: b.orgPolicy,
  });
  browser = await launchBrowser();
});
after(async () => {
  procs.killAll();
  await browser?.close();
  await consoleB?.stop();
  await hosts?.done();
  await cluster?.stop();
});

test("the console on host B lists host A's proposal and approves it; host A takes the approval and applies the change", async () => {
  const { page, problems } = await loggedInPage(browser, consoleB);
  await page.goto(`${consoleB.url}/proposals`);
  const row = page.locator('table.remote tr', { hasText: 's-a1' });
  assert.match((await row.textContent()) ?? '', /1@[0-9a-f]{8}[\s\S]*pending/);
  const hash = (
    a.store.tables.prepare('SELECT hash FROM review_proposals WHERE session = ?').get('s-a1') as { hash: string }
  ).hash;
  assert.equal(
    await row.locator('input[name=hash]').getAttribute('value'),
    hash,
    'the form carries the hash the page showed',
  );
  await Promise.all([page.waitForURL(/\/proposals$/), row.locator('button.approve').click()]);
  assert.deepEqual(problems, []);
  const audited = b.store.query({ type: 'console.proposal_approved' }).at(-1);
  assert.equal(audited?.data.by, 'carol@example.com');

  assert.equal(airlock(a, ['audit', 'ship']).status, 0);
  const approved = a.store.query({ type: 'review.approved' }).at(-1);
  assert.equal(approved?.data.by, 'carol@example.com');
  assert.equal(approved?.data.hash, hash);
  const apply = await runCli(['review', 'apply', '1', '--as', 'dave@example.com'], envOf(a));
  assert.equal(apply.code, 0, apply.stdout + apply.stderr);
  assert.ok(sh(remote, 'rev-parse', 'refs/heads/airlock/s-a1'));
});

test("an approval posted for a hash that is not the proposal's is refused", async () => {
  const { page } = await loggedInPage(browser, consoleB);
  await page.goto(`${consoleB.url}/proposals`);
  const ref = (await page.locator('table.remote tr', { hasText: 's-a1' }).locator('td').first().textContent())!;
  const r = await page.evaluate(
    async ([u, ref]) => {
      const csrf = (document.querySelector('input[name=_csrf]') as HTMLInputElement | null)?.value ?? '';
      const res = await fetch(`${u}/proposals/remote/${encodeURIComponent(ref!)}/approve`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: csrf, hash: '0'.repeat(64) }).toString(),
        redirect: 'manual',
      });
      return { status: res.status, text: await res.text() };
    },
    [consoleB.url, ref],
  );
  assert.equal(r.status, 409, r.text);
  assert.match(r.text, /not the change the reviewer saw/);
  const rows = await cluster.sql<{ n: string }>('SELECT count(*) AS n FROM airlock.review_approvals WHERE hash = $1', [
    '0'.repeat(64),
  ]);
  assert.equal(Number(rows[0]!.n), 0);
});

/** Loads `path` on B's console until `selector` shows `text` (shipping is asynchronous), bounded. */
async function untilShown(page: Page, path: string, selector: string, text: string) {
  for (let i = 0; i < 100; i++) {
    await page.goto(`${consoleB.url}${path}`);
    const row = page.locator(selector, { hasText: text });
    if ((await row.count()) > 0) return row.first();
    await sleep(200);
  }
  throw new Error(`${path}: no ${selector} with ${text}`);
}

test("the console on host B lists host A's sessions, asks and audit events with their host; Allow there releases the session waiting on A", async () => {
  const hostA = { AIRLOCK_HOME: a.home, AIRLOCK_ORG_POLICY: a.orgPolicy };
  const env: NodeJS.ProcessEnv = { ...process.env, ...hostA };
  delete env.AIRLOCK_DATABASE_URL;
  const shipA = procs.start(BIN, ['audit', 'ship', '--follow'], env);
  const waiting = procs.start(process.execPath, [join(ROOT, 'test/store/wait-ask.ts'), 'waiting-on-a'], env);
  const logA = logId(a.store);
  const { page, problems } = await loggedInPage(browser, consoleB);

  const session = await untilShown(page, '/sessions', 'table.remote tr', 's-a1');
  assert.match((await session.textContent()) ?? '', new RegExp(hostname()), 'the host column names A');
  const api = (await (await page.request.get(`${consoleB.url}/api/sessions`)).json()) as {
    id: string;
    logId: string;
    thisHost: boolean;
  }[];
  assert.ok(
    api.some((s) => s.id === 's-a1' && !s.thisHost && s.logId === logA),
    JSON.stringify(api),
  );

  const ask = await untilShown(page, '/approvals', 'table.remote tr', 'waiting-on-a');
  assert.match((await ask.textContent()) ?? '', /rm -rf build/);
  await Promise.all([page.waitForURL(/\/approvals$/), ask.locator('button.allow').click()]);
  assert.equal(await waiting.done, 0, waiting.out());
  assert.equal((JSON.parse(waiting.out()) as { by: string }).by, 'carol@example.com', 'released by the console user');
  assert.ok(
    b.store.query({ type: 'console.ask_allowed' }).some((e) => (e.data.target as { logId?: string }).logId === logA),
  );

  const audit = await untilShown(
    page,
    `/audit?host=${logA.slice(0, 12)}&type=command.*`,
    '#remote-events tr',
    'command.answer',
  );
  assert.match((await audit.textContent()) ?? '', /carol@example\.com/);
  assert.equal(await page.locator('#events tbody tr').count(), 0, "a host filter naming A leaves B's own events out");
  const events = (await (
    await page.request.get(`${consoleB.url}/api/audit?host=${logA.slice(0, 12)}&type=command.ask`)
  ).json()) as {
    type: string;
    session: string;
    thisHost: boolean;
  }[];
  assert.ok(events.some((e) => e.type === 'command.ask' && e.session === 'waiting-on-a' && !e.thisHost));
  assert.deepEqual(problems, []);
  shipA.p.kill('SIGTERM');
  assert.equal(await shipA.done, 0, shipA.out());
});
