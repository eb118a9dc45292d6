// A session on a host waiting for a human: asks to run a command (the queue a session's
// "ask" rule uses) and prints the answer as JSON. Usage: node test/store/wait-ask.ts SESSION
import { join } from 'node:path';
import { AuditStore } from '../../src/audit/index.ts';
import { requestApproval } from '../../src/command-rules/index.ts';

const store = new AuditStore(join(process.env.AIRLOCK_HOME!, 'audit.db'));
const answer = await requestApproval(store, {
  session: process.argv[2] ?? 's',
  command: ['rm', '-rf', 'build'],
  rule: 'commands.rm',
  timeoutSeconds: 120,
  pollMs: 50,
});
process.stdout.write(JSON.stringify(answer) + '\n');
store.close();
