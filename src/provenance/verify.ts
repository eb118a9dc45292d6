import { createPublicKey, type KeyObject } from 'node:crypto';
import { AirlockError } from '../common/index.ts';
import { git } from '../common/index.ts';
import { keyId, verifyCheckpointSignature, verifyProof, type InclusionProofDoc } from '../audit/index.ts';
import { verifyEnvelope, IN_TOTO_PAYLOAD_TYPE, type DsseEnvelope } from './dsse.ts';
import {
  NOTES_REF,
  PREDICATE_TYPE,
  STATEMENT_TYPE,
  type ProvenancePredicate,
  type ProvenanceStatement,
} from './statement.ts';

// `airlock verify-change`: everything is recomputed from the commit, the envelope and one
// public key; nothing in the note is trusted before its check. Every check runs, so a
// refusal names each thing that does not hold.

export interface ProvenanceCheck {
  check: 'signature' | 'statement' | 'subject' | 'tree' | 'checkpoint' | 'inclusion' | 'approvals';
  ok: boolean;
  message: string;
}
export interface VerifyChangeResult {
  commit: string;
  verified: boolean;
  checks: ProvenanceCheck[];
  statement: ProvenanceStatement | null;
}

const MAX_NOTE_BYTES = 16 * 1024 * 1024;
const SHA1 = /^[0-9a-f]{40}$/;
const norm = (s: string) => s.trim().toLowerCase();

/** Resolves COMMIT in `repo` and reads its provenance note; NOT_FOUND (66) when it has none. */
export function readProvenanceNote(
  repo: string,
  commit: string,
): { sha: string; tree: string; parents: string[]; note: string } {
  if (commit.startsWith('-') || commit.length > 256)
    throw new AirlockError('USAGE', `not a commit: ${JSON.stringify(commit.slice(0, 80))}`, 'pass a commit id or ref');
  const rev = git(['rev-parse', '--verify', '--quiet', '--end-of-options', `${commit}^{commit}`], {
    cwd: repo,
    allowFail: true,
  });
  const sha = rev.stdout.trim();
  if (rev.status !== 0 || !SHA1.test(sha)) {
    throw new AirlockError(
      'NOT_FOUND',
      `no commit ${JSON.stringify(commit.slice(0, 80))} in ${repo}`,
      'fetch it first, or pass --repo PATH',
    );
  }
  const [tree = '', parents = ''] = git(['show', '-s', '--format=%T%n%P', sha], { cwd: repo }).stdout.split('\n');
  const note = git(['notes', `--ref=${NOTES_REF}`, 'show', sha], {
    cwd: repo,
    allowFail: true,
    maxBuffer: MAX_NOTE_BYTES,
  });
  if (note.status !== 0 || !note.stdout.trim()) {
    throw new AirlockError(
      'NOT_FOUND',
      `commit ${sha} has no Airlock provenance (no note under ${NOTES_REF})`,
      `fetch the notes first: git fetch origin ${NOTES_REF}:${NOTES_REF}; a commit Airlock did not apply has none`,
    );
  }
  return { sha, tree, parents: parents.split(' ').filter(Boolean), note: note.stdout };
}

function parseEnvelope(note: string): DsseEnvelope | null {
  try {
    const e = JSON.parse(note) as DsseEnvelope;
    return e && typeof e.payload === 'string' && typeof e.payloadType === 'string' ? e : null;
  } catch {
    return null;
  }
}

function parseStatement(env: DsseEnvelope): ProvenanceStatement | null {
  try {
    const s = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as ProvenanceStatement;
    const p = s?.predicate;
    if (
      s?._type !== STATEMENT_TYPE ||
      s.predicateType !== PREDICATE_TYPE ||
      !Array.isArray(s.subject) ||
      !p?.proposal ||
      !p.policy?.review ||
      !Array.isArray(p.approvals) ||
      !p.audit?.checkpoint ||
      !Array.isArray(p.audit.approvalProofs)
    )
      return null;
    return s;
  } catch {
    return null;
  }
}

/** Verifies the provenance of one commit of `repo` with the organisation's public key alone. */
export function verifyChange(repo: string, commit: string, pub: KeyObject): VerifyChangeResult {
  const note = readProvenanceNote(repo, commit);
  const env = parseEnvelope(note.note);
  if (!env)
    return {
      commit: note.sha,
      verified: false,
      statement: null,
      checks: [{ check: 'statement', ok: false, message: 'the provenance note is not a DSSE envelope' }],
    };
  const checks: ProvenanceCheck[] = [{ check: 'signature', ok: false, message: '' }];
  const sig = verifyEnvelope(env, pub);
  checks[0] = { check: 'signature', ok: sig.ok, message: sig.reason };
  const st = env.payloadType === IN_TOTO_PAYLOAD_TYPE ? parseStatement(env) : null;
  if (!st) {
    checks.push({
      check: 'statement',
      ok: false,
      message: `the envelope does not hold an in-toto ${STATEMENT_TYPE} statement of type ${PREDICATE_TYPE}`,
    });
    return { commit: note.sha, verified: false, statement: null, checks };
  }
  try {
    checks.push(...checkStatement(st, note));
  } catch (e) {
    // unsigned content is read before the signature is known to hold: a malformed field is a refusal, never a crash
    checks.push({
      check: 'statement',
      ok: false,
      message: `the statement is malformed (${e instanceof Error ? e.message.slice(0, 200) : 'unreadable'})`,
    });
  }
  return { commit: note.sha, verified: checks.every((x) => x.ok), checks, statement: st };
}

/** The checks on a statement's content against the commit (everything but the envelope signature). */
export function checkStatement(
  st: ProvenanceStatement,
  commitInfo: { sha: string; tree: string; parents: string[] },
): ProvenanceCheck[] {
  const predicate = st.predicate;
  const digest = (k: 'gitCommit' | 'gitTree') =>
    st.subject.map((s) => s?.digest?.[k]).filter((x): x is string => typeof x === 'string');
  const out: ProvenanceCheck[] = [];
  const commits = digest('gitCommit');
  out.push(
    commits.includes(commitInfo.sha)
      ? { check: 'subject', ok: true, message: `the statement's subject is commit ${commitInfo.sha}` }
      : {
          check: 'subject',
          ok: false,
          message: `commit ${commitInfo.sha} is not the commit the statement covers (${commits.join(', ') || 'none'}): it was amended or replaced`,
        },
  );
  const trees = digest('gitTree');
  const treeOk = trees.includes(commitInfo.tree) && predicate.proposal.tree === commitInfo.tree;
  out.push(
    treeOk && commitInfo.parents[0] === predicate.proposal.base
      ? {
          check: 'tree',
          ok: true,
          message: `the commit's tree ${commitInfo.tree} is the approved tree, on base ${predicate.proposal.base}`,
        }
      : {
          check: 'tree',
          ok: false,
          message: treeOk
            ? `the commit's parent ${commitInfo.parents[0] ?? '(none)'} is not the approved base ${predicate.proposal.base}`
            : `the commit's tree ${commitInfo.tree} differs from the approved tree ${predicate.proposal.tree}`,
        },
  );
  out.push(...checkAudit(predicate));
  return out;
}

function auditKey(pem: unknown): KeyObject | null {
  try {
    return typeof pem === 'string' ? createPublicKey(pem) : null;
  } catch {
    return null;
  }
}

/** Checkpoint signature, each approval's inclusion proof, and the approvals against the recorded policy. */
function checkAudit(predicate: ProvenancePredicate): ProvenanceCheck[] {
  const cp = predicate.audit.checkpoint;
  const key = auditKey(predicate.audit.publicKey);
  const cpOk = !!key && keyId(key) === cp.keyId && verifyCheckpointSignature(cp, key);
  const out: ProvenanceCheck[] = [
    cpOk
      ? {
          check: 'checkpoint',
          ok: true,
          message: `audit checkpoint #${cp.id} of log ${cp.logId} (${cp.size} events, root ${cp.root}) is signed by audit key ${cp.keyId}`,
        }
      : {
          check: 'checkpoint',
          ok: false,
          message: `audit checkpoint #${cp.id} of log ${cp.logId}: its signature does not verify with the audit key in the statement`,
        },
  ];
  const proven = new Map<string, InclusionProofDoc>();
  const bad: string[] = [];
  for (const [i, doc] of predicate.audit.approvalProofs.entries()) {
    const why = key ? proofProblem(doc, predicate, key) : 'no usable audit key';
    if (why) bad.push(`proof ${i + 1}: ${why}`);
    else proven.set(doc.event.id, doc);
  }
  const listed = new Set(predicate.approvals.map((a) => a.eventId));
  for (const a of predicate.approvals) {
    const e = proven.get(a.eventId)?.event;
    const d = (e?.data ?? {}) as { by?: unknown; override?: unknown };
    if (!e) bad.push(`approval by ${a.by} has no valid inclusion proof`);
    else if (
      d.by !== a.by ||
      e.ts !== a.time ||
      a.proposalHash !== predicate.proposal.hash ||
      !!d.override !== a.override
    )
      bad.push(`approval by ${a.by} does not match its recorded event ${e.id}`);
  }
  for (const [id, doc] of proven)
    if (!listed.has(id))
      bad.push(
        `approval by ${String((doc.event.data as { by?: unknown }).by)} (event ${id}) is proven in the log but missing from the statement's approvals`,
      );
  out.push(
    bad.length
      ? { check: 'inclusion', ok: false, message: bad.join('; ') }
      : { check: 'inclusion', ok: true, message: `${proven.size} approval event(s) are included in the signed log` },
  );
  out.push(
    policyCheck(
      predicate,
      [...proven.values()].filter((d) => listed.has(d.event.id)),
    ),
  );
  return out;
}

function proofProblem(doc: InclusionProofDoc, p: ProvenancePredicate, key: KeyObject): string | null {
  const cp = p.audit.checkpoint;
  if (!doc || typeof doc !== 'object' || !doc.checkpoint || !doc.event) return 'not an inclusion proof';
  if (doc.checkpoint.logId !== cp.logId) return `proof for another log (${doc.checkpoint.logId}, not ${cp.logId})`;
  if (doc.checkpoint.root !== cp.root || doc.checkpoint.size !== cp.size)
    return `proof under another checkpoint (size ${doc.checkpoint.size}, not ${cp.size})`;
  const r = verifyProof(doc, key);
  if (!r.ok) return `inclusion proof does not hold: ${r.reason}`;
  const d = doc.event.data as { proposal?: unknown; hash?: unknown };
  if (doc.event.type !== 'review.approved') return `event ${doc.event.id} is a ${doc.event.type}, not an approval`;
  if (doc.event.session !== p.session || d.hash !== p.proposal.hash || d.proposal !== p.proposal.id)
    return `event ${doc.event.id} approves another proposal`;
  return null;
}

/** Do the proven approvals meet the review policy recorded as in force? */
function policyCheck(p: ProvenancePredicate, proofs: InclusionProofDoc[]): ProvenanceCheck {
  const r = p.policy.review;
  const events = proofs.map((d) => d.event.data as { by?: string; override?: boolean });
  const approvers = [...new Set(events.map((e) => norm(String(e.by ?? ''))).filter(Boolean))];
  const starter = new Set([r.startedBy, ...r.startedByIdentities].filter((x): x is string => !!x).map(norm));
  const missing: string[] = [];
  if (approvers.length < r.required) missing.push(`${approvers.length} of ${r.required} required approvals`);
  if (r.separationOfDuties && r.startedBy !== null && approvers.length && approvers.every((a) => starter.has(a)))
    missing.push(`no approver other than ${r.startedBy}, who started the agent (separation of duties)`);
  const group = new Set(r.groupMembers.map(norm));
  if (r.group && !approvers.some((a) => group.has(a))) missing.push(`no approver from group ${r.group}`);
  const overriders = new Set(r.overrideMembers.map(norm));
  if (r.blockingFindings > 0 && !events.some((e) => e.override && overriders.has(norm(String(e.by ?? '')))))
    missing.push(`${r.blockingFindings} blocking finding(s) without an override by an override role`);
  return missing.length
    ? {
        check: 'approvals',
        ok: false,
        message: `the approvals do not meet the review policy in force: ${missing.join('; ')}`,
      }
    : {
        check: 'approvals',
        ok: true,
        message: `${approvers.length} approval(s) meet the review policy in force (${r.required} required${r.separationOfDuties ? ', separation of duties' : ''}${r.group ? `, group ${r.group}` : ''})`,
      };
}
