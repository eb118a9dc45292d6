import { readFileSync } from 'node:fs';

/**
 * The state letter of /proc/PID/stat (R, S, D, T, Z, X…), or null when there is no such
 * process or its stat cannot be read. The name in parentheses may hold anything, so the state
 * is read after its last ')'.
 */
export function processState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.charAt(stat.lastIndexOf(')') + 2) || null;
  } catch {
    return null;
  }
}

/** The process exists and runs: a killed or ended one stays a zombie until its parent (or init) reaps it. */
export function processRuns(pid: number): boolean {
  const state = processState(pid);
  return state !== null && state !== 'Z' && state !== 'X' && state !== 'x';
}
