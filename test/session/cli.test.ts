// What a user sees from the CLI: run passes status and output through; long-running
// sessions take exec/stop; bad input gets a clear error and a distinct exit code and
// loses nothing already recorded; a supervisor killed with SIGKILL leaves no sandbox
// process behind and a log that verifies.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { AuditStore, verifyChain } from '../../src/audit/index.ts';
import { airlock, makeRepo, tmp, cleanup } from '../helpers.ts';

let home: string;
let repo: string;

function eventCount(): number {
  const s = new AuditStore(join(home, 'audit.db'));
  try {
    return s.count();
  } finally {
    s.close();
  }
}

describe('airlock CLI', () => {
  before(() => {
    home = tmp('airlock-home-');
    repo = makeRepo({ 'a.txt': 'a\n' });
  });
  after(() => cleanup(home, repo));

  it('run passes output and exit status through and prints the session id on stderr', () => {
    const r = airlock(['run', '--', 'sh', '-c', 'echo out; echo err >&2; echo more >> a.txt; exit 7'], {
      cwd: repo,
      home,
    });
    assert.equal(r.status, 7, r.stderr);
    assert.equal(r.stdout, 'out\n');
    assert.match(r.stderr, /err\n/);
    assert.match(r.stderr, /session (ses-[0-9a-z]{12})/);
    const sig = airlock(['run', '--', 'sh', '-c', 'kill -TERM $$'], { cwd: repo, home });
    assert.equal(sig.status, 128 + 15);
  });

  it('lists sessions with counts, as a table and as JSON', () => {
    const j = airlock(['sessions', '--json'], { home });
    assert.equal(j.status, 0, j.stderr);
    const rows = JSON.parse(j.stdout) as {
      id: string;
      status: number;
      events: number;
      commits: number;
      dirty: boolean;
      baseCommit: string;
    }[];
    assert.ok(rows.length >= 2);
    assert.equal(rows[0]!.status, 7);
    assert.ok(rows[0]!.events > 3);
    assert.equal(rows[0]!.commits, 1);
    assert.equal(rows[0]!.dirty, true);
    assert.match(rows[0]!.baseCommit, /^[0-9a-f]{40}$/);
    const t = airlock(['sessions'], { home });
    assert.match(t.stdout, /SESSION\s+EXIT\s+COMMAND/);
  });

  it('long-running session: start, exec with stdin and status, stop, second stop refused', () => {
    const st = airlock(['session', 'start', '--json', '--repo', repo], { home });
    assert.equal(st.status, 0, st.stderr);
    const id = JSON.parse(st.stdout).id as string;
    const e1 = airlock(['exec', id, '--', 'sh', '-c', 'cat > note.txt; wc -c < note.txt; exit 3'], {
      home,
      input: 'hello\n',
    });
    assert.equal(e1.status, 3, e1.stderr);
    assert.equal(e1.stdout.trim(), '6');
    const e2 = airlock(['exec', id, '--', 'cat', 'note.txt'], { home });
    assert.equal(e2.stdout, 'hello\n', 'state persists between commands');
    const nf = airlock(['exec', id, '--', 'no-such-agent-binary'], { home });
    assert.equal(nf.status, 127);
    assert.match(nf.stderr, /command not found in the sandbox: no-such-agent-binary/);
    const stop = airlock(['session', 'stop', '--json', id], { home });
    assert.equal(stop.status, 0, stop.stderr);
    assert.equal(JSON.parse(stop.stdout).result.dirty, true);
    const again = airlock(['session', 'stop', id], { home });
    assert.equal(again.status, 75);
    assert.match(again.stderr, /already stopped/);
    assert.doesNotMatch(again.stderr, /at .*\.ts:\d+/, 'no stack trace');
  });

  it('bad input: each mistake gets its own clear error and exit code, and nothing recorded is lost', () => {
    const before = eventCount();
    const badPolicy = join(home, 'bad.yaml');
    writeFileSync(badPolicy, 'sandbox:\n  limits:\n    memoryMB: lots\n');
    const unknown = join(home, 'unknown.yaml');
    writeFileSync(unknown, 'sandbox:\n  limitz: {}\n');
    const broken = join(home, 'broken.yaml');
    writeFileSync(broken, 'sandbox: [\n');
    const notGit = tmp('airlock-notgit-');
    mkdirSync(join(notGit, 'x'));
    const cases: { args: string[]; cwd?: string; code: number; msg: RegExp }[] = [
      {
        args: ['run', '--policy', badPolicy, '--', 'true'],
        cwd: repo,
        code: 65,
        msg: /bad\.yaml:3:5: sandbox\.limits\.memoryMB: .*expected number/,
      },
      {
        args: ['run', '--policy', unknown, '--', 'true'],
        cwd: repo,
        code: 65,
        msg: /unknown\.yaml:2:3: sandbox\.limitz: .*unknown key/,
      },
      { args: ['policy', 'check', broken], code: 65, msg: /broken\.yaml:\d+:\d+: .*YAML syntax/ },
      { args: ['run', '--repo', join(home, 'missing'), '--', 'true'], code: 66, msg: /repository not found/ },
      { args: ['run', '--repo', notGit, '--', 'true'], code: 67, msg: /not a git repository/ },
      {
        args: ['run', '--base', 'no-such-branch', '--', 'true'],
        cwd: repo,
        code: 68,
        msg: /base ref does not exist: no-such-branch/,
      },
      { args: ['run', '--', 'definitely-not-an-agent'], cwd: repo, code: 127, msg: /command not found in the sandbox/ },
      { args: ['session', 'stop', 'ses-000000000000'], code: 66, msg: /no such session/ },
      { args: ['run'], cwd: repo, code: 64, msg: /missing required argument/ },
    ];
    for (const c of cases) {
      const r = airlock(c.args, { cwd: c.cwd, home });
      assert.equal(r.status, c.code, `${c.args.join(' ')} → ${r.status}: ${r.stderr}`);
      assert.match(r.stderr, c.msg, c.args.join(' '));
      assert.doesNotMatch(r.stderr, /\n\s+at .*:\d+:\d+/, `stack trace for ${c.args.join(' ')}`);
    }
    assert.ok(eventCount() >= before, 'no event lost');
    assert.equal(verifyChain(join(home, 'audit.db')).ok, true);
    cleanup(notGit);
  });

  it('a supervisor killed with SIGKILL leaves no sandbox process and a log that verifies', async () => {
    const st = airlock(['session', 'start', '--json', '--repo', repo], { home });
    const id = JSON.parse(st.stdout).id as string;
    const marker = `sleep-${id}`;
    // a long-running agent command, started through the supervisor
    const bg = spawnSync(
      'bash',
      [
        '-c',
        `AIRLOCK_HOME=${home} NO_COLOR=1 timeout 5 ${join(process.cwd(), 'bin', 'airlock')} exec ${id} -- bash -c 'exec -a ${marker} sleep 300' & sleep 1.5; pgrep -f ${marker} | head -1`,
      ],
      { encoding: 'utf8' },
    );
    assert.match(bg.stdout, /\d+/, 'agent process was running');
    const sessions = JSON.parse(airlock(['sessions', '--json'], { home }).stdout) as { id: string }[];
    assert.ok(sessions.some((s) => s.id === id));
    const s = new AuditStore(join(home, 'audit.db'));
    const start = s.query({ session: id, type: 'session.start' })[0]!;
    s.close();
    process.kill(start.data.supervisorPid as number, 'SIGKILL');
    let left = '';
    for (let i = 0; i < 50; i++) {
      left = spawnSync('pgrep', ['-f', marker], { encoding: 'utf8' }).stdout.trim();
      if (!left) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(left, '', 'sandbox process survived its supervisor');
    assert.equal(verifyChain(join(home, 'audit.db')).ok, true);
    const after = JSON.parse(airlock(['sessions', '--json'], { home }).stdout) as { id: string; state: string }[];
    assert.equal(after.find((x) => x.id === id)?.state, 'aborted');
  });
});
