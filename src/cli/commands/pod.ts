import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { AirlockError } from '../../common/index.ts';
import { setExit } from '../output.ts';
import {
  podCapture,
  podExec,
  podKill,
  podRestore,
  podSupervise,
  startPodGateway,
  POD_CREDENTIALS_DIR,
  POD_GATEWAY_PORT,
  POD_POLICY_FILE,
  POD_SHARED_DIR,
} from '../../pod/index.ts';

// `airlock pod …`: the processes of a session pod on Kubernetes (the SandboxTemplate names
// them). Not for people: the kubernetes driver runs the single steps over Kubernetes exec
// (protocol in src/pod/protocol.ts).

async function finish(cmd: Command, status: Promise<number> | number): Promise<void> {
  setExit(cmd, await status);
}

function parseListen(v: string): { host: string; port: number } {
  const m = /^(127\.0\.0\.1|\[::1\]|localhost):(\d{1,5})$/.exec(v);
  if (!m || Number(m[2]) > 65535)
    throw new AirlockError('USAGE', `--listen ${v}: not a loopback address`, 'use --listen 127.0.0.1:PORT');
  return { host: m[1] === '[::1]' ? '::1' : m[1]!, port: Number(m[2]) };
}

interface GatewayFlags {
  listen: string;
  policy: string;
  credentials: string;
  home: string;
  session?: string;
  database?: string;
  shared: string;
}

async function runGateway(o: GatewayFlags): Promise<void> {
  const gw = await startPodGateway({
    session: o.session ?? hostname(),
    listen: parseListen(o.listen),
    policyFile: o.policy,
    credentialsDir: o.credentials,
    home: o.home,
    databaseUrl: o.database,
    // a template without the shared volume: the agent's commands get the host's placeholders (not swapped)
    sharedDir: existsSync(o.shared) ? o.shared : undefined,
  });
  process.stdout.write(`airlock pod gateway: listening on ${gw.gateway.address}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      void gw.close().finally(resolve);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

export function registerPod(program: Command): void {
  const pod = program
    .command('pod')
    .description('The processes of a session pod on Kubernetes (run by the cluster and the kubernetes driver)');
  pod
    .command('supervise')
    .description("The agent container's init: holds the pod until the session ends")
    .action((_o: unknown, cmd: Command) => finish(cmd, podSupervise()));
  pod
    .command('gateway')
    .description("The gateway sidecar: the session's egress gateway on the pod's loopback")
    .option('--listen <addr>', 'loopback address to listen on', `127.0.0.1:${POD_GATEWAY_PORT}`)
    .option('--policy <file>', 'the effective policy (mounted)', POD_POLICY_FILE)
    .option('--credentials <dir>', 'brokered credentials, one file per variable (mounted Secret)', POD_CREDENTIALS_DIR)
    .option('--home <dir>', "the gateway's data (CA, audit store)", '/run/airlock/gateway')
    .option('--session <id>', 'session id recorded with events (default: the pod name)')
    .option(
      '--database <url>',
      "shared store to ship events to (default: AIRLOCK_DATABASE_URL, else the policy's telemetry.sharedStore)",
    )
    .option('--shared <dir>', "where the agent container reads the gateway's placeholders and CA", POD_SHARED_DIR)
    .action((o: GatewayFlags) => runGateway(o));
  pod
    .command('exec <request>')
    .description('Run one command (request from the driver)')
    .action((r: string, _o: unknown, cmd: Command) => finish(cmd, podExec(r)));
  pod
    .command('restore')
    .description("Write the snapshot's tar (stdin) into the workspace")
    .action((_o: unknown, cmd: Command) => finish(cmd, podRestore()));
  pod
    .command('capture')
    .description('The workspace as a tar on stdout')
    .action((_o: unknown, cmd: Command) => finish(cmd, podCapture()));
  pod
    .command('kill')
    .description('Kill every process of the agent container but its init')
    .action((_o: unknown, cmd: Command) => finish(cmd, podKill()));
}
