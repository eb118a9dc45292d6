import type { Context, Hono } from 'hono';
import { AirlockError } from '../../common/index.ts';
import {
  listProposals,
  proposalStatus,
  requireProposal,
  approveProposal,
  rejectProposal,
  applyProposal,
  loadChange,
  diffSections,
  readAgentCommits,
  decisionsFor,
  type Proposal,
  type ProposalStatus,
  type Finding,
} from '../../review/index.ts';
import { markup, layout, agentText, csrfField, severityClass, type Html, type PageContext } from '../html.ts';
import type { ConsoleDeps, ConsoleEnv } from '../server.ts';
import type { HostProposal } from '../../hosts/index.ts';
import { formText, hostsView, idParam, safeHref, sessionContext, sharedNotice } from './common.ts';

// Proposals: the queue, and one proposal with its diff, findings inline, the agent's
// commits and the session's context; approve / reject (bound to the hash the page showed)
// and apply. Every decision is review's own function, called with the logged-in identity.

const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'] as const;

function findingCounts(p: Proposal): Html {
  const by = new Map<string, number>();
  for (const f of p.findings) by.set(f.severity, (by.get(f.severity) ?? 0) + 1);
  const parts = SEVERITIES.filter((s) => by.get(s)).map(
    (s) => markup`<span class="badge ${severityClass(s)}">${by.get(s)} ${s}</span> `,
  );
  const blocking = p.findings.filter((f) => f.blocking).length;
  return parts.length
    ? markup`${parts}${blocking ? markup`<span class="badge blocking">${blocking} blocking</span>` : ''}`
    : markup`<span class="muted">no findings</span>`;
}

function stateBadge(st: ProposalStatus): Html {
  const text = st.state === 'applied' ? `applied → ${st.applied?.branch ?? ''}` : st.state;
  return markup`<span class="state state-${st.state}">${agentText(text)}</span>`;
}

function queue(
  ctx: PageContext,
  rows: { p: Proposal; st: ProposalStatus }[],
  remote: HostProposal[],
  notice: Html,
): Html {
  if (!rows.length)
    return layout(ctx, 'Proposals', markup`<p class="muted">No proposals yet.</p>${notice}${otherHosts(ctx, remote)}`);
  return layout(
    ctx,
    'Proposals',
    markup`<table class="list"><thead><tr><th>#</th><th>session</th><th>state</th><th>size</th><th>findings</th><th>approvals</th><th>still needed</th></tr></thead><tbody>
${rows.map(
  ({
    p,
    st,
  }) => markup`<tr><td><a href="/proposals/${p.id}">${p.id}</a></td><td><a href="/sessions/${encodeURIComponent(p.session)}">${agentText(p.session)}</a></td>
<td>${stateBadge(st)}${st.escalated ? markup` <span class="badge sev-high">escalated</span>` : ''}</td>
<td>${p.stats.files} files <span class="add">+${p.stats.added}</span>/<span class="del">-${p.stats.deleted}</span></td>
<td>${findingCounts(p)}</td><td>${st.approvers.length}/${st.required}</td><td>${st.state === 'pending' ? st.missing.map((m) => agentText(m)).join('; ') : ''}</td></tr>`,
)}
</tbody></table>${notice}${otherHosts(ctx, remote)}`,
  );
}

/** Other hosts' open proposals (with a shared store): approve here, bound to the shipped hash; review detail and apply stay on their host. */
function otherHosts(ctx: PageContext, rows: HostProposal[]): Html {
  if (!rows.length) return markup``;
  return markup`<h2>Other hosts</h2><table class="list remote"><thead><tr><th>#</th><th>host</th><th>session</th><th>state</th><th>size</th><th>findings</th><th>approvers</th><th></th></tr></thead><tbody>
${rows.map(
  (
    p,
  ) => markup`<tr><td>${agentText(p.ref)}</td><td>${agentText(p.host)}</td><td>${agentText(p.session ?? '')}</td><td><span class="state state-${p.state}">${agentText(p.state)}</span></td>
<td>${p.stats ? markup`${p.stats.files} files <span class="add">+${p.stats.added}</span>/<span class="del">-${p.stats.deleted}</span>` : ''}</td>
<td>${p.findingCount}${p.blockingCount ? markup` <span class="badge blocking">${p.blockingCount} blocking</span>` : ''}</td><td>${agentText(p.approvers.join(', '))}</td>
<td>${
    p.hash && !p.blockingCount
      ? markup`<form method="post" action="/proposals/remote/${encodeURIComponent(p.ref)}/approve">${csrfField(ctx)}<input type="hidden" name="hash" value="${p.hash}">
<button class="approve">Approve sha256:${p.hash.slice(0, 12)}</button></form>`
      : ''
  }</td></tr>`,
)}
</tbody></table>`;
}

function findingRow(f: Finding): Html {
  return markup`<div class="finding ${severityClass(f.severity)}">▲ [${f.severity}${f.blocking ? ', blocking' : ''}] <code>${f.rule}</code>: ${agentText(f.message)}</div>`;
}

function diffHtml(p: Proposal): Html {
  let change;
  try {
    change = loadChange(p.resultRepo, p.base, p.head, p.commits);
  } catch (e) {
    return markup`<p class="error">cannot read the diff: ${agentText(e instanceof Error ? e.message : String(e))}</p>`;
  }
  const byFile = new Map<string, Finding[]>();
  for (const f of p.findings) if (f.file) byFile.set(f.file, [...(byFile.get(f.file) ?? []), f]);
  const stale =
    change.diffSha256 !== p.diffSha256
      ? markup`<p class="error">The diff no longer matches the proposal hash; it cannot be approved or applied.</p>`
      : '';
  return markup`${stale}${diffSections(change.diff, change.files).map(({ file, text }) => fileDiff(file.path, file.pathHex ?? null, file.status, text, byFile.get(file.path) ?? []))}`;
}

function fileDiff(path: string, pathHex: string | null, status: string, text: string, here: Finding[]): Html {
  const rows: Html[] = here
    .filter((f) => f.line === 0)
    .map((f) => markup`<tr class="finding-row"><td colspan="2">${findingRow(f)}</td></tr>`);
  let newLine = 0;
  let inHunk = false;
  for (const line of text.replace(/\n$/, '').split('\n')) {
    const hunk = /^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
    if (hunk) {
      inHunk = true;
      newLine = Number(hunk[1]);
      rows.push(markup`<tr class="hunk"><td></td><td>${agentText(line)}</td></tr>`);
      continue;
    }
    if (!inHunk) continue;
    const kind = line.startsWith('+') ? 'add' : line.startsWith('-') ? 'del' : 'ctx';
    rows.push(
      markup`<tr class="${kind}"><td class="ln">${kind === 'del' ? '' : newLine}</td><td>${agentText(line)}</td></tr>`,
    );
    if (kind === 'add')
      for (const f of here)
        if (f.line === newLine) rows.push(markup`<tr class="finding-row"><td></td><td>${findingRow(f)}</td></tr>`);
    if (kind !== 'del') newLine++;
  }
  return markup`<section class="file"><h3 class="filename">${agentText(path)}${pathHex ? markup` <span class="muted">(name bytes ${pathHex})</span>` : ''} <span class="muted">(${status})</span></h3>
<table class="diff">${rows}</table></section>`;
}

function commitsHtml(p: Proposal): Html {
  try {
    return markup`${readAgentCommits(p.resultRepo, p.commits).map(
      (c) => markup`<div class="commit"><code>${c.sha.slice(0, 12)}</code>
author <span class="author">${agentText(`${c.author.name} <${c.author.email}>`)}</span> · committer ${agentText(`${c.committer.name} <${c.committer.email}>`)}
<pre class="message">${agentText(c.message.replace(/\s+$/, ''), true)}</pre>${c.truncated ? markup`<p class="muted">(message cut at 64 KiB)</p>` : ''}</div>`,
    )}`;
  } catch (e) {
    return markup`<p class="error">cannot read the agent's commits: ${agentText(e instanceof Error ? e.message : String(e))}</p>`;
  }
}

function actions(ctx: PageContext, p: Proposal, st: ProposalStatus): Html {
  if (st.state === 'applied')
    return markup`<p>Applied to <code>${agentText(st.applied?.branch ?? '')}</code>${safeHref(st.applied?.url) ? markup`: <a class="pr-link" href="${safeHref(st.applied?.url)}" rel="noreferrer">${safeHref(st.applied?.url)}</a>` : ''}</p>`;
  if (st.state === 'rejected' || st.state === 'superseded') return markup``;
  const blocking = p.findings.some((f) => f.blocking);
  return markup`<div class="actions">
<form method="post" action="/proposals/${p.id}/approve">${csrfField(ctx)}<input type="hidden" name="hash" value="${p.hash}">
${blocking ? markup`<label>Override reason (blocking findings; only override roles) <input name="overrideReason"></label>` : ''}
<button class="approve">Approve sha256:${p.hash.slice(0, 12)}</button></form>
<form method="post" action="/proposals/${p.id}/reject">${csrfField(ctx)}<input type="hidden" name="hash" value="${p.hash}">
<label>Reason <input name="reason" required></label><button class="reject">Reject</button></form>
${st.state === 'approved' ? markup`<form method="post" action="/proposals/${p.id}/apply">${csrfField(ctx)}<input type="hidden" name="hash" value="${p.hash}"><button class="apply">Apply (push branch, open PR)</button></form>` : ''}
</div>`;
}

function proposalPage(deps: ConsoleDeps, ctx: PageContext, p: Proposal): Html {
  const st = proposalStatus(deps.store, p);
  const global = p.findings.filter((f) => !f.file);
  return layout(
    ctx,
    `Proposal ${p.id}`,
    markup`<p>${stateBadge(st)} session <a href="/sessions/${encodeURIComponent(p.session)}">${agentText(p.session)}</a>
· <span class="muted">hash</span> <code class="hash">sha256:${p.hash}</code> · base <code>${p.base.slice(0, 12)}</code> head <code>${p.head.slice(0, 12)}</code>
· ${p.stats.commits} commits, ${p.stats.files} files, <span class="add">+${p.stats.added}</span>/<span class="del">-${p.stats.deleted}</span></p>
<p>Checks: ${findingCounts(p)} · Approvals: ${st.approvers.length ? agentText(st.approvers.join(', ')) : 'none'} (${st.required} required${st.escalated ? ', escalated' : ''}${st.group ? `, one from group ${st.group}` : ''})</p>
${st.state === 'pending' ? st.missing.map((m) => markup`<p class="warn">needs ${agentText(m)}</p>`) : ''}
${st.rejectedBy ? markup`<p class="error">rejected by ${agentText(st.rejectedBy.by)}: ${agentText(st.rejectedBy.reason)}</p>` : ''}
${st.lastApplyError ? markup`<p class="error">last apply failed: ${agentText(st.lastApplyError)}</p>` : ''}
${actions(ctx, p, st)}
${global.map(findingRow)}
<h2>Session context</h2>${sessionContext(deps.store, p.session, p.startedBy, p.policyHash, `/policy?proposal=${p.id}`)}
<h2>Agent commits (${p.commits.length}; apply pushes one commit Airlock builds from the reviewed tree)</h2>${commitsHtml(p)}
<h2>Decisions</h2>${decisionsFor(deps.store, p.id).map((d) => markup`<p>${d.kind} by ${agentText(d.by ?? '')}${d.reason ? markup`: ${agentText(d.reason)}` : ''}</p>`)}
<h2>Diff</h2>${diffHtml(p)}`,
  );
}

/** The hash the reviewer saw must be the proposal's hash now: an approval is for exactly that change. */
async function boundProposal(c: Context<ConsoleEnv>, deps: ConsoleDeps): Promise<Proposal> {
  const p = requireProposal(deps.store, idParam(c.req.param('id'), 'proposal id'));
  const hash = await formText(c, 'hash');
  if (hash !== p.hash) {
    deps.record(c, 'proposal_hash_mismatch', {
      session: p.session,
      target: { proposal: p.id },
      severity: 'medium',
      decision: 'deny',
      outcome: 'the page showed another hash',
    });
    throw new AirlockError(
      'BAD_STATE',
      `proposal ${p.id} is not the change this page showed (hash sha256:${p.hash.slice(0, 12)})`,
      'reload the proposal and review it again',
    );
  }
  return p;
}

export function registerProposalPages(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  app.get('/proposals', async (c) => {
    const notes: string[] = [];
    const remote = (await hostsView(deps, notes).proposals()).filter((p) => !p.thisHost);
    return c.html(
      queue(
        c.get('page'),
        listProposals(deps.store)
          .reverse()
          .map((p) => ({ p, st: proposalStatus(deps.store, p) })),
        remote,
        sharedNotice(deps, notes),
      ),
    );
  });
  app.post('/proposals/remote/:ref/approve', async (c) => {
    deps.need(c, 'review');
    const ref = c.req.param('ref');
    const hash = await formText(c, 'hash');
    const r = await hostsView(deps).approveRemote(ref, {
      as: c.get('login').user.identity,
      env: deps.env,
      expectHash: hash,
    });
    deps.record(c, 'proposal_approved', {
      session: r.session,
      target: { proposal: r.ref, host: r.host, logId: r.logId, hash: r.hash },
      outcome: 'sent to its host',
    });
    return c.redirect('/proposals', 303);
  });
  app.get('/proposals/:id', (c) =>
    c.html(proposalPage(deps, c.get('page'), requireProposal(deps.store, idParam(c.req.param('id'), 'proposal id')))),
  );

  app.post('/proposals/:id/approve', async (c) => {
    deps.need(c, 'review');
    const p = await boundProposal(c, deps);
    const overrideReason = (await formText(c, 'overrideReason')) || undefined;
    const who = c.get('login').user.identity;
    const r = approveProposal(deps.store, p.id, { as: who, overrideReason, env: deps.env });
    deps.record(c, 'proposal_approved', {
      session: p.session,
      target: { proposal: p.id, hash: p.hash },
      outcome: r.status.state,
    });
    if (r.status.state === 'approved' && p.policy.review.apply.onApproval) await apply(c, deps, p);
    return c.redirect(`/proposals/${p.id}`, 303);
  });
  app.post('/proposals/:id/reject', async (c) => {
    deps.need(c, 'review');
    const p = await boundProposal(c, deps);
    rejectProposal(deps.store, p.id, {
      as: c.get('login').user.identity,
      reason: await formText(c, 'reason'),
      env: deps.env,
    });
    deps.record(c, 'proposal_rejected', { session: p.session, target: { proposal: p.id, hash: p.hash } });
    return c.redirect(`/proposals/${p.id}`, 303);
  });
  app.post('/proposals/:id/apply', async (c) => {
    deps.need(c, 'review');
    const p = await boundProposal(c, deps);
    await apply(c, deps, p);
    return c.redirect(`/proposals/${p.id}`, 303);
  });
}

async function apply(c: Context<ConsoleEnv>, deps: ConsoleDeps, p: Proposal): Promise<void> {
  const a = await applyProposal(deps.store, p.id, { as: c.get('login').user.identity, env: deps.env });
  deps.record(c, 'proposal_applied', {
    session: p.session,
    target: { proposal: p.id, hash: p.hash, branch: a.branch, url: a.url },
  });
}
