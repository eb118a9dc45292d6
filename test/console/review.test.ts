// The console's review flows in a real browser (issue 17): a reviewer logs in and
// approves a proposal with findings; hostile names and messages stay text; a state
// change without the CSRF token is refused; an auditor cannot approve (403); dev-user
// mode is refused off loopback and without the printed login secret.
// Proposals come from test/review/fixture.ts, which lays out a session's result exactly as
// capture writes it (the review module's own tests use it); no sandbox is needed here.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request } from 'node:http';
import type { Browser } from 'playwright-core';
import { createProposal, proposalStatus, getProposal } from '../../src/review/index.ts';
import { verifyProof, loadPublicKey } from '../../src/audit/index.ts';
import {
  setup,
  agentHistory,
  runCli,
  gitHttpServer,
  makeRemote,
  sh,
  type Env,
  type GitHttp,
} from '../review/fixture.ts';
import {
  startConsoleProcess,
  launchBrowser,
  loggedInPage,
  screenshotDir,
  dropScreenshots,
  type RunningConsole,
} from './harness.ts';

const SHOTS = screenshotDir();
const AWS_KEY = 'AKIA' + 'Z7QH3KXW2M4PL9TB';
const XSS_NAME = '<img src=x onerror="window.__pwned=1">.js';
const XSS_MESSAGE = '<script>window.__pwned=2</script> fix\n\u202Egnp.exe\u202C and \u001b[2Kerased';

let env: Env;
let remoteRoot: string;
let git: GitHttp;
let browser: Browser;
let reviewer: RunningConsole;
let auditor: RunningConsole;
let plain: number;
let hostile: number;

describe('console: proposals', () => {
  before(async () => {
    remoteRoot = mkdtempSync(join(tmpdir(), 'airlock-remote-'));
    git = await gitHttpServer(remoteRoot);
    env = setup(
      `review:\n  blockAt: critical\n  apply:\n    remote: ${git.url}/remote.git\ntelemetry:\n  sinks:\n    - {type: syslog, name: soc, host: 127.0.0.1, port: 1}\n`,
    );
    makeRemote(env, remoteRoot);
    agentHistory(env, 's-plain', [
      {
        message: 'add a query helper\n\nwith a body',
        files: [
          ['src/helper.js', 'module.exports = (a) => a + 1;\n'],
          [
            'src/db.py',
            'def find(c, name):\n    return c.execute("SELECT * FROM users WHERE name = \'" + name + "\'")\n',
          ],
        ],
      },
    ]);
    agentHistory(env, 's-hostile', [
      {
        message: XSS_MESSAGE,
        author: ['<b onmouseover="window.__pwned=4">mallory</b>', 'm@example.com'],
        files: [[XSS_NAME, `const k = '${AWS_KEY}'; // <script>window.__pwned=5</script>\n`]],
      },
    ]);
    plain = (await createProposal(env.store, 's-plain', { orgPolicy: env.orgPolicy, home: env.home })).proposal.id;
    hostile = (await createProposal(env.store, 's-hostile', { orgPolicy: env.orgPolicy, home: env.home })).proposal.id;
    const policyEnv = { AIRLOCK_ORG_POLICY: env.orgPolicy };
    reviewer = await startConsoleProcess(
      env.home,
      ['--dev-user', 'alice@example.com', '--dev-roles', 'reviewer'],
      policyEnv,
    );
    auditor = await startConsoleProcess(
      env.home,
      ['--dev-user', 'audrey@example.com', '--dev-roles', 'auditor'],
      policyEnv,
    );
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await reviewer?.stop();
    await auditor?.stop();
    env?.done();
    await git?.close();
    if (remoteRoot) rmSync(remoteRoot, { recursive: true, force: true });
    dropScreenshots(SHOTS);
  });

  it('a reviewer logs in, opens a proposal with findings and approves it; a second reviewer completes it and applies it; each step is bound to the hash and audited with the identity', async () => {
    const { page, problems } = await loggedInPage(browser, reviewer);
    assert.match(page.url(), /\/proposals$/);
    assert.match((await page.locator('table.list').textContent()) ?? '', /escalated/);
    await page.screenshot({ path: join(SHOTS, 'proposals.png') });
    await page.click(`a[href="/proposals/${plain}"]`);
    const inline = await page.locator('table.diff .finding').allTextContents();
    assert.ok(
      inline.some((f) => /injection\.sql/.test(f)),
      `the SQL finding is shown inline in the diff: ${inline.join(' | ')}`,
    );
    assert.match((await page.locator('.commit').first().textContent()) ?? '', /add a query helper/);
    await page.screenshot({ path: join(SHOTS, 'proposal.png'), fullPage: true });
    await Promise.all([page.waitForURL(new RegExp(`/proposals/${plain}$`)), page.click('button.approve')]);
    assert.match((await page.locator('main').textContent()) ?? '', /needs 1 more approval/);
    const p = getProposal(env.store, plain)!;
    assert.deepEqual(proposalStatus(env.store, p).approvers, ['alice@example.com']);

    const second = await startConsoleProcess(env.home, ['--dev-user', 'carol@example.com', '--dev-roles', 'reviewer'], {
      AIRLOCK_ORG_POLICY: env.orgPolicy,
    });
    try {
      const { page: carol } = await loggedInPage(browser, second);
      await carol.goto(`${second.url}/proposals/${plain}`);
      await Promise.all([carol.waitForURL(new RegExp(`/proposals/${plain}$`)), carol.click('button.approve')]);
      assert.match((await carol.locator('.state').first().textContent()) ?? '', /approved/);
      await Promise.all([carol.waitForURL(new RegExp(`/proposals/${plain}$`)), carol.click('button.apply')]);
      assert.match((await carol.locator('main').textContent()) ?? '', /Applied to airlock\/s-plain/);
    } finally {
      await second.stop();
    }
    assert.match(
      sh(env.dir, 'ls-remote', join(remoteRoot, 'remote.git')),
      /refs\/heads\/airlock\/s-plain/,
      'the approved change is on the remote',
    );
    assert.equal(env.store.query({ type: 'console.proposal_applied' }).at(-1)?.data.by, 'carol@example.com');
    assert.equal(proposalStatus(env.store, p).state, 'applied');
    const approvals = env.store.query({ type: 'review.approved' }).filter((e) => e.data.proposal === plain);
    assert.deepEqual(
      approvals.map((e) => [e.data.by, e.data.hash]),
      [
        ['alice@example.com', p.hash],
        ['carol@example.com', p.hash],
      ],
    );
    const actions = env.store.query({ type: 'console.proposal_approved' });
    assert.deepEqual(
      actions.map((e) => [e.data.by, e.data.via]),
      [
        ['alice@example.com', 'dev-user'],
        ['carol@example.com', 'dev-user'],
      ],
    );
    assert.deepEqual(problems, []);
  });

  it("an approval for another hash than the proposal's is refused (the page showed another change)", async () => {
    const { page } = await loggedInPage(browser, reviewer);
    await page.goto(`${reviewer.url}/proposals/${hostile}`);
    const csrf = await page.locator('meta[name="csrf-token"]').getAttribute('content');
    const r = await page.request.post(`${reviewer.url}/proposals/${hostile}/approve`, {
      form: { _csrf: csrf!, hash: '0'.repeat(64) },
    });
    assert.equal(r.status(), 409);
    assert.equal(proposalStatus(env.store, getProposal(env.store, hostile)!).state, 'pending');
  });

  it('an XSS payload in a file name, a commit message, an author and the diff stays text; bidi and terminal escapes are shown as tags', async () => {
    const { page, problems } = await loggedInPage(browser, reviewer);
    await page.goto(`${reviewer.url}/proposals/${hostile}`);
    await page.waitForLoadState('load');
    await page.hover('.author').catch(() => undefined);
    assert.equal(
      await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned),
      undefined,
      'no payload ran',
    );
    assert.equal(await page.locator('main img, main script, main b').count(), 0, 'no element came from agent text');
    assert.ok(
      (await page.locator('.filename').allTextContents()).some((t) => t.includes(XSS_NAME)),
      'the file name is shown as text',
    );
    const message = (await page.locator('pre.message').first().textContent()) ?? '';
    assert.ok(message.includes('<script>window.__pwned=2</script>'), message);
    assert.ok(
      message.includes('<U+202E>') && message.includes('<U+001B>'),
      `bidi and ESC are visible tags: ${message}`,
    );
    assert.ok(!/[\u202E\u001b]/.test(await page.content()), 'no raw bidi or ESC reaches the page');
    assert.ok(
      (await page.locator('.finding').allTextContents()).some((t) => /secrets\./.test(t)),
      'the secret is a finding',
    );
    await page.screenshot({ path: join(SHOTS, 'hostile-proposal.png'), fullPage: true });
    assert.deepEqual(problems, []);
  });

  it('a state change without the CSRF token is refused and recorded; so is a foreign Origin', async () => {
    const { page } = await loggedInPage(browser, reviewer);
    const p = getProposal(env.store, hostile)!;
    const missing = await page.request.post(`${reviewer.url}/proposals/${hostile}/reject`, {
      form: { hash: p.hash, reason: 'no' },
    });
    assert.equal(missing.status(), 403);
    const wrong = await page.request.post(`${reviewer.url}/proposals/${hostile}/reject`, {
      form: { hash: p.hash, reason: 'no', _csrf: 'x'.repeat(43) },
    });
    assert.equal(wrong.status(), 403);
    await page.goto(`${reviewer.url}/proposals/${hostile}`);
    const csrf = await page.locator('meta[name="csrf-token"]').getAttribute('content');
    const foreign = await page.request.post(`${reviewer.url}/proposals/${hostile}/reject`, {
      form: { hash: p.hash, reason: 'no', _csrf: csrf! },
      headers: { origin: 'http://evil.example' },
    });
    assert.equal(foreign.status(), 403);
    assert.equal(proposalStatus(env.store, p).state, 'pending', 'nothing was rejected');
    const refused = env.store.query({ type: 'console.csrf_refused' }).map((e) => e.data.outcome);
    assert.deepEqual(refused.slice(-3), ['missing CSRF token', 'wrong CSRF token', 'foreign Origin']);
  });

  it('an auditor sees the proposal but gets 403 on approve (with a valid token), recorded', async () => {
    const { page } = await loggedInPage(browser, auditor);
    await page.goto(`${auditor.url}/proposals/${hostile}`);
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/approve')),
      page.click('button.approve'),
    ]);
    assert.equal(response.status(), 403);
    assert.match((await page.locator('body').textContent()) ?? '', /may not do this/);
    assert.equal(proposalStatus(env.store, getProposal(env.store, hostile)!).state, 'pending');
    const denied = env.store.query({ type: 'console.denied' }).at(-1);
    assert.equal(denied?.data.by, 'audrey@example.com');
    assert.equal(denied?.decision, 'deny');
  });

  it('without the printed login secret there is no session; dev-user mode is refused off loopback', async () => {
    const r = await fetch(`${reviewer.url}/proposals`);
    assert.equal(r.status, 401);
    const bad = await fetch(`${reviewer.url}/login?token=guess`, { redirect: 'manual' });
    assert.equal(bad.status, 401);
    assert.equal(bad.headers.get('set-cookie'), null);
    const rebound = await new Promise<number>((resolve, reject) => {
      // fetch() may not set Host; a DNS-rebinding page's request carries the attacker's name
      request(reviewer.loginUrl, { headers: { host: 'attacker.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
    assert.equal(rebound, 421, 'a DNS-rebound Host is refused');
    const off = await runCli(['console', '--listen', '0.0.0.0:0', '--dev-user', 'alice'], { AIRLOCK_HOME: env.home });
    assert.equal(off.code, 64, off.stderr);
    assert.match(off.stderr, /refused on a non-loopback address/);
    const escapes = await runCli(['console', '--listen', '127.0.0.1:0', '--dev-user', 'eve\u001b[2J\u202Eadmin'], {
      AIRLOCK_HOME: env.home,
    });
    assert.equal(escapes.code, 64, 'an identity with terminal escapes or bidi controls is refused');
  });

  it('an auditor searches the audit log by type, severity and decision, downloads an inclusion proof that verifies, sees verify status, sink lag and the policy with its provenance', async () => {
    const { page, problems } = await loggedInPage(browser, auditor);
    await page.goto(`${auditor.url}/audit?type=console.*&decision=deny&severity=medium`);
    const types = await page.locator('#events tbody tr td:nth-child(3)').allTextContents();
    assert.ok(
      types.length > 0 && types.every((t) => t.startsWith('console.')),
      `only console events: ${types.join(',')}`,
    );
    assert.ok(types.includes('console.csrf_refused') && types.includes('console.denied'), types.join(','));
    const lag = (await page.locator('table.sinks tbody tr').first().textContent()) ?? '';
    assert.match(lag, /soc/, "the org policy's sink is listed with its lag");
    await page.screenshot({ path: join(SHOTS, 'audit.png') });
    await page.goto(`${auditor.url}/audit?type=review.approved`);
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('a.proof').first().click()]);
    const proof = JSON.parse(readFileSync(await download.path(), 'utf8')) as { event: { type: string } };
    assert.equal(proof.event.type, 'review.approved');
    const check = verifyProof(proof, loadPublicKey(undefined, join(env.home, 'keys')));
    assert.ok(check.ok, check.reason);
    await page.goto(`${auditor.url}/audit/verify`);
    assert.equal(await page.locator('#verify-status').textContent(), 'verified');
    await page.goto(`${auditor.url}/policy?proposal=${plain}`);
    const row = (await page.locator('table.policy tr', { hasText: 'review.blockAt' }).textContent()) ?? '';
    assert.match(row, /"critical"/);
    assert.ok(row.includes(env.orgPolicy), `the value names the org file it came from: ${row}`);
    await page.screenshot({ path: join(SHOTS, 'policy.png') });
    await page.goto(`${auditor.url}/audit?rule=${encodeURIComponent('"><script>window.__pwned=9</script>')}`);
    assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
    assert.deepEqual(problems, []);
  });
});
