import type { Hono } from 'hono';
import {
  listAsks,
  answerAsk,
  assertOutsideSandbox,
  isDestinationAsk as isDestination,
  type AnswerScope,
  type CommandAsk,
} from '../../command-rules/index.ts';
import { proposeAskedDestination } from '../../review/index.ts';
import { newSessionId } from '../../session/index.ts';
import { markup, layout, agentText, csrfField, type Html, type PageContext } from '../html.ts';
import type { ConsoleDeps, ConsoleEnv } from '../server.ts';
import type { HostAsk } from '../../hosts/index.ts';
import { formText, hostsView, idParam, reloadOn, sharedNotice } from './common.ts';

// Approvals: commands waiting on an "ask" rule, with the time left; allow / deny. The
// queue and the answer are command-rules' own (the same as `airlock approvals`): the
// first answer wins, a timeout is a deny. The page reloads when the queue changes (SSE).
// A destination (egress.ask) is allowed once or for the session, or turned into a proposed
// airlock.yaml change (its connection denied), like `airlock approvals allow|propose`.
// With a shared store, asks waiting on other hosts are listed too and answered here (once,
// signed by this host; the asking host applies the answer only under a key its org trusts).
// /api/approvals gives the same list in the work view's JSON shape.

const button = (ctx: PageContext, a: CommandAsk, action: string, cls: string, label: string): Html =>
  markup`<form method="post" action="/approvals/${a.id}/${action}" class="inline">${csrfField(ctx)}<button class="${cls}">${label}</button></form>`;

function answerButtons(ctx: PageContext, a: CommandAsk): Html {
  if (!isDestination(a))
    return markup`${button(ctx, a, 'allow', 'allow', 'Allow')}${button(ctx, a, 'deny', 'deny', 'Deny')}`;
  return markup`${button(ctx, a, 'allow', 'allow', 'Allow once')}${button(ctx, a, 'allow-session', 'allow-session', 'Allow for the session')}${button(ctx, a, 'deny', 'deny', 'Deny')}${button(ctx, a, 'propose', 'propose', 'Propose policy change')}`;
}

function answerText(a: CommandAsk): Html {
  if (a.status !== 'allow') return markup`${a.status}${a.answeredBy ? markup` by ${agentText(a.answeredBy)}` : ''}`;
  return markup`allowed ${a.scope === 'session' ? 'for the session' : 'once'}${a.answeredBy ? markup` by ${agentText(a.answeredBy)}` : ''}`;
}

function askRow(ctx: PageContext, a: CommandAsk): Html {
  const answer =
    a.status === 'pending'
      ? markup`<span class="countdown" data-expires="${a.expires}">until ${a.expires}</span>
${answerButtons(ctx, a)}`
      : answerText(a);
  return markup`<tr data-ask="${a.id}"><td>${a.id}</td><td><a href="/sessions/${encodeURIComponent(a.session)}">${agentText(a.session)}</a></td>
<td>${isDestination(a) ? markup`<span class="badge">destination</span> <code class="command">${agentText(a.command[1]!)}</code>` : markup`<code class="command">${agentText(a.command.join(' '))}</code>`}</td><td><code>${agentText(a.rule)}</code></td><td>${agentText(a.reason)}</td><td>${answer}</td></tr>`;
}

function asksTable(ctx: PageContext, asks: CommandAsk[], empty: string): Html {
  if (!asks.length) return markup`<p class="muted">${empty}</p>`;
  return markup`<table class="list asks"><thead><tr><th>#</th><th>session</th><th>command / destination</th><th>rule</th><th>why</th><th>answer</th></tr></thead>
<tbody>${asks.map((a) => askRow(ctx, a))}</tbody></table>`;
}

/** Asks waiting on other hosts (with a shared store): answered here, signed by this host, applied by theirs. */
function otherHostsAsks(ctx: PageContext, asks: HostAsk[]): Html {
  if (!asks.length) return markup``;
  const answer = (a: HostAsk, action: 'allow' | 'deny', label: string) =>
    markup`<form method="post" action="/approvals/remote/${encodeURIComponent(a.ref)}/${action}" class="inline">${csrfField(ctx)}<button class="${action}">${label}</button></form>`;
  return markup`<h2>Other hosts</h2><table class="list asks remote"><thead><tr><th>#</th><th>host</th><th>session</th><th>command / destination</th><th>rule</th><th>answer</th></tr></thead>
<tbody>${asks.map(
    (
      a,
    ) => markup`<tr data-ask="${a.ref}"><td>${agentText(a.ref)}</td><td>${agentText(a.host)}</td><td>${agentText(a.session ?? '')}</td>
<td><code class="command">${agentText(a.command.join(' '))}</code></td><td><code>${agentText(a.rule ?? '')}</code></td>
<td><span class="countdown" data-expires="${a.expires}">until ${a.expires}</span> ${answer(a, 'allow', 'Allow once')}${answer(a, 'deny', 'Deny')}</td></tr>`,
  )}</tbody></table>`;
}

/** Answering another host's ask: signed with this host's key through the work view; its host verifies and applies it. */
function registerRemoteAnswers(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  for (const decision of ['allow', 'deny'] as const) {
    app.post(`/approvals/remote/:ref/${decision}`, async (c) => {
      deps.need(c, 'answer');
      assertOutsideSandbox(deps.store, deps.env);
      const a = await hostsView(deps).answerAsk(
        c.req.param('ref'),
        decision,
        c.get('login').user.identity,
        (await formText(c, 'reason')) || undefined,
      );
      deps.record(c, decision === 'allow' ? 'ask_allowed' : 'ask_denied', {
        session: a.session,
        target: { ask: a.ref, host: a.host, logId: a.logId, rule: a.rule },
        outcome: 'sent to its host',
      });
      return c.redirect('/approvals', 303);
    });
  }
}

export function registerApprovalPages(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  registerRemoteAnswers(app, deps);
  app.get('/api/approvals', async (c) => c.json(await hostsView(deps).asks({ all: c.req.query('all') === '1' })));
  app.get('/approvals', async (c) => {
    const ctx = c.get('page');
    const live = reloadOn(deps, 'command.*', 'asks'); // before the store is read: a change after it reloads
    const notes: string[] = [];
    const remote = (await hostsView(deps, notes).asks()).filter((a) => !a.thisHost);
    const pending = listAsks(deps.store);
    const answered = listAsks(deps.store, { all: true, limit: 50 })
      .filter((a) => a.status !== 'pending')
      .reverse();
    return c.html(
      layout(
        ctx,
        'Approvals',
        markup`<div ${live}>${sharedNotice(deps, notes)}
<h2>Waiting</h2>${asksTable(ctx, pending, 'Nothing is waiting for a human.')}
${otherHostsAsks(ctx, remote)}
<h2>Answered recently</h2>${asksTable(ctx, answered, 'No answers yet.')}</div>`,
      ),
    );
  });
  const answers: [string, 'allow' | 'deny', AnswerScope][] = [
    ['allow', 'allow', 'once'],
    ['allow-session', 'allow', 'session'],
    ['deny', 'deny', 'once'],
  ];
  for (const [action, decision, scope] of answers) {
    app.post(`/approvals/:id/${action}`, async (c) => {
      deps.need(c, 'answer');
      assertOutsideSandbox(deps.store, deps.env);
      const a = answerAsk(
        deps.store,
        idParam(c.req.param('id'), 'approval id'),
        decision,
        c.get('login').user.identity,
        (await formText(c, 'reason')) || undefined,
        'human',
        scope,
      );
      deps.record(c, decision === 'allow' ? 'ask_allowed' : 'ask_denied', {
        session: a.session,
        target: { ask: a.id, rule: a.rule, ...(decision === 'allow' ? { scope } : {}) },
      });
      return c.redirect('/approvals', 303);
    });
  }
  app.post('/approvals/:id/propose', async (c) => {
    deps.need(c, 'answer');
    assertOutsideSandbox(deps.store, deps.env);
    const r = await proposeAskedDestination(
      deps.store,
      idParam(c.req.param('id'), 'approval id'),
      c.get('login').user.identity,
      { session: newSessionId(), reason: (await formText(c, 'reason')) || undefined, home: deps.home, env: deps.env },
    );
    deps.record(c, 'ask_proposed', {
      session: r.ask.session,
      target: { ask: r.ask.id, rule: r.ask.rule, proposal: r.proposal.id },
    });
    return c.redirect(`/proposals/${r.proposal.id}`, 303);
  });
}
