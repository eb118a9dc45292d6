import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createHash, createHmac } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { hostname } from 'node:os';
import { SeverityNumber } from '@opentelemetry/api';
import { LoggerProvider, SimpleLogRecordProcessor, InMemoryLogRecordExporter } from '@opentelemetry/sdk-logs';
import { JsonLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AirlockError } from '../../common/index.ts';
import type { SinkConfig } from '../../policy/index.ts';
import type { AuditEvent, Severity } from '../event.ts';
import { formatEvent, formatObject, octetFrame, syslogMessage, PRODUCT } from './formats.ts';
import { RelpClient } from './relp.ts';

// One transport per sink type. send() resolves only when the receiver acknowledged the
// whole batch; then (and only then) the delivery loop moves the sink's cursor. A send that
// got part of the batch acknowledged throws PartialDelivery (relp.ts) with the count.
// Every send takes an AbortSignal: ending a session never waits on a SIEM.

/**
 * What "delivered" means for a sink: the receiver's answer (RELP "200", HTTP 2xx/HEC code 0,
 * Elastic per-item status), a local fsync, or nothing at all (plain syslog over TCP/TLS:
 * RFC 6587/5425 have no acknowledgement, so such a sink reports "sent", never "delivered").
 */
export type Acknowledgement = 'relp' | 'http' | 'fsync' | 'none';

export interface Sink {
  readonly ack: Acknowledgement;
  send(events: AuditEvent[], signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

export function acknowledgementOf(c: SinkConfig): Acknowledgement {
  if (c.type === 'syslog') return c.protocol === 'relp' ? 'relp' : 'none';
  return c.type === 'file' ? 'fsync' : 'http';
}

/** Default wait for a receiver's answer (connect, acknowledgement, HTTP response). */
export const DEFAULT_TIMEOUT_MS = 30_000;

type Tls = { ca?: string; servername?: string; cert?: string; key?: string } | undefined;
function tlsFiles(t: Tls): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  const read = (p?: string) => {
    if (!p) return undefined;
    if (!existsSync(p))
      throw new AirlockError('NOT_FOUND', `TLS file not found: ${p}`, 'fix the path in telemetry.sinks[].tls');
    return readFileSync(p);
  };
  return { ca: read(t?.ca), cert: read(t?.cert), key: read(t?.key) };
}

function secret(env: NodeJS.ProcessEnv, name: string, sink: string): string {
  const v = env[name];
  if (!v)
    throw new AirlockError(
      'BAD_STATE',
      `sink ${sink}: environment variable ${name} is not set`,
      `export ${name}=... in the environment of the process that delivers (supervisor or \`airlock sinks flush\`)`,
    );
  return v;
}

/**
 * Syslog over plain TCP/TLS (RFC 6587 octet counting / RFC 5425): no acknowledgement exists.
 * We half-close after the batch and wait for the receiver to close its side; a reset, error
 * or timeout re-sends the batch. A clean close only says the peer (or a relay in between)
 * read the bytes, not that the SIEM kept them, so this sink is marked `ack: none` and its
 * status says "sent, unacknowledged". Use protocol: relp for acknowledged delivery.
 */
function syslogTcpSink(
  config: Extract<SinkConfig, { type: 'syslog' }>,
  payloadOf: (events: AuditEvent[]) => string[],
  timeoutMs: number,
): Sink {
  const files = config.tls ? tlsFiles(config.tls) : {};
  return {
    ack: 'none',
    async send(events, signal) {
      const payload = payloadOf(events).map(octetFrame).join('');
      await new Promise<void>((resolve, reject) => {
        let sock: Socket;
        let peerEnded = false;
        let failed: Error | undefined;
        const onConnect = () => {
          sock.end(payload);
        };
        if (config.tls) {
          sock = tlsConnect(
            {
              host: config.host,
              port: config.port,
              servername: config.tls.servername ?? config.host,
              ca: files.ca,
              cert: files.cert,
              key: files.key,
              rejectUnauthorized: true,
            },
            onConnect,
          );
        } else {
          sock = netConnect({ host: config.host, port: config.port, allowHalfOpen: true }, onConnect);
        }
        const onAbort = () => {
          failed = new Error('aborted');
          sock.destroy();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        sock.setTimeout(timeoutMs, () => {
          failed = new Error(`syslog ${config.host}:${config.port}: timed out`);
          sock.destroy();
        });
        sock.on('data', () => {
          /* receivers send nothing; ignore */
        });
        sock.on('end', () => {
          peerEnded = true;
          sock.end();
        });
        sock.on('error', (e) => {
          failed = e;
        });
        sock.on('close', () => {
          signal.removeEventListener('abort', onAbort);
          if (!failed && peerEnded) resolve();
          else
            reject(
              failed ??
                new Error(`syslog ${config.host}:${config.port}: connection closed before the receiver read the batch`),
            );
        });
      });
    },
    async close() {
      /* one connection per batch: nothing held */
    },
  };
}

/** Syslog over RELP (rsyslog imrelp): each message is acknowledged by the receiver. */
function syslogRelpSink(
  c: Extract<SinkConfig, { type: 'syslog' }>,
  payloadOf: (events: AuditEvent[]) => string[],
  timeoutMs: number,
): Sink {
  const files = c.tls ? tlsFiles(c.tls) : {};
  const client = new RelpClient({
    host: c.host,
    port: c.port,
    timeoutMs,
    tls: c.tls
      ? {
          servername: c.tls.servername ?? c.host,
          ca: files.ca,
          cert: files.cert,
          key: files.key,
          rejectUnauthorized: true,
        }
      : undefined,
  });
  return {
    ack: 'relp',
    send: (events, signal) => client.send(payloadOf(events), signal),
    close: () => client.close(),
  };
}

function syslogSink(c: Extract<SinkConfig, { type: 'syslog' }>, timeoutMs: number): Sink {
  const payloadOf = (events: AuditEvent[]) =>
    events.map((e) => syslogMessage(e, formatEvent(e, c.format === 'json' ? 'json' : c.format), c.facility, c.appName));
  return c.protocol === 'relp' ? syslogRelpSink(c, payloadOf, timeoutMs) : syslogTcpSink(c, payloadOf, timeoutMs);
}

interface HttpResult {
  status: number;
  body: string;
}
interface PostOptions {
  tls: Tls;
  signal: AbortSignal;
  timeoutMs: number;
}
function post(
  url: string,
  headers: Record<string, string>,
  body: string | Uint8Array,
  o: PostOptions,
): Promise<HttpResult> {
  const { tls, signal, timeoutMs } = o;
  const parsedUrl = new URL(url);
  const files = tlsFiles(tls);
  const req = parsedUrl.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const r = req(
      parsedUrl,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        timeout: timeoutMs,
        signal,
        ...(parsedUrl.protocol === 'https:'
          ? { ca: files.ca, cert: files.cert, key: files.key, servername: tls?.servername, rejectUnauthorized: true }
          : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (b: Buffer) => {
          size += b.length;
          if (size <= 1 << 20) chunks.push(b);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    r.on('timeout', () => r.destroy(new Error(`${parsedUrl.host}: request timed out`)));
    r.on('error', reject);
    r.end(body);
  });
}
const httpFail = (what: string, r: HttpResult) => new Error(`${what}: HTTP ${r.status} ${r.body.slice(0, 300)}`);

function hecSink(config: Extract<SinkConfig, { type: 'splunk-hec' }>, env: NodeJS.ProcessEnv, timeoutMs: number): Sink {
  const token = secret(env, config.tokenEnv, config.name);
  // A stable channel per sink, as HEC with indexer acknowledgement requires.
  const channel = createHash('sha256')
    .update(`airlock-hec:${config.name}`)
    .digest('hex')
    .replace(/^(.{8})(.{4})(.{4})(.{4})(.{12}).*$/, '$1-$2-$3-$4-$5');
  const host = hostname();
  return {
    ack: 'http',
    async send(events, signal) {
      const body = events
        .map((e) =>
          JSON.stringify({
            time: Date.parse(e.ts) / 1000,
            host,
            source: 'airlock',
            sourcetype: config.sourcetype,
            ...(config.index ? { index: config.index } : {}),
            event: formatObject(e, config.format),
            fields: { airlock_id: e.id, airlock_seq: e.seq, airlock_session: e.session ?? '' },
          }),
        )
        .join('\n');
      const r = await post(
        `${config.url.replace(/\/$/, '')}/services/collector/event`,
        {
          authorization: `Splunk ${token}`,
          'content-type': 'application/json',
          'x-splunk-request-channel': channel,
        },
        body,
        { tls: config.tls, signal, timeoutMs },
      );
      let code: unknown;
      try {
        code = (JSON.parse(r.body) as { code?: unknown }).code;
      } catch {
        /* judged by status below */
      }
      if (r.status !== 200 || (code !== undefined && code !== 0)) throw httpFail('splunk-hec', r);
    },
    async close() {},
  };
}

function elasticSink(c: Extract<SinkConfig, { type: 'elastic' }>, env: NodeJS.ProcessEnv, timeoutMs: number): Sink {
  const apiKey = c.apiKeyEnv ? secret(env, c.apiKeyEnv, c.name) : undefined;
  return {
    ack: 'http',
    async send(events, signal) {
      // `create` with the event id as _id: a batch sent twice creates each document once.
      const body = events
        .map(
          (e) =>
            `${JSON.stringify({ create: { _index: c.index, _id: e.id } })}\n${JSON.stringify(formatObject(e, c.format))}\n`,
        )
        .join('');
      const r = await post(
        `${c.url.replace(/\/$/, '')}/_bulk`,
        {
          'content-type': 'application/x-ndjson',
          ...(apiKey ? { authorization: `ApiKey ${apiKey}` } : {}),
        },
        body,
        { tls: c.tls, signal, timeoutMs },
      );
      if (r.status !== 200) throw httpFail('elastic', r);
      let res: {
        errors?: boolean;
        items?: { create?: { status?: number; error?: { type?: string; reason?: string } } }[];
      };
      try {
        res = JSON.parse(r.body);
      } catch {
        throw httpFail('elastic (unreadable response)', r);
      }
      if (!Array.isArray(res.items) || res.items.length !== events.length)
        throw new Error(`elastic: expected ${events.length} results, got ${res.items?.length ?? 'none'}`);
      const bad = res.items.find((it) => {
        const s = it.create?.status ?? 0;
        return !(s >= 200 && s < 300) && s !== 409;
      });
      if (bad)
        throw new Error(
          `elastic: document rejected: ${bad.create?.status} ${bad.create?.error?.type ?? ''} ${bad.create?.error?.reason ?? ''}`,
        );
    },
    async close() {},
  };
}

const WEBHOOK_SIGNATURE_HEADER = 'x-airlock-signature';
const WEBHOOK_TIMESTAMP_HEADER = 'x-airlock-timestamp';
export function webhookSignature(secretKey: string, timestamp: string, body: string): string {
  return 'sha256=' + createHmac('sha256', secretKey).update(`${timestamp}.${body}`).digest('hex');
}

function webhookSink(c: Extract<SinkConfig, { type: 'webhook' }>, env: NodeJS.ProcessEnv, timeoutMs: number): Sink {
  const key = secret(env, c.secretEnv, c.name);
  return {
    ack: 'http',
    async send(events, signal) {
      const body = JSON.stringify({
        sink: c.name,
        product: PRODUCT,
        events: events.map((e) => formatObject(e, c.format)),
      });
      const ts = String(Math.floor(Date.now() / 1000));
      const r = await post(
        c.url,
        {
          'content-type': 'application/json',
          [WEBHOOK_TIMESTAMP_HEADER]: ts,
          [WEBHOOK_SIGNATURE_HEADER]: webhookSignature(key, ts, body),
          'idempotency-key': `${events[0]!.id}..${events[events.length - 1]!.id}`,
        },
        body,
        { tls: c.tls, signal, timeoutMs },
      );
      if (r.status < 200 || r.status >= 300) throw httpFail('webhook', r);
    },
    async close() {},
  };
}

const OTEL_SEVERITY: Record<Severity, SeverityNumber> = {
  info: SeverityNumber.INFO,
  low: SeverityNumber.INFO2,
  medium: SeverityNumber.WARN,
  high: SeverityNumber.ERROR,
  critical: SeverityNumber.FATAL,
};

/**
 * OTLP/HTTP logs: records are built by the OpenTelemetry SDK's LoggerProvider into memory and
 * serialized by its JSON serializer, then POSTed by us, so the request can be aborted when a
 * session ends (the SDK exporter cannot be) and a partial success counts as a failure.
 */
function otlpSink(config: Extract<SinkConfig, { type: 'otlp' }>, env: NodeJS.ProcessEnv, timeoutMs: number): Sink {
  const headers: Record<string, string> = {};
  for (const [h, v] of Object.entries(config.headersEnv)) headers[h] = secret(env, v, config.name);
  const memory = new InMemoryLogRecordExporter();
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({
      'service.name': 'airlock',
      'service.version': PRODUCT.version,
      'host.name': hostname(),
    }),
    processors: [new SimpleLogRecordProcessor({ exporter: memory })],
  });
  const logger = provider.getLogger('airlock.audit', PRODUCT.version);
  return {
    ack: 'http',
    async send(events, signal) {
      memory.reset();
      for (const e of events) {
        logger.emit({
          timestamp: new Date(e.ts),
          observedTimestamp: new Date(e.ts),
          severityNumber: OTEL_SEVERITY[e.severity],
          severityText: e.severity,
          eventName: e.type,
          body: JSON.stringify(e.data),
          attributes: {
            'event.id': e.id,
            'event.name': e.type,
            'airlock.seq': e.seq,
            'airlock.session': e.session ?? '',
            'airlock.rule': e.rule ?? '',
            'airlock.decision': e.decision ?? '',
            'airlock.hash': e.hash,
            'airlock.prev_hash': e.prevHash,
          },
        });
      }
      const records = memory.getFinishedLogRecords();
      memory.reset();
      if (records.length !== events.length)
        throw new Error(`otlp: ${records.length} of ${events.length} records built`);
      const body = JsonLogsSerializer.serializeRequest([...records]);
      if (!body) throw new Error('otlp: records could not be serialized');
      const r = await post(config.url, { ...headers, 'content-type': 'application/json' }, body, {
        tls: undefined,
        signal,
        timeoutMs,
      });
      if (r.status < 200 || r.status >= 300) throw httpFail('otlp', r);
      let rejected = 0;
      try {
        rejected = Number(
          (JSON.parse(r.body || '{}') as { partialSuccess?: { rejectedLogRecords?: unknown } }).partialSuccess
            ?.rejectedLogRecords ?? 0,
        );
      } catch {
        /* a 2xx without a body is success */
      }
      if (rejected > 0) throw httpFail(`otlp: ${rejected} records rejected`, r);
    },
    async close() {
      await provider.shutdown().catch(() => {});
    },
  };
}

/** Appends one line per event, rotating by size; fsyncs before reporting success. */
function fileSink(config: Extract<SinkConfig, { type: 'file' }>): Sink {
  mkdirSync(dirname(config.path), { recursive: true, mode: 0o700 });
  const rotate = () => {
    for (let i = config.keep - 1; i >= 1; i--)
      if (existsSync(`${config.path}.${i}`)) renameSync(`${config.path}.${i}`, `${config.path}.${i + 1}`);
    if (existsSync(config.path)) renameSync(config.path, `${config.path}.1`);
  };
  return {
    ack: 'fsync',
    async send(events) {
      let size = existsSync(config.path) ? statSync(config.path).size : 0;
      let buf = '';
      const flush = () => {
        if (!buf) return;
        const fd = openSync(config.path, 'a', 0o600);
        try {
          writeSync(fd, buf);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        buf = '';
      };
      for (const e of events) {
        const line = formatEvent(e, config.format) + '\n';
        const n = Buffer.byteLength(line);
        if (size > 0 && size + n > config.maxBytes) {
          flush();
          rotate();
          size = 0;
        }
        buf += line;
        size += n;
      }
      flush();
    },
    async close() {},
  };
}

export function createSink(c: SinkConfig, env: NodeJS.ProcessEnv = process.env, timeoutMs = DEFAULT_TIMEOUT_MS): Sink {
  switch (c.type) {
    case 'syslog':
      return syslogSink(c, timeoutMs);
    case 'splunk-hec':
      return hecSink(c, env, timeoutMs);
    case 'elastic':
      return elasticSink(c, env, timeoutMs);
    case 'webhook':
      return webhookSink(c, env, timeoutMs);
    case 'otlp':
      return otlpSink(c, env, timeoutMs);
    case 'file':
      return fileSink(c);
  }
}
