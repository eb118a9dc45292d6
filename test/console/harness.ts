import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ROOT } from '../helpers.ts';

// The console as users start it (`airlock console … --json`, a child process we stop by
// its pid) and Debian's chromium-headless-shell driven by playwright-core.

export const CHROMIUM = '/usr/bin/chromium-headless-shell';

/**
 * Where the tests' screenshots go: docs/console/ (the pictures docs/console.md shows) with
 * AIRLOCK_UPDATE_SCREENSHOTS=1, else a scratch directory, so a test run leaves the tree clean.
 */
export function screenshotDir(): string {
  if (process.env.AIRLOCK_UPDATE_SCREENSHOTS === '1') {
    const d = join(ROOT, 'docs', 'console');
    mkdirSync(d, { recursive: true });
    return d;
  }
  return mkdtempSync(join(tmpdir(), 'airlock-console-shots-'));
}

/** Removes a scratch screenshot directory (never docs/console). */
export function dropScreenshots(dir: string): void {
  if (dir.startsWith(tmpdir())) rmSync(dir, { recursive: true, force: true });
}

export interface RunningConsole {
  url: string;
  loginUrl: string;
  child: ChildProcess;
  stderr: () => string;
  stop: () => Promise<void>;
}

export async function startConsoleProcess(
  home: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<RunningConsole> {
  const child = spawn(
    process.execPath,
    [join(ROOT, 'src/cli/run.ts'), 'console', '--listen', '127.0.0.1:0', '--json', ...args],
    { env: { ...process.env, AIRLOCK_HOME: home, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const first = await new Promise<{ url: string; loginUrl: string }>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`console did not start: ${err}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(t);
        resolve(JSON.parse(out.slice(0, nl)) as { url: string; loginUrl: string });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`console exited ${code}: ${err}`));
    });
  });
  return {
    ...first,
    child,
    stderr: () => err,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) {
          resolve();
          return;
        }
        const hard = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(hard);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM });
}

/** A page logged in through the link the console printed; a failed script or CSP report fails the test. */
export async function loggedInPage(browser: Browser, c: RunningConsole): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  const r = await page.goto(c.loginUrl);
  if (!r?.ok()) throw new Error(`login failed: ${r?.status()}`);
  return { page, problems };
}
