import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createProposal, approveProposal, proposalStatus } from '../../src/review/index.ts';
import { AirlockError } from '../../src/common/errors.ts';
import { setup, agentHistory, runCli } from './fixture.ts';

// Red team (issue 11, point 2): names git must quote in patch text (backslash, quote,
// TAB, newline, control characters, ESC sequences, non-UTF-8 bytes) used to make the
// path lookup after parsing the diff miss: no secret, Trojan Source or symlink check ran
// on those files, they counted as +0 lines, and one approval was enough. Each check is
// run here with each kind of hostile name.

const AWS_KEY = 'AKIA' + 'Z7QH3KXW2M4PL9TB';
const BIDI = '\u202E';

const NAMES: [kind: string, name: (suffix: string) => string | Buffer][] = [
  ['backslash', (s) => `config\\prod${s}`],
  ['double quote', (s) => `say"hi"${s}`],
  ['tab', (s) => `tab\there${s}`],
  ['newline', (s) => `new\nline${s}`],
  ['control character', (s) => `ctl\u0001x${s}`],
  ['terminal escape', (s) => `esc\u001b[2K\u001b[1Ax${s}`],
  ['non-UTF-8 bytes', (s) => Buffer.concat([Buffer.from('bad'), Buffer.from([0xff, 0xfe]), Buffer.from(s)])],
];

const shown = (n: string | Buffer) => (typeof n === 'string' ? n : n.toString('utf8'));

test('every check runs on every path, whatever its bytes: secrets, Trojan Source, symlinks, protected paths, size, approvals', async () => {
  const env = setup(
    'review:\n  approvals:\n    groups:\n      security: [sec@example.com]\n  overrideRoles: [security]\n',
  );
  try {
    for (const [i, [kind, name]] of NAMES.entries()) {
      const session = `s-name-${i}`;
      const secret = name('.js');
      const trojan = name('.ts');
      const link = name('.lnk');
      const workflow = Buffer.concat([Buffer.from('.github/workflows/'), Buffer.from(name('.yml'))]);
      agentHistory(env, session, [
        {
          message: 'add files',
          files: [
            [secret, `module.exports = { key: '${AWS_KEY}' };\n`],
            [trojan, `const isAdmin = false; /* ${BIDI} } if (true) { */\n`],
            [link, '/etc/shadow', '120000'],
            [workflow, 'on: push\njobs: {}\n'],
          ],
        },
      ]);
      const p = (await createProposal(env.store, session, { orgPolicy: env.orgPolicy, home: env.home })).proposal;
      const at = (rule: RegExp, file: string) => p.findings.some((f) => rule.test(f.rule) && f.file === file);
      const all = p.findings.map((f) => `${f.rule}@${JSON.stringify(f.file)}`).join(', ');
      assert.ok(at(/^secrets\./, shown(secret)), `${kind}: the secret is found (${all})`);
      assert.ok(at(/^unicode\.bidi$/, shown(trojan)), `${kind}: Trojan Source is found (${all})`);
      assert.ok(at(/^protectedPaths\.symlink$/, shown(link)), `${kind}: the escaping symlink is found (${all})`);
      assert.ok(
        p.findings.some((f) => f.rule === 'protectedPaths.symlink' && f.severity === 'high'),
        `${kind}: symlink out of the repo is high`,
      );
      assert.ok(
        at(/^protectedPaths\.protected$/, shown(workflow)),
        `${kind}: the workflow is a protected path (${all})`,
      );
      assert.ok(p.stats.added >= 4, `${kind}: the added lines count (${p.stats.added})`);
      assert.ok(
        p.findings.some((f) => f.rule === 'unicode.path'),
        `${kind}: the name itself is a finding (${all})`,
      );
      assert.throws(
        () => approveProposal(env.store, p.id, { as: 'alice@example.com', env: {} }),
        (e: unknown) => e instanceof AirlockError && e.kind === 'DENIED',
        `${kind}: one plain approval is not enough`,
      );
      assert.equal(proposalStatus(env.store, p).state, 'pending');
    }
    // what a reviewer reads: every name escaped, nothing raw reaches the terminal
    const r = await runCli(['review', 'show', '6'], {
      AIRLOCK_HOME: env.home,
      AIRLOCK_ORG_POLICY: env.orgPolicy,
      NO_COLOR: '1',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes('\u001b'), 'no raw ESC in review show');
    assert.match(r.stdout, /esc<U\+001B>\[2K<U\+001B>\[1Ax\.js/);
  } finally {
    env.done();
  }
});
