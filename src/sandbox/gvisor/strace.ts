import { constants } from 'node:os';
import type { AuditEventInput } from '../../common/index.ts';
import { classifyProbe, joinPath } from '../trace.ts';

// Process telemetry from gVisor itself: the sentry's strace (`runsc --strace
// --strace-syscalls=…`) writes one message per traced syscall entry (E) and exit (X) into
// the sandbox's debug log, read here into the same events as the bubblewrap driver's
// strace: process.exec / process.exec_failed / process.exit / sandbox.denied.
//
// The agent chooses much of what these messages contain (argv, paths, its task name), and
// the sentry prints paths and task names raw, newlines included. So the log is written as
// JSON (`--debug-log-format=json`: one message per line, escaped), and within a message the
// task name is told from the rest by position (see splitMessage). Everything is bounded.
//
//   {"msg":"[  14:  14] sh X execve(0x55 /usr/bin/curl, 0x55 [\"curl\", \"-s\"], 0x55 [...]) = 0 (0x0) (680µs)","time":"…"}
//   {"msg":"[  14:  14] curl X connect(0x5 socket:[13], 0x56 {Family: AF_INET, Addr: 1.1.1.1, Port: 80}, 0x10) = 0 (0x0) errno=113 (no route to host) (13µs)", …}

/** Syscalls the sentry traces for Airlock (exec, process tree, exits, failed opens and connects). */
export const GVISOR_TRACED_SYSCALLS = [
  'execve',
  'execveat',
  'clone',
  'fork',
  'vfork',
  'exit_group',
  'chdir',
  'fchdir',
  'connect',
  'openat',
  'open',
  'creat',
  'mkdirat',
  'unlinkat',
];

const HEADER = /^\[\s*(\d+):\s*(\d+)\] /;
const RESULT = / = (-?\d+) \(0x[0-9a-f]+\)(?: errno=(\d+) \([^)]*\))? \([\d.]+[a-zµ]*s\)$/;
/** Longest task name (TASK_COMM_LEN - 1 bytes): a marker further in lies inside the arguments. */
const MAX_COMM_BYTES = 15;

/**
 * `[pid:tid] COMM E|X syscall(ARGS` → its parts. COMM is the agent's (prctl, file names) and
 * may itself hold " X execve(": the real marker is the last one that leaves COMM within 15
 * bytes (every marker inside the arguments comes after at least `syscall(0x10000 `, past that).
 */
export function splitMessage(
  msg: string,
): { pid: number; comm: string; phase: 'E' | 'X'; syscall: string; rest: string } | null {
  const h = HEADER.exec(msg);
  if (!h) return null;
  const body = msg.slice(h[0].length);
  let best: RegExpExecArray | null = null;
  for (const m of body.matchAll(/(?:^| )([EX]) (\w+)\(/g)) {
    if (Buffer.byteLength(body.slice(0, m.index)) > MAX_COMM_BYTES) break;
    best = m;
  }
  if (!best) return null;
  return {
    pid: Number(h[1]),
    comm: body.slice(0, best.index),
    phase: best[1] as 'E' | 'X',
    syscall: best[2]!,
    rest: body.slice(best.index + best[0].length),
  };
}
/** Longest line parsed (the agent chooses argv; strace-log-size bounds each argument, this the rest). */
const MAX_LINE = 1024 * 1024;
/** Processes whose parent and argv0 are remembered at once (a fork loop cannot grow these without bound). */
const MAX_TRACKED = 65_536;

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** Go %q-quoted strings of a list (`["a", "b\\x00"]`), as JSON where possible, else unescaped by hand. */
export function goStrings(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
    const lit = m[1]!;
    try {
      out.push(
        JSON.parse(
          `"${lit
            .replace(/\\x([0-9a-f]{2})/gi, '\\u00$1')
            .replace(/\\a/g, '\\u0007')
            .replace(/\\v/g, '\\u000b')}"`,
        ) as string,
      );
    } catch {
      out.push(lit);
    }
    if (out.length >= 4096) break;
  }
  return out;
}

/** A log line's message and time (seconds), or null for anything that is not one JSON log record. */
function record(line: string): { msg: string; ts: number } | null {
  if (!line.startsWith('{"msg":"[')) return null;
  try {
    const r = JSON.parse(line) as { msg?: unknown; time?: unknown };
    if (typeof r.msg !== 'string') return null;
    const t = typeof r.time === 'string' ? Date.parse(r.time) : NaN;
    return { msg: r.msg, ts: Number.isNaN(t) ? Date.now() / 1000 : t / 1000 };
  } catch {
    return null;
  }
}

/** `{Family: AF_INET, Addr: 1.1.1.1, Port: 80}` → `1.1.1.1:80`; unix → `unix:PATH`. */
export function gvisorSocketTarget(args: string): string {
  const m = /\{Family: (AF_\w+), Addr: ("(?:[^"\\]|\\.)*"|[^,}]*)(?:, Port: (\d+))?/.exec(args);
  if (!m) return 'unknown';
  if (m[1] === 'AF_UNIX') return `unix:${goStrings(m[2]!)[0] ?? ''}`;
  if (m[1] === 'AF_INET6') return `[${m[2]}]:${m[3] ?? '?'}`;
  return `${m[2]}:${m[3] ?? '?'}`;
}

/** The path argument of an open-family call, made absolute with the directory strace printed for its dirfd. */
function openTarget(syscall: string, args: string): string {
  const dir = syscall === 'open' || syscall === 'creat' ? '/' : (/^\S+ (\/[^,]*)/.exec(args)?.[1] ?? '/');
  const rest = syscall === 'open' || syscall === 'creat' ? args : args.slice(args.indexOf(', ') + 2);
  const path = /^0x[0-9a-f]+ ([^,]*)/.exec(rest)?.[1] ?? '';
  return path.startsWith('/') ? path : joinPath(dir, path);
}

/**
 * Turns the sentry's strace lines into audit events. Every process but the container's
 * init (Airlock's bridge, pid 1) is the agent's: commands enter through `runsc exec`, so
 * there is no launch chain to tell apart.
 */
export class GvisorTraceReader {
  private session: string;
  private pending = '';
  private parent = new Map<number, number>();
  private argv0 = new Map<number, string>();
  private cwd = new Map<number, string>();
  constructor(session: string) {
    this.session = session;
  }

  push(chunk: string): AuditEventInput[] {
    const text = this.pending + chunk;
    const cut = text.lastIndexOf('\n');
    this.pending = text.slice(cut + 1);
    if (this.pending.length > MAX_LINE) this.pending = '';
    return text
      .slice(0, cut + 1)
      .split('\n')
      .flatMap((l) => this.line(l));
  }

  /** Registers a command's first process (started by runsc exec, so no execve of its own in the trace). */
  noteRoot(pid: number, argv0: string, cwd: string): void {
    // ppid 0: started by Airlock (runsc exec), not by another process of the sandbox
    this.remember(this.parent, pid, 0);
    this.remember(this.argv0, pid, argv0);
    this.remember(this.cwd, pid, cwd);
  }

  private remember(map: Map<number, number | string>, k: number, v: number | string): void {
    if (map.size >= MAX_TRACKED) map.clear();
    map.set(k, v);
  }

  private line(l: string): AuditEventInput[] {
    if (l.length > MAX_LINE) return [];
    const rec = record(l);
    const m = rec && splitMessage(rec.msg);
    if (!rec || !m) return [];
    const { pid, comm, phase, syscall, rest } = m;
    if (pid === 1) return []; // Airlock's bridge (the container's init)
    const ts = rec.ts;
    const ppid = this.parent.get(pid) ?? null;
    const session = this.session;
    if (phase === 'E') {
      if (syscall !== 'exit_group') return [];
      const code = parseInt(/^(0x[0-9a-f]+)/.exec(rest)?.[1] ?? 'NaN', 16);
      return [
        {
          type: 'process.exit',
          session,
          data: {
            pid,
            ppid,
            argv0: this.argv0.get(pid) ?? comm,
            exitCode: Number.isNaN(code) ? null : code & 0xff,
            signal: null,
            start: null,
            end: ts,
          },
        },
      ];
    }
    const r = RESULT.exec(rest);
    if (!r) return [];
    const ret = Number(r[1]);
    const errno = r[2] ? Number(r[2]) : null;
    const error = errno === null ? null : (ERRNO_NAMES.get(errno) ?? `errno ${errno}`);
    if (syscall === 'clone' || syscall === 'fork' || syscall === 'vfork') {
      if (errno === null && ret > 0) {
        this.remember(this.parent, ret, pid);
        for (const m of [this.argv0, this.cwd]) {
          const v = m.get(pid);
          if (v) this.remember(m, ret, v);
        }
      }
      return [];
    }
    if (syscall === 'chdir' || syscall === 'fchdir') {
      // chdir prints the path it was given, fchdir the directory of the fd
      const dir = (syscall === 'chdir' ? /^0x[0-9a-f]+ ([^,)]*)/ : /^0x[0-9a-f]+ (\/[^,)]*)/).exec(rest)?.[1];
      if (errno === null && dir)
        this.remember(this.cwd, pid, dir.startsWith('/') ? dir : joinPath(this.cwd.get(pid) ?? '/', dir));
      return [];
    }
    if (syscall === 'execve' || syscall === 'execveat') {
      const lists = [...rest.matchAll(/\[((?:"(?:[^"\\]|\\.)*"(?:, )?)*)\]/g)];
      const argv = goStrings(lists[0]?.[1] ?? '');
      const path =
        /^0x[0-9a-f]+ ([^,]*)/.exec(syscall === 'execveat' ? rest.slice(rest.indexOf(', ') + 2) : rest)?.[1] ??
        argv[0] ??
        '';
      if (!error) this.remember(this.argv0, pid, argv[0] ?? path);
      return [
        {
          type: error ? 'process.exec_failed' : 'process.exec',
          session,
          data: { pid, ppid, argv, path, cwd: this.cwd.get(pid) ?? null, ts, ...(error ? { error } : {}) },
        },
      ];
    }
    if (!error || error === 'EINPROGRESS' || error === 'EAGAIN') return [];
    const argv0 = this.argv0.get(pid) ?? comm;
    const target = syscall === 'connect' ? gvisorSocketTarget(rest) : openTarget(syscall, rest);
    // glibc asks nscd on every name lookup: an absent socket is noise, not a probe
    if (target.startsWith('unix:') && error === 'ENOENT') return [];
    const p = classifyProbe({ kind: 'probe', pid, ppid, syscall: syscall, target, error, ts, argv0 });
    if (!p) return [];
    return [
      {
        type: 'sandbox.denied',
        session,
        severity: p.severity,
        decision: 'deny',
        rule: p.rule,
        data: { pid, argv0, syscall, target, error, reason: p.reason },
      },
    ];
  }
}
