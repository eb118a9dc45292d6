import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomUUID,
  sign,
  verify as edVerify,
  type KeyObject,
} from 'node:crypto';
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { AirlockError, airlockHome, homeLayout } from '../common/index.ts';
import { MerkleFrontier, eventLeafHash } from './merkle.ts';
import type { AuditStore, AuditTables } from './store.ts';

/** The audit store's `tables`, or a read-only connection of the verifier. */
type Sql = Pick<AuditTables, 'exec' | 'prepare'>;

// Signed checkpoints: every N events, every T seconds and at session end, Airlock signs
// (Ed25519) the size and RFC 6962 root of the tree over all events so far. Checkpoints
// live in their own append-only table and are also appended to the log as an
// `audit.checkpoint` event, so every sink ships them to a system the host does not control.

export const KEY_FILE = 'audit-ed25519.pem';
export const PUBKEY_FILE = 'audit-ed25519.pub.pem';

export interface Checkpoint {
  id: number;
  logId: string;
  size: number;
  /** hex RFC 6962 root over events 1..size */
  root: string;
  ts: string;
  reason: string;
  keyId: string;
  /** base64 Ed25519 signature over checkpointText() */
  signature: string;
}

/** The exact bytes that are signed. Rebuilt from fields by every verifier, never read from a file. */
export function checkpointText(c: Pick<Checkpoint, 'logId' | 'size' | 'root' | 'ts'>): string {
  return `airlock-audit-checkpoint v1\nlog ${c.logId}\nsize ${c.size}\nroot ${c.root}\ntime ${c.ts}\n`;
}

export function keyId(pub: KeyObject): string {
  return createHash('sha256')
    .update(pub.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 16);
}

export function keyDir(): string {
  return homeLayout(airlockHome()).keys;
}

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyId: string;
}

/** Which key a directory holds: the audit checkpoint key, or another Ed25519 key kept the same way. */
export interface KeyFiles {
  key: string;
  pub: string;
  what: string;
}
export const AUDIT_KEY_FILES: KeyFiles = { key: KEY_FILE, pub: PUBKEY_FILE, what: 'audit signing key' };

/**
 * Loads an Ed25519 signing key from `dir`, creating it (mode 0600, O_EXCL) on first use.
 * Refuses a key file that group or others can read: a leaked key lets anyone forge signatures.
 */
export function loadSigningKey(dir = keyDir(), files: KeyFiles = AUDIT_KEY_FILES): SigningKey {
  const file = join(dir, files.key);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('ed25519');
    publishOnce(file, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  }
  const key = readSigningKey(file, files.what);
  // the public half of the key that won, never of a key that lost the race to be written
  // (public, but the data dir is private throughout)
  if (!existsSync(join(dir, files.pub)))
    publishOnce(join(dir, files.pub), key.publicKey.export({ type: 'spki', format: 'pem' }) as string);
  return key;
}

/**
 * Writes `file` whole or not at all, and only if it does not exist: concurrent first sessions
 * race to create a key; the first complete file wins and a reader never sees a partial one.
 */
function publishOnce(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.${randomUUID()}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; // another process won the race: its file stands
  } finally {
    unlinkSync(tmp);
  }
}

/** Reads an Ed25519 private key PEM that only its owner can read. */
export function readSigningKey(file: string, what: string): SigningKey {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    throw new AirlockError(
      'NOT_FOUND',
      `${what} ${file} cannot be read`,
      'check the path, or unset it to use the key Airlock keeps under AIRLOCK_HOME/keys',
    );
  }
  let pem: string;
  try {
    const st = fstatSync(fd);
    if ((st.mode & 0o077) !== 0) {
      throw new AirlockError(
        'BAD_STATE',
        `${what} ${file} is readable by group or others (mode ${(st.mode & 0o777).toString(8)})`,
        `run: chmod 600 ${file} (and rotate the key if others may have read it)`,
      );
    }
    pem = readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw new AirlockError(
      'USAGE',
      `${what} ${file} is not a PEM private key`,
      'use an Ed25519 key in PKCS#8 PEM (openssl genpkey -algorithm ed25519)',
    );
  }
  if (privateKey.asymmetricKeyType !== 'ed25519')
    throw new AirlockError(
      'USAGE',
      `${what} ${file} is a ${privateKey.asymmetricKeyType} key, not Ed25519`,
      'use an Ed25519 key (openssl genpkey -algorithm ed25519)',
    );
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyId(publicKey) };
}

/** The public key alone: from the key dir (derived from the private key when only it exists) or a PEM file. */
export function loadPublicKey(pemFile?: string, dir = keyDir()): KeyObject {
  if (pemFile) {
    if (!existsSync(pemFile))
      throw new AirlockError(
        'NOT_FOUND',
        `public key file not found: ${pemFile}`,
        'get it with `airlock audit pubkey > audit.pub.pem` on the host that signed',
      );
    try {
      return createPublicKey(readFileSync(pemFile, 'utf8'));
    } catch {
      throw new AirlockError(
        'USAGE',
        `${pemFile} is not a PEM public key`,
        'pass the output of `airlock audit pubkey`',
      );
    }
  }
  const pub = join(dir, PUBKEY_FILE);
  if (existsSync(pub)) return createPublicKey(readFileSync(pub, 'utf8'));
  if (existsSync(join(dir, KEY_FILE))) return loadSigningKey(dir).publicKey;
  throw new AirlockError(
    'NOT_FOUND',
    `no audit signing key in ${dir}`,
    'a key is created at the first checkpoint; or pass --pubkey FILE',
  );
}

export function verifyCheckpointSignature(
  c: Pick<Checkpoint, 'logId' | 'size' | 'root' | 'ts' | 'signature'>,
  pub: KeyObject,
): boolean {
  try {
    return edVerify(null, Buffer.from(checkpointText(c)), pub, Buffer.from(c.signature, 'base64'));
  } catch {
    return false;
  }
}

export function logId(store: AuditStore): string {
  // set once, then read back: concurrent first writers agree on one id
  return store.getKv('audit.logId') ?? store.setKvOnce('audit.logId', randomUUID());
}

interface CpRow {
  id: number;
  size: number;
  root: string;
  ts: string;
  reason: string;
  log_id: string;
  key_id: string;
  signature: string;
  frontier: string;
}
const toCheckpoint = (r: CpRow): Checkpoint => ({
  id: r.id,
  logId: r.log_id,
  size: r.size,
  root: r.root,
  ts: r.ts,
  reason: r.reason,
  keyId: r.key_id,
  signature: r.signature,
});

export function listCheckpoints(db: Sql): Checkpoint[] {
  try {
    return (db.prepare('SELECT * FROM audit_checkpoints ORDER BY id ASC').all() as unknown as CpRow[]).map(
      toCheckpoint,
    );
  } catch {
    return [];
  }
}

export function latestCheckpoint(db: Sql, minSize = 0): Checkpoint | undefined {
  const r = db.prepare('SELECT * FROM audit_checkpoints WHERE size >= ? ORDER BY id DESC LIMIT 1').get(minSize) as
    CpRow | undefined;
  return r ? toCheckpoint(r) : undefined;
}

export interface CheckpointOptions {
  /** Directory holding audit-ed25519.pem; default <AIRLOCK_HOME>/keys. */
  keyDir?: string;
  /** Sign even when no event was added since the last checkpoint (default false: return the last one). */
  force?: boolean;
}

/**
 * Signs a checkpoint over every event now in the log and records it (table + an
 * `audit.checkpoint` event). Returns the new checkpoint, or the latest one when nothing
 * was appended since (besides its own checkpoint event). Call at session end.
 */
export function checkpoint(store: AuditStore, reason: string, opts: CheckpointOptions = {}): Checkpoint {
  const key = loadSigningKey(opts.keyDir ?? keyDir());
  const db = store.tables;
  const log = logId(store);
  let made: Checkpoint | undefined;
  // the signed row and its audit.checkpoint event: one transaction, one commit (issue 16)
  store.appendWithin(() => {
    const last = db.prepare('SELECT * FROM audit_checkpoints ORDER BY id DESC LIMIT 1').get() as CpRow | undefined;
    const head = db.prepare('SELECT seq, type FROM events ORDER BY seq DESC LIMIT 1').get() as
      { seq: number; type: string } | undefined;
    const headSeq = head?.seq ?? 0;
    const nothingNew =
      last && (headSeq === last.size || (headSeq === last.size + 1 && head?.type === 'audit.checkpoint'));
    if (nothingNew && !opts.force) {
      made = toCheckpoint(last);
      return [];
    }
    made = signNewCheckpoint(db, { last, key, log, reason });
    return [
      {
        type: 'audit.checkpoint',
        severity: 'info',
        rule: 'telemetry.checkpoint',
        data: {
          checkpointId: made.id,
          logId: made.logId,
          size: made.size,
          root: made.root,
          time: made.ts,
          reason,
          keyId: made.keyId,
          signature: made.signature,
        },
      },
    ];
  });
  return made!;
}

/** Extends the last checkpoint's tree (when provably ours) over the events since, signs it and stores the row. */
function signNewCheckpoint(
  db: AuditStore['tables'],
  c: { last: CpRow | undefined; key: SigningKey; log: string; reason: string },
): Checkpoint {
  const { last, key, log, reason } = c;
  let frontier = new MerkleFrontier();
  // Build on the last checkpoint only when it is provably ours: signed by this key over
  // this root, and its stored frontier hashes to that root. A checkpoint signed by an
  // earlier key cannot be checked here, so the tree is rebuilt from the events instead.
  if (last && last.key_id === key.keyId) {
    if (last.log_id !== log || !verifyCheckpointSignature(toCheckpoint(last), key.publicKey)) {
      const why =
        last.log_id !== log
          ? `belongs to log ${last.log_id}, not to this log`
          : "its signature does not verify with this host's key";
      throw new AirlockError(
        'TAMPERED',
        `checkpoint #${last.id}: ${why}`,
        'run `airlock audit verify` to find the tampered record',
      );
    }
    frontier = MerkleFrontier.from(last.size, JSON.parse(last.frontier) as string[]);
    if (frontier.root().toString('hex') !== last.root) {
      throw new AirlockError(
        'TAMPERED',
        `checkpoint #${last.id}: stored frontier does not match its signed root`,
        'run `airlock audit verify` to find the tampered record',
      );
    }
  }
  const stmt = db.prepare('SELECT seq, hash FROM events WHERE seq > ? ORDER BY seq ASC LIMIT 20000');
  stmt.setReturnArrays(true);
  let after = frontier.size;
  for (;;) {
    const rows = stmt.all(after) as unknown as [number, string][];
    if (rows.length === 0) break;
    for (const [seq, h] of rows) {
      if (seq !== frontier.size + 1)
        throw new AirlockError(
          'TAMPERED',
          `event ${frontier.size + 1} is missing from the log`,
          'run `airlock audit verify`',
        );
      frontier.pushLeafHash(eventLeafHash(h));
    }
    after = rows[rows.length - 1]![0];
  }
  const ts = new Date().toISOString();
  const root = frontier.root().toString('hex');
  const signature = sign(
    null,
    Buffer.from(checkpointText({ logId: log, size: frontier.size, root, ts })),
    key.privateKey,
  ).toString('base64');
  const res = db
    .prepare(
      'INSERT INTO audit_checkpoints (size, root, ts, reason, log_id, key_id, signature, frontier) VALUES (?,?,?,?,?,?,?,?)',
    )
    .run(frontier.size, root, ts, reason, log, key.keyId, signature, JSON.stringify(frontier.toHex()));
  return {
    id: Number(res.lastInsertRowid),
    logId: log,
    size: frontier.size,
    root,
    ts,
    reason,
    keyId: key.keyId,
    signature,
  };
}

export interface CheckpointSchedule {
  everyEvents: number;
  everySeconds: number;
  keyDir?: string;
}

/**
 * Checkpoints every `everyEvents` appended events and every `everySeconds` when the log
 * grew (also by other processes). Failures are recorded as `audit.checkpoint_failed`.
 */
export function startCheckpointer(store: AuditStore, sched: CheckpointSchedule): { stop(): void } {
  let pending = 0;
  let busy = false;
  let scheduled = false;
  const run = (reason: string) => {
    if (busy) return;
    busy = true;
    try {
      checkpoint(store, reason, { keyDir: sched.keyDir });
      pending = 0;
    } catch (e) {
      try {
        store.append({
          type: 'audit.checkpoint_failed',
          severity: 'high',
          rule: 'telemetry.checkpoint',
          data: { error: e instanceof Error ? e.message : String(e) },
        });
      } catch {
        /* store unavailable: nothing more to do here */
      }
    } finally {
      busy = false;
    }
  };
  const off = store.onAppend((e) => {
    if (e.type.startsWith('audit.checkpoint')) return;
    pending += 1;
    if (pending >= sched.everyEvents && !scheduled) {
      scheduled = true;
      setImmediate(() => {
        scheduled = false;
        run('every-n-events');
      });
    }
  });
  const timer = setInterval(
    () => {
      if (store.tables.prepare('SELECT 1 FROM events LIMIT 1').get()) run('interval');
    },
    Math.max(1, sched.everySeconds) * 1000,
  );
  timer.unref();
  return {
    stop() {
      off();
      clearInterval(timer);
    },
  };
}
