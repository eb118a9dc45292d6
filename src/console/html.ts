import { html } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';
import { escapeForTerminal } from '../common/index.ts';
import type { ConsoleUser } from './auth.ts';

// Pages are built from one tagged template that HTML-escapes every interpolated value
// (hono/html); only the output of another `markup` template is taken as markup. Agent text
// additionally goes through `agentText`: controls, bidi and invisible characters become
// visible <U+XXXX> tags, as in the CLI, so what a reviewer reads is what would be applied.

export type Html = HtmlEscapedString;

/** The one way to write markup: every `${value}` is escaped unless it is itself an `markup` result. */
export function markup(strings: TemplateStringsArray, ...values: unknown[]): Html {
  return html(strings, ...values) as Html;
}

/** Agent-controlled text, made inert for a page (HTML escaping happens in `markup`). */
export function agentText(s: string, keepNewlines = false): string {
  return escapeForTerminal(s, { keepNewlines });
}

export interface PageContext {
  user: ConsoleUser;
  csrf: string;
}

const NAV: [href: string, label: string][] = [
  ['/proposals', 'Proposals'],
  ['/approvals', 'Approvals'],
  ['/sessions', 'Sessions'],
  ['/audit', 'Audit'],
  ['/policy', 'Policy'],
];

export function layout(ctx: PageContext, title: string, body: Html): Html {
  return markup`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="${ctx.csrf}">
<title>${title} · Airlock console</title><link rel="stylesheet" href="/static/console.css"></head>
<body><header><strong>Airlock</strong><nav>${NAV.map(([href, label]) => markup`<a href="${href}">${label}</a>`)}</nav>
<span class="who">${ctx.user.identity} (${ctx.user.roles.join(', ')})${ctx.user.via === 'dev-user' ? ' · dev-user mode' : ''}</span>
<form method="post" action="/logout" class="inline">${csrfField(ctx)}<button>Log out</button></form></header>
<main><h1>${title}</h1>${body}</main><script src="/static/console.js"></script></body></html>`;
}

export function csrfField(ctx: PageContext): Html {
  return markup`<input type="hidden" name="_csrf" value="${ctx.csrf}">`;
}

/** A page for a refused or failed request: the message and the hint, escaped; never a stack. */
export function errorPage(title: string, message: string, hint?: string): Html {
  return markup`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title} · Airlock console</title>
<link rel="stylesheet" href="/static/console.css"></head><body><main><h1>${title}</h1>
<p class="error">${agentText(message, true)}</p>${hint ? markup`<p class="hint">${agentText(hint)}</p>` : ''}
<p><a href="/proposals">Back to the console</a></p></main></body></html>`;
}

export function severityClass(s: string): string {
  return ['critical', 'high', 'medium', 'low', 'info'].includes(s) ? `sev-${s}` : 'sev-info';
}
