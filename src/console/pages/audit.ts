import type { Context, Hono } from 'hono';
import { AirlockError, homeLayout } from '../../common/index.ts';
import { hostname } from 'node:os';
import {
  proveEvent,
  verifyLogAsync,
  loadPublicKey,
  logId,
  summarize,
  type AuditEvent,
  type Severity,
} from '../../audit/index.ts';
import type { HostEvent } from '../../hosts/index.ts';
import { sinkStatus, sessionSinks, type SinkStatus } from '../../audit/sinks/index.ts';
import { markup, layout, agentText, severityClass, type Html, type PageContext } from '../html.ts';
import type { ConsoleDeps, ConsoleEnv } from '../server.ts';
import { eventTable, hostsView, orgPolicy, sessionParam, sharedNotice } from './common.ts';
import { remoteSessionRef } from './remote-session.ts';

// Audit: the event search a SOC analyst expects (session, type, severity and above, rule,
// decision, time), the chain's verify status, an RFC 6962 inclusion proof to download
// for any event, and each SIEM sink's lag and failures. All through the audit module.
// With a shared store, the same search runs over every other host's shipped events (the work
// view's audit query, newest first, one bounded page) with a host filter; /api/audit gives
// every host's matching events in the work view's JSON shape.

const SEVERITIES: Severity[] = ['info', 'low', 'medium', 'high', 'critical'];
/** events searched per page, newest first: a bounded window, said on the page */
const WINDOW = 20_000;
const SHOWN = 500;

export interface AuditFilter {
  session?: string;
  type?: string;
  severity?: Severity;
  rule?: string;
  decision?: string;
  since?: string;
  until?: string;
  before?: number;
  /** a host's log id prefix or hostname (with a shared store) */
  host?: string;
}

function isoOrUndefined(v: string | undefined, what: string): string | undefined {
  if (!v) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t))
    throw new AirlockError(
      'USAGE',
      `${what} is not a time: ${JSON.stringify(v.slice(0, 40))}`,
      'use an ISO time such as 2026-12-01T12:00:00Z',
    );
  return new Date(t).toISOString();
}

export function parseFilter(q: (k: string) => string | undefined): AuditFilter {
  const pick = (k: string) => q(k)?.trim() || undefined;
  const type = pick('type');
  if (type && !/^[a-z_]{1,40}(\.[a-z_]{1,40})*(\.?\*)?$/.test(type))
    throw new AirlockError(
      'USAGE',
      'type must be an event type such as egress.request, or a prefix ending in * (egress.*)',
      'see the types in the table',
    );
  const severity = pick('severity');
  if (severity && !SEVERITIES.includes(severity as Severity))
    throw new AirlockError(
      'USAGE',
      `unknown severity ${JSON.stringify(severity)}`,
      `use one of ${SEVERITIES.join(', ')}`,
    );
  const decision = pick('decision');
  if (decision && !['allow', 'deny', 'ask'].includes(decision))
    throw new AirlockError('USAGE', 'decision must be allow, deny or ask', 'pick one from the list');
  const host = pick('host');
  if (host && !/^[A-Za-z0-9._-]{1,253}$/.test(host))
    throw new AirlockError('USAGE', 'host must be a host name or the start of its log id', 'use a host from the table');
  const before = pick('before');
  if (before && !/^[1-9][0-9]{0,15}$/.test(before))
    throw new AirlockError('USAGE', 'before must be an event sequence number', 'use the "older" link');
  return {
    session: pick('session') ? sessionParam(pick('session')) : undefined,
    type,
    severity: severity as Severity | undefined,
    rule: pick('rule')?.slice(0, 200),
    decision,
    since: isoOrUndefined(pick('since'), 'since'),
    until: isoOrUndefined(pick('until'), 'until'),
    before: before ? Number(before) : undefined,
    host,
  };
}

function matches(f: AuditFilter, e: AuditEvent): boolean {
  if (f.severity && SEVERITIES.indexOf(e.severity) < SEVERITIES.indexOf(f.severity)) return false;
  if (f.rule && !(e.rule ?? '').startsWith(f.rule)) return false;
  if (f.decision && e.decision !== f.decision) return false;
  if (f.since && e.ts < f.since) return false;
  if (f.until && e.ts > f.until) return false;
  return true;
}

/** The newest matching events in the window that ends before `f.before` (or at the head). */
export function searchEvents(deps: ConsoleDeps, f: AuditFilter): { events: AuditEvent[]; from: number; to: number } {
  const to = Math.min(f.before ? f.before - 1 : Infinity, deps.store.headSeq());
  const from = Math.max(0, to - WINDOW);
  const hits = deps.store
    .query({ session: f.session, type: f.type, afterSeq: from, limit: to - from })
    .filter((e) => e.seq <= to && matches(f, e));
  return { events: hits.slice(-SHOWN).reverse(), from, to };
}

function filterForm(f: AuditFilter): Html {
  const input = (name: string, value: string | undefined, hint: string) =>
    markup`<label>${name} <input name="${name}" value="${value ?? ''}" placeholder="${hint}"></label> `;
  const select = (name: string, options: string[], value: string | undefined) =>
    markup`<label>${name} <select name="${name}"><option value="">any</option>${options.map((o) => markup`<option${o === value ? markup` selected` : ''}>${o}</option>`)}</select></label> `;
  return markup`<form method="get" action="/audit" class="filters">${input('session', f.session, 'ses-…')}${input('type', f.type, 'egress.*')}${select('severity', SEVERITIES, f.severity)}
${input('rule', f.rule, 'egress.')}${select('decision', ['allow', 'deny', 'ask'], f.decision)}${input('since', f.since, '2026-12-01T00:00:00Z')}${input('until', f.until, '')}${input('host', f.host, 'any')}<button>Search</button></form>`;
}

function sinksTable(rows: SinkStatus[]): Html {
  if (!rows.length) return markup`<p class="muted">No SIEM sinks configured or recorded.</p>`;
  return markup`<table class="list sinks"><thead><tr><th>sink</th><th>type</th><th>acknowledged by</th><th>lag (events)</th><th>delivered</th><th>last ok</th><th>failures</th><th>last error</th></tr></thead>
<tbody>${rows.map(
    (
      s,
    ) => markup`<tr><td>${agentText(s.name)}</td><td>${s.type}</td><td>${s.ack ?? '?'}</td><td class="${s.lag ? 'sev-medium' : ''}">${s.lag}</td><td>${s.delivered}</td>
<td>${s.lastOkAt ?? 'never'}</td><td class="${s.failures ? 'sev-high' : ''}">${s.failures}</td><td>${agentText(s.lastError ?? '')}</td></tr>`,
  )}</tbody></table>`;
}

/** Other hosts' matching events from the shared store, with their host; each links to its session's timeline. */
function otherHostsEvents(events: HostEvent[]): Html {
  if (!events.length) return markup``;
  const sessionLink = (e: HostEvent) => {
    const ref = e.session ? remoteSessionRef(e.session, e.logId) : null;
    if (!e.session) return '';
    return ref ? markup`<a href="/sessions/${ref}">${agentText(e.session)}</a> ` : markup`${agentText(e.session)} `;
  };
  return markup`<h2>Other hosts</h2><table class="list events remote" id="remote-events"><thead><tr><th>host</th><th>seq</th><th>time</th><th>type</th><th>severity</th><th>decision</th><th>rule</th><th>what</th></tr></thead>
<tbody>${events.map(
    (
      e,
    ) => markup`<tr class="${severityClass(e.severity)}"><td>${agentText(e.host)}</td><td>${e.seq}</td><td>${agentText(e.ts)}</td><td>${agentText(e.type)}</td><td>${e.severity}</td>
<td>${agentText(e.decision ?? '')}</td><td><code>${agentText(e.rule ?? '')}</code></td><td class="what">${sessionLink(e)}${summarize(e, 300, agentText)}</td></tr>`,
  )}</tbody></table>`;
}

/** The audit search as the work view runs it: every host's events (this host's from its SQLite), one bounded page. */
function hostSearch(deps: ConsoleDeps, f: AuditFilter, notes?: string[]): Promise<HostEvent[]> {
  const { before: _before, ...filter } = f;
  return hostsView(deps, notes).events({ ...filter, limit: SHOWN });
}

async function auditPage(deps: ConsoleDeps, ctx: PageContext, f: AuditFilter, query: string): Promise<Html> {
  const here = !f.host || isThisHost(deps, f.host);
  const { events, from, to } = here ? searchEvents(deps, f) : { events: [], from: 0, to: 0 };
  const notes: string[] = [];
  const remote = hostsView(deps).sharedUrl ? (await hostSearch(deps, f, notes)).filter((e) => !e.thisHost) : [];
  const older =
    from > 0
      ? new URLSearchParams({ ...Object.fromEntries(new URLSearchParams(query)), before: String(from + 1) }).toString()
      : null;
  return layout(
    ctx,
    'Audit',
    markup`${filterForm(f)}
<p class="muted">${events.length} matching events among seq ${from + 1}–${to} (newest first; at most ${SHOWN} shown)${older ? markup` · <a href="/audit?${older}">older</a>` : ''}
· <a href="/audit/verify">verify the chain</a> · <a href="/audit/export?${query}" download>export JSONL</a></p>
${eventTable(events, { id: 'events', proofs: true })}
${sharedNotice(deps, notes)}${otherHostsEvents(remote)}
<h2>SIEM sinks</h2>${sinksTable(sinkStatus(deps.store, sessionSinks(orgPolicy(deps.env))))}`,
  );
}

async function verifyPage(c: Context<ConsoleEnv>, deps: ConsoleDeps): Promise<Html> {
  let key = null;
  try {
    key = loadPublicKey();
  } catch {
    /* no key yet: signatures are reported as not checked */
  }
  const r = await verifyLogAsync(homeLayout(deps.home).auditDb, { publicKey: key });
  const ok = r.ok && r.signaturesChecked !== false;
  deps.record(c, 'audit_verified', {
    outcome: ok ? 'verified' : 'failed',
    severity: ok ? 'info' : 'critical',
    decision: ok ? 'allow' : 'deny',
  });
  return layout(
    c.get('page'),
    'Audit verify',
    markup`<p class="${ok ? 'state state-approved' : 'error'}" id="verify-status">${ok ? 'verified' : 'NOT verified'}</p>
<dl class="context"><dt>events</dt><dd>${r.events}</dd><dt>head hash</dt><dd><code>${r.headHash}</code></dd><dt>tree root</dt><dd><code>${r.root ?? '—'}</code></dd>
<dt>checkpoints</dt><dd>${r.checkpointsChecked ?? 0} checked${r.signaturesChecked === false ? ' (signatures not checked: no public key)' : ''}</dd></dl>
${r.firstBad ? markup`<p class="error">first bad event: seq ${r.firstBad.seq}: ${agentText(r.firstBad.reason)}</p>` : ''}
${(r.problems ?? []).map((p) => markup`<p class="error">${agentText(p)}</p>`)}`,
  );
}

/** Whether a host filter names this host (its hostname or the start of its log id). */
function isThisHost(deps: ConsoleDeps, host: string): boolean {
  return host === hostname() || logId(deps.store).startsWith(host.toLowerCase());
}

export function registerAuditPages(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  app.get('/api/audit', async (c) =>
    c.json(
      await hostSearch(
        deps,
        parseFilter((k) => c.req.query(k)),
      ),
    ),
  );
  app.get('/audit', async (c) =>
    c.html(
      await auditPage(
        deps,
        c.get('page'),
        parseFilter((k) => c.req.query(k)),
        new URL(c.req.url).search.slice(1),
      ),
    ),
  );
  app.get('/audit/verify', async (c) => c.html(await verifyPage(c, deps)));
  app.get('/audit/events/:id/proof', (c) => {
    const id = c.req.param('id');
    if (!/^[A-Za-z0-9-]{1,64}$/.test(id))
      throw new AirlockError('USAGE', 'invalid event id', 'use the proof link of an event');
    const proof = proveEvent(deps.store, id);
    deps.record(c, 'proof_downloaded', { target: { event: id } });
    return c.body(JSON.stringify(proof, null, 2) + '\n', 200, {
      'content-type': 'application/json',
      'content-disposition': `attachment; filename="airlock-proof-${id}.json"`,
    });
  });
  app.get('/audit/export', (c) => {
    const f = parseFilter((k) => c.req.query(k));
    const { events } = searchEvents(deps, f);
    deps.record(c, 'audit_exported', { target: { filter: f, events: events.length } });
    return c.body(
      events
        .reverse()
        .map((e) => JSON.stringify(e))
        .join('\n') + '\n',
      200,
      { 'content-type': 'application/x-ndjson', 'content-disposition': 'attachment; filename="airlock-events.jsonl"' },
    );
  });
}
