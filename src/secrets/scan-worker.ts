import { parentPort } from 'node:worker_threads';
import { judgeFile, type JudgeJob } from './judge.ts';

// Worker thread for the workspace scan: one job at a time, verdicts only (never file text).
parentPort?.on('message', (msg: { id: number; job: JudgeJob }) => {
  judgeFile(msg.job).then(
    (verdict) => parentPort!.postMessage({ id: msg.id, verdict }),
    (err: unknown) =>
      parentPort!.postMessage({
        id: msg.id,
        verdict: {
          v: 'hide',
          reason: 'scan-error',
          rule: 'secrets.workspace.mode',
          extra: { error: err instanceof Error ? err.name : 'error' },
        },
      }),
  );
});
