import type { AuditEvent } from './event.ts';

// One-line human summaries of events, shared by `airlock audit show`, CEF names and
// OCSF/ECS `message`. Reads the data fields producers document (see docs/modules/audit.md).

const str = (v: unknown): string =>
  typeof v === 'string' ? v : v === undefined || v === null ? '' : JSON.stringify(v);

export function argvOf(data: Record<string, unknown>): string[] {
  const a = data.argv;
  return Array.isArray(a) ? a.map((x) => String(x)) : typeof data.command === 'string' ? [data.command] : [];
}

export function truncate(s: string, n: number): string {
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

/** `clean` makes the agent-controlled text safe for where it goes (the CLI passes `escapeForTerminal`). */
export function summarize(
  e: Pick<AuditEvent, 'type' | 'data' | 'decision' | 'rule'>,
  max = 160,
  clean: (s: string) => string = sanitizeForTerminal,
): string {
  const d = e.data ?? {};
  let s: string;
  switch (true) {
    case e.type === 'process.exec':
      s = `exec ${argvOf(d).join(' ')}${d.pid !== undefined ? ` (pid ${str(d.pid)})` : ''}`;
      break;
    case e.type === 'process.exit':
      s = `exit pid ${str(d.pid)} ${d.signal ? `signal ${str(d.signal)}` : `code ${str(d.exitCode)}`}`;
      break;
    case e.type === 'egress.request': {
      const where = `${str(d.host) || str(d.address)}${d.port !== undefined ? ':' + str(d.port) : ''}${str(d.path)}`;
      s = `${d.method ? str(d.method) + ' ' : ''}${where}${d.bytesUp !== undefined ? ` ↑${str(d.bytesUp)}B ↓${str(d.bytesDown ?? 0)}B` : ''}`;
      break;
    }
    case e.type === 'detect.finding':
      s = `${str(d.title)}${d.explanation ? ': ' + str(d.explanation) : ''}`;
      break;
    case e.type === 'detect.response':
      s = `${str(d.action)} for finding ${str(d.findingId)}${d.result ? ` (${str(d.result)})` : ''}`;
      break;
    case e.type === 'audit.checkpoint':
      s = `checkpoint #${str(d.checkpointId)} size ${str(d.size)} root ${str(d.root).slice(0, 16)}…`;
      break;
    case typeof d.path === 'string':
      s = `${str(d.path)}${d.reason ? ` (${str(d.reason)})` : ''}`;
      break;
    case typeof d.summary === 'string':
      s = str(d.summary);
      break;
    case typeof d.message === 'string':
      s = str(d.message);
      break;
    case typeof d.reason === 'string':
      s = str(d.reason);
      break;
    default:
      s = Object.keys(d).length ? JSON.stringify(d) : '';
  }
  return truncate(clean(s), max);
}

/** Agent-controlled text never reaches a terminal with control, C1 or bidi characters (no escape-sequence spoofing). */
export function sanitizeForTerminal(s: string): string {
  return s.replace(/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g, ' ');
}
