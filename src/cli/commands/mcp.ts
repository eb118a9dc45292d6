import type { Command } from 'commander';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createAirlockMcpServer } from '../../mcp/index.ts';

export function registerMcp(program: Command): void {
  program
    .command('mcp')
    .description(
      "Serve a sandboxed session's tools over the Model Context Protocol on stdio (run_command, read_file, write_file, apply_patch, list_files, propose_change)",
    )
    .option('--repo <path>', 'repository to snapshot (default: current directory)')
    .option('--base <ref>', 'commit, branch or tag the workspace starts from (default: HEAD)')
    .option('--policy <file>', "repo policy file instead of the base commit's airlock.yaml")
    .option('--org-policy <file>', 'organisation policy')
    .option('--agent <name>', 'agent identity recorded with the session', 'mcp')
    .addHelpText(
      'after',
      '\nExample (an MCP client config):\n  {"command": "airlock", "args": ["mcp", "--repo", "/path/to/repo"]}\nThe session opens on the first tool call and ends (captured) when the client disconnects or calls propose_change.',
    )
    .action(async (o: { repo?: string; base?: string; policy?: string; orgPolicy?: string; agent: string }) => {
      const mcp = createAirlockMcpServer({
        open: {
          repo: o.repo,
          base: o.base,
          policyFile: o.policy,
          orgPolicy: o.orgPolicy,
          agent: o.agent,
          command: ['airlock', 'mcp'],
        },
      });
      // Open the session right away so the first call does not wait; errors surface as tool errors.
      mcp.session().then(
        (s) => process.stderr.write(`airlock: mcp session ${s.id}\n`),
        (e: unknown) =>
          process.stderr.write(`airlock: session failed to open: ${e instanceof Error ? e.message : String(e)}\n`),
      );
      const transport = new StdioServerTransport();
      let closing: Promise<unknown> | null = null;
      const shutdown = (why: string) => {
        closing ??= mcp.close(why).finally(() => process.exit(0));
        return closing;
      };
      transport.onclose = () => {
        void shutdown('mcp client disconnected');
      };
      process.stdin.on('end', () => {
        void shutdown('mcp client disconnected');
      });
      for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
        process.on(sig, () => {
          void shutdown(`interrupted by ${sig}`);
        });
      await mcp.server.connect(transport);
      await new Promise<void>(() => undefined); // served until the client goes away
    });
}
