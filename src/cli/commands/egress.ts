import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AirlockError, ExitCode } from '../../common/index.ts';
import { readPolicyFile, resolvePolicy, type PolicySource } from '../../policy/index.ts';
import { orgPolicyPath, REPO_POLICY_FILE } from '../../session/index.ts';
import {
  compileEgress,
  resolveAndDecide,
  mapResolver,
  systemResolver,
  splitAuthority,
  requestPath,
  type Resolver,
  type TargetQuery,
} from '../../egress/index.ts';
import { printJson, ok, bad, table, setExit } from '../output.ts';

// `airlock egress check`: the gateway's own decision for each target, offline (names are
// resolved, nothing is connected), so a policy can be tested before use and in CI.
// Every target gets a decision (one the gateway cannot parse is a deny naming
// builtin.bad-target). Exit status: 0 when every target is allowed, 77 (DENIED) when any
// is denied, 64 for a malformed option, 65 for an invalid policy.

type Parsed = TargetQuery & { target: string; refused?: { rule: string; reason: string }; note?: string };

/** Ports and protocols of URL schemes that travel as a CONNECT/SOCKS tunnel. */
const TUNNEL_SCHEMES: Record<string, { port: number; scheme: 'https' | 'tcp' }> = {
  https: { port: 443, scheme: 'https' },
  wss: { port: 443, scheme: 'https' },
  ssh: { port: 22, scheme: 'tcp' },
  git: { port: 9418, scheme: 'tcp' },
};

function refusedTarget(raw: string, rule: string, reason: string): Parsed {
  return { target: raw, host: raw, port: 0, refused: { rule, reason } };
}

/**
 * A target as the live gateway would see it on the wire. Never throws: what the gateway
 * would refuse to parse is a denial naming builtin.bad-target, like the gateway's own.
 * Userinfo is not part of the destination: clients send it as credentials (inside TLS for
 * https), so `https://user:tok@github.com/` is a CONNECT to github.com:443.
 */
function parseTarget(raw: string): Parsed {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(raw);
  if (m) {
    let target: URL;
    try {
      target = new URL(raw);
    } catch {
      return refusedTarget(raw, 'builtin.bad-target', `unparseable URL ${raw.slice(0, 200)}`);
    }
    const scheme = m[1]!.toLowerCase();
    const note =
      target.username || target.password ? 'userinfo is sent as credentials, not to another host' : undefined;
    const host = target.hostname;
    if (scheme === 'http') {
      const rest = raw.slice(m[0].length);
      const cut = rest.search(/[/?#]/);
      const origin = cut < 0 ? '/' : rest[cut] === '/' ? rest.slice(cut) : `/${rest.slice(cut)}`;
      let path: string;
      try {
        path = requestPath(origin).match;
      } catch (e) {
        return {
          ...refusedTarget(
            raw,
            'builtin.ambiguous-path',
            `${e instanceof Error ? e.message : e}: the upstream could read another path than the one decided`,
          ),
          host,
        };
      }
      return {
        target: raw,
        host,
        port: target.port ? Number(target.port) : 80,
        scheme: 'http',
        method: 'GET',
        path,
        note,
      };
    }
    const tun = TUNNEL_SCHEMES[scheme];
    if (!tun)
      return refusedTarget(
        raw,
        'builtin.bad-target',
        `the gateway carries http:// requests and CONNECT/SOCKS tunnels (https, ssh, git…), not ${scheme}://`,
      );
    return {
      target: raw,
      host,
      port: target.port ? Number(target.port) : tun.port,
      scheme: tun.scheme,
      tunnel: true,
      note,
    };
  }
  try {
    const a = splitAuthority(raw);
    return { target: raw, host: a.host, port: a.port, tunnel: true };
  } catch (e) {
    return refusedTarget(raw, 'builtin.bad-target', `bad CONNECT target: ${e instanceof Error ? e.message : e}`);
  }
}

function buildResolver(values: string[]): Resolver {
  if (!values.length) return systemResolver();
  const map: Record<string, string[]> = {};
  for (const v of values) {
    const i = v.indexOf('=');
    if (i <= 0 || i === v.length - 1)
      throw new AirlockError(
        'USAGE',
        `--resolve ${JSON.stringify(v)} is not HOST=IP`,
        "write --resolve api.example.com=203.0.113.5 (repeat for more addresses), or --resolve '*=IP' for every other name",
      );
    const host = v.slice(0, i).toLowerCase();
    (map[host] ??= []).push(v.slice(i + 1));
  }
  try {
    return '*' in map ? mapResolver(map) : mapResolver(map, systemResolver());
  } catch (e) {
    throw new AirlockError(
      'USAGE',
      `--resolve: ${e instanceof Error ? e.message : e}`,
      'each --resolve value is HOST=IP with an IPv4 or IPv6 address',
    );
  }
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerEgress(program: Command): void {
  const egress = program.command('egress').description('Egress gateway tools');
  egress
    .command('check')
    .description(
      'Show the decision and deciding rule for each URL or HOST:PORT under a policy, without connecting. Every target gets a decision (unparseable ones are denied, as the gateway would). Exit 0: all allowed; 77: some denied; 64: bad option; 65: invalid policy.',
    )
    .argument(
      '<targets...>',
      'URLs (http://host/path; https://, wss://, ssh://, git:// are tunnels) or HOST:PORT (a CONNECT/SOCKS tunnel)',
    )
    .option(
      '--policy <file>',
      'repo policy file (default: airlock.yaml in the current directory when present; without any policy nothing is allowed)',
    )
    .option('--org-policy <file>', 'org policy (default: AIRLOCK_ORG_POLICY or /etc/airlock/policy.yaml when present)')
    .option('--allow-host <host[:port]>', 'per-run grant, as `airlock run --allow-host` (repeatable)', collect, [])
    .option(
      '--resolve <host=ip>',
      "simulate resolution (repeatable; '*=IP' answers every other name; otherwise the system resolver answers the rest)",
      collect,
      [],
    )
    .option('--json', 'machine-readable output')
    .action(
      async (
        targets: string[],
        options: { policy?: string; orgPolicy?: string; allowHost: string[]; resolve: string[]; json?: boolean },
        cmd: Command,
      ) => {
        const sources: PolicySource[] = [];
        const org = orgPolicyPath({ orgPolicy: options.orgPolicy });
        if (org) sources.push(readPolicyFile(org, 'org'));
        const repo =
          options.policy ??
          (existsSync(join(process.cwd(), REPO_POLICY_FILE)) ? join(process.cwd(), REPO_POLICY_FILE) : undefined);
        if (repo) sources.push(readPolicyFile(repo, 'repo'));
        const { policy } = resolvePolicy(sources);
        const rules = compileEgress(policy.egress, options.allowHost);
        const resolver = buildResolver(options.resolve);
        const queries = targets.map(parseTarget);
        const results = [];
        for (const q of queries) {
          const d = q.refused
            ? {
                action: 'deny',
                rule: q.refused.rule,
                reason: q.refused.reason,
                host: q.host,
                port: q.port,
                address: undefined,
                range: undefined,
              }
            : await resolveAndDecide(rules, q, resolver);
          results.push({
            target: q.target,
            decision: d.action,
            rule: d.rule,
            reason: q.note ? `${d.reason} (${q.note})` : d.reason,
            host: d.host,
            port: d.port,
            scheme: q.scheme ?? 'tunnel',
            address: d.address ?? null,
            range: d.range ?? null,
          });
        }
        const denied = results.some((r) => r.decision !== 'allow');
        if (options.json) printJson({ policy: sources.map((s) => s.origin), allowed: !denied, results });
        else {
          process.stdout.write(
            table(
              results.map((r) => [r.target, r.decision === 'allow' ? ok('allow') : bad('deny'), r.rule, r.reason]),
              ['TARGET', 'DECISION', 'RULE', 'REASON'],
            ) + '\n',
          );
          if (!sources.length) process.stdout.write('(no policy file: only --allow-host grants apply)\n');
        }
        setExit(cmd, denied ? ExitCode.DENIED : ExitCode.OK);
      },
    );
}
