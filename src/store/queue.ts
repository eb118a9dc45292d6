import type pg from 'pg';
import { type AuditStore, logId } from '../audit/index.ts';
import { AirlockError } from '../common/index.ts';
import { checkDecision, type DecisionStatement, type SignedDecision, type TrustedApprover } from './decisions.ts';
import {
  claimsTrustedKey,
  insertUnlessDecided,
  judged,
  recordFlood,
  recordRefusal,
  type RelayContext,
  relayContext,
  rowsInOrder,
  type SlotRows,
  trustedRows,
} from './relay-rows.ts';
import { approverTrust } from './connect.ts';

// Work queues across hosts. An ask is an event of the asking host's chain (`command.ask`),
// so every host sees it once shipped; an answer given elsewhere is a row of airlock.answers
// (insert-only, first answer wins by primary key) whose insert NOTIFYs the asking host. That
// host's shipper claims it and answers the ask in its own local queue, where the session
// waits; the local answer is a `command.answer` event naming who answered, shipped back.
//
// Claiming uses pg_try_advisory_xact_lock per ask rather than SELECT … FOR UPDATE SKIP
// LOCKED: row locks need UPDATE privilege, which the append-only writer role never has.
// The effect is the same: two relays of one host never apply the same answer at once.

export const ANSWERS_CHANNEL = 'airlock_answers';

export interface SharedAsk {
  /** `<id>@<host log id prefix>`: what `airlock approvals allow|deny` takes on any host */
  ref: string;
  logId: string;
  hostname: string;
  askId: number;
  session: string | null;
  command: string[];
  rule: string | null;
  expires: string;
  ts: string;
}

const PENDING = `SELECT e.log_id, h.hostname, e.session, e.rule, e.data, e.ts FROM airlock.events e JOIN airlock.hosts h USING (log_id)
  WHERE e.type = 'command.ask'
    AND NOT EXISTS (SELECT 1 FROM airlock.events b WHERE b.log_id = e.log_id AND b.type IN ('command.answer', 'command.timeout')
      AND b.session IS NOT DISTINCT FROM e.session AND (airlock.try_jsonb(b.data) ->> 'askId') = (airlock.try_jsonb(e.data) ->> 'askId'))
  ORDER BY e.ts LIMIT 1000`;

const PREFIX = 8;
const isStats = (v: unknown): v is SharedProposal['stats'] =>
  v !== null &&
  typeof v === 'object' &&
  ['files', 'added', 'deleted', 'commits'].every((k) => typeof (v as Record<string, unknown>)[k] === 'number');

/** A host's event data; {} when it is not a JSON object (verify reports such a row, listings skip it). */
export function parseData(text: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
const refOf = (askId: number, log: string) => `${askId}@${log.slice(0, PREFIX)}`;

/** Asks still waiting on any host (not answered there, not answered here, not expired). */
export async function pendingSharedAsks(c: pg.ClientBase, now = new Date()): Promise<SharedAsk[]> {
  const rows = (
    await c.query<{
      log_id: string;
      hostname: string;
      session: string | null;
      rule: string | null;
      data: string;
      ts: string;
    }>(PENDING)
  ).rows;
  return rows.flatMap((r) => {
    const d = parseData(r.data) as { askId?: unknown; command?: unknown; expires?: unknown };
    if (typeof d.askId !== 'number' || typeof d.expires !== 'string' || d.expires <= now.toISOString()) return [];
    const command = Array.isArray(d.command) ? d.command.map(String) : [];
    return [
      {
        ref: refOf(d.askId, r.log_id),
        logId: r.log_id,
        hostname: r.hostname,
        askId: d.askId,
        session: r.session,
        command,
        rule: r.rule,
        expires: d.expires,
        ts: r.ts,
      },
    ];
  });
}

/** Parses `ID@HOSTPREFIX`; null for a plain local id. */
export function parseSharedRef(ref: string): { askId: number; host: string } | null {
  const m = /^(\d{1,15})@([0-9a-f-]{4,36})$/i.exec(ref);
  return m ? { askId: Number(m[1]), host: m[2]!.toLowerCase() } : null;
}

/** Signs a decision statement as this host (its audit key); see decisions.ts. */
export type DecisionSigner = (s: Omit<DecisionStatement, 'v'>) => SignedDecision;

/** Whether the ask already holds an answer signed by a trusted key (read bounded, oldest first per key). */
async function validAnswerExists(c: pg.ClientBase, ask: SharedAsk, trust: readonly TrustedApprover[]) {
  const { rows } = await trustedRows<AnswerRow>(c, relayContext(trust), '', answersOf(ask.logId, ask.askId));
  return rows.some((a) => checkAnswer(a, ask.logId, trust).ok);
}

/**
 * Answers an ask waiting on another host, signed by this host. Rows that do not verify (forged,
 * unsigned, untrusted keys) hold no slot: the first VALID answer wins, here and on the asking host.
 */
export async function answerSharedAsk(
  client: pg.ClientBase,
  ref: string,
  answer: {
    decision: 'allow' | 'deny';
    by: string;
    reason?: string;
    fromLogId: string;
    sign: DecisionSigner;
    /** keys whose answers count (default: the org policy's approverKeys); a row signed by none holds no slot */
    trust?: readonly TrustedApprover[];
  },
): Promise<SharedAsk> {
  const parsed = parseSharedRef(ref);
  if (!parsed)
    throw new AirlockError(
      'USAGE',
      `${JSON.stringify(ref)} is not an ask on another host`,
      'use the id shown by `airlock approvals`, such as 3@1a2b3c4d',
    );
  const pending = await pendingSharedAsks(client);
  const ask = pending.find((x) => x.askId === parsed.askId && x.logId.startsWith(parsed.host));
  if (!ask)
    throw new AirlockError(
      'NOT_FOUND',
      `no pending approval ${ref}`,
      'it may have been answered or timed out; list them with `airlock approvals`',
    );
  const text = answer.reason?.trim() || `${answer.decision} by ${answer.by}`;
  const signed = answer.sign({
    kind: 'ask-answer',
    logId: ask.logId,
    item: ask.askId,
    hash: null,
    decision: answer.decision,
    by: answer.by,
    reason: text,
    ts: new Date().toISOString(),
    from: answer.fromLogId,
  });
  const row = [
    ask.logId,
    ask.askId,
    answer.decision,
    answer.by,
    text,
    signed.statement,
    signed.keyId,
    signed.signature,
  ];
  const trust = answer.trust ?? approverTrust();
  // answerers serialize per ask; one that finds a valid answer already there is refused (first valid wins)
  await insertUnlessDecided(client, {
    lock: ['airlock.answer', ask.logId, ask.askId],
    decided: () => validAnswerExists(client, ask, trust),
    refusal: new AirlockError(
      'BAD_STATE',
      `approval ${ref} was already answered`,
      'nothing to do; see `airlock approvals`',
    ),
    insert: `INSERT INTO airlock.answers (log_id, ask_id, decision, by, reason, statement, key_id, signature)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    params: row,
  });
  return ask;
}

interface AnswerRow {
  id: string;
  written_by: string;
  ask_id: string;
  decision: 'allow' | 'deny';
  by: string;
  reason: string;
  statement: string | null;
  key_id: string | null;
  signature: string | null;
}

export { type RelayContext, relayContext };

// one ask's rows, along the index answers_by_writer (trusted scan) or answers_in_order (refusal scan)
const answersOf = (log: string, askId: number): SlotRows => ({
  table: 'answers',
  columns: 'a.id, a.written_by, a.ask_id, a.decision, a.by, a.reason, a.statement, a.key_id, a.signature',
  where: 'a.log_id = $1 AND a.ask_id = $2',
  params: [log, askId],
});

type AnswerLocally = (id: number, decision: 'allow' | 'deny', by: string, reason: string) => void;

/**
 * Applies answers given elsewhere to this host's waiting asks (run by the host's shipper): per
 * ask, the first row (in insertion order) signed by a key the org trusts over exactly this ask
 * (checkDecision). Refused rows are recorded and skipped, never counted; the ask keeps waiting
 * for a valid one. Bounded per poll (relay-rows.ts). `answerLocally` is the local queue's answer
 * function (command-rules' answerAsk).
 */
export async function relayAnswers(
  local: AuditStore,
  client: pg.ClientBase,
  pendingLocal: number[],
  answerLocally: AnswerLocally,
  ctx: RelayContext,
): Promise<number> {
  const log = logId(local);
  let applied = 0;
  for (const askId of pendingLocal) if (await relayAnswer(local, client, log, askId, answerLocally, ctx)) applied += 1;
  return applied;
}

const checkAnswer = (a: AnswerRow, log: string, trust: readonly TrustedApprover[]) =>
  checkDecision({ statement: a.statement, keyId: a.key_id, signature: a.signature }, trust, {
    kind: 'ask-answer',
    logId: log,
    item: Number(a.ask_id),
    hash: null,
    by: a.by,
    decision: a.decision,
  });

const refusedAnswer = (a: AnswerRow, keyId: string | null) => ({
  askId: Number(a.ask_id),
  decision: a.decision,
  by: a.by,
  keyId,
  row: Number(a.id),
});

async function relayAnswer(
  local: AuditStore,
  c: pg.ClientBase,
  log: string,
  askId: number,
  answerLocally: AnswerLocally,
  ctx: RelayContext,
): Promise<boolean> {
  const slot = `answer\n${askId}`;
  await refuseUntrustedAnswers(local, c, log, askId, ctx);
  const { rows, flooding } = await trustedRows<AnswerRow>(c, ctx, slot, answersOf(log, askId));
  await recordFlood(local, c, ctx, slot, { type: 'command.answer_flood', flooding, data: { askId } });
  for (const a of rows) {
    const check = checkAnswer(a, log, ctx.trust);
    if (check.ok) return claimAndAnswer(c, log, a, check.statement, answerLocally);
    judged(ctx, slot, a);
    recordRefusal(local, ctx, slot, 'command.answer_refused', check.why, refusedAnswer(a, check.keyId));
  }
  return false;
}

/** Records (bounded) the refusal of rows claiming no trusted key: unsigned, or signed by a key the org does not list. */
async function refuseUntrustedAnswers(
  local: AuditStore,
  c: pg.ClientBase,
  log: string,
  askId: number,
  ctx: RelayContext,
): Promise<void> {
  const slot = `answer\n${askId}`;
  const { rows, flooding } = await rowsInOrder<AnswerRow>(c, ctx, slot, answersOf(log, askId));
  await recordFlood(local, c, ctx, slot, { type: 'command.answer_flood', flooding, data: { askId } });
  for (const a of rows) {
    judged(ctx, slot, a, '*');
    if (claimsTrustedKey(ctx, a)) continue; // judged, signature and all, by the trusted scan
    const check = checkAnswer(a, log, ctx.trust);
    if (!check.ok) recordRefusal(local, ctx, slot, 'command.answer_refused', check.why, refusedAnswer(a, check.keyId));
  }
}

/** Applies one verified answer under an advisory lock (two relays of one host never apply it at once). */
async function claimAndAnswer(
  c: pg.ClientBase,
  log: string,
  a: AnswerRow,
  s: DecisionStatement,
  answerLocally: AnswerLocally,
): Promise<boolean> {
  await c.query('BEGIN');
  try {
    const claimed = (
      await c.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock(hashtext($1), $2::int) AS ok', [
        log,
        Number(a.ask_id) % 2 ** 31,
      ])
    ).rows[0]?.ok;
    if (!claimed) return false;
    try {
      answerLocally(Number(a.ask_id), s.decision === 'allow' ? 'allow' : 'deny', s.by, s.reason ?? a.reason);
      return true;
    } catch {
      return false; // answered here first, or timed out: the local queue decided
    }
  } finally {
    await c.query('COMMIT');
  }
}

/**
 * Per-session rows of every other host's log, newest sessions first (at most `limit`), from
 * airlock.session_summary (schema v8: kept by the server from the events it inserts, never
 * written by a host), with the columns the session module's SESSION_COLUMNS name, plus the
 * host's name and log id. Reads one summary row per session, not every event.
 */
export async function otherHostsSessionRows(
  c: pg.ClientBase,
  exceptLogId: string,
  limit = 5000,
): Promise<Record<string, unknown>[]> {
  return (
    await c.query(
      `SELECT s.session AS id, s.log_id AS "logId", h.hostname, s.start AS "start", s.events AS "events",
        s.denials AS "denials", s.start_data AS "startData", s.stop_data AS "stopData", s.stop_ts AS "end",
        s.result_data AS "resultData", s.fail_data AS "failData", s.first_seq AS "firstSeq", s.last_seq AS "lastSeq"
      FROM airlock.session_summary s JOIN airlock.hosts h USING (log_id) WHERE s.log_id <> $1
      ORDER BY s.start DESC LIMIT $2`,
      [exceptLogId, limit],
    )
  ).rows.reverse();
}

/** A proposal made on another host, as its shipped review events tell it. */
export interface SharedProposal {
  /** `<proposal id>@<host log id prefix>` */
  ref: string;
  logId: string;
  hostname: string;
  id: number;
  session: string | null;
  created: string;
  /** the proposal's content hash (approvals are bound to it), null when the event lacks it */
  hash: string | null;
  state: 'pending' | 'approved' | 'rejected' | 'applied' | 'superseded';
  approvals: string[];
  stats: { files: number; added: number; deleted: number; commits: number } | null;
  findings: number;
  blocking: number;
}

const PROPOSALS = `SELECT e.log_id, h.hostname, e.session, e.ts, e.data,
    coalesce((SELECT json_agg(json_build_array(b.type, airlock.try_jsonb(b.data) ->> 'by') ORDER BY b.seq) FROM airlock.events b
      WHERE b.log_id = e.log_id AND b.session IS NOT DISTINCT FROM e.session AND b.type IN ('review.approved', 'review.rejected', 'review.applied')
        AND (airlock.try_jsonb(b.data) ->> 'proposal') = (airlock.try_jsonb(e.data) ->> 'proposal') AND (airlock.try_jsonb(b.data) ->> 'hash') = (airlock.try_jsonb(e.data) ->> 'hash')), '[]') AS decisions
  FROM airlock.events e JOIN airlock.hosts h USING (log_id) WHERE e.type = 'review.proposed' AND e.log_id <> $1 ORDER BY e.ts LIMIT $2`;

/** Proposals of every other host, their state from the review events (a later proposal of the same session supersedes an open one). */
export async function otherHostsProposals(
  c: pg.ClientBase,
  exceptLogId: string,
  limit = 2000,
): Promise<SharedProposal[]> {
  const rows = (
    await c.query<{
      log_id: string;
      hostname: string;
      session: string | null;
      ts: string;
      data: string;
      decisions: [string, string | null][];
    }>(PROPOSALS, [exceptLogId, limit])
  ).rows;
  const latest = new Map<string, number>();
  const out = rows.flatMap<SharedProposal>((row) => {
    const data = parseData(row.data) as {
      proposal?: unknown;
      hash?: unknown;
      stats?: SharedProposal['stats'];
      findings?: unknown;
      blocking?: unknown;
    };
    if (typeof data.proposal !== 'number') return [];
    const key = `${row.log_id}\n${row.session}`;
    latest.set(key, Math.max(latest.get(key) ?? 0, data.proposal));
    const kinds = row.decisions.map((x) => x[0]);
    const approvals = row.decisions.filter((x) => x[0] === 'review.approved').map((x) => String(x[1] ?? ''));
    const state: SharedProposal['state'] = kinds.includes('review.applied')
      ? 'applied'
      : kinds.includes('review.rejected')
        ? 'rejected'
        : approvals.length
          ? 'approved'
          : 'pending';
    return [
      {
        ref: refOf(data.proposal, row.log_id),
        logId: row.log_id,
        hostname: row.hostname,
        id: data.proposal,
        session: row.session,
        created: row.ts,
        hash: typeof data.hash === 'string' ? data.hash : null,
        state,
        approvals,
        stats: isStats(data.stats) ? data.stats : null,
        findings: Number(data.findings ?? 0),
        blocking: Number(data.blocking ?? 0),
      },
    ];
  });
  for (const p of out)
    if ((p.state === 'pending' || p.state === 'approved') && (latest.get(`${p.logId}\n${p.session}`) ?? 0) > p.id)
      p.state = 'superseded';
  return out;
}
