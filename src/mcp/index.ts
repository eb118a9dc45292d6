// MCP server over a session, and the workspace file operations it (and the SDK) use.
// See docs/sdk.md and docs/modules/agents.md.
export {
  createAirlockMcpServer,
  MCP_TOOLS,
  type AirlockMcp,
  type AirlockMcpOptions,
  type McpToolName,
} from './server.ts';
export {
  readWorkspaceFile,
  writeWorkspaceFile,
  deleteWorkspaceFile,
  listWorkspace,
  runCaptured,
  workspacePath,
  PathDenied,
  type CapturedRun,
  type ListEntry,
} from './workspace-fs.ts';
export { applyWorkspacePatch, type PatchResult } from './patch.ts';
