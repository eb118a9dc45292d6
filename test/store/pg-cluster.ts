// A real PostgreSQL 15 cluster for a test file: initdb in a temp dir, started on a unix
// socket in that dir (and over TCP only on the addresses a test gives: its hosts' links), stopped and removed by stop(). As root, initdb and pg_ctl
// must run as `postgres` on a directory it owns. Local connections are trusted (a test
// cluster); what the roles may do is enforced by grants and triggers, which the tests check.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

const BIN = '/usr/lib/postgresql/15/bin';

function asOwner(cmd: string, args: string[]): string {
  const quoted = [join(BIN, cmd), ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  const r =
    process.getuid?.() === 0
      ? spawnSync('su', ['postgres', '-s', '/bin/sh', '-c', quoted], { encoding: 'utf8', timeout: 60_000 })
      : spawnSync(join(BIN, cmd), args, { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

export class PgCluster {
  readonly dir: string;
  readonly data: string;
  /** names the socket file; with `tcp`, also the TCP port on those addresses */
  port = 5432;
  durable = false;
  /** addresses it also listens on over TCP (hosts in network namespaces reach it there); none by default */
  tcp: string[] = [];

  private constructor(dir: string) {
    this.dir = dir;
    this.data = join(dir, 'data');
  }

  /**
   * `durable`: fsync on (what a benchmark must measure); tests run with fsync off. `tcp`: also
   * listen on these addresses (on a free port), trusting clients of `clients` (a CIDR).
   */
  static async create(
    opts: { durable?: boolean; tcp?: { addresses: string[]; clients: string } } = {},
  ): Promise<PgCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-pg-'));
    if (process.getuid?.() === 0) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
      chownSync(dir, uid, gid);
    }
    const c = new PgCluster(dir);
    c.durable = opts.durable ?? false;
    asOwner('initdb', ['-D', c.data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    if (opts.tcp) {
      c.tcp = opts.tcp.addresses;
      c.port = await freePort();
      appendFileSync(join(c.data, 'pg_hba.conf'), `host all all ${opts.tcp.clients} trust\n`);
    }
    await c.start();
    return c;
  }

  /** Connection string for `user` over TCP to `address` (one of `tcp`). */
  tcpUrl(address: string, user = 'postgres', db = 'postgres'): string {
    return `postgres://${encodeURIComponent(user)}@${address}:${this.port}/${db}`;
  }

  /** Connection string for `user` over the unix socket. */
  url(user = 'postgres', db = 'postgres'): string {
    return `postgres://${encodeURIComponent(user)}@/${db}?host=${encodeURIComponent(this.dir)}&port=${this.port}`;
  }

  async start(): Promise<void> {
    asOwner('pg_ctl', [
      '-D',
      this.data,
      '-l',
      join(this.dir, 'log'),
      '-w',
      '-t',
      '60',
      '-o',
      `-c listen_addresses=${this.tcp.join(',')} -c unix_socket_directories=${this.dir} -p ${this.port} -c fsync=${this.durable ? 'on' : 'off'} -c max_connections=60`,
      'start',
    ]);
  }

  /** Stops the server (fast: open connections are terminated, as in a real outage). */
  async stopServer(): Promise<void> {
    asOwner('pg_ctl', ['-D', this.data, '-w', '-t', '60', '-m', 'fast', 'stop']);
  }

  async sql<T extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    params: unknown[] = [],
    user = 'postgres',
  ): Promise<T[]> {
    const c = new pg.Client({ connectionString: this.url(user) });
    await c.connect();
    try {
      return (await c.query<T>(text, params)).rows;
    } finally {
      await c.end();
    }
  }

  /** Stops the server if it runs and removes the cluster. */
  async stop(): Promise<void> {
    if (existsSync(join(this.data, 'postmaster.pid'))) {
      try {
        asOwner('pg_ctl', ['-D', this.data, '-w', '-t', '60', '-m', 'immediate', 'stop']);
      } catch {
        /* already stopped */
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A port nothing listens on now (PostgreSQL binds it on the addresses it is given). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A cluster at the latest schema with a login role `host_writer` in airlock_writer, for a test file. */
export async function sharedStoreCluster(opts: Parameters<typeof PgCluster.create>[0] = {}): Promise<PgCluster> {
  const { migratePg } = await import('../../src/store/index.ts');
  const cluster = await PgCluster.create(opts);
  const c = new pg.Client({ connectionString: cluster.url() });
  await c.connect();
  try {
    await migratePg(c, 'test');
    await c.query('CREATE ROLE host_writer LOGIN IN ROLE airlock_writer');
  } finally {
    await c.end();
  }
  return cluster;
}

export interface Proc {
  p: ChildProcess;
  out: () => string;
  done: Promise<number | null>;
}

/** The processes a test file starts (hosts' shippers and sessions); killAll() in its after-hook. */
export class Procs {
  private live = new Set<ChildProcess>();

  start(cmd: string, args: string[], env: NodeJS.ProcessEnv): Proc {
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.live.add(p);
    let out = '';
    p.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.stderr!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const done = new Promise<number | null>((resolve) =>
      p.on('exit', (code) => {
        this.live.delete(p);
        resolve(code);
      }),
    );
    return { p, out: () => out, done };
  }

  killAll(): void {
    for (const p of this.live) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  }

  /** Kills every live process and waits (bounded) until each has exited. */
  async stopAll(): Promise<void> {
    const exits = [...this.live].map((p) => new Promise((resolve) => p.once('exit', resolve)));
    this.killAll();
    await Promise.race([Promise.all(exits), new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
  }
}
