import { enableCompileCache } from 'node:module';
import { privateCompileCacheDir } from './compile-cache.ts';

// Before anything else loads: the modules imported below are compiled from the cache.
const compileCache = privateCompileCacheDir(process.env);
if (compileCache) enableCompileCache(compileCache);
if (process.argv[2] === '__supervise') {
  // Detached session supervisor (started by `airlock session start`).
  const { superviseSession } = await import('../session/index.ts');
  await (await import('./schemas.ts')).preferInterpretedSchemas();
  process.once('message', (opts) => {
    void superviseSession(opts as never, (id, err) => {
      process.send?.(err ? { id: null, error: { kind: err.kind, message: err.message, hint: err.hint } } : { id });
      process.disconnect?.();
      if (err) process.exitCode = err.exitCode;
    });
  });
} else if (process.argv[2] === '__spare') {
  // A warm spare (`airlock warm on`): waits for one invocation from build/airlock-attach and
  // runs it through the same main as below (src/cli/warm/spare.ts).
  const { serveAsSpare } = await import('./warm/index.ts');
  await serveAsSpare(process.argv.slice(3), loadForRun);
} else {
  const { main } = await import('./main.ts');
  process.exitCode = await main(process.argv.slice(2));
}

/** What a spare loads before any request: the CLI, the run command and what its action and default layers import. */
async function loadForRun(): Promise<(argv: string[]) => Promise<number>> {
  const { main } = await import('./main.ts');
  const { registrationOf } = await import('./commands/index.ts');
  await registrationOf('run')!.load();
  await Promise.all([
    import('../session/index.ts'),
    import('../agents/apply.ts'),
    import('../detect/index.ts'),
    import('../secrets/honeytokens.ts'),
  ]);
  // built on first use, which every session's first recorded event is: here, off the served command's path
  await (await import('../secrets/index.ts')).buildScanners();
  return main;
}
