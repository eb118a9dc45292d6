// The console on host B shows host A's proposal (shared PostgreSQL store named only by the org
// policy) and a reviewer approves it there, bound to the hash the page showed; host A applies the
// approval under its own review rules when it ships, and then applies the change to a real remote.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { agentSession, runCli, sh, type Env } from '../review/fixture.ts';
import { type PgCluster, sharedStoreCluster } from '../store/pg-cluster.ts';
import { type TwoHosts, airlockAs as airlock, envOf, twoHosts } from '../store/two-hosts.ts';
import { launchBrowser, loggedInPage, startConsoleProcess, type RunningConsole } from './harness.ts';

let cluster: PgCluster;
let hosts: TwoHosts;
let a: Env;
let b: Env;
let remote: string;
let browser: Browser;
let consoleB: RunningConsole;

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
