import { hostname } from 'node:os';
import type { AuditEvent, Severity } from '../event.ts';
import { argvOf, summarize } from '../summary.ts';

// Event shapes for SIEMs: Airlock JSON, OCSF 1.3 JSON, Elastic ECS 8 JSON and CEF.
// Every shape carries the stable event id (for de-duplication on at-least-once delivery)
// and the sequence number, hash and previous hash (so a SIEM can re-check the chain).

export const PRODUCT = { name: 'Airlock', vendor_name: 'Airlock', version: '0.1.0' } as const;
export const OCSF_VERSION = '1.3.0';
export const ECS_VERSION = '8.11.0';

export type EventFormat = 'json' | 'ocsf' | 'ecs' | 'cef';

const SEVERITY_ID: Record<Severity, number> = { info: 1, low: 2, medium: 3, high: 4, critical: 5 };
const SEVERITY_CAPTION: Record<Severity, string> = {
  info: 'Informational',
  low: 'Low',
  medium: 'Medium',
  high: 'High',
  critical: 'Critical',
};

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const asString = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const clean = <T extends Record<string, unknown>>(o: T): T => {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
};

/** Paths an event names, in the fields producers use (see docs/modules/audit.md). */
export function eventPaths(data: Record<string, unknown>): string[] {
  const out: string[] = [];
  const add = (v: unknown) => {
    if (typeof v === 'string') out.push(v);
    else if (v && typeof v === 'object' && typeof (v as { path?: unknown }).path === 'string')
      out.push((v as { path: string }).path);
  };
  add(data.path);
  add(data.target);
  for (const k of ['paths', 'files'] as const) if (Array.isArray(data[k])) for (const v of data[k] as unknown[]) add(v);
  return out;
}

export function toJson(e: AuditEvent): Record<string, unknown> {
  return { ...e };
}

function unmapped(e: AuditEvent): Record<string, unknown> {
  return {
    airlock: {
      type: e.type,
      session: e.session,
      seq: e.seq,
      rule: e.rule,
      decision: e.decision,
      hash: e.hash,
      prev_hash: e.prevHash,
      data: e.data,
    },
  };
}

const HTTP_ACTIVITY: Record<string, number> = {
  CONNECT: 1,
  DELETE: 2,
  GET: 3,
  HEAD: 4,
  OPTIONS: 5,
  POST: 6,
  PUT: 7,
  TRACE: 8,
};

/** An OCSF event's class, activity and the class-specific fields. */
interface OcsfClass {
  category_uid: number;
  class_uid: number;
  activity_id: number;
  extra: Record<string, unknown>;
}

function ocsfProcess(event: AuditEvent): OcsfClass {
  const data = event.data;
  const argv = argvOf(data);
  const extra: Record<string, unknown> = {};
  extra.process = clean({
    pid: num(data.pid),
    name: argv[0]?.split('/').pop(),
    cmd_line: argv.join(' ') || undefined,
    file: argv[0] ? { path: argv[0], name: argv[0].split('/').pop() } : undefined,
    parent_process: num(data.ppid) !== undefined ? { pid: num(data.ppid) } : undefined,
    created_time: asString(data.start) ? Date.parse(asString(data.start)!) : undefined,
    terminated_time: asString(data.end) ? Date.parse(asString(data.end)!) : undefined,
  });
  if (num(data.exitCode) !== undefined) extra.exit_code = num(data.exitCode);
  extra.actor = { app_name: 'airlock-sandbox', session: event.session ? { uid: event.session } : undefined };
  return { category_uid: 1, class_uid: 1007, activity_id: event.type === 'process.exit' ? 2 : 1, extra };
}

function ocsfEgress(event: AuditEvent): OcsfClass {
  const data = event.data;
  const method = asString(data.method)?.toUpperCase();
  const extra: Record<string, unknown> = {};
  extra.dst_endpoint = clean({ hostname: asString(data.host), ip: asString(data.address), port: num(data.port) });
  extra.traffic = clean({ bytes_out: num(data.bytesUp), bytes_in: num(data.bytesDown) });
  if (num(data.durationMs) !== undefined) extra.duration = num(data.durationMs);
  if (!method) return { category_uid: 4, class_uid: 4001, activity_id: event.decision === 'deny' ? 5 : 1, extra }; // Refuse / Open
  extra.http_request = clean({
    http_method: method,
    url: clean({
      hostname: asString(data.host),
      path: asString(data.path),
      port: num(data.port),
      scheme: asString(data.scheme),
    }),
  });
  return { category_uid: 4, class_uid: 4002, activity_id: HTTP_ACTIVITY[method] ?? 99, extra };
}

function ocsfFinding(event: AuditEvent): OcsfClass {
  const data = event.data;
  const extra: Record<string, unknown> = {};
  extra.finding_info = clean({
    uid: event.id,
    title: asString(data.title) ?? event.rule ?? 'finding',
    desc: asString(data.explanation),
    types: [asString(data.kind) ?? 'rule'],
    analytic: {
      uid: event.rule ?? undefined,
      name: event.rule ?? undefined,
      type_id: data.kind === 'baseline' ? 2 : 1,
      type: data.kind === 'baseline' ? 'Behavioral' : 'Rule',
    },
    related_events: Array.isArray(data.evidence)
      ? (data.evidence as unknown[]).map((uid) => ({ uid: String(uid) }))
      : undefined,
  });
  extra.is_alert = true;
  extra.risk_level_id = SEVERITY_ID[event.severity] - 1;
  return { category_uid: 2, class_uid: 2004, activity_id: 1, extra };
}

function ocsfFile(event: AuditEvent): OcsfClass {
  const data = event.data;
  const op = asString(data.op) ?? asString(data.operation) ?? event.type.split('.')[1];
  const activity_id =
    ({ create: 1, read: 2, write: 3, update: 3, delete: 4, rename: 5 } as Record<string, number>)[op ?? ''] ?? 99;
  const p = eventPaths(data)[0]!;
  const extra = { file: { path: p, name: p.split('/').pop(), type_id: 1 }, actor: { app_name: 'airlock-sandbox' } };
  return { category_uid: 1, class_uid: 1001, activity_id, extra };
}

function ocsfClass(event: AuditEvent): OcsfClass {
  const type = event.type;
  if (type === 'process.exec' || type === 'process.exit' || type === 'command.decision') return ocsfProcess(event);
  if (type === 'egress.request') return ocsfEgress(event);
  if (type === 'detect.finding') return ocsfFinding(event);
  if (eventPaths(event.data).length > 0 && (type.startsWith('file.') || type.startsWith('sandbox.')))
    return ocsfFile(event);
  if (type.startsWith('session.'))
    return {
      category_uid: 6,
      class_uid: 6002,
      activity_id: type === 'session.start' ? 3 : type === 'session.stop' ? 4 : 99,
      extra: { app: { name: 'airlock-session', uid: event.session ?? undefined } },
    };
  return { category_uid: 0, class_uid: 0, activity_id: 99, extra: {} };
}

/** OCSF 1.3 event (class chosen by event type; everything Airlock-specific under `unmapped`). */
export function toOcsf(event: AuditEvent): Record<string, unknown> {
  const denied = event.decision === 'deny';
  const { category_uid, class_uid, activity_id, extra } = ocsfClass(event);
  return clean({
    category_uid,
    class_uid,
    activity_id,
    type_uid: class_uid * 100 + activity_id,
    time: Date.parse(event.ts),
    severity_id: SEVERITY_ID[event.severity],
    severity: SEVERITY_CAPTION[event.severity],
    message: summarize(event, 1000) || event.type,
    status_id: denied ? 2 : 1,
    status: denied ? 'Failure' : 'Success',
    action_id: event.decision === 'allow' ? 1 : denied ? 2 : undefined,
    disposition_id: event.decision === 'allow' ? 1 : denied ? 2 : undefined,
    metadata: clean({
      version: OCSF_VERSION,
      uid: event.id,
      product: PRODUCT,
      log_name: 'airlock-audit',
      sequence: event.seq,
      correlation_uid: event.session ?? undefined,
      labels: event.rule ? [`rule:${event.rule}`] : undefined,
    }),
    device: { hostname: hostname(), type_id: 0 },
    ...extra,
    unmapped: unmapped(event),
  });
}

/** Elastic Common Schema 8 document. */
export function toEcs(event: AuditEvent): Record<string, unknown> {
  const data = event.data;
  const denied = event.decision === 'deny';
  const category: string[] = [];
  const type: string[] = [];
  const doc: Record<string, unknown> = {};
  if (event.type.startsWith('process.') || event.type === 'command.decision') {
    category.push('process');
    type.push(event.type === 'process.exit' ? 'end' : 'start');
    const argv = argvOf(data);
    doc.process = clean({
      pid: num(data.pid),
      parent: num(data.ppid) !== undefined ? { pid: num(data.ppid) } : undefined,
      args: argv.length ? argv : undefined,
      name: argv[0]?.split('/').pop(),
      executable: argv[0],
      working_directory: asString(data.cwd),
      exit_code: num(data.exitCode),
      start: asString(data.start),
      end: asString(data.end),
    });
  } else if (event.type === 'egress.request') {
    category.push('network');
    type.push('connection');
    if (data.method) {
      category.push('web');
      type.push('access');
    }
    doc.destination = clean({
      domain: asString(data.host),
      address: asString(data.address) ?? asString(data.host),
      ip: asString(data.address),
      port: num(data.port),
      bytes: num(data.bytesDown),
    });
    doc.source = clean({ bytes: num(data.bytesUp) });
    if (data.method)
      doc.http = {
        request: clean({ method: asString(data.method), bytes: num(data.bytesUp) }),
        response: clean({ bytes: num(data.bytesDown) }),
      };
    if (asString(data.host))
      doc.url = clean({ domain: asString(data.host), path: asString(data.path), port: num(data.port) });
  } else if (event.type === 'detect.finding') {
    category.push('intrusion_detection');
    type.push('indicator');
  } else if (event.type.startsWith('session.')) {
    category.push('session');
    type.push(event.type === 'session.start' ? 'start' : event.type === 'session.stop' ? 'end' : 'info');
  } else if (eventPaths(data).length) {
    category.push('file');
    type.push(event.type.endsWith('read') ? 'access' : 'change');
    doc.file = { path: eventPaths(data)[0] };
  }
  if (denied) type.push('denied');
  else if (event.decision === 'allow') type.push('allowed');
  return clean({
    '@timestamp': event.ts,
    message: summarize(event, 1000) || event.type,
    ecs: { version: ECS_VERSION },
    event: clean({
      id: event.id,
      kind: event.type === 'detect.finding' ? 'alert' : 'event',
      category: category.length ? category : undefined,
      type: type.length ? type : ['info'],
      action: event.type,
      outcome: denied ? 'failure' : event.decision === 'allow' ? 'success' : 'unknown',
      severity: SEVERITY_ID[event.severity],
      sequence: event.seq,
      dataset: 'airlock.audit',
      module: 'airlock',
      provider: 'airlock',
      hash: event.hash,
      duration: num(data.durationMs) !== undefined ? num(data.durationMs)! * 1e6 : undefined,
    }),
    rule: event.rule ? { id: event.rule, name: event.rule } : undefined,
    labels: event.session ? { airlock_session: event.session } : undefined,
    host: { hostname: hostname() },
    observer: { product: PRODUCT.name, vendor: PRODUCT.vendor_name, version: PRODUCT.version, type: 'sandbox' },
    ...doc,
    airlock: {
      session: event.session,
      seq: event.seq,
      decision: event.decision,
      rule: event.rule,
      prev_hash: event.prevHash,
      hash: event.hash,
      type: event.type,
      data: event.data,
    },
  });
}

// CEF (ArcSight Common Event Format, rev 25): header fields escape \ and |; extension
// values escape \ and = and encode CR/LF as \r \n. Keys are fixed ASCII identifiers.
export const cefHeader = (v: string): string =>
  v
    .replace(/\\/g, '\\\\')
    .replace(/\|/g, '\\|')
    .replace(/[\r\n]+/g, ' ');
export const cefValue = (v: string): string =>
  v
    .replace(/\\/g, '\\\\')
    .replace(/=/g, '\\=')
    .replace(/\r\n|\n/g, '\\n')
    .replace(/\r/g, '\\r');
const CEF_SEVERITY: Record<Severity, number> = { info: 1, low: 3, medium: 5, high: 8, critical: 10 };

export function toCef(event: AuditEvent): string {
  const data = event.data;
  const ext: [string, string | number | undefined][] = [
    ['rt', Date.parse(event.ts)],
    ['externalId', event.id],
    ['cn1Label', 'seq'],
    ['cn1', event.seq],
    ['cs1Label', 'session'],
    ['cs1', event.session ?? undefined],
    ['cs2Label', 'rule'],
    ['cs2', event.rule ?? undefined],
    ['act', event.decision ?? undefined],
    ['cs3Label', 'hash'],
    ['cs3', event.hash],
    ['cat', event.type],
  ];
  if (event.type === 'egress.request') {
    ext.push(
      ['dhost', asString(data.host)],
      ['dst', asString(data.address)],
      ['dpt', num(data.port)],
      ['requestMethod', asString(data.method)],
      ['out', num(data.bytesUp)],
      ['in', num(data.bytesDown)],
    );
    if (asString(data.host) && asString(data.path))
      ext.push(['request', `${asString(data.host)}${asString(data.path)}`]);
  }
  if (event.type.startsWith('process.')) {
    const argv = argvOf(data);
    ext.push(
      ['dpid', num(data.pid)],
      ['spid', num(data.ppid)],
      ['dproc', argv[0]],
      ['cs4Label', 'argv'],
      ['cs4', argv.length ? JSON.stringify(argv) : undefined],
    );
  }
  const paths = event.type === 'egress.request' ? [] : eventPaths(data);
  if (paths.length) ext.push(['filePath', paths[0]]);
  ext.push(['msg', JSON.stringify(data)]);
  const extension = ext
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${cefValue(String(v))}`)
    .join(' ');
  return `CEF:0|${cefHeader(PRODUCT.vendor_name)}|${cefHeader(PRODUCT.name)}|${cefHeader(PRODUCT.version)}|${cefHeader(event.type)}|${cefHeader(summarize(event, 512) || event.type)}|${CEF_SEVERITY[event.severity]}|${extension}`;
}

export function formatEvent(e: AuditEvent, f: EventFormat): string {
  switch (f) {
    case 'json':
      return JSON.stringify(toJson(e));
    case 'ocsf':
      return JSON.stringify(toOcsf(e));
    case 'ecs':
      return JSON.stringify(toEcs(e));
    case 'cef':
      return toCef(e);
  }
}

export function formatObject(e: AuditEvent, f: Exclude<EventFormat, 'cef'>): Record<string, unknown> {
  return f === 'ocsf' ? toOcsf(e) : f === 'ecs' ? toEcs(e) : toJson(e);
}

// RFC 5424 syslog message. PRI = facility*8 + severity; STRUCTURED-DATA carries the
// event id and seq under the SD-ID airlock@32473 (32473 is the example enterprise
// number of RFC 5612; replace it with a registered one when you have it).
const SYSLOG_SEVERITY: Record<Severity, number> = { critical: 2, high: 3, medium: 4, low: 5, info: 6 };
const sdValue = (v: string): string => v.replace(/[\\"\]]/g, (c) => '\\' + c);
const printable = (v: string, max: number): string => v.replace(/[^!-~]/g, '_').slice(0, max) || '-';
const HOST = printable(hostname(), 255);

export function syslogMessage(e: AuditEvent, payload: string, facility = 13, appName = 'airlock'): string {
  const pri = facility * 8 + SYSLOG_SEVERITY[e.severity];
  const sd = `[airlock@32473 id="${sdValue(e.id)}" seq="${e.seq}" type="${sdValue(e.type)}"${e.session ? ` session="${sdValue(e.session)}"` : ''}${e.rule ? ` rule="${sdValue(e.rule)}"` : ''}]`;
  return `<${pri}>1 ${e.ts} ${HOST} ${printable(appName, 48)} ${process.pid} ${printable(e.type, 32)} ${sd} ${payload}`;
}

/** RFC 6587 octet-counting frame: "LEN SP MSG" with LEN the UTF-8 byte length. */
export function octetFrame(msg: string): string {
  return `${Buffer.byteLength(msg, 'utf8')} ${msg}`;
}
