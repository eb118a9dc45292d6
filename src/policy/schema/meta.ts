import type { z } from 'zod';

// How a repo policy combines with the org policy for one field. The org policy is the
// ceiling: a repo policy may only tighten. Kept on the schema itself (zod .meta) so the
// schema stays the one source of truth for shape, defaults, docs and merging.
export type MergeRule =
  | 'min' // numbers: the smaller wins (limits)
  | 'max' // numbers: the larger wins (e.g. required approvals)
  | 'union' // lists of denials/requirements: both apply
  | 'intersect' // lists of grants: only what both grant (org list absent = repo list)
  | 'and' // booleans that grant something: both must say true
  | 'or' // booleans that restrict something: either may say true
  | 'org' // only the org policy may set it (without an org policy, the repo's value applies)
  | 'orgOnly' // only the org policy may set it, ever: a repo's or a grant's value never applies
  | { stricter: readonly string[] }; // enums ordered strictest first

export function merge<T extends z.ZodType>(schema: T, rule: MergeRule): T {
  return schema.meta({ merge: rule }) as T;
}
