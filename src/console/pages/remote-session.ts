import { AirlockError } from '../../common/index.ts';
import { logId } from '../../audit/index.ts';
import { sessionFromRow } from '../../session/index.ts';
import { inertSessionRow } from '../../hosts/index.ts';
import { sharedSessionEvents, sharedSessions, withSharedStore, type SharedSessionRow } from '../../store/index.ts';
import { markup, layout, agentText, type Html, type PageContext } from '../html.ts';
import type { ConsoleDeps } from '../server.ts';
import { eventTable, hostsView } from './common.ts';

// Another host's session (/sessions/ID@LOGID, a log id or its first characters, as `N@HOST`
// refs work in the CLI): its summary and timeline read from the shared store, live (the
// stream re-reads when the console's LISTEN hears of new events), read-only — pause, resume
// and stop go to a session's own supervisor, which runs on its host. Every string is that
// host's writing and is escaped like agent text.

const TIMELINE_LIMIT = 500;
const SESSION_ID = /^[A-Za-z0-9._-]{1,128}$/;
const LOG_ID = /^[0-9a-f-]{4,64}$/;

export interface RemoteSessionRef {
  session: string;
  /** the host's log id, or its first characters */
  logId: string;
}

/** `ID@LOGID` (null for a plain session id of this host); a malformed one is a USAGE error. */
export function parseRemoteSessionRef(param: string | undefined): RemoteSessionRef | null {
  if (!param?.includes('@')) return null;
  const at = param.lastIndexOf('@');
  const session = param.slice(0, at);
  const log = param.slice(at + 1).toLowerCase();
  if (!SESSION_ID.test(session) || !LOG_ID.test(log))
    throw new AirlockError(
      'USAGE',
      'a session on another host is SESSION@LOGID (its log id, or at least its first 4 characters)',
      'follow a link from the Sessions page',
    );
  return { session, logId: log };
}

/** The ref a listing links to (URL-safe as it is), or null when that host's ids cannot be written as one (its writing: shown, not linked). */
export function remoteSessionRef(session: string, log: string): string | null {
  return SESSION_ID.test(session) && LOG_ID.test(log) ? `${session}@${log}` : null;
}

/** The one session a ref names; NOT_FOUND when none, USAGE when the log id prefix names several hosts. */
function oneSession(rows: SharedSessionRow[], ref: RemoteSessionRef): SharedSessionRow {
  if (rows.length === 1) return rows[0]!;
  if (!rows.length)
    throw new AirlockError(
      'NOT_FOUND',
      `no session ${ref.session} on a host whose log id starts with ${ref.logId} in the shared store`,
      'pick one from the Sessions page (it lists every host once their shippers ran)',
    );
  throw new AirlockError(
    'USAGE',
    `${ref.logId} starts the log id of ${rows.length} hosts with a session ${ref.session}`,
    'give more of the log id (the Sessions page links the whole one)',
  );
}

/** The page of another host's session; a ref naming this host's own log goes to its local page (null). */
export async function remoteSessionPage(
  deps: ConsoleDeps,
  ctx: PageContext,
  ref: RemoteSessionRef,
): Promise<Html | null> {
  if (logId(deps.store).startsWith(ref.logId)) return null;
  const url = hostsView(deps).sharedUrl;
  if (!url)
    throw new AirlockError(
      'NOT_FOUND',
      'this console has no shared store: it knows only its own host',
      'set AIRLOCK_DATABASE_URL or telemetry.sharedStore in the org policy where the console runs',
    );
  const { s, events } = await withSharedStore(url, async (c) => {
    const found = oneSession(await sharedSessions(c, ref.session, ref.logId), ref);
    return {
      s: found,
      events: await sharedSessionEvents(c, found.logId, found.session, found.firstSeq - 1, TIMELINE_LIMIT),
    };
  });
  const summary = sessionFromRow(inertSessionRow(s.row), false);
  const last = events.at(-1)?.seq ?? s.firstSeq - 1;
  const stream = `/stream?${new URLSearchParams({ session: s.session, host: s.logId, after: String(last) }).toString()}`;
  return layout(
    ctx,
    `Session ${agentText(s.session)}`,
    markup`<p class="notice" id="remote-host">On host <strong>${agentText(s.hostname)}</strong> (log <code>${agentText(s.logId)}</code>), read from the shared store.
Read-only here: pause, resume and stop are done on its own host (<code>airlock session pause|resume|stop ${agentText(s.session)}</code> there).</p>
<p><span class="state state-${summary.state}" id="session-state">${summary.state}</span>
· ${summary.events} events · ${summary.denials} denials · started ${agentText(summary.start)}${summary.end ? ` · ended ${agentText(summary.end)}` : ''}</p>
<h2>Timeline</h2><div data-stream="${stream}" data-target="timeline">${eventTable(events, { id: 'timeline', remote: true })}</div>`,
  );
}
