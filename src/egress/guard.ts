import { fingerprint, matchHoneytokens } from '../secrets/index.ts';
import { NeedleScanner, needlesOf, type Hit } from './broker.ts';
import type { Ctx, Tracked } from './context.ts';
import { textViews } from './views.ts';

// Things that must never leave, checked on every path out of the gateway that shows
// bytes in the clear (plain HTTP, HTTP or raw TCP inside a tunnel, intercepted TLS): a
// brokered credential's placeholder anywhere its credential is not bound, and any
// honeytoken. A hit refuses the request and records a finding (`detect.finding`):
// high for a placeholder, critical for a honeytoken. Never the value.

/** Streaming scanner over outgoing bytes; null when there is nothing to look for. */
export function outboundScanner(
  ctx: Ctx,
  dest?: { host: string; port: number; method: string; path: string },
): NeedleScanner<Hit> | null {
  // A placeholder in a body sent to a destination its credential is bound to is harmless
  // (it is worthless, and bodies are never rewritten): e.g. an agent quoting its own
  // environment to its model. Anywhere else it is misuse.
  const needles = (ctx.broker?.needles(ctx.honeytokens) ?? []).filter(
    (n) => !(dest && n.tag.kind === 'placeholder' && ctx.broker!.bound(n.tag.credential, dest)),
  );
  if (!ctx.broker)
    for (const t of ctx.honeytokens)
      for (const n of needlesOf(t.value))
        needles.push({ text: n, tag: { kind: 'honeytoken', token: t, where: 'body' } });
  return needles.length ? new NeedleScanner(needles) : null;
}

/** A hit in text (URL path and query, header names and values) that is never allowed on this path. */
export function textHit(ctx: Ctx, text: string, where: string): Hit | null {
  for (const v of textViews(text)) {
    const c = ctx.broker?.placeholderIn(v);
    if (c) return { kind: 'placeholder', credential: c, where };
    const h = ctx.honeytokens.length ? matchHoneytokens(v, ctx.honeytokens) : [];
    if (h.length) return { kind: 'honeytoken', token: h[0]!, where };
  }
  return null;
}

/** The request line and every header (names and values) as one text to scan. */
export function requestText(url: string, rawHeaders: readonly string[]): string {
  return `${url}\n${rawHeaders.join('\n')}`;
}

/**
 * A host name that carries a placeholder or a honeytoken: it must never be resolved (the
 * DNS query alone would carry it out). Names are case-folded and may split a value over
 * labels, so the comparison is on lower-case letters and digits only.
 */
export function nameHit(ctx: Ctx, host: string): Hit | null {
  const squash = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, '');
  const name = squash(host);
  const carries = (value: string) => {
    const v = squash(value);
    const hex = Buffer.from(value, 'utf8').toString('hex');
    // a long value's distinctive core (labels are at most 63 characters)
    const core = v.length > 40 ? v.slice(0, 40) : v;
    return (core.length >= 12 && name.includes(core)) || (hex.length >= 24 && name.includes(hex.slice(0, 48)));
  };
  for (const c of ctx.broker?.credentials ?? [])
    if (carries(c.placeholder.slice(c.placeholder.lastIndexOf('-') + 1)) || carries(c.placeholder))
      return { kind: 'placeholder', credential: c, where: 'host name' };
  for (const t of ctx.honeytokens) {
    const firstLine = t.value.split('\n').find((l) => l.length >= 12 && !l.startsWith('-----')) ?? t.value;
    if (carries(firstLine)) return { kind: 'honeytoken', token: t, where: 'host name' };
  }
  return null;
}

/** Records a `detect.finding` (never throws: the request is decided either way). */
export function recordFinding(
  ctx: Ctx,
  t: Tracked,
  severity: 'medium' | 'high' | 'critical',
  rule: string,
  finding: Record<string, unknown>,
): void {
  const i = t.info;
  try {
    ctx.record({
      type: 'detect.finding',
      session: ctx.session,
      severity,
      decision: t.decision,
      rule,
      data: {
        ...finding,
        host: i.host ?? null,
        port: i.port ?? null,
        method: i.method ?? null,
        path: i.path ?? null,
        protocol: i.protocol,
        evidence: [],
      },
    });
  } catch {
    /* the request is refused either way */
  }
}

/** Refuses (records the request as denied) and records the finding. */
export function recordHit(ctx: Ctx, tracked: Tracked, hit: Hit): { rule: string; reason: string } {
  const i = tracked.info;
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
      explanation: reason,
      kind: 'credential-misuse',
      credential: c.name,
      placeholderFingerprint: fingerprint(c.placeholder),
      where: hit.where,
    };
    tracked.extra.credential = c.name;
    tracked.deny(rule, reason, 'high');
  } else {
    rule = 'secrets.honeytokens';
    reason = `honeytoken ${hit.token.kind} (planted at ${hit.token.path}) was sent in the ${hit.where} of a request to ${dest}`;
    finding = {
      title: 'Honeytoken sent out',
      explanation: reason,
      kind: 'honeytoken',
      honeytoken: hit.token.kind,
      fingerprint: hit.token.fingerprint,
      where: hit.where,
    };
    tracked.deny(rule, reason, 'critical');
  }
  recordFinding(
    ctx,
    tracked,
    hit.kind === 'placeholder' ? 'high' : 'critical',
    hit.kind === 'placeholder' ? 'detect.credential-misuse' : 'detect.honeytoken',
    finding,
  );
  return { rule, reason };
}
