// One session (open, `true`, stop) in a process of its own, for bench/workspace.ts: the
// Airlock source tree to use is an argument, so the baseline and the candidate run the
// same measurement. Prints {openMs, totalMs, hwmKiB} (peak resident memory of this
// supervisor process, worker threads included; git children are not the supervisor).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [srcRoot, home, repo, base] = process.argv.slice(2);
if (!srcRoot || !home || !repo || !base) throw new Error('usage: workspace-session.ts SRC_ROOT HOME REPO BASE');
const { Session } = (await import(
  pathToFileURL(join(srcRoot, 'src/session/index.ts')).href
)) as typeof import('../src/session/index.ts');
await import(pathToFileURL(join(srcRoot, 'src/session/layers.ts')).href);
const t0 = performance.now();
const s = await Session.open({ repo, home, base });
const openMs = performance.now() - t0;
const r = await s.run(['true']);
await s.stop('bench');
const totalMs = performance.now() - t0;
const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
// CPU seconds of this process (all threads) and of the children it waited for (git, cp…):
// /proc/self/stat fields 14-17 in clock ticks. Less at the mercy of other load than wall time.
const statLine = readFileSync('/proc/self/stat', 'utf8');
const stat = statLine.slice(statLine.lastIndexOf(')') + 2).split(' ');
const cpuS = [11, 12, 13, 14].reduce((sum, i) => sum + Number(stat[i]), 0) / 100;
process.stdout.write(JSON.stringify({ openMs, totalMs, hwmKiB: Number(hwm?.[1] ?? 0), cpuS, status: r.status }) + '\n');
