import type { AuditStore } from '../audit/index.ts';
import { parsePolicyText, resolvePolicy, type PolicySource } from '../policy/index.ts';
import { recordedDecisions, replayDecisions, replaySentences, sinceTime } from '../policy-replay/index.ts';
import type { ChangeSet, Finding } from './types.ts';

// A proposal that changes airlock.yaml shows what the new policy would have decided over the
// recorded history: every egress request and command of the last 30 days decided again
// (policy-replay, the live decision functions), reported as one finding a reviewer reads
// ("this change would have allowed 12 requests to gist.github.com in the last 30 days").

export const POLICY_REPLAY_PERIOD = '30d';
const MAX_SENTENCES = 8;

export function policyReplayFindings(
  store: AuditStore,
  change: ChangeSet,
  org: PolicySource[],
  now = Date.now(),
): Finding[] {
  const file = change.files.find((f) => f.path === 'airlock.yaml' && f.status !== 'deleted');
  if (!file) return [];
  const at = (message: string, severity: Finding['severity'] = 'info'): Finding[] => [
    { check: 'review', rule: 'review.policy-replay', severity, file: 'airlock.yaml', line: 0, message },
  ];
  if (file.newText === null)
    return at('the proposed airlock.yaml cannot be read as text; its effect could not be replayed', 'high');
  let policy;
  try {
    policy = resolvePolicy([
      ...org,
      {
        kind: 'repo',
        origin: 'proposed airlock.yaml',
        raw: parsePolicyText(file.newText, 'proposed airlock.yaml'),
        text: file.newText,
      },
    ]).policy;
  } catch (e) {
    return at(
      `the proposed airlock.yaml is refused (${(e instanceof Error ? e.message : String(e)).split('\n').slice(0, 3).join('; ')}); its effect could not be replayed`,
      'high',
    );
  }
  const period = `in the last ${POLICY_REPLAY_PERIOD.replace(/d$/, ' days')}`;
  const r = replayDecisions(recordedDecisions(store, { since: sinceTime(POLICY_REPLAY_PERIOD, now) }), policy);
  const lines = replaySentences(r, period);
  const head = `replayed ${r.replayed} recorded decisions ${period} under the proposed policy: ${r.newlyAllowed.length} newly allowed, ${r.newlyDenied.length} newly denied`;
  const more =
    lines.length > MAX_SENTENCES
      ? `; and ${lines.length - MAX_SENTENCES} more (airlock policy replay --policy FILE --since ${POLICY_REPLAY_PERIOD})`
      : '';
  return at(
    lines.length ? `${lines.slice(0, MAX_SENTENCES).join('; ')}${more} (${head})` : head,
    r.newlyAllowed.length ? 'medium' : 'info',
  );
}
