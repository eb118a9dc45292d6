// OIDC login against a real OpenID provider (oidc-provider 9, started here) in a real
// browser: roles come from the IdP's groups via the org policy; an auditor cannot approve;
// someone with no role gets no session; separation of duties uses the logged-in identity
// (the person who started the agent cannot be its only approver).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { createProposal, proposalStatus, getProposal } from '../../src/review/index.ts';
import { setup, agentHistory, runCli, type Env } from '../review/fixture.ts';
import { startConsoleProcess, launchBrowser, type RunningConsole } from './harness.ts';
import { startIdp, type Idp } from './idp.ts';

let env: Env;
let idp: Idp;
let browser: Browser;
let console_: RunningConsole;
let proposal: number;

/** The whole redirect dance as a person does it: console → IdP login → consent → back to the console. */
async function logIn(login: string): Promise<{ page: Page; status: number }> {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${console_.url}/proposals`);
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', 'any');
  await page.click('button[type="submit"]');
  await page.click('button:has-text("Continue")');
  const landed = await page
    .waitForURL((u) => u.pathname === '/proposals' || u.pathname === '/auth/callback', { timeout: 30_000 })
    .then(() => page.url());
  if (landed.includes('/auth/callback')) {
    const body = (await page.locator('body').textContent()) ?? '';
    if (/Log in refused/.test(body)) return { page, status: 403 };
    await page.waitForURL((u) => u.pathname === '/proposals', { timeout: 30_000 });
  }
  return { page, status: 200 };
}

async function approve(page: Page): Promise<number> {
  await page.goto(`${console_.url}/proposals/${proposal}`);
  const [r] = await Promise.all([
    page.waitForResponse((x) => x.url().endsWith('/approve')),
    page.click('button.approve'),
  ]);
  return r.status();
}

describe('console: OIDC login and roles', () => {
  before(async () => {
    idp = await startIdp({
      alice: { email: 'alice@example.com', groups: ['eng-reviewers'] },
      bob: { email: 'bob@example.com', groups: ['eng-reviewers'] },
      audrey: { email: 'audrey@example.com', groups: ['soc'] },
      mallory: { email: 'mallory@example.com', groups: ['interns'] },
      unverified: { email: 'alice@example.com', email_verified: false, groups: [] },
    });
    env = setup(
      `console:\n  oidc:\n    issuer: ${idp.issuer}\n    clientId: ${idp.clientId}\n    scopes: [openid, email, groups]\n  roles:\n    reviewer: ['group:eng-reviewers']\n    auditor: ['group:soc']\n`,
    );
    agentHistory(
      env,
      's-oidc',
      [{ message: 'add a helper', files: [['src/helper.js', 'module.exports = (a) => a + 1;\n']] }],
      'bob@example.com',
    );
    proposal = (await createProposal(env.store, 's-oidc', { orgPolicy: env.orgPolicy, home: env.home })).proposal.id;
    console_ = await startConsoleProcess(env.home, [], {
      AIRLOCK_ORG_POLICY: env.orgPolicy,
      AIRLOCK_CONSOLE_CLIENT_SECRET: idp.clientSecret,
    });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await console_?.stop();
    await idp?.close();
    env?.done();
  });

  it('a person with no console role (or an unverified e-mail) gets no session, recorded', async () => {
    for (const who of ['mallory', 'unverified']) {
      const { page, status } = await logIn(who);
      assert.equal(status, 403, who);
      const r = await page.request.get(`${console_.url}/proposals`, { maxRedirects: 0 });
      assert.equal(r.status(), 302, `${who}: still not logged in`);
    }
    const refused = env.store.query({ type: 'console.login_refused' }).map((e) => String(e.data.summary));
    assert.ok(
      refused.some((s) => s.includes('mallory@example.com has no console role')),
      refused.join(' | '),
    );
  });

  it('an auditor (IdP group soc) logs in and gets 403 on approve', async () => {
    const { page, status } = await logIn('audrey');
    assert.equal(status, 200);
    assert.match((await page.locator('.who').textContent()) ?? '', /audrey@example\.com \(auditor\)/);
    assert.equal(await approve(page), 403);
    assert.equal(proposalStatus(env.store, getProposal(env.store, proposal)!).state, 'pending');
  });

  it("separation of duties uses the logged-in identity: the starter's approval is not enough; another reviewer's completes it", async () => {
    const bob = await logIn('bob');
    assert.equal(bob.status, 200);
    await approve(bob.page);
    const p = getProposal(env.store, proposal)!;
    const st = proposalStatus(env.store, p);
    assert.equal(st.state, 'pending');
    assert.ok(
      st.missing.some((m) => /separation of duties/.test(m)),
      st.missing.join('; '),
    );
    const alice = await logIn('alice');
    assert.equal(await approve(alice.page), 303, 'approved, back to the proposal');
    assert.equal(proposalStatus(env.store, p).state, 'approved');
    const logins = env.store.query({ type: 'console.login' }).map((e) => [e.data.by, e.data.via]);
    assert.deepEqual(logins.slice(-3), [
      ['audrey@example.com', 'oidc'],
      ['bob@example.com', 'oidc'],
      ['alice@example.com', 'oidc'],
    ]);
    assert.deepEqual(
      env.store.query({ type: 'review.approved' }).map((e) => e.data.by),
      ['bob@example.com', 'alice@example.com'],
    );
  });

  it('without console.oidc in the org policy and without --dev-user the console refuses to start, naming the keys', async () => {
    const bare = join(env.dir, 'org-without-console.yaml');
    writeFileSync(bare, 'review:\n  blockAt: high\n');
    const r = await runCli(['console', '--listen', '127.0.0.1:0'], {
      AIRLOCK_HOME: env.home,
      AIRLOCK_ORG_POLICY: bare,
    });
    assert.equal(r.code, 64, r.stderr);
    assert.match(r.stderr, /console\.oidc\.issuer/);
  });
});
