import { basename, matchesGlob } from 'node:path';
import { type AuditTables, type AuditEvent, type AuditStore, eventPaths, argvOf } from '../audit/index.ts';

// A session's behaviour profile, built from its events: what it contacted, touched,
// changed and ran. Baselines compare a session's profile with the same agent's past ones.

export const MEASURES = [
  'hosts',
  'newHosts',
  'paths',
  'newAreas',
  'filesChanged',
  'linesChanged',
  'commands',
  'newCommands',
  'durationSeconds',
  'denials',
] as const;
export type Measure = (typeof MEASURES)[number];
export const MEASURE_LABEL: Record<Measure, string> = {
  hosts: 'hosts contacted',
  newHosts: 'hosts never contacted before',
  paths: 'paths touched',
  newAreas: 'directories never touched before',
  filesChanged: 'files changed',
  linesChanged: 'lines changed',
  commands: 'commands run',
  newCommands: 'programs never run before',
  durationSeconds: 'duration (s)',
  denials: 'denied operations',
};

const SET_CAP = 2000;

/** Workspace-relative form of a path the sandbox reported (absolute /workspace/... or relative). */
export function relPath(p: string): string {
  return p.replace(/^\/workspace\//, '').replace(/^\.\//, '');
}
/** The "area" of a path: its first two directory levels (".github/workflows", "src/api"). */
export function areaOf(p: string): string {
  const parts = relPath(p).split('/').filter(Boolean);
  return parts.length <= 1 ? '.' : parts.slice(0, Math.min(2, parts.length - 1)).join('/');
}

export function globMatch(p: string, globs: string[]): boolean {
  const rel = relPath(p);
  return globs.some((g) => matchesGlob(p, g) || matchesGlob(rel, g));
}

export function programName(data: Record<string, unknown>): string | undefined {
  const a0 = argvOf(data)[0] ?? (typeof data.name === 'string' ? data.name : undefined);
  return a0 ? basename(a0) : undefined;
}

const PATH_TYPES = (t: string) =>
  t.startsWith('file.') || t.startsWith('sandbox.') || t.startsWith('review.') || t === 'secrets.redacted';

export interface ProfileSets {
  hosts: Set<string>;
  areas: Set<string>;
  programs: Set<string>;
}

/** Incremental profile of one session; `add` returns the measures it changed. */
export class SessionProfile {
  readonly session: string;
  hosts = new Set<string>();
  paths = new Set<string>();
  areas = new Set<string>();
  programs = new Set<string>();
  newHosts = new Map<string, string>(); // host -> first event id
  newAreas = new Map<string, string>();
  newPrograms = new Map<string, string>();
  filesChanged = 0;
  linesChanged = 0;
  commands = 0;
  denials = 0;
  firstTs: number | undefined;
  lastTs: number | undefined;
  started: string | undefined;
  private known: ProfileSets;

  constructor(session: string, known: ProfileSets = { hosts: new Set(), areas: new Set(), programs: new Set() }) {
    this.session = session;
    this.known = known;
  }

  add(event: AuditEvent): Set<Measure> {
    const changed = new Set<Measure>();
    const t = Date.parse(event.ts);
    if (this.firstTs === undefined) {
      this.firstTs = t;
      this.started = event.ts;
    }
    if (this.lastTs === undefined || t > this.lastTs) {
      this.lastTs = t;
      changed.add('durationSeconds');
    }
    const data = event.data ?? {};
    if (event.decision === 'deny') {
      this.denials += 1;
      changed.add('denials');
    }
    if (event.type === 'egress.request' && typeof data.host === 'string') {
      const h = data.host.toLowerCase();
      if (!this.hosts.has(h) && this.hosts.size < SET_CAP) {
        this.hosts.add(h);
        changed.add('hosts');
        if (!this.known.hosts.has(h)) {
          this.newHosts.set(h, event.id);
          changed.add('newHosts');
        }
      }
    }
    if (event.type === 'process.exec') {
      this.commands += 1;
      changed.add('commands');
      const p = programName(data);
      if (p && !this.programs.has(p) && this.programs.size < SET_CAP) {
        this.programs.add(p);
        if (!this.known.programs.has(p)) {
          this.newPrograms.set(p, event.id);
          changed.add('newCommands');
        }
      }
    }
    if (PATH_TYPES(event.type)) {
      for (const p of eventPaths(data)) {
        const rp = relPath(p);
        if (this.paths.has(rp) || this.paths.size >= SET_CAP) continue;
        this.paths.add(rp);
        changed.add('paths');
        const a = areaOf(rp);
        if (!this.areas.has(a)) {
          this.areas.add(a);
          if (!this.known.areas.has(a)) {
            this.newAreas.set(a, event.id);
            changed.add('newAreas');
          }
        }
      }
    }
    if (event.type === 'review.proposal' || event.type === 'review.captured') {
      const files = Array.isArray(data.files) ? (data.files as unknown[]) : [];
      let lines = 0;
      for (const f of files) {
        if (f && typeof f === 'object') {
          const o = f as Record<string, unknown>;
          lines += (Number(o.additions) || 0) + (Number(o.deletions) || 0);
        }
      }
      if (typeof data.additions === 'number' || typeof data.deletions === 'number')
        lines = (Number(data.additions) || 0) + (Number(data.deletions) || 0);
      if (typeof data.linesChanged === 'number') lines = data.linesChanged;
      this.filesChanged = Math.max(
        this.filesChanged,
        typeof data.filesChanged === 'number' ? data.filesChanged : files.length,
      );
      this.linesChanged = Math.max(this.linesChanged, lines);
      changed.add('filesChanged');
      changed.add('linesChanged');
    }
    return changed;
  }

  value(m: Measure): number {
    switch (m) {
      case 'hosts':
        return this.hosts.size;
      case 'newHosts':
        return this.newHosts.size;
      case 'paths':
        return this.paths.size;
      case 'newAreas':
        return this.newAreas.size;
      case 'filesChanged':
        return this.filesChanged;
      case 'linesChanged':
        return this.linesChanged;
      case 'commands':
        return this.commands;
      case 'newCommands':
        return this.newPrograms.size;
      case 'durationSeconds':
        return this.firstTs === undefined ? 0 : Math.round(((this.lastTs ?? this.firstTs) - this.firstTs) / 1000);
      case 'denials':
        return this.denials;
    }
  }

  metrics(): Record<Measure, number> {
    return Object.fromEntries(MEASURES.map((m) => [m, this.value(m)])) as Record<Measure, number>;
  }
}

// Profiles of finished sessions are kept in their own table (src/audit/schema.ts), so baselines do not rescan the log.

export interface StoredProfile {
  session: string;
  agent: string;
  started: string;
  metrics: Record<Measure, number>;
  sets: { hosts: string[]; areas: string[]; programs: string[] };
}

export function saveProfile(store: AuditStore, agent: string, p: SessionProfile): void {
  store.tables
    .prepare('INSERT OR REPLACE INTO detect_profiles (session, agent, started, metrics, sets) VALUES (?,?,?,?,?)')
    .run(
      p.session,
      agent,
      p.started ?? new Date().toISOString(),
      JSON.stringify(p.metrics()),
      JSON.stringify({ hosts: [...p.hosts], areas: [...p.areas], programs: [...p.programs] }),
    );
}

/** Profiles of the agent's past sessions, oldest first; sessions in the log without a profile are profiled now. */
export function pastProfiles(store: AuditStore, agent: string, exclude: string, max: number): StoredProfile[] {
  const db = store.tables;
  const missing = db
    .prepare(
      `SELECT DISTINCT e.session AS s, MIN(e.ts) AS t FROM events e
    WHERE e.type = 'session.start' AND json_extract(e.data, '$.agent') = ? AND e.session IS NOT NULL AND e.session != ?
      AND NOT EXISTS (SELECT 1 FROM detect_profiles p WHERE p.session = e.session) GROUP BY e.session ORDER BY t`,
    )
    .all(agent, exclude) as { s: string }[];
  // Oldest first, each judged against what came before it, so "new" means new at that time.
  for (const { s } of missing.slice(-max * 2)) {
    const known = knownSets(loadProfiles(db, agent, s, max));
    const p = new SessionProfile(s, known);
    for (const e of store.query({ session: s })) p.add(e);
    saveProfile(store, agent, p);
  }
  return loadProfiles(db, agent, exclude, max);
}

function loadProfiles(db: AuditTables, agent: string, exclude: string, max: number): StoredProfile[] {
  const rows = db
    .prepare('SELECT * FROM detect_profiles WHERE agent = ? AND session != ? ORDER BY started DESC LIMIT ?')
    .all(agent, exclude, max) as { session: string; agent: string; started: string; metrics: string; sets: string }[];
  return rows.reverse().map((r) => ({
    session: r.session,
    agent: r.agent,
    started: r.started,
    metrics: JSON.parse(r.metrics),
    sets: JSON.parse(r.sets),
  }));
}

export function knownSets(profiles: StoredProfile[]): ProfileSets {
  const k: ProfileSets = { hosts: new Set(), areas: new Set(), programs: new Set() };
  for (const p of profiles) {
    for (const h of p.sets.hosts) k.hosts.add(h);
    for (const a of p.sets.areas) k.areas.add(a);
    for (const c of p.sets.programs) k.programs.add(c);
  }
  return k;
}

// Robust statistics: median and MAD; modified z-score 0.6745·(x − median)/MAD (Iglewicz &
// Hoaglin). MAD has a floor of max(0.15, 10% of the median) so a history of identical
// sessions does not make any change infinitely anomalous, while a first new host still is.
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
export interface Deviation {
  measure: Measure;
  value: number;
  median: number;
  mad: number;
  z: number;
  min: number;
  max: number;
  n: number;
}
export function deviation(measure: Measure, value: number, past: number[]): Deviation {
  const med = median(past);
  const mad = median(past.map((v) => Math.abs(v - med)));
  const scale = Math.max(mad, 0.15, 0.1 * Math.abs(med));
  return {
    measure,
    value,
    median: med,
    mad,
    z: (0.6745 * (value - med)) / scale,
    min: Math.min(...past),
    max: Math.max(...past),
    n: past.length,
  };
}
