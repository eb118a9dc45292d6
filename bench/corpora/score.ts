// Quick per-corpus score of the engine (development aid): node bench/corpora/score.ts [peer] [--misses]
import { scanText } from '../../src/secrets/index.ts';
import { loadPeer, scorePeer, PEERS } from './load.ts';

const args = process.argv.slice(2);
const show = args.includes('--misses');
const peers = args.filter((a) => !a.startsWith('--'));
for (const peer of peers.length ? peers : PEERS) {
  const { samples, disputes } = loadPeer(peer);
  const byId = new Map(samples.map((s) => [s.id, s]));
  const sc = await scorePeer(samples, disputes, (s) => scanText(s.text, { path: s.path }));
  process.stdout.write(`${peer}: recall ${sc.recall.toFixed(3)} precision ${sc.precision.toFixed(3)} (tp ${sc.tp} fn ${sc.fn} fp ${sc.fp} tn ${sc.tn})\n`);
  if (!show) continue;
  for (const id of sc.missed) process.stdout.write(`  MISS ${id}: ${JSON.stringify(byId.get(id)!.text.slice(0, 160))}\n`);
  for (const id of sc.falseAlarms) {
    const s = byId.get(id)!;
    const f = await scanText(s.text, { path: s.path });
    process.stdout.write(`  FP   ${id}: ${JSON.stringify(s.text.slice(0, 160))} -> ${f.map((x) => `${x.rule}[${JSON.stringify(s.text.slice(x.start, x.end).slice(0, 40))}]`).join(', ')}\n`);
  }
}
