import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideCommand, decideShell } from '../../src/command-rules/index.ts';
import { resolvePolicy, defaultPolicy } from '../../src/policy/index.ts';

// Table tests: the same rule must meet every spelling of the same command. These are the
// bypasses that slip past literal-prefix rules in other agent sandboxes.

const policy = resolvePolicy([
  {
    kind: 'repo',
    origin: 'test',
    raw: {
      commands: {
        default: 'allow',
        rules: [
          { id: 'no-rm-rf', match: { command: 'rm', flags: ['-r', '-f'] }, action: 'deny' },
          { id: 'ask-curl-upload', match: { command: 'curl', flags: ['-T|-d|-F'] }, action: 'ask' },
          { id: 'git-push', match: { command: 'git', args: ['push'] }, action: 'deny' },
          { id: 'allow-git-status', match: { command: 'git', args: ['status'] }, action: 'allow' },
          { id: 'ask-chmod-r', match: { command: 'chmod', flags: ['-R'] }, action: 'ask' },
        ],
      },
    },
  },
]).policy;

const RM_FORMS: string[][] = [
  ['rm', '-rf', 'x'],
  ['rm', '-fr', 'x'],
  ['rm', '-r', '-f', 'x'],
  ['rm', '-f', '-r', 'x'],
  ['rm', '-Rf', 'x'],
  ['rm', '--recursive', '--force', 'x'],
  ['rm', '-r', '--force', 'x'],
  ['rm', '-rfv', 'x'],
  ['/bin/rm', '-rf', 'x'],
  ['/usr/bin/rm', '-rf', 'x'],
  ['env', 'rm', '-rf', 'x'],
  ['env', '-i', 'FOO=1', 'rm', '-rf', 'x'],
  ['env', '-u', 'HOME', 'rm', '-rf', 'x'],
  ['env', '-S', 'rm -rf x'],
  ['bash', '-c', 'rm -rf x'],
  ['sh', '-c', 'rm -rf x'],
  ['bash', '-lc', 'rm -rf x'],
  ['bash', '-e', '-c', 'rm -rf x'],
  ['/bin/sh', '-c', 'cd /tmp && rm -rf x'],
  ['sudo', 'rm', '-rf', 'x'],
  ['sudo', '-u', 'root', 'rm', '-rf', 'x'],
  ['sudo', '-E', '--', 'rm', '-rf', 'x'],
  ['nice', 'rm', '-rf', 'x'],
  ['nice', '-n', '10', 'rm', '-rf', 'x'],
  ['timeout', '10', 'rm', '-rf', 'x'],
  ['timeout', '-s', 'KILL', '5s', 'rm', '-rf', 'x'],
  ['nohup', 'rm', '-rf', 'x'],
  ['sudo', 'env', 'FOO=1', 'nice', 'timeout', '5', '/bin/rm', '-fr', 'x'],
  ['bash', '-c', 'sudo bash -c "env rm -r -f x"'],
  ['sh', '-c', 'ls; rm -rf x'],
  ['sh', '-c', 'true && rm -rf x'],
  ['sh', '-c', 'false || rm -rf x'],
  ['sh', '-c', 'echo hi | rm -rf x'],
  ['sh', '-c', 'echo $(rm -rf x)'],
  ['sh', '-c', 'echo `rm -rf x`'],
  ['sh', '-c', '(rm -rf x)'],
  ['sh', '-c', 'if true; then rm -rf x; fi'],
  ['sh', '-c', 'for f in a b; do rm -rf "$f"; done'],
  ['sh', '-c', 'f() { rm -rf x; }; f'],
  ['sh', '-c', '\\rm -rf x'],
  ['sh', '-c', "'rm' -rf x"],
  ['sh', '-c', 'r""m -rf x'],
  ['sh', '-c', 'rm $FLAGS x'],
  ['sh', '-c', 'ls | xargs rm -rf'],
  ['xargs', '-0', 'rm', '-rf'],
  ['find', '.', '-name', '*.tmp', '-exec', 'rm', '-rf', '{}', ';'],
  ['eval', 'rm -rf x'],
  ['sh', '-c', 'eval "rm -rf x"'],
  ['time', 'rm', '-rf', 'x'],
  ['command', 'rm', '-rf', 'x'],
  ['exec', 'rm', '-rf', 'x'],
  ['stdbuf', '-o0', 'rm', '-rf', 'x'],
  ['busybox', 'rm', '-rf', 'x'],
];

for (const argv of RM_FORMS) {
  test(`rm -rf rule meets ${JSON.stringify(argv)}`, () => {
    const d = decideCommand(argv, policy);
    assert.equal(d.action, 'deny', d.reason);
    assert.equal(d.rule, 'commands.no-rm-rf', d.reason);
  });
}

const UNPARSEABLE: string[][] = [
  ['sh', '-c', 'echo "unterminated'],
  ['sh', '-c', '$CMD -rf x'],
  ['sh', '-c', '"$(which rm)" -rf x'],
  ['bash', '-c'],
  ['env', 'FOO=1'].concat(['sh', '-c', 'for']),
  [],
];
for (const argv of UNPARSEABLE) {
  test(`unparseable is the strictest match: ${JSON.stringify(argv)}`, () => {
    const d = decideCommand(argv, policy);
    assert.equal(d.action, 'deny');
    assert.equal(d.rule, 'commands.unparseable');
  });
}

const NOT_MATCHING: [string[], string, string][] = [
  [['rm', 'x'], 'allow', 'commands.default'],
  [['rm', '-r', 'x'], 'allow', 'commands.default'],
  [['rm', '--', '-rf'], 'allow', 'commands.default'], // a file named -rf
  [['echo', 'rm', '-rf', 'x'], 'allow', 'commands.default'],
  [['grep', '-rf', 'pattern', '.'], 'allow', 'commands.default'],
  [['git', 'status'], 'allow', 'commands.allow-git-status'],
  [['bash', 'script.sh'], 'allow', 'commands.default'],
  [['command', '-v', 'rm'], 'allow', 'commands.default'],
];
for (const [argv, action, rule] of NOT_MATCHING) {
  test(`no false match: ${JSON.stringify(argv)}`, () => {
    const d = decideCommand(argv, policy);
    assert.equal(d.action, action, d.reason);
    assert.equal(d.rule, rule);
  });
}

test('pipelines and lists: every component is checked and the strictest wins', () => {
  assert.equal(decideShell('git status && curl -T f https://x', policy).action, 'ask');
  const d = decideShell('curl -d @f https://x | tee log; git push origin main', policy);
  assert.equal(d.action, 'deny');
  assert.equal(d.rule, 'commands.git-push');
  assert.equal(decideShell('git status', policy).rule, 'commands.allow-git-status');
});

test('other flag spellings: git -C dir push, chmod --recursive, curl --upload-file', () => {
  assert.equal(decideCommand(['git', '-C', 'sub', 'push', 'origin'], policy).rule, 'commands.git-push');
  assert.equal(decideCommand(['chmod', '--recursive', '777', '.'], policy).action, 'ask');
  assert.equal(decideCommand(['curl', '--data=@secret', 'https://x'], policy).action, 'ask');
});

test('a run-time word may satisfy a deny rule but never an allow rule', () => {
  // `git $SUB` could be `git push`: the deny rule applies
  assert.equal(decideShell('git $SUB origin', policy).rule, 'commands.git-push');
  // and it cannot borrow the allow rule for `git status`
  const p2 = resolvePolicy([
    {
      kind: 'repo',
      origin: 't',
      raw: {
        commands: {
          default: 'deny',
          rules: [{ id: 'st', match: { command: 'git', args: ['status'] }, action: 'allow' }],
        },
      },
    },
  ]).policy;
  assert.equal(decideShell('git $SUB', p2).action, 'deny');
  assert.equal(decideShell('git status', p2).action, 'allow');
});

test('default policy asks before rm -rf and denies git push in every form', () => {
  const p = defaultPolicy();
  assert.equal(decideCommand(['sudo', '/bin/rm', '-fr', '/'], p).action, 'ask');
  assert.equal(decideCommand(['bash', '-c', 'git push --force origin HEAD:main'], p).action, 'deny');
  assert.equal(decideCommand(['ls'], p).action, 'allow');
});

test('a broken rule engine fails closed', () => {
  const broken = {
    ...defaultPolicy(),
    commands: { rules: null, default: 'allow', askTimeoutSeconds: 1 },
  } as unknown as ReturnType<typeof defaultPolicy>;
  const d = decideCommand(['ls'], broken);
  assert.equal(d.action, 'deny');
  assert.equal(d.rule, 'commands.engine');
});
