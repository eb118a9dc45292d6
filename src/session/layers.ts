// The security layers a session runs with: egress gateway, per-command rules and
// approvals, workspace secret sanitization and honeytokens, anomaly detection, proposals,
// signed checkpoints and SIEM delivery. `Session.open` takes them as a typed object and
// fills every layer the caller did not name with its default, so whoever opens a session
// (CLI, daemon, SDK, MCP, a program importing src/session) gets all of them; leaving one
// out takes an explicit `null` and is recorded. No module state: each call builds fresh
// layer objects. Each layer loads its module on first use, so a session that needs no
// gateway, proposal or sinks does not pay for importing them.
import { chownTreeNoFollow, type AuditEventInput } from '../common/index.ts';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { Session, ExecRequest } from './session.ts';
import { checkpoint, startCheckpointer } from '../audit/index.ts';
import { canonicalJson } from '../common/index.ts';
import type { Detector } from '../detect/index.ts';
import type { Honeytoken } from '../secrets/index.ts';
import type { ModalDecision } from '../policy/index.ts';
import type { CaptureResult, SnapshotSanitizer } from '../workspace/index.ts';

export interface NetworkSetup {
  /** shell run in the holder to bridge the gateway into the sandbox's network namespace */
  setup: string;
  env: Record<string, string>;
  close: () => Promise<void>;
  /** public files Airlock provides inside (CA bundle) */
  files?: { source: string; target: string }[];
  /** TCP ports whose connects to any address reach the gateway (transparent mode): not a direct connection */
  redirectedPorts?: number[];
  /** what the sandbox's 127.0.0.1 must offer (drivers that bridge inside the sandbox themselves use it) */
  bridge?: { tcp: { port: number; target: string }[]; dns: boolean };
  /** serves the namespace's bridges from this process (`enter`: argv prefix into the sandbox's network namespace); returns their close */
  attach?: (enter: string[]) => Promise<() => Promise<void>>;
}

/** What a layer may contribute to a session; every part is optional. */
export interface SessionLayer {
  /** Starts the session's egress gateway; returns the in-sandbox setup and env. */
  network?: (s: Session, env: NodeJS.ProcessEnv) => Promise<NetworkSetup | null>;
  /** Rewrites the base tree before it becomes the workspace (secret redaction); cached per variant. */
  sanitizer?: (s: Session) => Promise<SnapshotSanitizer | null>;
  afterStart?: (s: Session) => Promise<void>;
  /** Marker → original value per redacted file, to restore what the agent did not change (values never stored). */
  restoreSecrets?: (s: Session) => Promise<Record<string, [string, string][]>>;
  /** allow / ask / deny for a command through exec, MCP or the API (null: no opinion). */
  decideCommand?: (s: Session, req: ExecRequest) => Promise<ModalDecision | null>;
  afterStop?: (s: Session, result: CaptureResult | null) => Promise<void>;
}

/** In the order they start and stop (telemetry last: its checkpoint covers the others' events). */
export const LAYER_NAMES = ['egress', 'commands', 'secrets', 'detection', 'review', 'telemetry'] as const;
export type LayerName = (typeof LAYER_NAMES)[number];

/** Every layer by name; `null` is a layer left out (recorded as `session.layer_disabled`). */
export type SessionLayers = { readonly [K in LayerName]: SessionLayer | null };

/** All layers, freshly built. */
export function defaultLayers(): SessionLayers {
  return {
    egress: egressLayer(),
    commands: commandsLayer(),
    secrets: secretsLayer(),
    detection: detectionLayer(),
    review: reviewLayer(),
    telemetry: telemetryLayer(),
  };
}

/**
 * The caller's layers completed with the defaults: a name that is absent gets its
 * default, `null` leaves it out. Unknown names are refused (a typo must not silently
 * leave a layer on its default while the caller believes it replaced it).
 */
export function resolveLayers(given: Partial<Record<LayerName, SessionLayer | null>> = {}): {
  layers: SessionLayers;
  disabled: LayerName[];
} {
  const unknown = Object.keys(given).filter((k) => !(LAYER_NAMES as readonly string[]).includes(k));
  if (unknown.length)
    throw new TypeError(`unknown session layer(s): ${unknown.join(', ')} (known: ${LAYER_NAMES.join(', ')})`);
  const defaults = defaultLayers();
  // only null leaves a layer out; undefined (e.g. an options object spread from elsewhere) keeps the default
  const layers = Object.fromEntries(
    LAYER_NAMES.map((n) => [n, given[n] === undefined ? defaults[n] : given[n]]),
  ) as Record<LayerName, SessionLayer | null>;
  return { layers: Object.freeze(layers), disabled: LAYER_NAMES.filter((n) => layers[n] === null) };
}

function egressWanted(s: Session): boolean {
  const e = s.policy.policy.egress as unknown as Record<string, unknown[] | undefined>;
  // record and shadow mode want to see what the agent tries, so the gateway runs even without a grant
  return (
    s.allowHosts.length > 0 ||
    s.policy.policy.credentials.brokered.length > 0 ||
    s.policy.policy.modes.egress !== 'enforce' ||
    ['presets', 'allow', 'allowCidrs', 'ask'].some((k) => (e[k]?.length ?? 0) > 0)
  );
}

// Network: only when the policy grants a destination or brokers a credential. Otherwise
// the sandbox keeps an empty network namespace (the strongest setting, nothing to
// misconfigure). With it: Airlock's CA (for opted-in TLS interception), the broker's
// placeholders in the sandbox env (real values stay on the host), and the CA bundle
// mounted over the system one.
function egressLayer(): SessionLayer {
  return {
    network: async (session, env) => {
      if (!egressWanted(session)) return null;
      const { startGateway, sandboxNetwork, startBridge, prepareCredentials } = await import('../egress/index.ts');
      const prep = await prepareCredentials(session.policy.policy, env, session.id, session.home.root);
      const unixPath = join(session.home.run, `${session.id}.egress.sock`);
      const gw = await startGateway({
        ...prep.gateway,
        session: session.id,
        policy: session.policy.policy,
        candidate: session.policy.candidate?.policy,
        grants: session.allowHosts,
        listen: { unixPath },
        resolver: session.egressUpstream.resolver,
        tls: { ca: prep.gateway.tls.ca, upstreamCa: session.egressUpstream.upstreamCa },
        audit: (e: AuditEventInput) => {
          session.record(e);
        },
        // an egress.ask destination waits in the same queue as command asks (`airlock approvals`, the console)
        ask: async (r) => {
          const { requestApproval } = await import('../command-rules/index.ts');
          return requestApproval(session.store, {
            session: session.id,
            command: ['egress', `${r.host}:${r.port}`],
            rule: r.rule,
            reason: r.reason,
            timeoutSeconds: session.policy.policy.egress.askTimeoutSeconds,
            sessionEnded: session.endedSignal,
          });
        },
      });
      session.layerState.set('gateway', gw);
      const transparent = Object.keys(gw.transparentSockets).length > 0;
      const net = sandboxNetwork(gw.address, {
        transparent,
        ports: Object.keys(gw.transparentSockets).map(Number),
        hostLoopback: gw.hostLoopbackSockets,
        maxConnections: session.policy.policy.egress.limits.maxConnections,
      });
      return {
        setup: net.setup,
        env: { ...net.env, ...prep.sandboxEnv },
        close: () => gw.close(),
        bridge: { tcp: net.bridge.tcp, dns: net.bridge.dns },
        attach: async (enter) => {
          const b = await startBridge(net.bridge, {
            enter,
            session: session.id,
            record: (e) => {
              session.record(e);
            },
          });
          return () => b.close();
        },
        files: [{ source: prep.caBundlePath, target: prep.caBundleSandboxPath }],
        redirectedPorts: net.redirectedPorts,
      };
    },
  };
}

// Commands through `airlock exec`, MCP and the API meet the command rules; the
// top-level `airlock run` command is the human's own choice and is recorded as such.
function commandsLayer(): SessionLayer {
  return {
    decideCommand: async (s, req) => {
      if (req.via === 'run') return null;
      const { decideCommandInMode, requestApproval } = await import('../command-rules/index.ts');
      const d = decideCommandInMode(req.argv, s.policy.policy, s.policy.candidate?.policy);
      if (d.action !== 'ask') return d;
      const a = await requestApproval(s.store, {
        session: s.id,
        command: req.argv,
        rule: d.rule,
        reason: d.reason,
        timeoutSeconds: s.policy.policy.commands.askTimeoutSeconds,
        sessionEnded: s.endedSignal,
      });
      return {
        action: a.decision,
        rule: d.rule,
        reason: a.decision === 'allow' ? `approved by ${a.by ?? 'a human'}` : a.reason,
        modeNote: d.modeNote,
        asked: true,
      };
    },
  };
}

// Secrets in the base tree are redacted (or the files hidden) before the agent sees
// them; the sanitized tree is cached per commit and secrets policy. Honeytokens are
// planted in the sandbox home and handed to the gateway.
function secretsLayer(): SessionLayer {
  return {
    sanitizer: async (s) => {
      const sp = s.policy.policy.secrets;
      if (sp.workspace.mode === 'off') return null;
      const variant = createHash('sha256').update(canonicalJson(sp)).digest('hex').slice(0, 12);
      return {
        variant,
        run: async (input) => {
          const { sanitizeSnapshot } = await import('../secrets/index.ts');
          return sanitizeSnapshot(input, sp, { cacheDir: join(s.home.cache, 'scan') });
        },
      };
    },
    restoreSecrets: restoreRedacted,
    afterStart: async (s) => {
      const report = s.snapshotReport as { events?: AuditEventInput[] } | null;
      for (const e of report?.events ?? []) s.recordAtStart({ ...e, session: s.id });
      if (s.policy.policy.secrets.honeytokens.enabled) await plantHoneytokens(s);
    },
  };
}

async function restoreRedacted(s: Session): Promise<Record<string, [string, string][]>> {
  const report = s.snapshotReport as { events?: AuditEventInput[] } | null;
  const files = new Set(
    (report?.events ?? []).filter((e) => e.type === 'secrets.redacted').map((e) => String(e.data?.file)),
  );
  if (!files.size) return {};
  const { scanText, defaultMarker } = await import('../secrets/index.ts');
  const { git } = await import('../common/index.ts');
  const out: Record<string, [string, string][]> = {};
  for (const f of files) {
    const r = git(['cat-file', 'blob', `${s.baseCommit}:${f}`], { env: { GIT_DIR: s.mirror }, allowFail: true });
    if (r.status !== 0) continue;
    const findings = await scanText(r.stdout, { path: f });
    out[f] = findings.map((x) => [defaultMarker(x), r.stdout.slice(x.start, x.end)]);
  }
  return out;
}

async function plantHoneytokens(s: Session): Promise<void> {
  // the light entry: planting needs no detection engine (secretlint, the prefilter)
  const planted: Honeytoken[] = (await import('../secrets/honeytokens.ts')).plantHoneytokens(
    s.homeView(),
    null,
    s.policy.policy.secrets,
  ).tokens;
  // name them as the agent sees them
  const tokens = planted.map((t) => ({ ...t, path: t.path.replace(s.homeView(), '/home/agent') }));
  if (!tokens.length) return;
  if (s.hostIds) chownTreeNoFollow(s.homeView(), s.hostIds);
  s.layerState.set('honeytokens', tokens);
  (s.layerState.get('gateway') as { setHoneytokens?: (t: Honeytoken[]) => void } | undefined)?.setHoneytokens?.(tokens);
  s.recordAtStart({
    type: 'secrets.honeytokens',
    data: { planted: tokens.map((t) => ({ kind: t.kind, path: t.path, fingerprint: t.fingerprint })) },
  });
}

function detectionLayer(): SessionLayer {
  return {
    afterStart: async (s) => {
      const { startDetector } = await import('../detect/index.ts');
      const detector: Detector = startDetector({
        store: s.store,
        policy: s.policy.policy,
        session: s.id,
        agent: s.agent,
        control: {
          pause: async () => {
            if (!s.pause('detection response')) throw new Error('pause failed');
          },
          resume: async () => {
            s.resume('detection');
          },
          kill: async (reason: string) => {
            void s.stop(`killed by detection: ${reason}`);
          },
        },
      });
      s.layerState.set('detector', detector);
    },
    afterStop: async (s) => {
      (s.layerState.get('detector') as Detector | undefined)?.stop();
    },
  };
}

function reviewLayer(): SessionLayer {
  return {
    afterStop: async (s, result) => {
      if (!result || result.commits.length === 0 || s.recordingFailure) return;
      const { createProposal } = await import('../review/index.ts');
      const { proposal } = await createProposal(s.store, s.id, { home: s.home.root });
      s.record({ type: 'session.proposed', data: { proposal: proposal.id, hash: proposal.hash } });
    },
  };
}

// Signed checkpoints while the session runs and at its end; SIEM delivery. Only the org
// policy's sinks run unless the org opts in: a repo must not be able to send the audit
// stream somewhere of its choosing.
function telemetryLayer(): SessionLayer {
  return {
    afterStart: async (s) => {
      const t = s.policy.policy.telemetry;
      s.layerState.set('checkpointer', startCheckpointer(s.store, { ...t.checkpoint, keyDir: s.home.keys }));
      // the shared store's module (and PostgreSQL's client) loads only when a store is named:
      // its two sources are the environment and the org setting already in the policy
      if (process.env.AIRLOCK_DATABASE_URL || t.sharedStore) {
        const { sharedStoreUrl } = await import('../store/index.ts');
        const shared = sharedStoreUrl({ orgSetting: t.sharedStore ?? null });
        if (shared) s.layerState.set('shipper', await startSessionShipper(s, shared));
      }
      if (!t.sinks.length) return;
      const m = await import('../audit/sinks/index.ts');
      const plan = m.planSessionSinks(s.policy);
      for (const r of plan.refused)
        s.recordAtStart({
          type: 'telemetry.sink_refused',
          severity: 'medium',
          decision: 'deny',
          rule: 'telemetry.allowRepoSinks',
          data: { ...r },
        });
      if (plan.run.length) s.layerState.set('delivery', m.startDelivery(s.store, plan.run));
    },
    afterStop: async (s) => {
      (s.layerState.get('checkpointer') as { stop(): void } | undefined)?.stop();
      try {
        checkpoint(s.store, `session ${s.id} end`, { keyDir: s.home.keys });
      } finally {
        // the session's tail (session.stop, the checkpoint) goes out within stop's bounded flush;
        // a SIEM that is down or stalls never holds the session's end (it stays spooled)
        await (s.layerState.get('delivery') as { stop(): Promise<void> } | undefined)?.stop();
        // likewise the shared store: what it cannot take now stays spooled in the local log
        await (s.layerState.get('shipper') as { stop(flushMs: number): Promise<unknown> } | undefined)?.stop(2000);
      }
    },
  };
}

/**
 * With AIRLOCK_DATABASE_URL, the session ships its host's log to the shared store while it runs
 * and takes answers to its asks given on other hosts (docs/modules/store.md).
 */
async function startSessionShipper(s: Session, url: string) {
  const store = await import('../store/index.ts');
  const { localAskRelay } = await import('../command-rules/index.ts');
  const where = `the shared store ${store.redactedUrl(url)}`;
  return store.startShipper(s.store, url, {
    keyDir: s.home.keys,
    onConnect: (c) => store.requireCurrentSchema(c, where),
    relay: localAskRelay(s.store),
    approvals: (await import('../review/index.ts')).localApprovalRelay(s.store),
    // decisions from other hosts count only when signed by a key the ORG policy trusts
    trust: store.approverTrust({ orgSetting: s.policy.policy.telemetry.approverKeys }),
  });
}
