import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { AuditStore } from '../../src/audit/index.ts';
import { BIN, cleanup, makeRepo, tmp } from '../helpers.ts';

// A real MCP client (the SDK's Client over stdio) spawns `airlock mcp` and drives a
// sandboxed session end to end: list, read, write, patch, run the tests, propose. The
// attacker-shaped calls (paths out of the workspace, a planted symlink, a denied command)
// come back as tool errors naming the rule, and every call is in the audit log.

type R = { content: { type: string; text: string }[]; isError?: boolean };
const text = (r: R) => r.content.map((c) => c.text).join('');

test(
  'an MCP client drives a sandboxed session: tools work, refusals name their rule, all is recorded and redacted',
  { timeout: 240_000 },
  async () => {
    const repo = makeRepo({
      'README.md': '# demo\nold line\n',
      'test.sh': '#!/bin/sh\ngrep -q "new line" README.md && echo "tests pass" || { echo "tests fail"; exit 1; }\n',
    });
    const home = tmp('airlock-mcp-home-');
    const policy = join(tmp('airlock-mcp-pol-'), 'policy.yaml');
    writeFileSync(
      policy,
      'version: 1\ncommands:\n  rules:\n    - id: no-curl\n      match: { command: curl }\n      action: deny\n      reason: no direct downloads\n    - id: no-rm-rf\n      match: { command: rm, flags: [-r, -f] }\n      action: deny\n',
    );
    const client = new Client({ name: 'airlock-test', version: '1.0.0' });
    const transport = new StdioClientTransport({
      command: BIN,
      args: ['mcp', '--repo', repo, '--policy', policy],
      env: { ...(process.env as Record<string, string>), AIRLOCK_HOME: home, NO_COLOR: '1' },
      stderr: 'pipe',
    });
    let stderr = '';
    transport.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (process.env.DEBUG_MCP) process.stderr.write(d);
    });
    await client.connect(transport);
    const call = async (name: string, args: Record<string, unknown>) => {
      if (process.env.DEBUG_MCP) console.error('call', name, JSON.stringify(args).slice(0, 80));
      return (await client.callTool({ name, arguments: args })) as R;
    };
    try {
      const tools = (await client.listTools()).tools.map((t) => t.name).sort();
      assert.deepEqual(tools, [
        'apply_patch',
        'list_files',
        'propose_change',
        'read_file',
        'run_command',
        'write_file',
      ]);

      const ls = await call('list_files', {});
      assert.equal(ls.isError, undefined, text(ls) + stderr);
      assert.match(text(ls), /^f \d+ README\.md$/m);
      assert.doesNotMatch(text(ls), /\.git\//, '.git is not listed');

      assert.match(text(await call('read_file', { path: 'README.md' })), /old line/);

      // Lexical refusals.
      for (const [p, rule] of [
        ['../../etc/passwd', 'mcp.paths.dotdot'],
        ['/etc/passwd', 'mcp.paths.outside-workspace'],
        ['/home/agent/.bashrc', 'mcp.paths.outside-workspace'],
      ] as const) {
        const r = await call('read_file', { path: p });
        assert.equal(r.isError, true, p);
        assert.match(text(r), new RegExp(`denied by ${rule.replace(/\./g, '\\.')}`), p);
      }
      // A symlink planted inside the workspace that leaves it is refused after resolution, for reads and writes.
      assert.equal((await call('run_command', { argv: ['ln', '-s', '/etc/passwd', 'leak'] })).isError, undefined);
      assert.equal((await call('run_command', { argv: ['ln', '-s', '/tmp', 'out'] })).isError, undefined);
      const leak = await call('read_file', { path: 'leak' });
      assert.equal(leak.isError, true);
      assert.match(text(leak), /denied by mcp\.paths\.symlink-outside/);
      assert.doesNotMatch(text(leak), /root:x:0/);
      const wout = await call('write_file', { path: 'out/x.txt', content: 'escape' });
      assert.match(text(wout), /denied by mcp\.paths\.symlink-outside/);
      assert.match(
        text(await call('write_file', { path: '.git/hooks/pre-commit', content: '#!/bin/sh\n' })),
        /denied by mcp\.paths\.git-dir/,
      );

      // Edit by patch and by write; run the tests.
      const patch = '--- a/README.md\n+++ b/README.md\n@@ -1,2 +1,2 @@\n # demo\n-old line\n+new line\n';
      const pr = await call('apply_patch', { patch });
      assert.equal(pr.isError, undefined, text(pr));
      assert.match(text(pr), /modified \/workspace\/README\.md|modified README\.md/);
      const bad = await call('apply_patch', {
        patch: '--- a/README.md\n+++ b/README.md\n@@ -1,2 +1,2 @@\n # demo\n-no such line\n+x\n',
      });
      assert.equal(bad.isError, true);
      assert.match(text(bad), /does not apply/);
      assert.match(text(await call('write_file', { path: 'docs/notes.md', content: 'notes\n' })), /wrote 6 bytes/);
      const t = await call('run_command', { argv: ['sh', 'test.sh'] });
      assert.equal(t.isError, undefined, text(t));
      assert.match(text(t), /exit status: 0[\s\S]*tests pass/);

      // The command policy applies: a denied command is a tool error naming the rule.
      const denied = await call('run_command', { command: 'curl -sS http://example.com/' });
      assert.equal(denied.isError, true);
      assert.match(text(denied), /denied by commands\.no-curl/);
      const ask = await call('run_command', { argv: ['rm', '-rf', 'docs'] });
      assert.equal(ask.isError, true, 'flags are matched in any form (-rf = -r -f)');
      assert.match(text(ask), /denied by commands\.no-rm-rf/);

      // Output is redacted: a token-shaped secret printed by a command does not come back.
      const token = 'ghp_' + randomBytes(18).toString('hex').slice(0, 36);
      const red = await call('run_command', { command: `echo "token=${token}"` });
      assert.ok(!text(red).includes(token), `secret came back unredacted: ${text(red)}`);

      const prop = await call('propose_change', { summary: 'README says new line' });
      assert.equal(prop.isError, undefined, text(prop) + stderr);
      assert.match(text(prop), /proposal \d+ for session ses-/);
      const after = await call('read_file', { path: 'README.md' });
      assert.equal(after.isError, true);
      assert.match(text(after), /has ended/);
    } finally {
      await client.close().catch(() => undefined);
    }

    // The record: every call is an mcp.call event with tool, decision and rule; the change was captured.
    const store = new AuditStore(join(home, 'audit.db'));
    try {
      const calls = store.query({ type: 'mcp.call' });
      const by = (tool: string, decision: string | null) =>
        calls.filter((e) => (e.data as { tool: string }).tool === tool && e.decision === decision);
      assert.ok(by('read_file', 'deny').some((e) => e.rule === 'mcp.paths.symlink-outside'));
      assert.ok(by('read_file', 'deny').some((e) => e.rule === 'mcp.paths.dotdot'));
      assert.ok(by('run_command', 'deny').some((e) => e.rule === 'commands.no-curl'));
      assert.ok(by('apply_patch', 'allow').length === 1);
      assert.ok(by('propose_change', 'allow').length === 1);
      assert.ok(
        calls.every((e) => !JSON.stringify(e.data).includes('ghp_')),
        'no secret in the audit log',
      );
      const session = calls[0]!.session!;
      assert.ok(
        store.query({ session, type: 'command.denied' }).some((e) => e.rule === 'commands.no-curl'),
        'the session recorded the denial too',
      );
      const result = store.query({ session, type: 'session.result' })[0]!.data as {
        resultRepo: string;
        headCommit: string;
      };
      const show = spawnSync('git', ['--git-dir', result.resultRepo, 'show', `${result.headCommit}:README.md`], {
        encoding: 'utf8',
      });
      assert.match(show.stdout, /new line/, 'the patched file is in the captured result');
      const notes = spawnSync('git', ['--git-dir', result.resultRepo, 'show', `${result.headCommit}:docs/notes.md`], {
        encoding: 'utf8',
      });
      assert.equal(notes.stdout, 'notes\n');
      assert.ok(store.query({ session, type: 'review.proposed' }).length === 1, 'a proposal was created');
    } finally {
      store.close();
      cleanup(repo, home);
    }
  },
);
