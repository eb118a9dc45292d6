import { isMap, isSeq, parseDocument, type Document } from 'yaml';
import { AirlockError } from '../common/index.ts';
import type { AuditStore } from '../audit/index.ts';
import { answerAsk, getAsk, isDestinationAsk, type CommandAsk } from '../command-rules/index.ts';
import { openHostRepo, readAtCommit, resolveCommit } from '../workspace/index.ts';
import { proposeAuthoredChange } from './authored.ts';
import { orgPolicyFile } from './proposal.ts';
import type { Proposal } from './store.ts';

// A destination a session asked for (egress.ask), turned by a human into a proposed change
// to the repository's airlock.yaml: egress.allow gains exactly that host and port. It is a
// real proposal (checks, the policy-replay check, approvals bound to it), never a grant:
// the waiting connection is answered deny, or allowed once if the human also said so, and
// later sessions get the destination only once the change is approved and merged.

const POLICY_FILE = 'airlock.yaml';

export interface ProposeAskOptions {
  /** the pseudo-session the proposal is recorded under (a new session id) */
  session: string;
  /** let the waiting connection through once (default: deny it) */
  once?: boolean;
  reason?: string;
  home?: string;
  env?: NodeJS.ProcessEnv;
}

export interface AskProposal {
  ask: CommandAsk;
  proposal: Proposal;
  host: string;
  port: number;
}

/** host:port as the gateway wrote it for the ask; anything else is refused (the row is only data). */
function destinationOf(ask: CommandAsk): { host: string; port: number } {
  const m = /^([a-z0-9_](?:[a-z0-9_.-]{0,252})):([1-9][0-9]{0,4})$/.exec(isDestinationAsk(ask) ? ask.command[1]! : '');
  if (!m || Number(m[2]) > 65535)
    throw new AirlockError(
      'USAGE',
      `approval #${ask.id} is not a destination by host name`,
      'only an egress.ask on a host name can become an egress.allow rule; answer it with allow or deny',
    );
  return { host: m[1]!, port: Number(m[2]) };
}

function repoOf(store: AuditStore, ask: CommandAsk): string {
  const start = store.query({ session: ask.session, type: 'session.start' })[0];
  if (typeof start?.data.repo !== 'string')
    throw new AirlockError(
      'NOT_FOUND',
      `session ${ask.session} of approval #${ask.id} names no repository`,
      'change airlock.yaml by hand and propose it through review',
    );
  return start.data.repo;
}

/** The narrowest rule: this host exactly, this port only; its id says where it came from. */
function addAllowRule(doc: Document, host: string, port: number, why: string): string {
  const existing = doc.getIn(['egress', 'allow']);
  const ids = new Set(isSeq(existing) ? existing.items.map((r) => (isMap(r) ? String(r.get('id') ?? '') : '')) : []);
  const base = `asked-${host.replace(/[^a-z0-9_-]+/g, '-')}-${port}`;
  let id = base;
  for (let n = 2; ids.has(id) && n < 1000; n++) id = `${base}-${n}`;
  const rule = { id, host, ports: [port], reason: why };
  if (isSeq(existing)) existing.add(doc.createNode(rule));
  else doc.setIn(['egress', 'allow'], [rule]);
  return id;
}

function proposedPolicy(current: string | null, host: string, port: number, why: string): { text: string; id: string } {
  const doc = parseDocument(current ?? 'version: 1\n');
  if (doc.errors.length)
    throw new AirlockError(
      'POLICY_INVALID',
      `${POLICY_FILE}: ${doc.errors[0]!.message}`,
      `fix ${POLICY_FILE} first; the proposal edits it`,
    );
  const id = addAllowRule(doc, host, port, why);
  return { text: doc.toString(), id };
}

/**
 * Answers a waiting destination ask (deny, or allow once) and proposes airlock.yaml with
 * that destination in egress.allow. The file is built before the answer, so a broken
 * airlock.yaml leaves the ask waiting; the proposal is made after it, so the agent is not
 * held while the checks run.
 */
export async function proposeAskedDestination(
  store: AuditStore,
  id: number,
  by: string,
  options: ProposeAskOptions,
): Promise<AskProposal> {
  const ask = getAsk(store, id);
  if (!ask) throw new AirlockError('NOT_FOUND', `no pending approval #${id}`, 'list them with `airlock approvals`');
  const { host, port } = destinationOf(ask);
  const repo = openHostRepo(repoOf(store, ask));
  const base = resolveCommit(repo, 'HEAD');
  const why = `asked at run time by session ${ask.session} (approval #${id}); proposed by ${by}`;
  const change = proposedPolicy(readAtCommit(repo, base, POLICY_FILE), host, port, why);
  const answered = answerAsk(
    store,
    id,
    options.once ? 'allow' : 'deny',
    by,
    options.reason?.trim() || `proposed as a change to ${POLICY_FILE} by ${by}`,
  );
  const proposal = await proposeAuthoredChange(
    store,
    {
      session: options.session,
      repo,
      baseCommit: base,
      baseRef: 'HEAD',
      path: POLICY_FILE,
      content: change.text,
      message: `${POLICY_FILE}: allow ${host}:${port} (egress.allow.${change.id})\n\nAsked at run time by session ${ask.session} (approval #${id}); proposed by ${by}.\n`,
      tool: 'airlock-approvals-propose',
      command: ['airlock', 'approvals', 'propose', String(id)],
      data: { fromAsk: id, askSession: ask.session, proposedBy: by },
    },
    { orgPolicy: orgPolicyFile(undefined, options.env) ?? undefined, home: options.home },
  );
  store.append({
    type: 'egress.ask_proposed',
    session: ask.session,
    severity: 'medium',
    decision: answered.status === 'allow' ? 'allow' : 'deny',
    rule: ask.rule,
    data: {
      askId: id,
      host,
      port,
      by,
      proposal: proposal.id,
      rule: `egress.allow.${change.id}`,
      connection: answered.status === 'allow' ? 'allowed once' : 'denied',
    },
  });
  return { ask: answered, proposal, host, port };
}
