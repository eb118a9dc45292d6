import { git } from '../common/index.ts';
import { checkpoint, loadSigningKey, proveEvent, type AuditStore } from '../audit/index.ts';
import {
  signEnvelope,
  loadProvenanceKey,
  IN_TOTO_PAYLOAD_TYPE,
  NOTES_REF,
  PREDICATE_TYPE,
  STATEMENT_TYPE,
  type DsseEnvelope,
  type ProvenanceStatement,
  type ReviewRequirement,
} from '../provenance/index.ts';
import type { ProposalStatus } from './proposal.ts';
import type { Proposal } from './store.ts';

// Provenance for apply: the statement of what is pushed and how it was approved, signed
// with the organisation's provenance key, proven against a signed audit checkpoint, and
// written as a git note on the pushed commit (pushed with the branch, atomically).

export interface ProvenanceInput {
  store: AuditStore;
  p: Proposal;
  st: ProposalStatus;
  commit: string;
  appliedBy: string;
  keyDir: string;
  env: NodeJS.ProcessEnv;
}

function requirement(store: AuditStore, p: Proposal, st: ProposalStatus): ReviewRequirement {
  const pol = p.policy.review;
  const start = store.query({ session: p.session, type: 'session.start' })[0]?.data as
    { startedByIdentities?: unknown } | undefined;
  const members = (group: string) => pol.approvals.groups[group] ?? [];
  return {
    required: st.required,
    separationOfDuties: pol.approvals.separationOfDuties,
    startedBy: p.startedBy,
    startedByIdentities: Array.isArray(start?.startedByIdentities) ? start.startedByIdentities.map(String) : [],
    group: st.group,
    groupMembers: st.group ? members(st.group) : [],
    blockingFindings: st.blocking.length,
    overrideMembers: pol.overrideRoles.flatMap(members),
  };
}

/** The approval events of this proposal (bound to its hash), in log order. */
function approvalEvents(store: AuditStore, p: Proposal) {
  return store
    .query({ session: p.session, type: 'review.approved' })
    .filter((e) => e.data.hash === p.hash && e.data.proposal === p.id && typeof e.data.by === 'string');
}

export function buildStatement(input: ProvenanceInput): ProvenanceStatement {
  const { store, p: proposal, st } = input;
  const events = approvalEvents(store, proposal);
  const cp = checkpoint(store, 'provenance', { keyDir: input.keyDir }); // covers every approval event above
  const auditPub = loadSigningKey(input.keyDir).publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const tree = git(['rev-parse', `${input.commit}^{tree}`], { env: { GIT_DIR: proposal.resultRepo } }).stdout.trim();
  const start = store.query({ session: proposal.session, type: 'session.start' })[0]?.data as
    { agent?: unknown; agentVersion?: unknown } | undefined;
  return {
    _type: STATEMENT_TYPE,
    subject: [
      { name: 'commit', digest: { gitCommit: input.commit } },
      { name: 'tree', digest: { gitTree: tree } },
    ],
    predicateType: PREDICATE_TYPE,
    predicate: {
      session: proposal.session,
      agent: {
        name: typeof start?.agent === 'string' ? start.agent : null,
        version: typeof start?.agentVersion === 'string' ? start.agentVersion : null,
      },
      proposal: { id: proposal.id, hash: proposal.hash, base: proposal.base, head: proposal.head, tree },
      baseCommit: proposal.base,
      policy: { hash: proposal.policyHash, review: requirement(store, proposal, st) },
      // rule, severity and place only: a message may quote what the check saw
      findings: proposal.findings.map((f) => ({
        rule: f.rule,
        severity: f.severity,
        file: f.file,
        line: f.line,
        blocking: !!f.blocking,
      })),
      approvals: events.map((e) => ({
        by: e.data.by as string,
        time: e.ts,
        proposalHash: proposal.hash,
        override: !!e.data.override,
        eventId: e.id,
      })),
      appliedBy: input.appliedBy,
      audit: {
        checkpoint: cp,
        publicKey: auditPub,
        approvalProofs: events.map((e) => proveEvent(store, e.id, { under: cp })),
      },
    },
  };
}

/** Signs the statement with the organisation's provenance key. */
export function signProvenance(i: ProvenanceInput): { envelope: DsseEnvelope; statement: ProvenanceStatement } {
  const statement = buildStatement(i);
  // proposals made before the provenance block existed carry no such key
  const key = loadProvenanceKey(i.keyDir, i.env, (i.p.policy as { provenance?: { key?: string } }).provenance?.key);
  return { envelope: signEnvelope(Buffer.from(JSON.stringify(statement)), IN_TOTO_PAYLOAD_TYPE, key), statement };
}

const AIRLOCK_IDENT = {
  GIT_AUTHOR_NAME: 'Airlock',
  GIT_AUTHOR_EMAIL: 'airlock@localhost',
  GIT_COMMITTER_NAME: 'Airlock',
  GIT_COMMITTER_EMAIL: 'airlock@localhost',
};

/**
 * Writes the envelope as the note of `commit` on top of `remoteNotes` (the remote's notes
 * commit, already fetched into the result repo, or null), so the push is a fast-forward.
 */
export function writeNote(
  resultRepo: string,
  commit: string,
  envelope: DsseEnvelope,
  remoteNotes: string | null,
): void {
  const env = { GIT_DIR: resultRepo, ...AIRLOCK_IDENT };
  if (remoteNotes) git(['update-ref', NOTES_REF, remoteNotes], { env });
  else git(['update-ref', '-d', NOTES_REF], { env, allowFail: true });
  git(['notes', `--ref=${NOTES_REF}`, 'add', '-f', '-F', '-', commit], { env, input: JSON.stringify(envelope) + '\n' });
}

/** The PR body's provenance section: the envelope is base64 and hex only, nothing agent-written. */
export function provenanceMarkdown(commit: string, envelope: DsseEnvelope): string {
  const json = JSON.stringify(envelope);
  return [
    '',
    '**Provenance:** a signed in-toto statement (DSSE, Ed25519 key `' +
      envelope.signatures[0]!.keyid +
      '`) is the git note',
    `\`${NOTES_REF}\` on ${commit}. Verify it in CI:`,
    '',
    '```sh',
    `git fetch origin ${NOTES_REF}:${NOTES_REF}`,
    `airlock verify-change ${commit} --key provenance.pub.pem`,
    '```',
    ...(json.length <= 48_000
      ? ['', '<details><summary>DSSE envelope</summary>', '', '```json', json, '```', '', '</details>']
      : []),
  ].join('\n');
}
