import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { AirlockError } from '../common/index.ts';
import { agentProfileSchema, PROFILE_NAME, type AgentProfileSpec, type Policy } from '../policy/index.ts';

// Profiles are data: the built-in file (profiles.yaml, next to this module) plus the
// policy's `agents.profiles`. A policy profile with a built-in's name, or with `extends`,
// is a field-wise override of its base (objects merge, lists and strings replace).

export const BUILTIN_PROFILES_FILE = fileURLToPath(new URL('./profiles.yaml', import.meta.url));

export interface AgentProfile extends AgentProfileSpec {
  name: string;
  /** Where the profile came from: builtin, policy, or policy over builtin. */
  source: string;
}

let builtinCache: Record<string, AgentProfileSpec> | null = null;

export function builtinProfiles(): Record<string, AgentProfileSpec> {
  if (builtinCache) return builtinCache;
  const raw = parseYaml(readFileSync(BUILTIN_PROFILES_FILE, 'utf8')) as unknown;
  const r = z.record(z.string().regex(PROFILE_NAME), agentProfileSchema).safeParse(raw);
  if (!r.success)
    throw new AirlockError('INTERNAL', `built-in agent profiles are invalid: ${r.error.message}`, 'reinstall Airlock');
  builtinCache = r.data;
  return builtinCache;
}

function isPlain(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function overlay(base: Record<string, unknown>, top: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(top)) {
    if (v === undefined) continue;
    out[k] = isPlain(v) && isPlain(out[k]) ? overlay(out[k] as Record<string, unknown>, v) : v;
  }
  return out;
}

/** Every profile visible under a policy, resolved (extends applied), by name. */
export function allProfiles(policy?: Pick<Policy, 'agents'> | null): Record<string, AgentProfile> {
  const builtin = builtinProfiles();
  const user = policy?.agents.profiles ?? {};
  const out: Record<string, AgentProfile> = {};
  const resolving = new Set<string>();
  const resolve = (name: string): AgentProfile => {
    if (out[name]) return out[name]!;
    if (resolving.has(name) || resolving.size > 8) {
      throw new AirlockError(
        'POLICY_INVALID',
        `agents.profiles.${name}: "extends" forms a cycle or is nested too deep`,
        'make each profile extend a built-in (codex, claude, generic) or a profile that does',
      );
    }
    resolving.add(name);
    try {
      const u = user[name];
      let spec: Record<string, unknown>;
      let source: string;
      if (!u) {
        const b = builtin[name];
        if (!b) throw unknownProfile(name, [...new Set([...Object.keys(builtin), ...Object.keys(user)])]);
        spec = { ...b };
        source = 'builtin';
      } else {
        const baseName = u.extends ?? (builtin[name] ? name : undefined);
        let base: Record<string, unknown> = {};
        if (baseName !== undefined) {
          if (baseName === name) {
            const b = builtin[name];
            if (!b) throw unknownProfile(name, Object.keys(builtin));
            base = { ...b };
          } else {
            const { name: _n, source: _s, ...rest } = resolve(baseName);
            base = rest;
          }
        }
        const { extends: _e, ...top } = u;
        spec = overlay(base, top as Record<string, unknown>);
        source = baseName ? `policy over ${baseName === name ? 'builtin' : baseName}` : 'policy';
      }
      delete spec.extends;
      const parsed = agentProfileSchema.parse(spec);
      if (parsed.executable?.package && parsed.executable.path) {
        throw new AirlockError(
          'POLICY_INVALID',
          `agents.profiles.${name}.executable: give either package or path, not both`,
          'remove one of them',
        );
      }
      out[name] = { ...parsed, name, source };
      return out[name]!;
    } finally {
      resolving.delete(name);
    }
  };
  for (const n of [...Object.keys(builtin), ...Object.keys(user)]) resolve(n);
  return out;
}

function unknownProfile(name: string, known: string[]): AirlockError {
  return new AirlockError(
    'USAGE',
    `unknown agent profile: ${name}`,
    `use one of ${[...new Set(known)].sort().join(', ')} (\`airlock agents\` lists them), or add it under agents.profiles in airlock.yaml`,
  );
}

/** One profile by name; refuses names the policy denies. */
export function getProfile(name: string, policy?: Pick<Policy, 'agents'> | null): AgentProfile {
  if (!PROFILE_NAME.test(name))
    throw new AirlockError(
      'USAGE',
      `invalid agent profile name: ${JSON.stringify(name)}`,
      'profile names are lower-case letters, digits, _ and -',
    );
  if (policy?.agents.deny.includes(name)) {
    throw new AirlockError(
      'DENIED',
      `agent profile ${name} is denied by the policy (agents.deny)`,
      'use another profile or ask an admin to change agents.deny',
    );
  }
  const all = allProfiles(policy);
  const p = all[name];
  if (!p) throw unknownProfile(name, Object.keys(all));
  return p;
}
