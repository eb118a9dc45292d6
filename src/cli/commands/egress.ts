import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AirlockError, ExitCode } from '../../common/errors.ts';
import { readPolicyFile, resolvePolicy, type PolicySource } from '../../policy/index.ts';
import { orgPolicyPath, REPO_POLICY_FILE } from '../../session/index.ts';
import { compileEgress, resolveAndDecide, mapResolver, systemResolver, splitAuthority, type Resolver, type TargetQuery } from '../../egress/index.ts';
import { printJson, ok, bad, table } from '../output.ts';
import { setExit } from '../main.ts';

// `airlock egress check`: the gateway's own decision for each target, offline (names are
// resolved, nothing is connected), so a policy can be tested before use and in CI.
// Exit status: 0 when every target is allowed, 77 (DENIED) when any is denied,
// 64 for a malformed target or option, 65 for an invalid policy.

function parseTarget(raw: string): TargetQuery & { target: string; refused?: string } {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) {
    let u: URL;
    try { u = new URL(raw); } catch { throw new AirlockError('USAGE', `not a URL: ${raw}`, 'write a URL (https://host/path) or HOST:PORT'); }
    const scheme = u.protocol.replace(/:$/, '').toLowerCase();
    if (scheme !== 'http' && scheme !== 'https') throw new AirlockError('USAGE', `unsupported scheme ${scheme} in ${raw}`, 'use http:// or https:// URLs, or HOST:PORT for a tunnel');
    // the gateway refuses userinfo in a request URI (allowed.com@evil.com); show that denial
    if (u.username || u.password || /^[a-z]+:\/\/[^/?#]*@/i.test(raw)) return { target: raw, host: u.hostname, port: 0, refused: 'userinfo in the request URI' };
    const port = u.port ? Number(u.port) : scheme === 'http' ? 80 : 443;
    return scheme === 'http'
      ? { target: raw, host: u.hostname, port, scheme: 'http', method: 'GET', path: u.pathname }
      : { target: raw, host: u.hostname, port, scheme: 'https' };
  }
  try {
    const a = splitAuthority(raw);
    return { target: raw, host: a.host, port: a.port };
  } catch (e) {
    throw new AirlockError('USAGE', `bad target ${JSON.stringify(raw)}: ${e instanceof Error ? e.message : e}`, 'write a URL (https://host/path) or HOST:PORT ([::1]:443 for IPv6)');
  }
}

function buildResolver(values: string[]): Resolver {
  if (!values.length) return systemResolver();
  const map: Record<string, string[]> = {};
  for (const v of values) {
    const i = v.indexOf('=');
    if (i <= 0 || i === v.length - 1) throw new AirlockError('USAGE', `--resolve ${JSON.stringify(v)} is not HOST=IP`, "write --resolve api.example.com=203.0.113.5 (repeat for more addresses), or --resolve '*=IP' for every other name");
    const host = v.slice(0, i).toLowerCase();
    (map[host] ??= []).push(v.slice(i + 1));
  }
  try {
    return '*' in map ? mapResolver(map) : mapResolver(map, systemResolver());
  } catch (e) {
    throw new AirlockError('USAGE', `--resolve: ${e instanceof Error ? e.message : e}`, 'each --resolve value is HOST=IP with an IPv4 or IPv6 address');
  }
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerEgress(program: Command): void {
  const egress = program.command('egress').description('Egress gateway tools');
  egress.command('check')
    .description('Show the decision and deciding rule for each URL or HOST:PORT under a policy, without connecting. Exit 0: all allowed; 77: some denied; 64: bad input; 65: invalid policy.')
    .argument('<targets...>', 'URLs (http://host/path, https://host) or HOST:PORT (a CONNECT/SOCKS tunnel)')
    .option('--policy <file>', 'repo policy file (default: airlock.yaml in the current directory when present; without any policy nothing is allowed)')
    .option('--org-policy <file>', 'org policy (default: AIRLOCK_ORG_POLICY or /etc/airlock/policy.yaml when present)')
    .option('--allow-host <host[:port]>', 'per-run grant, as `airlock run --allow-host` (repeatable)', collect, [])
    .option('--resolve <host=ip>', "simulate resolution (repeatable; '*=IP' answers every other name; otherwise the system resolver answers the rest)", collect, [])
    .option('--json', 'machine-readable output')
    .action(async (targets: string[], o: { policy?: string; orgPolicy?: string; allowHost: string[]; resolve: string[]; json?: boolean }, cmd: Command) => {
      const sources: PolicySource[] = [];
      const org = orgPolicyPath({ orgPolicy: o.orgPolicy });
      if (org) sources.push(readPolicyFile(org, 'org'));
      const repo = o.policy ?? (existsSync(join(process.cwd(), REPO_POLICY_FILE)) ? join(process.cwd(), REPO_POLICY_FILE) : undefined);
      if (repo) sources.push(readPolicyFile(repo, 'repo'));
      const { policy } = resolvePolicy(sources);
      const rules = compileEgress(policy.egress, o.allowHost);
      const resolver = buildResolver(o.resolve);
      const queries = targets.map(parseTarget);
      const results = [];
      for (const q of queries) {
        const d = q.refused
          ? { action: 'deny', rule: 'builtin.bad-target', reason: q.refused, host: q.host, port: q.port, address: undefined, range: undefined }
          : await resolveAndDecide(rules, q, resolver);
        results.push({
          target: q.target, decision: d.action, rule: d.rule, reason: d.reason, host: d.host, port: d.port,
          scheme: q.scheme ?? 'tunnel', address: d.address ?? null, range: d.range ?? null,
        });
      }
      const denied = results.some((r) => r.decision !== 'allow');
      if (o.json) printJson({ policy: sources.map((s) => s.origin), allowed: !denied, results });
      else {
        process.stdout.write(table(results.map((r) => [r.target, r.decision === 'allow' ? ok('allow') : bad('deny'), r.rule, r.reason]), ['TARGET', 'DECISION', 'RULE', 'REASON']) + '\n');
        if (!sources.length) process.stdout.write('(no policy file: only --allow-host grants apply)\n');
      }
      setExit(cmd, denied ? ExitCode.DENIED : ExitCode.OK);
    });
}
