// Hosts in network namespaces for the multi-host tests: each host is a namespace of its own with
// only loopback and one veth link to the test's namespace, where PostgreSQL listens on the
// link's address. A host's processes (`ip netns exec`) reach the shared store over that link
// and nothing else. Needs root (CAP_NET_ADMIN in the initial namespace); see privilegedSkip.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { isRoot, privilegedSkip } from '../helpers.ts';

/** Why network namespaces cannot be made here (a failure in CI), or false. */
export function netnsUnavailable(): string | false {
  if (!isRoot) return privilegedSkip('network namespaces (ip netns) need root');
  const probe = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return probe.status === 0 ? false : privilegedSkip(`ip netns does not work here: ${probe.stderr}`);
}

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr}`);
}

/** A /30 in 100.100.0.0/16 (shared address space, unused here) that no interface of this machine holds yet. */
function freeSubnet(): [string, string] {
  const held = spawnSync('ip', ['-o', '-4', 'addr'], { encoding: 'utf8' }).stdout;
  for (let i = 0; i < 50; i++) {
    const [x, y] = [...randomBytes(2)];
    const base = `100.100.${x}.${y! & 0xfc}`;
    const prefix = base.slice(0, base.lastIndexOf('.') + 1);
    const last = Number(base.slice(base.lastIndexOf('.') + 1));
    const pair: [string, string] = [`${prefix}${last + 1}`, `${prefix}${last + 2}`];
    if (!pair.some((a) => held.includes(`inet ${a}/`))) return pair;
  }
  throw new Error('no free /30 in 100.100.0.0/16');
}

export class HostNetns {
  readonly name: string;
  /** the address of the test's end of the link (where PostgreSQL listens for this host) */
  readonly outside: string;
  /** this host's address */
  readonly inside: string;
  private readonly veth: string;

  private constructor(tag: string, outside: string, inside: string) {
    this.name = `airlock-t-${tag}`;
    this.veth = `alh${tag}`;
    this.outside = outside;
    this.inside = inside;
  }

  /** Creates the namespace and its link, and records it in the suite's ledger (the global hook checks it is gone). */
  static create(): HostNetns {
    const [outside, inside] = freeSubnet();
    const ns = new HostNetns(randomBytes(4).toString('hex'), outside, inside);
    if (process.env.AIRLOCK_TEST_LEDGER)
      appendFileSync(
        process.env.AIRLOCK_TEST_LEDGER,
        JSON.stringify({ markers: [], namespaces: [], netns: [ns.name] }) + '\n',
      );
    ip(['netns', 'add', ns.name]);
    try {
      const peer = `aln${ns.veth.slice(3)}`;
      ip(['link', 'add', ns.veth, 'type', 'veth', 'peer', 'name', peer]);
      ip(['link', 'set', peer, 'netns', ns.name]);
      ip(['addr', 'add', `${outside}/30`, 'dev', ns.veth]);
      ip(['link', 'set', ns.veth, 'up']);
      ip(['-n', ns.name, 'addr', 'add', `${inside}/30`, 'dev', peer]);
      ip(['-n', ns.name, 'link', 'set', peer, 'up']);
      ip(['-n', ns.name, 'link', 'set', 'lo', 'up']);
    } catch (e) {
      ns.remove();
      throw e;
    }
    return ns;
  }

  /** argv that runs `cmd args` inside the namespace. */
  argv(cmd: string, args: string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', this.name, cmd, ...args]];
  }

  spawnSync(cmd: string, args: string[], env: NodeJS.ProcessEnv) {
    const [c, a] = this.argv(cmd, args);
    return spawnSync(c, a, { env, encoding: 'utf8', timeout: 60_000 });
  }

  spawn(cmd: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
    const [c, a] = this.argv(cmd, args);
    return spawn(c, a, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Deletes the namespace (its end of the link goes with it, and so does ours). */
  remove(): void {
    spawnSync('ip', ['netns', 'del', this.name]);
    spawnSync('ip', ['link', 'del', this.veth]);
  }
}
