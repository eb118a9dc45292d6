// Writes docs/policy-reference.md from the policy schema (the one source of truth).
// A test fails when the committed reference is out of date: run this to refresh it.
import { writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { policyJsonSchema } from '../src/policy/index.ts';

type S = {
  type?: string | string[];
  description?: string;
  default?: unknown;
  properties?: Record<string, S>;
  items?: S;
  enum?: unknown[];
  const?: unknown;
  merge?: unknown;
  anyOf?: S[];
  additionalProperties?: S | boolean;
  minimum?: number;
  maximum?: number;
};

const MERGE: Record<string, string> = {
  min: 'smaller wins',
  max: 'larger wins',
  union: 'org ∪ repo',
  intersect: 'repo ∩ org',
  and: 'both must allow',
  or: 'either may restrict',
  org: 'org only',
};

function typeOf(s: S): string {
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(' \\| ');
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.anyOf) return s.anyOf.map(typeOf).join(' \\| ');
  if (s.type === 'array') return `list of ${s.items ? typeOf(s.items) : 'any'}`;
  if (s.type === 'object' && s.additionalProperties && typeof s.additionalProperties === 'object')
    return `map of ${typeOf(s.additionalProperties)}`;
  const t = Array.isArray(s.type) ? s.type.join(' \\| ') : (s.type ?? 'any');
  const range = s.minimum !== undefined || s.maximum !== undefined ? ` (${s.minimum ?? ''}…${s.maximum ?? ''})` : '';
  return t + range;
}

export function renderPolicyReference(): string {
  const root = policyJsonSchema() as S;
  const rows: string[] = [];
  const sections: string[] = [];
  const walk = (s: S, path: string[]) => {
    if (s.type === 'object' && s.properties) {
      if (path.length === 1)
        sections.push(
          `\n## \`${path[0]}\`\n\n${s.description ?? ''}\n\n| key | type | default | org/repo merge | meaning |\n| --- | --- | --- | --- | --- |`,
        );
      for (const [k, v] of Object.entries(s.properties)) walk(v, [...path, k]);
      return;
    }
    const def = s.default === undefined ? '' : `\`${JSON.stringify(s.default)}\``;
    const merge =
      typeof s.merge === 'string'
        ? (MERGE[s.merge] ?? s.merge)
        : s.merge
          ? `stricter of ${JSON.stringify((s.merge as { stricter: string[] }).stricter)}`
          : 'org only';
    const row = `| \`${path.join('.')}\` | ${typeOf(s)} | ${def} | ${merge} | ${(s.description ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ')} |`;
    if (path.length === 1) rows.push(row);
    else sections.push(row);
  };
  walk(root, []);
  return `# Policy reference (airlock.yaml)

Generated from the schema by \`node scripts/gen-policy-docs.ts\`; do not edit by hand.
Editors: \`airlock policy schema > airlock.schema.json\` and point yaml-language-server at it.

A repo policy (the base commit's \`airlock.yaml\`) may only tighten the org policy
(\`/etc/airlock/policy.yaml\` or \`$AIRLOCK_ORG_POLICY\`); the "merge" column says how.
Without any policy file the defaults below apply: the strictest sensible settings.

| key | type | default | org/repo merge | meaning |
| --- | --- | --- | --- | --- |
${rows.join('\n')}
${sections.join('\n')}
`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'policy-reference.md');
  writeFileSync(out, renderPolicyReference());
  console.log(`wrote ${out}`);
}
