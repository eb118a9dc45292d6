// Process telemetry from strace (ptrace + --seccomp-bpf, so only the traced syscalls
// stop): exec of every program (also static binaries, os.execv, scripts exec'ing
// others: the kernel reports them all), fork/clone for parentage, chdir for cwd,
// exit status, failed opens and connects as escape/exfiltration probes. This file
// turns strace's text into events; it never trusts it for anything but reporting.
// It also reads back the raw trace a session left behind (supervisor killed, disk full):
// recoverTrace() gives the audit events it holds, for the recovery on the next start.

import { closeSync, openSync, readSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import type { AuditEventInput } from '../common/index.ts';

export interface ProcessExec {
  kind: 'exec';
  pid: number;
  ppid: number | null;
  argv: string[];
  path: string;
  cwd: string | null;
  ts: number;
  ok: boolean;
  error?: string;
  /** the trace ended inside the call (strace killed): outcome unknown */ unfinished?: boolean;
}
export interface ProcessExit {
  kind: 'exit';
  pid: number;
  ppid: number | null;
  exitCode: number | null;
  signal: string | null;
  ts: number;
  startTs: number | null;
  argv0: string | null;
}
export interface Probe {
  kind: 'probe';
  pid: number;
  ppid: number | null;
  syscall: string;
  target: string;
  error: string;
  ts: number;
  argv0: string | null;
}
export type TraceEvent = ProcessExec | ProcessExit | Probe;

export const TRACED_SYSCALLS = [
  'execve',
  'execveat',
  'clone',
  'clone3',
  'fork',
  'vfork',
  'chdir',
  'fchdir',
  'connect',
  'sendto',
  'sendmsg',
  'sendmmsg',
  'openat',
  'open',
  'unlinkat',
  'mkdirat',
  'symlinkat',
  'linkat',
  'renameat2',
];

/** Decodes one C-style string literal body as strace prints it. */
export function unescapeC(text: string): string {
  let out = '';
  for (let index = 0; index < text.length; index++) {
    const c = text[index]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const escaped = text[++index];
    switch (escaped) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case 'v':
        out += '\v';
        break;
      case 'f':
        out += '\f';
        break;
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case 'x': {
        const h = text.slice(index + 1, index + 3);
        out += String.fromCharCode(parseInt(h, 16));
        index += 2;
        break;
      }
      default: {
        if (escaped !== undefined && /[0-7]/.test(escaped)) {
          let j = index;
          let oct = '';
          while (j < text.length && oct.length < 3 && /[0-7]/.test(text[j]!)) oct += text[j++];
          out += String.fromCharCode(parseInt(oct, 8));
          index = j - 1;
        } else if (escaped !== undefined) out += escaped;
      }
    }
  }
  return out;
}

/** Reads consecutive "…" literals from position i; returns strings and the end index. */
function readStrings(s: string, i: number, max: number): { values: string[]; end: number } {
  const values: string[] = [];
  while (i < s.length && values.length < max) {
    while (s[i] === ' ' || s[i] === ',') i++;
    if (s[i] !== '"') break;
    let j = i + 1;
    while (j < s.length && s[j] !== '"') {
      if (s[j] === '\\') j++;
      j++;
    }
    let v = unescapeC(s.slice(i + 1, j));
    i = j + 1;
    if (s.startsWith('...', i)) {
      v += '…';
      i += 3;
    }
    values.push(v);
  }
  return { values, end: i };
}

const LINE = /^(\d+)\s+(\d+\.\d+)\s+(.*)$/;
const EXIT = /^\+\+\+ (?:exited with (\d+)|killed by (SIG\w+)(?: \(core dumped\))?) \+\+\+$/;
const RESULT = /\)\s+=\s+(-?\d+|\?)(?:\s+\/\* (\d+) in strace's PID NS \*\/)?(?:\s+(E\w+)(?:\s+\(([^)]*)\))?)?\s*$/;

interface ProcState {
  ppid: number | null;
  cwd: string | null;
  startTs: number | null;
  argv0: string | null;
}

export class TraceParser {
  private pending = new Map<number, { head: string; ts: number }>();
  private procs = new Map<number, ProcState>();
  private partial = '';
  /** The first process in the trace: Airlock's own launch chain (setpriv → bwrap), never the agent. */
  rootPid: number | null = null;
  // exec lines can arrive before the parent's clone() returns: hold them until it does
  private waiting: ProcessExec[] = [];
  private release(out: TraceEvent[], all: boolean): void {
    const keep: ProcessExec[] = [];
    for (const e of this.waiting) {
      const pp = this.procs.get(e.pid)?.ppid ?? null;
      if (pp !== null) out.push({ ...e, ppid: pp });
      else if (all) out.push(e);
      else keep.push(e);
    }
    this.waiting = keep.length > 64 ? (out.push(...keep.splice(0, keep.length - 64)), keep) : keep;
  }
  constructor(initialCwd: string | null = null) {
    this.initialCwd = initialCwd;
  }
  private initialCwd: string | null;

  private proc(pid: number): ProcState {
    let p = this.procs.get(pid);
    if (!p) {
      p = { ppid: null, cwd: this.initialCwd, startTs: null, argv0: null };
      this.procs.set(pid, p);
    }
    return p;
  }

  /** Feed raw strace output; returns the events completed by it. */
  push(chunk: string): TraceEvent[] {
    const text = this.partial + chunk;
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    const out: TraceEvent[] = [];
    for (const l of lines) this.line(l, out);
    return out;
  }

  /**
   * End of the trace. A last line cut off mid-write and calls still "<unfinished ...>" mean
   * strace died inside them (supervisor killed): an exec among them was attempted by an agent
   * process, so it is reported (unfinished: outcome unknown) rather than dropped.
   */
  flush(): TraceEvent[] {
    const out: TraceEvent[] = [];
    if (this.partial) {
      const last = this.partial;
      this.partial = '';
      this.line(RESULT.test(last) || / \+\+\+$/.test(last) ? last : `${last} <unfinished ...>`, out);
    }
    for (const [pid, { head, ts }] of this.pending) {
      const call = /^(execve|execveat)\((.*)$/.exec(head);
      if (!call) continue;
      const p = this.proc(pid);
      const { argv, path } = execArgs(call[1]!, call[2]!);
      this.waiting.push({ kind: 'exec', pid, ppid: p.ppid, argv, path, cwd: p.cwd, ts, ok: true, unfinished: true });
    }
    this.pending.clear();
    this.release(out, true);
    return out;
  }

  /** A process ended (exited or killed): its exit event, and it is forgotten. */
  private exited(pid: number, ts: number, ex: RegExpExecArray, out: TraceEvent[]): void {
    this.release(out, true);
    const p = this.proc(pid);
    out.push({
      kind: 'exit',
      pid,
      ppid: p.ppid,
      exitCode: ex[1] !== undefined ? Number(ex[1]) : null,
      signal: ex[2] ?? null,
      ts,
      startTs: p.startTs,
      argv0: p.argv0,
    });
    this.procs.delete(pid);
  }

  /** An execve/execveat returned: the exec event (held back until the process's parent is known). */
  private execed(
    pid: number,
    ts: number,
    call: { name: string; rest: string; ret: string; errno: string | null },
    out: TraceEvent[],
  ): void {
    const tracee = this.proc(pid);
    const { argv, path } = execArgs(call.name, call.rest);
    const ok = call.ret === '0';
    if (ok) {
      tracee.startTs = ts;
      tracee.argv0 = argv[0] ?? path ?? null;
    }
    const ev: ProcessExec = {
      kind: 'exec',
      pid,
      ppid: tracee.ppid,
      argv,
      path,
      cwd: tracee.cwd,
      ts,
      ok,
      ...(ok ? {} : { error: call.errno ?? 'failed' }),
    };
    if (ev.ppid === null) this.waiting.push(ev);
    else out.push(ev);
  }

  private line(raw: string, out: TraceEvent[]): void {
    const m = LINE.exec(raw);
    if (!m) return;
    const pid = Number(m[1]);
    this.rootPid ??= pid;
    const ts = Number(m[2]);
    let body = m[3]!;
    const ex = EXIT.exec(body);
    if (ex) return this.exited(pid, ts, ex, out);
    if (body.endsWith('<unfinished ...>')) {
      this.pending.set(pid, { head: body.slice(0, -'<unfinished ...>'.length), ts });
      return;
    }
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(body);
    if (resumed) {
      const head = this.pending.get(pid)?.head;
      this.pending.delete(pid);
      if (!head) return;
      body = head + resumed[2];
    }
    const call = /^(\w+)\((.*)$/.exec(body);
    if (!call) return;
    const name = call[1]!;
    const rest = call[2]!;
    const r = RESULT.exec(body);
    // clone() returns the child's pid in the tracee's pid namespace; --decode-pids=pidns
    // adds the pid as strace (and every line prefix) sees it.
    const ret = r ? (r[2] ?? r[1]!) : '?';
    const errno = r?.[3] ?? null;
    const tracee = this.proc(pid);
    switch (name) {
      case 'execve':
      case 'execveat':
        return this.execed(pid, ts, { name, rest, ret, errno }, out);
      case 'clone':
      case 'clone3':
      case 'fork':
      case 'vfork': {
        const child = Number(ret);
        if (child > 0) {
          const c = this.proc(child);
          c.ppid = pid;
          c.cwd = c.cwd ?? tracee.cwd;
          c.argv0 = c.argv0 ?? tracee.argv0;
          c.startTs = c.startTs ?? ts;
          this.release(out, false);
        }
        return;
      }
      case 'chdir': {
        if (ret !== '0') return;
        const d = readStrings(rest, 0, 1).values[0];
        if (d) tracee.cwd = d.startsWith('/') ? d : joinPath(tracee.cwd ?? '/', d);
        return;
      }
      case 'fchdir': {
        if (ret !== '0') return;
        const fd = /^\d+<([^>]*)>/.exec(rest);
        if (fd) tracee.cwd = fd[1]!;
        return;
      }
      default: {
        if (ret !== '-1' || !errno) return;
        const target = probeTarget(name, rest, tracee.cwd);
        out.push({
          kind: 'probe',
          pid,
          ppid: tracee.ppid,
          syscall: name,
          target,
          error: errno,
          ts,
          argv0: tracee.argv0,
        });
      }
    }
  }
}

/** What a failed call was probing: the socket family, the peer address, or the path (made absolute). */
function probeTarget(name: string, rest: string, cwd: string | null): string {
  if (name === 'socket') return /^\s*(\w+)/.exec(rest)?.[1] ?? 'unknown';
  if (NETWORK_SYSCALLS.has(name)) return socketTarget(rest);
  const target = readStrings(rest, rest.indexOf('"'), 1).values[0] ?? '';
  return target && !target.startsWith('/') ? joinPath(cwd ?? '/', target) : target;
}

/** Program path and argv of an execve/execveat call's arguments text. */
function execArgs(name: string, rest: string): { argv: string[]; path: string } {
  const i = name === 'execveat' ? rest.indexOf(',') + 1 : 0;
  const path = readStrings(rest, i, 1);
  const arr = rest.indexOf('[', path.end);
  return { argv: arr >= 0 ? readStrings(rest, arr + 1, 4096).values : [], path: path.values[0] ?? '' };
}

/** Syscalls whose failure is a network attempt (the target is a socket address). */
const NETWORK_SYSCALLS = new Set(['connect', 'sendto', 'sendmsg', 'sendmmsg']);

/**
 * The address a failed connect/send went to, as `1.2.3.4:53`, `[2001:db8::1]:443` or
 * `unix:/path`. Quoted payloads are dropped first: a sent buffer must not be able to
 * spell an address of its choosing.
 */
export function socketTarget(args: string): string {
  // keep only literals that strace itself wrote as addresses; every other literal (payload) becomes ""
  const a = args.replace(/"(?:[^"\\]|\\.)*"(?:\.\.\.)?/g, (lit, at: number) =>
    /(?:inet_addr\(|inet_pton\(AF_INET6?, |sun_path=)$/.test(args.slice(Math.max(0, at - 24), at)) ? lit : '""',
  );
  const un = /sun_path="([^"]*)"/.exec(a);
  if (un) return `unix:${un[1]}`;
  const port = /sin6?_port=htons\((\d+)\)/.exec(a)?.[1] ?? '?';
  const v6 = /inet_pton\(AF_INET6, "([^"]*)"/.exec(a);
  if (v6) return `[${v6[1]}]:${port}`;
  const v4 = /sin_addr=inet_addr\("([^"]*)"\)/.exec(a);
  if (v4) return `${v4[1]}:${port}`;
  return 'unknown';
}

export function joinPath(base: string, rel: string): string {
  const parts = (base + '/' + rel).split('/');
  const out: string[] = [];
  for (const s of parts) {
    if (!s || s === '.') continue;
    if (s === '..') out.pop();
    else out.push(s);
  }
  return '/' + out.join('/');
}

const WORKSPACE = '/workspace';

/** Lines the notify tracer writes about its own record: kernel events dropped (netlink buffer full), refusals no longer recorded one by one. */
const TRACER_NOTES: Record<string, string> = {
  airlock_tracer_lost_events:
    'the kernel dropped process events (proc connector buffer full): some forks, execs or exits may be missing',
  airlock_tracer_suppressed:
    'more than 1,000 refused socket() calls in one command: later ones were refused but not recorded one by one',
};

export function classifyProbe(e: Probe): { rule: string; reason: string; severity: 'medium' | 'high' } | null {
  const target = e.target;
  if (e.syscall === 'socket')
    return {
      rule: 'builtin.socket-families',
      reason: `socket family ${target} refused (only AF_INET and AF_INET6 are allowed)`,
      severity: 'high',
    };
  if (NETWORK_SYSCALLS.has(e.syscall)) {
    if (target.startsWith('unix:'))
      return { rule: 'builtin.no-host-sockets', reason: 'unix socket connection refused', severity: 'high' };
    if (/^(127\.0\.0\.1|\[::1\]):3128$/.test(target)) return null;
    const what = e.syscall === 'connect' ? 'direct network connection' : 'datagram (UDP) sent';
    return { rule: 'builtin.network-isolation', reason: `${what} to ${target} (${e.error})`, severity: 'high' };
  }
  if (e.error === 'EROFS')
    return { rule: 'builtin.read-only-system', reason: `write to read-only path ${target}`, severity: 'medium' };
  if (e.error === 'EACCES' || e.error === 'EPERM')
    return { rule: 'builtin.permission', reason: `${e.syscall} ${target}: ${e.error}`, severity: 'medium' };
  if (
    e.error === 'ENOENT' &&
    /^\/(root|home\/(?!agent)[^/]+|proc\/(?!self|thread-self)\d+\/|run\/|var\/run\/|etc\/(shadow|sudoers|ssh\/))/.test(
      target,
    )
  ) {
    return {
      rule: 'builtin.host-invisible',
      reason: `probe of host path ${target} (not visible in the sandbox)`,
      severity: 'high',
    };
  }
  if (
    /\/\.ssh\/|\/\.aws\/|\/\.config\/gcloud|\/\.kube\/|\/\.docker\/|\/\.netrc$/.test(target) &&
    !target.startsWith(WORKSPACE + '/')
  ) {
    return { rule: 'builtin.credential-probe', reason: `probe of credential path ${target}`, severity: 'high' };
  }
  return null;
}

/**
 * Turns trace events into audit events for one command. Agent processes: every process of
 * the trace except the first one (Airlock's own chain, setpriv → bwrap, identified by
 * position, not by a name an agent could copy) and its non-exec'ing helpers; plus every
 * descendant of an agent process.
 */
export class TraceAuditor {
  private session: string;
  private agentPids = new Set<number>();
  constructor(session: string) {
    this.session = session;
  }

  private isAgent(pid: number, ppid: number | null): boolean {
    if (this.agentPids.has(pid)) return true;
    if (ppid !== null && this.agentPids.has(ppid)) {
      this.agentPids.add(pid);
      return true;
    }
    return false;
  }

  convert(events: TraceEvent[], rootPid: number | null): AuditEventInput[] {
    const out: AuditEventInput[] = [];
    const session = this.session;
    for (const event of events) {
      if (event.kind === 'exec') {
        if (event.pid === rootPid) continue;
        if (event.ok) this.agentPids.add(event.pid);
        else if (!this.isAgent(event.pid, event.ppid)) continue; // bwrap's own PATH lookups before the agent starts
        out.push({
          type: event.ok ? 'process.exec' : 'process.exec_failed',
          session,
          data: {
            pid: event.pid,
            ppid: event.ppid,
            argv: event.argv,
            path: event.path,
            cwd: event.cwd,
            ts: event.ts,
            ...(event.error ? { error: event.error } : {}),
            ...(event.unfinished ? { unfinished: true } : {}),
          },
        });
      } else if (event.kind === 'exit') {
        if (!this.isAgent(event.pid, event.ppid)) continue;
        this.agentPids.delete(event.pid);
        out.push({
          type: 'process.exit',
          session,
          data: {
            pid: event.pid,
            ppid: event.ppid,
            argv0: event.argv0,
            exitCode: event.exitCode,
            signal: event.signal,
            start: event.startTs,
            end: event.ts,
          },
        });
      } else if (Object.hasOwn(TRACER_NOTES, event.syscall)) {
        out.push({
          type: 'sandbox.trace_error',
          session,
          severity: 'high',
          rule: 'builtin.telemetry-required',
          data: { error: TRACER_NOTES[event.syscall] },
        });
      } else {
        if (!this.isAgent(event.pid, event.ppid)) continue;
        const p = classifyProbe(event);
        if (p)
          out.push({
            type: 'sandbox.denied',
            session,
            severity: p.severity,
            decision: 'deny',
            rule: p.rule,
            data: {
              pid: event.pid,
              argv0: event.argv0,
              syscall: event.syscall,
              target: event.target,
              error: event.error,
              reason: p.reason,
            },
          });
      }
    }
    return out;
  }
}

/** Longest raw trace recovery reads (a bound on hostile input: the agent chooses what strace prints). */
export const MAX_RECOVERED_TRACE_BYTES = 256 * 1024 * 1024;

/** Every audit event a raw trace file holds, read from its start (bounded), as the live reader would have made them. */
export function recoverTrace(file: string, session: string): { events: AuditEventInput[]; truncated: boolean } {
  const parser = new TraceParser(WORKSPACE);
  const auditor = new TraceAuditor(session);
  const decoder = new StringDecoder('utf8');
  const buf = Buffer.allocUnsafe(1 << 20);
  const events: AuditEventInput[] = [];
  const fd = openSync(file, 'r');
  let offset = 0;
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, MAX_RECOVERED_TRACE_BYTES - offset), offset);
      if (n <= 0) break;
      offset += n;
      events.push(...auditor.convert(parser.push(decoder.write(buf.subarray(0, n))), parser.rootPid));
    }
  } finally {
    closeSync(fd);
  }
  events.push(...auditor.convert([...parser.push(decoder.end()), ...parser.flush()], parser.rootPid));
  return { events, truncated: offset >= MAX_RECOVERED_TRACE_BYTES };
}

/**
 * What identifies a traced event in the log, to tell the ones the live reader already
 * recorded from the ones only the raw trace still holds (counted as a multiset).
 */
export function traceEventKey(e: { type: string; data?: Record<string, unknown> | null }): string | null {
  const d = e.data ?? {};
  switch (e.type) {
    case 'process.exec':
    case 'process.exec_failed':
      return `${e.type}|${String(d.pid)}|${String(d.ts)}`;
    case 'process.exit':
      return `${e.type}|${String(d.pid)}|${String(d.end)}`;
    case 'sandbox.denied':
      return `${e.type}|${String(d.pid)}|${String(d.syscall)}|${String(d.target)}|${String(d.error)}`;
    default:
      return null;
  }
}
