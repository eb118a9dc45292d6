import type { Hono } from 'hono';
import { listAsks, answerAsk, assertOutsideSandbox, type CommandAsk } from '../../command-rules/index.ts';
import { markup, layout, agentText, csrfField, type Html, type PageContext } from '../html.ts';
import type { ConsoleDeps, ConsoleEnv } from '../server.ts';
import { formText, idParam } from './common.ts';

// Approvals: commands waiting on an "ask" rule, with the time left; allow / deny. The
// queue and the answer are command-rules' own (the same as `airlock approvals`): the
// first answer wins, a timeout is a deny. The page reloads when the queue changes (SSE).

/** An egress.ask waits in the same queue as a command, as ['egress', 'host:port'] under an egress.ask.* rule. */
const isDestination = (a: CommandAsk) => a.command.length === 2 && a.command[0] === 'egress' && a.rule.startsWith('egress.ask.');

function askRow(ctx: PageContext, a: CommandAsk): Html {
  const answer = a.status === 'pending'
    ? markup`<span class="countdown" data-expires="${a.expires}">until ${a.expires}</span>
<form method="post" action="/approvals/${a.id}/allow" class="inline">${csrfField(ctx)}<button class="allow">Allow</button></form>
<form method="post" action="/approvals/${a.id}/deny" class="inline">${csrfField(ctx)}<button class="deny">Deny</button></form>`
    : markup`${a.status}${a.answeredBy ? markup` by ${agentText(a.answeredBy)}` : ''}`;
  return markup`<tr data-ask="${a.id}"><td>${a.id}</td><td><a href="/sessions/${encodeURIComponent(a.session)}">${agentText(a.session)}</a></td>
<td>${isDestination(a) ? markup`<span class="badge">destination</span> <code class="command">${agentText(a.command[1]!)}</code>` : markup`<code class="command">${agentText(a.command.join(' '))}</code>`}</td><td><code>${agentText(a.rule)}</code></td><td>${agentText(a.reason)}</td><td>${answer}</td></tr>`;
}

function asksTable(ctx: PageContext, asks: CommandAsk[], empty: string): Html {
  if (!asks.length) return markup`<p class="muted">${empty}</p>`;
  return markup`<table class="list asks"><thead><tr><th>#</th><th>session</th><th>command / destination</th><th>rule</th><th>why</th><th>answer</th></tr></thead>
<tbody>${asks.map((a) => askRow(ctx, a))}</tbody></table>`;
}

export function registerApprovalPages(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  app.get('/approvals', (c) => {
    const ctx = c.get('page');
    const pending = listAsks(deps.store);
    const answered = listAsks(deps.store, { all: true, limit: 50 }).filter((a) => a.status !== 'pending').reverse();
    return c.html(layout(ctx, 'Approvals', markup`<div data-reload-on="command.*" data-after="${deps.store.headSeq()}">
<h2>Waiting</h2>${asksTable(ctx, pending, 'Nothing is waiting for a human.')}
<h2>Answered recently</h2>${asksTable(ctx, answered, 'No answers yet.')}</div>`));
  });
  for (const decision of ['allow', 'deny'] as const) {
    app.post(`/approvals/:id/${decision}`, async (c) => {
      deps.need(c, 'answer');
      assertOutsideSandbox(deps.store, deps.env);
      const a = answerAsk(deps.store, idParam(c.req.param('id'), 'approval id'), decision, c.get('login').user.identity, (await formText(c, 'reason')) || undefined);
      deps.record(c, decision === 'allow' ? 'ask_allowed' : 'ask_denied', { session: a.session, target: { ask: a.id, rule: a.rule } });
      return c.redirect('/approvals', 303);
    });
  }
}
