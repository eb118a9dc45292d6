import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AuditStore } from '../../src/audit/index.ts';
import { requestApproval } from '../../src/command-rules/index.ts';
import { escapeForTerminal } from '../../src/common/terminal.ts';
import { airlock, tmp, cleanup } from '../helpers.ts';

// Red team (issue 11, point 6): agent-controlled text (command lines, session commands,
// audit summaries) reaches a reviewer's terminal only escaped: CSI (erase line, cursor
// up), OSC 52 (clipboard write), bidi overrides and C1 controls (0x9b is CSI on 8-bit
// terminals) are shown as <U+XXXX> by every command that prints them.

const CSI = '\u001b[2K\u001b[1A';
const OSC52 = '\u001b]52;c;cm0gLXJmIH4=\u0007';
const BIDI = '\u202E';
const C1 = '\u009b31m';
const HOSTILE = `echo safe ${CSI}${OSC52}${BIDI}${C1} done`;
const RAW = /[\u001b\u0007\u009b\u202e]/;

test('escapeForTerminal: CSI, OSC 52, bidi, C1 and invisible characters become visible tags; plain text and TAB stay', () => {
  assert.equal(escapeForTerminal(`a${CSI}b`), 'a<U+001B>[2K<U+001B>[1Ab');
  assert.equal(escapeForTerminal(OSC52), '<U+001B>]52;c;cm0gLXJmIH4=<U+0007>');
  assert.equal(escapeForTerminal(`x${BIDI}y\u2066z\u200b`), 'x<U+202E>y<U+2066>z<U+200B>');
  assert.equal(escapeForTerminal(C1), '<U+009B>31m');
  assert.equal(escapeForTerminal('line1\nline2'), 'line1<U+000A>line2');
  assert.equal(escapeForTerminal('line1\nline2', { keepNewlines: true }), 'line1\nline2');
  assert.equal(escapeForTerminal('tab\tand ünïcödé'), 'tab\tand ünïcödé');
});

test('approvals (list and the allow echo), sessions and audit show/tail print agent text escaped', async () => {
  const home = tmp('airlock-esc-');
  mkdirSync(home, { recursive: true });
  const store = new AuditStore(join(home, 'audit.db'));
  try {
    store.append({
      type: 'session.start',
      session: 's-esc',
      data: { command: ['sh', '-c', HOSTILE], baseCommit: 'a'.repeat(40) },
    });
    const answer = requestApproval(store, {
      session: 's-esc',
      command: ['sh', '-c', HOSTILE],
      rule: 'commands.ask',
      timeoutSeconds: 60,
      pollMs: 50,
    });
    const run = (...a: string[]) => airlock(a, { home, env: { AIRLOCK_SANDBOX: '' } });
    for (const args of [
      ['approvals'],
      ['approvals', '--all'],
      ['approvals', 'allow', '1', '--as', 'alice@example.com'],
      ['sessions'],
      ['audit', 'show', 's-esc'],
      ['audit', 'tail', '--from-start', '--max-events', '2'],
      ['audit', 'tail', '--from-start', '--max-events', '2', '--json'],
      ['approvals', '--json'],
    ]) {
      const r = run(...args);
      assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.doesNotMatch(r.stdout, RAW, `${args.join(' ')} prints no raw control`);
      if (args[0] === 'approvals' && args[1] !== '--json')
        assert.match(r.stdout, /<U\+001B>\[2K<U\+001B>\[1A<U\+001B>\]52/, args.join(' '));
    }
    assert.equal((await answer).decision, 'allow');
  } finally {
    store.close();
    cleanup(home);
  }
});
