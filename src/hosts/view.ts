import { hostname } from 'node:os';
import type pg from 'pg';
import { type AuditStore, logId } from '../audit/index.ts';
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
import { SESSION_COLUMNS, sessionFromRow, type SessionSummary } from '../session/index.ts';
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
  withSharedStore,
  type SharedAsk,
  type SharedProposal,
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

export interface WorkViewOptions {
  /** --database */
  database?: string;
  /** the org policy's telemetry.sharedStore when the caller already holds it */
  orgSetting?: string | null;
  /** the environment to resolve the store from (default process.env) */
  env?: NodeJS.ProcessEnv;
  /** told when the shared store cannot be reached: the listing then holds this host's part alone */
  onUnavailable?: (message: string) => void;
}

export interface WorkView {
  /** the shared store's URL, or undefined when this host's SQLite is the whole store */
  readonly sharedUrl: string | undefined;
  sessions(): Promise<HostSession[]>;
  proposals(o?: {
    all?: boolean;
  }): Promise<(HostProposal & { local?: { proposal: Proposal; status: ProposalStatus } })[]>;
  asks(o?: { all?: boolean }): Promise<HostAsk[]>;
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

/** The work of this host and, with a shared store, of every host. */
/** Approves another host's proposal in the shared store (its host applies it); recorded here as sent. */
async function approveRemoteProposal(
  store: AuditStore,
  url: string | undefined,
  thisHost: () => { logId: string },
  ref: string,
  a: Parameters<WorkView['approveRemote']>[1] = {},
): ReturnType<WorkView['approveRemote']> {
  assertOutsideSandbox(store, a.env);
  const who = humanIdentity(a.as);
  if (!url)
    throw new AirlockError(
      'USAGE',
      'no shared store configured',
      'set AIRLOCK_DATABASE_URL=postgres://… or telemetry.sharedStore in the org policy',
    );
  const p = await withSharedStore(url, async (c) => {
    await requireCurrentSchema(c, `the shared store ${redactedUrl(url)}`);
    return approveSharedProposal(c, ref, who.identity, thisHost().logId, {
      reason: a.reason,
      expectHash: a.expectHash,
    });
  });
  store.append({
    type: 'review.approval_sent',
    session: null,
    decision: 'allow',
    rule: 'review.approvals',
    data: {
      ref: p.ref,
      logId: p.logId,
      host: p.hostname,
      proposal: p.id,
      hash: p.hash,
      by: who.identity,
      source: who.source,
    },
  });
  return { ...remoteProposal(p), by: who.identity };
}

export function workView(store: AuditStore, o: WorkViewOptions = {}): WorkView {
  const url = sharedStoreUrl({ flag: o.database, orgSetting: o.orgSetting, env: o.env });
  // this host's marks, read once per view (not once per listed row)
  let thisHostMarks: (HostOf & { logId: string }) | undefined;
  const here = (): HostOf & { logId: string } =>
    (thisHostMarks ??= { ref: '', host: hostname(), logId: logId(store), thisHost: true });
  const others = async <T>(fn: (c: pg.Client, self: string) => Promise<T[]>): Promise<T[]> => {
    if (!url) return [];
    try {
      return await withSharedStore(url, (c) => fn(c, here().logId));
    } catch (e) {
      if (!(e instanceof AirlockError) || e.kind !== 'UNAVAILABLE') throw e;
      o.onUnavailable?.(e.message);
      return [];
    }
  };
  return {
    sharedUrl: url,
    sessions: async () => [
      ...localSessions(store),
      ...(await others(async (c, self) =>
        (await otherHostsSessionRows(c, SESSION_COLUMNS, self)).map((r) => ({
          ...sessionFromRow(r, false),
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
    approveRemote: async (ref, a = {}) => approveRemoteProposal(store, url, here, ref, a),
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
      if (!url)
        throw new AirlockError(
          'USAGE',
          'no shared store configured',
          'set AIRLOCK_DATABASE_URL=postgres://… or telemetry.sharedStore in the org policy',
        );
      return remoteAsk(
        await withSharedStore(url, async (c) => {
          await requireCurrentSchema(c, `the shared store ${redactedUrl(url)}`);
          return answerSharedAsk(c, ref, decision, by, reason);
        }),
      );
    },
  };
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
