// Wires the other layers into session hooks: egress gateway, per-command rules and
// approvals, workspace secret sanitization and honeytokens, anomaly detection, signed
// checkpoints, SIEM delivery, and proposals. The session core depends on none of them;
// each layer stays testable on its own. Importing this module turns them on.
import { chownTreeNoFollow } from '../common/fs.ts';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { hooks } from './hooks.ts';
import type { Session } from './session.ts';
import type { AuditEventInput } from '../audit/index.ts';
import { checkpoint, startCheckpointer } from '../audit/index.ts';
import type { Detector } from '../detect/index.ts';
import type { Honeytoken } from '../secrets/index.ts';
import { canonicalJson } from '../audit/event.ts';

// Layers load on first use: a session that needs no gateway, no proposal and no sinks
// does not pay for importing them (CLI start-up time is part of every `airlock run`).

function egressWanted(s: Session): boolean {
  const e = s.policy.policy.egress as unknown as Record<string, unknown[] | undefined>;
  return s.allowHosts.length > 0 || s.policy.policy.credentials.brokered.length > 0
    || ['presets', 'allow', 'allowCidrs'].some((k) => (e[k]?.length ?? 0) > 0);
}

// Network: only when the policy grants a destination or brokers a credential. Otherwise
// the sandbox keeps an empty network namespace (the strongest setting, nothing to
// misconfigure). With it: Airlock's CA (for opted-in TLS interception), the broker's
// placeholders in the sandbox env (real values stay on the host), and the CA bundle
// mounted over the system one.
hooks.network = async (s, env) => {
  if (!egressWanted(s)) return null;
  const { startGateway, sandboxNetwork, prepareCredentials } = await import('../egress/index.ts');
  const prep = await prepareCredentials(s.policy.policy, env, s.id, s.home.root);
  const unixPath = join(s.home.run, `${s.id}.egress.sock`);
  const gw = await startGateway({
    ...prep.gateway,
    session: s.id, policy: s.policy.policy, grants: s.allowHosts, listen: { unixPath },
    audit: (e: AuditEventInput) => { s.record(e); },
  });
  s.layerState.set('gateway', gw);
  const transparent = Object.keys(gw.transparentSockets).length > 0;
  const net = sandboxNetwork(gw.address, { transparent, ports: Object.keys(gw.transparentSockets).map(Number) });
  return {
    setup: net.setup, env: { ...net.env, ...prep.sandboxEnv }, close: () => gw.close(),
    files: [{ source: prep.caBundlePath, target: prep.caBundleSandboxPath }],
  };
};

// Commands through `airlock exec`, MCP and the API meet the command rules; the
// top-level `airlock run` command is the human's own choice and is recorded as such.
hooks.decideCommand = async (s, req) => {
  if (req.via === 'run') return null;
  const { decideCommand, requestApproval } = await import('../commands/index.ts');
  const d = decideCommand(req.argv, s.policy.policy);
  if (d.action !== 'ask') return d;
  const a = await requestApproval(s.store, {
    session: s.id, command: req.argv, rule: d.rule, reason: d.reason,
    timeoutSeconds: s.policy.policy.commands.askTimeoutSeconds,
  });
  return { action: a.decision, rule: d.rule, reason: a.decision === 'allow' ? `approved by ${a.by ?? 'a human'}` : a.reason };
};

// Secrets in the base tree are redacted (or the files hidden) before the agent sees
// them; the sanitized tree is cached per commit and secrets policy.
hooks.sanitizer = async (s) => {
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
};

hooks.restoreSecrets = async (s) => {
  const report = s.snapshotReport as { events?: AuditEventInput[] } | null;
  const files = new Set((report?.events ?? []).filter((e) => e.type === 'secrets.redacted').map((e) => String(e.data?.file)));
  if (!files.size) return {};
  const { scanText, defaultMarker } = await import('../secrets/index.ts');
  const { git } = await import('../common/git.ts');
  const out: Record<string, [string, string][]> = {};
  for (const f of files) {
    const r = git(['cat-file', 'blob', `${s.baseCommit}:${f}`], { env: { GIT_DIR: s.mirror }, allowFail: true });
    if (r.status !== 0) continue;
    const findings = await scanText(r.stdout, { path: f });
    out[f] = findings.map((x) => [defaultMarker(x), r.stdout.slice(x.start, x.end)]);
  }
  return out;
};

hooks.afterStart = async (s) => {
  const report = s.snapshotReport as { events?: AuditEventInput[] } | null;
  for (const e of report?.events ?? []) s.record({ ...e, session: s.id });
  const planted: Honeytoken[] = s.policy.policy.secrets.honeytokens.enabled
    ? (await import('../secrets/index.ts')).plantHoneytokens(s.homeView(), null, s.policy.policy.secrets).tokens : [];
  // name them as the agent sees them
  const tokens = planted.map((t) => ({ ...t, path: t.path.replace(s.homeView(), '/home/agent') }));
  if (tokens.length) {
    if (s.hostIds) chownTreeNoFollow(s.homeView(), s.hostIds);
    s.layerState.set('honeytokens', tokens);
    (s.layerState.get('gateway') as { setHoneytokens?: (t: Honeytoken[]) => void } | undefined)?.setHoneytokens?.(tokens);
    s.record({ type: 'secrets.honeytokens', data: { planted: tokens.map((t) => ({ kind: t.kind, path: t.path, fingerprint: t.fingerprint })) } });
  }
  const t = s.policy.policy.telemetry;
  const { startDetector } = await import('../detect/index.ts');
  const detector: Detector = startDetector({
    store: s.store, policy: s.policy.policy, session: s.id, agent: s.agent,
    control: {
      pause: async () => { if (!s.pause('detection response')) throw new Error('pause failed'); },
      resume: async () => { s.resume('detection'); },
      kill: async (reason: string) => { void s.stop(`killed by detection: ${reason}`); },
    },
  });
  s.layerState.set('detector', detector);
  s.layerState.set('checkpointer', startCheckpointer(s.store, t.checkpoint));
  if (t.sinks.length) {
    // only the org policy's sinks run unless the org opts in: a repo must not be able to
    // send the audit stream somewhere of its choosing
    const m = await import('../audit/sinks/index.ts');
    const plan = m.planSessionSinks(s.policy);
    for (const r of plan.refused) s.record({ type: 'telemetry.sink_refused', severity: 'medium', decision: 'deny', rule: 'telemetry.allowRepoSinks', data: { ...r } });
    if (plan.run.length) s.layerState.set('delivery', m.startDelivery(s.store, plan.run));
  }
};

hooks.afterStop = async (s, result) => {
  (s.layerState.get('detector') as Detector | undefined)?.stop();
  (s.layerState.get('checkpointer') as { stop(): void } | undefined)?.stop();
  if (result && result.commits.length > 0) {
    const { createProposal } = await import('../review/index.ts');
    const { proposal } = await createProposal(s.store, s.id, { home: s.home.root });
    s.record({ type: 'session.proposed', data: { proposal: proposal.id, hash: proposal.hash } });
  }
  checkpoint(s.store, `session ${s.id} end`, { keyDir: s.home.keys });
  const delivery = s.layerState.get('delivery') as { stop(): Promise<void> } | undefined;
  await delivery?.stop();
};
