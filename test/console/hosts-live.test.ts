// The console's live views over every host (shared PostgreSQL store named by the org policy):
// host B's console, left open in a real browser, follows host A's work by itself — /approvals
// reloads when A's ask appears and when it is answered, /sessions when A's session starts and
// ends — through the console's one LISTEN on the store; A's session has a read-only timeline on
// B, its hostile text inert, new events streaming in; and a PostgreSQL restart while the page is
// open is survived: the page says the store is unreachable, then shows what A wrote meanwhile.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { BIN, ROOT } from '../helpers.ts';
import { logId } from '../../src/audit/index.ts';
import type { Env } from '../review/fixture.ts';
import { type PgCluster, Procs, type Proc, sharedStoreCluster } from '../store/pg-cluster.ts';
import { type TwoHosts, airlockAs, twoHosts } from '../store/two-hosts.ts';
import { launchBrowser, loggedInPage, startConsoleProcess, type RunningConsole } from './harness.ts';

let cluster: PgCluster;
let hosts: TwoHosts;
let a: Env;
let b: Env;
let browser: Browser;
let consoleB: RunningConsole;
let shipA: Proc;
const procs = new Procs();
const LIVE = { timeout: 60_000 };

/** A's environment for its own processes: its home and org policy, no AIRLOCK_DATABASE_URL. */
function envA(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, AIRLOCK_HOME: a.home, AIRLOCK_ORG_POLICY: a.orgPolicy };
  delete env.AIRLOCK_DATABASE_URL;
  return env;
}

before(async () => {
  cluster = await sharedStoreCluster();
  hosts = await twoHosts(cluster);
  ({ a, b } = hosts);
  shipA = procs.start(BIN, ['audit', 'ship', '--follow'], envA());
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

/** B's console open on `path`; `window.__opened` marks this load (a reload clears it). */
async function openOnB(path: string): Promise<{ page: Page; problems: string[] }> {
  const opened = await loggedInPage(browser, consoleB);
  await opened.page.goto(`${consoleB.url}${path}`);
  return opened;
}

const startSession = (session: string, command: string[]) =>
  a.store.append({ type: 'session.start', session, data: { command, agent: 'codex' } });

test("B's /approvals reloads by itself when A's ask appears and when A answers it", async () => {
  const { page, problems } = await openOnB('/approvals');
  const row = page.locator('table.remote tr', { hasText: 'live-ask-a' });
  assert.equal(await row.count(), 0);
  const waiting = procs.start(process.execPath, [join(ROOT, 'test/store/wait-ask.ts'), 'live-ask-a'], envA());
  await row.waitFor(LIVE); // no navigation here: the page reloaded itself
  assert.match((await row.textContent()) ?? '', /rm -rf build/);
  const id = await waitForLocalAsk(a, 'live-ask-a');
  const answer = airlockAs(a, ['approvals', 'allow', String(id), '--as', 'dave@example.com']);
  assert.equal(answer.status, 0, answer.stdout + answer.stderr);
  assert.equal(await waiting.done, 0, waiting.out());
  await row.waitFor({ state: 'detached', ...LIVE }); // answered on A, shipped, gone from B's page
  assert.deepEqual(problems, []);
  await page.close();
});

/** Waits (bounded) until A's shipper put `n` events of `session` into the shared store. */
async function shipped(session: string, n: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const rows = await cluster.sql<{ n: string }>('SELECT count(*) AS n FROM airlock.events WHERE session = $1', [
      session,
    ]);
    if (Number(rows[0]!.n) >= n) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${session}: not shipped`);
}

/** The id of the ask the session `session` waits on in A's local queue (bounded wait). */
async function waitForLocalAsk(h: Env, session: string): Promise<number> {
  for (let i = 0; i < 300; i++) {
    const ask = h.store.query({ session, type: 'command.ask' }).at(-1);
    if (typeof ask?.data.askId === 'number') return ask.data.askId;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no ask of ${session} on A`);
}

test("B's /sessions reloads by itself when A's session starts and when it ends", async () => {
  const { page, problems } = await openOnB('/sessions');
  const row = page.locator('table.remote tr', { hasText: 'live-a1' });
  assert.equal(await row.count(), 0);
  startSession('live-a1', ['codex', 'exec', 'fix the build']);
  await row.waitFor(LIVE);
  assert.match((await row.textContent()) ?? '', /running/);
  a.store.append({ type: 'session.stop', session: 'live-a1', data: { status: 0, reason: 'exit' } });
  await page.locator('table.remote tr', { hasText: 'live-a1' }).filter({ hasText: 'stopped' }).waitFor(LIVE);
  assert.deepEqual(problems, []);
  await page.close();
});

test("B shows A's session timeline from the shared store: hostile text inert, read-only, new events live", async () => {
  const hostile = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>';
  startSession('live-a2', ['sh', '-c', hostile]);
  a.store.append({ type: 'process.exec', session: 'live-a2', data: { argv: ['sh', '-c', hostile], pid: 7 } });
  await shipped('live-a2', 2);
  const { page, problems } = await openOnB('/sessions');
  const link = page.locator('table.remote tr', { hasText: 'live-a2' }).locator('a');
  await Promise.all([page.waitForURL(/\/sessions\/live-a2@[0-9a-f-]{36}$/), link.click()]);
  assert.ok(page.url().endsWith(`live-a2@${logId(a.store)}`), page.url());
  assert.match((await page.locator('#remote-host').textContent()) ?? '', /Read-only here: pause, resume and stop/);
  assert.equal(await page.locator('form[action*="/pause"], form[action*="/stop"]').count(), 0);
  const exec = page.locator('#timeline tr', { hasText: 'exec sh -c' });
  assert.ok((await exec.textContent())?.includes('<img src=x onerror='), 'the markup shows as text');
  assert.equal(await page.locator('#timeline img, #timeline script').count(), 0);

  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1));
  a.store.append({ type: 'process.exec', session: 'live-a2', data: { argv: ['echo', `late ${hostile}`] } });
  const late = page.locator('#timeline tr', { hasText: 'exec echo late' });
  await late.waitFor(LIVE);
  assert.ok((await late.textContent())?.includes('<script>'), 'streamed text is inert too');
  assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 1, 'no reload: streamed');
  assert.equal(await page.locator('#timeline img, #timeline script').count(), 0);
  assert.notEqual(await page.title(), 'pwned');
  assert.deepEqual(problems, []);
  await page.close();
});

test("PostgreSQL restarted while B's /sessions is open: the page says the store is unreachable, then shows what A wrote meanwhile", async () => {
  const { page } = await openOnB('/sessions');
  await page.locator('table.remote tr', { hasText: 'live-a1' }).waitFor(LIVE);
  await cluster.stopServer();
  try {
    await page.locator('#shared-unavailable').waitFor(LIVE);
    assert.match((await page.locator('#shared-unavailable').textContent()) ?? '', /cannot be reached/);
    assert.ok(await page.locator('h2', { hasText: 'Live' }).count(), "this host's part is still served");
    startSession('meanwhile-a', ['codex', 'exec', 'while the store was down']);
  } finally {
    await cluster.start();
  }
  await page.locator('table.remote tr', { hasText: 'meanwhile-a' }).waitFor(LIVE);
  await page.locator('#shared-unavailable').waitFor({ state: 'detached', ...LIVE });
  await page.close();
  assert.equal(shipA.p.exitCode, null, shipA.out());
});
