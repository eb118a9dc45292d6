// A "session" on a host for the multi-host tests: appends COUNT events to AIRLOCK_HOME's log
// in small groups, with a signed checkpoint every 100 groups, then exits.
// Usage: node test/store/append-events.ts SESSION COUNT
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AuditStore, checkpoint } from '../../src/audit/index.ts';

const [session = 's', countText = '100'] = process.argv.slice(2);
const count = Number(countText);
const store = new AuditStore(join(process.env.AIRLOCK_HOME!, 'audit.db'));
for (let i = 0, group = 0; i < count; group++) {
  const n = Math.min(1 + (group % 7), count - i);
  store.appendMany(
    Array.from({ length: n }, (_, k) => ({ type: 'process.exec', session, data: { argv: ['make', `step-${i + k}`] } })),
  );
  i += n;
  if (group % 100 === 99) checkpoint(store, 'test');
  await sleep(group % 10 === 0 ? 5 : 0);
}
checkpoint(store, 'session end');
store.close();
