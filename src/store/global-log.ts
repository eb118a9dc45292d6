import { type Checkpoint, checkpointText, leafHash } from '../audit/index.ts';

// The global log: one RFC 6962 tree over every host's signed checkpoints, in the order they
// reached the shared store (Trillian's log mode over the hosts' tree heads). A leaf is the
// checkpoint's signed text with its key id and signature, so the global root commits to
// every host's chain at every checkpoint; a verifier recomputes it from the stored rows.

export function checkpointLeaf(c: Pick<Checkpoint, 'logId' | 'size' | 'root' | 'ts' | 'keyId' | 'signature'>): Buffer {
  return leafHash(Buffer.from(`${checkpointText(c)}key ${c.keyId}\nsig ${c.signature}\n`));
}
