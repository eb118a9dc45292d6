import type { Hono } from 'hono';
import { AirlockError } from '../../common/index.ts';
import { listSessions, request, type SessionSummary, type Frame } from '../../session/index.ts';
import { markup, layout, agentText, csrfField, type Html, type PageContext } from '../html.ts';
import type { ConsoleDeps, ConsoleEnv } from '../server.ts';
import type { HostSession } from '../../hosts/index.ts';
import { eventTable, hostsView, reloadOn, sessionParam, sharedNotice } from './common.ts';
import { parseRemoteSessionRef, remoteSessionPage, remoteSessionRef } from './remote-session.ts';

// Sessions: live ones first, each with its timeline streaming (SSE); pause / resume /
// stop go to the session's own supervisor over its socket, exactly as
// `airlock session pause|resume|stop` does. With a shared store, other hosts' sessions are
// listed with their host and link to their timeline read from the shared store
// (/sessions/ID@LOGID, remote-session.ts); the listing reloads when a session starts or stops
// here or on another host. /api/sessions gives every host's in the work view's JSON shape.

const TIMELINE_LIMIT = 500;

function sessionRows(rows: SessionSummary[]): Html {
  return markup`<table class="list sessions"><thead><tr><th>session</th><th>state</th><th>agent / command</th><th>started</th><th>ended</th><th>events</th><th>denials</th></tr></thead>
<tbody>${rows.map(
    (
      s,
    ) => markup`<tr><td><a href="/sessions/${encodeURIComponent(s.id)}">${agentText(s.id)}</a></td><td><span class="state state-${s.state}">${s.state}</span></td>
<td><code>${agentText(s.agent ?? (s.command ?? []).join(' ').slice(0, 120))}</code></td><td>${s.start}</td><td>${s.end ?? ''}</td><td>${s.events}</td>
<td class="${s.denials ? 'sev-high' : ''}">${s.denials}</td></tr>`,
  )}</tbody></table>`;
}

/** Other hosts' sessions (with a shared store), each linking to its timeline read from the shared store. */
function otherHostsSessions(rows: HostSession[]): Html {
  if (!rows.length) return markup``;
  const name = (s: HostSession) => {
    const ref = remoteSessionRef(s.id, s.logId);
    return ref ? markup`<a href="/sessions/${ref}">${agentText(s.id)}</a>` : agentText(s.id);
  };
  return markup`<h2>Other hosts</h2><table class="list sessions remote"><thead><tr><th>host</th><th>session</th><th>state</th><th>agent / command</th><th>started</th><th>ended</th><th>events</th><th>denials</th></tr></thead>
<tbody>${rows.map(
    (s) => markup`<tr><td>${agentText(s.host)}</td><td>${name(s)}</td>
<td><span class="state state-${s.state}">${s.state}</span></td><td><code>${agentText(s.agent ?? (s.command ?? []).join(' ').slice(0, 120))}</code></td>
<td>${agentText(s.start)}</td><td>${agentText(s.end ?? '')}</td><td>${s.events}</td><td class="${s.denials ? 'sev-high' : ''}">${s.denials}</td></tr>`,
  )}</tbody></table>`;
}

function controls(ctx: PageContext, s: SessionSummary): Html {
  if (s.state !== 'running') return markup``;
  const button = (verb: string) =>
    markup`<form method="post" action="/sessions/${encodeURIComponent(s.id)}/${verb}" class="inline">${csrfField(ctx)}<button class="${verb}">${verb[0]!.toUpperCase() + verb.slice(1)}</button></form>`;
  return markup`<div class="actions">${button('pause')}${button('resume')}${button('stop')}</div>`;
}

const FRAMES: Record<string, Frame> = {
  pause: { t: 'pause' },
  resume: { t: 'resume' },
  stop: { t: 'stop', reason: 'stopped from the console' },
};

export function registerSessionPages(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  app.get('/api/sessions', async (c) => c.json(await hostsView(deps).sessions()));
  app.get('/sessions', async (c) => {
    const reload = reloadOn(deps, 'session.*', 'sessions'); // before the store is read: a change after it reloads
    const all = listSessions(deps.store).reverse();
    const notes: string[] = [];
    const remote = (await hostsView(deps, notes).sessions()).filter((s) => !s.thisHost).reverse();
    const live = all.filter((s) => s.state === 'running');
    return c.html(
      layout(
        c.get('page'),
        'Sessions',
        markup`<div ${reload}>${sharedNotice(deps, notes)}<h2>Live</h2>${live.length ? sessionRows(live) : markup`<p class="muted">No live sessions.</p>`}
<h2>Finished</h2>${sessionRows(all.filter((s) => s.state !== 'running').slice(0, 200))}
${otherHostsSessions(remote.slice(0, 200))}</div>`,
      ),
    );
  });
  app.get('/sessions/:id', async (c) => {
    const remote = parseRemoteSessionRef(c.req.param('id'));
    const page = remote && (await remoteSessionPage(deps, c.get('page'), remote));
    if (page) return c.html(page);
    if (remote) return c.redirect(`/sessions/${encodeURIComponent(remote.session)}`, 303); // this host's own
    const id = sessionParam(c.req.param('id'));
    const s = listSessions(deps.store, id)[0];
    if (!s) throw new AirlockError('NOT_FOUND', `no such session: ${id}`, 'pick one from the Sessions page');
    const events = deps.store.query({ session: id, limit: TIMELINE_LIMIT });
    const last = events.at(-1)?.seq ?? 0;
    return c.html(
      layout(
        c.get('page'),
        `Session ${agentText(id)}`,
        markup`<p><span class="state state-${s.state}" id="session-state">${s.state}</span>
· ${s.events} events · ${s.denials} denials · started ${s.start}${s.end ? ` · ended ${s.end}` : ''}</p>${controls(c.get('page'), s)}
<h2>Timeline</h2><div data-stream="/stream?session=${encodeURIComponent(id)}&amp;after=${last}" data-target="timeline">${eventTable(events, { id: 'timeline' })}</div>`,
      ),
    );
  });
  for (const verb of Object.keys(FRAMES)) {
    app.post(`/sessions/:id/${verb}`, async (c) => {
      deps.need(c, 'respond');
      const id = sessionParam(c.req.param('id'));
      const s = listSessions(deps.store, id)[0];
      if (!s || s.state !== 'running')
        throw new AirlockError(
          'BAD_STATE',
          `session ${id} is not running`,
          'only a live session can be paused, resumed or stopped',
        );
      const frame: Frame = verb === 'resume' ? { t: 'resume', by: c.get('login').user.identity } : FRAMES[verb]!;
      const r = await request(deps.home, id, frame);
      const failed = r.t === 'error';
      deps.record(c, `session_${verb}`, {
        session: id,
        outcome: failed ? `refused: ${r.message}` : 'done',
        decision: failed ? 'deny' : 'allow',
        severity: 'medium',
      });
      if (failed)
        throw new AirlockError(
          'BAD_STATE',
          `the session refused ${verb}: ${r.message}`,
          r.hint ?? 'see the session timeline',
        );
      return c.redirect(`/sessions/${encodeURIComponent(id)}`, 303);
    });
  }
}
