import { rmSync, statfsSync, writeFileSync } from 'node:fs';
import { cannotRecord } from '../common/index.ts';

// Airlock records everything an agent does on the file system that holds AIRLOCK_HOME (the
// audit store, the raw process trace). When that file system fills, strace's writes and
// SQLite's commits fail, and an agent would go on unrecorded. So a session keeps a reserve
// free: below it, the session is frozen and ended while the reason can still be recorded.

/** Free bytes kept for recording: 2% of the file system, at least 256 KiB, at most 16 MiB. */
export function recordingReserve(totalBytes: number): number {
  return Math.max(256 * 1024, Math.min(16 * 1024 * 1024, Math.floor(totalBytes * 0.02)));
}

/** Why `dir`'s file system has too little room to record, or null when it has enough (or cannot be asked). */
export function lackOfRoom(dir: string): string | null {
  let st;
  try {
    st = statfsSync(dir);
  } catch {
    return null;
  }
  const free = st.bavail * st.bsize;
  const reserve = recordingReserve(st.blocks * st.bsize);
  if (free >= reserve) return null;
  return `the file system of ${dir} has ${Math.floor(free / 1024)} KiB free, below the ${Math.floor(reserve / 1024)} KiB Airlock keeps to record a session`;
}

/** Refuses to start a session Airlock could not record (exit 74, CANNOT_RECORD). */
export function assertRoomToRecord(dir: string): void {
  const lack = lackOfRoom(dir);
  if (lack) throw cannotRecord(new Error(lack), 'the disk is full');
}

/** Calls onLow once when the file system of `dir` has less than the reserve free; returns a stop function. */
export function watchRecordingSpace(dir: string, onLow: (detail: string) => void, everyMs = 200): () => void {
  const check = () => {
    const lack = lackOfRoom(dir);
    if (!lack) return;
    clearInterval(timer);
    onLow(lack);
  };
  const timer = setInterval(check, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** Bytes of ballast a running session holds in AIRLOCK_HOME, released to record why it must stop. */
export const BALLAST_BYTES = 2 * 1024 * 1024;

/**
 * Writes the ballast file (real blocks, not sparse). When the store refuses to commit (disk
 * full), deleting it gives SQLite room to record the reason and the events it refused.
 */
export function holdBallast(path: string): () => void {
  try {
    writeFileSync(path, Buffer.alloc(BALLAST_BYTES), { mode: 0o600 });
  } catch {
    rmSync(path, { force: true });
  }
  return () => rmSync(path, { force: true });
}
