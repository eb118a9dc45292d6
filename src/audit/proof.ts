import type { KeyObject } from 'node:crypto';
import { AirlockError } from '../common/index.ts';
import { type AuditEvent, chainHash, eventBody } from './event.ts';
import { eventLeafHash, inclusionProof, rootOf, verifyInclusion } from './merkle.ts';
import {
  type Checkpoint,
  type CheckpointOptions,
  checkpoint,
  latestCheckpoint,
  verifyCheckpointSignature,
} from './checkpoint.ts';
import { rowToEvent, type AuditStore } from './store.ts';

// An inclusion proof is self-contained: the event, its chain hash, the RFC 6962 audit
// path and the signed checkpoint. `verifyProof` needs only the public key; any RFC 6962
// verifier can check `rfc6962` (leaf hash, index, size, path, root) on its own.

export const PROOF_FORMAT = 'airlock-audit-inclusion-proof/v1';

export interface InclusionProofDoc {
  format: typeof PROOF_FORMAT;
  event: AuditEvent;
  rfc6962: {
    hashAlgorithm: 'sha256';
    /** leaf input: the event's 32-byte chain hash (hex); leafHash = SHA-256(0x00 || leafInput) */
    leafInput: string;
    leafHash: string;
    leafIndex: number;
    treeSize: number;
    /** audit path, leaf to root, hex */
    auditPath: string[];
    rootHash: string;
  };
  checkpoint: Checkpoint;
}

/** Proves one event under the latest checkpoint that covers it, or under `under` (several proofs then share one checkpoint). */
export function proveEvent(
  store: AuditStore,
  eventId: string,
  opts: CheckpointOptions & { under?: Checkpoint } = {},
): InclusionProofDoc {
  const row = store.tables.prepare('SELECT * FROM events WHERE id = ?').get(eventId);
  if (!row)
    throw new AirlockError(
      'NOT_FOUND',
      `no audit event with id ${eventId}`,
      'find ids with `airlock audit show SESSION --json`',
    );
  const event = rowToEvent(row as unknown as Parameters<typeof rowToEvent>[0]);
  if (chainHash(event.prevHash, eventBody(event)) !== event.hash) {
    throw new AirlockError(
      'TAMPERED',
      `event ${event.seq} (${event.id}) does not match its hash: it was altered after it was written`,
      'run `airlock audit verify` for the full report',
    );
  }
  if (opts.under && opts.under.size < event.seq)
    throw new AirlockError(
      'BAD_STATE',
      `checkpoint #${opts.under.id} does not cover event ${event.seq}`,
      'take a checkpoint first',
    );
  const cp = opts.under ?? latestCheckpoint(store.tables, event.seq) ?? checkpoint(store, 'prove', opts);
  const stmt = store.tables.prepare(
    'SELECT seq, hash FROM events WHERE seq > ? AND seq <= ? ORDER BY seq ASC LIMIT 20000',
  );
  stmt.setReturnArrays(true);
  const leaves: Buffer[] = [];
  for (let after = 0; after < cp.size;) {
    const rows = stmt.all(after, cp.size) as unknown as [number, string][];
    if (rows.length === 0) break;
    for (const [seq, h] of rows) {
      if (seq !== leaves.length + 1)
        throw new AirlockError(
          'TAMPERED',
          `event ${leaves.length + 1} is missing from the log`,
          'run `airlock audit verify`',
        );
      leaves.push(eventLeafHash(h));
    }
    after = rows[rows.length - 1]![0];
  }
  if (leaves.length !== cp.size || rootOf(leaves).toString('hex') !== cp.root) {
    throw new AirlockError(
      'TAMPERED',
      `the log no longer matches signed checkpoint #${cp.id} (size ${cp.size})`,
      'run `airlock audit verify` to find the first bad event',
    );
  }
  const index = event.seq - 1;
  return {
    format: PROOF_FORMAT,
    event,
    rfc6962: {
      hashAlgorithm: 'sha256',
      leafInput: event.hash,
      leafHash: leaves[index]!.toString('hex'),
      leafIndex: index,
      treeSize: cp.size,
      auditPath: inclusionProof(leaves, index).map((b) => b.toString('hex')),
      rootHash: cp.root,
    },
    checkpoint: cp,
  };
}

export interface ProofCheck {
  ok: boolean;
  reason: string;
}

/** Checks a proof document with the public key alone. Every field is recomputed, none trusted. */
export function verifyProof(doc: unknown, pub: KeyObject): ProofCheck {
  const fail = (reason: string): ProofCheck => ({ ok: false, reason });
  const d = doc as Partial<InclusionProofDoc> | null;
  if (!d || typeof d !== 'object' || d.format !== PROOF_FORMAT || !d.event || !d.rfc6962 || !d.checkpoint) {
    return fail(`not an ${PROOF_FORMAT} document`);
  }
  const event = d.event;
  const p = d.rfc6962;
  const cp = d.checkpoint;
  let recomputed: string;
  try {
    recomputed = chainHash(event.prevHash, eventBody(event));
  } catch {
    return fail('event is malformed');
  }
  if (recomputed !== event.hash)
    return fail(`event ${event.seq} (${event.id}) does not match its hash: its content was altered`);
  if (p.leafInput !== event.hash) return fail('proof leaf is not this event');
  if (p.leafIndex !== event.seq - 1) return fail(`leaf index ${p.leafIndex} is not event ${event.seq}`);
  if (p.treeSize !== cp.size || p.rootHash !== cp.root) return fail('proof does not refer to the enclosed checkpoint');
  if (!verifyCheckpointSignature(cp, pub))
    return fail(`checkpoint #${cp.id} signature does not verify with this public key`);
  if (!Array.isArray(p.auditPath) || !p.auditPath.every((h) => typeof h === 'string' && /^[0-9a-f]{64}$/.test(h)))
    return fail('audit path is malformed');
  const ok = verifyInclusion(
    eventLeafHash(event.hash),
    p.leafIndex,
    p.treeSize,
    p.auditPath.map((h) => Buffer.from(h, 'hex')),
    Buffer.from(cp.root, 'hex'),
  );
  return ok
    ? {
        ok: true,
        reason: `event ${event.seq} (${event.id}) is included in the log of ${cp.size} events signed by key ${cp.keyId} at ${cp.ts}`,
      }
    : fail('audit path does not lead to the signed root: the event is not in the signed log');
}
