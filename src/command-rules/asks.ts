import { setTimeout as sleep } from 'node:timers/promises';
import { AirlockError } from '../common/index.ts';
import type { AuditStore } from '../audit/index.ts';

// The "ask" queue: a command waiting for a human. Persisted in the audit database (own
// append-only tables, created by the audit schema's migrations) so `airlock approvals allow|deny N` from another terminal answers
// it. The first answer wins (primary key); a timeout is an answer too (deny). Every ask,
// answer and timeout is an audit event.

export type AskStatus = 'pending' | 'allow' | 'deny' | 'timeout';
/** What an allow covers: one connection (a command ask: one run), or a destination for the rest of the session. */
export type AnswerScope = 'once' | 'session';

export interface CommandAsk {
  id: number;
  session: string;
  command: string[];
  rule: string;
  reason: string;
  created: string;
  expires: string;
  status: AskStatus;
  answeredBy: string | null;
  answerReason: string | null;
  /** an allow's scope; null for a deny, a timeout, or an answer from before scopes */
  scope: AnswerScope | null;
}

export interface AnswerResult {
  decision: 'allow' | 'deny';
  by: string | null;
  reason: string;
  scope?: AnswerScope;
}

export interface PromptInfo {
  id: number;
  session: string;
  command: string[];
  rule: string;
  reason: string;
  expiresAt: string;
  /** aborted when the ask is answered elsewhere or times out */
  signal: AbortSignal;
}

export interface ApprovalRequest {
  session: string;
  command: string[];
  rule: string;
  timeoutSeconds: number;
  /** why the rule asks (shown to the human) */
  reason?: string;
  /**
   * Optional terminal prompt. Resolve with an answer, or null to leave it to
   * `airlock approvals` from another terminal. The first answer from either wins.
   */
  onPrompt?: (info: PromptInfo) => Promise<{ decision: 'allow' | 'deny'; by: string; reason?: string } | null>;
  /** poll interval for answers from other processes (ms) */
  pollMs?: number;
  /** aborted when the session ends: the ask is closed as expired with it */
  sessionEnded?: AbortSignal;
}

interface AskRow {
  id: number;
  session: string;
  command: string;
  rule: string;
  reason: string;
  created: string;
  expires: string;
  decision: string | null;
  kind: string | null;
  by: string | null;
  answer_reason: string | null;
  scope: string | null;
}

function toAsk(r: AskRow): CommandAsk {
  const status: AskStatus =
    r.decision === null ? 'pending' : r.kind === 'timeout' ? 'timeout' : (r.decision as 'allow' | 'deny');
  return {
    id: r.id,
    session: r.session,
    command: JSON.parse(r.command) as string[],
    rule: r.rule,
    reason: r.reason,
    created: r.created,
    expires: r.expires,
    status,
    answeredBy: r.by,
    answerReason: r.answer_reason,
    scope: r.scope === 'once' || r.scope === 'session' ? r.scope : null,
  };
}

const SELECT = `SELECT a.*, b.decision, b.kind, b.by, b.reason AS answer_reason, b.scope FROM command_asks a LEFT JOIN command_answers b ON b.ask_id = a.id`;

export function getAsk(store: AuditStore, id: number): CommandAsk | null {
  const r = store.tables.prepare(`${SELECT} WHERE a.id = ?`).get(id) as AskRow | undefined;
  return r ? toAsk(r) : null;
}

export function listAsks(store: AuditStore, opts: { all?: boolean; limit?: number } = {}): CommandAsk[] {
  expireOverdue(store);
  const rows = store.tables
    .prepare(`${SELECT} ${opts.all ? '' : 'WHERE b.decision IS NULL'} ORDER BY a.id DESC LIMIT ?`)
    .all(Math.max(1, Math.min(opts.limit ?? 200, 10_000))) as unknown as AskRow[];
  return rows.map(toAsk).reverse();
}

/** An egress.ask waits in this queue as ['egress', 'host:port'] under an egress.ask.* rule. */
export const isDestinationAsk = (a: Pick<CommandAsk, 'command' | 'rule'>): boolean =>
  a.command.length === 2 && a.command[0] === 'egress' && a.rule.startsWith('egress.ask.');

/** Inserts the answer unless one exists; returns whether this call's answer won. */
function insertAnswer(
  store: AuditStore,
  id: number,
  a: {
    decision: 'allow' | 'deny';
    kind: 'human' | 'prompt' | 'timeout';
    by: string | null;
    reason: string;
    scope?: AnswerScope;
  },
): boolean {
  const r = store.tables
    .prepare(
      'INSERT OR IGNORE INTO command_answers (ask_id, decision, kind, by, reason, ts, scope) VALUES (?, ?, ?, ?, ?, ?, ?)',
    )
    .run(
      id,
      a.decision,
      a.kind,
      a.by,
      a.reason,
      new Date().toISOString(),
      a.decision === 'allow' ? (a.scope ?? 'once') : null,
    );
  return Number(r.changes) === 1;
}

function recordTimeout(store: AuditStore, ask: CommandAsk, cause: 'timeout' | 'session-ended' = 'timeout'): void {
  const reason =
    cause === 'timeout' ? 'no answer before the timeout; denied' : 'the session ended before an answer; denied';
  if (insertAnswer(store, ask.id, { decision: 'deny', kind: 'timeout', by: null, reason })) {
    store.append({
      type: 'command.timeout',
      session: ask.session,
      severity: 'medium',
      decision: 'deny',
      rule: ask.rule,
      data: { askId: ask.id, command: ask.command, expires: ask.expires, cause },
    });
  }
}

/** Asks whose deadline passed while nobody was waiting (e.g. the session died) are denied. */
export function expireOverdue(store: AuditStore): void {
  const now = new Date().toISOString();
  const rows = store.tables
    .prepare(`${SELECT} WHERE b.decision IS NULL AND a.expires <= ? LIMIT 1000`)
    .all(now) as unknown as AskRow[];
  for (const r of rows) recordTimeout(store, toAsk(r));
}

/**
 * A human's answer (CLI or console). Refuses unknown ids, answered and expired asks. An
 * allow is for one connection (or one run) unless `scope` is 'session', which only a
 * destination can have: the narrower grant is the default.
 */
export function answerAsk(
  store: AuditStore,
  id: number,
  decision: 'allow' | 'deny',
  by: string,
  reason?: string,
  kind: 'human' | 'prompt' = 'human',
  scope: AnswerScope = 'once',
): CommandAsk {
  const ask = getAsk(store, id);
  if (!ask) throw new AirlockError('NOT_FOUND', `no pending approval #${id}`, 'list them with `airlock approvals`');
  if (decision === 'allow' && scope === 'session' && !isDestinationAsk(ask)) {
    throw new AirlockError(
      'USAGE',
      `approval #${id} is a command: an allow runs it once`,
      'leave out --session (only a destination can be allowed for the session)',
    );
  }
  if (ask.status === 'pending' && ask.expires <= new Date().toISOString()) {
    recordTimeout(store, ask);
    throw new AirlockError(
      'BAD_STATE',
      `approval #${id} timed out at ${ask.expires} and was denied`,
      'the agent may run the command again to ask anew',
    );
  }
  const text = reason?.trim() || `${decision} by ${by}`;
  if (ask.status !== 'pending' || !insertAnswer(store, id, { decision, kind, by, reason: text, scope })) {
    const now = getAsk(store, id)!;
    throw new AirlockError(
      'BAD_STATE',
      `approval #${id} was already answered: ${now.status}${now.answeredBy ? ` by ${now.answeredBy}` : ''}`,
      'nothing to do; see `airlock approvals --all`',
    );
  }
  store.append({
    type: 'command.answer',
    session: ask.session,
    severity: decision === 'allow' ? 'medium' : 'info',
    decision,
    rule: ask.rule,
    data: { askId: id, command: ask.command, by, kind, reason: text, ...(decision === 'allow' ? { scope } : {}) },
  });
  return getAsk(store, id)!;
}

function toResult(a: CommandAsk): AnswerResult {
  if (a.status !== 'allow') return { decision: 'deny', by: a.answeredBy, reason: a.answerReason ?? '' };
  return { decision: 'allow', by: a.answeredBy, reason: a.answerReason ?? '', scope: a.scope ?? 'once' };
}

/**
 * Waits for a human to allow or deny a command; denies after `timeoutSeconds`. The ask
 * is visible to `airlock approvals` in every terminal while it waits.
 */
export async function requestApproval(store: AuditStore, req: ApprovalRequest): Promise<AnswerResult> {
  if (!Number.isFinite(req.timeoutSeconds) || req.timeoutSeconds <= 0)
    throw new AirlockError(
      'USAGE',
      'timeoutSeconds must be a positive number',
      'use commands.askTimeoutSeconds from the policy',
    );
  if (!Array.isArray(req.command) || req.command.length === 0)
    throw new AirlockError('USAGE', 'empty command', 'pass the argv the agent asked to run');
  const created = new Date();
  const expires = new Date(created.getTime() + req.timeoutSeconds * 1000);
  const reason = req.reason ?? `rule ${req.rule} asks a human`;
  const ins = store.tables
    .prepare('INSERT INTO command_asks (session, command, rule, reason, created, expires) VALUES (?, ?, ?, ?, ?, ?)')
    .run(req.session, JSON.stringify(req.command), req.rule, reason, created.toISOString(), expires.toISOString());
  const id = Number(ins.lastInsertRowid);
  store.append({
    type: 'command.ask',
    session: req.session,
    severity: 'medium',
    decision: 'ask',
    rule: req.rule,
    data: { askId: id, command: req.command, timeoutSeconds: req.timeoutSeconds, expires: expires.toISOString() },
  });

  const done = new AbortController();
  if (req.onPrompt) {
    const info: PromptInfo = {
      id,
      session: req.session,
      command: req.command,
      rule: req.rule,
      reason,
      expiresAt: expires.toISOString(),
      signal: done.signal,
    };
    req.onPrompt(info).then(
      (a) => {
        if (!a || done.signal.aborted) return;
        try {
          answerAsk(store, id, a.decision, a.by, a.reason, 'prompt');
        } catch {
          /* answered elsewhere first */
        }
      },
      () => {
        /* a failing prompt leaves the ask to other terminals or the timeout */
      },
    );
  }
  const poll = Math.max(20, req.pollMs ?? 250);
  const maxIterations = Math.ceil((req.timeoutSeconds * 1000) / poll) + 2;
  try {
    for (let i = 0; i < maxIterations; i++) {
      const a = getAsk(store, id)!;
      if (a.status !== 'pending') return toResult(a);
      const left = expires.getTime() - Date.now();
      if (left <= 0 || req.sessionEnded?.aborted) break;
      await sleep(Math.min(poll, left), undefined, { signal: req.sessionEnded }).catch(() => {
        /* the session ended */
      });
    }
    recordTimeout(store, getAsk(store, id)!, req.sessionEnded?.aborted ? 'session-ended' : 'timeout');
    return toResult(getAsk(store, id)!); // a human may have won the race against the timeout
  } finally {
    done.abort();
  }
}

/** This host's queue as the shared store's relay needs it: pending ids, and how to answer one (an answer given on another host). */
export function localAskRelay(store: AuditStore): {
  pendingLocal: () => number[];
  answer: (id: number, decision: 'allow' | 'deny', by: string, reason: string) => void;
} {
  return {
    pendingLocal: () => listAsks(store).map((a) => a.id),
    answer: (id, decision, by, reason) => {
      answerAsk(store, id, decision, by, reason);
    },
  };
}
