import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';

// A real rsyslogd (Debian packages rsyslog + rsyslog-gnutls + rsyslog-relp) on loopback with
// its own config, work dir and pid file; never the system instance. It listens with imtcp
// (plain or TLS) or imrelp, and writes each received message twice: the raw RFC 5424
// message and its parsed parts (msgid, SD, msg).

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}

export interface TestCa {
  dir: string;
  ca: string;
  cert: string;
  key: string;
  clientCert: string;
  clientKey: string;
}

/** Test CA, a server certificate for 127.0.0.1/localhost and a client certificate, made with the openssl CLI. */
export function makeTestCa(dir: string): TestCa {
  mkdirSync(dir, { recursive: true });
  const f = (n: string) => join(dir, n);
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=Airlock Test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  run([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    f('server.key'),
    '-out',
    f('server.csr'),
    '-subj',
    '/CN=localhost',
  ]);
  writeFileSync(
    f('ext.cnf'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n',
  );
  run([
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('server.pem'),
    '-days',
    '2',
    '-extfile',
    f('ext.cnf'),
  ]);
  run([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    f('client.key'),
    '-out',
    f('client.csr'),
    '-subj',
    '/CN=airlock-client',
  ]);
  writeFileSync(
    f('client.cnf'),
    'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n',
  );
  run([
    'x509',
    '-req',
    '-in',
    f('client.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('client.pem'),
    '-days',
    '2',
    '-extfile',
    f('client.cnf'),
  ]);
  return {
    dir,
    ca: f('ca.pem'),
    cert: f('server.pem'),
    key: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
  };
}

export class Rsyslog {
  readonly dir: string;
  readonly port: number;
  readonly rawFile: string;
  readonly parsedFile: string;
  private proc: ChildProcess | undefined;
  private conf: string;

  constructor(dir: string, port: number, tls?: TestCa, input: 'imtcp' | 'imrelp' = 'imtcp') {
    this.dir = dir;
    this.port = port;
    mkdirSync(join(dir, 'work'), { recursive: true });
    this.rawFile = join(dir, 'raw.log');
    this.parsedFile = join(dir, 'parsed.log');
    this.conf = join(dir, 'rsyslog.conf');
    const relpTls = tls
      ? ` tls="on" tls.cacert="${tls.ca}" tls.mycert="${tls.cert}" tls.myprivkey="${tls.key}" tls.authmode="certvalid"`
      : ''; // librelp's x509 mode wants a client certificate
    const g =
      input === 'imrelp'
        ? `global(workDirectory="${dir}/work" maxMessageSize="256k")
module(load="imrelp")
input(type="imrelp" port="${port}" address="127.0.0.1" ruleset="airlock"${relpTls})`
        : tls
          ? `global(workDirectory="${dir}/work" maxMessageSize="256k" DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="${tls.ca}" DefaultNetstreamDriverCertFile="${tls.cert}" DefaultNetstreamDriverKeyFile="${tls.key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" port="${port}" address="127.0.0.1" ruleset="airlock")`
          : `global(workDirectory="${dir}/work" maxMessageSize="256k")
module(load="imtcp")
input(type="imtcp" port="${port}" address="127.0.0.1" ruleset="airlock")`;
    writeFileSync(
      this.conf,
      `${g}
template(name="raw" type="string" string="%rawmsg%\\n")
template(name="parsed" type="list") { property(name="msgid") constant(value="\\t") property(name="app-name") constant(value="\\t") property(name="syslogseverity") constant(value="\\t") property(name="structured-data") constant(value="\\t") property(name="msg" droplastlf="on") constant(value="\\n") }
ruleset(name="airlock") {
  action(type="omfile" file="${this.rawFile}" template="raw")
  action(type="omfile" file="${this.parsedFile}" template="parsed")
}
`,
    );
  }

  async start(): Promise<void> {
    this.proc = spawn('rsyslogd', ['-n', '-f', this.conf, '-i', join(this.dir, 'rsyslogd.pid')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    this.proc.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
    });
    for (let i = 0; i < 200; i++) {
      // up to ~10 s
      if (this.proc.exitCode !== null) throw new Error(`rsyslogd exited: ${err}`);
      if (
        await new Promise<boolean>((r) => {
          const s = connect(this.port, '127.0.0.1', () => {
            s.destroy();
            r(true);
          });
          s.on('error', () => r(false));
        })
      )
        return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`rsyslogd did not listen on ${this.port}: ${err}`);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    // the fallback timer is cleared: a pending 10 s timer kept every test file alive 10 s longer
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      exited,
      new Promise((r) => {
        timer = setTimeout(r, 10_000);
      }),
    ]);
    clearTimeout(timer);
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGKILL');
      await exited;
    }
  }

  lines(which: 'raw' | 'parsed' = 'raw'): string[] {
    const f = which === 'raw' ? this.rawFile : this.parsedFile;
    if (!existsSync(f)) return [];
    return readFileSync(f, 'utf8')
      .split('\n')
      .filter((l) => l.length > 0);
  }

  /** Waits (bounded) until at least n messages were written. */
  async waitFor(n: number, timeoutMs = 60_000): Promise<string[]> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const l = this.lines();
      if (l.length >= n || Date.now() > end) return l;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
