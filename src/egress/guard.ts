import { fingerprint, matchHoneytokens } from '../secrets/index.ts';
import { NeedleScanner, needlesOf, type Hit } from './broker.ts';
import type { Ctx, Tracked } from './context.ts';

// Things that must never leave, checked on every path out of the gateway that shows
// bytes in the clear (plain HTTP, HTTP or raw TCP inside a tunnel, intercepted TLS): a
// brokered credential's placeholder anywhere its credential is not bound, and any
// honeytoken. A hit refuses the request and records a finding (`detect.finding`):
// high for a placeholder, critical for a honeytoken. Never the value.

/** Streaming scanner over outgoing bytes; null when there is nothing to look for. */
export function outboundScanner(ctx: Ctx, dest?: { host: string; port: number; method: string; path: string }): NeedleScanner<Hit> | null {
  // A placeholder in a body sent to a destination its credential is bound to is harmless
  // (it is worthless, and bodies are never rewritten): e.g. an agent quoting its own
  // environment to its model. Anywhere else it is misuse.
  const needles = (ctx.broker?.needles(ctx.honeytokens) ?? []).filter((n) =>
    !(dest && n.tag.kind === 'placeholder' && ctx.broker!.bound(n.tag.credential, dest)));
  if (!ctx.broker) for (const t of ctx.honeytokens) for (const n of needlesOf(t.value)) needles.push({ text: n, tag: { kind: 'honeytoken', token: t, where: 'body' } });
  return needles.length ? new NeedleScanner(needles) : null;
}

/** A hit in text (URL, header values) that is never allowed on this path. */
export function textHit(ctx: Ctx, text: string, where: string): Hit | null {
  const c = ctx.broker?.placeholderIn(text);
  if (c) return { kind: 'placeholder', credential: c, where };
  const h = ctx.honeytokens.length ? matchHoneytokens(text, ctx.honeytokens) : [];
  return h.length ? { kind: 'honeytoken', token: h[0]!, where } : null;
}

/** Refuses (records the request as denied) and records the finding. */
export function recordHit(ctx: Ctx, t: Tracked, hit: Hit): { rule: string; reason: string } {
  const i = t.info;
  const dest = `${i.method && i.method !== 'CONNECT' ? `${i.method} ` : ''}${i.host ?? '?'}:${i.port ?? '?'}${i.path ?? ''}`;
  let rule: string;
  let reason: string;
  let finding: Record<string, unknown>;
  if (hit.kind === 'placeholder') {
    const c = hit.credential;
    rule = `credentials.brokered.${c.name}`;
    reason = `the placeholder of brokered credential ${c.name} was sent in the ${hit.where} of a request to ${dest}, where the credential is not bound`;
    finding = {
      title: `Brokered credential ${c.name} sent to an unbound destination`,
      explanation: reason, kind: 'credential-misuse', credential: c.name, placeholderFingerprint: fingerprint(c.placeholder), where: hit.where,
    };
    t.extra.credential = c.name;
    t.deny(rule, reason, 'high');
  } else {
    rule = 'secrets.honeytokens';
    reason = `honeytoken ${hit.token.kind} (planted at ${hit.token.path}) was sent in the ${hit.where} of a request to ${dest}`;
    finding = { title: 'Honeytoken sent out', explanation: reason, kind: 'honeytoken', honeytoken: hit.token.kind, fingerprint: hit.token.fingerprint, where: hit.where };
    t.deny(rule, reason, 'critical');
  }
  try {
    ctx.record({
      type: 'detect.finding', session: ctx.session, severity: hit.kind === 'placeholder' ? 'high' : 'critical', decision: 'deny', rule: hit.kind === 'placeholder' ? 'detect.credential-misuse' : 'detect.honeytoken',
      data: { ...finding, host: i.host ?? null, port: i.port ?? null, method: i.method ?? null, path: i.path ?? null, protocol: i.protocol, evidence: [] },
    });
  } catch { /* the request is refused either way */ }
  return { rule, reason };
}
