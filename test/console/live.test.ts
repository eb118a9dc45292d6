// The console's live views against a real session (bubblewrap, detached supervisor):
// the agent asks for a command and waits while the console's Approvals page (updated by
// SSE, with a countdown) allows it; an analyst watches the session's timeline stream and
// pauses, resumes and stops the session from the browser.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { AuditStore } from '../../src/audit/index.ts';
import { airlock, BIN, makeRepo, tmp, cleanup } from '../helpers.ts';
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
let id: string;
let browser: Browser;
let analyst: RunningConsole;

function execInSession(argv: string[]): { done: Promise<{ code: number | null; out: string; err: string }> } {
  const child = spawn(BIN, ['exec', id, '--', ...argv], { env: { ...process.env, AIRLOCK_HOME: home, NO_COLOR: '1' } });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return { done: new Promise((r) => child.on('close', (code) => r({ code, out, err }))) };
}

function events(type: string): { by: unknown; decision: string | null; data: Record<string, unknown> }[] {
  const st = new AuditStore(join(home, 'audit.db'));
  try {
    return st.query({ session: id, type }).map((e) => ({ by: e.data.by, decision: e.decision, data: e.data }));
  } finally {
    st.close();
  }
}

describe('console: live approvals and sessions', () => {
  before(async () => {
    home = tmp('airlock-home-');
    repo = makeRepo({ 'keep/a.txt': 'a\n' });
    const pf = join(home, 'p.yaml');
    writeFileSync(pf, 'commands:\n  askTimeoutSeconds: 120\n');
    const r = airlock(['session', 'start', '--json', '--repo', repo, '--policy', pf], { home });
    assert.equal(r.status, 0, r.stderr);
    id = JSON.parse(r.stdout).id;
    analyst = await startConsoleProcess(home, ['--dev-user', 'sam@example.com', '--dev-roles', 'admin']);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await analyst?.stop();
    airlock(['session', 'stop', id], { home });
    cleanup(home, repo);
    dropScreenshots(SHOTS);
  });

  it('the agent asks for a command; the Approvals page shows it live with a countdown; Allow lets the waiting command run', async () => {
    const { page, problems } = await loggedInPage(browser, analyst);
    await page.goto(`${analyst.url}/approvals`);
    const waiting = execInSession(['sh', '-c', 'rm -fr keep && echo removed']);
    const row = page.locator('tr[data-ask] .countdown');
    await row.first().waitFor({ timeout: 60_000 }); // the page reloads itself when the ask arrives (SSE)
    assert.match((await page.locator('tr[data-ask] code.command').first().textContent()) ?? '', /rm -fr keep/);
    await page.waitForFunction(
      () => /\d+s left/.test(document.querySelector('.countdown')?.textContent ?? ''),
      undefined,
      { timeout: 10_000 },
    );
    await page.screenshot({ path: join(SHOTS, 'approvals.png') });
    await page.click('button.allow');
    const r = await waiting.done;
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /removed/);
    const answer = events('command.answer').at(-1);
    assert.equal(answer?.data.by, 'sam@example.com');
    assert.equal(answer?.decision, 'allow');
    assert.equal(events('console.ask_allowed').at(-1)?.by, 'sam@example.com');
    assert.deepEqual(problems, []);
  });

  it('an analyst watches the timeline stream and pauses, resumes and stops the session', async () => {
    const { page, problems } = await loggedInPage(browser, analyst);
    await page.goto(`${analyst.url}/sessions`);
    await page.click(`a[href="/sessions/${id}"]`);
    const ran = execInSession(['sh', '-c', 'echo live-marker-$((40+2))']);
    assert.equal((await ran.done).code, 0);
    // the page is not reloaded: the row arrives over SSE
    await page.locator('#timeline td', { hasText: 'live-marker' }).first().waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(SHOTS, 'session.png') });
    await Promise.all([page.waitForURL(new RegExp(`/sessions/${id}$`)), page.click('button.pause')]);
    await page.locator('#timeline td', { hasText: 'session.paused' }).first().waitFor({ timeout: 30_000 });
    assert.equal(events('session.paused').length, 1);
    assert.equal(events('console.session_pause').at(-1)?.by, 'sam@example.com');
    await Promise.all([page.waitForURL(new RegExp(`/sessions/${id}$`)), page.click('button.resume')]);
    assert.equal(events('session.resumed').at(-1)?.by, 'sam@example.com');
    await Promise.all([page.waitForURL(new RegExp(`/sessions/${id}$`)), page.click('button.stop')]);
    assert.match((await page.locator('#session-state').textContent()) ?? '', /stopped/);
    assert.equal(events('session.stop').length, 1);
    assert.deepEqual(problems, []);
  });
});
