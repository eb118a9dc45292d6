import { z } from 'zod';
import { merge } from './meta.ts';

// Telemetry: signed checkpoints, SIEM sinks, detection rules, baselines and responses.
// Lists that protect (sinks, rules) merge by union: a repo policy may add, never remove,
// what the org set. Secrets used by sinks are named by environment variable only, and
// only variables prefixed AIRLOCK_SINK_ may be named, so a policy cannot point a sink's
// auth header at some other host credential (AWS_SECRET_ACCESS_KEY, ...).
// Sinks still merge by union (a repo cannot remove the org's), but sessions deliver only to
// the org's unless the org sets allowRepoSinks (see sessionSinks in src/audit/sinks).

const severity = z.enum(['info', 'low', 'medium', 'high', 'critical']);
const sinkSecretEnv = z.string().regex(/^AIRLOCK_SINK_[A-Z0-9_]+$/, 'an environment variable named AIRLOCK_SINK_*');
const sinkName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'lower-case letters, digits, _ . - (the cursor is kept under this name)')
  .describe(
    'Stable name of the sink. Its delivery cursor is stored under this name: renaming it re-delivers everything.',
  );
const httpUrl = z
  .string()
  .url()
  .regex(/^https?:\/\//, 'an http(s) URL');

const common = {
  name: sinkName,
  batchSize: z
    .number()
    .int()
    .min(1)
    .max(10_000)
    .default(500)
    .describe('Events per delivery (one TCP connection, request or file write).'),
  minSeverity: severity
    .default('info')
    .describe('Only events at or above this severity are sent; the cursor still moves past the others.'),
  types: z
    .array(z.string().min(1))
    .default([])
    .describe('Only these event types (exact, or prefix ending in *); empty = all.'),
};
const tlsSchema = z
  .strictObject({
    ca: z
      .string()
      .startsWith('/', 'an absolute path')
      .optional()
      .describe('PEM CA bundle to trust for the receiver instead of the system store.'),
    servername: z.string().optional().describe('Name expected in the receiver certificate (default: host).'),
    cert: z.string().startsWith('/', 'an absolute path').optional().describe('PEM client certificate for mutual TLS.'),
    key: z
      .string()
      .startsWith('/', 'an absolute path')
      .optional()
      .describe('PEM client key for mutual TLS (keep it mode 0600, outside any sandbox).'),
  })
  .describe('TLS settings (RFC 5425 for syslog). The receiver certificate is always verified.');

export const sinkSchema = z.discriminatedUnion('type', [
  z
    .strictObject({
      type: z.literal('syslog'),
      ...common,
      protocol: z
        .enum(['relp', 'tcp'])
        .default('relp')
        .describe(
          'relp: RELP (rsyslog imrelp), every message acknowledged by the receiver, so nothing is counted delivered that the receiver did not take. tcp: RFC 6587 octet counting / RFC 5425 TLS, which have no acknowledgement: events are "sent, unacknowledged", and a receiver or relay that drops them after reading loses them silently.',
        ),
      host: z.string().min(1).describe('Receiver host name or address.'),
      port: z
        .number()
        .int()
        .min(1)
        .max(65535)
        .default(6514)
        .describe('Receiver TCP port (tcp: 514/601 plain, 6514 TLS; relp: the imrelp port, often 2514).'),
      tls: tlsSchema.optional().describe('Use TLS (RFC 5425 for tcp; imrelp tls="on" for relp). Absent = plain TCP.'),
      format: z
        .enum(['cef', 'json', 'ocsf', 'ecs'])
        .default('cef')
        .describe('Payload in the syslog MSG: CEF, Airlock JSON, OCSF JSON or ECS JSON.'),
      facility: z.number().int().min(0).max(23).default(13).describe('Syslog facility (13 = log audit).'),
      appName: z
        .string()
        .regex(/^[!-~]{1,48}$/)
        .default('airlock')
        .describe('RFC 5424 APP-NAME.'),
    })
    .describe(
      'Syslog RFC 5424 over RELP (acknowledged), or over TCP with octet counting (RFC 6587) / TLS (RFC 5425), unacknowledged.',
    ),
  z
    .strictObject({
      type: z.literal('splunk-hec'),
      ...common,
      url: httpUrl.describe('HEC base URL, e.g. https://splunk:8088 (the /services/collector/event path is added).'),
      tokenEnv: sinkSecretEnv.describe('Environment variable holding the HEC token.'),
      index: z.string().optional().describe('Splunk index.'),
      sourcetype: z.string().default('airlock:audit').describe('Splunk sourcetype.'),
      format: z.enum(['json', 'ocsf', 'ecs']).default('ocsf').describe('Shape of each event.'),
      tls: tlsSchema.optional(),
    })
    .describe('Splunk HTTP Event Collector.'),
  z
    .strictObject({
      type: z.literal('elastic'),
      ...common,
      url: httpUrl.describe('Elasticsearch base URL (the /_bulk path is added).'),
      index: z
        .string()
        .regex(/^[a-z0-9][a-z0-9_.+-]*$/)
        .default('airlock-audit')
        .describe('Target index or data stream.'),
      apiKeyEnv: sinkSecretEnv
        .optional()
        .describe('Environment variable holding an Elasticsearch API key (sent as `Authorization: ApiKey ...`).'),
      format: z.enum(['ecs', 'ocsf', 'json']).default('ecs').describe('Shape of each document.'),
      tls: tlsSchema.optional(),
    })
    .describe(
      'Elasticsearch _bulk API; documents are created with the event id as _id, so a re-sent batch is not duplicated.',
    ),
  z
    .strictObject({
      type: z.literal('webhook'),
      ...common,
      url: httpUrl.describe('URL that receives POSTed JSON batches.'),
      secretEnv: sinkSecretEnv.describe(
        'Environment variable holding the HMAC-SHA256 key for the X-Airlock-Signature header.',
      ),
      format: z.enum(['json', 'ocsf', 'ecs']).default('json').describe('Shape of each event in the batch.'),
      tls: tlsSchema.optional(),
    })
    .describe('Generic webhook: JSON body {events:[...]}, signed with HMAC-SHA256 over "<timestamp>.<body>".'),
  z
    .strictObject({
      type: z.literal('otlp'),
      ...common,
      url: httpUrl.describe('OTLP/HTTP logs endpoint, e.g. http://collector:4318/v1/logs.'),
      headersEnv: z
        .record(z.string().regex(/^[A-Za-z0-9-]+$/), sinkSecretEnv)
        .default({})
        .describe('Request headers whose values come from environment variables (e.g. authorization).'),
    })
    .describe('OpenTelemetry logs over OTLP/HTTP (JSON), with the OpenTelemetry JS exporter.'),
  z
    .strictObject({
      type: z.literal('file'),
      ...common,
      path: z
        .string()
        .startsWith('/', 'an absolute path')
        .describe('JSONL file to append to (never inside a workspace).'),
      format: z.enum(['json', 'ocsf', 'ecs', 'cef']).default('json').describe('One event per line in this shape.'),
      maxBytes: z
        .number()
        .int()
        .min(1024)
        .default(100 * 1024 * 1024)
        .describe('Rotate when the file would grow beyond this size.'),
      keep: z
        .number()
        .int()
        .min(1)
        .max(1000)
        .default(10)
        .describe('Rotated files kept (path.1 newest ... path.N oldest).'),
    })
    .describe('Local JSONL file with size-based rotation; fsynced before the cursor moves.'),
]);
export type SinkConfig = z.output<typeof sinkSchema>;

export const detectionMatchSchema = z
  .strictObject({
    types: z.array(z.string().min(1)).min(1).describe('Event types the rule looks at (exact, or prefix ending in *).'),
    decision: z.enum(['allow', 'deny', 'ask']).optional().describe('Only events with this decision.'),
    paths: z
      .array(z.string().min(1))
      .optional()
      .describe(
        'Globs matched against the paths an event names (data.path, data.paths, data.files[].path, data.target), relative to the workspace.',
      ),
    hosts: z
      .array(z.string().min(1))
      .optional()
      .describe('Host globs matched against data.host (e.g. "*.pastebin.com").'),
    processNames: z
      .array(z.string().min(1))
      .optional()
      .describe('Program names matched against the basename of data.argv[0] (or data.name).'),
    minBytesUp: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('Only events whose data.bytesUp is at least this many bytes (uploads).'),
  })
  .describe('What an event must look like to count for the rule; all given conditions must hold.');

export const detectionRuleSchema = z
  .strictObject({
    id: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_.-]*$/)
      .describe('Rule id; findings name it as detect.<id>.'),
    description: z.string().default('').describe('What the rule catches, shown in the finding.'),
    severity: severity.describe('Severity of the finding; the response is chosen by it.'),
    match: detectionMatchSchema,
    threshold: z
      .strictObject({
        moreThan: z.number().int().min(1).describe('Fire when more than this many matching events fall in the window.'),
        windowSeconds: z.number().int().min(1).max(86_400).describe('Sliding window length.'),
      })
      .optional()
      .describe('Count rule: absent = every matching event is a finding.'),
  })
  .describe('A detection rule over the live event stream of a session.');
export type DetectionRule = z.output<typeof detectionRuleSchema>;

export const DEFAULT_DETECTION_RULES: z.input<typeof detectionRuleSchema>[] = [
  {
    id: 'egress-denied-burst',
    description: 'More than 20 denied egress requests in a minute',
    severity: 'high',
    match: { types: ['egress.request'], decision: 'deny' },
    threshold: { moreThan: 20, windowSeconds: 60 },
  },
  {
    id: 'netcat-like',
    description: 'A raw socket relay tool was started (nc, ncat, netcat, socat)',
    severity: 'high',
    match: { types: ['process.exec'], processNames: ['nc', 'ncat', 'netcat', 'socat'] },
  },
  {
    id: 'large-upload',
    description: 'A single request uploaded more than 10 MiB',
    severity: 'medium',
    match: { types: ['egress.request'], minBytesUp: 10 * 1024 * 1024 },
  },
  {
    id: 'ci-config-write',
    description: 'CI configuration was written or proposed',
    severity: 'high',
    match: {
      types: ['file.*', 'review.proposal', 'sandbox.denied'],
      paths: ['.github/workflows/**', '.gitlab-ci.yml', '.circleci/**', 'Jenkinsfile'],
    },
  },
];

const responseAction = merge(z.enum(['record', 'require-approver', 'pause', 'kill']), {
  stricter: ['kill', 'pause', 'require-approver', 'record'],
});

export const telemetrySchema = z
  .strictObject({
    checkpoint: z
      .strictObject({
        everyEvents: merge(
          z
            .number()
            .int()
            .min(2)
            .max(10_000_000)
            .default(1000)
            .describe('Sign a checkpoint after this many new events.'),
          'min',
        ),
        everySeconds: merge(
          z
            .number()
            .int()
            .min(1)
            .max(86_400)
            .default(60)
            .describe('Sign a checkpoint at least this often while events arrive.'),
          'min',
        ),
      })
      .prefault({})
      .describe('Signed checkpoints (Ed25519 over the RFC 6962 root); one is also signed at every session end.'),
    sinks: merge(
      z
        .array(sinkSchema)
        .default([])
        .describe('SIEM sinks; each keeps a durable cursor. Org sinks cannot be removed by a repo.'),
      'union',
    ),
    sharedStore: merge(
      z
        .string()
        .max(2000)
        .regex(/^postgres(ql)?:\/\/\S+$/, 'a postgres:// or postgresql:// URL')
        .refine(
          (u) => !/^postgres(ql)?:\/\/[^/@?#]*:[^/@?#]*@/.test(u) && !/[?&]password=/i.test(u),
          'no password in a policy file: give it to the hosts as PGPASSWORD or in ~/.pgpass',
        )
        .optional()
        .describe(
          "The shared PostgreSQL store every session ships its host's audit log to (AIRLOCK_DATABASE_URL overrides it on a host). Read from the org policy only: a repo, the agent included, must not choose where the audit stream goes. No password here.",
        ),
      'orgOnly',
    ),
    approverKeys: merge(
      z
        .array(
          z.strictObject({
            name: z
              .string()
              .min(1)
              .max(200)
              .describe('Who holds the key, as audit events name it (e.g. "console" or a reviewer host).'),
            publicKey: z
              .string()
              .max(2000)
              .regex(/-----BEGIN PUBLIC KEY-----[\s\S]+-----END PUBLIC KEY-----/, 'a PEM public key')
              .describe('The Ed25519 public key in PEM: `airlock audit pubkey` on that host.'),
          }),
        )
        .max(100)
        .default([])
        .describe(
          "Keys trusted to sign decisions given on another host through the shared store (answers to asks, review approvals): the audit keys of the hosts where humans decide (the console's, reviewers'). A host applies a remote decision only when its signature verifies against one of these; an unsigned, badly signed or otherwise signed row is refused and recorded. Read from the org policy only: never from a repo, and never from keys published in the shared store (every host's writer role could publish one). Empty: no remote decision is applied.",
        ),
      'orgOnly',
    ),
    allowRepoSinks: merge(
      z
        .boolean()
        .default(false)
        .describe(
          "Whether sessions also deliver to sinks a repo policy (or a per-run grant) adds. Off: only the org policy's sinks run, since anyone who can commit airlock.yaml, the agent included, could otherwise send the audit stream where they like. Read from the org policy only.",
        ),
      'org',
    ),
    detection: z
      .strictObject({
        rules: merge(
          z
            .array(detectionRuleSchema)
            .default(() => DEFAULT_DETECTION_RULES.map((r) => detectionRuleSchema.parse(r)))
            .describe("Detection rules; a repo may add rules, never remove the org's."),
          'union',
        ),
        honeytokens: merge(
          z
            .array(z.string().min(1))
            .default([])
            .describe('Paths (globs) that no legitimate work touches; any event naming one is a critical finding.'),
          'union',
        ),
      })
      .prefault({})
      .describe('Rules over the live event stream.'),
    baselines: z
      .strictObject({
        enabled: merge(
          z.boolean().default(true).describe("Compare each session with the agent's past sessions."),
          'or',
        ),
        minSessions: merge(
          z
            .number()
            .int()
            .min(2)
            .max(1000)
            .default(5)
            .describe('Past sessions of the agent needed before baselines judge.'),
          'min',
        ),
        maxSessions: merge(
          z.number().int().min(2).max(10_000).default(50).describe('How many recent sessions form the baseline.'),
          'org',
        ),
        threshold: merge(
          z
            .number()
            .min(1)
            .max(100)
            .default(3.5)
            .describe('Robust z-score (0.6745·(x−median)/MAD) above which a measure is anomalous.'),
          'min',
        ),
        severity: merge(severity.default('high').describe('Severity of a baseline finding.'), {
          stricter: ['critical', 'high', 'medium', 'low', 'info'],
        }),
      })
      .prefault({})
      .describe('Per-agent baselines learned from past sessions (hosts, paths, changes, commands, duration, denials).'),
    responses: z
      .strictObject({
        info: responseAction.default('record').describe('Response to an info finding.'),
        low: responseAction.default('record').describe('Response to a low finding.'),
        medium: responseAction.default('record').describe('Response to a medium finding.'),
        high: responseAction
          .default('require-approver')
          .describe("Response to a high finding: require an extra approver for the session's proposal."),
        critical: responseAction
          .default('pause')
          .describe('Response to a critical finding: freeze the session until a human resumes or kills it.'),
      })
      .prefault({})
      .describe(
        'What Airlock does for a finding of each severity (record | require-approver | pause | kill). Every response is recorded.',
      ),
  })
  .describe('Telemetry: signed checkpoints, SIEM sinks, anomaly detection and responses.');
export type TelemetryPolicy = z.output<typeof telemetrySchema>;
