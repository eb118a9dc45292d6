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
  const data = e.data ?? {};
  let summary: string;
  switch (true) {
    case e.type === 'process.exec':
      summary = `exec ${argvOf(data).join(' ')}${data.pid !== undefined ? ` (pid ${str(data.pid)})` : ''}`;
      break;
    case e.type === 'process.exit':
      summary = `exit pid ${str(data.pid)} ${data.signal ? `signal ${str(data.signal)}` : `code ${str(data.exitCode)}`}`;
      break;
    case e.type === 'egress.request': {
      const where = `${str(data.host) || str(data.address)}${data.port !== undefined ? ':' + str(data.port) : ''}${str(data.path)}`;
      summary = `${data.method ? str(data.method) + ' ' : ''}${where}${data.bytesUp !== undefined ? ` ↑${str(data.bytesUp)}B ↓${str(data.bytesDown ?? 0)}B` : ''}`;
      break;
    }
    case e.type === 'detect.finding':
      summary = `${str(data.title)}${data.explanation ? ': ' + str(data.explanation) : ''}`;
      break;
    case e.type === 'detect.response':
      summary = `${str(data.action)} for finding ${str(data.findingId)}${data.result ? ` (${str(data.result)})` : ''}`;
      break;
    case e.type === 'audit.checkpoint':
      summary = `checkpoint #${str(data.checkpointId)} size ${str(data.size)} root ${str(data.root).slice(0, 16)}…`;
      break;
    case typeof data.path === 'string':
      summary = `${str(data.path)}${data.reason ? ` (${str(data.reason)})` : ''}`;
      break;
    case typeof data.summary === 'string':
      summary = str(data.summary);
      break;
    case typeof data.message === 'string':
      summary = str(data.message);
      break;
    case typeof data.reason === 'string':
      summary = str(data.reason);
      break;
    default:
      summary = Object.keys(data).length ? JSON.stringify(data) : '';
  }
  return truncate(clean(summary), max);
}

/** Agent-controlled text never reaches a terminal with control, C1 or bidi characters (no escape-sequence spoofing). */
export function sanitizeForTerminal(s: string): string {
  return s.replace(/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g, ' ');
}
