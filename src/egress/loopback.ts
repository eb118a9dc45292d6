import type { Socket } from 'node:net';
import { decideTarget } from './decide-egress.ts';
import { inCidr } from './ip.ts';
import { Tracked, type Ctx } from './context.ts';
import type { EgressRules } from './rules.ts';
import { runTunnel } from './http.ts';

// Host-loopback grants: a model server (Ollama, vLLM, LiteLLM…) or dev server on the host's
// 127.0.0.1. Inside the sandbox, 127.0.0.1 is the sandbox's own loopback and NO_PROXY
// sends clients straight to it, so the proxy alone never reaches the host. For each port
// an allowCidrs rule (or --allow-host 127.0.0.1:PORT) grants on 127.0.0.1 by name, the
// sandbox gets a listener on its own 127.0.0.1:PORT that leads to the gateway, which
// decides, records and connects to the host's 127.0.0.1:PORT. Plain HTTP on it is parsed
// per request like proxied HTTP (path rules, brokered credentials, scanning).

export const HOST_LOOPBACK = '127.0.0.1';
/** Ports the sandbox side already uses for its own bridges and resolver. */
const SANDBOX_RESERVED = (p: number) => p === 53 || p === 3128 || p === 3180 || p === 3443 || (p >= 41000 && p < 41064);
const MAX_PORTS = 16;

export interface LoopbackGrant {
  port: number;
  rule: string;
  usable: boolean;
  why?: string;
}

/** Ports granted on the host loopback by a rule that names them (default ports never count). */
export function hostLoopbackGrants(rules: EgressRules): LoopbackGrant[] {
  const out = new Map<number, LoopbackGrant>();
  for (const r of rules.allowCidrs) {
    if (!r.explicitPorts || !inCidr(HOST_LOOPBACK, r.cidr)) continue;
    for (const port of r.ports ?? []) {
      if (out.has(port)) continue;
      const why = SANDBOX_RESERVED(port)
        ? `port ${port} is used inside the sandbox by Airlock itself`
        : out.size >= MAX_PORTS
          ? `more than ${MAX_PORTS} host-loopback ports`
          : undefined;
      out.set(port, { port, rule: r.id, usable: !why, ...(why ? { why } : {}) });
    }
  }
  return [...out.values()];
}

export function hostLoopbackSocketPath(unixPath: string, port: number): string {
  return `${unixPath}.loopback.${port}`;
}

/** A connection the sandbox made to its own 127.0.0.1:port, bound for the host's. */
export async function onHostLoopback(ctx: Ctx, client: Socket, port: number): Promise<void> {
  const t = new Tracked(ctx, { protocol: 'host-loopback', host: HOST_LOOPBACK, port });
  ctx.stats.requests++;
  const close = (rule: string, reason: string) => {
    t.deny(rule, reason);
    client.destroy();
  };
  const hit = ctx.limits.admit();
  if (hit) return close(hit.rule, hit.reason);
  t.decided = { host: HOST_LOOPBACK, port, tunnel: true };
  const d = decideTarget(ctx.rules, t.decided);
  Object.assign(t.info, { address: d.address, range: d.range });
  if (d.action !== 'allow' || !d.address) return close(d.rule, d.reason);
  await runTunnel(ctx, client, Buffer.alloc(0), t, d, {
    ready: () => undefined,
    failed: () => {
      client.destroy();
    },
    auditFailed: (why) => close('builtin.audit-failed', why),
  });
}
