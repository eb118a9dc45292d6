import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// Resource limits: a cgroup per session when Airlock may create one (root, or a
// delegated v2 subtree), rlimits otherwise. The mechanism in force is recorded.

export interface Limits {
  memoryMB: number;
  pids: number;
  cpuSeconds: number;
  cpuPercent: number;
  wallSeconds: number;
  diskMB: number;
  fileSizeMB: number;
}

export interface CgroupHandle {
  version: 1 | 2;
  /** cgroup.procs files the sandbox's first process writes its pid to */
  procsFiles: string[];
  dirs: string[];
  freeze(): boolean;
  thaw(): boolean;
  pids(): number[];
  /** Events the kernel counted (OOM kills, pids.max refusals) */
  counters(): { oomKills: number; pidsRefused: number };
  remove(): void;
}

const CGROUP_ROOT = '/sys/fs/cgroup';

function tryWrite(path: string, value: string): boolean {
  try {
    writeFileSync(path, value);
    return true;
  } catch {
    return false;
  }
}

function readNum(path: string, key?: string): number {
  try {
    const t = readFileSync(path, 'utf8');
    if (!key) return Number(t.trim()) || 0;
    const m = new RegExp(`^${key} (\\d+)`, 'm').exec(t);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * Where the starting process sits in each hierarchy (`/proc/self/cgroup`): controller
 * (or '' for the v2 unified hierarchy) → path. The session's cgroup is created below it,
 * so an outer limit (a systemd scope, a container, a CI job) still binds the sandbox.
 */
export function starterCgroups(text = readSafe('/proc/self/cgroup')): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\d+:([^:]*):(\/.*)$/.exec(line.trim());
    if (!m) continue;
    const path = m[2]!
      .split('/')
      .filter((x) => x && x !== '.' && x !== '..')
      .join('/');
    for (const c of m[1]!.split(',')) out.set(c, path);
  }
  return out;
}

function readSafe(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

export function createCgroup(
  session: string,
  l: Limits,
  o: { root?: string; self?: Map<string, string> } = {},
): CgroupHandle | null {
  const root = o.root ?? CGROUP_ROOT;
  const self = o.self ?? starterCgroups();
  // cgroup v2 (unified hierarchy with controllers)
  if (existsSync(join(root, 'cgroup.controllers'))) return createV2(join(root, self.get('') ?? ''), session, l);
  return createV1(root, self, session, l);
}

function createV2(base: string, session: string, l: Limits): CgroupHandle | null {
  const parent = join(base, 'airlock');
  const dir = join(parent, session);
  try {
    mkdirSync(parent, { recursive: true });
    // Fails (EBUSY) when the starter's own cgroup holds processes and is not the root: then
    // no per-session controllers, and the sandbox stays in the starter's cgroup (rlimits).
    tryWrite(join(base, 'cgroup.subtree_control'), '+memory +pids +cpu');
    tryWrite(join(parent, 'cgroup.subtree_control'), '+memory +pids +cpu');
    mkdirSync(dir);
  } catch {
    try {
      rmdirSync(parent);
    } catch {
      /* in use by other sessions */
    }
    return null;
  }
  const ok =
    tryWrite(join(dir, 'memory.max'), String(l.memoryMB * 1024 * 1024)) &&
    tryWrite(join(dir, 'pids.max'), String(l.pids));
  tryWrite(join(dir, 'memory.swap.max'), '0');
  tryWrite(join(dir, 'cpu.max'), `${l.cpuPercent * 1000} 100000`);
  if (!ok) {
    removeDirs([dir]);
    try {
      rmdirSync(parent);
    } catch {
      /* other sessions use it */
    }
    return null;
  }
  return {
    version: 2,
    procsFiles: [join(dir, 'cgroup.procs')],
    dirs: [dir],
    freeze: () => tryWrite(join(dir, 'cgroup.freeze'), '1'),
    thaw: () => tryWrite(join(dir, 'cgroup.freeze'), '0'),
    pids: () => readPids(join(dir, 'cgroup.procs')),
    counters: () => ({
      oomKills: readNum(join(dir, 'memory.events'), 'oom_kill'),
      pidsRefused: readNum(join(dir, 'pids.events'), 'max'),
    }),
    remove: () => removeDirs([dir]),
  };
}

// cgroup v1: one directory per controller, each below the starter's cgroup in that hierarchy
function createV1(root: string, self: Map<string, string>, session: string, l: Limits): CgroupHandle | null {
  const ctrl = (c: string) => join(root, c, self.get(c) ?? '', 'airlock', session);
  if (!['memory', 'pids'].every((c) => existsSync(join(root, c)))) return null;
  const dirs: string[] = [];
  try {
    for (const c of ['memory', 'pids', 'cpu', 'freezer']) {
      if (!existsSync(join(root, c))) continue;
      mkdirSync(ctrl(c), { recursive: true });
      dirs.push(ctrl(c));
    }
  } catch {
    removeDirs(dirs);
    return null;
  }
  const ok =
    tryWrite(join(ctrl('memory'), 'memory.limit_in_bytes'), String(l.memoryMB * 1024 * 1024)) &&
    tryWrite(join(ctrl('pids'), 'pids.max'), String(l.pids));
  tryWrite(join(ctrl('memory'), 'memory.memsw.limit_in_bytes'), String(l.memoryMB * 1024 * 1024));
  if (existsSync(ctrl('cpu'))) {
    tryWrite(join(ctrl('cpu'), 'cpu.cfs_period_us'), '100000');
    tryWrite(join(ctrl('cpu'), 'cpu.cfs_quota_us'), String(l.cpuPercent * 1000));
  }
  if (!ok) {
    removeDirs(dirs);
    return null;
  }
  const freezer = existsSync(ctrl('freezer')) ? ctrl('freezer') : null;
  return {
    version: 1,
    procsFiles: dirs.map((d) => join(d, 'cgroup.procs')),
    dirs,
    freeze: () => (freezer ? tryWrite(join(freezer, 'freezer.state'), 'FROZEN') : false),
    thaw: () => (freezer ? tryWrite(join(freezer, 'freezer.state'), 'THAWED') : false),
    pids: () => readPids(join(ctrl('pids'), 'cgroup.procs')),
    counters: () => ({
      oomKills: readNum(join(ctrl('memory'), 'memory.oom_control'), 'oom_kill'),
      pidsRefused: readNum(join(ctrl('pids'), 'pids.events'), 'max'),
    }),
    remove: () => removeDirs(dirs),
  };
}

function readPids(file: string): number[] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function removeDirs(dirs: string[]): void {
  for (const d of dirs) {
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(d);
        break;
      } catch {
        for (const pid of readPids(join(d, 'cgroup.procs'))) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
    }
  }
}

/**
 * Removes the cgroup directories of a session whose supervisor died (kill -9): thawed,
 * whatever is left in them killed, then removed. Returns the directories that existed.
 */
export function removeSessionCgroups(session: string, o: { root?: string; self?: Map<string, string> } = {}): string[] {
  const root = o.root ?? CGROUP_ROOT;
  const self = o.self ?? starterCgroups();
  // below this process's cgroup (where a session started by the same kind of starter nests) and at the root
  const under = (ctrl: string) => [
    join(root, ctrl, self.get(ctrl === '' ? '' : ctrl) ?? '', 'airlock', session),
    join(root, ctrl, 'airlock', session),
  ];
  const dirs = [...new Set([...under(''), ...['memory', 'pids', 'cpu', 'freezer'].flatMap(under)])].filter((d) =>
    existsSync(join(d, 'cgroup.procs')),
  );
  for (const d of dirs) {
    tryWrite(join(d, 'cgroup.freeze'), '0');
    tryWrite(join(d, 'freezer.state'), 'THAWED');
  }
  removeDirs(dirs);
  return dirs;
}
