import type { Hono } from 'hono';
import { explainPolicy, type LoadedPolicy } from '../../policy/index.ts';
import { requireProposal, reviewPolicy } from '../../review/index.ts';
import { markup, layout, agentText, type Html } from '../html.ts';
import type { ConsoleDeps, ConsoleEnv } from '../server.ts';
import { idParam, orgPolicy } from './common.ts';

// Policy: the effective merged policy, each value with where it came from (built-in
// default, the org file, a repository's airlock.yaml at a proposal's base commit), as
// `airlock policy explain` prints it. The repository's file is agent-reachable text.

function explained(title: Html, loaded: LoadedPolicy): Html {
  return markup`<p>${title} · policy hash <code>${loaded.hash}</code></p>
<p class="muted">sources: ${loaded.sources.length ? loaded.sources.map((s) => `${agentText(s.origin)} (${s.kind})`).join(' + ') : 'built-in defaults only'}</p>
<table class="list policy"><thead><tr><th>key</th><th>value</th><th>from</th></tr></thead><tbody>
${explainPolicy(loaded).map((v) => markup`<tr><td><code>${v.key}</code></td><td><code>${agentText(JSON.stringify(v.value) ?? 'undefined')}</code></td><td>${agentText(v.from)}</td></tr>`)}
</tbody></table>`;
}

export function registerPolicyPage(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  app.get('/policy', (c) => {
    const proposal = c.req.query('proposal');
    if (!proposal)
      return c.html(
        layout(
          c.get('page'),
          'Policy',
          explained(
            markup`The organisation's policy over the built-in defaults. For a repository's effective policy open <code>/policy?proposal=N</code>.`,
            orgPolicy(deps.env),
          ),
        ),
      );
    const p = requireProposal(deps.store, idParam(proposal, 'proposal id'));
    const { loaded, problems } = reviewPolicy(p.resultRepo, p.base);
    return c.html(
      layout(
        c.get('page'),
        `Policy of proposal ${p.id}`,
        markup`${problems.map((f) => markup`<p class="error">${agentText(f.message)}</p>`)}
${explained(markup`Org policy + <code>airlock.yaml</code> at base <code>${p.base.slice(0, 12)}</code> (the agent's edits never count)`, loaded)}`,
      ),
    );
  });
}
