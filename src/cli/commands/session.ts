import type { Command } from 'commander';
import { constants as osConstants } from 'node:os';
import {
  AirlockError,
  ExitCode,
  ensureHome,
  phase,
  type HomeLayout,
  escapeForTerminal as esc,
} from '../../common/index.ts';
import { AuditStore } from '../../audit/index.ts';
// The client entry only: `exec`, `session stop` and friends talk to a running supervisor
// and must not pay for the session core and the policy engine; `run` loads them itself.
import { listSessions, recoverSessions, type SessionSummary, request, startDetached } from '../../session/client.ts';
import type { OpenSessionOptions, Session, StopResult } from '../../session/index.ts';
import { bad, dim, ok, otherHostsNotShown, printJson, table, warn, progress, setExit } from '../output.ts';
import type { HostSession } from '../../hosts/index.ts';
import { preferInterpretedSchemas } from '../schemas.ts';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

function sessionOptions(cmd: Command): Command {
  return cmd
    .option('--repo <path>', 'repository to snapshot (default: current directory)')
    .option('--base <ref>', 'commit, branch or tag the workspace starts from (default: HEAD)')
    .option('--policy <file>', "repo policy file to use instead of the base commit's airlock.yaml")
    .option('--org-policy <file>', 'organisation policy (default: $AIRLOCK_ORG_POLICY or /etc/airlock/policy.yaml)')
    .option(
      '--shadow-policy <file>',
      'candidate policy for layers in shadow mode (modes.*: shadow): its decisions are recorded beside the enforced ones',
    )
    .option(
      '--allow-host <host[:port]>',
      'grant one more destination for this session only (recorded); repeatable',
      collect,
      [],
    )
    .option(
      '--agent <name>',
      'agent profile (`airlock agents` lists them): sets the agent up inside the sandbox and names it in the record',
      'generic',
    );
}

function toOptions(o: Record<string, unknown>, command?: string[]): OpenSessionOptions {
  return {
    repo: o.repo as string | undefined,
    base: o.base as string | undefined,
    policyFile: o.policy as string | undefined,
    orgPolicy: o.orgPolicy as string | undefined,
    shadowPolicy: o.shadowPolicy as string | undefined,
    allowHosts: o.allowHost as string[],
    agent: o.agent as string,
    command,
  };
}

function home(): string {
  return ensureHome().root;
}

/**
 * Records what crashed or starved sessions left behind (raw traces, a missing end) and says
 * so on stderr; a store that still cannot take it leaves everything for the next time.
 */
export function recoverAndReport(store: AuditStore, layout: HomeLayout): void {
  let rec;
  try {
    rec = recoverSessions(store, layout, true);
  } catch (e) {
    process.stderr.write(
      `${warn('airlock:', process.stderr)} could not recover crashed sessions yet: ${e instanceof Error ? e.message : String(e)}\n`,
    );
    return;
  }
  for (const r of rec) {
    const what = [
      r.recovered ? `${r.recovered} event(s) recovered from its raw trace` : '',
      r.aborted ? 'recorded as aborted' : '',
      r.cgroups ? `${r.cgroups} cgroup dir(s) removed` : '',
    ].filter(Boolean);
    if (what.length)
      process.stderr.write(
        `${warn('airlock:', process.stderr)} session ${r.session} ended without finishing its record: ${what.join(', ')}\n`,
      );
  }
}

function summarize(s: SessionSummary): string {
  const st =
    s.state === 'stopped'
      ? s.status === 0
        ? ok('stopped', process.stderr)
        : warn(`stopped (${s.status ?? '?'})`, process.stderr)
      : s.state;
  return `${st}; ${s.events} events, ${s.denials} denied; result: ${s.commits ?? 0} commit(s)${s.dirty ? ' incl. uncommitted work' : ''}`;
}

const HIDDEN_SHOWN = 10;
const HIDDEN_HOW: Record<string, string> = {
  'too-large':
    'over secrets.workspace.maxFileKB: raise it, or name them in secrets.workspace.binaryPaths to check their printable text instead',
  glob: 'matched secrets.workspace.hide',
  'binary-with-secret': 'a binary holding a secret',
};

/** Files sanitization removed from the agent's view, by reason, with how to let them in. */
function hiddenFiles(store: AuditStore, session: string): string[] {
  const rows = store.tables
    .prepare(
      "SELECT json_extract(data, '$.file') AS file, json_extract(data, '$.reason') AS reason FROM events WHERE session = ? AND type = 'secrets.hidden' ORDER BY seq",
    )
    .all(session) as { file: string; reason: string }[];
  const byReason = new Map<string, string[]>();
  for (const r of rows) byReason.set(r.reason, [...(byReason.get(r.reason) ?? []), r.file]);
  return [...byReason].map(([reason, files]) => {
    const names =
      files
        .slice(0, HIDDEN_SHOWN)
        .map((f) => esc(JSON.stringify(f)))
        .join(', ') + (files.length > HIDDEN_SHOWN ? `, … (${files.length - HIDDEN_SHOWN} more)` : '');
    return `${files.length} file(s) hidden from the agent (${reason}; ${HIDDEN_HOW[reason] ?? 'see the audit log'}): ${names}`;
  });
}

/** `airlock run`: one agent command in a new session, then what it was refused and found. */
async function runAgent(command: string[], o: Record<string, unknown>, cmd: Command): Promise<void> {
  progress('preparing workspace snapshot');
  // the agents' light entry: profiles (zod, yaml) load only when the cached one does not fit
  const [{ Session }, { applyProfile }] = await Promise.all([
    import('../../session/index.ts'),
    import('../../agents/apply.ts'),
  ]);
  phase('run.modules');
  const options = { ...toOptions(o, command), beforePolicyParse: preferInterpretedSchemas };
  const profile = await applyProfile(o.agent as string, command, { session: options });
  phase('run.profile');
  const session = await Session.open({ ...options, ...profile.openOptions });
  process.stderr.write(
    `${dim('airlock:', process.stderr)} session ${session.id} (base ${session.baseCommit.slice(0, 12)}, runtime: ${session.runtime}, ${session.mechanisms.limits}, network: ${session.mechanisms.network})\n`,
  );
  const interrupted = stopOnSignals(session);
  let status: number;
  try {
    await profile.prepare(session);
    const h = await session.exec({ argv: profile.argv, stdio: 'inherit', via: 'run' });
    const r = await Promise.race([h.done, session.limitHit.then(async () => h.done)]);
    status = r.status;
    phase('run.command');
  } catch (e) {
    await session.stop('command failed to start');
    throw e;
  }
  const res = await session.stop(interrupted.signal ? `interrupted by ${interrupted.signal}` : 'agent exited');
  reportRun(session, res);
  phase('run.report');
  setExit(
    cmd,
    res.recordingFailure ? ExitCode.CANNOT_RECORD : interrupted.signal ? signalExitCode(interrupted.signal) : status,
  );
}

/** First signal: stop the agent, capture, record; a second one forces the end at once. */
function stopOnSignals(session: Session): { signal: NodeJS.Signals | null } {
  const interrupted: { signal: NodeJS.Signals | null } = { signal: null };
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted.signal) {
      process.stderr.write(
        `${bad('airlock:', process.stderr)} ${sig} again: ending session ${session.id} now, without capture\n`,
      );
      session.abandon(`interrupted by ${interrupted.signal}; forced by a second ${sig}`);
      process.exit(signalExitCode(sig));
    }
    interrupted.signal = sig;
    process.stderr.write(
      `${dim('airlock:', process.stderr)} ${sig}: stopping the agent and capturing its work (send it again to force)\n`,
    );
    void session.stop(`interrupted by ${sig}`);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
  return interrupted;
}

/** What a reviewer wants to know first: the session's summary, what was blocked by rule, hidden files, findings. */
function reportRun(session: Session, res: StopResult): void {
  const store = new AuditStore(session.home.auditDb);
  const s = listSessions(store, session.id)[0];
  // what was blocked, by rule: the first thing a reviewer wants to know
  const denied = store.tables
    .prepare(
      "SELECT rule, COUNT(*) AS n FROM events WHERE session = ? AND decision = 'deny' GROUP BY rule ORDER BY n DESC",
    )
    .all(session.id) as { rule: string | null; n: number }[];
  const findings = store.tables
    .prepare("SELECT COUNT(*) AS n FROM events WHERE session = ? AND type = 'detect.finding'")
    .get(session.id) as { n: number };
  const hidden = hiddenFiles(store, session.id);
  store.close();
  if (s) process.stderr.write(`${dim('airlock:', process.stderr)} session ${session.id} ${summarize(s)}\n`);
  if (denied.length)
    process.stderr.write(
      `${dim('airlock:', process.stderr)} blocked: ${denied.map((d) => `${esc(d.rule ?? 'unnamed')} ×${d.n}`).join(', ')}\n`,
    );
  for (const line of hidden) process.stderr.write(`${warn('airlock:', process.stderr)} ${line}\n`);
  if (findings.n)
    process.stderr.write(
      `${warn('airlock:', process.stderr)} ${findings.n} detection finding(s) (see airlock audit show ${session.id})\n`,
    );
  if (res.reason.startsWith('limit')) process.stderr.write(`${bad('airlock:', process.stderr)} ${res.reason}\n`);
  if (res.recordingFailure) {
    process.stderr.write(
      `${bad('airlock:', process.stderr)} Airlock could not record, so it froze and ended the agent: ${res.recordingFailure}\n`,
    );
    process.stderr.write(
      `${dim('hint:', process.stderr)} free space where AIRLOCK_HOME lives (df -h "$AIRLOCK_HOME"); what could not be recorded then is recovered by the next airlock run or \`airlock sessions\`\n`,
    );
  }
  process.stderr.write(
    `${dim('airlock:', process.stderr)} timeline: airlock audit show ${session.id}${res.result && res.result.commits.length ? `   change: airlock review list` : ''}\n`,
  );
}

export function registerSession(program: Command): void {
  sessionOptions(program.command('run'))
    .description(
      "Run an agent command in a new sandboxed session; exits with the agent's status. The session id is printed on stderr.",
    )
    .argument('<command...>', 'the agent command (put it after --)')
    .addHelpText(
      'after',
      '\nExamples:\n  airlock run -- bash\n  airlock run --allow-host registry.npmjs.org -- npm test\n  airlock run --agent codex -- codex exec "fix the failing test"',
    )
    .action(runAgent);

  const sess = program
    .command('session')
    .description('Long-running sessions for agent frameworks that call tools one at a time');
  sessionOptions(sess.command('start'))
    .description('Start a session that stays up; prints its id')
    .option('--json', 'print {"id": …} as JSON')
    .action(async (o: Record<string, unknown>) => {
      const id = await startDetached(toOptions(o, ['session', 'start']));
      if (o.json) printJson({ id });
      else process.stdout.write(id + '\n');
    });
  sess
    .command('stop')
    .description('Stop a session: end its processes and capture its result')
    .argument('<session>', 'session id')
    .option('--json', 'print the result as JSON')
    .action(async (id: string, o: { json?: boolean }) => {
      const h = home();
      assertKnown(h, id);
      const r = await request(h, id, { t: 'stop' });
      if (o.json) printJson(r.t === 'stopped' ? r.result : r);
      else {
        const res = (r as { result: { result: { commits: string[]; dirty: boolean } | null } }).result.result;
        process.stdout.write(
          `stopped ${id}; result: ${res ? `${res.commits.length} commit(s)${res.dirty ? ' incl. uncommitted work' : ''}` : 'none (capture failed, see the audit log)'}\n`,
        );
      }
    });
  for (const [name, desc] of [
    ['pause', 'Freeze every process of a session'],
    ['resume', 'Resume a paused session'],
    ['kill', 'End a session now (its result is still captured)'],
  ] as const) {
    sess
      .command(name)
      .description(desc)
      .argument('<session>', 'session id')
      .action(async (id: string) => {
        const h = home();
        assertKnown(h, id);
        const r = await request(
          h,
          id,
          name === 'kill'
            ? { t: 'kill', reason: 'airlock session kill' }
            : name === 'pause'
              ? { t: 'pause' }
              : { t: 'resume' },
        );
        process.stdout.write(`${name}: ${JSON.stringify(r.t === 'ok' ? r.data : 'done')}\n`);
      });
  }

  program
    .command('exec')
    .description("Run a command in a running session's sandbox; output and exit status pass through")
    .argument('<session>', 'session id')
    .argument('<command...>', 'command (after --)')
    .option('--cwd <dir>', 'working directory inside the sandbox (default /workspace)')
    .action(async (id: string, command: string[], o: { cwd?: string }, cmd: Command) => {
      const h = home();
      assertKnown(h, id);
      const r = await request(
        h,
        id,
        { t: 'exec', argv: command, cwd: o.cwd },
        { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin.isTTY ? undefined : process.stdin },
      );
      setExit(cmd, r.t === 'exit' ? r.status : 1);
    });

  program
    .command('sessions')
    .description('List sessions: id, command, base commit, start/end, exit status, counts of events and denials')
    .option('--json', 'machine-readable output')
    .action(printSessions);
}

/** `airlock sessions`: this host's sessions (and, with a shared store, every other host's) as a table or JSON. */
async function printSessions(o: { json?: boolean }): Promise<void> {
  const layout = ensureHome();
  const store = new AuditStore(layout.auditDb);
  let rows: HostSession[];
  let shared: boolean;
  try {
    recoverAndReport(store, layout);
    // with a shared store (the sessions' own resolution), every other host's sessions too, in one
    // shape; without one, this host's alone, without loading the policy engine or PostgreSQL's client
    const { sharedStorePossible, localSessions } = await import('../../hosts/local.ts');
    if (sharedStorePossible()) {
      const { workView } = await import('../../hosts/index.ts');
      const view = workView(store, { onUnavailable: otherHostsNotShown });
      rows = await view.sessions();
      shared = view.sharedUrl !== undefined;
    } else {
      rows = localSessions(store);
      shared = false;
    }
  } finally {
    store.close();
  }
  if (o.json) return printJson(rows);
  if (!rows.length) {
    process.stdout.write('no sessions yet: start one with `airlock run -- <command>`\n');
    return;
  }
  process.stdout.write(
    table(
      rows.map((s) => [
        ...(shared ? [s.thisHost ? 'this host' : esc(s.host)] : []),
        esc(s.id),
        s.state === 'stopped' ? String(s.status ?? '-') : s.state,
        esc((s.command ?? []).join(' ').slice(0, 40)),
        esc((s.baseCommit ?? '').slice(0, 10)),
        s.runtime ?? '-',
        s.start.replace('T', ' ').slice(0, 19),
        s.end ? s.end.replace('T', ' ').slice(11, 19) : '-',
        String(s.events),
        s.denials ? bad(String(s.denials)) : '0',
      ]),
      [
        ...(shared ? ['HOST'] : []),
        'SESSION',
        'EXIT',
        'COMMAND',
        'BASE',
        'RUNTIME',
        'START',
        'END',
        'EVENTS',
        'DENIED',
      ],
    ) + '\n',
  );
}

/** The shell convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM). */
function signalExitCode(sig: NodeJS.Signals): number {
  return 128 + (osConstants.signals[sig] ?? 0);
}

function assertKnown(home: string, id: string): void {
  const store = new AuditStore(ensureHome(home).auditDb);
  try {
    const s = listSessions(store, id)[0];
    if (!s) throw new AirlockError('NOT_FOUND', `no such session: ${id}`, 'list sessions with `airlock sessions`');
    if (s.state === 'stopped')
      throw new AirlockError(
        'BAD_STATE',
        `session ${id} has already stopped`,
        `see its timeline with \`airlock audit show ${id}\``,
      );
    if (s.state === 'aborted' || s.state === 'failed' || s.state === 'interrupted')
      throw new AirlockError(
        'BAD_STATE',
        `session ${id} is not running (${s.state})`,
        `see \`airlock audit show ${id}\``,
      );
  } finally {
    store.close();
  }
}
