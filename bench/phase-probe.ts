// Loaded with `node --import bench/phase-probe.ts` into an `airlock` process by
// bench/cold-start.ts: collects the phase marks of src/common/phase.ts and, at exit,
// writes them (ms since the process started) to $AIRLOCK_PHASES_OUT as JSON.
import { subscribe } from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';
import type { PhaseMark } from '../src/common/index.ts';

const out = process.env.AIRLOCK_PHASES_OUT;
const marks: PhaseMark[] = [{ name: 'node.boot', at: performance.now() }];
subscribe('airlock:phase', (m) => {
  marks.push(m as PhaseMark);
});
process.on('exit', () => {
  marks.push({ name: 'exit', at: performance.now() });
  if (out) writeFileSync(out, JSON.stringify(marks));
});
