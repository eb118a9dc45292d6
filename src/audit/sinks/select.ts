import { AirlockError } from '../../common/index.ts';
import { type LoadedPolicy, sinkSchema, type SinkConfig } from '../../policy/index.ts';
import { canonicalJson } from '../../common/index.ts';

// Which sinks a session delivers to. A sink is a host-side destination for the whole audit
// stream (every command, request, path and finding), so choosing one is the org's call: the
// merged policy's `telemetry.sinks` is a union, and a repo policy is written by anyone who
// can commit airlock.yaml, the agent included (a proposal a reviewer waved through). Sinks
// from repo policies and per-run grants run only when the org policy itself sets
// `telemetry.allowRepoSinks: true`, read from the org source rather than the merged policy
// (the 'org' merge rule still takes a repo's value when the org file leaves a field unset).
// Even then a repo may not add a `file` sink (it appends to and renames host files), nor a
// sink under a name already taken: two sinks under one name share one cursor, so one
// receiver's acknowledgements would skip events for the other.

export interface RefusedSink {
  name: string;
  type: string;
  origin: string;
  reason: string;
}
export interface SessionSinkPlan {
  run: SinkConfig[];
  refused: RefusedSink[];
}

function telemetryOf(raw: Record<string, unknown>): Record<string, unknown> | undefined {
  const t = raw.telemetry;
  return t !== null && typeof t === 'object' && !Array.isArray(t) ? (t as Record<string, unknown>) : undefined;
}

function describe(entry: unknown): { name: string; type: string } {
  const e = (entry !== null && typeof entry === 'object' ? entry : {}) as { name?: unknown; type?: unknown };
  return { name: typeof e.name === 'string' ? e.name : '?', type: typeof e.type === 'string' ? e.type : '?' };
}

/** The sinks a session may run, and the ones refused with the reason (for an audit event). */
export function planSessionSinks(loaded: Pick<LoadedPolicy, 'sources'>): SessionSinkPlan {
  const run: SinkConfig[] = [];
  const refused: RefusedSink[] = [];
  // Like the merge: among org sources, the last one that sets a field decides it.
  let orgSinks: { origin: string; list: unknown } | undefined;
  let allowRepo = false;
  for (const s of loaded.sources) {
    if (s.kind !== 'org') continue;
    const t = telemetryOf(s.raw);
    if (t?.sinks !== undefined) orgSinks = { origin: s.origin, list: t.sinks };
    if (t?.allowRepoSinks !== undefined) allowRepo = t.allowRepoSinks === true;
  }
  const names = new Set<string>();
  const keys = new Set<string>();
  if (orgSinks) {
    const parsed = sinkSchema.array().safeParse(orgSinks.list);
    if (!parsed.success) {
      throw new AirlockError(
        'POLICY_INVALID',
        `${orgSinks.origin}: telemetry.sinks is not a valid list of sinks`,
        'run `airlock policy check` on the org policy and fix telemetry.sinks',
      );
    }
    for (const c of parsed.data) {
      if (names.has(c.name))
        throw new AirlockError(
          'POLICY_INVALID',
          `${orgSinks.origin}: two sinks are named ${c.name}`,
          'give every sink its own name (each keeps its own delivery cursor)',
        );
      names.add(c.name);
      keys.add(canonicalJson(c));
      run.push(c);
    }
  }
  for (const s of loaded.sources) {
    if (s.kind === 'org') continue;
    const list = telemetryOf(s.raw)?.sinks;
    if (!Array.isArray(list)) continue;
    for (const entry of list) {
      const parsed = sinkSchema.safeParse(entry);
      const { name, type } = parsed.success ? parsed.data : describe(entry);
      const refuse = (reason: string) => refused.push({ name, type, origin: s.origin, reason });
      if (!parsed.success) {
        refuse('not a valid sink');
        continue;
      }
      const c = parsed.data;
      if (keys.has(canonicalJson(c))) continue; // the same sink the org already runs
      if (!allowRepo) {
        refuse('sinks from a repo policy or grant run only when the org policy sets telemetry.allowRepoSinks: true');
        continue;
      }
      if (c.type === 'file') {
        refuse('a file sink writes and renames host files; only the org policy may configure one');
        continue;
      }
      if (names.has(c.name)) {
        refuse(`the name ${c.name} is already used by another sink (one name, one cursor)`);
        continue;
      }
      names.add(c.name);
      keys.add(canonicalJson(c));
      run.push(c);
    }
  }
  return { run, refused };
}

/** The sinks a session may deliver to: `startDelivery(store, sessionSinks(loadedPolicy))`. */
export function sessionSinks(loaded: Pick<LoadedPolicy, 'sources'>): SinkConfig[] {
  return planSessionSinks(loaded).run;
}
