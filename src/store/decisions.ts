import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { keyId, type SigningKey } from '../audit/index.ts';
import { AirlockError, canonicalJson } from '../common/index.ts';

// Signed decisions across hosts. Every host holds the shared store's writer credentials, so a
// row in airlock.answers or airlock.review_approvals proves nothing by itself: any host (or
// anyone who took its credentials) could insert one in a reviewer's name. The host that
// records a human's decision (CLI, console) therefore signs the exact statement — which
// host's ask or proposal, its content hash, the decision, who, when, from where — with its
// Ed25519 audit key, and the waiting host applies a row only when that signature verifies
// against a key its ORG policy lists (`telemetry.approverKeys`). A key published in the
// store is never trusted for this: the writer role could publish one.

/** The policy rule every refusal of a remote decision names. */
export const APPROVER_KEYS_RULE = 'telemetry.approverKeys';

const VERSION = 'airlock-decision/1';

export interface DecisionStatement {
  v: typeof VERSION;
  kind: 'ask-answer' | 'review-approval';
  /** the log id of the host whose ask or proposal this decides */
  logId: string;
  /** the ask id or the proposal id on that host */
  item: number;
  /** the proposal's content hash; null for an ask */
  hash: string | null;
  decision: 'allow' | 'deny' | 'approve';
  by: string;
  reason: string | null;
  /** when the decision was recorded (ISO 8601) */
  ts: string;
  /** the log id of the host that recorded it */
  from: string;
}

/** What a decision row carries besides its columns: the signed text, the key's id and the signature. */
export interface SignedDecision {
  statement: string;
  keyId: string;
  signature: string;
}

/** Signs a decision with this host's key; the statement is canonical JSON, stored as signed. */
export function signDecision(s: Omit<DecisionStatement, 'v'>, key: SigningKey): SignedDecision {
  const statement = canonicalJson({ ...s, v: VERSION });
  return {
    statement,
    keyId: key.keyId,
    signature: sign(null, Buffer.from(statement), key.privateKey).toString('base64'),
  };
}

/** A key the org policy trusts to sign decisions, with the name the policy gives it. */
export interface TrustedApprover {
  name: string;
  keyId: string;
  key: KeyObject;
}

/** The org policy's approver keys, parsed; a key that is not an Ed25519 public key is a user error. */
export function trustedApprovers(entries: readonly { name: string; publicKey: string }[]): TrustedApprover[] {
  return entries.map((e) => {
    const key = publicKeyOrNull(e.publicKey);
    if (key?.asymmetricKeyType !== 'ed25519')
      throw new AirlockError(
        'USAGE',
        `${APPROVER_KEYS_RULE} entry ${JSON.stringify(e.name)} is not an Ed25519 public key in PEM`,
        'paste the output of `airlock audit pubkey` run on the approving host (the console or a reviewer’s machine)',
      );
    return { name: e.name, keyId: keyId(key), key };
  });
}

function publicKeyOrNull(pem: string): KeyObject | null {
  try {
    return createPublicKey(pem);
  } catch {
    return null;
  }
}

export type DecisionCheck =
  { ok: true; statement: DecisionStatement; approver: string } | { ok: false; why: string; keyId: string | null };

/** What the waiting host expects a row to decide: its own ask or proposal, and the row's columns. */
export interface ExpectedDecision {
  kind: DecisionStatement['kind'];
  logId: string;
  item: number;
  hash: string | null;
  by: string;
  decision?: DecisionStatement['decision'];
}

function signatureHolds(statement: string, signature: string, key: KeyObject): boolean {
  try {
    return verify(null, Buffer.from(statement), key, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

function parseStatement(text: string): DecisionStatement | null {
  try {
    const v = JSON.parse(text) as DecisionStatement;
    return v !== null && typeof v === 'object' && v.v === VERSION ? v : null;
  } catch {
    return null;
  }
}

/**
 * Verifies a decision row: signed, by a key the org trusts, over a statement for exactly this
 * host's item (and content hash), matching the row's own columns. Anything else is refused.
 */
export function checkDecision(
  row: Partial<Record<keyof SignedDecision, string | null>>,
  trust: readonly TrustedApprover[],
  expect: ExpectedDecision,
): DecisionCheck {
  const kid = typeof row.keyId === 'string' ? row.keyId : null;
  if (!row.statement || !row.signature || !kid) return { ok: false, why: 'the decision is not signed', keyId: kid };
  const approver = trust.find((t) => t.keyId === kid);
  if (!approver)
    return {
      ok: false,
      why: `signed by key ${kid.slice(0, 16)}, which the org policy does not trust (${APPROVER_KEYS_RULE})`,
      keyId: kid,
    };
  if (!signatureHolds(row.statement, row.signature, approver.key))
    return { ok: false, why: `the signature does not verify with ${approver.name}'s key`, keyId: kid };
  const s = parseStatement(row.statement);
  const mismatch = !s
    ? 'the signed statement is not an airlock decision'
    : s.kind !== expect.kind || s.logId !== expect.logId || s.item !== expect.item
      ? `the signature is for ${s.kind} ${s.item} on ${String(s.logId).slice(0, 8)}, not this one`
      : s.hash !== expect.hash
        ? `the signature is for content ${String(s.hash).slice(0, 12)}, not ${String(expect.hash).slice(0, 12)}`
        : s.by !== expect.by || (expect.decision !== undefined && s.decision !== expect.decision)
          ? 'the row does not say what was signed (approver or decision differ)'
          : null;
  return mismatch || !s
    ? { ok: false, why: mismatch ?? 'unreadable', keyId: kid }
    : { ok: true, statement: s, approver: approver.name };
}
