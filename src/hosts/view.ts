import { hostname } from 'node:os';
import type pg from 'pg';
import { type AuditEvent, type AuditStore, type Severity, loadSigningKey, logId } from '../audit/index.ts';
import { AirlockError } from '../common/index.ts';
import {
  answerAsk,
  assertOutsideSandbox,
  humanIdentity,
  listAsks,
  type AnswerScope,
  type CommandAsk,
} from '../command-rules/index.ts';
import { listProposals, proposalStatus, type Proposal, type ProposalStatus } from '../review/index.ts';
import { sessionFromRow, type SessionSummary } from '../session/index.ts';
import { localSessions } from './local.ts';
import {
  answerSharedAsk,
  approveSharedProposal,
  otherHostsProposals,
  otherHostsSessionRows,
  pendingSharedAsks,
  redactedUrl,
  requireCurrentSchema,
  sharedStoreUrl,
  signDecision,
  withSharedStore,
  type DecisionSigner,
  type SharedAsk,
  type SharedProposal,
  otherHostsEvents,
  parseData,
  MAX_PAGE,
  type SharedEvent,
  type SharedEventFilter,
} from '../store/index.ts';

// One store interface for every entry point (CLI, SDK, console): sessions, proposals and asks
// of this host (its SQLite) and, when a shared store is configured (the same resolution the
// sessions use: --database, AIRLOCK_DATABASE_URL, the org policy's telemetry.sharedStore),
// of every other host, each entry in ONE shape whichever host it comes from.

/** Where an entry lives: `ref` is what `approvals allow` / the console take on any host. */
export interface HostOf {
  /** `N` for this host's entries, `N@<log id prefix>` for another host's */
  ref: string;
  host: string;
  logId: string;
  thisHost: boolean;
}

export type HostSession = SessionSummary & HostOf;

/** A proposal on any host. Fields only its own host knows (diff, findings' detail) are null elsewhere. */
export interface HostProposal extends HostOf {
  id: number;
  session: string | null;
  created: string;
  state: string;
  hash: string | null;
  approvers: string[];
  required: number | null;
  stats: { files: number; added: number; deleted: number; commits: number } | null;
  findingCount: number;
  blockingCount: number;
}

/** An ask on any host. */
export interface HostAsk extends HostOf {
  id: number;
  session: string | null;
  command: string[];
  rule: string | null;
  reason: string | null;
  created: string;
  expires: string;
  status: CommandAsk['status'];
  answeredBy: string | null;
  answerReason: string | null;
  /** an allow's scope (once or the session); null while pending, for a deny or a timeout */
  scope: AnswerScope | null;
}

/** An audit event on any host, in one shape (no hash-chain fields: verify reads those). */
export type HostEvent = Omit<AuditEvent, 'prevHash' | 'hash'> & HostOf;

/** The audit search over every host (session, type or prefix*, severity and above, rule prefix, decision, time range, host). */
export type HostEventFilter = SharedEventFilter;

export interface WorkViewOptions {
  /** --database */
  database?: string;
  /** the org policy's telemetry.sharedStore when the caller already holds it */
  orgSetting?: string | null;
  /** the environment to resolve the store from (default process.env) */
  env?: NodeJS.ProcessEnv;
  /** told when the shared store cannot be reached: the listing then holds this host's part alone */
  onUnavailable?: (message: string) => void;
  /** where this host's audit key is (default AIRLOCK_HOME/keys): it signs decisions given on other hosts' work */
  keyDir?: string;
}

export interface WorkView {
  /** the shared store's URL, or undefined when this host's SQLite is the whole store */
  readonly sharedUrl: string | undefined;
  sessions(): Promise<HostSession[]>;
  proposals(o?: {
    all?: boolean;
  }): Promise<(HostProposal & { local?: { proposal: Proposal; status: ProposalStatus } })[]>;
  asks(o?: { all?: boolean }): Promise<HostAsk[]>;
  /** Audit events of this host and (with a shared store) every other, newest first, one bounded page (≤ 500). */
  events(filter?: HostEventFilter): Promise<HostEvent[]>;
  /** `scope`: an allowed destination ask holds for this one connection (once) or the rest of the session; another host's ask is allowed once only. */
  answerAsk(
    ref: string,
    decision: 'allow' | 'deny',
    by: string,
    reason?: string,
    scope?: AnswerScope,
  ): Promise<HostAsk>;
  /**
   * Approves another host's proposal (`N@HOST`), bound to the content hash the shared store
   * holds; its host applies it under its own review rules when its shipper next runs.
   * Refused from inside a sandbox; recorded here as review.approval_sent.
   */
  approveRemote(
    ref: string,
    o?: { as?: string; reason?: string; env?: NodeJS.ProcessEnv; expectHash?: string },
  ): Promise<HostProposal & { by: string }>;
}

const open = (state: string) => state === 'pending' || state === 'approved';

/** Approves another host's proposal in the shared store (its host applies it, once the signature verifies); recorded here as sent. */
async function approveRemoteProposal(
  store: AuditStore,
  url: string | undefined,
  thisHost: () => { logId: string },
  keyDir: string | undefined,
  ref: string,
  approval: Parameters<WorkView['approveRemote']>[1] = {},
): ReturnType<WorkView['approveRemote']> {
  assertOutsideSandbox(store, approval.env);
  const who = humanIdentity(approval.as);
  const proposal = await inSharedStore(url, (client) =>
    approveSharedProposal(client, ref, who.identity, thisHost().logId, {
      reason: approval.reason,
      expectHash: approval.expectHash,
      sign: signer(keyDir),
    }),
  );
  store.append({
    type: 'review.approval_sent',
    session: null,
    decision: 'allow',
    rule: 'review.approvals',
    data: {
      ref: proposal.ref,
      logId: proposal.logId,
      host: proposal.hostname,
      proposal: proposal.id,
      hash: proposal.hash,
      by: who.identity,
      source: who.source,
    },
  });
  return { ...remoteProposal(proposal), by: who.identity };
}

/** The work of this host and, with a shared store, of every host. */
export function workView(store: AuditStore, opts: WorkViewOptions = {}): WorkView {
  const url = sharedStoreUrl({ flag: opts.database, orgSetting: opts.orgSetting, env: opts.env });
  // this host's marks, read once per view (not once per listed row)
  let thisHostMarks: (HostOf & { logId: string }) | undefined;
  const here = (): HostOf & { logId: string } =>
    (thisHostMarks ??= { ref: '', host: hostname(), logId: logId(store), thisHost: true });
  const others = async <T>(fn: (c: pg.Client, self: string) => Promise<T[]>): Promise<T[]> => {
    if (!url) return [];
    try {
      return await withSharedStore(url, async (c) => {
        await requireCurrentSchema(c, `the shared store ${redactedUrl(url)}`);
        return fn(c, here().logId);
      });
    } catch (e) {
      // a store that is down or at another schema version hides other hosts' rows, never this host's
      if (!(e instanceof AirlockError) || (e.kind !== 'UNAVAILABLE' && e.kind !== 'BAD_STATE')) throw e;
      opts.onUnavailable?.(e.kind === 'BAD_STATE' && e.hint ? `${e.message}: ${e.hint}` : e.message);
      return [];
    }
  };
  return {
    sharedUrl: url,
    sessions: async () => [
      ...localSessions(store),
      ...(await others(async (c, self) =>
        (await otherHostsSessionRows(c, self)).map((r) => ({
          ...sessionFromRow(inertSessionRow(r), false),
          ref: String(r.id),
          host: String(r.hostname),
          logId: String(r.logId),
          thisHost: false,
        })),
      )),
    ],
    proposals: async (q = {}) => [
      ...listProposals(store)
        .map((p) => localProposal(p, proposalStatus(store, p), here()))
        .filter((p) => q.all || open(p.state)),
      ...(await others((c, self) => otherHostsProposals(c, self)))
        .map(remoteProposal)
        .filter((p) => q.all || open(p.state)),
    ],
    asks: async (q = {}) => [
      ...listAsks(store, { all: q.all }).map((a) => ({ ...a, ...here(), ref: String(a.id) })),
      ...(await others(async (c, self) => (await pendingSharedAsks(c)).filter((a) => a.logId !== self))).map(remoteAsk),
    ],
    events: async (f = {}) => {
      const limit = Math.max(1, Math.min(f.limit ?? MAX_PAGE, MAX_PAGE));
      const local = hostMatches(here(), f.host)
        ? localEvents(store, f, limit).map((e) => ({ ...e, ...here(), ref: String(e.seq) }))
        : [];
      const remote = (await others((c, self) => otherHostsEvents(c, { ...f, limit }, self))).map(remoteEvent);
      return [...local, ...remote].sort((x, y) => (x.ts < y.ts ? 1 : x.ts > y.ts ? -1 : 0)).slice(0, limit);
    },
    approveRemote: async (ref, a = {}) => approveRemoteProposal(store, url, here, opts.keyDir, ref, a),
    answerAsk: async (ref, decision, by, reason, scope = 'once') => {
      if (!ref.includes('@')) {
        const n = Number(ref);
        if (!/^\d{1,15}$/.test(ref))
          throw new AirlockError(
            'USAGE',
            `approval id must be a number or N@HOST, not ${JSON.stringify(ref)}`,
            'use the id shown by `airlock approvals`',
          );
        return { ...answerAsk(store, n, decision, by, reason, 'human', scope), ...here(), ref };
      }
      if (scope === 'session')
        throw new AirlockError(
          'USAGE',
          'an ask on another host is allowed once only',
          'leave out --session, or answer it on its own host',
        );
      const answer = { decision, by, reason, fromLogId: here().logId, sign: signer(opts.keyDir) };
      return remoteAsk(await inSharedStore(url, (c) => answerSharedAsk(c, ref, answer)));
    },
  };
}

/**
 * Another host's summary row with its data columns made safe for sessionFromRow: each is a JSON
 * object (else {}), and the fields the summary reads have the types it expects. That host wrote
 * them: one malformed row must not break every host's listing.
 */
export function inertSessionRow(r: Record<string, unknown>): Record<string, unknown> {
  const obj = (v: unknown) => (typeof v === 'string' ? parseData(v) : null);
  const start = obj(r.startData);
  const result = obj(r.resultData);
  const stop = obj(r.stopData);
  return {
    ...r,
    startData:
      start &&
      JSON.stringify({
        ...start,
        command: Array.isArray(start.command) ? start.command.map(String) : null,
        agent: typeof start.agent === 'string' ? start.agent : null,
        repo: typeof start.repo === 'string' ? start.repo : null,
        baseCommit: typeof start.baseCommit === 'string' ? start.baseCommit : null,
      }),
    stopData: stop && JSON.stringify({ ...stop, status: typeof stop.status === 'number' ? stop.status : null }),
    resultData: result && JSON.stringify({ ...result, commits: Array.isArray(result.commits) ? result.commits : [] }),
    end: typeof r.end === 'string' ? r.end : null,
    start: String(r.start),
  };
}

/** This host's audit key signing a decision on another host's work (the waiting host verifies it against its org policy). */
const signer =
  (dir?: string): DecisionSigner =>
  (statement) =>
    signDecision(statement, loadSigningKey(dir));

/** Runs `fn` on the shared store at the current schema; USAGE when none is configured. */
async function inSharedStore<T>(url: string | undefined, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  if (!url)
    throw new AirlockError(
      'USAGE',
      'no shared store configured',
      'set AIRLOCK_DATABASE_URL=postgres://… or telemetry.sharedStore in the org policy',
    );
  return withSharedStore(url, async (c) => {
    await requireCurrentSchema(c, `the shared store ${redactedUrl(url)}`);
    return fn(c);
  });
}

const SEVERITY_ORDER: Severity[] = ['info', 'low', 'medium', 'high', 'critical'];
/** this host's events searched per query: a bounded window, newest first */
const LOCAL_WINDOW = 20_000;

const hostMatches = (h: HostOf, host: string | undefined) =>
  !host || h.host === host || h.logId.startsWith(host.toLowerCase());

/** This host's newest events matching `f` (the same filters the shared store's query applies). */
function localEvents(store: AuditStore, f: HostEventFilter, limit: number): Omit<AuditEvent, 'prevHash' | 'hash'>[] {
  const from = Math.max(0, store.headSeq() - LOCAL_WINDOW);
  const floor = f.severity ? SEVERITY_ORDER.indexOf(f.severity) : 0;
  return store
    .query({ session: f.session, type: f.type, afterSeq: from, limit: LOCAL_WINDOW })
    .filter(
      (e) =>
        SEVERITY_ORDER.indexOf(e.severity) >= floor &&
        (!f.rule || (e.rule ?? '').startsWith(f.rule)) &&
        (!f.decision || e.decision === f.decision) &&
        (!f.since || e.ts >= f.since) &&
        (!f.until || e.ts <= f.until),
    )
    .slice(-limit)
    .reverse()
    .map(({ prevHash: _p, hash: _h, ...e }) => e);
}

function remoteEvent({ logId, hostname, ...e }: SharedEvent): HostEvent {
  return { ...e, ref: `${e.seq}@${logId.slice(0, 8)}`, host: hostname, logId, thisHost: false };
}

function localProposal(
  p: Proposal,
  st: ProposalStatus,
  host: HostOf,
): HostProposal & { local: { proposal: Proposal; status: ProposalStatus } } {
  return {
    ...host,
    ref: String(p.id),
    id: p.id,
    session: p.session,
    created: p.created,
    state: st.state,
    hash: p.hash,
    approvers: st.approvers,
    required: st.required,
    stats: p.stats,
    findingCount: p.findings.length,
    blockingCount: p.findings.filter((f) => f.blocking).length,
    local: { proposal: p, status: st },
  };
}

function remoteProposal(p: SharedProposal): HostProposal {
  return {
    ref: p.ref,
    host: p.hostname,
    logId: p.logId,
    thisHost: false,
    id: p.id,
    session: p.session,
    created: p.created,
    state: p.state,
    hash: p.hash,
    approvers: p.approvals,
    required: null,
    stats: p.stats,
    findingCount: p.findings,
    blockingCount: p.blocking,
  };
}

function remoteAsk(a: SharedAsk): HostAsk {
  return {
    ref: a.ref,
    host: a.hostname,
    logId: a.logId,
    thisHost: false,
    id: a.askId,
    session: a.session,
    command: a.command,
    rule: a.rule,
    reason: null,
    created: a.ts,
    expires: a.expires,
    status: 'pending',
    answeredBy: null,
    answerReason: null,
    scope: null,
  };
}
