import { applyPatch, parsePatch } from 'diff';
import { AirlockError } from '../common/index.ts';
import type { ExecRequest, Session } from '../session/index.ts';
import {
  deleteWorkspaceFile,
  readWorkspaceFile,
  workspacePath,
  writeWorkspaceFile,
  MAX_READ_BYTES,
} from './workspace-fs.ts';

// apply_patch: a unified diff (git or plain) applied with jsdiff. Every file is read and
// patched first; only when every hunk of every file applies are the results written (all
// inside the sandbox), so a failing patch changes nothing.

const MAX_PATCH_FILES = 200;

function stripPrefix(name: string | undefined): string | null {
  if (!name || name === '/dev/null') return null;
  const n = name.replace(/\t.*$/, '');
  return /^[ab]\//.test(n) ? n.slice(2) : n;
}

export interface PatchResult {
  files: { path: string; action: 'modified' | 'created' | 'deleted' }[];
}

export async function applyWorkspacePatch(
  session: Session,
  patch: string,
  opts: { via?: ExecRequest['via'] } = {},
): Promise<PatchResult> {
  let parsed;
  try {
    parsed = parsePatch(patch);
  } catch (e) {
    throw new AirlockError(
      'USAGE',
      `patch does not parse: ${e instanceof Error ? e.message : String(e)}`,
      'send a unified diff (diff -u or git diff output)',
    );
  }
  parsed = parsed.filter((p) => p.hunks.length > 0 || p.oldFileName || p.newFileName);
  if (!parsed.length)
    throw new AirlockError('USAGE', 'patch contains no file changes', 'send a unified diff with at least one hunk');
  if (parsed.length > MAX_PATCH_FILES)
    throw new AirlockError('USAGE', `patch touches ${parsed.length} files (max ${MAX_PATCH_FILES})`, 'split it');
  const plan: { path: string; action: PatchResult['files'][number]['action']; content: string | null }[] = [];
  for (const p of parsed) {
    const oldName = stripPrefix(p.oldFileName);
    const newName = stripPrefix(p.newFileName);
    const target = newName ?? oldName;
    if (!target)
      throw new AirlockError(
        'USAGE',
        'patch has a file with neither an old nor a new name',
        'use diff -u or git diff output',
      );
    // Lexical confinement first (throws PathDenied with its rule); the write re-checks in the sandbox.
    workspacePath(target, { write: true });
    if (oldName && newName && oldName !== newName) workspacePath(oldName, { write: true });
    const source = oldName
      ? await readWorkspaceFile(session, oldName, { via: opts.via })
      : { content: '', truncated: false };
    if (source.truncated)
      throw new AirlockError('USAGE', `${oldName} is larger than ${MAX_READ_BYTES} bytes`, 'edit it with run_command');
    const result = applyPatch(source.content, p);
    if (result === false)
      throw new AirlockError(
        'FAILURE',
        `patch does not apply to ${target}: a hunk does not match the current content`,
        'read the file again and regenerate the patch',
      );
    if (!newName) plan.push({ path: oldName!, action: 'deleted', content: null });
    else {
      plan.push({ path: newName, action: oldName ? 'modified' : 'created', content: result });
      if (oldName && oldName !== newName) plan.push({ path: oldName, action: 'deleted', content: null });
    }
  }
  for (const f of plan) {
    if (f.content === null) await deleteWorkspaceFile(session, f.path, { via: opts.via });
    else await writeWorkspaceFile(session, f.path, f.content, { via: opts.via });
  }
  return { files: plan.map(({ path, action }) => ({ path, action })) };
}
