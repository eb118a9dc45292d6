import type { Context } from 'hono';
import { AirlockError } from '../../common/index.ts';
import { summarize, type AuditStore, type AuditEvent } from '../../audit/index.ts';
import { readPolicyFile, resolvePolicy, type LoadedPolicy } from '../../policy/index.ts';
import { orgPolicyFile } from '../../review/index.ts';
import { markup, agentText, severityClass, type Html } from '../html.ts';
import type { ConsoleDeps, ConsoleEnv } from '../server.ts';
import { workView, type WorkView } from '../../hosts/index.ts';
import type { SharedKind } from '../shared-live.ts';

// Small pieces the pages share: form fields, ids from the URL, a session's context and
// timeline rows. Every agent-written string goes through agentText.

export async function formText(c: Context<ConsoleEnv>, name: string): Promise<string> {
  const v = (await c.req.parseBody())[name];
  return typeof v === 'string' ? v.trim() : '';
}

export function idParam(s: string | undefined, what: string): number {
  if (!s || !/^[1-9][0-9]{0,15}$/.test(s))
    throw new AirlockError('USAGE', `${what} must be a positive number`, 'follow a link from the list');
  return Number(s);
}

export function sessionParam(s: string | undefined): string {
  if (!s || !/^[A-Za-z0-9._-]{1,128}$/.test(s))
    throw new AirlockError('USAGE', 'invalid session id', 'follow a link from the Sessions page');
  return s;
}

/** An http(s) link, or nothing: a forge's answer must not become a javascript: URL. */
export function safeHref(u: string | null | undefined): string | null {
  if (!u) return null;
  try {
    const x = new URL(u);
    return x.protocol === 'https:' || x.protocol === 'http:' ? x.toString() : null;
  } catch {
    return null;
  }
}

const CONTEXT_LIMIT = 200;

/** What the agent was, what it was told, and what it did: from the session's audit events. */
export function sessionContext(
  store: AuditStore,
  session: string,
  startedBy: string | null,
  policyHash: string | null,
  policyLink?: string,
): Html {
  const start = store.query({ session, type: 'session.start', limit: 1 })[0]?.data ?? {};
  const execs = store.query({ session, type: 'process.exec', limit: CONTEXT_LIMIT });
  const requests = store.query({ session, type: 'egress.*', limit: CONTEXT_LIMIT });
  const denials = store
    .query({ session, limit: 5000 })
    .filter((e) => e.decision === 'deny')
    .slice(0, CONTEXT_LIMIT);
  const argv = Array.isArray(start.command) ? (start.command as unknown[]).map(String).join(' ') : '';
  return markup`<dl class="context"><dt>agent</dt><dd>${agentText(String(start.agent ?? '—'))}</dd>
<dt>command</dt><dd><code>${agentText(argv || '—')}</code></dd><dt>task</dt><dd>${agentText(String(start.task ?? '—'))}</dd>
<dt>started by</dt><dd>${agentText(startedBy ?? '—')}</dd><dt>policy hash</dt><dd><code>${agentText(policyHash ?? String(start.policyHash ?? '—'))}</code>${policyLink ? markup` <a href="${policyLink}">explain</a>` : ''}</dd></dl>
<details><summary>${execs.length} commands run</summary>${eventTable(execs)}</details>
<details><summary>${requests.length} requests made</summary>${eventTable(requests)}</details>
<details ${denials.length ? 'open' : ''}><summary>${denials.length} denials</summary>${eventTable(denials)}</details>`;
}

export interface EventTableOptions {
  id?: string;
  proofs?: boolean;
  /** another host's events: no link to a session of this host */
  remote?: boolean;
}

/** An event as a row; every string may be another host's or the agent's writing (agentText). */
export function eventRow(e: ShownEvent, o: EventTableOptions = {}): Html {
  const session =
    e.session && !o.remote
      ? markup`<a href="/sessions/${encodeURIComponent(e.session)}">${agentText(e.session)}</a> `
      : '';
  return markup`<tr data-seq="${e.seq}" class="${severityClass(e.severity)}"><td>${e.seq}</td><td>${agentText(e.ts)}</td><td>${agentText(e.type)}</td><td>${agentText(e.severity)}</td>
<td>${agentText(e.decision ?? '')}</td><td><code>${agentText(e.rule ?? '')}</code></td><td class="what">${session}${summarize(e, 300, agentText)}</td>
${o.proofs ? markup`<td><a class="proof" href="/audit/events/${encodeURIComponent(e.id)}/proof" download>proof</a></td>` : ''}</tr>`;
}

/** What a timeline shows of an event, of this host or another (no hash-chain fields). */
export type ShownEvent = Omit<AuditEvent, 'prevHash' | 'hash'>;

export function eventTable(events: ShownEvent[], o: EventTableOptions = {}): Html {
  return markup`<table class="list events"${o.id ? markup` id="${o.id}"` : ''}><thead><tr><th>seq</th><th>time</th><th>type</th><th>severity</th><th>decision</th><th>rule</th><th>what</th>${o.proofs ? markup`<th></th>` : ''}</tr></thead>
<tbody>${events.map((e) => eventRow(e, o))}</tbody></table>`;
}

/** The organisation's policy (AIRLOCK_ORG_POLICY or /etc/airlock/policy.yaml) over the built-in defaults. */
export function orgPolicy(env: NodeJS.ProcessEnv): LoadedPolicy {
  const file = orgPolicyFile(undefined, env);
  return resolvePolicy(file ? [readPolicyFile(file, 'org')] : []);
}

/**
 * Every host's work, the shared store found the way sessions find it (the console's environment
 * and org policy). When the store cannot be reached the view gives this host's rows alone, and
 * why goes into `notes` (the page says so: sharedNotice).
 */
export function hostsView(deps: Pick<ConsoleDeps, 'store' | 'env'>, notes?: string[]): WorkView {
  return workView(deps.store, { env: deps.env, onUnavailable: (message) => notes?.push(message) });
}

/** A page's warning that other hosts' rows are missing: the store was unreachable while it was read, or the live updates are down. */
export function sharedNotice(deps: Pick<ConsoleDeps, 'shared'>, notes: string[]): Html {
  const why = notes[0] ?? deps.shared.trouble();
  if (!why) return markup``;
  return markup`<p class="error" id="shared-unavailable">The shared store cannot be reached: this page shows this host's rows only. (${agentText(why)})</p>`;
}

/** The live-reload attributes of a page over this host's events of `type` and other hosts' changes of `kind` (read before the page read the store). */
export function reloadOn(deps: Pick<ConsoleDeps, 'store' | 'shared'>, type: string, kind: SharedKind): Html {
  return markup`data-reload-on="${type}" data-after="${deps.store.headSeq()}" data-shared="${kind}" data-shared-after="${deps.shared.version(kind)}"`;
}
