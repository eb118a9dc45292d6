import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { AuditStore, type AuditEvent } from '../audit/index.ts';
import { AirlockError, ensureHome } from '../common/index.ts';
import { redactText } from '../secrets/index.ts';
import { Session, type OpenSessionOptions, type StopResult } from '../session/index.ts';
import { SANDBOX_WORKSPACE } from '../sandbox/index.ts';
import * as review from '../review/index.ts';
import { applyWorkspacePatch } from './patch.ts';
import {
  listWorkspace,
  PathDenied,
  readWorkspaceFile,
  runCaptured,
  workspacePath,
  writeWorkspaceFile,
} from './workspace-fs.ts';

// The MCP server: a session's tools for an MCP client (agent framework, IDE) that has no
// shell of its own. Every call goes through the session (so the command policy applies),
// is recorded as an `mcp.call` audit event naming the deciding rule, and returns output
// redacted by the secrets engine. A refused call is a tool error (isError) naming the rule.

export const MCP_TOOLS = [
  'run_command',
  'read_file',
  'write_file',
  'apply_patch',
  'list_files',
  'propose_change',
] as const;
export type McpToolName = (typeof MCP_TOOLS)[number];

export interface AirlockMcpOptions {
  /** Options for the session the server opens (repo, policy…); ignored when `session` is given. */
  open?: OpenSessionOptions;
  /** Use an already open session instead (the caller owns it). */
  session?: Session;
  /** Audit store for the session the server opens (default: AIRLOCK_HOME's). */
  store?: AuditStore;
  /** Called with every audit event of the session the server opens. */
  onEvent?: (e: AuditEvent) => void;
}

export interface AirlockMcp {
  server: McpServer;
  /** The session (opened on first use when the server opens it). */
  session(): Promise<Session>;
  /** Stops the session (captures its result) and closes what the server opened. */
  close(reason?: string): Promise<StopResult | null>;
}

type ToolResult = { content: { type: 'text'; text: string }[]; isError?: boolean };

const CMD_RULE = /^command denied by (\S+): /;

async function redact(s: string): Promise<string> {
  return s ? (await redactText(s)).text : s;
}

function clip(s: string, n = 200): string {
  return s.length > n ? s.slice(0, n) + '…' : s;
}

type ToolOutcome = { text: string; rule: string; extra?: Record<string, unknown>; isError?: boolean };
type ToolArgs = Record<string, unknown>;
type ToolBody = (s: Session, a: ToolArgs) => Promise<ToolOutcome>;
type Handle = (
  tool: McpToolName,
  summarize: (a: ToolArgs) => Promise<ToolArgs>,
  fn: ToolBody,
) => (a: ToolArgs) => Promise<ToolResult>;

/** One server's state: its session (opened on first use), the rule of its last command, whether it was stopped. */
interface McpState {
  opts: AirlockMcpOptions;
  lastCommandRule: string | null;
  ownStore: AuditStore | null;
  opened: Promise<Session> | null;
  stopped: StopResult | null;
}

/** Creates the MCP server over a session. Connect it to a transport (stdio in `airlock mcp`). */
export function createAirlockMcpServer(opts: AirlockMcpOptions = {}): AirlockMcp {
  const server = new McpServer(
    { name: 'airlock', version: '0.1.0' },
    {
      instructions: `Tools run inside an Airlock sandbox on a copy of the repository at ${SANDBOX_WORKSPACE}. Paths are relative to it. Every call is checked against the policy and recorded. propose_change ends the session and submits the change for human review.`,
    },
  );
  const state: McpState = {
    opts,
    lastCommandRule: null,
    ownStore: null,
    opened: opts.session ? Promise.resolve(opts.session) : null,
    stopped: null,
  };
  const handle: Handle = (tool, summarize, fn) => (a) => callTool(state, tool, a, summarize, fn);
  registerWorkspaceTools(server, handle, state);
  registerProposeTool(server, handle, state);
  return {
    server,
    session: () => getSession(state),
    close: (reason = 'mcp client disconnected') => closeServer(server, state, reason),
  };
}

function getSession(state: McpState): Promise<Session> {
  const { opts } = state;
  if (!state.opened) {
    const home = ensureHome(opts.open?.home ?? process.env.AIRLOCK_HOME ?? undefined);
    state.ownStore = opts.store ?? new AuditStore(home.auditDb);
    state.opened = Session.open(
      {
        agent: 'mcp',
        command: ['airlock', 'mcp'],
        ...opts.open,
        onEvent: (e) => {
          if (e.type === 'command.exec' || e.type === 'command.denied') state.lastCommandRule = e.rule ?? null;
          opts.onEvent?.(e);
          opts.open?.onEvent?.(e);
        },
      },
      state.ownStore,
    );
  }
  return state.opened;
}

function recordCall(
  s: Session,
  tool: McpToolName,
  args: ToolArgs,
  decision: 'allow' | 'deny' | 'error',
  rule: string,
  extra: Record<string, unknown> = {},
): void {
  s.record({
    type: 'mcp.call',
    severity: decision === 'deny' ? 'medium' : 'info',
    decision: decision === 'error' ? undefined : decision,
    rule,
    data: { tool, args, ...extra },
  });
}

// One wrapper for every tool: session, audit record, redaction, errors as tool errors.
async function callTool(
  state: McpState,
  tool: McpToolName,
  toolArgs: ToolArgs,
  summarize: (a: ToolArgs) => Promise<ToolArgs>,
  fn: ToolBody,
): Promise<ToolResult> {
  let session: Session;
  try {
    session = await getSession(state);
  } catch (e) {
    return {
      isError: true,
      content: [
        {
          type: 'text',
          text: `airlock: the session could not be opened: ${e instanceof Error ? e.message : String(e)}`,
        },
      ],
    };
  }
  const args = await summarize(toolArgs);
  if (state.stopped || session.state === 'stopped' || session.state === 'stopping') {
    return {
      isError: true,
      content: [
        {
          type: 'text',
          text: `airlock: session ${session.id} has ended${state.stopped ? ' (propose_change was called)' : ''}; start a new one`,
        },
      ],
    };
  }
  state.lastCommandRule = null;
  try {
    const outcome = await fn(session, toolArgs);
    try {
      recordCall(session, tool, args, outcome.isError ? 'error' : 'allow', outcome.rule, outcome.extra);
    } catch {
      /* the caller's store closed with its session */
    }
    return {
      content: [{ type: 'text', text: await redact(outcome.text) }],
      ...(outcome.isError ? { isError: true } : {}),
    };
  } catch (e) {
    return refusedCall(state, session, tool, args, e);
  }
}

/** A tool that threw: a denial names its rule (path rule, or the command rule that refused), anything else is an error. */
async function refusedCall(
  state: McpState,
  session: Session,
  tool: McpToolName,
  args: ToolArgs,
  e: unknown,
): Promise<ToolResult> {
  const msg = e instanceof Error ? e.message : String(e);
  let rule = 'mcp.error';
  let denied = false;
  if (e instanceof PathDenied) {
    rule = e.rule;
    denied = true;
  } else if (e instanceof AirlockError && e.kind === 'DENIED') {
    rule = CMD_RULE.exec(msg)?.[1] ?? state.lastCommandRule ?? 'commands';
    denied = true;
  }
  try {
    recordCall(session, tool, args, denied ? 'deny' : 'error', rule, { error: clip(await redact(msg), 500) });
  } catch {
    /* store closed */
  }
  const hint = e instanceof AirlockError && e.hint ? `\nhint: ${e.hint}` : '';
  const text = denied ? `denied by ${rule}: ${msg}${hint}` : `error: ${msg}${hint}`;
  return { isError: true, content: [{ type: 'text', text: await redact(text) }] };
}

async function closeServer(server: McpServer, state: McpState, reason: string): Promise<StopResult | null> {
  let result: StopResult | null = state.stopped;
  if (state.opened && !state.opts.session) {
    try {
      const s = await state.opened;
      result = await s.stop(reason);
    } catch {
      /* open failed: nothing to stop */
    }
  }
  await server.close().catch(() => undefined);
  if (state.ownStore && !state.opts.store) {
    try {
      state.ownStore.close();
    } catch {
      /* closed */
    }
  }
  return result;
}

const pathArg = async (a: ToolArgs) => ({ path: clip(String(a.path ?? '')) });

/** The tools that work on the workspace: run_command, read_file, write_file, apply_patch, list_files. */
function registerWorkspaceTools(server: McpServer, handle: Handle, state: McpState): void {
  registerRunCommand(server, handle, state);
  registerFileTools(server, handle);
  registerTreeTools(server, handle);
}

function registerRunCommand(server: McpServer, handle: Handle, state: McpState): void {
  server.registerTool(
    'run_command',
    {
      title: 'Run a command in the sandbox',
      description: `Runs a command in the sandboxed workspace (${SANDBOX_WORKSPACE}) under the session's command policy. Give argv (preferred) or a shell command line. Returns exit status, stdout and stderr (secrets redacted).`,
      inputSchema: {
        argv: z.array(z.string()).min(1).max(4096).optional().describe('Program and arguments, e.g. ["npm","test"].'),
        command: z.string().min(1).max(65536).optional().describe('A shell command line, run with /bin/sh -c.'),
        cwd: z.string().optional().describe('Working directory inside the workspace (default /workspace).'),
        timeoutSeconds: z
          .number()
          .int()
          .min(1)
          .max(3600)
          .optional()
          .describe('Kill the command after this many seconds (default 600).'),
      },
    },
    handle(
      'run_command',
      async (a) => ({
        argv: a.argv ? await redact((a.argv as string[]).join(' ')).then((x) => clip(x, 500)) : null,
        command: a.command ? clip(await redact(String(a.command)), 500) : null,
        cwd: a.cwd ?? null,
      }),
      async (s, a) => {
        const argv = a.argv as string[] | undefined;
        const cmd = a.command as string | undefined;
        if (!argv === !cmd)
          throw new AirlockError(
            'USAGE',
            'give exactly one of argv or command',
            'argv: ["npm","test"] or command: "npm test"',
          );
        const cwd = a.cwd ? workspacePath(a.cwd) : undefined;
        const r = await runCaptured(s, argv ?? ['/bin/sh', '-c', cmd!], {
          cwd,
          via: 'mcp',
          timeoutMs: ((a.timeoutSeconds as number | undefined) ?? 600) * 1000,
        });
        const text = `exit status: ${r.status}${r.timedOut ? ' (killed: timeout)' : ''}${r.truncated ? ' (output truncated)' : ''}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
        return {
          text,
          rule: state.lastCommandRule ?? 'commands.default',
          extra: { status: r.status, timedOut: r.timedOut },
          isError: r.status !== 0,
        };
      },
    ),
  );
}

/** read_file and write_file: one workspace file each. */
function registerFileTools(server: McpServer, handle: Handle): void {
  server.registerTool(
    'read_file',
    {
      title: 'Read a workspace file',
      description:
        'Reads a file of the workspace (path relative to /workspace; symlinks leaving it are refused). Secrets are redacted.',
      inputSchema: { path: z.string().describe('File path, relative to /workspace.') },
    },
    handle('read_file', pathArg, async (s, a) => {
      const r = await readWorkspaceFile(s, a.path as string, { via: 'mcp' });
      return {
        text: r.content + (r.truncated ? '\n[airlock: truncated]' : ''),
        rule: 'mcp.paths.workspace',
        extra: { bytes: Buffer.byteLength(r.content), truncated: r.truncated },
      };
    }),
  );

  server.registerTool(
    'write_file',
    {
      title: 'Write a workspace file',
      description:
        'Creates or replaces a file of the workspace with the given content (parent directories are created; .git and paths leaving the workspace are refused).',
      inputSchema: {
        path: z.string().describe('File path, relative to /workspace.'),
        content: z
          .string()
          .max(16 * 1024 * 1024)
          .describe('The complete new content.'),
      },
    },
    handle(
      'write_file',
      async (a) => ({ path: clip(String(a.path ?? '')), bytes: Buffer.byteLength(String(a.content ?? '')) }),
      async (s, a) => {
        const r = await writeWorkspaceFile(s, a.path as string, a.content as string, { via: 'mcp' });
        return { text: `wrote ${r.bytes} bytes to ${r.path}`, rule: 'mcp.paths.workspace', extra: { bytes: r.bytes } };
      },
    ),
  );
}

/** apply_patch and list_files: changes and listings over the workspace tree. */
function registerTreeTools(server: McpServer, handle: Handle): void {
  server.registerTool(
    'apply_patch',
    {
      title: 'Apply a unified diff',
      description:
        'Applies a unified diff (diff -u / git diff) to the workspace. All hunks must apply or nothing is written.',
      inputSchema: {
        patch: z
          .string()
          .min(1)
          .max(16 * 1024 * 1024)
          .describe('The unified diff.'),
      },
    },
    handle(
      'apply_patch',
      async (a) => ({ bytes: Buffer.byteLength(String(a.patch ?? '')) }),
      async (s, a) => {
        const r = await applyWorkspacePatch(s, a.patch as string, { via: 'mcp' });
        return {
          text: r.files.map((f) => `${f.action} ${f.path}`).join('\n'),
          rule: 'mcp.paths.workspace',
          extra: { files: r.files },
        };
      },
    ),
  );

  server.registerTool(
    'list_files',
    {
      title: 'List workspace files',
      description:
        'Lists files under a workspace directory (default: the workspace root), .git skipped. One line per entry: type (f/d/l), size, path.',
      inputSchema: {
        path: z.string().optional().describe('Directory, relative to /workspace (default ".").'),
        depth: z.number().int().min(1).max(32).optional().describe('How deep to descend (default 3).'),
      },
    },
    handle(
      'list_files',
      async (a) => ({ path: clip(String(a.path ?? '.')), depth: a.depth ?? 3 }),
      async (s, a) => {
        const r = await listWorkspace(s, (a.path as string | undefined) ?? '.', {
          depth: a.depth as number | undefined,
          via: 'mcp',
        });
        const short: Record<string, string> = { file: 'f', dir: 'd', symlink: 'l', other: '?' };
        return {
          text:
            r.entries.map((e) => `${short[e.type]} ${e.size} ${e.path}`).join('\n') +
            (r.truncated ? '\n[airlock: truncated]' : ''),
          rule: 'mcp.paths.workspace',
          extra: { entries: r.entries.length },
        };
      },
    ),
  );
}

/** propose_change: ends the session and turns its captured result into a proposal for review. */
function registerProposeTool(server: McpServer, handle: Handle, state: McpState): void {
  server.registerTool(
    'propose_change',
    {
      title: 'Propose the change for review',
      description:
        'Ends the session: captures the workspace (commits and uncommitted work), runs the review checks and creates a proposal for human approval. No further tool calls are possible afterwards.',
      inputSchema: {
        summary: z.string().max(4000).optional().describe('What the change does, for the reviewer (recorded).'),
      },
    },
    handle(
      'propose_change',
      async (a) => ({ summary: clip(String(a.summary ?? ''), 500) }),
      async (session, args) => {
        session.record({ type: 'mcp.propose', data: { summary: clip(String(args.summary ?? ''), 4000) } });
        state.stopped = await session.stop('propose_change');
        const cap = state.stopped.result;
        if (!cap)
          return {
            text: 'the session ended but its result could not be captured (see the audit log)',
            rule: 'review.capture',
            isError: true,
          };
        if (!cap.commits.length)
          return {
            text: `session ${session.id} ended with no changes; nothing to propose`,
            rule: 'review.capture',
            extra: { commits: 0 },
          };
        if (typeof review.createProposal !== 'function') {
          return {
            text: JSON.stringify({ session: session.id, result: cap }, null, 2),
            rule: 'review.capture',
            extra: { commits: cap.commits.length },
          };
        }
        const { proposal } = await review.createProposal(session.store, session.id, { home: session.home.root });
        const blocking = proposal.findings.filter((f) => f.blocking).length;
        const text = [
          `proposal ${proposal.id} for session ${session.id}: ${proposal.stats.files} file(s), +${proposal.stats.added} -${proposal.stats.deleted}, ${proposal.commits.length} commit(s)`,
          `findings: ${proposal.findings.length} (${blocking} blocking)`,
          ...proposal.findings.slice(0, 50).map((f) => `  [${f.severity}] ${f.rule} ${f.file}:${f.line} ${f.message}`),
          `a human reviews it with: airlock review show ${proposal.id}`,
        ].join('\n');
        return {
          text,
          rule: 'review.checks',
          extra: { proposal: proposal.id, hash: proposal.hash, findings: proposal.findings.length, blocking },
        };
      },
    ),
  );
}
