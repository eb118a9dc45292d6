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
const SEVERITY_CAPTION: Record<Severity, string> = { info: 'Informational', low: 'Low', medium: 'Medium', high: 'High', critical: 'Critical' };

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const s = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const clean = <T extends Record<string, unknown>>(o: T): T => {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
};

/** Paths an event names, in the fields producers use (see docs/modules/audit.md). */
export function eventPaths(data: Record<string, unknown>): string[] {
  const out: string[] = [];
  const add = (v: unknown) => {
    if (typeof v === 'string') out.push(v);
    else if (v && typeof v === 'object' && typeof (v as { path?: unknown }).path === 'string') out.push((v as { path: string }).path);
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
  return { airlock: { type: e.type, session: e.session, seq: e.seq, rule: e.rule, decision: e.decision, hash: e.hash, prev_hash: e.prevHash, data: e.data } };
}

const HTTP_ACTIVITY: Record<string, number> = { CONNECT: 1, DELETE: 2, GET: 3, HEAD: 4, OPTIONS: 5, POST: 6, PUT: 7, TRACE: 8 };

/** OCSF 1.3 event (class chosen by event type; everything Airlock-specific under `unmapped`). */
export function toOcsf(e: AuditEvent): Record<string, unknown> {
  const d = e.data;
  const denied = e.decision === 'deny';
  let category_uid = 0;
  let class_uid = 0;
  let activity_id = 99;
  const extra: Record<string, unknown> = {};
  if (e.type === 'process.exec' || e.type === 'process.exit' || e.type === 'command.decision') {
    category_uid = 1; class_uid = 1007; activity_id = e.type === 'process.exit' ? 2 : 1;
    const argv = argvOf(d);
    extra.process = clean({
      pid: num(d.pid), name: argv[0]?.split('/').pop(), cmd_line: argv.join(' ') || undefined, file: argv[0] ? { path: argv[0], name: argv[0].split('/').pop() } : undefined,
      parent_process: num(d.ppid) !== undefined ? { pid: num(d.ppid) } : undefined, created_time: s(d.start) ? Date.parse(s(d.start)!) : undefined,
      terminated_time: s(d.end) ? Date.parse(s(d.end)!) : undefined,
    });
    if (num(d.exitCode) !== undefined) extra.exit_code = num(d.exitCode);
    extra.actor = { app_name: 'airlock-sandbox', session: e.session ? { uid: e.session } : undefined };
  } else if (e.type === 'egress.request') {
    const method = s(d.method)?.toUpperCase();
    category_uid = 4;
    extra.dst_endpoint = clean({ hostname: s(d.host), ip: s(d.address), port: num(d.port) });
    extra.traffic = clean({ bytes_out: num(d.bytesUp), bytes_in: num(d.bytesDown) });
    if (num(d.durationMs) !== undefined) extra.duration = num(d.durationMs);
    if (method) {
      class_uid = 4002; activity_id = HTTP_ACTIVITY[method] ?? 99;
      extra.http_request = clean({ http_method: method, url: clean({ hostname: s(d.host), path: s(d.path), port: num(d.port), scheme: s(d.scheme) }) });
    } else {
      class_uid = 4001; activity_id = denied ? 5 : 1; // Refuse / Open
    }
  } else if (e.type === 'detect.finding') {
    category_uid = 2; class_uid = 2004; activity_id = 1;
    extra.finding_info = clean({
      uid: e.id, title: s(d.title) ?? e.rule ?? 'finding', desc: s(d.explanation), types: [s(d.kind) ?? 'rule'],
      analytic: { uid: e.rule ?? undefined, name: e.rule ?? undefined, type_id: d.kind === 'baseline' ? 2 : 1, type: d.kind === 'baseline' ? 'Behavioral' : 'Rule' },
      related_events: Array.isArray(d.evidence) ? (d.evidence as unknown[]).map((uid) => ({ uid: String(uid) })) : undefined,
    });
    extra.is_alert = true;
    extra.risk_level_id = SEVERITY_ID[e.severity] - 1;
  } else if (eventPaths(d).length > 0 && (e.type.startsWith('file.') || e.type.startsWith('sandbox.'))) {
    category_uid = 1; class_uid = 1001;
    const op = s(d.op) ?? s(d.operation) ?? e.type.split('.')[1];
    activity_id = ({ create: 1, read: 2, write: 3, update: 3, delete: 4, rename: 5 } as Record<string, number>)[op ?? ''] ?? 99;
    const p = eventPaths(d)[0]!;
    extra.file = { path: p, name: p.split('/').pop(), type_id: 1 };
    extra.actor = { app_name: 'airlock-sandbox' };
  } else if (e.type.startsWith('session.')) {
    category_uid = 6; class_uid = 6002; activity_id = e.type === 'session.start' ? 3 : e.type === 'session.stop' ? 4 : 99;
    extra.app = { name: 'airlock-session', uid: e.session ?? undefined };
  }
  return clean({
    category_uid, class_uid, activity_id, type_uid: class_uid * 100 + activity_id,
    time: Date.parse(e.ts), severity_id: SEVERITY_ID[e.severity], severity: SEVERITY_CAPTION[e.severity],
    message: summarize(e, 1000) || e.type,
    status_id: denied ? 2 : 1, status: denied ? 'Failure' : 'Success',
    action_id: e.decision === 'allow' ? 1 : denied ? 2 : undefined,
    disposition_id: e.decision === 'allow' ? 1 : denied ? 2 : undefined,
    metadata: clean({ version: OCSF_VERSION, uid: e.id, product: PRODUCT, log_name: 'airlock-audit', sequence: e.seq, correlation_uid: e.session ?? undefined, labels: e.rule ? [`rule:${e.rule}`] : undefined }),
    device: { hostname: hostname(), type_id: 0 },
    ...extra,
    unmapped: unmapped(e),
  });
}

/** Elastic Common Schema 8 document. */
export function toEcs(e: AuditEvent): Record<string, unknown> {
  const d = e.data;
  const denied = e.decision === 'deny';
  const category: string[] = [];
  const type: string[] = [];
  const doc: Record<string, unknown> = {};
  if (e.type.startsWith('process.') || e.type === 'command.decision') {
    category.push('process'); type.push(e.type === 'process.exit' ? 'end' : 'start');
    const argv = argvOf(d);
    doc.process = clean({
      pid: num(d.pid), parent: num(d.ppid) !== undefined ? { pid: num(d.ppid) } : undefined, args: argv.length ? argv : undefined,
      name: argv[0]?.split('/').pop(), executable: argv[0], working_directory: s(d.cwd), exit_code: num(d.exitCode), start: s(d.start), end: s(d.end),
    });
  } else if (e.type === 'egress.request') {
    category.push('network'); type.push('connection');
    if (d.method) { category.push('web'); type.push('access'); }
    doc.destination = clean({ domain: s(d.host), address: s(d.address) ?? s(d.host), ip: s(d.address), port: num(d.port), bytes: num(d.bytesDown) });
    doc.source = clean({ bytes: num(d.bytesUp) });
    if (d.method) doc.http = { request: clean({ method: s(d.method), bytes: num(d.bytesUp) }), response: clean({ bytes: num(d.bytesDown) }) };
    if (s(d.host)) doc.url = clean({ domain: s(d.host), path: s(d.path), port: num(d.port) });
  } else if (e.type === 'detect.finding') {
    category.push('intrusion_detection'); type.push('indicator');
  } else if (e.type.startsWith('session.')) {
    category.push('session'); type.push(e.type === 'session.start' ? 'start' : e.type === 'session.stop' ? 'end' : 'info');
  } else if (eventPaths(d).length) {
    category.push('file'); type.push(e.type.endsWith('read') ? 'access' : 'change');
    doc.file = { path: eventPaths(d)[0] };
  }
  if (denied) type.push('denied'); else if (e.decision === 'allow') type.push('allowed');
  return clean({
    '@timestamp': e.ts,
    message: summarize(e, 1000) || e.type,
    ecs: { version: ECS_VERSION },
    event: clean({
      id: e.id, kind: e.type === 'detect.finding' ? 'alert' : 'event', category: category.length ? category : undefined, type: type.length ? type : ['info'],
      action: e.type, outcome: denied ? 'failure' : e.decision === 'allow' ? 'success' : 'unknown', severity: SEVERITY_ID[e.severity],
      sequence: e.seq, dataset: 'airlock.audit', module: 'airlock', provider: 'airlock', hash: e.hash,
      duration: num(d.durationMs) !== undefined ? num(d.durationMs)! * 1e6 : undefined,
    }),
    rule: e.rule ? { id: e.rule, name: e.rule } : undefined,
    labels: e.session ? { airlock_session: e.session } : undefined,
    host: { hostname: hostname() },
    observer: { product: PRODUCT.name, vendor: PRODUCT.vendor_name, version: PRODUCT.version, type: 'sandbox' },
    ...doc,
    airlock: { session: e.session, seq: e.seq, decision: e.decision, rule: e.rule, prev_hash: e.prevHash, hash: e.hash, type: e.type, data: e.data },
  });
}

// CEF (ArcSight Common Event Format, rev 25): header fields escape \ and |; extension
// values escape \ and = and encode CR/LF as \r \n. Keys are fixed ASCII identifiers.
export const cefHeader = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/[\r\n]+/g, ' ');
export const cefValue = (v: string): string => v.replace(/\\/g, '\\\\').replace(/=/g, '\\=').replace(/\r\n|\n/g, '\\n').replace(/\r/g, '\\r');
const CEF_SEVERITY: Record<Severity, number> = { info: 1, low: 3, medium: 5, high: 8, critical: 10 };

export function toCef(e: AuditEvent): string {
  const d = e.data;
  const ext: [string, string | number | undefined][] = [
    ['rt', Date.parse(e.ts)], ['externalId', e.id], ['cn1Label', 'seq'], ['cn1', e.seq],
    ['cs1Label', 'session'], ['cs1', e.session ?? undefined], ['cs2Label', 'rule'], ['cs2', e.rule ?? undefined],
    ['act', e.decision ?? undefined], ['cs3Label', 'hash'], ['cs3', e.hash], ['cat', e.type],
  ];
  if (e.type === 'egress.request') {
    ext.push(['dhost', s(d.host)], ['dst', s(d.address)], ['dpt', num(d.port)], ['requestMethod', s(d.method)], ['out', num(d.bytesUp)], ['in', num(d.bytesDown)]);
    if (s(d.host) && s(d.path)) ext.push(['request', `${s(d.host)}${s(d.path)}`]);
  }
  if (e.type.startsWith('process.')) {
    const argv = argvOf(d);
    ext.push(['dpid', num(d.pid)], ['spid', num(d.ppid)], ['dproc', argv[0]], ['cs4Label', 'argv'], ['cs4', argv.length ? JSON.stringify(argv) : undefined]);
  }
  const paths = e.type === 'egress.request' ? [] : eventPaths(d);
  if (paths.length) ext.push(['filePath', paths[0]]);
  ext.push(['msg', JSON.stringify(d)]);
  const extension = ext.filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => `${k}=${cefValue(String(v))}`).join(' ');
  return `CEF:0|${cefHeader(PRODUCT.vendor_name)}|${cefHeader(PRODUCT.name)}|${cefHeader(PRODUCT.version)}|${cefHeader(e.type)}|${cefHeader(summarize(e, 512) || e.type)}|${CEF_SEVERITY[e.severity]}|${extension}`;
}

export function formatEvent(e: AuditEvent, f: EventFormat): string {
  switch (f) {
    case 'json': return JSON.stringify(toJson(e));
    case 'ocsf': return JSON.stringify(toOcsf(e));
    case 'ecs': return JSON.stringify(toEcs(e));
    case 'cef': return toCef(e);
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
const printable = (v: string, max: number): string => (v.replace(/[^!-~]/g, '_').slice(0, max) || '-');
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
